-- pgTAP: each bill's own breakdown (bill.breakdown, bill_breakdown) over
-- many generated bills, in every class, with group prices and repairs; and
-- partners' own order numbers over many starts.
BEGIN;
SELECT plan(28);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';
SELECT setseed(0.16);

-- The catalogue.
SELECT function_returns('evcharge', 'bill_breakdown', ARRAY['bigint[]', 'numeric[]', 'numeric[]'], 'jsonb',
                        'bill_breakdown(bigint[], numeric[], numeric[]) returns jsonb');
SELECT is((SELECT (provolatile, proisstrict, proparallel)::text FROM pg_proc
           WHERE oid = 'evcharge.bill_breakdown(bigint[], numeric[], numeric[])'::regprocedure),
          '(i,t,s)', 'bill_breakdown is IMMUTABLE STRICT PARALLEL SAFE');
SELECT col_type_is('evcharge', 'bill', 'breakdown', 'jsonb', 'bill.breakdown is jsonb');
SELECT col_type_is('evcharge', 'bill', 'partner_order_no', 'text', 'bill.partner_order_no is text');
SELECT has_function('evcharge', 'start_session', ARRAY['evcharge.gun_id', 'bigint', 'text', 'bigint', 'text'],
                    'start_session takes the partner''s order number as its fifth argument');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE proname = 'start_session'
             AND pronamespace = 'evcharge'::regnamespace), 2,
          'start_session: partner_id and partner_order_no have defaults (calls with three or four arguments work)');
SELECT is((SELECT indisunique FROM pg_index WHERE indexrelid = 'evcharge.charge_session_partner_order_idx'::regclass),
          true, 'a partner''s order number names one session of that partner (unique index)');

-- A station of four classes at odd prices, a group that pays 90 % of the
-- service fee, and 160 charges at the pile over a day: random starts,
-- lengths and rises; a third by the group's members' cards; some pile
-- records a little above the measured energy (scaled in proportion).
INSERT INTO operator VALUES (96, 'tap breakdown');
INSERT INTO station (station_id, operator_id, name) VALUES (96, 96, 'tap breakdown');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES (96, 'AC',
	'00:00-08:00 valley, 08:00-10:00 flat, 10:00-12:00 peak, 12:00-14:00 sharp, 14:00-18:00 peak, 18:00-24:00 flat | sharp 1.2345+0.6789, peak 1.0321+0.5987, flat 0.6543+0.5111, valley 0.3217+0.4999',
	'[2026-01-01,)', 'tap plan');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES ('44200000960000100001', 96, 200, 22000, 'AC-1');
CREATE TEMP TABLE parts AS SELECT * FROM maintain_partitions('2026-11-20 12:00+08');
INSERT INTO customer_group (group_id, operator_id, name, service_factor) VALUES (96, 96, 'tap fleet', 0.9);
INSERT INTO group_station VALUES (96, 96);
INSERT INTO member (member_id, operator_id, group_id, card_no)
SELECT 96000 + n, 96, 96, lpad((96000 + n)::text, 16, '0') FROM generate_series(1, 160) n;
CREATE TEMP TABLE plan_of (g int PRIMARY KEY, t0 timestamptz, steps int, grp boolean, extra numeric);
INSERT INTO plan_of
SELECT g, '2026-11-20 00:00+08'::timestamptz + (floor(random() * 270) * 5) * interval '1 min',
       6 + floor(random() * 30)::int, random() < 0.34, CASE WHEN random() < 0.3 THEN 1 + random() * 0.015 ELSE 1 END
FROM generate_series(1, 160) g;
CREATE TEMP TABLE rises AS
SELECT p.g, i, p.t0 + i * interval '5 min' AS ts,
       sum(CASE WHEN i = 0 THEN 0 ELSE floor(random() * 1500)::bigint END) OVER (PARTITION BY p.g ORDER BY i) AS wh
FROM plan_of p, generate_series(0, p.steps) i;
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT gun_id('44200000960000100001', r.g), r.ts, 'charging'::gun_status, 5000000 + r.wh, 'TAP-BD-' || r.g FROM rises r
UNION ALL
SELECT gun_id('44200000960000100001', r.g), r.ts + interval '5 min', 'idle'::gun_status, 5000000 + r.wh, NULL
FROM rises r JOIN plan_of p ON p.g = r.g AND r.i = p.steps;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by, card_no)
SELECT 'TAP-BD-' || p.g, gun_id('44200000960000100001', p.g), p.t0, r.ts, floor(r.wh * p.extra)::bigint,
       CASE WHEN p.grp THEN 'card' END, CASE WHEN p.grp THEN lpad((96000 + p.g)::text, 16, '0') END
FROM plan_of p JOIN rises r ON r.g = p.g AND r.i = p.steps;
CREATE TEMP VIEW bd AS
SELECT b.order_no, b.wh_by_class, b.energy_fee, b.service_fee, b.energy_wh, b.breakdown, b.applied,
       x.ord, x.class, x.wh, x.energy_fee_exact AS ee, x.energy_fee AS ec, x.service_fee_exact AS se, x.service_fee AS sc
