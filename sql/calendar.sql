-- Plans by calendar: seasons, weekdays and weekends, public holidays with
-- make-up working days, declared high-temperature days; the fifth class,
-- deep valley (深谷); free-charging promotions.  plan_in_force() is the one
-- answer to "which plan is in force", used by quote, the pipeline, the
-- bill and the evidence.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

-- Deep valley is a fifth class, p4, written deep_valley, p4 or 深谷.
SELECT '00:00-06:00 深谷, 06:00-08:00 p3, 08:00-24:00 flat | 深谷 0.2000+0.5500, valley 0.3300+0.5500, flat 0.6400+0.5100'::tou_tariff;
SELECT * FROM tariff_prices('00:00-06:00 deep_valley, 06:00-24:00 flat | flat 0.64+0.51, p4 0.20+0.55');
SELECT class_at('00:00-06:00 deep_valley, 06:00-24:00 flat | flat 0.64+0.51, p4 0.20+0.55', '05:59');
SELECT to_jsonb('00:00-06:00 deep_valley, 06:00-24:00 flat | flat 0.64+0.51, p4 0.20+0.55'::tou_tariff);
SELECT tou_tariff('{"segments": [{"start": "00:00", "end": "06:00", "class": "deep_valley"}, {"start": "06:00", "end": "24:00", "class": "flat"}], "prices": {"flat": {"energy": 0.64, "service": 0.51}, "deep_valley": {"energy": 0.2, "service": 0.55}}}'::jsonb);
-- An unknown class names the five.
SELECT '00:00-24:00 super_valley | flat 0.64+0.51'::tou_tariff;

-- A plan without deep valley is stored, compared and sent exactly as
-- before 0.3.0 (version 1, 4 classes: 8 + 64 + 8 bytes per segment); only
-- a plan with deep valley takes the 5-class form (8 + 80 + 8 per segment).
SELECT pg_column_size('00:00-08:00 valley, 08:00-24:00 flat | flat 0.70+0.45, valley 0.30+0.45'::tou_tariff) AS four_classes,
       pg_column_size('00:00-08:00 deep_valley, 08:00-24:00 flat | flat 0.70+0.45, deep_valley 0.30+0.45'::tou_tariff) AS five_classes;
SELECT tou_tariff_send('00:00-24:00 flat | flat 0.64+0.51') AS sent_as_version_1;
SELECT substr(tou_tariff_send('00:00-24:00 p4 | p4 0.20+0.55')::text, 1, 4) AS deep_valley_sent_as_version_2;

-- The split and the price give a fifth figure when the plan has deep
-- valley, and the four figures of before when it has not.
SELECT split_energy('00:00-06:00 deep_valley, 06:00-24:00 flat | flat 0.64+0.51, deep_valley 0.20+0.55',
                    ARRAY['2026-12-01 05:00', '2026-12-01 07:00']::timestamptz[], ARRAY[0, 2000]) AS with_deep_valley,
       split_energy('00:00-06:00 valley, 06:00-24:00 flat | flat 0.64+0.51, valley 0.20+0.55',
                    ARRAY['2026-12-01 05:00', '2026-12-01 07:00']::timestamptz[], ARRAY[0, 2000]) AS without;
SELECT * FROM price('00:00-06:00 deep_valley, 06:00-24:00 flat | flat 0.64+0.51, deep_valley 0.20+0.55', '{0,0,1250,0,3333}');
-- Wh in deep valley under a plan that has no price for it is refused.
SELECT * FROM price('00:00-24:00 flat | flat 0.64+0.51', '{0,0,1000,0,10}');

