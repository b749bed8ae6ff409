-- bench/tariff_harness.sql: data, cross-check and timing for bench/tariff.sh.
-- Loaded after bench/reference/tariff_plpgsql.sql into the database
-- bench_tariff of the private cluster "bench".  Everything lives in schema
-- bench; nothing here is part of the extension.

CREATE SCHEMA IF NOT EXISTS bench;

-- The example plan of one station (DOMAIN.md, "Prices").
CREATE FUNCTION bench.example_plan() RETURNS evcharge.tou_tariff
LANGUAGE sql IMMUTABLE
RETURN '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, '
       '19:00-22:00 peak, 22:00-24:00 flat | peak 1.0300+0.5100, flat 0.6400+0.5100, '
       'valley 0.3300+0.5500'::evcharge.tou_tariff;

-- A DC charging session as a pile reports it: n heartbeats step_s seconds
-- apart (each late by up to jitter_s), power ramping up to kw_max, holding,
-- then tapering to kw_min, with +-7% noise.  Then what piles do wrong:
-- n_dup samples sent twice (the copy's reading a few Wh off), n_glitch
-- readings that went backwards, n_zero readings of 0 (a reconnect), n_missing
-- readings of -1 (no value), n_swap pairs of neighbours that arrived in the
-- wrong order, n_gap silences of up to gap_max_s during which the car kept
-- charging.  Uses random(): call setseed() first for repeatable data.
CREATE FUNCTION bench.make_session(start_at timestamptz, n int, step_s float8,
	kw_max float8 DEFAULT 60, kw_min float8 DEFAULT 7, jitter_s float8 DEFAULT 0.8,
	n_dup int DEFAULT 0, n_glitch int DEFAULT 0, n_zero int DEFAULT 0, n_missing int DEFAULT 0,
	n_swap int DEFAULT 0, n_gap int DEFAULT 0, gap_max_s float8 DEFAULT 3600,
	meter_start bigint DEFAULT NULL,
	OUT ts timestamptz[], OUT wh bigint[])
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	m bigint := coalesce(meter_start, 100000 + floor(random() * 50000000)::bigint);
	secs float8 := 0;
	step float8;
	f float8;
	kw float8;
	k int;
	j int;
	x timestamptz;
	y bigint;
	gap_at int[] := '{}';
BEGIN
	ts := '{}';
	wh := '{}';
	FOR j IN 1..n_gap LOOP
		gap_at := gap_at || (floor(random() * greatest(n - 1, 1)))::int;
	END LOOP;
	FOR k IN 0..n - 1 LOOP
		ts := ts || (start_at + (secs + random() * jitter_s) * interval '1 second');
		wh := wh || m;
		f := k::float8 / greatest(n - 1, 1);
		kw := CASE WHEN f < 0.02 THEN kw_min + (kw_max - kw_min) * f / 0.02
		           WHEN f < 0.55 THEN kw_max
		           ELSE kw_max - (kw_max - kw_min) * (f - 0.55) / 0.45 END;
		kw := kw * (0.93 + random() * 0.14);
		step := step_s;
		IF k = ANY (gap_at) THEN
			step := step + random() * gap_max_s;
		END IF;
		m := m + round(kw * step * 1000 / 3600)::bigint;
		secs := secs + step;
	END LOOP;
	IF n = 0 THEN
		RETURN;
	END IF;
	FOR j IN 1..n_dup LOOP
		k := 1 + floor(random() * n)::int;
		ts := ts || ts[k];
		wh := wh || greatest(wh[k] + floor(random() * 7)::bigint - 3, 0);
	END LOOP;
	FOR j IN 1..n_glitch LOOP
		k := 1 + floor(random() * n)::int;
		wh[k] := greatest(wh[k] - 200 - floor(random() * 3000)::bigint, 0);
	END LOOP;
	FOR j IN 1..n_zero LOOP
		wh[1 + floor(random() * n)::int] := 0;
	END LOOP;
	FOR j IN 1..n_missing LOOP
		wh[1 + floor(random() * n)::int] := -1;
	END LOOP;
	FOR j IN 1..n_swap LOOP
		k := 1 + floor(random() * greatest(cardinality(ts) - 1, 1))::int;
		IF k < cardinality(ts) THEN
			x := ts[k]; ts[k] := ts[k + 1]; ts[k + 1] := x;
			y := wh[k]; wh[k] := wh[k + 1]; wh[k + 1] := y;
		END IF;
	END LOOP;
END
$$;

-- A random plan: 1 to 9 segments cut at random minutes (often on the hour),
-- random classes, every class priced with 4-decimal prices.
CREATE FUNCTION bench.random_plan() RETURNS evcharge.tou_tariff
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	classes CONSTANT text[] := ARRAY['sharp', 'peak', 'flat', 'valley'];
	cuts int[];
	segs text[] := '{}';
	prices text[] := '{}';
	i int;
BEGIN
	SELECT coalesce(array_agg(c ORDER BY c), '{}') INTO cuts
	  FROM (SELECT DISTINCT CASE WHEN random() < 0.5 THEN 60 * (1 + floor(random() * 23)::int)
	                             ELSE 1 + floor(random() * 1439)::int END AS c
	          FROM generate_series(1, floor(random() * 9)::int)) AS g;
	cuts := 0 || cuts || 1440;
	FOR i IN 1..cardinality(cuts) - 1 LOOP
		segs := segs || format('%s-%s %s',
			to_char(make_interval(mins => cuts[i]), 'HH24:MI'),
			CASE WHEN cuts[i + 1] = 1440 THEN '24:00' ELSE to_char(make_interval(mins => cuts[i + 1]), 'HH24:MI') END,
			classes[1 + floor(random() * 4)::int]);
	END LOOP;
	FOR i IN 1..4 LOOP
		prices := prices || format('%s %s+%s', classes[i],
			round((random() * 3)::numeric, 4), round((random())::numeric, 4));
	END LOOP;
	RETURN (array_to_string(segs, ', ') || ' | ' || array_to_string(prices, ', '))::evcharge.tou_tariff;
END
$$;

-- What one implementation gives for one session: the split and the money
-- (values, scale ignored), or the SQLSTATE of its error.
CREATE FUNCTION bench.outcome(impl text, plan evcharge.tou_tariff, tz text,
	ts timestamptz[], wh bigint[]) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	w bigint[];
	r record;
BEGIN
	IF impl = 'c' THEN
		w := evcharge.split_energy(plan, ts, wh, tz);
		SELECT p.kwh, p.energy_fee, p.service_fee, p.total INTO r FROM evcharge.price(plan, w) AS p;
	ELSE
		w := bench_ref.split_energy(plan, ts, wh, tz);
		SELECT p.kwh, p.energy_fee, p.service_fee, p.total INTO r FROM bench_ref.price(plan, w) AS p;
	END IF;
	RETURN format('split %s, kwh %s, energy_fee %s, service_fee %s, total %s', w,
		trim_scale(r.kwh), trim_scale(r.energy_fee), trim_scale(r.service_fee), trim_scale(r.total));
EXCEPTION WHEN OTHERS THEN
	RETURN 'error ' || SQLSTATE;
END
$$;

CREATE FUNCTION bench.differs(plan evcharge.tou_tariff, tz text, ts timestamptz[], wh bigint[])
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN bench.outcome('c', plan, tz, ts, wh) IS DISTINCT FROM bench.outcome('plpgsql', plan, tz, ts, wh);

-- The cross-check cases.
CREATE TABLE bench.cases (
	id int PRIMARY KEY,
	label text NOT NULL,
	plan evcharge.tou_tariff NOT NULL,
	tz text NOT NULL,
	ts timestamptz[] NOT NULL,
	wh bigint[] NOT NULL
);

CREATE FUNCTION bench.make_cases() RETURNS int
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	ex CONSTANT evcharge.tou_tariff := bench.example_plan();
	-- Plans with boundaries around 01:00-03:30, where clocks change.
	dst_plans CONSTANT text[] := ARRAY[
		'00:00-02:15 valley, 02:15-02:45 sharp, 02:45-03:30 peak, 03:30-24:00 flat | sharp 1.5000+0.6000, peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500',
		'00:00-01:45 flat, 01:45-02:00 peak, 02:00-02:30 valley, 02:30-03:00 sharp, 03:00-24:00 valley | sharp 1.5000+0.6000, peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500',
		'00:00-01:00 peak, 01:00-01:59 valley, 01:59-02:01 sharp, 02:01-24:00 flat | sharp 1.5000+0.6000, peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500'];
	-- (zone, instant of a clock change)
	dst_zones CONSTANT text[] := ARRAY['Europe/Berlin', 'Europe/Berlin', 'America/New_York',
		'America/New_York', 'Australia/Lord_Howe', 'Australia/Lord_Howe'];
	dst_at CONSTANT timestamptz[] := ARRAY['2024-03-31 01:00+00', '2024-10-27 01:00+00',
		'2024-03-10 07:00+00', '2024-11-03 06:00+00', '2024-04-06 15:00+00', '2024-10-05 15:30+00']::timestamptz[];
	s record;
	id int := 0;
	i int;
	start_local timestamp;
	n int;
	step float8;
BEGIN
	PERFORM setseed(0.20250612);

	-- Example plan, Shanghai, anywhere in the day.
	FOR i IN 1..35 LOOP
		start_local := timestamp '2024-01-01' + random() * interval '700 days';
		step := 5 + random() * 55;
		n := 2 + floor(random() * 700)::int;
		s := bench.make_session(start_local AT TIME ZONE 'Asia/Shanghai', n, step,
			kw_max => 7 + random() * 113, jitter_s => random() * step,
			n_dup => floor(random() * 4)::int, n_glitch => floor(random() * 3)::int,
			n_zero => floor(random() * 2)::int, n_missing => floor(random() * 3)::int,
			n_swap => floor(random() * 5)::int, n_gap => floor(random() * 3)::int);
		id := id + 1;
		INSERT INTO bench.cases VALUES (id, format('example plan, %s samples from %s', n, start_local), ex, 'Asia/Shanghai', s.ts, s.wh);
	END LOOP;

	-- Example plan, Shanghai, over midnight (22:00-24:00 flat, then valley).
	FOR i IN 1..15 LOOP
		start_local := date '2024-01-01' + floor(random() * 700)::int + time '21:30' + random() * interval '150 minutes';
		step := 5 + random() * 55;
		n := (3600 + floor(random() * 3 * 3600)::int) / step::int;
		s := bench.make_session(start_local AT TIME ZONE 'Asia/Shanghai', n, step,
			kw_max => 7 + random() * 53, kw_min => 3, jitter_s => random() * 2,
			n_dup => floor(random() * 3)::int, n_glitch => floor(random() * 2)::int,
			n_missing => floor(random() * 2)::int, n_swap => floor(random() * 3)::int);
		id := id + 1;
		INSERT INTO bench.cases VALUES (id, format('example plan over midnight, %s samples from %s', n, start_local), ex, 'Asia/Shanghai', s.ts, s.wh);
	END LOOP;

	-- Random plans, Shanghai, some with samples hours apart (many boundaries per rise).
	FOR i IN 1..20 LOOP
		start_local := timestamp '2024-01-01' + random() * interval '700 days';
		IF i % 2 = 0 THEN
			n := 2 + floor(random() * 12)::int;
			step := 600 + random() * 6 * 3600;
		ELSE
			n := 2 + floor(random() * 400)::int;
			step := 1 + random() * 120;
		END IF;
		s := bench.make_session(start_local AT TIME ZONE 'Asia/Shanghai', n, step,
			kw_max => 3 + random() * 117, kw_min => 1, jitter_s => random() * step,
			n_dup => floor(random() * 3)::int, n_glitch => floor(random() * 3)::int,
			n_missing => floor(random() * 2)::int, n_swap => floor(random() * 4)::int,
			n_gap => floor(random() * 2)::int, gap_max_s => 6 * 3600);
		id := id + 1;
		INSERT INTO bench.cases VALUES (id, format('random plan, %s samples %s s apart from %s', n, round(step::numeric, 1), start_local),
			bench.random_plan(), 'Asia/Shanghai', s.ts, s.wh);
	END LOOP;

	-- Clock changes, in zones that have them (the C code splits at the
	-- change; the local wall-clock time decides the class).
	FOR i IN 1..cardinality(dst_zones) LOOP
		FOR n IN 1..cardinality(dst_plans) LOOP
			-- dense: a heartbeat every ~20 s from 2.5 h before the change
			s := bench.make_session(dst_at[i] - interval '150 minutes' + random() * interval '1 hour',
				900, 20, kw_max => 30, jitter_s => 3, n_dup => 1, n_glitch => 1);
			id := id + 1;
			INSERT INTO bench.cases VALUES (id, format('%s, clock change at %s UTC, dense', dst_zones[i], to_char(dst_at[i] AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')),
				dst_plans[n]::evcharge.tou_tariff, dst_zones[i], s.ts, s.wh);
			-- sparse: a few samples 20-90 min apart across the change
			s := bench.make_session(dst_at[i] - interval '3 hours' + random() * interval '1 hour',
				3 + floor(random() * 4)::int, 1200 + random() * 4200, kw_max => 30, jitter_s => 600);
			id := id + 1;
			INSERT INTO bench.cases VALUES (id, format('%s, clock change at %s UTC, sparse', dst_zones[i], to_char(dst_at[i] AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')),
				dst_plans[n]::evcharge.tou_tariff, dst_zones[i], s.ts, s.wh);
		END LOOP;
	END LOOP;

	-- Edge cases.
	INSERT INTO bench.cases VALUES
		(id + 1, 'no samples', ex, 'Asia/Shanghai', '{}', '{}'),
		(id + 2, 'one sample', ex, 'Asia/Shanghai', '{2025-06-12 13:00+08}', '{1000}'),
		(id + 3, 'only -1 readings', ex, 'Asia/Shanghai', '{2025-06-12 13:00+08,2025-06-12 14:00+08}', '{-1,-1}'),
		(id + 4, 'one time, three readings', ex, 'Asia/Shanghai',
			'{2025-06-12 13:00+08,2025-06-12 13:00+08,2025-06-12 13:00+08}', '{5,9,7}'),
		(id + 5, 'two samples three days apart', ex, 'Asia/Shanghai',
			'{2025-06-12 13:00:00.123456+08,2025-06-15 09:17:42.654321+08}', '{1000,987654}'),
		(id + 6, 'rise of 1 Wh over a boundary', ex, 'Asia/Shanghai',
			'{2025-06-12 13:59:50+08,2025-06-12 14:00:10+08}', '{1000,1001}'),
		(id + 7, 'huge meter rise over several boundaries', ex, 'Asia/Shanghai',
			'{2025-06-12 07:00+08,2025-06-12 23:30+08}', '{0,9000000000}'),
		(id + 8, 'backwards then back', ex, 'Asia/Shanghai',
			'{2025-06-12 13:50+08,2025-06-12 13:55+08,2025-06-12 14:05+08,2025-06-12 14:10+08}', '{1000,0,900,1500}'),
		(id + 9, 'samples exactly on boundaries', ex, 'Asia/Shanghai',
			'{2025-06-12 08:00+08,2025-06-12 14:00+08,2025-06-12 17:00+08,2025-06-13 00:00+08}', '{0,1000,2000,3001}'),
		(id + 10, 'lengths differ', ex, 'Asia/Shanghai', '{2025-06-12 13:00+08}', '{1,2}'),
		(id + 11, 'before 1901 (local mean time +08:05:43)', ex, 'Asia/Shanghai',
			'{1899-06-12 13:30+08,1899-06-12 14:30+08}', '{0,3600}'),
		(id + 12, 'unknown zone', ex, 'Mars/Olympus_Mons', '{2025-06-12 13:00+08}', '{1}');
	RETURN id + 12;
END
$$;

-- Shrink a failing input: drop chunks of samples while C and PL/pgSQL
-- still disagree, halving the chunk down to one sample.
CREATE FUNCTION bench.shrink(plan evcharge.tou_tariff, tz text, INOUT ts timestamptz[], INOUT wh bigint[])
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	chunk int := greatest(cardinality(ts) / 2, 1);
	i int;
	changed boolean;
	cts timestamptz[];
	cwh bigint[];
BEGIN
	LOOP
		changed := false;
		i := 1;
		WHILE i <= cardinality(ts) LOOP
			cts := ts[1:i - 1] || ts[i + chunk:];
			cwh := wh[1:i - 1] || wh[i + chunk:];
			IF bench.differs(plan, tz, cts, cwh) THEN
				ts := cts;
				wh := cwh;
				changed := true;
			ELSE
				i := i + chunk;
			END IF;
		END LOOP;
		EXIT WHEN chunk = 1 AND NOT changed;
		IF NOT changed THEN
			chunk := greatest(chunk / 2, 1);
		END IF;
	END LOOP;
END
$$;

-- The realistic session timed by the benchmark.
CREATE TABLE bench.main_session (
	plan evcharge.tou_tariff NOT NULL,
	tz text NOT NULL,
	ts timestamptz[] NOT NULL,
	wh bigint[] NOT NULL
);

-- Time n calls of split_energy + price of one implementation, in seconds.
CREATE FUNCTION bench.time_calls(impl text, n int) RETURNS float8
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	m bench.main_session;
	t0 timestamptz;
	w bigint[];
	fee numeric;
	acc numeric := 0;
	i int;
BEGIN
	SELECT * INTO STRICT m FROM bench.main_session;
	IF impl = 'c' THEN
		t0 := clock_timestamp();
		FOR i IN 1..n LOOP
			w := evcharge.split_energy(m.plan, m.ts, m.wh, m.tz);
			SELECT p.total INTO fee FROM evcharge.price(m.plan, w) AS p;
			acc := acc + fee;
		END LOOP;
	ELSE
		t0 := clock_timestamp();
		FOR i IN 1..n LOOP
			w := bench_ref.split_energy(m.plan, m.ts, m.wh, m.tz);
			SELECT p.total INTO fee FROM bench_ref.price(m.plan, w) AS p;
			acc := acc + fee;
		END LOOP;
	END IF;
	RETURN extract(epoch FROM clock_timestamp() - t0);
END
$$;

-- Calibrate n per implementation for about target_s seconds a timing, then
-- time rounds x (C, PL/pgSQL), alternating.
CREATE FUNCTION bench.run_timing(target_s float8 DEFAULT 2, rounds int DEFAULT 5)
RETURNS TABLE(run int, impl text, calls int, seconds float8, per_second float8)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	impls CONSTANT text[] := ARRAY['c', 'plpgsql'];
	ns int[] := ARRAY[1, 1];
	sec float8;
	k int;
	r int;
BEGIN
	FOR k IN 1..2 LOOP
		PERFORM bench.time_calls(impls[k], 1);	-- warm up: load, compile, cache
		LOOP
			sec := bench.time_calls(impls[k], ns[k]);
			EXIT WHEN sec >= target_s / 8;
			ns[k] := ns[k] * 4;
		END LOOP;
		ns[k] := greatest(1, round(ns[k] * target_s / sec)::int);
	END LOOP;
	FOR r IN 1..rounds LOOP
		FOR k IN 1..2 LOOP
			sec := bench.time_calls(impls[k], ns[k]);
			run := r;
			impl := impls[k];
			calls := ns[k];
			seconds := sec;
			per_second := ns[k] / sec;
			RETURN NEXT;
		END LOOP;
	END LOOP;
END
$$;
