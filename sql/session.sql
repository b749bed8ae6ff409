-- Sessions and bills: from pile traffic to a priced bill.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot'), (2, 12, 'No plan yet');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2026-01-01, 2026-11-15)', 'AC 2026'),
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.8000+0.4500, valley 0.3500+0.4500', '[2026-11-15,)', 'AC winter');
INSERT INTO occupancy_fee VALUES (1, 15, 0.50, 30.00);
INSERT INTO member (member_id, operator_id) VALUES (501, 12), (502, 12);
INSERT INTO coupon (operator_id, member_id, amount, min_kwh, valid) VALUES (12, 501, 3.00, 5, '[2026-11-01, 2027-01-01)');
-- AC piles of 7 kW: A and B at station 1 (two guns each), C at station 2.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 2, 7000, 'AC-2.3.1'),
	('44200000120000100002', 1, 2, 7000, 'AC-2.3.1'),
	('44200000120000100003', 2, 1, 7000, 'AC-1.9.0');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');
SELECT created FROM maintain_partitions('2026-11-14 12:00+08');

-- 1. An app start: the platform opens the session and gives the order
-- number (yyyyMMddHHmmss + 6 digits); the pile's heartbeats carry it.
SELECT start_session('44200000120000100001001', 501, 'app') AS order_no \gset
SELECT :'order_no' ~ '^\d{20}$' AS order_no_has_20_digits,
       (SELECT state FROM charge_session WHERE order_no = :'order_no') AS state;
-- The gun is busy now (the order number in the message is masked here).
DO $$
BEGIN
	PERFORM evcharge.start_session('44200000120000100001001', 502, 'qr');
EXCEPTION WHEN lock_not_available THEN
	RAISE NOTICE '% %', SQLSTATE, regexp_replace(SQLERRM, '\d{20}$', '<order_no>');
END $$;

-- 7 kW for an hour, 10:00-11:00, finished at 11:00, unplugged at 11:30.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000120000100001001', '2026-11-20 10:00+08'::timestamptz + i * interval '15 min',
       'charging', 100000 + i * 1750, 7000, :'order_no'
FROM generate_series(0, 4) i;
SELECT state, started_at, wh_by_class, running_total FROM charge_session WHERE order_no = :'order_no';
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001001', '2026-11-20 11:00:15+08', 'occupied', 107000, :'order_no'),
	('44200000120000100001001', '2026-11-20 11:30:15+08', 'idle', 107000, NULL);
