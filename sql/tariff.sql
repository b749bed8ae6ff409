-- tou_tariff: a complete daily time-of-use price plan.
SET search_path = public, evcharge;

-- The text form: segments, "|", then per class "electricity+service" in
-- yuan per kWh.  Segments may come in any order; output is sorted, prices
-- print with 4 decimals in class order (sharp, peak, flat, valley).
SELECT '22:00-24:00 flat, 19:00-22:00 peak, 17:00-19:00 flat, 14:00-17:00 peak,
        08:00-14:00 flat, 00:00-08:00 valley
        | valley 0.33+0.55, flat 0.64+0.51, peak 1.03+0.51'::tou_tariff;

-- Classes may also be written p0-p3 or 尖峰平谷; adjacent segments of one
-- class merge, so equal plans compare equal.
SELECT '00:00-08:00 p3, 08:00-12:00 p2, 12:00-24:00 p2 | p2 0.7+0.45, p3 0.3+0.45'::tou_tariff;
SELECT '00:00-08:00 谷, 08:00-10:00 尖, 10:00-24:00 峰 | 尖 1.2+0.5, 峰 1.0+0.5, 谷 0.3+0.5'::tou_tariff;
SELECT '00:00-12:00 flat, 12:00-24:00 flat | flat 0.7+0.45'::tou_tariff
     = '00:00-24:00 flat | flat 0.7000+0.4500'::tou_tariff AS same_plan;

-- What a plan says.
SELECT class_at(t, '07:59'), class_at(t, '08:00'), class_at(t, '23:59:59'), class_at(t, '24:00')
FROM (SELECT '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7+0.45, valley 0.3+0.45'::tou_tariff AS t) s;
SELECT * FROM tariff_segments('00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-24:00 flat | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55');
SELECT * FROM tariff_prices('00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-24:00 flat | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55');

-- jsonb for applications, and back (pass the argument as jsonb: tou_tariff('...')
-- with an untyped literal is a cast of the text form, as for any type).
SELECT '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7+0.45, valley 0.3+0.45'::tou_tariff::jsonb;
SELECT tou_tariff('{"segments": [{"start": "08:00", "end": "24:00", "class": "flat"},
                                 {"start": "00:00", "end": "08:00", "class": "valley"}],
                    "prices": {"flat": {"energy": 0.7, "service": 0.45},
                               "valley": {"energy": 0.3, "service": 0.45}}}'::jsonb);

-- A plan must cover the day exactly once: evcharge names the clash.
SELECT '00:00-08:00 valley, 08:00-14:00 flat, 12:00-17:00 peak, 17:00-24:00 flat | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55'::tou_tariff;
SELECT '00:00-10:00 valley, 08:00-14:00 flat, 12:00-24:00 peak | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55'::tou_tariff;
-- ... and the spans no segment covers.
SELECT '00:00-08:00 valley, 09:00-14:00 flat, 14:00-23:00 peak | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55'::tou_tariff;
-- Every class used has a price.
SELECT '00:00-08:00 valley, 08:00-14:00 flat, 14:00-24:00 peak | flat 0.64+0.51, valley 0.33+0.55'::tou_tariff;
-- Prices: at most 4 decimals, never negative.
SELECT '00:00-24:00 flat | flat 0.64001+0.51'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.64+-0.51'::tou_tariff;
-- Syntax: what is wrong and where.
SELECT '00:00-24:00 flat'::tou_tariff;
SELECT '22:00-08:00 valley, 08:00-22:00 flat | flat 0.64+0.51, valley 0.33+0.55'::tou_tariff;
SELECT '00:00-08:00 valley, 08:00-24:00 offpeak | valley 0.33+0.55'::tou_tariff;
SELECT '00:00-8:00 valley, 08:00-24:00 flat | flat 0.64+0.51, valley 0.33+0.55'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.64'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.64+0.51, flat 0.7+0.51'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.64+0.51 | valley 0.3+0.5'::tou_tariff;
SELECT '00:00-24:00 flat | flat abc+0.51'::tou_tariff;
-- A price is digits, optionally a point and 1 to 4 digits: no sign, no
-- point without a digit on each side, nothing after the service fee.  The
-- detail names the character (counted from 1 in the whole input) and what
-- belongs there.
SELECT '00:00-24:00 flat | flat 0.64++0.51'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.64+ +0.51'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.+0'::tou_tariff;
SELECT '00:00-24:00 flat | flat .5+0'::tou_tariff;
SELECT '00:00-24:00 flat | flat +0.5+0'::tou_tariff;
SELECT '00:00-24:00 flat | flat 1e2+0'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.5 0+0.4'::tou_tariff;
SELECT '00:00-24:00 flat | flat 0.5+0.4 x'::tou_tariff;
SELECT '00:00-24:00 尖 | 尖 1.5+O.5'::tou_tariff;
-- However many digits, a price above 9999.9999 is out of range (22023).
SELECT '00:00-24:00 flat | flat 99999999999999999999999999+0'::tou_tariff;
-- What the grammar allows: white space around "+", any white space after
-- the class, no decimals or up to 4.
SELECT '00:00-24:00 flat | flat 0.5 + 0.4'::tou_tariff AS spaced,
       E'00:00-24:00 flat | flat\n7+0.4500'::tou_tariff AS newline;
-- The jsonb form is checked field by field.
SELECT tou_tariff('{"segment": []}'::jsonb);
SELECT tou_tariff('{"segments": [{"start": "00:00", "end": "24:00", "class": "flat, 00:00-24:00 peak"}], "prices": {}}'::jsonb);
SELECT tou_tariff('{"segments": [{"start": "00:00", "end": "24:00", "class": "flat"}], "prices": {"flat": {"energy": "0.7", "service": 0.45}}}'::jsonb);

-- Money: price() sums exactly and truncates each figure to the fen once.
-- The domain's worked example: 12.50 kWh flat at 0.70 + 0.45 and 3.33 kWh
-- valley at 0.30 + 0.45: electricity 8.75 + 0.999 = 9.749 -> 9.74, service
-- 5.625 + 1.4985 = 7.1235 -> 7.12, total 16.86.
SELECT * FROM price('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
                    ARRAY[0, 0, 12500, 3330]);
-- Truncation, never rounding up: 1 Wh at 1.9999 yuan/kWh is 0.0019999 yuan.
SELECT energy_fee, service_fee, total
FROM price('00:00-24:00 flat | flat 1.9999+9.9999', ARRAY[0, 0, 1, 0]);
-- Energy in a class the plan does not price is an error, never a default price.
SELECT * FROM price('00:00-24:00 flat | flat 0.7+0.45', ARRAY[0, 1000, 0, 0]);
SELECT * FROM price('00:00-24:00 flat | flat 0.7+0.45', ARRAY[0, 0, -5, 0]);
SELECT * FROM price('00:00-24:00 flat | flat 0.7+0.45', ARRAY[0, 0, 5]);
-- Huge meter values: every amount is exact or 22003, never a wrapped figure.
SELECT * FROM price('00:00-24:00 flat | flat 0.7+0.45', ARRAY[0, 0, 9223372036854775807, 0]);
SELECT * FROM price('00:00-08:00 valley, 08:00-24:00 flat | flat 0+0, valley 0+0',
                    ARRAY[0, 0, 4611686018427387904, 4611686018427387904]);
SELECT kwh, energy_fee, service_fee, total
FROM price('00:00-24:00 flat | flat 9999.9999+9999.9999', ARRAY[0, 0, 92233720368, 0]);
