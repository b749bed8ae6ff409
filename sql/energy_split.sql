-- split_energy: the energy of a session per class {sharp, peak, flat,
-- valley}, in Wh, from its samples of the cumulative meter.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
CREATE TEMP TABLE plan AS SELECT
	'00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat | peak 1.03+0.51, flat 0.64+0.51, valley 0.33+0.55'::tou_tariff AS t;

-- Two samples straddling 08:00: 900 Wh between 07:50 and 08:20 are shared
-- by time, 10 minutes valley and 20 minutes flat.
SELECT split_energy(t, ARRAY['2026-11-20 07:50', '2026-11-20 08:20']::timestamptz[], ARRAY[10000, 10900])
FROM plan;

-- The meter is a lifetime register: a session is measured between its
-- readings, never from zero.
SELECT split_energy(t, ARRAY['2026-11-20 10:00', '2026-11-20 10:15']::timestamptz[], ARRAY[910000000, 910000080])
FROM plan;

-- Whole Wh that add up exactly: 1 Wh over 30 s of flat and 30 s of peak
-- goes to the later piece; 1000 Wh over 10 min peak, 2 h flat and 10 min
-- peak give peak 71 + 72 = 143 and flat 857 (exact shares 71.4, 857.1, 71.4).
SELECT split_energy(t, ARRAY['2026-11-20 13:59:30', '2026-11-20 14:00:30']::timestamptz[], ARRAY[0, 1])
FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 16:50', '2026-11-20 19:10']::timestamptz[], ARRAY[0, 1000]) AS peak_flat_peak,
       (SELECT sum(x) FROM unnest(split_energy(t, ARRAY['2026-11-20 16:50', '2026-11-20 19:10']::timestamptz[], ARRAY[0, 1000])) x) AS total
FROM plan;

-- Samples in any order, repeated samples counted once.
SELECT split_energy(t, ARRAY['2026-11-20 08:20', '2026-11-20 07:50', '2026-11-20 08:20', '2026-11-20 08:05']::timestamptz[],
                       ARRAY[10900, 10000, 10900, 10450]) AS disordered,
       split_energy(t, ARRAY['2026-11-20 07:50', '2026-11-20 08:05', '2026-11-20 08:20']::timestamptz[],
                       ARRAY[10000, 10450, 10900]) AS in_order
FROM plan;

-- A register that goes backwards adds nothing, and what it re-counts on the
-- way back up is not billed twice; a -1 ("no reading") is not a reading.
SELECT split_energy(t, ARRAY['2026-11-20 10:00', '2026-11-20 10:01', '2026-11-20 10:02', '2026-11-20 10:03', '2026-11-20 10:04']::timestamptz[],
                       ARRAY[5000, 5100, 0, 5100, 5200]) AS glitch_to_zero,
       split_energy(t, ARRAY['2026-11-20 10:00', '2026-11-20 10:01', '2026-11-20 10:02']::timestamptz[],
                       ARRAY[-1, 5000, 5100]) AS first_reading_minus_one
FROM plan;

-- Across midnight: 21:30 to 01:30, 4 kWh evenly: 30 min peak, 2 h flat
-- (22:00-24:00), 1.5 h valley.
SELECT split_energy(t, ARRAY['2026-11-20 21:30', '2026-11-21 01:30']::timestamptz[], ARRAY[0, 4000])
FROM plan;

-- Several days: 48 hours at a steady 1 kW.
SELECT split_energy(t, ARRAY(SELECT generate_series('2026-11-20 00:00'::timestamptz, '2026-11-22 00:00', '15 minutes')),
                       ARRAY(SELECT (i * 250)::bigint FROM generate_series(0, 192) i))
FROM plan;

-- The segments follow the station's wall clock: the same instants are
-- another class for a station in another zone.
SELECT split_energy(t, ARRAY['2026-11-20 07:00+08', '2026-11-20 09:00+08']::timestamptz[], ARRAY[0, 1200], 'Asia/Shanghai') AS shanghai,
       split_energy(t, ARRAY['2026-11-20 07:00+08', '2026-11-20 09:00+08']::timestamptz[], ARRAY[0, 1200], 'Asia/Tokyo') AS tokyo
FROM plan;

-- A clock change: on 2026-03-29 Berlin goes from 02:00 to 03:00.  From
-- 01:30 to 08:30 local is 6 hours of real time: 5.5 h of valley (01:30-08:00
-- on the wall, less the hour that does not exist) and 0.5 h flat.
SELECT split_energy(t, ARRAY['2026-03-29 01:30 Europe/Berlin', '2026-03-29 08:30 Europe/Berlin']::timestamptz[],
                    ARRAY[0, 6000], 'Europe/Berlin')
