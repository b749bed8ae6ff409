-- heartbeat: what piles send, how a batch is taken in, what is quarantined,
-- and the live state of every gun.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot'), (2, 12, 'Xiaolan public');

-- Registered piles: two guns of 7 kW AC, one gun of 120 kW DC, and a
-- parking ground lock (product 01).  Legacy ids are refused: the cloud
-- protocol does not accept them.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('4420 0000 1200 0010 0001', 1, 2, 7000, 'AC-2.3.1'),
	('4420 0000 1200 0020 0002', 1, 1, 120000, 'DC-3.0.4'),
	('4420 0000 1200 1010 0005', 1, 1, 1, 'LOCK-1.0');
\set VERBOSITY terse
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('4420000012000003', 1, 1, 7000);
\set VERBOSITY default

-- Daily partitions (UTC days) from yesterday to a week ahead.
SELECT * FROM maintain_partitions('2026-11-20 12:00+08');
SELECT * FROM maintain_partitions('2026-11-20 12:00+08');

-- A batch as a loader sends it, bad rows among good ones: COPY keeps the
-- good rows and quarantines the others with the reason.
COPY heartbeat (gun, ts, status, meter_wh, power_w, soc, fault_code, order_no) FROM stdin;
44200000120000100001001	2026-11-20 10:00:00+08	idle	500000	0	\N	0	\N
44200000120000100001001	2026-11-20 10:00:15+08	charging	500000	6900	40	0	20261120100000000001
44200000120000100001001	2026-11-20 10:00:30+08	charging	500029	6950	40	0	20261120100000000001
44200000120000100001001	2026-11-20 10:00:30+08	charging	500029	6950	40	0	20261120100000000001
44200000120000100001002	2026-11-20 10:00:10+08	idle	300000	0	\N	0	\N
44200000120000200002001	2026-11-20 10:00:05+08	charging	9000000	118000	55	0	20261120095500000007
44200000120000100001003	2026-11-20 10:00:10+08	idle	1000	0	\N	0	\N
44200000120000100099001	2026-11-20 10:00:10+08	idle	1000	0	\N	0	\N
44200000120000200002001	2026-11-20 10:00:20+08	charging	\N	118000	55	0	20261120095500000007
44200000120000200002001	1999-12-31 23:59:59+08	charging	9000100	118000	55	0	20261120095500000007
44200000120000200002001	2026-11-20 10:00:35+08	charging	9000990	118000	150	0	20261120095500000007
44200000120010100005001	2026-11-20 10:00:40+08	charging	0	0	\N	0	\N
44200000120010100005001	2026-11-20 10:00:45+08	idle	\N	\N	\N	0	\N
44200000120000100001002	2026-11-20 10:00:50+08	idle	300000	0	50	0	\N
44200000120000100001002	2026-11-20 10:00:50+08	idle	300000	0	150	0	\N
\.

SELECT reason, gun, ts FROM quarantine ORDER BY quarantine_id;
-- The log keeps what was accepted, duplicates included as delivered.
SELECT count(*) AS accepted_rows FROM heartbeat;
SELECT gun, station_id, status, online, last_heartbeat, current_order, power_w, soc, meter_wh FROM gun_state ORDER BY gun;

-- An older heartbeat arriving late is logged but does not overwrite the
-- newest state; a newer one does.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, soc, fault_code)
VALUES ('44200000120000100001001', '2026-11-20 09:59:00+08', 'idle', 499990, 0, NULL, 0);
SELECT status, last_heartbeat, meter_wh FROM gun_state WHERE gun = '44200000120000100001001';
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, soc, fault_code, order_no)
VALUES ('44200000120000100001001', '2026-11-20 10:00:45+08', 'charging', 500058, 6950, 41, 0, '20261120100000000001');
SELECT status, last_heartbeat, meter_wh, soc FROM gun_state WHERE gun = '44200000120000100001001';

-- Registering the missing pile and replaying its quarantined traffic.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('4420 0000 1200 0010 0099', 2, 2, 7000);
SELECT * FROM replay_quarantine('44200000120000100099');
SELECT gun, station_id, status, last_heartbeat FROM gun_state WHERE gun = '44200000120000100099001';
SELECT reason, replayed_at IS NOT NULL AS replayed FROM quarantine ORDER BY quarantine_id;
-- Replaying everything left: the other rows still cannot be accepted and
-- are quarantined again, each once more with its reason.
SELECT * FROM replay_quarantine();
SELECT count(*) FILTER (WHERE replayed_at IS NULL) AS waiting, count(*) AS total FROM quarantine;

