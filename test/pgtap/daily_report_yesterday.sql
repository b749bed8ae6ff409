-- pgTAP: daily_report(operator) with no day is yesterday in the operator's
-- books time zone (finance_policy.tz), not in the session's or UTC.  Two
-- operators whose books are 25 hours apart (Kiritimati, UTC+14, and Pago
-- Pago, UTC-11) each charge once yesterday, once today and once the day
-- before yesterday, by their own books' clock, through the pipeline; the
-- session itself runs in a third zone.  Each report of yesterday counts
-- exactly its own charge of yesterday.
BEGIN;
SELECT plan(8);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Europe/Lisbon';

INSERT INTO operator VALUES (81, 'Far East books'), (82, 'Far West books');
UPDATE finance_policy SET tz = 'Pacific/Kiritimati' WHERE operator_id = 81;
UPDATE finance_policy SET tz = 'Pacific/Pago_Pago' WHERE operator_id = 82;
INSERT INTO station (station_id, operator_id, name, tz) VALUES (81, 81, 'East', 'Pacific/Kiritimati'), (82, 82, 'West', 'Pacific/Pago_Pago');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2015-01-01,)', 'flat' FROM unnest(ARRAY[81, 82]) s;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w)
VALUES ('44200000810000100001', 81, 3, 7000), ('44200000820000100001', 82, 3, 7000);

-- Charges of 20 minutes from 11:40 local on a day of the books: gun 1
-- yesterday, gun 2 today (as far as now() allows), gun 3 the day before.
CREATE TEMP TABLE charge AS
SELECT op, g, o, ((now() AT TIME ZONE tz)::date + d + time '11:40') AT TIME ZONE tz AS t0
FROM (VALUES (81, 'Pacific/Kiritimati'), (82, 'Pacific/Pago_Pago')) b(op, tz),
     (VALUES (1, -1), (2, 0), (3, -2)) k(gun, d),
     LATERAL (SELECT format('442000008%s00001000010%s', op - 80, lpad(gun::text, 2, '0')) AS g,
                     format('Y%s-%s', op, gun) AS o) n;
-- Today's charge must have ended by now: start it earlier when 11:40 has
-- not come, and leave it out in the first half hour of the day.
UPDATE charge SET t0 = now() - interval '30 min' WHERE t0 > now() - interval '30 min';
DELETE FROM charge c USING (VALUES (81, 'Pacific/Kiritimati'), (82, 'Pacific/Pago_Pago')) b(op, tz)
WHERE c.op = b.op AND c.g LIKE '%002' AND (c.t0 AT TIME ZONE b.tz)::date <> (now() AT TIME ZONE b.tz)::date;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT c.g::gun_id, c.t0 + i * interval '1 min', CASE WHEN i < 20 THEN 'charging' ELSE 'occupied' END::gun_status,
       1000 + least(i, 20) * 100, CASE WHEN i < 20 THEN 6000 ELSE 0 END, c.o
FROM charge c, generate_series(0, 20) i;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w)
SELECT c.g::gun_id, c.t0 + interval '22 min', 'idle', 3000, 0 FROM charge c;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
SELECT c.o, c.g::gun_id, c.t0, c.t0 + interval '20 min', 2000 FROM charge c;

SELECT is((SELECT count(*) FROM bill WHERE order_no LIKE 'Y8%'), (SELECT count(*) FROM charge), 'the charges are billed');
SELECT has_function('evcharge', 'daily_report', ARRAY['bigint'], 'daily_report(operator_id) exists');
SELECT is((SELECT sessions FROM daily_report(81) WHERE line = 'total'), 1::bigint,
	'Kiritimati''s yesterday holds one charge');
SELECT is((SELECT sessions FROM daily_report(82) WHERE line = 'total'), 1::bigint,
	'Pago Pago''s yesterday holds one charge');
SELECT results_eq('SELECT * FROM daily_report(81)',
	$$SELECT * FROM daily_report(81, ((SELECT t0 FROM charge WHERE o = 'Y81-1') AT TIME ZONE 'Pacific/Kiritimati')::date)$$,
	'daily_report(81) is the report of the day of its charge of yesterday, by its books');
SELECT results_eq('SELECT * FROM daily_report(82)',
	$$SELECT * FROM daily_report(82, ((SELECT t0 FROM charge WHERE o = 'Y82-1') AT TIME ZONE 'Pacific/Pago_Pago')::date)$$,
	'daily_report(82) is the report of the day of its charge of yesterday, by its books');
SELECT throws_ok('SELECT * FROM daily_report(999)', 'P0002', 'operator 999 is not registered',
	'an unknown operator is an error');
SELECT throws_ok('SELECT * FROM daily_report(81, NULL)', '22004', NULL,
	'a NULL day is still an error, not yesterday');

SELECT * FROM finish();
ROLLBACK;
