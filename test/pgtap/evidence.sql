-- pgTAP: the evidence functions: catalogue entries, and over many generated
-- charges with the field's defects, that the curve ends where the bill's
-- samples end, that every chart (support's and the driver's) is a
-- well-formed document, and that no label box of any of them crosses the
-- energy curve, the pile's claim or another label, or leaves the plot.
BEGIN;
SELECT plan(15);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';

SELECT has_function('evcharge', 'session_evidence', ARRAY['text'], 'session_evidence(text) exists');
SELECT has_function('evcharge', 'session_chart', ARRAY['text'], 'session_chart(text) exists');
SELECT function_returns('evcharge', 'session_chart', ARRAY['text'], 'text', 'session_chart returns text');
SELECT has_function('evcharge', 'driver_chart', ARRAY['text', 'text'], 'driver_chart(text, text) exists');
SELECT has_function('evcharge', 'anomaly_causes', ARRAY['text'], 'anomaly_causes(text) exists');
SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace AND p.proname IN ('session_evidence', 'session_chart', 'driver_chart', 'anomaly_causes')
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

-- The label boxes of a chart, read back from the document (not from the
-- code that placed them), and what is wrong with them: two overlapping, one
-- outside the plot and the strip of the moments above it (40 px), one
-- crossing a segment of the energy curve or the pile's claim (1 px of
-- stroke around the box).
CREATE FUNCTION pg_temp.label_problems(svg text) RETURNS bigint LANGUAGE sql AS $$
	WITH boxes AS (
		SELECT row_number() OVER () AS n, m[1]::float8 - 1 AS x0, m[2]::float8 - 1 AS y0,
		       m[1]::float8 + m[3]::float8 + 1 AS x1, m[2]::float8 + m[4]::float8 + 1 AS y1
		FROM regexp_matches(svg, '<rect class="label-box" x="([0-9.-]+)" y="([0-9.-]+)" width="([0-9.]+)" height="([0-9.]+)"/>', 'g') m
	), pts AS (
		SELECT m[1] AS cls, u.k, split_part(u.pt, ',', 1)::float8 AS x, split_part(u.pt, ',', 2)::float8 AS y
		FROM regexp_matches(svg, '<polyline class="(energy|claim)" points="([^"]*)"/>', 'g') m,
		     unnest(string_to_array(m[2], ' ')) WITH ORDINALITY u(pt, k)
	), segs AS (
		SELECT p.x AS ax, p.y AS ay, lead(p.x) OVER w AS bx, lead(p.y) OVER w AS by FROM pts p
		WINDOW w AS (PARTITION BY p.cls ORDER BY p.k)
	), frame AS (
		SELECT m[1]::float8 AS x, m[2]::float8 AS y, m[3]::float8 AS w, m[4]::float8 AS h
		FROM regexp_matches(svg, '<rect class="frame" x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" height="([0-9.]+)"/>') m
	)
	SELECT (SELECT count(*) FROM boxes a JOIN boxes b ON a.n < b.n
	        AND a.x0 + 1 < b.x1 - 1 AND b.x0 + 1 < a.x1 - 1 AND a.y0 + 1 < b.y1 - 1 AND b.y0 + 1 < a.y1 - 1)
	     + (SELECT count(*) FROM boxes b, frame f
	        WHERE b.x0 + 1 < f.x OR b.x1 - 1 > f.x + f.w OR b.y1 - 1 > f.y + f.h OR b.y0 + 1 < f.y - 40)
	     + (SELECT count(*) FROM boxes b JOIN segs s ON s.bx IS NOT NULL
	        AND greatest(s.ax, s.bx) >= b.x0 AND least(s.ax, s.bx) <= b.x1
	        AND greatest(s.ay, s.by) >= b.y0 AND least(s.ay, s.by) <= b.y1
	        AND (s.ax = s.bx OR
	             greatest(s.ay + (s.by - s.ay) * (greatest(least(s.ax, s.bx), b.x0) - s.ax) / (s.bx - s.ax),
	                      s.ay + (s.by - s.ay) * (least(greatest(s.ax, s.bx), b.x1) - s.ax) / (s.bx - s.ax)) >= b.y0
	             AND least(s.ay + (s.by - s.ay) * (greatest(least(s.ax, s.bx), b.x0) - s.ax) / (s.bx - s.ax),
	                       s.ay + (s.by - s.ay) * (least(greatest(s.ax, s.bx), b.x1) - s.ax) / (s.bx - s.ax)) <= b.y1))
$$;
-- The check catches what it should: a box put on the curve, a box put on
-- another, a box below the plot.
SELECT is(pg_temp.label_problems(
	'<rect class="frame" x="80" y="100" width="800" height="300"/><polyline class="energy" points="80.0,400.0 880.0,100.0"/>'
	|| '<rect class="label-box" x="470.0" y="240.0" width="20.0" height="17.0"/>'
	|| '<rect class="label-box" x="100.0" y="120.0" width="50.0" height="17.0"/><rect class="label-box" x="120.0" y="125.0" width="50.0" height="17.0"/>'
	|| '<rect class="label-box" x="700.0" y="420.0" width="50.0" height="17.0"/>'), 3::bigint,
	'the label check finds a box on the curve, two boxes overlapping and one below the plot');

-- Pile records for half the charges, some claiming more than was measured:
-- the pile's claim is drawn and labelled too.
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
SELECT gen.order_no, gen.gun, gen.t0, gen.t0 + gen.n * interval '15 s',
       gen.n * 29 + CASE WHEN gen.g % 3 = 0 THEN 300 + gen.g * 20 ELSE 0 END
FROM gen WHERE gen.g % 2 = 0;
SELECT is((SELECT count(*)::int FROM gen
           WHERE (SELECT count(*) FROM regexp_matches(session_chart(gen.order_no), '<rect class="label-box" x="[0-9.-]+" y="[0-9.-]+"', 'g')) >= 2),
          40, 'every support chart has its labels on boxes the check reads (start, end of charging at least)');
SELECT is((SELECT count(*)::int FROM gen WHERE pg_temp.label_problems(session_chart(gen.order_no)) > 0), 0,
          'in no support chart does a label box cross the energy curve, the pile''s claim or another label, or leave the plot');
SELECT is((SELECT count(*)::int FROM gen WHERE pg_temp.label_problems(driver_chart(gen.order_no)) > 0
                                         OR pg_temp.label_problems(driver_chart(gen.order_no, 'en')) > 0), 0,
          'nor in any driver''s chart, in Chinese or English');
SELECT is((SELECT count(*)::int FROM gen WHERE NOT xml_is_well_formed_document(driver_chart(gen.order_no))
                                         OR NOT xml_is_well_formed_document(driver_chart(gen.order_no, 'en'))),
          0, 'every driver''s chart is a well-formed XML document');

SELECT * FROM finish();
ROLLBACK;