FROM bill b JOIN station s USING (station_id)
CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(b.breakdown)
	AS (class text, wh bigint, energy_fee_exact numeric, energy_fee numeric, service_fee_exact numeric, service_fee numeric))
	WITH ORDINALITY AS x(class, wh, energy_fee_exact, energy_fee, service_fee_exact, service_fee, ord)
WHERE s.operator_id = 96;

SELECT is((SELECT count(*)::int FROM bill WHERE order_no LIKE 'TAP-BD-%' AND breakdown IS NOT NULL), 160,
          '160 bills, each with its breakdown');
SELECT cmp_ok((SELECT count(DISTINCT class)::int FROM bd), '=', 4, 'the bills have energy in all four classes');
SELECT cmp_ok((SELECT count(*)::int FROM bill WHERE order_no LIKE 'TAP-BD-%' AND 'group: tap fleet' = ANY (applied)),
              '>', 30, 'more than 30 of them at the group''s price');
SELECT is((SELECT count(*)::int FROM bill b, unnest(b.wh_by_class, ARRAY['sharp', 'peak', 'flat', 'valley']) u(w, c)
           WHERE b.order_no LIKE 'TAP-BD-%'
             AND (u.w > 0) <> EXISTS (SELECT 1 FROM jsonb_array_elements(b.breakdown) x
                                     WHERE x->>'class' = u.c AND (x->>'wh')::bigint = u.w)), 0,
          'a bill''s breakdown has exactly its classes with energy, each with the Wh of wh_by_class');
SELECT is((SELECT count(*)::int FROM bd a JOIN bd z ON z.order_no = a.order_no AND z.ord = a.ord + 1
           WHERE array_position(ARRAY['sharp', 'peak', 'flat', 'valley'], z.class)
                 <= array_position(ARRAY['sharp', 'peak', 'flat', 'valley'], a.class)), 0,
          'classes in the order sharp, peak, flat, valley');
SELECT is((SELECT count(*)::int FROM (SELECT order_no, energy_fee, service_fee, energy_wh,
                                             sum(ec) AS e, sum(sc) AS s, sum(wh) AS w FROM bd
                                      GROUP BY 1, 2, 3, 4) t
           WHERE t.e <> t.energy_fee OR t.s <> t.service_fee OR t.w <> t.energy_wh), 0,
          'the charged shares add up to the bill''s electricity and service fees, the Wh to its energy');
SELECT is((SELECT count(*)::int FROM (SELECT order_no, energy_fee, service_fee, sum(ee) AS e, sum(se) AS s FROM bd
                                      GROUP BY 1, 2, 3) t
           WHERE trunc(t.e, 2) <> t.energy_fee OR trunc(t.s, 2) <> t.service_fee), 0,
          'the bill''s fees are the exact sums cut to the fen once');
SELECT is((SELECT count(*)::int FROM bd WHERE ec NOT IN (trunc(ee, 2), trunc(ee, 2) + 0.01)
                                         OR sc NOT IN (trunc(se, 2), trunc(se, 2) + 0.01)), 0,
          'each share is its exact fee cut to the fen, or a fen more');
SELECT is((SELECT count(*)::int FROM bd a JOIN bd z ON z.order_no = a.order_no
           WHERE (a.ec > trunc(a.ee, 2) AND z.ec = trunc(z.ee, 2) AND (z.ee - trunc(z.ee, 2)) > (a.ee - trunc(a.ee, 2)))
              OR (a.sc > trunc(a.se, 2) AND z.sc = trunc(z.se, 2) AND (z.se - trunc(z.se, 2)) > (a.se - trunc(a.se, 2)))), 0,
          'the fens the single cut kept go to the classes whose own cut lost most');
SELECT cmp_ok((SELECT count(*)::int FROM bd WHERE sc > trunc(se, 2)), '>', 20,
              'many service fees needed a fen moved (the test reaches that branch)');
SELECT is((SELECT count(*)::int FROM bill b JOIN station_tariff t ON t.station_id = 96
           CROSS JOIN LATERAL price(t.tariff, b.wh_by_class) p
           WHERE b.order_no LIKE 'TAP-BD-%'
             AND (b.breakdown IS DISTINCT FROM bill_breakdown(b.wh_by_class, p.class_energy_fee,
                      CASE WHEN 'group: tap fleet' = ANY (b.applied)
                           THEN ARRAY(SELECT x * 0.9 FROM unnest(p.class_service_fee) x) ELSE p.class_service_fee END))), 0,
          'the exact fees are price()''s for the bill''s Wh per class (service at 90 % for the group)');

-- Repairs: each revision keeps the breakdown of the bill before and after.
CREATE TEMP TABLE before_repair AS SELECT order_no, breakdown FROM bill WHERE order_no LIKE 'TAP-BD-%' AND energy_wh > 2000;
SELECT is((SELECT count(*)::int FROM before_repair b,
           LATERAL repair_bill(b.order_no, 'tap: agreed by hand', 'manual',
                               (SELECT energy_wh - 1000 FROM bill WHERE order_no = b.order_no)) r), (SELECT count(*)::int FROM before_repair),
          'the bills above 2 kWh repaired by hand with 1 kWh less');
