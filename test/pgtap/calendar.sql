-- pgTAP: plans by calendar (plan_in_force over every day of a year against
-- an independent statement of the rules), deep valley through the
-- pipeline and the bill, the stored form of 4-class plans, free charging.
BEGIN;
SELECT plan(428);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';

-- Catalogue: plan_in_force can be inlined into the heartbeat trigger's
-- look-up (plain SQL, not strict, no SET, STABLE), and its probe has an
-- index that is not partial.
SELECT is((SELECT (l.lanname, p.provolatile, p.proisstrict, p.proconfig IS NULL, p.proparallel, p.proretset)::text
           FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = 'evcharge.plan_in_force(bigint, text, timestamptz)'::regprocedure),
          '(sql,s,f,t,s,t)', 'plan_in_force is an inlinable SQL function: STABLE, not strict, no SET, PARALLEL SAFE, a set');
SELECT ok((SELECT indpred IS NULL FROM pg_index WHERE indexrelid = 'evcharge.station_tariff_lookup_idx'::regclass),
          'station_tariff_lookup_idx covers every plan row');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_extension e, unnest(e.extconfig) x JOIN pg_class c ON c.oid = x
           WHERE e.extname = 'evcharge' AND c.relname IN ('calendar_day', 'declared_day', 'tariff_season')),
          ARRAY['calendar_day', 'declared_day', 'tariff_season'], 'the calendar tables are dumped with the data');

-- Stored values of the 4-class form read as before.  The bytes of a plan
-- without deep valley, as a table row holds them (pageinspect), are
-- 0.2.0's layout exactly: version 1, nseg, four electricity prices, four
-- service fees, then the segments (little-endian on this machine, as the
-- server stores them), after the row's 1-byte varlena header.
CREATE EXTENSION IF NOT EXISTS pageinspect;
CREATE TABLE pg_temp.raw_plan (t tou_tariff);
INSERT INTO pg_temp.raw_plan VALUES ('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500');
SELECT is((SELECT substr((tuple_data_split('pg_temp.raw_plan'::regclass, t_data, t_infomask, t_infomask2, t_bits))[1], 2)
           FROM heap_page_items(get_raw_page('pg_temp.raw_plan', 0))),
          '\x01000200ffffffffffffffffffffffffffffffff581b000000000000b80b000000000000ffffffffffffffffffffffffffffffff941100000000000094110000000000000000e00103000000e001a00502000000'::bytea,
          'a 4-class plan is stored in the 0.2.0 layout, byte for byte');
SELECT is(pg_column_size('00:00-24:00 p4 | p4 0.2+0.5'::tou_tariff), 96, 'a plan with deep valley is stored in the 5-class form (88 + 8)');
SELECT is(tou_tariff_send('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500'),
          '\x010002000001e00301e005a002ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000000000001b5800000000000011940000000000000bb80000000000001194'::bytea,
          'a 4-class plan is sent as 0.2.0 sent it (version 1, 77 bytes)');
SELECT is(length(tou_tariff_send('00:00-08:00 deep_valley, 08:00-24:00 flat | flat 0.7+0.45, deep_valley 0.3+0.45')), 3 + 10 + 80,
          'a plan with deep valley is sent as version 2 with 5 price pairs');
SELECT is(get_byte(tou_tariff_send('00:00-08:00 deep_valley, 08:00-24:00 flat | flat 0.7+0.45, deep_valley 0.3+0.45'), 0), 2,
          'its version byte is 2');
-- Equal plans, equal bytes, equal hashes, whichever way they are written.
SELECT is(tou_tariff_hash('00:00-12:00 p3, 12:00-24:00 p3 | p3 0.3+0.45'), tou_tariff_hash('00:00-24:00 valley | valley 0.3000+0.4500'),
          'equal 4-class plans hash alike');
SELECT is(tou_tariff_hash('00:00-24:00 深谷 | 深谷 0.2+0.45'), tou_tariff_hash('00:00-24:00 deep_valley | deep_valley 0.2000+0.4500'),
          'equal 5-class plans hash alike');
SELECT isnt('00:00-24:00 flat | flat 0.7+0.45'::tou_tariff, '00:00-24:00 flat | flat 0.7+0.45, deep_valley 0+0'::tou_tariff,
            'pricing deep valley makes another plan');
