-- Time zones: evcharge stores and follows only zones of the time zone
-- database that say where a place is.  A POSIX offset such as 'UTC+8' or
-- '+08:00' is read by PostgreSQL with the sign inverted (UTC-8): 0.1.0
-- accepted it and billed 07:00-09:00 Shanghai as peak.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

-- What is_time_zone accepts: names of pg_timezone_names, in any case (as
-- PostgreSQL looks them up), except those that would be read the wrong way.
SELECT z, is_time_zone(z)
FROM unnest(ARRAY['Asia/Shanghai', 'asia/shanghai', 'Asia/Hong_Kong', 'Europe/Berlin', 'UTC', 'PRC',
                  '+08:00', 'UTC+8', '8', 'CST', 'CET', 'Etc/GMT-8', 'GMT+8', 'localtime', 'Factory',
                  'Mars/Olympus', '']) z;

-- Every name is_time_zone accepts is in pg_timezone_names.
SELECT count(*) AS accepted_but_not_listed
FROM unnest(ARRAY['Asia/Shanghai', 'asia/shanghai', 'UTC', 'PRC', 'Europe/Berlin']) z
WHERE is_time_zone(z) AND NOT EXISTS (SELECT 1 FROM pg_timezone_names n WHERE lower(n.name) = lower(z));

-- check_time_zone says why (22023), with a hint naming Asia/Shanghai.
SELECT check_time_zone('Asia/Shanghai');
SELECT check_time_zone('+08:00');
SELECT check_time_zone('UTC+8');
SELECT check_time_zone('Etc/GMT-8');
SELECT check_time_zone('CET');
SELECT check_time_zone('localtime');
SELECT check_time_zone('CST');

-- Every zone evcharge stores is a time_zone: station.tz, finance_policy.tz,
-- statement_source.tz.
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'evcharge' AND c.relkind = 'r' AND a.attname = 'tz' AND NOT a.attisdropped
ORDER BY 1;

INSERT INTO operator VALUES (77, 'Time zone test operator');
INSERT INTO station (station_id, operator_id, name, tz) VALUES (771, 77, 'Offset typed by hand', '+08:00');
INSERT INTO station (station_id, operator_id, name, tz) VALUES (771, 77, 'Offset typed by hand', 'UTC+8');
INSERT INTO station (station_id, operator_id, name) VALUES (771, 77, 'Default zone');
UPDATE station SET tz = 'Etc/GMT-8' WHERE station_id = 771;
UPDATE finance_policy SET tz = '+08:00' WHERE operator_id = 77;
INSERT INTO statement_source (operator_id, kind, url_template, secret, tz)
VALUES (77, 'provider', 'https://pay.example/statement/{day}', 's3cret', 'UTC+8');
SELECT s.tz AS station_tz, f.tz AS books_tz FROM station s JOIN finance_policy f USING (operator_id)
WHERE s.station_id = 771;

-- The issue's station: 07:00-09:00 in Shanghai is 60 Wh valley and 60 flat.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (771, 'DC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat | peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500',
  '[2026-01-01,)', 'DC');
SELECT class_kwh FROM quote(771, 'DC', NULL, '2026-11-20 07:00', '2026-11-20 09:00', 0.12);

DELETE FROM station_tariff WHERE station_id = 771;
DELETE FROM station WHERE station_id = 771;
DELETE FROM operator WHERE operator_id = 77;