-- Heartbeats land in their day's partition (UTC days); a day without a
-- partition goes to the default partition until maintain_partitions()
-- makes one, which moves them in.  (A pile uploading late after being
-- offline sends such old days.)
INSERT INTO heartbeat (gun, ts, status, meter_wh) VALUES ('44200000120000100001002', '2026-11-01 08:00+08', 'idle', 300000);
SELECT tableoid::regclass AS partition, count(*) FROM heartbeat GROUP BY 1 ORDER BY tableoid::regclass::text;
SELECT * FROM maintain_partitions('2026-11-01 12:00+08');
SELECT tableoid::regclass AS partition, count(*) FROM heartbeat GROUP BY 1 ORDER BY tableoid::regclass::text;
-- Retention drops whole days: with 10 days kept, as of 2026-11-20, the
-- partitions before 2026-11-10 go, and with them the row of 1 November.
SET evcharge.heartbeat_retention_days = 10;
SELECT * FROM maintain_partitions('2026-11-20 12:00+08');
SELECT count(*) AS partitions_left, min(c.relname) AS oldest
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname <> 'heartbeat_default';
RESET evcharge.heartbeat_retention_days;
SELECT count(*) AS heartbeats_left FROM heartbeat;

-- A loader that could not read a line's gun, time or status still sends
-- it: the COPY keeps its good rows, and the three without a key are
-- quarantined whole (a time-less row sat in the default partition).
COPY heartbeat (gun, ts, status, meter_wh, order_no) FROM stdin;
44200000120000100001001	2026-11-20 11:00:00+08	idle	500100	\N
\N	2026-11-20 11:00:05+08	idle	500100	\N
44200000120000100001001	\N	charging	500100	20261120110000000001
44200000120000100001001	2026-11-20 11:00:10+08	\N	500100	\N
44200000120000100001002	2026-11-20 11:00:10+08	idle	300000	\N
\.
SELECT reason, gun, ts, payload->>'meter_wh' AS meter_wh FROM quarantine
WHERE reason IN ('no gun', 'no time', 'no status') ORDER BY quarantine_id;
SELECT count(*) AS accepted, count(*) FILTER (WHERE gun IS NULL OR ts IS NULL OR status IS NULL) AS without_a_key
FROM heartbeat WHERE ts >= '2026-11-20 11:00+08' OR ts IS NULL;
SELECT last_heartbeat FROM gun_state WHERE gun = '44200000120000100001002';

-- Pile clocks are bounded by the operator's own policy: an operator that
-- went live in 2020 moves plausible_from, and a heartbeat from 2019 (which
-- the platform's default would take) is quarantined with that bound, while
-- one after it is accepted.
UPDATE anomaly_policy SET plausible_from = '2020-06-01 00:00+08' WHERE operator_id = 12;
COPY heartbeat (gun, ts, status, meter_wh) FROM stdin;
44200000120000100001002	2019-05-01 09:00:00+08	idle	300000
44200000120000100001002	2020-06-01 00:00:00+08	idle	300000
\.
SELECT reason, ts FROM quarantine WHERE ts < '2020-06-02' AND ts > '2019-01-01' ORDER BY quarantine_id;
SELECT count(*) AS kept FROM heartbeat WHERE gun = '44200000120000100001002' AND ts = '2020-06-01 00:00+08';

-- heartbeat_problem() is the trigger's own test and words: asked of the
-- rows above and of the first batch's refusals, it gives their reasons.
SELECT heartbeat_problem('44200000120000100001002', '2019-05-01 09:00+08', 'idle', 300000, NULL,
                         '44200000120000100001', 2, p.plausible_from) AS clock,
       heartbeat_problem('44200000120000100001002', '2020-06-01 00:00+08', 'idle', 300000, NULL,
                         '44200000120000100001', 2, p.plausible_from) AS accepted,
       heartbeat_problem('44200000120000100001003', '2026-11-20 10:00+08', 'idle', 1, NULL,
                         '44200000120000100001', 2, p.plausible_from) AS gun_no,
       heartbeat_problem('44200000120000100099001', '2026-11-20 10:00+08', 'idle', 1, NULL,
                         NULL, NULL, NULL) AS unregistered,
       heartbeat_problem('44200000120010100005001', '2026-11-20 10:00+08', 'occupied', 0, NULL,
                         '44200000120010100005', 1, p.plausible_from) AS ground_lock,
       heartbeat_problem('44200000120000100001001', '2026-11-20 10:00+08', 'idle', 1, 150::smallint,
                         '44200000120000100001', 2, NULL) AS no_policy,
       heartbeat_problem(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) AS no_gun
FROM anomaly_policy p WHERE p.operator_id = 12 \gx
UPDATE anomaly_policy SET plausible_from = DEFAULT WHERE operator_id = 12;

-- Settings are checked.
SET evcharge.offline_after = '10s';
SET evcharge.incident_min_piles = 1;

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