SELECT state, charging_ended_at, occupied_until, wh_by_class FROM charge_session WHERE order_no = :'order_no';
-- Ended, but no bill until the pile's own record comes.
SELECT count(*) AS bills FROM bill;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason)
VALUES (:'order_no', '44200000120000100001001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 7000, 'full');
-- 7 kWh flat at the winter plan: electricity 5.60, service 3.15; plugged
-- 30 min after charging, 15 min over the grace: 7.50; the coupon: -3.00.
SELECT channel, energy_wh, wh_by_class, energy_fee, service_fee, occupancy_fee, discount, total, applied, energy_source
FROM bill WHERE order_no = :'order_no';
SELECT used_order_no = :'order_no' AS coupon_used FROM coupon WHERE member_id = 501;
-- The same record again changes nothing.
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES (:'order_no', '44200000120000100001001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 9999);
SELECT count(*) AS bills, sum(total) AS total FROM bill;

-- 2. A card start the platform did not see: the first charging heartbeat
-- with an unknown order opens an offline session.  It runs 23:30-00:30 over
-- midnight, into the valley and into the winter plan; the pile's record
-- comes late and its energy (3600 Wh) is authoritative, shared in the
-- measured proportions (measured: 1746 Wh before midnight, 1754 after).
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100001002', '2026-11-14 23:30+08'::timestamptz + i * interval '5 min',
       CASE WHEN i = 12 THEN 'idle' ELSE 'charging' END::gun_status,
       500000 + least(i, 12) * 291 + CASE WHEN i >= 12 THEN 8 ELSE 0 END, CASE WHEN i < 12 THEN 'CARD-7731' END
FROM generate_series(0, 12) i;
SELECT order_no, channel, state, started_at, occupied_until, wh_by_class FROM charge_session WHERE order_no = 'CARD-7731';
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('CARD-7731', '44200000120000100001002', '2026-11-14 23:30+08', '2026-11-15 00:30+08', 3600);
SELECT channel, energy_wh, wh_by_class, energy_fee, service_fee, total, applied, energy_source
FROM bill WHERE order_no = 'CARD-7731';

-- 3. The same charge delivered in order on gun B1, and on gun B2 in three
-- batches, out of order, with every heartbeat twice: the same bill.
CREATE TEMP TABLE hb AS
SELECT '2026-11-20 14:00+08'::timestamptz + i * interval '15 s' AS ts,
       CASE WHEN i < 200 THEN 'charging' ELSE 'idle' END::gun_status AS status,
       200000 + least(i, 199) * 29 AS meter_wh
FROM generate_series(0, 200) i;
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100002001', ts, status, meter_wh, CASE WHEN status = 'charging' THEN 'ORDER-B1' END FROM hb ORDER BY ts;
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100002002', ts, status, meter_wh, 'ORDER-B2' FROM hb WHERE status = 'charging' AND extract(second FROM ts)::int % 2 = 0 ORDER BY md5(ts::text);
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100002002', ts, status, meter_wh, 'ORDER-B2' FROM hb WHERE status = 'charging' ORDER BY ts DESC;
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100002002', ts, status, meter_wh, CASE WHEN status = 'charging' THEN 'ORDER-B2' END FROM hb ORDER BY ts;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh) VALUES
	('ORDER-B1', '44200000120000100002001', '2026-11-20 14:00+08', '2026-11-20 14:50+08', NULL),
	('ORDER-B2', '44200000120000100002002', '2026-11-20 14:00+08', '2026-11-20 14:50+08', NULL);
SELECT order_no, energy_wh, wh_by_class, energy_fee, service_fee, total, energy_source
FROM bill WHERE order_no IN ('ORDER-B1', 'ORDER-B2') ORDER BY order_no;

-- A charge's first heartbeat arriving after its second (two loaders, the
-- later batch committed first) moves the session's start back: the bill
-- counts from it, 40 Wh, not 20.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001002', '2026-11-21 10:00:15+08', 'charging', 1020, 'LATE-FIRST'),
	('44200000120000100001002', '2026-11-21 10:00:30+08', 'charging', 1040, 'LATE-FIRST');
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001002', '2026-11-21 10:00:00+08', 'charging', 1000, 'LATE-FIRST');
INSERT INTO heartbeat (gun, ts, status, meter_wh) VALUES ('44200000120000100001002', '2026-11-21 10:01:00+08', 'idle', 1040);
INSERT INTO pile_record (order_no, gun, started_at, ended_at)
VALUES ('LATE-FIRST', '44200000120000100001002', '2026-11-21 10:00+08', '2026-11-21 10:00:30+08');
SELECT s.started_at, s.first_meter_wh, b.energy_wh FROM charge_session s JOIN bill b USING (order_no) WHERE order_no = 'LATE-FIRST';

-- 4. A pile back online first reports 0, then its real register: the jump
-- is larger than 7 kW could deliver in 15 s, so it is not billed (it is
-- kept on the session); only the real 100 Wh are.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001001', '2026-11-20 16:00:00+08', 'charging', 0, 'ZERO-1'),
	('44200000120000100001001', '2026-11-20 16:00:15+08', 'charging', 910000, 'ZERO-1'),
	('44200000120000100001001', '2026-11-20 16:01:15+08', 'charging', 910100, 'ZERO-1'),
	('44200000120000100001001', '2026-11-20 16:02:00+08', 'idle', 910100, NULL);
SELECT wh_by_class, jump_wh FROM charge_session WHERE order_no = 'ZERO-1';
INSERT INTO pile_record (order_no, gun, started_at, ended_at) VALUES ('ZERO-1', '44200000120000100001001', '2026-11-20 16:00+08', '2026-11-20 16:01:15+08');
SELECT energy_wh, total FROM bill WHERE order_no = 'ZERO-1';

-- 5. A pile offline for the whole charge sends only its record: an offline
-- session is made from it, and billed from the pile's energy over its span.
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('LOST-HB-1', '44200000120000100002001', '2026-11-21 07:00+08', '2026-11-21 09:00+08', 10000);
SELECT s.channel, s.state, b.wh_by_class, b.total, b.energy_source
FROM charge_session s JOIN bill b USING (order_no) WHERE order_no = 'LOST-HB-1';

-- 6. No plan in force: the bill is not priced at any default price; it
-- keeps its energy, no amount, and is held with anomaly 12; the batch is
-- not failed.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100003001', '2026-11-20 10:00+08', 'charging', 1000, 'NOPLAN-1'),
	('44200000120000100003001', '2026-11-20 10:15+08', 'charging', 2000, 'NOPLAN-1'),
	('44200000120000100003001', '2026-11-20 10:20+08', 'idle', 2000, NULL);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('NOPLAN-1', '44200000120000100003001', '2026-11-20 10:00+08', '2026-11-20 10:15+08', 1000);
SELECT state, bill_error FROM charge_session WHERE order_no = 'NOPLAN-1';
SELECT state, anomalies, energy_wh, total, applied FROM bill WHERE order_no = 'NOPLAN-1';

-- 7. A record that cannot be accepted is quarantined with the reason.
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh) VALUES
	('GHOST-1', '44200000990000100001001', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 100),
	('BACKWARDS-1', '44200000120000100001001', '2026-11-20 11:00+08', '2026-11-20 10:00+08', 100);