SELECT is((SELECT count(*)::int FROM before_repair o JOIN bill b USING (order_no)
           JOIN bill_revision r ON r.order_no = b.order_no AND r.revision = b.revision
           WHERE r.before->'breakdown' IS DISTINCT FROM o.breakdown OR r.after->'breakdown' IS DISTINCT FROM b.breakdown
              OR b.breakdown = o.breakdown), 0,
          'each revision has the breakdown before and after, and the repair changed it');
SELECT is((SELECT count(*)::int FROM bill b WHERE b.order_no IN (SELECT order_no FROM before_repair)
             AND (SELECT sum((x->>'energy_fee')::numeric) + sum((x->>'service_fee')::numeric)
                  FROM jsonb_array_elements(b.breakdown) x) + b.occupancy_fee - b.discount <> b.total), 0,
          'after the repair the breakdown still adds up to the total');

-- bill_breakdown on 2000 random arrays of Wh and exact fees (up to 8
-- decimals), as price() gives them.
CREATE TEMP TABLE cases AS
SELECT n, ARRAY(SELECT CASE WHEN random() < 0.3 THEN 0 ELSE floor(random() * 90000)::bigint END
                FROM generate_series(1, 4) k WHERE n > 0) AS wh
FROM generate_series(1, 2000) n;
CREATE TEMP TABLE random_bd AS
SELECT c.n, c.wh, e, s, bill_breakdown(c.wh, e, s) AS bd
FROM cases c,
     LATERAL (SELECT ARRAY(SELECT round(w * (random() * 2)::numeric(10, 4) / 1000, 8) FROM unnest(c.wh) w) AS e,
                     ARRAY(SELECT round(w * (random() * 1)::numeric(10, 4) / 1000, 8) FROM unnest(c.wh) w) AS s) f;
SELECT is((SELECT count(*)::int FROM random_bd r
           WHERE coalesce((SELECT sum((x->>'energy_fee')::numeric) FROM jsonb_array_elements(r.bd) x), 0)
                 <> trunc((SELECT sum(v) FROM unnest(r.e) v), 2)
              OR coalesce((SELECT sum((x->>'service_fee')::numeric) FROM jsonb_array_elements(r.bd) x), 0)
                 <> trunc((SELECT sum(v) FROM unnest(r.s) v), 2)), 0,
          '2000 random cases: the shares add up to each exact sum cut to the fen');
SELECT is((SELECT count(*)::int FROM random_bd r, jsonb_array_elements(r.bd) x
           WHERE (x->>'energy_fee')::numeric NOT IN (trunc((x->>'energy_fee_exact')::numeric, 2), trunc((x->>'energy_fee_exact')::numeric, 2) + 0.01)
              OR (x->>'service_fee')::numeric NOT IN (trunc((x->>'service_fee_exact')::numeric, 2), trunc((x->>'service_fee_exact')::numeric, 2) + 0.01)
              OR (x->>'energy_fee')::numeric > (x->>'energy_fee_exact')::numeric + 0.01), 0,
          '2000 random cases: each share within a fen of its exact fee, never below its cut');
SELECT is((SELECT count(*)::int FROM random_bd r
           WHERE jsonb_array_length(r.bd) <> (SELECT count(*) FROM unnest(r.wh) w WHERE w <> 0)), 0,
          '2000 random cases: one object per class with energy, none for a class without');

-- Partners' own order numbers over many starts.
INSERT INTO partner (partner_id, operator_id, name, kind, order_no_digits) VALUES (96, 96, 'tap Didi', 'affiliated', 27);
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES ('44200000960000100002', 96, 400, 7000, 'AC-1');
CREATE TEMP TABLE didi AS
SELECT n, '9' || lpad((n * 7919)::text, 26, '0') AS pno,
       start_session(gun_id('44200000960000100002', n), NULL, 'partner', 96, '9' || lpad((n * 7919)::text, 26, '0')) AS order_no
FROM generate_series(1, 300) n;
SELECT is((SELECT count(*)::int FROM didi d JOIN charge_session cs USING (order_no)
           WHERE cs.partner_id = 96 AND cs.partner_order_no = d.pno), 300,
          '300 Didi starts, each session with its 27-digit number');
SELECT throws_ok($$SELECT start_session(gun_id('44200000960000100002', 301), NULL, 'partner', 96,
                                       '9' || lpad((7919)::text, 26, '0'))$$,
                 '23505', NULL, 'a number Didi used already is refused (23505)');
SELECT throws_ok($$SELECT start_session(gun_id('44200000960000100002', 301), NULL, 'partner', 96, '12345')$$,
                 '22023', NULL, 'a number not of 27 digits is refused (22023)');
SELECT throws_ok($$INSERT INTO charge_session (order_no, gun, station_id, channel, partner_order_no)
                   VALUES ('TAP-NO-PARTNER', gun_id('44200000960000100002', 302), 96, 'app', 'X1')$$,
                 '23514', NULL, 'a session without a partner cannot hold a partner order number (CHECK)');

SELECT * FROM finish();
ROLLBACK;
