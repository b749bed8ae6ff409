-- current_type: every pile gets a bill.  The pile registry knows each
-- pile's current type (AC or DC), which prices its sessions: taken from the
-- id when its digits 14-15 say it (01 AC, 02 DC), given at registration when
-- they do not (Zhongshan Jianxin's piles carry 10), refused when the two
-- disagree.  A session that cannot be priced for any reason gets a held bill
-- with the reason, never no bill.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
\set SHOW_CONTEXT never

INSERT INTO operator VALUES (2, 'Zhongshan Jianxin');
INSERT INTO station (station_id, operator_id, name) VALUES (21, 2, 'Jianxin Dongfeng'), (22, 2, 'Jianxin Nanlang (AC plan only)');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (21, 'AC', '00:00-24:00 flat | flat 0.6000+0.4000', '[2026-01-01,)', 'AC'),
 (21, 'DC', '00:00-24:00 flat | flat 0.8008+0.4000', '[2026-01-01,)', 'DC'),
 (22, 'AC', '00:00-24:00 flat | flat 0.6000+0.4000', '[2026-01-01,)', 'AC');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');

--------------------------------------------------------------------------
-- Registration
--------------------------------------------------------------------------

-- An id that says AC (01) or DC (02) gives the type; Jianxin's ids say 10,
-- so their registration gives it.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('4420 0100 0200 0010 0001', 21, 2, 7000, 'AC-2.3.1');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware, current_type) VALUES
	('4420 0100 0200 0100 0110', 21, 1, 60000, 'JX-1.2', 'DC'),
	('4420 0100 0200 0100 0075', 22, 1, 60000, 'JX-1.2', 'DC');
SELECT pile_id, substr(pile_id::text, 14, 2) AS digits_14_15, current_type(pile_id) AS by_id, current_type
FROM pile ORDER BY pile_id;

-- Refused, each with what is wrong and what to do (SQLSTATE after each).
-- A Jianxin pile without its type:
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200100020001000120', 21, 1, 60000);
\echo :LAST_ERROR_SQLSTATE
-- An AC pile registered as DC (the old platform's defect, refused here):
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, current_type)
VALUES ('44200100020000100002', 21, 1, 7000, 'DC');
\echo :LAST_ERROR_SQLSTATE
-- A type that is neither:
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, current_type)
VALUES ('44200100020001000121', 21, 1, 7000, 'dc');
\echo :LAST_ERROR_SQLSTATE
-- A 16-digit legacy id: the layout, as the id type gives it.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('4420 0100 0200 0003', 21, 1, 7000);
\echo :LAST_ERROR_SQLSTATE
-- Changing a type later is checked the same way.
UPDATE pile SET current_type = NULL WHERE pile_id = '44200100020001000110';
\echo :LAST_ERROR_SQLSTATE
UPDATE pile SET current_type = 'DC' WHERE pile_id = '44200100020000100001';
\echo :LAST_ERROR_SQLSTATE
-- A parking ground lock (product 01) delivers no energy: it needs no type.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200100020011000200', 21, 1, 1);
SELECT pile_id, product_kind(pile_id), current_type FROM pile WHERE pile_id = '44200100020011000200';

--------------------------------------------------------------------------
-- Billing by the registry's type
--------------------------------------------------------------------------

-- A charge as the pile reports it: a sample every 15 s rising by step Wh,
-- then occupied and unplugged; its record with the energy it counted (none
-- when record_wh is NULL).
CREATE FUNCTION pg_temp.charge(gun gun_id, order_no text, t0 timestamptz, mins int, step int, record_wh bigint)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no)
	SELECT gun, t0 + i * interval '15 s', 'charging', 500000 + i * step, 60000, order_no
	FROM generate_series(0, mins * 4) i;
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no) VALUES
		(gun, t0 + mins * interval '1 min' + interval '15 s', 'occupied', 500000 + mins * 4 * step, 0, order_no),
		(gun, t0 + (mins + 5) * interval '1 min', 'idle', 500000 + mins * 4 * step, 0, NULL);
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh)
	SELECT order_no, gun, t0, t0 + mins * interval '1 min', record_wh WHERE record_wh IS NOT NULL;
$$;

-- The DC session of DOMAIN.md: 23.32 kWh on a Jianxin pile, 27.99 yuan
-- (electricity 23.32 x 0.8008 = 18.674656 -> 18.67, service 9.328 -> 9.32).
-- Under 0.2.0 it ended with bill_error "current type NULL is neither AC nor
-- DC" and no bill.
SELECT pg_temp.charge('44200100020001000110001', 'JX-DC', '2026-11-20 10:00+08', 30, 194, 23320);
SELECT order_no, state, energy_wh, energy_fee, service_fee, total, anomalies, applied
FROM bill WHERE order_no = 'JX-DC';
SELECT bill_error FROM charge_session WHERE order_no = 'JX-DC';
-- quote() counts the Jianxin pile among the station's DC piles: 60 kW, so
-- 40 kWh in half an hour is refused as more than it can deliver.
SELECT total FROM quote(21, 'DC', NULL, '2026-11-20 10:00+08', '2026-11-20 10:30+08', 23.32);
SELECT total FROM quote(21, 'DC', NULL, '2026-11-20 10:00+08', '2026-11-20 10:30+08', 40);

