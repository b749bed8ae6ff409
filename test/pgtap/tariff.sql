-- pgTAP: the tariff type and the billing engine: catalogue entries, and
-- properties checked over many generated plans and sessions.
BEGIN;
SELECT plan(25);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';

SELECT has_type('evcharge', 'tou_tariff', 'type tou_tariff exists');
SELECT has_type('evcharge', 'charge_amount', 'type charge_amount exists');
SELECT has_type('evcharge', 'charge_quote', 'type charge_quote exists');
SELECT has_function('evcharge', 'split_energy', ARRAY['evcharge.tou_tariff', 'timestamp with time zone[]', 'bigint[]', 'text'], 'split_energy exists');
SELECT has_function('evcharge', 'price', ARRAY['evcharge.tou_tariff', 'bigint[]'], 'price exists');
SELECT has_function('evcharge', 'quote', ARRAY['bigint', 'text', 'bigint', 'timestamp with time zone', 'timestamp with time zone', 'numeric', 'timestamp with time zone', 'bigint'], 'quote exists');
SELECT has_cast('tou_tariff', 'jsonb', 'tou_tariff -> jsonb');

SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.proname IN ('split_energy', 'split_energy_by_span', 'price', 'class_at', 'tariff_segments',
	                     'tariff_prices', 'to_jsonb', 'tou_tariff', 'tou_tariff_in', 'tou_tariff_out')
	   AND NOT (p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's')),
	NULL, 'the engines are IMMUTABLE STRICT PARALLEL SAFE');
SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.proname IN ('quote', 'price_session', 'service_rate')
	   AND NOT (p.provolatile = 's' AND p.proparallel = 's'
	            AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))),
	NULL, 'quote and its helpers read tables: STABLE PARALLEL SAFE with a fixed search_path');
SELECT col_is_pk('evcharge', 'station', 'station_id', 'station has a primary key');
SELECT ok(EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'station_tariff_no_overlap' AND contype = 'x'),
          'station_tariff has the exclusion constraint');

-- Random valid plans: 1-12 segments cut at random minutes, random classes
-- and prices; every one reads back as itself through text, binary-like
-- jsonb round trip, and its segments cover the day exactly once.
CREATE TEMP TABLE gen_plan AS
WITH cuts AS (
	SELECT p, array_agg(DISTINCT c ORDER BY c) AS c
	FROM generate_series(1, 300) p, LATERAL (SELECT (1 + floor(random() * 1439))::int AS c
	                                         FROM generate_series(1, 1 + p % 12) WHERE p > 0) x
	GROUP BY p)
SELECT p, (string_agg(format('%s-%s %s',
                             to_char(make_interval(mins => s), 'HH24:MI'),
                             CASE WHEN e = 1440 THEN '24:00' ELSE to_char(make_interval(mins => e), 'HH24:MI') END,
                             (ARRAY['sharp', 'peak', 'flat', 'valley'])[1 + floor(random() * 4)::int]), ', ')
           || ' | sharp 1.2345+0.6, peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.0055') AS txt
FROM cuts, LATERAL (SELECT s, e FROM unnest(ARRAY[0] || c, c || ARRAY[1440]) AS u(s, e)) seg
GROUP BY p;

SELECT is((SELECT count(*)::int FROM gen_plan WHERE txt::tou_tariff IS NULL), 0, '300 random plans are all valid');
SELECT is((SELECT count(*)::int FROM gen_plan WHERE txt::tou_tariff::text::tou_tariff <> txt::tou_tariff), 0,
          'text output reads back as the same plan');
SELECT is((SELECT count(*)::int FROM gen_plan WHERE tou_tariff(to_jsonb(txt::tou_tariff)) <> txt::tou_tariff), 0,
          'jsonb output reads back as the same plan');
SELECT is((SELECT count(*)::int FROM gen_plan g
           WHERE (SELECT sum(extract(epoch FROM ends - starts)) FROM tariff_segments(g.txt::tou_tariff)) <> 86400), 0,
          'the segments of every plan add up to one day');
SELECT is((SELECT count(*)::int FROM gen_plan g, generate_series(0, 1439, 7) m
           WHERE class_at(g.txt::tou_tariff, make_time(m / 60, m % 60, 0)) <>
                 (SELECT class FROM tariff_segments(g.txt::tou_tariff)
                  WHERE make_time(m / 60, m % 60, 0) >= starts AND make_time(m / 60, m % 60, 0) < ends)), 0,
          'class_at agrees with tariff_segments at every 7th minute');

-- Random sessions: 2-120 samples, 15-900 s apart, meter rising with noise,
-- glitches and repeats, starting at any time of any day.
CREATE TEMP TABLE gen_session AS
SELECT s, (SELECT txt FROM gen_plan WHERE p = 1 + s % 300)::tou_tariff AS plan,
       array_agg(ts ORDER BY i) AS ts, array_agg(wh ORDER BY i) AS wh
