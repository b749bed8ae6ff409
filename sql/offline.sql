-- sweep_offline: silent guns go offline, and many piles of one station
-- silent in the same couple of minutes are one network incident.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (3, 12, 'Dongfeng highway'), (4, 12, 'Nanlang');
-- Four single-gun piles at station 3, one at station 4.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w)
SELECT ('442000001200002000' || lpad(i::text, 2, '0'))::pile_id, CASE WHEN i = 5 THEN 4 ELSE 3 END, 1, 60000
FROM generate_series(1, 5) i;
SELECT * FROM maintain_partitions('2026-11-20 12:00+08');

-- Everyone is heard at 10:00; pile 4 again at 10:02.
INSERT INTO heartbeat (gun, ts, status, meter_wh)
SELECT gun_id(pile_id, 1), '2026-11-20 10:00:00+08'::timestamptz + (serial_no(pile_id) * interval '10 s'), 'idle', 1000
FROM pile;
INSERT INTO heartbeat (gun, ts, status, meter_wh) VALUES ('44200000120000200004001', '2026-11-20 10:02:00+08', 'idle', 1000);

-- At 10:02 nobody has been silent for 180 s.
SELECT * FROM sweep_offline('2026-11-20 10:02:30+08');
-- At 10:04 piles 1, 2, 3 (station 3) and 5 (station 4) have been: three
-- piles of station 3 fell silent within two minutes, one incident; pile 5
-- is alone at its station, an offline period only.
SELECT * FROM sweep_offline('2026-11-20 10:04:00+08');
SELECT gun, station_id, started_at, detected_at, ended_at, network_incident_id IS NOT NULL AS in_incident
FROM offline_period ORDER BY gun;
SELECT station_id, started_at, detected_at, piles, guns, ended_at FROM network_incident;
SELECT gun, online FROM gun_state ORDER BY gun;

-- Running it again, or late, changes nothing.
SELECT * FROM sweep_offline('2026-11-20 10:04:00+08');
SELECT * FROM sweep_offline('2026-11-20 10:04:30+08');
SELECT count(*) AS periods, (SELECT count(*) FROM network_incident) AS incidents FROM offline_period;

-- Pile 4 falls silent later, alone: its own offline period, not the incident.
SELECT * FROM sweep_offline('2026-11-20 10:06:00+08');
SELECT gun, network_incident_id IS NOT NULL AS in_incident FROM offline_period ORDER BY gun;

-- The network comes back: the first heartbeat ends each period; the
-- incident ends when the last of its guns is heard.
INSERT INTO heartbeat (gun, ts, status, meter_wh) VALUES
	('44200000120000200001001', '2026-11-20 10:20:00+08', 'idle', 1000),
	('44200000120000200002001', '2026-11-20 10:21:00+08', 'idle', 1000);
SELECT gun, ended_at FROM offline_period ORDER BY gun;
SELECT ended_at FROM network_incident;
INSERT INTO heartbeat (gun, ts, status, meter_wh) VALUES ('44200000120000200003001', '2026-11-20 10:25:00+08', 'idle', 1000);
SELECT ended_at FROM network_incident;
SELECT gun, online, last_heartbeat FROM gun_state ORDER BY gun;

-- Settings: a longer silence, and a higher bar for an incident.
SET evcharge.offline_after = '1h';
SELECT * FROM sweep_offline('2026-11-20 10:50:00+08');
SET evcharge.offline_after = '3min';
SET evcharge.incident_min_piles = 4;
SELECT * FROM sweep_offline('2026-11-20 10:50:00+08');
SELECT count(*) AS incidents FROM network_incident;
RESET evcharge.offline_after;
RESET evcharge.incident_min_piles;

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
