-- pgTAP: every pile gets a bill, and a bad start does not block a gun
-- (issue 16 items 1, 6 and 9).
--
-- The pile registry holds each pile's current type (from the id when its
-- digits 14-15 say it, given at registration otherwise, refused when they
-- disagree); every ended session gets exactly one bill, held with the
-- reason when it cannot be priced; reports count none as pending.
-- start_session() refuses unknown members, partners and guns (P0002);
-- cancel_session() frees a gun, audited.
BEGIN;
SELECT plan(46);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';

-- The catalogue.
SELECT has_column('evcharge', 'pile', 'current_type', 'pile has a current_type');
SELECT col_type_is('evcharge', 'pile', 'current_type', 'text', 'pile.current_type is text');
SELECT is((SELECT attnum FROM pg_attribute WHERE attrelid = 'evcharge.pile'::regclass AND attname = 'current_type'),
          (SELECT max(attnum) FROM pg_attribute WHERE attrelid = 'evcharge.pile'::regclass AND NOT attisdropped),
          'current_type is the last column of pile (an update adds it at the end)');
SELECT has_trigger('evcharge', 'pile', 'pile_registration', 'pile has the trigger pile_registration');
SELECT has_table('evcharge', 'session_cancellation', 'table session_cancellation exists');
SELECT col_is_pk('evcharge', 'session_cancellation', 'order_no', 'one cancellation per session');
SELECT ok((SELECT 'evcharge.session_cancellation'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'evcharge'),
          'session_cancellation is dumped with the data (pg_extension_config_dump)');
SELECT is(array_agg(p.proname::text ORDER BY p.proname), NULL,
          'cancel_session, make_bill and pile_registration are VOLATILE PARALLEL UNSAFE')
FROM pg_proc p WHERE p.pronamespace = 'evcharge'::regnamespace
  AND p.proname IN ('cancel_session', 'make_bill', 'pile_registration', 'session_cancellation_immutable')
  AND (p.provolatile <> 'v' OR p.proparallel <> 'u');
SELECT is(array_agg(p.proname::text ORDER BY p.proname), NULL,
          'registered_current_type and unpriced_bill are STABLE PARALLEL SAFE')
FROM pg_proc p WHERE p.pronamespace = 'evcharge'::regnamespace
  AND p.proname IN ('registered_current_type', 'unpriced_bill')
  AND (p.provolatile <> 's' OR p.proparallel <> 's');
SELECT is(array_agg(p.proname::text ORDER BY p.proname), NULL,
          'the new PL/pgSQL functions run with a fixed search_path, none SECURITY DEFINER')
FROM pg_proc p WHERE p.pronamespace = 'evcharge'::regnamespace
  AND p.proname IN ('cancel_session', 'make_bill', 'pile_registration', 'session_cancellation_immutable', 'unpriced_bill')
  AND (p.prosecdef OR NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false));
SELECT set_eq($$SELECT code, name FROM evcharge.anomaly_code WHERE code >= 17$$,
              $$VALUES (17, 'current_type_unknown'), (18, 'beyond_bill_limits'), (19, 'not_priced'), (20, 'class_energy_mismatch')$$,
              'anomaly codes 17, 18, 19 (and 20, issue 17) are appended, the others unchanged');
SELECT ok(evcharge.anomaly_blocking('17+18+19'::anomaly_set) AND evcharge.anomaly_blocking('17')
          AND evcharge.anomaly_blocking('18') AND evcharge.anomaly_blocking('19'), 'each of 17, 18, 19 blocks charging');

-- Operator 60's stations: 60 with AC and DC plans, 61 with an AC plan only;
-- operator 62 allows one bill at most 20 kWh.
INSERT INTO operator VALUES (60, 'Jianxin test'), (62, 'low limits'), (63, 'another');
INSERT INTO station (station_id, operator_id, name) VALUES (60, 60, 'both'), (61, 60, 'AC only'), (62, 62, 'low');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (60, 'AC', '00:00-24:00 flat | flat 0.6000+0.4000', '[2026-01-01,)', 'AC'),
 (60, 'DC', '00:00-24:00 flat | flat 0.8008+0.4000', '[2026-01-01,)', 'DC'),
 (61, 'AC', '00:00-24:00 flat | flat 0.6000+0.4000', '[2026-01-01,)', 'AC'),
 (62, 'DC', '00:00-24:00 flat | flat 0.8008+0.4000', '[2026-01-01,)', 'DC');
UPDATE finance_policy SET max_bill_energy_wh = 20000 WHERE operator_id = 62;
INSERT INTO customer_group (group_id, operator_id, name) VALUES (63, 63, 'another operator''s group');
INSERT INTO member (member_id, operator_id) VALUES (601, 60), (631, 63);
INSERT INTO partner (partner_id, operator_id, name) VALUES (60, 60, 'partner of 60'), (63, 63, 'partner of 63');

