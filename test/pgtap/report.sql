-- pgTAP: the anomaly report's catalogue entries, and its figures over 600
-- sessions with random anomaly sets and revisions (any combination of
-- codes, not only those the pipeline makes; a pile without firmware;
-- stations in two time zones) against a plain count of the same rows.
BEGIN;
SELECT plan(20);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'UTC';

SELECT has_function('evcharge', 'anomaly_report', ARRAY['bigint', 'date', 'date'], 'anomaly_report(bigint, date, date) exists');
SELECT has_function('evcharge', 'anomaly_report_month', ARRAY['bigint', 'date'], 'anomaly_report_month(bigint, date) exists');
SELECT volatility_is('evcharge', 'anomaly_report', ARRAY['bigint', 'date', 'date'], 'stable', 'anomaly_report is STABLE');
SELECT volatility_is('evcharge', 'anomaly_report_month', ARRAY['bigint', 'date'], 'stable', 'anomaly_report_month is STABLE');
SELECT isnt_strict('evcharge', 'anomaly_report', ARRAY['bigint', 'date', 'date'], 'anomaly_report is not STRICT: a NULL is an error, not an empty report');
SELECT isnt_strict('evcharge', 'anomaly_report_month', ARRAY['bigint', 'date'], 'anomaly_report_month is not STRICT');
SELECT is((SELECT array_agg(p.proparallel::text ORDER BY p.proname) FROM pg_proc p
           WHERE p.pronamespace = 'evcharge'::regnamespace AND p.proname IN ('anomaly_report', 'anomaly_report_month')),
          ARRAY['s', 's'], 'both are PARALLEL SAFE');
SELECT is(pg_get_function_result('evcharge.anomaly_report(bigint, date, date)'::regprocedure),
          'TABLE(dimension text, value text, code integer, code_name text, bills bigint, bills_now bigint, sessions bigint, successful bigint, pending bigint, share numeric)',
          'anomaly_report''s columns');
SELECT is(pg_get_function_result('evcharge.anomaly_report_month(bigint, date)'::regprocedure),
          pg_get_function_result('evcharge.anomaly_report(bigint, date, date)'::regprocedure),
          'anomaly_report_month has the same columns');

-- Operator 91: station 91 in Shanghai (UTC+8), 92 in Tokyo (UTC+9);
-- operator 92 beside it.  Piles on firmware A, B and none.
SELECT setseed(0.25);
INSERT INTO operator VALUES (91, 'tap'), (92, 'tap other');
INSERT INTO station (station_id, operator_id, name, tz) VALUES
	(91, 91, 'Shanghai', 'Asia/Shanghai'), (92, 91, 'Tokyo', 'Asia/Tokyo'), (93, 92, 'other', 'Asia/Shanghai');
INSERT INTO partner (partner_id, operator_id, name) VALUES (91, 91, 'P'), (92, 91, 'Q'), (93, 92, 'R');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000910000100001', 91, 999, 7000, 'A'), ('44200000910000100002', 91, 999, 7000, NULL),
	('44200000910000100003', 92, 999, 7000, 'B'), ('44200000920000100001', 93, 999, 7000, 'A');
CREATE TEMP TABLE piles AS SELECT row_number() OVER (ORDER BY pile_id) AS n, pile_id, station_id FROM pile;

-- Sessions ending 1-10 November (UTC): mostly ended, some occupied, some
-- still charging or cancelled (never counted), each on a gun of its own
-- (a gun has one open session at most).  Partners only of the station's
-- operator.
CREATE TEMP TABLE gen AS
SELECT i, gun_id(p.pile_id, 1 + i / 4) AS gun, p.station_id,
       (ARRAY['app', 'qr', 'card', 'partner', 'offline'])[1 + floor(random() * 5)::int] AS channel,
       CASE WHEN random() < 0.3 THEN CASE WHEN p.station_id = 93 THEN 93 ELSE 91 + floor(random() * 2)::int END END AS partner_id,
       (ARRAY['ended', 'ended', 'ended', 'ended', 'ended', 'ended', 'occupied', 'charging', 'cancelled'])[1 + floor(random() * 9)::int] AS state,
       '2026-11-01 00:00+00'::timestamptz + random() * interval '10 days' AS ended_at,
       random() < 0.85 AS billed,
       floor(random() * 3)::int AS revisions