-- A value stored by a release before 0.3.0 in a table reads, compares and
-- prices as it did.
CREATE TEMP TABLE old_rows (t tou_tariff);
INSERT INTO old_rows VALUES ('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500');
SELECT is((SELECT t::text FROM old_rows), '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', 'a stored 4-class plan prints as before');
SELECT is((SELECT (price(t, '{0,0,12500,3330}')).total FROM old_rows), 16.86, 'and prices the domain''s worked example as before');
SELECT is((SELECT split_energy(t, ARRAY['2026-12-01 07:00', '2026-12-01 09:00']::timestamptz[], ARRAY[0, 2000]) FROM old_rows),
          '{0,0,1000,1000}'::bigint[], 'and splits into four figures');

-- The calendar of operator 91 for 2026: seasons, holidays with make-up
-- working days, declared hot days.
INSERT INTO operator VALUES (91, 'calendar tap');
INSERT INTO station (station_id, operator_id, name, tz) VALUES (91, 91, 'Zhongshan', 'Asia/Shanghai'), (92, 91, 'Berlin', 'Europe/Berlin');
INSERT INTO tariff_season SELECT 91, m, CASE WHEN m IN (6, 7, 8, 9) THEN 'summer' WHEN m IN (12, 1, 2) THEN 'winter' END
FROM generate_series(1, 12) m WHERE m IN (6, 7, 8, 9, 12, 1, 2);
INSERT INTO calendar_day (operator_id, day, kind)
SELECT 91, d, 'holiday' FROM generate_series('2026-10-01'::date, '2026-10-07', '1 day') d
UNION ALL SELECT 91, d, 'holiday' FROM generate_series('2026-02-16'::date, '2026-02-22', '1 day') d
UNION ALL VALUES (91, '2026-01-01'::date, 'holiday'), (91, '2026-06-19', 'holiday'),
                 (91, '2026-02-15', 'workday'), (91, '2026-02-28', 'workday'), (91, '2026-09-27', 'workday'), (91, '2026-10-10', 'workday');
INSERT INTO declared_day (operator_id, day, kind)
VALUES (91, '2026-07-14', 'high_temperature'), (91, '2026-08-22', 'high_temperature'), (91, '2026-10-03', 'high_temperature'),
       (91, '2026-06-20', 'typhoon');
-- Station 91's DC plans: every day, summer, winter weekend, spring weekday,
-- weekend, holiday, hot day; AC only every day.  Station 92 (Berlin) has
-- a weekend plan too: its weekend is its own local date.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name, season, day_kind) VALUES
 (91, 'DC', '00:00-24:00 flat | flat 1.0+0.1', '[2026-01-01,)', 'every day', NULL, NULL),
 (91, 'DC', '00:00-24:00 flat | flat 2.0+0.1', '[2026-01-01,)', 'summer', 'summer', NULL),
 (91, 'DC', '00:00-06:00 deep_valley, 06:00-24:00 flat | flat 3.0+0.1, deep_valley 0.2+0.1', '[2026-01-01,)', 'winter weekend', 'winter', 'weekend'),
 (91, 'DC', '00:00-24:00 flat | flat 4.0+0.1', '[2026-03-01, 2026-06-01)', 'spring weekday', NULL, 'weekday'),
 (91, 'DC', '00:00-24:00 flat | flat 5.0+0.1', '[2026-01-01,)', 'weekend', NULL, 'weekend'),
 (91, 'DC', '00:00-24:00 flat | flat 6.0+0.1', '[2026-01-01,)', 'holiday', NULL, 'holiday'),
 (91, 'DC', '00:00-12:00 flat, 12:00-15:00 sharp, 15:00-24:00 flat | sharp 9.0+0.1, flat 7.0+0.1', '[2026-01-01,)', 'hot day', NULL, 'high_temperature'),
 (91, 'AC', '00:00-24:00 flat | flat 0.5+0.1', '[2026-01-01,)', 'AC every day', NULL, NULL),
 (92, 'DC', '00:00-24:00 flat | flat 1.0+0.1', '[2026-01-01,)', 'Berlin every day', NULL, NULL),
 (92, 'DC', '00:00-24:00 flat | flat 5.0+0.1', '[2026-01-01,)', 'Berlin weekend', NULL, 'weekend');