-- Registration.
SELECT lives_ok($$INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, current_type)
                  SELECT format('442001006000010%s', lpad(n::text, 5, '0'))::pile_id, CASE WHEN n <= 4 THEN 60 ELSE 61 END,
                         1, 60000, 'DC' FROM generate_series(1, 6) n$$,
                'six piles whose ids say 10 are registered with their type');
SELECT lives_ok($$INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES
                  ('44200100600000100007', 60, 2, 7000), ('44200100620000200008', 62, 1, 60000),
                  ('44200100600000200009', 60, 1, 60000)$$,
                'piles whose ids say 01 and 02 are registered without a type...');
SELECT throws_ok($$UPDATE pile SET current_type = 'DC' WHERE pile_id = '44200100600000100007'$$, '23514',
                 'pile 44200100600000100007 cannot be registered as DC: its id says AC', '...which the id then holds to');
SELECT results_eq($$SELECT current_type FROM pile WHERE pile_id IN ('44200100600000100007', '44200100620000200008', '44200100600000200009') ORDER BY pile_id$$,
                  $$VALUES ('AC'), ('DC'), ('DC')$$, 'the type comes from the id');
SELECT throws_ok($$INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200100600001000099', 60, 1, 7000)$$,
                 '23502', 'pile 44200100600001000099 needs its current type: its id does not say AC or DC',
                 'a pile whose id does not say needs its type');
SELECT throws_ok($$INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, current_type) VALUES ('44200100600000200098', 60, 1, 7000, 'AC')$$,
                 '23514', 'pile 44200100600000200098 cannot be registered as AC: its id says DC',
                 'a type against the id is refused');
SELECT throws_ok($$INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('4420010060000097', 60, 1, 7000)$$,
                 '23514', 'pile id "4420010060000097" is a 16-digit legacy id, which the cloud pile protocol does not accept',
                 'a legacy id is refused with its own message');
SELECT throws_like($$INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('4420010060000097', 60, 1, 7000)$$,
                   '%legacy%', 'the legacy refusal says legacy');
SELECT lives_ok($$UPDATE pile SET current_type = 'AC' WHERE pile_id = '44200100600001000006'$$,
                'the type of a pile whose id does not say can be corrected');
UPDATE pile SET current_type = 'DC' WHERE pile_id = '44200100600001000006';
SELECT is(registered_current_type('44200100600001000001001'), 'DC', 'registered_current_type(gun) is the registry''s');
SELECT is(registered_current_type('44200100600001000077001'), NULL, 'and NULL for a pile not registered');

-- start_session() refuses what no wallet pays for.
SELECT throws_ok($$SELECT start_session('44200100600001000001001', 999, 'app')$$, 'P0002',
                 'operator 60 has no member 999', 'an unknown member is refused');
SELECT throws_ok($$SELECT start_session('44200100600001000001001', 631, 'app')$$, 'P0002',
                 'operator 60 has no member 631', 'another operator''s member is refused');
SELECT throws_ok($$SELECT start_session('44200100600001000001001', NULL, 'partner', 99)$$, 'P0002',
                 'partner 99 has no contract with the operator of gun 44200100600001000001001', 'an unknown partner is refused');
SELECT throws_ok($$SELECT start_session('44200100600001000001001', NULL, 'partner', 63)$$, 'P0002',
                 'partner 63 has no contract with the operator of gun 44200100600001000001001', 'another operator''s partner is refused');
SELECT throws_ok($$SELECT start_session('44200100600001000077001', 601, 'app')$$, 'P0002',
                 'gun 44200100600001000077001 is not registered', 'an unknown gun is refused');
SELECT is((SELECT count(*)::int FROM charge_session), 0, 'no refused start left a session');

-- cancel_session() frees the gun at once; the start after it is the gun's.
CREATE TEMP TABLE starts AS SELECT 1 AS n, start_session('44200100600000100007002', 601, 'app') AS order_no;
SELECT throws_ok($$SELECT start_session('44200100600000100007002', 601, 'app')$$, '55P03', NULL, 'the pending start blocks the gun');
SELECT lives_ok($$SELECT cancel_session((SELECT order_no FROM starts WHERE n = 1), 'driver left')$$, 'support cancels it');
INSERT INTO starts SELECT 2, start_session('44200100600000100007002', 601, 'app');
SELECT is((SELECT state FROM charge_session WHERE order_no = (SELECT order_no FROM starts WHERE n = 2)), 'pending',
          'and the gun takes the next start');
SELECT results_eq($$SELECT reason, cancelled_by = current_user FROM session_cancellation$$, $$VALUES ('driver left', true)$$,
                  'the cancellation is recorded with its reason and who');

-- Charges as piles report them (a sample every 15 s rising by step Wh),
-- with the pile's record when record_wh is given.
CREATE FUNCTION pg_temp.charge(gun gun_id, order_no text, t0 timestamptz, step int, record_wh bigint)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no)
	SELECT gun, t0 + i * interval '15 s', CASE WHEN i <= 120 THEN 'charging' WHEN i = 121 THEN 'occupied' ELSE 'idle' END::evcharge.gun_status,
	       500000 + least(i, 120) * step, 0, CASE WHEN i <= 121 THEN order_no END
	FROM generate_series(0, 122) i;
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh)
	SELECT order_no, gun, t0, t0 + interval '30 min', record_wh WHERE record_wh IS NOT NULL;