FROM generate_series(1, 600) i
JOIN piles p ON p.n = 1 + i % 4;
INSERT INTO charge_session (order_no, gun, station_id, partner_id, channel, state, started_at, charging_ended_at, last_ts)
SELECT 'T' || i, gun, station_id, partner_id, channel, state, ended_at - interval '1 hour',
       CASE WHEN state IN ('ended', 'occupied') THEN ended_at END, ended_at
FROM gen;
-- Each bill and its revisions: set k is what the bill carried at step k,
-- the last one is what it carries now (the subquery refers to the row so
-- that it is drawn for each).
CREATE TEMP TABLE sets AS
SELECT g.i, k, anomaly_set(ARRAY(SELECT c FROM unnest('{1,2,3,5,8,9,10,11,12,13,14,15,16}'::int[]) c
                                 WHERE random() < 0.06 + 0 * g.i + 0 * k)) AS codes
FROM gen g, generate_series(0, g.revisions) k
WHERE g.state = 'ended' AND g.billed;
INSERT INTO bill (order_no, gun, station_id, channel, started_at, ended_at, energy_wh, wh_by_class, energy_fee,
	service_fee, occupancy_fee, discount, total, applied, energy_source, anomalies, revision)
SELECT 'T' || g.i, g.gun, g.station_id, g.channel, g.ended_at - interval '1 hour', g.ended_at, 1000, '{0,0,1000,0}',
       0.70, 0.45, 0, 0, 1.15, '{}', 'pile', s.codes, g.revisions
FROM gen g JOIN sets s ON s.i = g.i AND s.k = g.revisions;
INSERT INTO bill_revision (order_no, revision, method, reason, before, after)
SELECT 'T' || a.i, a.k + 1, 'recompute', 'tap', jsonb_build_object('anomalies', a.codes::text),
       jsonb_build_object('anomalies', b.codes::text)
FROM sets a JOIN sets b ON b.i = a.i AND b.k = a.k + 1;

-- The plain count: each counted session with every code it ever had.
CREATE FUNCTION pg_temp.counted(op bigint, from_day date, to_day date)
RETURNS TABLE (dimension text, value text, code int, bills bigint, bills_now bigint, sessions bigint,
	successful bigint, pending bigint)
LANGUAGE sql AS $$
	WITH s AS (
		SELECT g.*, pa.name AS partner, pl.firmware, st.tz,
		       g.billed AND g.state = 'ended' AS has_bill,
		       (SELECT anomaly_union(x.codes) FROM pg_temp.sets x WHERE x.i = g.i) AS ever,
		       (SELECT x.codes FROM pg_temp.sets x WHERE x.i = g.i AND x.k = g.revisions) AS now
		FROM pg_temp.gen g
		JOIN evcharge.station st ON st.station_id = g.station_id
		JOIN evcharge.pile pl ON pl.pile_id = pile(g.gun)
		LEFT JOIN evcharge.partner pa ON pa.partner_id = g.partner_id
		WHERE st.operator_id = op AND g.state IN ('ended', 'occupied')
		  AND (g.ended_at AT TIME ZONE st.tz)::date BETWEEN from_day AND to_day
	), d AS (
		SELECT 'total' AS dim, 'all' AS val, s.* FROM s
		UNION ALL SELECT 'channel', s.channel, s.* FROM s
		UNION ALL SELECT 'partner', s.partner, s.* FROM s WHERE s.partner_id IS NOT NULL
		UNION ALL SELECT 'firmware', s.firmware, s.* FROM s
	), g AS (
		SELECT dim, val, count(*) AS sessions,
		       count(*) FILTER (WHERE has_bill AND ever = '') AS successful,
		       count(*) FILTER (WHERE NOT has_bill) AS pending,
		       count(*) FILTER (WHERE has_bill AND ever <> '') AS bad,
		       count(*) FILTER (WHERE has_bill AND now <> '') AS bad_now
		FROM d GROUP BY dim, val
	)
	SELECT g.dim, g.val, NULL::int, g.bad, g.bad_now, g.sessions, g.successful, g.pending FROM g
	UNION ALL
	SELECT g.dim, g.val, c.code, c.n, c.n_now, g.sessions, g.successful, g.pending
	FROM g JOIN (SELECT d.dim, d.val, code, count(*) AS n, count(*) FILTER (WHERE anomaly_has(d.now, code)) AS n_now
	             FROM d, unnest(anomaly_codes(d.ever)) code WHERE d.has_bill GROUP BY d.dim, d.val, code) c
	  ON c.dim = g.dim AND c.val IS NOT DISTINCT FROM g.val