-- Every day of 2026, at 10:00 local: the plan plan_in_force gives is the
-- one the rules give, stated here another way (first match of a list).
CREATE TEMP TABLE expected_plan AS
SELECT d::date AS day,
       CASE
         WHEN dd.kind = 'high_temperature' THEN 'hot day'
         WHEN cd.kind = 'holiday' THEN 'holiday'
         WHEN extract(month FROM d) IN (12, 1, 2) AND cd.kind IS DISTINCT FROM 'workday' AND extract(isodow FROM d) IN (6, 7) THEN 'winter weekend'
         WHEN cd.kind IS DISTINCT FROM 'workday' AND extract(isodow FROM d) IN (6, 7) THEN 'weekend'
         WHEN d >= '2026-03-01' AND d < '2026-06-01' THEN 'spring weekday'
         WHEN extract(month FROM d) IN (6, 7, 8, 9) THEN 'summer'
         ELSE 'every day'
       END AS plan
FROM generate_series('2026-01-01'::date, '2026-12-31', '1 day') d
LEFT JOIN calendar_day cd ON cd.operator_id = 91 AND cd.day = d::date
LEFT JOIN declared_day dd ON dd.operator_id = 91 AND dd.day = d::date;
SELECT is((SELECT p.name FROM plan_in_force(91, 'DC', e.day + time '10:00') p), e.plan,
          format('%s (%s): %s', e.day, to_char(e.day, 'Dy'), e.plan))
FROM expected_plan e ORDER BY e.day;

-- The edges of the day are the station's: 23:59:59 and 00:00 local.
SELECT is((SELECT name FROM plan_in_force(91, 'DC', '2026-07-13 23:59:59.999999+08')), 'summer', 'the last instant before a hot day');
SELECT is((SELECT name FROM plan_in_force(91, 'DC', '2026-07-14 00:00+08')), 'hot day', 'a hot day from its first instant');
SELECT is((SELECT name FROM plan_in_force(92, 'DC', '2026-03-06 23:30+00')), 'Berlin weekend',
          'Berlin''s Saturday begins at 23:00 UTC on Friday (its local date decides)');
SELECT is((SELECT name FROM plan_in_force(92, 'DC', '2026-03-06 22:30+00')), 'Berlin every day', 'and not before');
SELECT is((SELECT count(*)::int FROM plan_in_force(91, 'DC', '2025-12-31 10:00')), 0, 'before any plan: no row');
SELECT is((SELECT name FROM plan_in_force(91, 'AC', '2026-07-14 10:00')), 'AC every day', 'AC piles have their own plans');
SELECT is((SELECT count(*)::int FROM plan_in_force(99999, 'DC', '2026-07-14 10:00')), 0, 'an unknown station: no row');
SELECT is((SELECT (day_type, season, matched)::text FROM plan_in_force(91, 'DC', '2026-06-20 10:00')),
          '(typhoon,summer,weekend)', 'a declared kind without a plan: the day is next priced as what else it is');

-- until: how long an answer holds (the trigger gives it to the guns of a
-- run that are all before it).
INSERT INTO station (station_id, operator_id, name) VALUES (93, 91, 'price change at noon');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (93, 'DC', '00:00-24:00 flat | flat 1.0+0.1', '[2026-01-01, 2026-03-02 12:00+08)', 'old'),
 (93, 'DC', '00:00-24:00 flat | flat 1.5+0.1', '[2026-03-02 12:00+08,)', 'new');
SELECT is((SELECT until FROM plan_in_force(91, 'DC', '2026-07-13 10:00+08')), '2026-07-14 00:00+08'::timestamptz,
          'until: the station''s next midnight');
SELECT is((SELECT until FROM plan_in_force(92, 'DC', '2026-03-06 22:30+00')), '2026-03-06 23:00+00'::timestamptz,
          'until: Berlin''s midnight is its own');
SELECT ok((SELECT (name, until) = ('old'::text, '2026-03-02 12:00+08'::timestamptz) FROM plan_in_force(93, 'DC', '2026-03-02 10:00+08')),
          'until: the end of the chosen row');
SELECT ok((SELECT (name, until) = ('new'::text, '2026-03-03 00:00+08'::timestamptz) FROM plan_in_force(93, 'DC', '2026-03-02 12:00+08')),
          'the next row from its first instant, until midnight');
SELECT is((SELECT until FROM plan_in_force(91, 'DC', '2026-05-31 10:00+08')), '2026-06-01 00:00+08'::timestamptz,
          'until: midnight comes before the end of a row valid to it');