SELECT source, reason, payload->>'order_no' AS order_no FROM quarantine ORDER BY quarantine_id;
-- A bad record and a good one of the same order in one batch: only the bad
-- one is quarantined, the good one makes the bill.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001001', '2026-11-20 13:00+08', 'charging', 900000, 'TWIN-1'),
	('44200000120000100001001', '2026-11-20 13:30+08', 'charging', 903000, 'TWIN-1'),
	('44200000120000100001001', '2026-11-20 13:31+08', 'idle', 903000, NULL);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh) VALUES
	('TWIN-1', '44200000120000100001001', '2026-11-20 13:00+08', '2026-11-20 13:30+08', -3000),
	('TWIN-1', '44200000120000100001001', '2026-11-20 13:00+08', '2026-11-20 13:30+08', 3000);
SELECT energy_wh FROM pile_record WHERE order_no = 'TWIN-1';
SELECT reason, payload->>'energy_wh' AS energy_wh FROM quarantine WHERE payload->>'order_no' = 'TWIN-1';
SELECT state, energy_wh, energy_source FROM bill WHERE order_no = 'TWIN-1';
-- Records a pile sent without an order number, a gun or an end are
-- quarantined; the good record of the same batch makes its bill.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001001', '2026-11-20 14:00+08', 'charging', 910000, 'PARTS-1'),
	('44200000120000100001001', '2026-11-20 14:30+08', 'charging', 912000, 'PARTS-1'),
	('44200000120000100001001', '2026-11-20 14:31+08', 'idle', 912000, NULL);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh) VALUES
	(NULL, '44200000120000100001001', '2026-11-20 14:00+08', '2026-11-20 14:30+08', 2000),
	('PARTS-1', NULL, '2026-11-20 14:00+08', '2026-11-20 14:30+08', 2000),
	('PARTS-1', '44200000120000100001001', '2026-11-20 14:00+08', NULL, 2000),
	('PARTS-1', '44200000120000100001001', '2026-11-20 14:00+08', '2026-11-20 14:30+08', 2000);
