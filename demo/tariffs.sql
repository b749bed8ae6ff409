-- demo/tariffs.sql: a station's time-of-use plans and what charges cost
-- there: the plan in force, a price change at midnight, a bus company's
-- group price, an opening-week promotion, an occupancy fee and a coupon.
SET client_min_messages = warning;
SET timezone = 'Asia/Shanghai';
SET search_path = "$user", public, evcharge;

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.') ON CONFLICT DO NOTHING;
INSERT INTO station (station_id, operator_id, name, region_code) VALUES
	(1, 12, 'Shiqi bus depot', 442000), (2, 12, 'Xiaolan public', 442000)
ON CONFLICT DO NOTHING;
TRUNCATE station_tariff, customer_group, group_station, promotion, promotion_station, promotion_group,
	occupancy_fee, occupancy_exemption, coupon CASCADE;

INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'DC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat | peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500',
  '[2026-01-01, 2026-12-01)', 'DC 2026'),
 (1, 'DC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat | peak 1.0800+0.5100, flat 0.6700+0.5100, valley 0.3300+0.5500',
  '[2026-12-01,)', 'DC winter'),
 (2, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
  '[2026-01-01,)', 'AC 2026');
INSERT INTO customer_group VALUES (100, 12, 'Zhongshan Bus Co.', 0.40, NULL);
INSERT INTO group_station VALUES (100, 1);
INSERT INTO promotion (operator_id, name, valid, service_factor) VALUES
	(12, 'Xiaolan opening week', '[2026-11-23, 2026-11-30)', 0.5);
INSERT INTO promotion_station SELECT promotion_id, 2 FROM promotion;
INSERT INTO occupancy_fee VALUES (2, 15, 0.50, 30.00);
-- A coupon of a registered member (a quote for a member nobody registered is an error).
INSERT INTO member (member_id, operator_id) VALUES (9001, 12) ON CONFLICT DO NOTHING;
INSERT INTO coupon (operator_id, member_id, amount, min_kwh, valid) VALUES (12, 9001, 3.00, 30, '[2026-11-01, 2026-12-01)');

\echo
\echo '== The plans in force'
-- A plan is long: its segments three to a line, a line per class's prices.
SELECT s.name AS station, t.current_type, t.name AS plan, t.valid,
       regexp_replace(split_part(t.tariff::text, ' | ', 1), '(([^,]+, ){2}[^,]+), ', E'\\1,\n', 'g') AS segments,
       replace(split_part(t.tariff::text, ' | ', 2), ', ', E'\n') AS prices
FROM station_tariff t JOIN station s USING (station_id) ORDER BY station_id, current_type, lower(valid);

\echo '== What charges cost'
SELECT q.what, q.kwh, q.energy_fee, q.service_fee, q.occupancy_fee, q.discount, q.total, q.class_kwh, q.applied
FROM (VALUES
	(1, 'a bus, DC, 13:00-15:00, 60 kWh',                  1, 'DC', 100, '2026-11-20 13:00'::timestamptz, '2026-11-20 15:00'::timestamptz, 60.0, NULL::timestamptz, NULL::bigint),
	(2, 'the public, same charge',                         1, 'DC', NULL, '2026-11-20 13:00', '2026-11-20 15:00', 60.0, NULL, NULL),
	(3, 'overnight over the winter price change',          1, 'DC', NULL, '2026-11-30 22:00', '2026-12-01 06:00', 90.0, NULL, NULL),
	(4, 'AC, opening week, 40 min left plugged, coupon',   2, 'AC', NULL, '2026-11-24 18:00', '2026-11-24 22:00', 28.0, '2026-11-24 22:40', 9001),
	(5, 'AC, 35 kWh, the coupon applies',                  2, 'AC', NULL, '2026-11-20 18:00', '2026-11-20 23:00', 35.0, NULL, 9001)
) AS v(n, what, station, ct, grp, started, ended, kwh, occupied, member),
LATERAL (SELECT v.what, x.* FROM evcharge.quote(v.station, v.ct, v.grp, v.started, v.ended, v.kwh, v.occupied, v.member) x) q
ORDER BY v.n;

\echo '== No plan, no price: an hour before the first plan'
SET client_min_messages = notice;
DO $$
BEGIN
	PERFORM evcharge.quote(2, 'AC', NULL, '2025-12-31 23:00', '2026-01-01 01:00', 10);
EXCEPTION WHEN SQLSTATE 'EV001' THEN
	RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
