-- Bill anomalies: each code found where its facts arrive, held bills,
-- lost bills, late records that complete them, repairs and their audit.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
-- Every operator gets the default policy; this one lists a defective
-- firmware line (versions 1.x of its AC piles).
SELECT energy_tolerance_wh, energy_tolerance_pct, duration_tolerance, occupancy_tolerance, record_wait,
       clock_skew, max_session, notify_adjustment
FROM anomaly_policy WHERE operator_id = 12;
UPDATE anomaly_policy SET defective_firmware = '{AC-1.%}' WHERE operator_id = 12;
INSERT INTO station (station_id, operator_id, name) VALUES
	(1, 12, 'Shiqi bus depot'), (2, 12, 'No plan yet'), (3, 12, 'Free opening week');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.8000+0.4500, valley 0.3500+0.4500', '[2026-01-01,)', 'AC'),
 (3, 'AC', '00:00-24:00 flat | flat 0.0000+0.0000', '[2026-01-01,)', 'free');
INSERT INTO occupancy_fee VALUES (1, 15, 0.50, 30.00);
INSERT INTO partner (partner_id, operator_id, name, allowed_channels) VALUES (7, 12, 'Ride app (QR only)', '{qr}');
-- The members who start charges here (start_session refuses others).
INSERT INTO member (member_id, operator_id) VALUES (1, 12), (502, 12), (801, 12);
-- 7 kW AC piles: A at station 1 (4 guns), B at station 1 on firmware 1.9,
-- C at station 2 (no plan), D at station 3 (free).
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1'),
	('44200000120000100002', 1, 1, 7000, 'AC-1.9.0'),
	('44200000120000100003', 2, 1, 7000, 'AC-2.3.1'),
	('44200000120000100004', 3, 1, 7000, 'AC-2.3.1');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');

-- A charge as a pile reports it: charging from t0 for mins minutes, a
-- sample every 15 s rising by step Wh (29: about 7 kW), occupied, unplugged
-- plug minutes after the end.
CREATE FUNCTION pg_temp.charge(gun gun_id, order_no text, t0 timestamptz, mins int, plug int,
	meter0 bigint DEFAULT 100000, step int DEFAULT 29)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no)
	SELECT gun, t0 + i * interval '15 s', 'charging', meter0 + i * step, 7000, order_no
	FROM generate_series(0, mins * 4) i;
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no) VALUES
		(gun, t0 + mins * interval '1 min' + interval '15 s', 'occupied', meter0 + mins * 4 * step, 0, order_no),
		(gun, t0 + (mins + plug) * interval '1 min', 'idle', meter0 + mins * 4 * step, 0, NULL);
$$;

