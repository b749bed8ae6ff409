-- Group prices through the pipeline: a member's customer group (人群电价)
-- reaches the bill of a charge started in the app, only at the stations the
-- group is bound to, with its occupancy exemption; a promotion limited to a
-- group applies to its members only; a partner's user is never priced as a
-- member.  Each charge goes start_session -> heartbeats -> pile record ->
-- bill, as in the field.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi'), (2, 12, 'Xiaolan');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-24:00 flat | flat 0.7000+0.4500', '[2026-01-01,)', 'AC' FROM generate_series(1, 2) s;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1'),
	('44200000120000100002', 2, 9, 7000, 'AC-2.3.1');
-- VIP pays 0.40 service instead of 0.45, at station 1 only; the
-- maintenance crew pays no service fee and no occupancy fee at station 1.
INSERT INTO customer_group (group_id, operator_id, name, service_fee) VALUES
	(5, 12, 'VIP', 0.4000), (6, 12, 'Maintenance', 0);
INSERT INTO group_station VALUES (5, 1), (6, 1);
INSERT INTO occupancy_fee (station_id, grace_minutes, fee_per_minute) VALUES (1, 10, 0.1000);
INSERT INTO occupancy_exemption VALUES (1, 6);
-- A promotion for group 7 (a taxi fleet) only: service at 50 % at station 2
-- during November.
INSERT INTO customer_group (group_id, operator_id, name) VALUES (7, 12, 'Taxi fleet');
INSERT INTO promotion (operator_id, name, valid, service_factor)
VALUES (12, 'Taxi week', '[2026-11-01 00:00+08, 2026-12-01 00:00+08)', 0.5);
INSERT INTO promotion_station SELECT promotion_id, 2 FROM promotion;
INSERT INTO promotion_group SELECT promotion_id, 7 FROM promotion;
INSERT INTO member (member_id, operator_id, group_id) VALUES
	(501, 12, NULL), (502, 12, 5), (503, 12, 6), (504, 12, 7);
INSERT INTO partner (partner_id, operator_id, name) VALUES (8, 12, 'Amap');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');

-- An hour at 6 kWh; the first heartbeat after charging (09:05) says the
-- car is full and still plugged; unplugged at 09:40: 35 minutes occupied,
-- 25 after the 10-minute grace.
CREATE FUNCTION pg_temp.charge(gun gun_id, o text) RETURNS text LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT gun, '2026-11-20 08:00+08'::timestamptz + i * interval '5 min', 'charging', 500000 + i * 500, o
	FROM generate_series(0, 12) i;
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no) VALUES
		(gun, '2026-11-20 09:05+08', 'occupied', 506000, o),
		(gun, '2026-11-20 09:40+08', 'idle', 506000, NULL);
	INSERT INTO evcharge.pile_record VALUES (o, gun, '2026-11-20 08:00+08', '2026-11-20 09:00+08', 6000);
	SELECT o;
$$;
CREATE TEMP TABLE charges (who text, order_no text);
INSERT INTO charges VALUES
	('501 public, station 1', pg_temp.charge('44200000120000100001001', start_session('44200000120000100001001', 501, 'app'))),
	('502 VIP, station 1', pg_temp.charge('44200000120000100001002', start_session('44200000120000100001002', 502, 'qr'))),
	('502 VIP, station 2', pg_temp.charge('44200000120000100002002', start_session('44200000120000100002002', 502, 'app'))),
	('503 maintenance, station 1', pg_temp.charge('44200000120000100001003', start_session('44200000120000100001003', 503, 'card'))),
	('504 taxi, station 2', pg_temp.charge('44200000120000100002004', start_session('44200000120000100002004', 504, 'vin'))),
	('501 public, station 2', pg_temp.charge('44200000120000100002001', start_session('44200000120000100002001', 501, 'app'))),
	('Amap user, station 1', pg_temp.charge('44200000120000100001008', start_session('44200000120000100001008', NULL, 'partner', 8)));

-- The session keeps the group it started with.
SELECT c.who, s.channel, s.group_id FROM charges c JOIN charge_session s USING (order_no) ORDER BY c.who;
-- 6 kWh: electricity 4.20 everywhere; service 2.70 at 0.45, 2.40 at the VIP
-- price (station 1 only), 0 for maintenance, 1.35 for the taxi at 50 %;
-- occupancy 25 min at 0.10 at station 1, except for the exempt maintenance
-- crew.  The partner's user pays the public price.
SELECT c.who, b.energy_wh, b.energy_fee, b.service_fee, b.occupancy_fee, b.total, b.applied
FROM charges c JOIN bill b USING (order_no) ORDER BY c.who;
-- The same charges as quote() prices them: the pipeline and the quote agree,
-- to the fen and in what they say applied (one occupancy rule for both).
SELECT c.who, b.total = q.total AS same_as_quote, b.occupancy_fee = q.occupancy_fee AS same_occupancy,
       b.applied = q.applied AS same_applied
FROM charges c JOIN bill b USING (order_no) JOIN charge_session s USING (order_no)
CROSS JOIN LATERAL quote(b.station_id, 'AC', s.group_id, b.started_at, b.ended_at,
                         b.energy_wh / 1000.0, b.occupied_until) q
ORDER BY c.who;

\i sql/include/reset.sql