-- Constraints.
SELECT throws_ok($$INSERT INTO station_tariff (station_id, current_type, tariff, valid, day_kind)
                  VALUES (91, 'DC', '00:00-24:00 flat | flat 1+1', '[2026-05-01, 2026-05-02)', 'holiday')$$,
                 '23P01', NULL, 'two holiday plans of a station may not overlap');
SELECT lives_ok($$INSERT INTO station_tariff (station_id, current_type, tariff, valid, season, day_kind)
                  VALUES (91, 'DC', '00:00-24:00 flat | flat 1+1', '[2027-01-01,)', 'summer', 'weekend')$$,
                'a summer weekend plan may overlap a weekend plan');
SELECT throws_ok($$INSERT INTO station_tariff (station_id, current_type, tariff, valid)
                  VALUES (91, 'DC', '00:00-24:00 flat | flat 1+1', '[2026-05-01, 2026-05-02)')$$,
                 '23P01', NULL, 'two plans for every day may not overlap (as before)');
SELECT throws_ok($$INSERT INTO station_tariff (station_id, current_type, tariff, valid, season)
                  VALUES (91, 'DC', '00:00-24:00 flat | flat 1+1', '[2027-01-01,)', 'autumn')$$,
                 '23503', 'operator of station 91 has no season "autumn"', 'a season the operator does not have');
SELECT throws_ok($$INSERT INTO tariff_season VALUES (91, 3, 'Spring')$$, '23514', NULL, 'season names are lower case');
SELECT throws_ok($$INSERT INTO tariff_season VALUES (91, 7, 'monsoon')$$, '23505', NULL, 'a month is in one season');
SELECT throws_ok($$INSERT INTO calendar_day VALUES (91, '2026-10-01', 'workday', NULL)$$, '23505', NULL, 'a day is a holiday or a workday, once');
SELECT throws_ok($$INSERT INTO calendar_day VALUES (91, '2026-10-11', 'weekend', NULL)$$, '23514', NULL, 'calendar days are holidays or workdays');
SELECT throws_ok($$INSERT INTO declared_day (operator_id, day, kind) VALUES (91, '2026-08-01', 'weekend')$$, '23514', NULL,
                 'a declared kind is not weekday, weekend or holiday');
SELECT throws_ok($$INSERT INTO promotion (operator_id, name, valid, service_fee, energy_fee, energy_factor)
                  VALUES (91, 'x', '[2026-01-01, 2026-01-02)', 0, 0, 0.5)$$, '23514', NULL, 'one of energy_fee and energy_factor');
SELECT throws_ok($$INSERT INTO promotion (operator_id, name, valid, service_fee, energy_factor)
                  VALUES (91, 'x', '[2026-01-01, 2026-01-02)', 0, 1.5)$$, '23514', NULL, 'energy_factor is at most 1');

-- Quotes across midnight are split at the station's midnight; each part by
-- its day's plan.  2026-07-13 (summer, 2.0) 22:00 to 2026-07-14 (hot
-- day, flat 7.0 before noon) 02:00, 8 kWh evenly: 4 kWh each.
SELECT is((SELECT (energy_fee, service_fee, total, applied)::text FROM quote(91, 'DC', NULL, '2026-07-13 22:00', '2026-07-14 02:00', 8)),
          '(36.00,0.80,36.80,"{""plan: hot day"",""plan: summer""}")', 'a night into a hot day');
SELECT is((SELECT (energy_fee, class_kwh)::text FROM quote(91, 'DC', NULL, '2026-07-14 11:00', '2026-07-14 13:00', 10)),
          '(80.00,"{5,0,5,0}")', 'the hot day''s sharp peak');
-- Friday night into a winter Saturday (deep valley 00:00-06:00).
SELECT is((SELECT (energy_fee, class_kwh, applied)::text FROM quote(91, 'DC', NULL, '2026-12-04 23:00', '2026-12-05 01:00', 2)),
          '(1.20,"{0,0,1,0,1}","{""plan: every day"",""plan: winter weekend""}")', 'into a winter weekend night: a fifth figure');
-- Three days, three plans, one quote (Friday, Saturday, Sunday of May).
SELECT is((SELECT array_length(applied, 1) FROM quote(91, 'DC', NULL, '2026-05-08 12:00', '2026-05-10 12:00', 48)), 2,
          'weekday then a weekend: two plans');