SELECT reason, payload->>'order_no' AS order_no FROM quarantine
WHERE reason IN ('no order number', 'no gun', 'no start or end') ORDER BY reason;
SELECT count(*) AS records_kept FROM pile_record WHERE order_no = 'PARTS-1' OR order_no IS NULL;
SELECT state, energy_wh FROM bill WHERE order_no = 'PARTS-1';
-- Registering the pile of GHOST-1 and replaying: its record is accepted (an
-- offline charge the platform never saw, billed from the pile's figures);
-- BACKWARDS-1 is quarantined again, with its reason.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200000990000100001', 1, 1, 7000);
SELECT * FROM replay_quarantine('44200000990000100001');
SELECT state, channel FROM charge_session WHERE order_no = 'GHOST-1';
SELECT b.state, b.energy_wh, b.energy_source, r.received_at = (SELECT (q.payload->>'received_at')::timestamptz
       FROM quarantine q WHERE q.payload->>'order_no' = 'GHOST-1') AS first_received
FROM bill b JOIN pile_record r USING (order_no) WHERE order_no = 'GHOST-1';
SELECT * FROM replay_quarantine();
SELECT source, reason, payload->>'order_no' AS order_no, replayed_at IS NOT NULL AS replayed
FROM quarantine WHERE source = 'pile_record' ORDER BY replayed DESC, order_no NULLS FIRST, reason;

-- 8. Faults open and close as events.
INSERT INTO heartbeat (gun, ts, status, meter_wh, fault_code) VALUES
	('44200000120000100002001', '2026-11-21 12:00+08', 'fault', 300000, 12);
INSERT INTO heartbeat (gun, ts, status, meter_wh, fault_code) VALUES
	('44200000120000100002001', '2026-11-21 12:05+08', 'idle', 300000, 0);
SELECT gun, fault_code, started_at, ended_at FROM fault_event;

-- 9. Traffic as real piles send it.  A pile that sends its record when
-- charging stops, before the unplug: the bill waits for the unplug, so the
-- occupancy fee is counted (30 min plugged after charging, 15 over grace).
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100002001', '2026-11-21 18:00+08', 'charging', 400000, 'EARLY-REC'),
	('44200000120000100002001', '2026-11-21 19:00+08', 'charging', 407000, 'EARLY-REC'),
	('44200000120000100002001', '2026-11-21 19:00:15+08', 'occupied', 407000, 'EARLY-REC');
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('EARLY-REC', '44200000120000100002001', '2026-11-21 18:00+08', '2026-11-21 19:00+08', 7000);
SELECT state, (SELECT count(*) FROM bill WHERE order_no = 'EARLY-REC') AS bills FROM charge_session WHERE order_no = 'EARLY-REC';
INSERT INTO heartbeat (gun, ts, status, meter_wh) VALUES ('44200000120000100002001', '2026-11-21 19:30:15+08', 'idle', 407000);
SELECT energy_wh, occupancy_fee, total FROM bill WHERE order_no = 'EARLY-REC';

-- A charging line of that session arriving again after it ended opens
-- nothing and changes nothing.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
VALUES ('44200000120000100002001', '2026-11-21 18:30+08', 'charging', 403500, 'EARLY-REC');
SELECT count(*) AS sessions, max(state) AS state FROM charge_session WHERE order_no = 'EARLY-REC';
SELECT count(*) AS open_sessions FROM charge_session WHERE gun = '44200000120000100002001' AND state IN ('pending', 'charging', 'occupied');

-- The pile was silent across the end of one charge and the start of the
-- next: heartbeats under a new order end the old session and open a new one.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100002002', '2026-11-21 08:00+08', 'charging', 10000, 'FIRST-A'),
	('44200000120000100002002', '2026-11-21 08:30+08', 'charging', 13000, 'FIRST-A');
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100002002', '2026-11-21 09:30+08', 'charging', 14000, 'SECOND-B'),
	('44200000120000100002002', '2026-11-21 10:00+08', 'charging', 17000, 'SECOND-B');
SELECT order_no, state, started_at, charging_ended_at, wh_by_class FROM charge_session
WHERE order_no IN ('FIRST-A', 'SECOND-B') ORDER BY order_no;

-- After an outage the pile reads 0, then its register again: the real rise
-- had the whole outage (since the highest reading), so it is counted; only
-- a rise no 7 kW gun could make is a jump.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001001', '2026-11-21 20:00+08', 'charging', 600000, 'OUTAGE-1'),
	('44200000120000100001001', '2026-11-21 21:00:00+08', 'charging', 0, 'OUTAGE-1'),
	('44200000120000100001001', '2026-11-21 21:00:15+08', 'charging', 606000, 'OUTAGE-1'),
	('44200000120000100001001', '2026-11-21 21:00:30+08', 'idle', 606000, NULL);
SELECT wh_by_class, jump_wh FROM charge_session WHERE order_no = 'OUTAGE-1';

-- A record claiming more than the gun could deliver in its span (the whole
-- odometer, 5,000 kWh in 10 minutes) is not billed: the bill is measured
-- from the heartbeats and held.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no) VALUES
	('44200000120000100001002', '2026-11-21 22:00+08', 'charging', 800000, 'ODOMETER-1'),
	('44200000120000100001002', '2026-11-21 22:10+08', 'charging', 801000, 'ODOMETER-1'),
	('44200000120000100001002', '2026-11-21 22:10:15+08', 'idle', 801000, NULL);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('ODOMETER-1', '44200000120000100001002', '2026-11-21 22:00+08', '2026-11-21 22:10+08', 5001000);
SELECT state, energy_wh, total, energy_source, applied FROM bill WHERE order_no = 'ODOMETER-1';

-- 10. start_session refuses what it cannot do.
SELECT start_session('44200000120000100009001', 501, 'app');
SELECT start_session('44200000120000100002001', 501, 'fax');

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