-- The operator's calendar.  Seasons: July to September is summer,
-- December to February winter (the rest of the year has no season).
INSERT INTO operator VALUES (21, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (31, 21, 'Shiqi bus depot');
INSERT INTO tariff_season (operator_id, month, season)
SELECT 21, m, CASE WHEN m BETWEEN 7 AND 9 THEN 'summer' ELSE 'winter' END
FROM unnest(ARRAY[1, 2, 7, 8, 9, 12]) m;
-- Public holidays and the make-up working days around them, as the
-- operator entered them for 2026.
INSERT INTO calendar_day (operator_id, day, kind, name) VALUES
 (21, '2026-01-01', 'holiday', '元旦'), (21, '2026-01-02', 'holiday', '元旦'), (21, '2026-01-03', 'holiday', '元旦'),
 (21, '2026-01-04', 'workday', '元旦调休'),
 (21, '2026-05-01', 'holiday', '劳动节'), (21, '2026-05-02', 'holiday', '劳动节'), (21, '2026-05-03', 'holiday', '劳动节'),
 (21, '2026-05-04', 'holiday', '劳动节'), (21, '2026-05-05', 'holiday', '劳动节'), (21, '2026-05-09', 'workday', '劳动节调休'),
 (21, '2026-09-27', 'workday', '国庆调休'),
 (21, '2026-10-01', 'holiday', '国庆节'), (21, '2026-10-02', 'holiday', '国庆节'), (21, '2026-10-03', 'holiday', '国庆节'),
 (21, '2026-10-04', 'holiday', '国庆节'), (21, '2026-10-05', 'holiday', '国庆节'), (21, '2026-10-06', 'holiday', '国庆节'),
 (21, '2026-10-07', 'holiday', '国庆节'), (21, '2026-10-10', 'workday', '国庆调休');
-- Two declared high-temperature days: a summer Wednesday and National Day.
INSERT INTO declared_day (operator_id, day, kind, reason) VALUES
 (21, '2026-08-05', 'high_temperature', 'Zhongshan weather service: red alert, 38 °C'),
 (21, '2026-10-01', 'high_temperature', 'Zhongshan weather service: orange alert, 36 °C');

-- The DC plans of the station: one for every day, a summer plan, a winter
-- plan with deep valley at night, a weekend plan, a holiday plan, and the
-- hot-day plan, summer prices with a sharp peak 12:00-15:00.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name, season, day_kind) VALUES
 (31, 'DC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
  '[2026-01-01,)', 'every day', NULL, NULL),
 (31, 'DC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-24:00 flat | peak 1.0300+0.5100, flat 0.7500+0.4500, valley 0.3000+0.4500',
  '[2026-01-01,)', 'summer', 'summer', NULL),
 (31, 'DC', '00:00-06:00 deep_valley, 06:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500, deep_valley 0.2000+0.4500',
  '[2026-01-01,)', 'winter nights', 'winter', NULL),
 (31, 'DC', '00:00-24:00 flat | flat 0.6000+0.4000', '[2026-01-01,)', 'weekend', NULL, 'weekend'),
 (31, 'DC', '00:00-24:00 flat | flat 0.6000+0.3000', '[2026-01-01,)', 'holiday', NULL, 'holiday'),
 (31, 'DC', '00:00-08:00 valley, 08:00-12:00 flat, 12:00-15:00 sharp, 15:00-17:00 peak, 17:00-24:00 flat | sharp 1.3000+0.5100, peak 1.0300+0.5100, flat 0.7500+0.4500, valley 0.3000+0.4500',
  '[2026-01-01,)', 'high temperature', NULL, 'high_temperature');

-- Precedence: a declared day, then a holiday, then weekday or weekend,
-- then the season, then every day.  Noon on days that show each rule:
SELECT d AS day, to_char(d, 'Dy') AS dow, p.name AS plan, p.day_type, p.season, p.matched
FROM unnest(ARRAY['2026-01-01', '2026-01-03', '2026-01-04', '2026-01-05', '2026-03-02', '2026-03-07',
                  '2026-05-04', '2026-05-09', '2026-08-04', '2026-08-05', '2026-08-08', '2026-09-27',
                  '2026-10-01', '2026-10-02', '2026-10-10', '2026-12-07']::date[]) d
CROSS JOIN LATERAL plan_in_force(31, 'DC', d + time '12:00') p
ORDER BY d;

-- The whole year, day by day: how many days each plan prices.
SELECT p.name AS plan, p.matched, count(*) AS days, min(d)::date AS first, max(d)::date AS last
FROM generate_series('2026-01-01'::date, '2026-12-31', interval '1 day') d
CROSS JOIN LATERAL plan_in_force(31, 'DC', d::date + time '12:00') p
GROUP BY p.name, p.matched ORDER BY days DESC, plan;