SELECT is((SELECT energy_fee FROM quote(91, 'DC', NULL, '2026-05-08 12:00', '2026-05-10 12:00', 48)), 12 * 4.0 + 36 * 5.0,
          '12 kWh of weekday and 36 of weekend');
-- The same plan over midnight: no cut, so the figures are exactly the
-- single-span ones.
SELECT is((SELECT (q.class_kwh, q.energy_fee)::text FROM quote(91, 'AC', NULL, '2026-07-13 23:00', '2026-07-14 01:00', 2) q),
          (SELECT (p.class_kwh, p.energy_fee)::text FROM price('00:00-24:00 flat | flat 0.5+0.1', '{0,0,2000,0}') p),
          'one plan over midnight prices as price() does');

-- Free charging before 12:00 on a day: electricity and service waived for
-- the morning part only; a half-price electricity promotion scales.
INSERT INTO promotion (operator_id, name, valid, service_fee, energy_fee)
VALUES (91, 'free morning', '[2026-04-01 00:00+08, 2026-04-01 12:00+08)', 0, 0);
INSERT INTO promotion (operator_id, name, valid, service_factor, energy_factor)
VALUES (91, 'half electricity', '[2026-04-02 00:00+08, 2026-04-03 00:00+08)', 1, 0.5);
INSERT INTO promotion_station SELECT promotion_id, 91 FROM promotion WHERE operator_id = 91;
SELECT is((SELECT (energy_fee, service_fee, total)::text FROM quote(91, 'DC', NULL, '2026-04-01 10:00', '2026-04-01 12:00', 10)),
          '(0.00,0.00,0.00)', 'free charging: nothing to pay');
SELECT is((SELECT (energy_fee, service_fee)::text FROM quote(91, 'DC', NULL, '2026-04-01 11:00', '2026-04-01 13:00', 10)),
          '(20.00,0.50)', 'only the morning part is free');
SELECT is((SELECT (energy_fee, service_fee, applied)::text FROM quote(91, 'DC', NULL, '2026-04-02 10:00', '2026-04-02 11:00', 10)),
          '(20.00,1.00,"{""plan: spring weekday"",""promotion: half electricity""}")', 'half-price electricity, service fee as due');
SELECT is((SELECT rate FROM energy_rate(91, NULL, '2026-04-01 11:00', 4.0)), 0::numeric, 'energy_rate: free');
SELECT is((SELECT rate FROM energy_rate(91, NULL, '2026-04-02 11:00', 4.0)), 2.0, 'energy_rate: half');
SELECT is((SELECT rate FROM energy_rate(91, NULL, '2026-04-03 11:00', 4.0)), 4.0, 'energy_rate: the plan''s otherwise');
SELECT is((SELECT (rate, applied)::text FROM service_rate(91, NULL, '2026-04-02 11:00', 0.1)), '(0.1,{})',
          'a promotion with service_factor 1 leaves the service fee, and is not named for it');

-- The pipeline: a pile of station 91 charging across midnight into the
-- declared hot day.  The heartbeat trigger's plan is plan_in_force's: the
-- running amount is at the hot day's prices once the batch is on it.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES ('44200000910000200001', 91, 1, 60000, 'DC-3');
DO $$ BEGIN PERFORM evcharge.maintain_partitions('2026-07-13 12:00+08'); PERFORM evcharge.maintain_partitions('2026-07-14 12:00+08'); END $$;
SELECT start_session('44200000910000200001001', NULL, 'qr') AS order_no \gset
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000910000200001001', '2026-07-13 23:00+08'::timestamptz + i * interval '15 min', 'charging', 500000 + i * 1000, 4000, :'order_no'
FROM generate_series(0, 3) i;
SELECT is((SELECT running_total FROM charge_session WHERE order_no = :'order_no'), 3 * (2.0 + 0.1),
          'before midnight the live amount is at the summer plan');
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000910000200001001', '2026-07-14 00:00+08'::timestamptz + i * interval '15 min', 'charging', 504000 + i * 1000, 4000, :'order_no'
FROM generate_series(0, 4) i;
SELECT is((SELECT running_total FROM charge_session WHERE order_no = :'order_no'), 8 * (7.0 + 0.1),
          'after midnight the live amount is at the hot day''s plan (the plan in force at the batch, for the balance guard)');
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000910000200001001', '2026-07-14 01:01+08', 'idle', 508000, NULL);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES (:'order_no', '44200000910000200001001', '2026-07-13 23:00+08', '2026-07-14 01:00+08', 8000);
SELECT is((SELECT (energy_wh, wh_by_class, energy_fee, service_fee, total)::text FROM bill WHERE order_no = :'order_no'),
          '(8000,"{0,0,8000,0}",36.00,0.80,36.80)', 'the bill: 4 kWh at 2.0 before midnight, 4 kWh at 7.0 after');
