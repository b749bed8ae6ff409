-- quote(): what a charge costs with everything applied.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES
	(1, 12, 'Shiqi bus depot'), (2, 12, 'Xiaolan public'), (3, 12, 'Dongfeng highway');
-- A station's time zone must be one the server knows (terse: the failing
-- row holds the time of the test run).
\set VERBOSITY terse
INSERT INTO station (station_id, operator_id, name, tz) VALUES (4, 12, 'Mars base', 'Mars/Olympus');
-- An abbreviation is refused too: CST is China to some and US Central to
-- the server, and has no clock changes.
INSERT INTO station (station_id, operator_id, name, tz) VALUES (5, 12, 'Ambiguous', 'CST');
SELECT evcharge.is_time_zone('Asia/Shanghai'), evcharge.is_time_zone('CST'), evcharge.is_time_zone('Mars/Olympus');
\set VERBOSITY default

-- The plan of station 1's AC piles, and a new one from 2026-12-01.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
  '[2026-01-01, 2026-12-01)', '2026 AC'),
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.8000+0.4500, valley 0.3500+0.4500',
  '[2026-12-01,)', '2026-12 AC'),
 (1, 'DC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat | peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500',
  '[2026-01-01,)', '2026 DC'),
 (2, 'AC', '00:00-24:00 flat | flat 0.7000+0.4500', '[2026-01-01,)', 'flat rate');

-- Two plans for one station and current type may not overlap in time.
INSERT INTO station_tariff (station_id, current_type, tariff, valid)
VALUES (1, 'AC', '00:00-24:00 flat | flat 1.0+0.5', '[2026-11-15, 2026-11-16)');

-- A simple quote: 10 kWh from 10:00 to 11:00 on the flat rate.
SELECT * FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10);

-- quote() takes a span and an energy total and spreads the energy evenly:
-- 15.83 kWh from 06:30 to 10:00 puts 1.5 h of 3.5 h, 6.784 kWh, in the
-- valley and 9.046 kWh in flat.
SELECT kwh, energy_fee, service_fee, total, class_kwh, applied
FROM quote(1, 'AC', NULL, '2026-11-20 06:30', '2026-11-20 10:00', 15.83);

-- A session that runs over a price change is priced by each plan for its
-- own part: 23:00 on 30 November to 01:00 on 1 December, 2 kWh.
SELECT kwh, energy_fee, service_fee, total, class_kwh, class_energy_fee, applied
FROM quote(1, 'AC', NULL, '2026-11-30 23:00', '2026-12-01 01:00', 2);

-- DC piles of the same station have their own plan.
SELECT kwh, energy_fee, service_fee, total, applied
FROM quote(1, 'DC', NULL, '2026-11-20 13:00', '2026-11-20 15:00', 60);

-- No plan in force: an error that names the station and the time; nothing
-- is ever priced at a default price.
SELECT * FROM quote(3, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10);
SELECT * FROM quote(2, 'DC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10);
SELECT * FROM quote(1, 'AC', NULL, '2025-12-31 23:00', '2026-01-01 01:00', 10);

-- Group prices: the bus company pays 0.40 service instead of 0.45, and the
-- maintenance card no service fee, only at the stations they are bound to.
INSERT INTO customer_group (group_id, operator_id, name, service_fee, service_factor) VALUES
	(100, 12, 'Bus company VIP', 0.40, NULL),
	(101, 12, 'Maintenance card', 0.00, NULL),
	(102, 12, 'Fleet 10 % off', NULL, 0.9);
INSERT INTO group_station VALUES (100, 1), (101, 1), (101, 2), (102, 2);
SELECT g, service_fee, total, applied
FROM unnest(ARRAY[NULL, 100, 101]::bigint[]) g,
     LATERAL quote(1, 'AC', g, '2026-11-20 10:00', '2026-11-20 11:00', 10);
-- At station 2 the bus company is not bound: the public price.
SELECT g, service_fee, total, applied
FROM unnest(ARRAY[100, 102]::bigint[]) g,
     LATERAL quote(2, 'AC', g, '2026-11-20 10:00', '2026-11-20 11:00', 10);

-- Promotions begin and end by themselves.  Service free until 11-11 00:00,
-- and 50 % during the opening week of station 2, for everyone.
INSERT INTO promotion (operator_id, name, valid, service_fee, service_factor) VALUES
	(12, 'Singles day: service free', '[2026-11-10 00:00, 2026-11-11 00:00)', 0, NULL),
	(12, 'Opening week', '[2026-11-23 00:00, 2026-11-30 00:00)', NULL, 0.5),
	(12, 'Bus drivers night', '[2026-11-01 00:00, 2026-11-02 00:00)', NULL, 0.5);
INSERT INTO promotion_station SELECT promotion_id, 2 FROM promotion;
INSERT INTO promotion_group SELECT promotion_id, 100 FROM promotion WHERE name = 'Bus drivers night';

-- Before, during, and across the end of the free day: 23:00 to 01:00, 4 kWh
-- evenly, the first hour free of service fee.
SELECT started, service_fee, total, applied
FROM (VALUES ('2026-11-09 20:00'::timestamptz), ('2026-11-10 20:00'), ('2026-11-10 23:00'), ('2026-11-11 20:00')) v(started),
     LATERAL quote(2, 'AC', NULL, started, started + interval '2 hours', 4);
-- Starting mid-session: 22:00 on the 22nd to 02:00 on the 23rd, half price
-- from midnight.
SELECT service_fee, class_service_fee, applied
FROM quote(2, 'AC', NULL, '2026-11-22 22:00', '2026-11-23 02:00', 8);
-- With a group price too: the promotion's factor applies to what the group
-- pays (0.45 * 0.9 * 0.5).
SELECT service_fee, applied FROM quote(2, 'AC', 102, '2026-11-24 10:00', '2026-11-24 11:00', 10);
-- A promotion limited to a group applies to that group only.
SELECT g, service_fee, applied
FROM unnest(ARRAY[NULL, 100]::bigint[]) g,
     LATERAL quote(2, 'AC', g, '2026-11-01 10:00', '2026-11-01 11:00', 10);

-- Occupancy fee: per whole minute plugged after charging, after 15 minutes'
-- grace, 0.50 yuan a minute, at most 30 yuan; maintenance crews exempt.
INSERT INTO occupancy_fee VALUES (2, 15, 0.50, 30.00);
INSERT INTO occupancy_exemption VALUES (2, 101);
SELECT plugged, occupancy_fee, total, applied
FROM (VALUES (interval '0'), ('14 min 59 s'), ('15 min'), ('16 min 59 s'), ('45 min'), ('3 hours')) v(plugged),
     LATERAL quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10, '2026-11-20 11:00'::timestamptz + plugged);
