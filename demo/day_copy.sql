-- demo/day_copy.sql: the day demo's replay by COPY, after
-- demo/day_load.sql: the heartbeats and pile records written straight into
-- the tables, as a loader would, in the steps day_load.sql worked out.
-- (demo/replay.js sends the same day through the bridge instead.)
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET timezone = 'Asia/Shanghai';
SET search_path = "$user", public, evcharge;
SELECT op, day_start, day_end FROM demo_day.day \gset

-- The replay: per 5-minute step, the heartbeats that arrived, the pile
-- records that arrived, then the offline sweep.  Records that arrive after
-- the day (late uploads) come at the end, with no sweep: the day is over;
-- before them, the lost-bill job gives up on the records still missing at
-- the end of the day (those of sessions that ended more than the operator's
-- two hours before), and the late ones then complete their bills.
CREATE FUNCTION demo_day.replay(day_start timestamptz, day_end timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t timestamptz;
	hb bigint;
	rec bigint;
	sw record;
BEGIN
	FOR t IN SELECT g FROM generate_series(day_start + interval '5 min', day_end, interval '5 min') g LOOP
		INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, soc, fault_code, order_no, received_at)
		SELECT h.gun::evcharge.gun_id, h.ts, h.status::evcharge.gun_status, h.meter_wh, h.power_w, h.soc,
		       h.fault_code, h.order_no, h.step
		FROM demo_day.heartbeat_in h WHERE h.step = t ORDER BY h.n;
		GET DIAGNOSTICS hb = ROW_COUNT;
		INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason, received_at)
		SELECT r.order_no, r.gun::evcharge.gun_id, r.started_at, r.ended_at, r.energy_wh, r.stop_reason, a.arrived_at
		FROM demo_day.record_in r JOIN demo_day.arrival_in a ON a.line = r.n
		WHERE r.step = t ORDER BY r.n;
		GET DIAGNOSTICS rec = ROW_COUNT;
		SELECT * INTO sw FROM evcharge.sweep_offline(t);
		INSERT INTO demo_day.sweep VALUES (t, hb, rec, sw.went_offline, sw.incidents);
	END LOOP;
	INSERT INTO demo_day.lost SELECT * FROM evcharge.detect_lost_bills(day_end);
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason, received_at)
	SELECT r.order_no, r.gun::evcharge.gun_id, r.started_at, r.ended_at, r.energy_wh, r.stop_reason, a.arrived_at
	FROM demo_day.record_in r JOIN demo_day.arrival_in a ON a.line = r.n
	WHERE r.step IS NULL ORDER BY r.n;
	GET DIAGNOSTICS rec = ROW_COUNT;
	INSERT INTO demo_day.sweep VALUES (NULL, 0, rec, 0, 0);
END $$;
SELECT demo_day.replay(:'day_start', :'day_end') \gset
