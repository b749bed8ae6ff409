-- Reports cost the period, not the history: the predicates daily_report()
-- and anomaly_report() filter a period by are served by indexes (without
-- them, every bill or every ended session of the operator's stations is
-- read), and neither report JIT-compiles.  The plans are of the predicates
-- as the functions write them, for one station-day out of 100 days of
-- history (3,000 ended sessions, each billed).
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
SET datestyle = 'ISO, YMD';

INSERT INTO charge_session (order_no, gun, station_id, channel, state, started_at, charging_ended_at,
	occupied_until, last_ts)
SELECT 'P' || i, gun_id('44200000120000100001'::pile_id, 1), 1, 'card', 'ended', t, t + interval '1 hour',
       t + interval '70 minutes', t + interval '70 minutes'
  FROM generate_series(1, 3000) i, LATERAL (SELECT '2026-08-12 00:00+08'::timestamptz + i * interval '48 minutes' AS t) x;
INSERT INTO bill (order_no, gun, station_id, channel, started_at, ended_at, occupied_until, energy_wh,
	wh_by_class, energy_fee, service_fee, occupancy_fee, discount, total, applied, energy_source)
SELECT order_no, gun, station_id, channel, started_at, charging_ended_at, occupied_until, 7000, '{0,0,7000,0}',
       4.48, 3.57, 0, 0, 8.05, '{}', 'pile'
  FROM charge_session;
ANALYZE charge_session, bill;

-- daily_report: a bill's day is its end of charging, or its start.
EXPLAIN (COSTS OFF)
SELECT b.order_no FROM evcharge.bill b
 WHERE b.station_id = 1
   AND coalesce(b.ended_at, b.started_at) >= '2026-11-19 00:00+08'
   AND coalesce(b.ended_at, b.started_at) < '2026-11-20 00:00+08';

-- anomaly_report: sessions ended (without a bill), by end of charging, or
-- by their last heartbeat when charging has no end: both in the index.
EXPLAIN (COSTS OFF)
SELECT cs.order_no FROM evcharge.charge_session cs
 WHERE cs.station_id = 1 AND cs.state IN ('occupied', 'ended')
   AND ((cs.charging_ended_at >= '2026-11-19 00:00+08' AND cs.charging_ended_at < '2026-11-20 00:00+08')
        OR (cs.charging_ended_at IS NULL
            AND cs.last_ts >= '2026-11-19 00:00+08' AND cs.last_ts < '2026-11-20 00:00+08'));

-- No JIT for the reports: set on the functions, not globally.
SELECT p.proname, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'evcharge'::regnamespace AND p.proname IN ('daily_report', 'anomaly_report')
 ORDER BY 1;

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