SELECT occupancy_fee, applied FROM quote(2, 'AC', 101, '2026-11-20 10:00', '2026-11-20 11:00', 10, '2026-11-20 14:00');

-- Coupons: a fixed amount off the service fee only, from a minimum energy.
-- They are the operator's registered members'.
INSERT INTO member (member_id, operator_id) VALUES (7001, 12), (7002, 12), (7003, 12);
INSERT INTO coupon (operator_id, member_id, amount, min_kwh, valid) VALUES
	(12, 7001, 3.00, 30, '[2026-11-01, 2026-12-01)'),
	(12, 7001, 1.00, 0, '[2026-11-01, 2026-12-01)'),
	(12, 7001, 50.00, 0, '[2026-11-01, 2026-12-01)'),
	(12, 7002, 5.00, 0, '[2026-10-01, 2026-11-01)');
-- The 50-yuan coupon is the best but never takes more than the service fee.
SELECT kwh, service_fee, discount, total, applied
FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 14:00', 10, NULL, 7001);
-- Without it, the best coupon the session's energy allows.
DELETE FROM coupon WHERE amount = 50.00;
SELECT kwh, service_fee, discount, total, applied
FROM (VALUES (10), (29.999), (30), (40)) v(kwh_in),
     LATERAL quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 14:00', kwh_in, NULL, 7001);
-- An expired coupon does not apply; a used coupon cannot be used again.
SELECT discount, applied FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10, NULL, 7002);
UPDATE coupon SET used_order_no = '20261120100000000001', used_at = '2026-11-20 11:00' WHERE member_id = 7001 AND amount = 3.00;
UPDATE coupon SET used_order_no = '20261121100000000002', used_at = '2026-11-21 11:00' WHERE member_id = 7001 AND amount = 3.00;
SELECT discount, applied FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 14:00', 40, NULL, 7001);
-- A used coupon is part of a bill's record: it is neither changed nor deleted.
UPDATE coupon SET amount = 30 WHERE member_id = 7001 AND amount = 3.00;
DELETE FROM coupon WHERE member_id = 7001 AND amount = 3.00;
-- Of two coupons that both cover the service fee, the smaller is used.
INSERT INTO coupon (operator_id, member_id, amount, min_kwh, valid) VALUES
	(12, 7003, 50.00, 0, '[2026-11-01, 2026-12-01)'), (12, 7003, 5.00, 0, '[2026-11-01, 2026-12-01)');
SELECT service_fee, discount, applied, (SELECT amount FROM coupon WHERE coupon_id = substr(applied[1], 9)::bigint) AS coupon_amount
FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10, NULL, 7003);

-- Bad input.
SELECT * FROM quote(99, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10);
SELECT * FROM quote(2, 'ac', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10);
SELECT * FROM quote(2, 'AC', NULL, '2026-11-20 11:00', '2026-11-20 10:00', 10);
SELECT * FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10.0005);
SELECT * FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', -1);
SELECT * FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 10, '2026-11-20 10:30');
SELECT * FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 10:00', 10);
SELECT kwh, total FROM quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 10:00', 0);
-- price_session ignores -1 ("no reading") samples, also for the span.
SELECT kwh, applied FROM price_session(1, 'AC', NULL, ARRAY['2025-12-31 23:00', '2026-11-20 10:00', '2026-11-20 11:00']::timestamptz[], ARRAY[-1, 100, 1100]);
-- Prices and station data are checked where they are stored.
\set VERBOSITY terse
INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES (2, 'XC', '00:00-24:00 flat | flat 1+1', '[2027-01-01,)');
INSERT INTO customer_group (group_id, operator_id, name, service_fee, service_factor) VALUES (103, 12, 'both', 0.4, 0.9);
INSERT INTO promotion (operator_id, name, valid, service_factor) VALUES (12, 'surcharge', '[2027-01-01, 2027-02-01)', 1.5);
\set VERBOSITY default

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