$$;
-- Four priced DC charges of 23.32 kWh (27.99 yuan), two at the station
-- without a DC plan (12), one over operator 62's energy limit (18).
SELECT pg_temp.charge(format('442001006000010%s001', lpad(n::text, 5, '0'))::gun_id, 'EB-' || n,
                      '2026-11-20 10:00+08', 194, 23320)
FROM generate_series(1, 6) n;
SELECT pg_temp.charge('44200100620000200008001', 'EB-8', '2026-11-20 10:00+08', 194, 23320);
-- An AC charge whose session carries another operator's group: pricing fails (19).
SELECT pg_temp.charge('44200100600000100007001', 'EB-7', '2026-11-20 10:00+08', 29, NULL);
UPDATE charge_session SET group_id = 63 WHERE order_no = 'EB-7';
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('EB-7', '44200100600000100007001', '2026-11-20 10:00+08', '2026-11-20 10:30+08', 3480);
-- A DC charge whose record never comes (1), and one on a pile removed from
-- the registry before the job gives up on its record (1 and 17).
SELECT pg_temp.charge('44200100600001000001001', 'EB-1b', '2026-11-20 14:00+08', 194, NULL);
SELECT pg_temp.charge('44200100600000200009001', 'EB-9', '2026-11-20 10:00+08', 194, NULL);
DELETE FROM pile WHERE pile_id = '44200100600000200009';
SELECT results_eq($$SELECT bills_lost FROM detect_lost_bills('2026-11-20 23:00+08')$$, $$VALUES (2::bigint)$$,
                  'detect_lost_bills bills the two without a record');

SELECT is((SELECT count(*)::int FROM charge_session cs
           WHERE cs.state = 'ended' AND NOT EXISTS (SELECT 1 FROM bill b WHERE b.order_no = cs.order_no)), 0,
          'every ended session has a bill');
SELECT results_eq(
	$$SELECT order_no, state, total, anomalies::text FROM bill ORDER BY order_no$$,
	$$VALUES ('EB-1', 'final', 27.99, ''), ('EB-1b', 'held', 27.95, '1'), ('EB-2', 'final', 27.99, ''),
	         ('EB-3', 'final', 27.99, ''), ('EB-4', 'final', 27.99, ''), ('EB-5', 'held', 0.00, '12'),
	         ('EB-6', 'held', 0.00, '12'), ('EB-7', 'held', 0.00, '19'), ('EB-8', 'held', 27.99, '18'),
	         ('EB-9', 'held', 0.00, '1+17')$$,
	'each bill: priced, or held with the reason''s code');
SELECT is((SELECT count(*)::int FROM bill WHERE energy_wh = 0), 0, 'every bill keeps its energy, priced or not');
SELECT is((SELECT count(*)::int FROM bill b WHERE evcharge.anomaly_blocking(b.anomalies)
             AND b.anomalies && '12+17+18+19'::anomaly_set
             AND NOT EXISTS (SELECT 1 FROM unnest(b.applied) a
                             WHERE a ~ '^(not priced: |no tariff in force: |order EB-\d+ would bill )')), 0,
          'every bill held for its price says why in applied');
SELECT is((SELECT sum(pending)::int FROM anomaly_report(60, '2026-11-20', '2026-11-20')), 0,
          'operator 60''s report counts no session as pending');
SELECT results_eq($$SELECT sessions, bills FROM anomaly_report(60, '2026-11-20', '2026-11-20')
                    WHERE dimension = 'total' AND code IS NULL$$,
                  $$VALUES (9::bigint, 5::bigint)$$, 'its 9 ended sessions: 4 clean bills, 5 with anomalies');
SELECT is((SELECT held::int FROM daily_report(60, '2026-11-20') WHERE line = 'total'), 5,
          'the daily report counts the 5 held bills');
SELECT is((SELECT bill_error FROM charge_session WHERE order_no = 'EB-1'), NULL, 'a priced bill leaves no bill_error');

-- Repairs do not release a bill at no amount.
SELECT throws_ok($$SELECT repair_bill('EB-5', 'checked')$$, '55000', 'order EB-5 still cannot be priced',
                 'a bill with no plan is not released by a repair');
SELECT throws_ok($$SELECT repair_bill('EB-9', 'checked')$$, '55000', 'order EB-9 still cannot be priced',
                 'nor one whose pile''s type is not known');
SELECT throws_ok($$SELECT repair_bill('EB-8', 'checked')$$, '22023', NULL,
                 'nor one beyond the operator''s limits');
SELECT results_eq($$SELECT state, anomalies::text FROM bill WHERE order_no IN ('EB-5', 'EB-8', 'EB-9') ORDER BY order_no$$,
                  $$VALUES ('held', '12'), ('held', '18'), ('held', '1+17')$$, 'they stay held');

SELECT * FROM finish();
ROLLBACK;