--------------------------------------------------------------------------
-- What cannot be priced is held, with the reason
--------------------------------------------------------------------------

-- 12: no DC plan at station 22.
SELECT pg_temp.charge('44200100020001000075001', 'JX-NOPLAN', '2026-11-20 11:00+08', 30, 194, 23320);
-- 18: more than the operator allows one bill (a limit lowered for the test).
UPDATE finance_policy SET max_bill_amount = 20.00 WHERE operator_id = 2;
SELECT pg_temp.charge('44200100020001000110001', 'JX-LIMIT', '2026-11-20 12:00+08', 30, 194, 23320);
-- 19: an error inside pricing (a session carrying another operator's
-- customer group, which price_session() refuses).
INSERT INTO operator VALUES (3, 'Another operator');
INSERT INTO customer_group (group_id, operator_id, name) VALUES (31, 3, 'not Jianxin''s');
SELECT pg_temp.charge('44200100020000100001001', 'JX-ERROR', '2026-11-20 13:00+08', 30, 29, NULL);
UPDATE charge_session SET group_id = 31 WHERE order_no = 'JX-ERROR';
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('JX-ERROR', '44200100020000100001001', '2026-11-20 13:00+08', '2026-11-20 13:30+08', 3480);
-- 17: the pile was taken out of the registry before its session was billed
-- (detect_lost_bills() bills it from heartbeats when no record comes).
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200100020000100009', 21, 1, 7000);
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200100020000100009001', '2026-11-20 14:00+08'::timestamptz + i * interval '15 s',
       CASE WHEN i = 120 THEN 'idle' ELSE 'charging' END::gun_status, 800000 + least(i, 119) * 29, 7000,
       CASE WHEN i < 120 THEN 'JX-GONE' END
FROM generate_series(0, 120) i;
DELETE FROM pile WHERE pile_id = '44200100020000100009';
SELECT * FROM detect_lost_bills('2026-11-20 17:00+08');

SELECT order_no, state, energy_wh, total, anomalies, anomaly_names(anomalies) AS names, applied
FROM bill WHERE order_no LIKE 'JX-%' AND order_no <> 'JX-DC' ORDER BY order_no;

-- Every session of the day has a bill: none is pending in the report, the
-- held ones count under their codes.
SELECT dimension, code, code_name, bills, sessions, successful, pending
FROM anomaly_report(2, '2026-11-20', '2026-11-20') WHERE dimension = 'total';

--------------------------------------------------------------------------
-- Repairs: never released at no amount
--------------------------------------------------------------------------

-- Still no DC plan: the repair is refused and says what to do.
SELECT total FROM repair_bill('JX-NOPLAN', 'checked');
\echo :LAST_ERROR_SQLSTATE
SELECT total FROM repair_bill('JX-GONE', 'checked');
\echo :LAST_ERROR_SQLSTATE
SELECT total FROM repair_bill('JX-ERROR', 'group corrected');
\echo :LAST_ERROR_SQLSTATE
-- Beyond the limit a repair is refused (22023), as it always was.
SELECT total FROM repair_bill('JX-LIMIT', 'a real 23.32 kWh charge, checked');
\echo :LAST_ERROR_SQLSTATE
-- Once the cause is mended, or the operator's limit allows it, the repair
-- prices the bill and releases it.
UPDATE charge_session SET group_id = NULL WHERE order_no = 'JX-ERROR';
SELECT state, total, anomalies FROM repair_bill('JX-ERROR', 'group corrected');
UPDATE finance_policy SET max_bill_amount = 5000.00 WHERE operator_id = 2;
SELECT state, total, anomalies FROM repair_bill('JX-LIMIT', 'a real 23.32 kWh charge, checked');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (22, 'DC', '00:00-24:00 flat | flat 0.8008+0.4000', '[2026-01-01,)', 'DC');
SELECT state, total, anomalies FROM repair_bill('JX-NOPLAN', 'DC plan entered late');

--------------------------------------------------------------------------
-- The last resort: a bill that cannot be made at all
--------------------------------------------------------------------------

-- An error outside pricing (here the operator's money settings are
-- missing, which compute_bill() needs for the limits): the bill is held
-- without an amount, with the error as its reason, and the session keeps it.
DELETE FROM finance_policy WHERE operator_id = 2;
SELECT pg_temp.charge('44200100020000100001002', 'JX-BROKEN', '2026-11-20 15:00+08', 30, 29, 3480);
SELECT state, energy_wh, energy_source, total, anomalies, applied FROM bill WHERE order_no = 'JX-BROKEN';
SELECT bill_error FROM charge_session WHERE order_no = 'JX-BROKEN';
-- Once mended, a repair prices it and the session's error goes.
INSERT INTO finance_policy (operator_id) VALUES (2);
SELECT state, total, anomalies FROM repair_bill('JX-BROKEN', 'money settings restored');
SELECT bill_error FROM charge_session WHERE order_no = 'JX-BROKEN';

\i sql/include/reset.sql