FROM generate_series(1, 400) s,
     LATERAL (SELECT i, '2026-11-01'::timestamptz + (s * 7919 % 43200) * interval '1 minute'
                        + sum(15 + floor(random() * 885)::int) OVER (ORDER BY i) * interval '1 s' AS ts,
                     CASE WHEN random() < 0.03 THEN 0
                          ELSE 100000 + sum(floor(random() * 400)::int) OVER (ORDER BY i) END AS wh
              FROM generate_series(1, 2 + s % 119) i) x
GROUP BY s;

CREATE TEMP TABLE gen_split AS
SELECT s, plan, ts, wh, split_energy(plan, ts, wh) AS w,
       (SELECT max(x) FROM unnest(wh) x) - (SELECT x FROM unnest(ts, wh) u(t, x) WHERE x >= 0 ORDER BY t LIMIT 1) AS rise
FROM gen_session;

SELECT is((SELECT count(*)::int FROM gen_split WHERE (SELECT sum(x) FROM unnest(w) x) <> greatest(rise, 0)), 0,
          'the Wh per class add up to the rise of the meter above its first reading (glitches to 0 add nothing)');
SELECT is((SELECT count(*)::int FROM gen_split WHERE EXISTS (SELECT 1 FROM unnest(w) x WHERE x < 0)), 0,
          'no class gets negative energy');
SELECT is((SELECT count(*)::int FROM gen_split
           WHERE split_energy(plan, ARRAY(SELECT t FROM unnest(ts, wh) u(t, x) ORDER BY md5(t::text)),
                                    ARRAY(SELECT x FROM unnest(ts, wh) u(t, x) ORDER BY md5(t::text))) <> w), 0,
          'the order samples arrive in does not matter');
SELECT is((SELECT count(*)::int FROM gen_split WHERE split_energy(plan, ts || ts, wh || wh) <> w), 0,
          'every sample delivered twice changes nothing');
SELECT is((SELECT count(*)::int FROM gen_split
           WHERE split_energy_by_span(ARRAY[plan, plan], ARRAY[ts[1], ts[array_length(ts, 1)]], ts, wh)::bigint[] IS NULL
              OR (SELECT array_agg(a + b) FROM unnest(
                     (split_energy_by_span(ARRAY[plan, plan], ARRAY[ts[1], ts[1] + (ts[array_length(ts, 1)] - ts[1]) / 2], ts, wh))[1:1][1:4],
                     (split_energy_by_span(ARRAY[plan, plan], ARRAY[ts[1], ts[1] + (ts[array_length(ts, 1)] - ts[1]) / 2], ts, wh))[2:2][1:4]) AS u(a, b))
                 <> w), 0,
          'cutting a session in two with the same plan on both sides gives the same Wh per class');

-- price(): each figure is the exact sum truncated to the fen.
SELECT is((SELECT count(*)::int FROM gen_split g, LATERAL price(g.plan, g.w) pr
           WHERE pr.energy_fee <> trunc((SELECT sum(x) FROM unnest(pr.class_energy_fee) x), 2)
              OR pr.service_fee <> trunc((SELECT sum(x) FROM unnest(pr.class_service_fee) x), 2)
              OR pr.total <> pr.energy_fee + pr.service_fee), 0,
          'energy and service fees are the truncated exact sums; total is their sum');
SELECT is((SELECT count(*)::int FROM gen_split g, LATERAL price(g.plan, g.w) pr,
                  LATERAL (SELECT sum(w.x * tp.energy_price / 1000) AS e FROM unnest(g.w) WITH ORDINALITY w(x, c)
                           JOIN tariff_prices(g.plan) tp ON tp.class = (ARRAY['sharp', 'peak', 'flat', 'valley'])[w.c]) chk
           WHERE pr.energy_fee <> trunc(coalesce(chk.e, 0), 2)), 0,
          'the electricity fee equals a numeric recomputation from tariff_prices');

-- Random text never crashes the input function: either a plan or 22P02/22023.
CREATE TEMP TABLE fuzz_plan (sqlstate text);
DO $$
DECLARE i int; s text; st text;
BEGIN
	FOR i IN 1 .. 5000 LOOP
		SELECT string_agg(substr('0123456789:-, |+.peakflatvalleysharpp0p3尖峰' || E'\t', 1 + floor(random() * 46)::int, 1), '')
		INTO s FROM generate_series(1, 1 + i % 80);
		IF i % 3 = 0 THEN
			s := overlay('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7+0.45, valley 0.3+0.45' PLACING s
			             FROM 1 + i % 60 FOR i % 7);
		END IF;
		BEGIN
			PERFORM s::evcharge.tou_tariff;
			INSERT INTO fuzz_plan VALUES ('00000');
		EXCEPTION WHEN others THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
			INSERT INTO fuzz_plan VALUES (st);
		END;
	END LOOP;
END $$;
SELECT is((SELECT count(*)::int FROM fuzz_plan), 5000, '5000 random plans tried');
SELECT is((SELECT array_agg(DISTINCT sqlstate ORDER BY sqlstate) FROM fuzz_plan WHERE sqlstate NOT IN ('00000', '22P02', '22023')),
          NULL, 'random text gives a plan or 22P02/22023, nothing else');

SELECT * FROM finish();
ROLLBACK;