-- 1. A clean bill: 60 min, 6960 Wh measured, the pile says 6960.
SELECT pg_temp.charge('44200000120000100001001', 'CLEAN', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('CLEAN', '44200000120000100001001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6960);
-- 2. Energy mismatch (8): the pile says 8000 Wh (plausible for 7 kW in an
-- hour), heartbeats measured 6960: 1040 Wh apart, more than 2 % or 100 Wh.
SELECT pg_temp.charge('44200000120000100001002', 'ENERGY', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('ENERGY', '44200000120000100001002', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 8000);
-- 3. Charging and occupancy duration mismatch (9+10): the pile says it
-- charged 10:00-10:40, the heartbeats say until 11:00:15.
SELECT pg_temp.charge('44200000120000100001003', 'DURATION', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('DURATION', '44200000120000100001003', '2026-11-20 10:00+08', '2026-11-20 10:40+08', 6960);
-- 4. Occupancy mismatch only (10, not blocking): the pile's clock is 20 min
-- ahead, its charge as long as the platform's.
SELECT pg_temp.charge('44200000120000100001004', 'OCCUPANCY', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('OCCUPANCY', '44200000120000100001004', '2026-11-20 10:20+08', '2026-11-20 11:20+08', 6960);
-- 5. Time anomaly (3): the record of a known order is dated 1999.  It is
-- kept (not quarantined) and its bill is held.
SELECT pg_temp.charge('44200000120000100001005', 'CLOCK', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('CLOCK', '44200000120000100001005', '1999-12-31 10:00+08', '1999-12-31 11:00+08', 6960);
-- 6. Energy lost (11): the meter jumps by 50 kWh in 15 s (not billed).
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100001006', '2026-11-20 10:00+08'::timestamptz + i * interval '15 s',
       CASE WHEN i = 240 THEN 'idle' ELSE 'charging' END::gun_status,
       100000 + least(i, 239) * 29 + CASE WHEN i >= 120 THEN 50000 ELSE 0 END, CASE WHEN i < 240 THEN 'JUMP' END
FROM generate_series(0, 240) i;
INSERT INTO pile_record VALUES ('JUMP', '44200000120000100001006', '2026-11-20 10:00+08', '2026-11-20 10:59:45+08', 6931);
-- 7. No tariff in force (12): station 2 has no plan.  Never a default price.
SELECT pg_temp.charge('44200000120000100003001', 'NOPLAN', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('NOPLAN', '44200000120000100003001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6960);
-- 8. Zero amount with energy (13): station 3's plan is free.
SELECT pg_temp.charge('44200000120000100004001', 'FREE', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('FREE', '44200000120000100004001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6960);
-- 9. A start channel the partner's contract does not allow (14).
SELECT start_session('44200000120000100001007', 801, 'password', 7) AS partner_order \gset
SELECT pg_temp.charge('44200000120000100001007', :'partner_order', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES (:'partner_order', '44200000120000100001007', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6960);
-- 10. Billed but no energy flowed while "charging" (15): the meter stood
-- still for an hour, the pile claims 5000 Wh.
SELECT pg_temp.charge('44200000120000100001008', 'NOFLOW', '2026-11-20 10:00+08', 60, 10, 100000, 0);
INSERT INTO pile_record VALUES ('NOFLOW', '44200000120000100001008', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 5000);
-- 11. Firmware on the operator's defective list (16).
SELECT pg_temp.charge('44200000120000100002001', 'FIRMWARE', '2026-11-20 10:00+08', 60, 10);
INSERT INTO pile_record VALUES ('FIRMWARE', '44200000120000100002001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6960);
-- 12. Charging duration anomaly (5): 26 hours of slow charging.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100001009', '2026-11-18 10:00+08'::timestamptz + i * interval '1 hour',
       CASE WHEN i = 26 THEN 'idle' ELSE 'charging' END::gun_status, 100000 + least(i, 25) * 500,
       CASE WHEN i < 26 THEN 'LONG' END
FROM generate_series(0, 26) i;
INSERT INTO pile_record VALUES ('LONG', '44200000120000100001009', '2026-11-18 10:00+08', '2026-11-19 12:00+08', 12500);

-- Every bill with its codes: held when any code blocks (all but 10).
SELECT CASE WHEN order_no = :'partner_order' THEN '(partner)' ELSE order_no END AS bill,
       anomalies, anomaly_names(anomalies) AS names, state, energy_wh, energy_source, total
FROM bill ORDER BY finalised_at, order_no;
-- The no-tariff bill keeps its energy and the reason, and no amount.
SELECT energy_wh, energy_fee, service_fee, total, applied FROM bill WHERE order_no = 'NOPLAN';
-- The time-anomaly record was kept, not quarantined.
SELECT count(*) AS clock_records FROM pile_record WHERE order_no = 'CLOCK';
SELECT count(*) AS quarantined FROM quarantine;
-- Finding the bills that carry a code.
SELECT order_no FROM bill WHERE anomalies @> '8' ORDER BY order_no;
SELECT order_no FROM bill WHERE anomalies && '9+10' ORDER BY order_no;

-- 13. Lost bills.  Gun 1 charges again 13:00-13:30 and is unplugged; its
-- record never comes.  Gun 2 charges from 13:00 and goes silent at 13:20
-- (the 4G link is down): offline at the sweep.  An app start on gun 3 never
-- begins.
SELECT pg_temp.charge('44200000120000100001001', 'LOST', '2026-11-20 13:00+08', 30, 5, 200000);
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100001002', '2026-11-20 13:00+08'::timestamptz + i * interval '15 s', 'charging',
       200000 + i * 29, 'SILENT'
FROM generate_series(0, 80) i;
SELECT * FROM sweep_offline('2026-11-20 13:25+08');
SELECT start_session('44200000120000100001003', 502, 'app') AS pending_order \gset
-- Before the wait (2 hours by default) nothing is given up on.
SELECT * FROM detect_lost_bills('2026-11-20 14:00+08');
-- After it: the silent session ends at its last heartbeat, both become
-- bills from their heartbeats, held, with 1 (unplugged, no record) and 2
-- (the gun went offline); the start that never began is cancelled (its
-- creation time is now(), so it is given up on a day later).
SELECT * FROM detect_lost_bills('2026-11-20 16:00+08');
SELECT * FROM detect_lost_bills(now() + interval '1 day');
SELECT state FROM charge_session WHERE order_no = :'pending_order';
SELECT order_no, anomalies, state, energy_wh, energy_source, started_at, ended_at, total
FROM bill WHERE order_no IN ('LOST', 'SILENT') ORDER BY order_no;
-- Running it again changes nothing.
SELECT * FROM detect_lost_bills('2026-11-20 16:00+08');
-- LOST's record comes late: the bill is completed from it, the codes
-- cleared, released; the change is a revision.
INSERT INTO pile_record VALUES ('LOST', '44200000120000100001001', '2026-11-20 13:00+08', '2026-11-20 13:30+08', 3500);
SELECT order_no, anomalies, state, energy_wh, energy_source, total, revision FROM bill WHERE order_no = 'LOST';
SELECT revision, method, reason, before->>'anomalies' AS before_codes, before->>'total' AS before_total,
       after->>'anomalies' AS after_codes, after->>'total' AS after_total
FROM bill_revision WHERE order_no = 'LOST';

-- 14. Repairs.  The energy mismatch: recompute keeps the pile's 8000 Wh
-- (plausible) and releases the bill.
SELECT state, energy_wh, total FROM bill WHERE order_no = 'ENERGY';
SELECT state, energy_wh, energy_source, total, revision FROM repair_bill('ENERGY', 'checked the meter photo: 8.0 kWh');
-- The same repair again: nothing new.
SELECT state, energy_wh, total, revision FROM repair_bill('ENERGY', 'checked the meter photo: 8.0 kWh');
-- The operator tells drivers of adjusted amounts; the platform's figure.
UPDATE anomaly_policy SET notify_adjustment = true WHERE operator_id = 12;
SELECT state, energy_wh, energy_source, total, revision FROM repair_bill('ENERGY', 'driver disputed; platform meter', 'platform');
-- By hand.
SELECT state, energy_wh, energy_source, total, revision FROM repair_bill('ENERGY', 'agreed with the driver', 'manual', 7500);
SELECT revision, method, reason, revised_by = current_user AS by_me,
       (before->>'energy_wh')::bigint AS energy_before, (after->>'energy_wh')::bigint AS energy_after,
       before->>'state' AS state_before, after->>'state' AS state_after
FROM bill_revision WHERE order_no = 'ENERGY' ORDER BY revision;
-- ENERGY has no member: no notice.  The partner's bill has one.
SELECT count(*) AS notices FROM customer_notice;
SELECT state, energy_wh, total, revision FROM repair_bill(:'partner_order', 'contract allows QR only; billed as agreed', 'manual', 3000);
SELECT member_id, revision, old_total, new_total, sent_at FROM customer_notice;
-- The pile's figures: the no-flow bill at the pile's 5000 Wh.
SELECT state, energy_wh, energy_source, anomalies FROM repair_bill('NOFLOW', 'pile replaced; pile meter verified', 'pile');
-- The plan is added late for station 2; recompute prices the bill.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (2, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC');
SELECT state, energy_wh, energy_fee, service_fee, total, anomalies FROM repair_bill('NOPLAN', 'plan entered late');
-- Held bills never stay held by mistake: what is still held, and why.
SELECT order_no, anomalies FROM bill WHERE state = 'held' AND order_no <> :'partner_order' ORDER BY order_no;

-- 15. Bulk repair by rule: every code-2 bill of station 1 on 20 November.
SELECT order_no, old_total, new_total, state, outcome
FROM repair_bills('2', 1, '2026-11-20', 'carrier outage 13:20; billed from heartbeats');
SELECT order_no, old_total, new_total, state, outcome
FROM repair_bills('2', 1, '2026-11-20', 'carrier outage 13:20; billed from heartbeats');

-- 16. Errors.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT repair_bill('ENERGY', '  ');
SELECT repair_bill('ENERGY', 'x', 'guess');
SELECT repair_bill('NO-SUCH-ORDER', 'x');
SELECT repair_bill('SILENT', 'x', 'pile');
SELECT repair_bill('ENERGY', 'x', 'manual');
SELECT repair_bill('ENERGY', 'x', 'manual', -5);
SELECT repair_bills('', 1, '2026-11-20', 'x');
UPDATE bill_revision SET reason = 'nothing happened';
DELETE FROM bill_revision;
SELECT start_session('44200000120000100001004', 1, 'qr', 99);
\set VERBOSITY terse
-- A settled bill is repaired by an adjustment: the difference moves.
SELECT kind, idem_key, result FROM settle_bill('CLEAN');
SELECT state, energy_wh, total, revision FROM repair_bill('CLEAN', 'goodwill: 1 kWh off', 'manual', 5960);
SELECT kind, idem_key, note, result FROM ledger_txn WHERE order_no = 'CLEAN' ORDER BY txn_id;
SELECT problem FROM verify_ledger();
-- A record for an unknown order dated 1999 is still quarantined.
INSERT INTO pile_record VALUES ('GHOST', '44200000120000100001004', '1999-12-31 10:00+08', '1999-12-31 11:00+08', 100);
SELECT reason FROM quarantine;
\set VERBOSITY default

-- 17. Records that come after a repair.  SILENT (code 2, billed from
-- its heartbeats by the bulk repair) is settled; then its record comes: the
-- pile's figures replace the heartbeats' (the platform was blind after
-- 13:20: the pile's 13:40 end is the end, and its larger energy is no
-- mismatch), the codes go, the bill stays settled and the difference moves
-- in the ledger.
SELECT kind FROM settle_bill('SILENT');
SELECT energy_wh, total, anomalies FROM bill WHERE order_no = 'SILENT';
INSERT INTO pile_record VALUES ('SILENT', '44200000120000100001002', '2026-11-20 13:00+08', '2026-11-20 13:40+08', 2600);
SELECT state, energy_wh, energy_source, total, anomalies, revision, ended_at FROM bill WHERE order_no = 'SILENT';
SELECT kind, idem_key, result->>'old_total' AS old_total, result->>'new_total' AS new_total
FROM ledger_txn WHERE order_no = 'SILENT' ORDER BY txn_id;
-- AGREED's record is lost too; support agrees 2000 Wh with the driver by
-- hand, and the bill is settled.  When the record comes (claiming 3480),
-- the codes go but the agreed energy stays: nothing moves in the ledger, and
-- the revision says why.
SELECT pg_temp.charge('44200000120000100001001', 'AGREED', '2026-11-20 18:00+08', 30, 5, 300000);
SELECT bills_lost FROM detect_lost_bills('2026-11-20 21:00+08');
SELECT state, energy_wh, total FROM repair_bill('AGREED', 'driver called: agreed 2 kWh', 'manual', 2000);
SELECT kind FROM settle_bill('AGREED');
INSERT INTO pile_record VALUES ('AGREED', '44200000120000100001001', '2026-11-20 18:00+08', '2026-11-20 18:30+08', 3480);
SELECT state, energy_wh, energy_source, total, anomalies, revision FROM bill WHERE order_no = 'AGREED';
SELECT revision, method, reason FROM bill_revision WHERE order_no = 'AGREED' ORDER BY revision;
SELECT count(*) AS adjustments FROM ledger_txn WHERE order_no = 'AGREED' AND kind = 'bill_adjustment';
SELECT count(*) AS discrepancies FROM verify_ledger();

-- Finding the bills that carry a code uses the GIN index on bill.anomalies
-- (the planner is pushed off the sequential scan that a table this small
-- would get).
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT order_no FROM bill WHERE anomalies @> '8';
EXPLAIN (COSTS OFF) SELECT order_no FROM bill WHERE anomalies && '1+2';
SELECT count(*) > 0 AS found FROM bill WHERE anomalies @> '8';
RESET enable_seqscan;

\i sql/include/reset.sql
