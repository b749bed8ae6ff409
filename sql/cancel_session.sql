-- cancel_session: a bad start must not block a gun.  start_session()
-- refuses members and partners the operator does not have (a start for
-- member 999 used to hold the gun for two hours); cancel_session() ends a
-- start the pile never began, kept with who, when and why; the bridge's
-- refused remote start and the lost-bill job cancel the same way.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
\set SHOW_CONTEXT never

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.'), (34, 'Longgang Power');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot'), (9, 34, 'Longgang');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES
	('44200000120000100001', 1, 2, 7000),
	('44200000120000100002', 1, 1, 7000);
INSERT INTO member (member_id, operator_id) VALUES (501, 12), (3401, 34);
INSERT INTO partner (partner_id, operator_id, name) VALUES (7, 12, 'Didi charging'), (34, 34, 'Longgang app');

-- Order numbers begin with the time of the start, so an error naming one
-- is shown through this, with <order> and <time> for what changes each run.
CREATE FUNCTION pg_temp.try(q text) RETURNS TABLE (code text, error text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	code := '00000';
	RETURN NEXT;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, error = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
		hint = PG_EXCEPTION_HINT;
	error := regexp_replace(error, '\m\d{20}\M', '<order>', 'g');
	detail := regexp_replace(detail, '\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2}(\.\d+)? \d{4} \w+', '<time>', 'g');
	RETURN NEXT;
END $$;

--------------------------------------------------------------------------
-- start_session() refuses what no wallet pays for (P0002, like any
-- reference that is not there)
--------------------------------------------------------------------------

SELECT start_session('44200000120000100001001', 999, 'app');
\echo :LAST_ERROR_SQLSTATE
SELECT start_session('44200000120000100001001', 3401, 'app');
\echo :LAST_ERROR_SQLSTATE
SELECT start_session('44200000120000100001001', NULL, 'partner', 99);
\echo :LAST_ERROR_SQLSTATE
SELECT start_session('44200000120000100001001', NULL, 'partner', 34);
\echo :LAST_ERROR_SQLSTATE
SELECT start_session('44200000120000100009001', 501, 'app');
\echo :LAST_ERROR_SQLSTATE
SELECT start_session('44200000120000100001003', 501, 'app');
\echo :LAST_ERROR_SQLSTATE
-- None of them left a session behind.
SELECT count(*) AS sessions FROM charge_session;

--------------------------------------------------------------------------
-- cancel_session()
--------------------------------------------------------------------------

-- The driver walks away before the pile starts: the gun stays busy...
SELECT start_session('44200000120000100001001', 501, 'app') AS o1 \gset
\x on
SELECT * FROM pg_temp.try($$SELECT start_session('44200000120000100001001', 501, 'app')$$);
-- ...until support cancels the start, with a reason.
SELECT * FROM pg_temp.try(format('SELECT cancel_session(%L, %L)', :'o1', ' '));
\x off
SELECT cancel_session('20261120000000999999', 'driver left');
\echo :LAST_ERROR_SQLSTATE
SELECT state, started_at FROM cancel_session(:'o1', 'driver left before the pile started (ticket 4711)');
SELECT reason, cancelled_by = current_user AS by_me, now() - cancelled_at < interval '1 minute' AS just_now
FROM session_cancellation WHERE order_no = :'o1';
-- The gun is free at once.
SELECT start_session('44200000120000100001001', 501, 'app') AS o2 \gset
SELECT state FROM charge_session WHERE order_no = :'o2';
-- Cancelling again changes nothing and records nothing twice.
SELECT state FROM cancel_session(:'o1', 'again');
SELECT count(*) AS cancellations FROM session_cancellation WHERE order_no = :'o1';

-- A start the pile has begun is not cancelled: it is charging, and billed.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
VALUES ('44200000120000100001001', now() - interval '1 min', 'charging', 100000, 7000, :'o2');
SELECT state FROM charge_session WHERE order_no = :'o2';
\x on
SELECT * FROM pg_temp.try(format('SELECT cancel_session(%L, %L)', :'o2', 'driver says it never started'));
\x off

-- The record of who cancelled cannot be changed.
UPDATE session_cancellation SET reason = 'nothing happened';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM session_cancellation;
\echo :LAST_ERROR_SQLSTATE

--------------------------------------------------------------------------
-- The same record when the pile refuses, or never begins
--------------------------------------------------------------------------

-- A pile that speaks OCPP: start_session() makes a RemoteStartTransaction.
INSERT INTO ocpp_bridge (bridge_id) VALUES ('bridge-a');
INSERT INTO ocpp_connection (pile_id, bridge_id) VALUES ('44200000120000100002', 'bridge-a');
SELECT start_session('44200000120000100002001', 501, 'app') AS o3 \gset
SELECT command_id AS c3 FROM ocpp_command WHERE order_no = :'o3' \gset
-- The pile answers Rejected: the session is cancelled through cancel_session().
SELECT ocpp_command_answer(:c3, '44200000120000100002', 'Rejected') AS cancelled;
SELECT cs.state, sc.reason ~ '^the pile did not accept the remote start \(command \d+ answered Rejected\)$' AS reason_says_so
FROM charge_session cs JOIN session_cancellation sc USING (order_no) WHERE order_no = :'o3';
-- Support cancels a remote start before the pile answered: the command is
-- withdrawn, so no bridge sends it afterwards.
SELECT start_session('44200000120000100002001', 501, 'app') AS o4 \gset
SELECT state FROM cancel_session(:'o4', 'app crashed; driver started again elsewhere');
SELECT answer, answered_at IS NOT NULL AS closed FROM ocpp_command WHERE order_no = :'o4';
-- The pile's late answer changes nothing.
SELECT ocpp_command_answer(command_id, '44200000120000100002', 'Accepted') FROM ocpp_command WHERE order_no = :'o4';
-- Once the pile has begun its transaction, even before a heartbeat, the
-- start is not cancelled.
SELECT start_session('44200000120000100002001', 501, 'app') AS o5 \gset
SELECT remote, status FROM ocpp_start_transaction('44200000120000100002', 1, :'o5', 100000, now());
\x on
SELECT * FROM pg_temp.try(format('SELECT cancel_session(%L, %L)', :'o5', 'driver says it never started'));
\x off
SELECT state FROM charge_session WHERE order_no = :'o5';

-- A start nobody cancels is cancelled by detect_lost_bills() after the
-- operator's record_wait (2 hours), with its own reason.
SELECT start_session('44200000120000100001002', 501, 'app') AS o6 \gset
-- (The OCPP start above too: its pile began a transaction but sent no
-- charging heartbeat in all that time, and the job gives up on it.)
SELECT starts_cancelled FROM detect_lost_bills(now() + interval '3 hours');
SELECT order_no = :'o6' AS is_o6, order_no = :'o5' AS is_o5, reason
FROM session_cancellation WHERE order_no IN (:'o5', :'o6') ORDER BY order_no;

\i sql/include/reset.sql