$$;
CREATE FUNCTION pg_temp.differences(op bigint, from_day date, to_day date) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM (
		(SELECT r.dimension, r.value, r.code, r.bills, r.bills_now, r.sessions, r.successful, r.pending
		 FROM evcharge.anomaly_report(op, from_day, to_day) r
		 EXCEPT SELECT * FROM pg_temp.counted(op, from_day, to_day))
		UNION ALL
		(SELECT * FROM pg_temp.counted(op, from_day, to_day)
		 EXCEPT SELECT r.dimension, r.value, r.code, r.bills, r.bills_now, r.sessions, r.successful, r.pending
		 FROM evcharge.anomaly_report(op, from_day, to_day) r)) x
$$;

SELECT cmp_ok((SELECT count(*) FROM anomaly_report(91, '2026-11-01', '2026-11-30') WHERE code IS NOT NULL),
              '>', 40::bigint, 'the data gives the report many code rows to check');
SELECT is(pg_temp.differences(91, '2026-11-01', '2026-11-30'), 0::bigint, 'November: the report is the plain count');
SELECT is(pg_temp.differences(91, '2026-11-03', '2026-11-03'), 0::bigint, 'one day, on each station''s wall clock');
SELECT is(pg_temp.differences(91, '2026-11-02', '2026-11-05'), 0::bigint, 'four days');
SELECT is(pg_temp.differences(91, '-infinity', 'infinity'), 0::bigint, 'all time');
SELECT is(pg_temp.differences(92, '2026-11-01', '2026-11-30'), 0::bigint, 'the other operator: its own sessions only');
SELECT is((SELECT count(*) FROM anomaly_report(91, '2026-11-01', '2026-11-30') WHERE dimension = 'firmware' AND value IS NULL AND code IS NULL),
          1::bigint, 'sessions of a pile without firmware have their own group, value NULL');

-- What holds in every report.
CREATE TEMP TABLE r AS SELECT * FROM anomaly_report(91, '-infinity', 'infinity');
SELECT is((SELECT count(*) FROM r WHERE code IS NULL AND successful + bills + pending <> sessions), 0::bigint,
          'every group: successful + bills with an anomaly + pending = sessions');
SELECT is((SELECT array_agg(DISTINCT s) FROM (SELECT dimension, sum(sessions) AS s FROM r WHERE code IS NULL AND dimension <> 'partner'
                                             GROUP BY dimension) x),
          ARRAY[(SELECT sessions FROM r WHERE dimension = 'total' AND code IS NULL)::numeric],
          'the channels and the firmware versions each add up to the total');
SELECT is((SELECT count(*) FROM r WHERE bills_now > bills OR share <> round(bills::numeric / sessions, 4)
              OR (code IS NOT NULL AND bills > (SELECT g.bills FROM r g WHERE g.dimension = r.dimension
                                                AND g.value IS NOT DISTINCT FROM r.value AND g.code IS NULL))),
          0::bigint, 'bills_now <= bills, share = bills / sessions, a code never counts more bills than its group has');
SELECT is((SELECT array_agg(n::int ORDER BY CASE x.dimension WHEN 'total' THEN 1 WHEN 'channel' THEN 2 WHEN 'partner' THEN 3 ELSE 4 END,
                                           x.value NULLS LAST, x.code NULLS FIRST)
           FROM anomaly_report(91, '-infinity', 'infinity') WITH ORDINALITY
                AS x(dimension, value, code, code_name, bills, bills_now, sessions, successful, pending, share, n)),
          (SELECT array_agg(n ORDER BY n) FROM generate_series(1, (SELECT count(*)::int FROM r)) n),
          'rows come in order: total, channel, partner, firmware; by value; the group before its codes');

SELECT * FROM finish();
ROLLBACK;