-- The day is the station's: 2026-08-04 23:30 in Zhongshan is 15:30 UTC.
SELECT name, local_day FROM plan_in_force(31, 'DC', '2026-08-04 15:30:00+00');
SELECT name, local_day FROM plan_in_force(31, 'DC', '2026-08-04 16:00:00+00');
-- Nothing in force before the plans begin: no row (callers raise EV001).
SELECT count(*) FROM plan_in_force(31, 'DC', '2025-12-31 12:00');

-- A session crossing midnight into the declared hot day is split at the
-- station's midnight, each part priced by its own day's plan: 4 kWh
-- evenly from 22:00 on 4 August to 02:00 on 5 August, 2 kWh of summer
-- flat (0.75 + 0.45) and 2 kWh of hot-day valley (0.30 + 0.45).
SELECT kwh, energy_fee, service_fee, total, class_kwh, class_energy_fee, applied
FROM quote(31, 'DC', NULL, '2026-08-04 22:00', '2026-08-05 02:00', 4);
-- The sharp peak of the hot day: 13:00-14:00, 30 kWh.
SELECT kwh, energy_fee, service_fee, total, class_kwh, applied
FROM quote(31, 'DC', NULL, '2026-08-05 13:00', '2026-08-05 14:00', 30);
-- A winter night: 3 kWh from 05:00 to 07:00, half in deep valley.
SELECT kwh, energy_fee, service_fee, total, class_kwh, class_energy_fee, applied
FROM quote(31, 'DC', NULL, '2026-12-07 05:00', '2026-12-07 07:00', 3);
-- A midnight where the plan stays is no cut: one plan, priced as one.
SELECT kwh, total, applied FROM quote(31, 'DC', NULL, '2026-08-03 23:00', '2026-08-04 01:00', 2);

-- Free charging before 12:00 on the opening day: electricity and service
-- fee both waived, for the morning part only.
INSERT INTO promotion (operator_id, name, valid, service_fee, energy_fee)
VALUES (21, 'free charging before 12:00', '[2026-03-02 00:00, 2026-03-02 12:00)', 0, 0);
INSERT INTO promotion_station (promotion_id, station_id)
SELECT promotion_id, 31 FROM promotion WHERE name = 'free charging before 12:00';
SELECT kwh, energy_fee, service_fee, total, class_energy_fee, class_service_fee, applied
FROM quote(31, 'DC', NULL, '2026-03-02 11:00', '2026-03-02 13:00', 10);

-- Errors.  A season the operator does not have:
INSERT INTO station_tariff (station_id, current_type, tariff, valid, season)
VALUES (31, 'DC', '00:00-24:00 flat | flat 0.70+0.45', '[2026-01-01,)', 'autumn');
-- Two weekend plans of one station and current type may not overlap:
INSERT INTO station_tariff (station_id, current_type, tariff, valid, day_kind)
VALUES (31, 'DC', '00:00-24:00 flat | flat 0.50+0.40', '[2026-06-01, 2026-07-01)', 'weekend');
-- (Terse from here: a failing row holds the time of the test run.)
\set VERBOSITY terse
-- A promotion gives at most one of energy_fee and energy_factor (a
-- factor of 0.5 is half-price electricity):
INSERT INTO promotion (operator_id, name, valid, service_factor, energy_fee, energy_factor)
VALUES (21, 'both', '[2026-03-03, 2026-03-04)', 1, 0.1, 0.5);
-- A make-up working day is a weekday, not a kind of plan:
INSERT INTO station_tariff (station_id, current_type, tariff, valid, day_kind)
VALUES (31, 'DC', '00:00-24:00 flat | flat 0.50+0.40', '[2026-06-01, 2026-07-01)', 'workday');
-- A declared day cannot be called a holiday (the calendar says those):
INSERT INTO declared_day (operator_id, day, kind) VALUES (21, '2026-08-06', 'holiday');
-- One declared kind per day:
INSERT INTO declared_day (operator_id, day, kind) VALUES (21, '2026-08-05', 'typhoon');

\set VERBOSITY default

\i sql/include/reset.sql