FROM plan;
-- And back on 2026-10-25 (03:00 -> 02:00): 01:30 to 08:30 is 8 hours.
SELECT split_energy(t, ARRAY['2026-10-25 01:30 Europe/Berlin', '2026-10-25 08:30 Europe/Berlin']::timestamptz[],
                    ARRAY[0, 8000], 'Europe/Berlin')
FROM plan;

-- Plans in force one after the other: split_energy_by_span gives Wh per
-- plan and class; here a new plan from 12:00, and 6 kWh from 10:00 to 13:00.
SELECT split_energy_by_span(ARRAY[t, '00:00-24:00 flat | flat 0.5+0.4'::tou_tariff],
                            ARRAY['2026-11-20 00:00', '2026-11-20 12:00']::timestamptz[],
                            ARRAY['2026-11-20 10:00', '2026-11-20 13:00']::timestamptz[], ARRAY[0, 6000])
FROM plan;

-- A realistic 600-sample session priced: the sum of the split equals the
-- meter's rise, and the bill follows.
SELECT w AS wh_by_class, (SELECT sum(x) FROM unnest(w) x) AS wh, (price(t, w)).*
FROM plan, LATERAL (SELECT split_energy(t,
	ARRAY(SELECT '2026-11-20 13:00'::timestamptz + i * interval '15 s' FROM generate_series(0, 599) i),
	ARRAY(SELECT 1234567 + i * 125 FROM generate_series(0, 599) i)) AS w) s;

-- Bad input.
SELECT split_energy(t, ARRAY['2026-11-20 10:00']::timestamptz[], ARRAY[1, 2]) FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 10:00', NULL]::timestamptz[], ARRAY[1, 2]) FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 10:00', '2026-11-20 10:01']::timestamptz[], ARRAY[1, 2], 'Mars/Olympus') FROM plan;
SELECT split_energy(t, '{}', '{}') FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 10:00', 'infinity']::timestamptz[], ARRAY[1, 2]) FROM plan;

-- Exact at the ends of the range.  From the first timestamp to the last is
-- more microseconds than 64 bits hold (0.1.0 gave {0,-126,-572,-349}): the
-- split is exact by its rule: every Wh is given out, each where the rule
-- puts it (1000 Wh over 290,000 years come close to the plan's 6 h peak,
-- 10 h flat and 8 h valley a day).
SELECT w, (SELECT sum(x) FROM unnest(w) x) AS total
FROM plan, LATERAL (SELECT split_energy(t, ARRAY['4713-01-01 BC', '294276-12-31']::timestamptz[], ARRAY[0, 1000]) AS w) s;
SELECT w, (SELECT sum(x) FROM unnest(w) x) AS total
FROM plan, LATERAL (SELECT split_energy(t, ARRAY['4713-01-01 BC', '294276-12-31']::timestamptz[], ARRAY[0, 1000], 'Europe/Berlin') AS w) s;
-- The highest reading a bigint holds, shared over 07:00-09:00: the halves
-- add up to it exactly.
SELECT w, (SELECT sum(x::numeric) FROM unnest(w) x) = 9223372036854775807 AS exact
FROM plan, LATERAL (SELECT split_energy(t, ARRAY['2026-11-20 07:00', '2026-11-20 09:00']::timestamptz[],
                                        ARRAY[0, 9223372036854775807]) AS w) s;
SELECT split_energy_by_span(ARRAY[t, t], ARRAY['-infinity', '2026-11-20 08:00']::timestamptz[],
                            ARRAY['4713-01-01 BC', '294276-12-31']::timestamptz[], ARRAY[0, 1000000])
FROM plan;

-- The zone is a name of the time zone database.  A POSIX offset is refused:
-- PostgreSQL reads "UTC+8" and "+08:00" as UTC-8, which would split
-- 07:00-09:00 Shanghai as all peak instead of {0,0,60,60}.
SELECT split_energy(t, ARRAY['2026-11-20 07:00+08', '2026-11-20 09:00+08']::timestamptz[], ARRAY[0, 120], 'Asia/Shanghai')
FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 07:00+08', '2026-11-20 09:00+08']::timestamptz[], ARRAY[0, 120], 'UTC+8')
FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 07:00+08', '2026-11-20 09:00+08']::timestamptz[], ARRAY[0, 120], '+08:00')
FROM plan;
SELECT split_energy(t, ARRAY['2026-11-20 07:00+08', '2026-11-20 09:00+08']::timestamptz[], ARRAY[0, 120], 'CST')
FROM plan;
