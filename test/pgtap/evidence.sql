-- pgTAP: the evidence functions: catalogue entries, and over many generated
-- charges with the field's defects, that the curve ends where the bill's
-- samples end and that every chart is a well-formed document.
BEGIN;
SELECT plan(8);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';

SELECT has_function('evcharge', 'session_evidence', ARRAY['text'], 'session_evidence(text) exists');
SELECT has_function('evcharge', 'session_chart', ARRAY['text'], 'session_chart(text) exists');
SELECT function_returns('evcharge', 'session_chart', ARRAY['text'], 'text', 'session_chart returns text');
SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace AND p.proname IN ('session_evidence', 'session_chart')
	   AND NOT (p.provolatile = 's' AND p.proisstrict AND p.proparallel = 's'
	            AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))),
	NULL, 'the evidence functions only read: STABLE STRICT PARALLEL SAFE with a fixed search_path');
SELECT ok((SELECT p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's' FROM pg_proc p
           WHERE p.oid = 'evcharge.xml_escape(text)'::regprocedure),
          'xml_escape is IMMUTABLE STRICT PARALLEL SAFE');

-- 40 charges on 40 guns, each with a random length, some lines sent twice,
-- a random silence with a 0 reading after it, and a jump in one of four.
INSERT INTO operator VALUES (91, 'tap');
INSERT INTO station (station_id, operator_id, name) VALUES (91, 91, 'tap & <test>');
INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES
	(91, 'AC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-24:00 flat | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55',
	 '[2026-01-01,)');
INSERT INTO pile VALUES ('44200000910000100001', 91, 40, 7000, NULL);
CREATE TEMP TABLE gen AS
SELECT g, gun_id('44200000910000100001', g) AS gun, 'TAP' || g AS order_no,
       '2026-11-20 06:00+08'::timestamptz + (random() * interval '12 hours') AS t0,
       20 + floor(random() * 200)::int AS n, floor(random() * 20)::int AS silent_from,
       g % 4 = 0 AS jumps
FROM generate_series(1, 40) g;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT gen.gun, gen.t0 + i * interval '15 s', 'charging',
       CASE WHEN i = gen.silent_from + 12 THEN 0
            ELSE 100000 * gen.g + i * 29 + CASE WHEN gen.jumps AND i >= gen.n / 2 THEN 40000 ELSE 0 END END,
       6960, gen.order_no
FROM gen, generate_series(0, gen.n) i, generate_series(1, 1 + (random() < 0.1)::int) copies
WHERE i NOT BETWEEN gen.silent_from + 1 AND gen.silent_from + 11;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w)
SELECT gen.gun, gen.t0 + (gen.n + 1) * interval '15 s', 'idle', 100000 * gen.g + gen.n * 29, 0 FROM gen;

SELECT is((SELECT count(*)::int FROM gen
           WHERE (SELECT e.energy_wh FROM session_evidence(gen.order_no) e ORDER BY e.ts DESC LIMIT 1)
                 IS DISTINCT FROM (SELECT s.meter_wh[array_length(s.meter_wh, 1)] FROM session_samples(gen.order_no) s)),
          0, 'every curve ends at the energy the bill''s samples measure');
SELECT is((SELECT count(*)::int FROM gen
           WHERE (SELECT coalesce(sum(substring(e.note FROM 'meter jump of ([0-9]+) Wh')::bigint), 0)
                  FROM session_evidence(gen.order_no) e) <> (session_samples(gen.order_no)).jump_wh),
          0, 'the jumps marked add up to what the bill kept out');
SELECT is((SELECT count(*)::int FROM gen WHERE NOT xml_is_well_formed_document(session_chart(gen.order_no))),
          0, 'every chart is a well-formed XML document');

SELECT * FROM finish();
ROLLBACK;