SELECT is((SELECT applied FROM bill WHERE order_no = :'order_no'), ARRAY['plan: hot day', 'plan: summer'],
          'the bill names both plans');
SELECT is((SELECT array_agg(DISTINCT e.tariff_class ORDER BY e.tariff_class) FROM session_evidence(:'order_no') e),
          ARRAY['flat'], 'the evidence reads each heartbeat''s class from plan_in_force');
SELECT is(ARRAY(SELECT m[1] FROM regexp_matches(session_chart(:'order_no'), '>((?:sharp|peak|flat|valley|deep_valley) [0-9.]+ \+ [0-9.]+)<', 'g') m),
          ARRAY['flat 2.0000 + 0.1000', 'flat 7.0000 + 0.1000'],
          'the chart''s legend has the two plans in force that night (summer, hot day), not every plan valid then');

-- One batch across midnight: two guns of one pile, one heard at 23:59 on
-- the summer day, the other at 00:00:30 on the hot day.  The run spans
-- midnight, so each gun is asked about on its own: each has its own day's
-- plan.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES ('44200000910000200002', 91, 2, 60000, 'DC-3');
SELECT start_session('44200000910000200002001', NULL, 'qr') AS order_g1 \gset
SELECT start_session('44200000910000200002002', NULL, 'qr') AS order_g2 \gset
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no) VALUES
	('44200000910000200002001', '2026-07-13 23:59:00+08', 'charging', 10000, 4000, :'order_g1'),
	('44200000910000200002001', '2026-07-14 00:01:00+08', 'charging', 11000, 4000, :'order_g1'),
	('44200000910000200002002', '2026-07-14 00:00:30+08', 'charging', 20000, 4000, :'order_g2'),
	('44200000910000200002002', '2026-07-14 00:02:30+08', 'charging', 21000, 4000, :'order_g2');
SELECT is((SELECT running_total FROM charge_session WHERE order_no = :'order_g1'), 2.10, 'gun 1 of the batch: the summer plan of its first row');
SELECT is((SELECT running_total FROM charge_session WHERE order_no = :'order_g2'), 7.10, 'gun 2 of the same batch: the hot day''s plan');

-- Deep valley through the pipeline: a winter Saturday night.
DO $$ BEGIN PERFORM evcharge.maintain_partitions('2026-02-07 12:00+08'); END $$;
SELECT start_session('44200000910000200001001', NULL, 'qr') AS order_no2 \gset
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000910000200001001', '2026-02-07 05:30+08'::timestamptz + i * interval '15 min', 'charging', 600000 + i * 1000, 4000, :'order_no2'
FROM generate_series(0, 4) i;
SELECT is((SELECT wh_by_class FROM charge_session WHERE order_no = :'order_no2'), '{0,0,2000,0,2000}'::bigint[],
          'the live Wh per class has a fifth figure for deep valley');
SELECT is((SELECT running_total FROM charge_session WHERE order_no = :'order_no2'), 2 * 3.1 + 2 * 0.3, 'and the live amount prices it');
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000910000200001001', '2026-02-07 06:31+08', 'idle', 604000, NULL);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES (:'order_no2', '44200000910000200001001', '2026-02-07 05:30+08', '2026-02-07 06:30+08', 4000);
SELECT is((SELECT (wh_by_class, energy_fee, service_fee, total)::text FROM bill WHERE order_no = :'order_no2'),
          '("{0,0,2000,0,2000}",6.40,0.40,6.80)', 'the bill keeps deep valley''s Wh and prices them');
SELECT ok(session_chart(:'order_no2') ~ '<rect class="band-deep_valley" x=' AND session_chart(:'order_no2') ~ '\.band-deep_valley \{ fill: #[0-9a-f]{6}; \}'
          AND session_chart(:'order_no2') ~ '>deep_valley 0\.2000 \+ 0\.1000<',
          'the chart paints deep valley in its own colour and lists its price');

SELECT * FROM finish();
ROLLBACK;
