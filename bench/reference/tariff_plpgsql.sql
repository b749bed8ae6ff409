-- bench/reference/tariff_plpgsql.sql: the billing engine written in PL/pgSQL,
-- "as a DBA would write it", to compare with the C functions
-- evcharge.split_energy and evcharge.price (src/energy_split.c,
-- src/pricing.c).  Used by bench/tariff.sh for the correctness cross-check
-- and as the baseline of the timing.  Not part of the extension.
--
-- Only catalogue-style lookups come from the extension: the plan's segments
-- (evcharge.tariff_segments) and prices (evcharge.tariff_prices), which a DBA
-- would keep in tables.  All the walking and arithmetic is done here.
--
-- The rules are those of the header comment of src/energy_split.c:
--   - samples in time order, one per timestamp (the highest reading),
--     negative readings skipped;
--   - the first reading is the baseline; energy is the rise above the
--     highest reading seen so far;
--   - the rise between two consecutive samples is shared among the pieces of
--     time between them, split where the station's local wall-clock time
--     crosses a segment boundary and at clock changes, in proportion to
--     their length, in whole Wh: piece k gets
--     floor(rise * T_k / T) - floor(rise * T_(k-1) / T).
--
-- Time zones: the class of an instant is the class of the local wall-clock
-- time at that instant.  The walk therefore goes forward from instant to
-- instant using the UTC offset in force at the current instant, and cuts a
-- piece short where the offset changes (found by bisection).  Converting
-- each local boundary back with "(local timestamp) AT TIME ZONE tz" would be
-- shorter but wrong around clock changes: a boundary inside the hour that is
-- skipped in spring would land after the gap, and a boundary inside the hour
-- that is repeated in autumn is crossed twice but would be converted once.

CREATE SCHEMA IF NOT EXISTS bench_ref;

CREATE OR REPLACE FUNCTION bench_ref.split_energy(tariff evcharge.tou_tariff, ts timestamptz[],
	meter_wh bigint[], tz text DEFAULT 'Asia/Shanghai') RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
	classes CONSTANT text[] := ARRAY['sharp', 'peak', 'flat', 'valley'];
	one_us CONSTANT interval := interval '1 microsecond';
	seg_end bigint[];			-- end of each segment, microseconds after local midnight
	seg_cls int[];				-- its class, 1..4 (sharp, peak, flat, valley)
	result bigint[] := ARRAY[0, 0, 0, 0]::bigint[];
	s record;
	have_prev boolean := false;
	prev_ts timestamptz;
	high bigint;
	rise bigint;
	total_us bigint;
	given bigint;
	share bigint;
	t timestamptz;
	nxt timestamptz;
	loc timestamp;
	sod_us bigint;
	i int;
	lo bigint;
	hi bigint;
	mid bigint;
BEGIN
	IF array_ndims(ts) > 1 OR array_ndims(meter_wh) > 1 THEN
		RAISE EXCEPTION 'sample arrays must be one-dimensional' USING ERRCODE = 'array_subscript_error';
	END IF;
	IF cardinality(ts) <> cardinality(meter_wh) THEN
		RAISE EXCEPTION 'ts has % samples but meter_wh has %', cardinality(ts), cardinality(meter_wh)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF array_position(ts, NULL) IS NOT NULL OR array_position(meter_wh, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'a sample has a null time or meter reading' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF 'infinity' = ANY (ts) OR '-infinity' = ANY (ts) THEN
		RAISE EXCEPTION 'a sample has an infinite time' USING ERRCODE = 'datetime_field_overflow';
	END IF;
	PERFORM now() AT TIME ZONE tz;	-- an unknown zone raises here, even without samples

	SELECT array_agg((extract(epoch FROM g.ends) * 1000000)::bigint ORDER BY g.starts),
	       array_agg(array_position(classes, g.class) ORDER BY g.starts)
	  INTO seg_end, seg_cls
	  FROM evcharge.tariff_segments(tariff) AS g;

	FOR s IN
		SELECT u.sample_at AS at, max(u.reading) AS wh
		  FROM unnest(ts, meter_wh) AS u(sample_at, reading)
		 WHERE u.reading >= 0			-- -1: the pile had no reading
		 GROUP BY u.sample_at
		 ORDER BY u.sample_at
	LOOP
		IF NOT have_prev THEN
			high := s.wh;				-- the baseline
			have_prev := true;
		ELSIF s.wh > high THEN
			rise := s.wh - high;
			high := s.wh;
			total_us := (extract(epoch FROM s.at - prev_ts) * 1000000)::bigint;
			given := 0;
			t := prev_ts;
			WHILE t < s.at LOOP
				-- The segment of the local time at t, and where it ends.
				loc := t AT TIME ZONE tz;
				sod_us := (extract(epoch FROM loc - date_trunc('day', loc)) * 1000000)::bigint;
				i := 1;
				WHILE seg_end[i] <= sod_us LOOP
					i := i + 1;
				END LOOP;
				nxt := least(t + (seg_end[i] - sod_us) * one_us, s.at);
				-- A clock change before nxt?  Then the piece ends at the change.
				IF (nxt AT TIME ZONE tz) - loc <> nxt - t THEN
					lo := 0;
					hi := (extract(epoch FROM nxt - t) * 1000000)::bigint;
					WHILE hi - lo > 1 LOOP
						mid := (lo + hi) / 2;
						IF ((t + mid * one_us) AT TIME ZONE tz) - loc = mid * one_us THEN
							lo := mid;
						ELSE
							hi := mid;
						END IF;
					END LOOP;
					nxt := t + hi * one_us;
				END IF;
				-- Cumulative floor: the pieces so far get floor(rise * T_k / T).
				share := div(rise::numeric * (extract(epoch FROM nxt - prev_ts) * 1000000), total_us)::bigint - given;
				given := given + share;
				result[seg_cls[i]] := result[seg_cls[i]] + share;
				t := nxt;
			END LOOP;
		END IF;
		prev_ts := s.at;
	END LOOP;
	RETURN result;
END
$$;

COMMENT ON FUNCTION bench_ref.split_energy(evcharge.tou_tariff, timestamptz[], bigint[], text) IS
	'benchmark reference: evcharge.split_energy in PL/pgSQL';

CREATE OR REPLACE FUNCTION bench_ref.price(tariff evcharge.tou_tariff, wh bigint[])
RETURNS TABLE(kwh numeric, energy_fee numeric, service_fee numeric, total numeric)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
#variable_conflict use_column
DECLARE
	r record;
	e_sum numeric := 0;
	s_sum numeric := 0;
	wh_sum bigint := 0;
BEGIN
	IF array_ndims(wh) > 1 THEN
		RAISE EXCEPTION 'energy per class must be a one-dimensional array' USING ERRCODE = 'array_subscript_error';
	END IF;
	IF cardinality(wh) <> 4 THEN
		RAISE EXCEPTION 'energy per class has % elements, not 4', cardinality(wh)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR r IN
		SELECT c.class, coalesce(c.w, 0) AS wh, p.energy_price, p.service_fee AS service_price
		  FROM unnest(ARRAY['sharp', 'peak', 'flat', 'valley'], wh) AS c(class, w)
		  LEFT JOIN evcharge.tariff_prices(tariff) AS p ON p.class = c.class
	LOOP
		IF r.wh < 0 THEN
			RAISE EXCEPTION 'energy of class "%" is negative: % Wh', r.class, r.wh
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF r.wh > 0 THEN
			IF r.energy_price IS NULL THEN
				RAISE EXCEPTION 'the plan has no price for class "%", which has % Wh', r.class, r.wh
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			-- Exact amounts: Wh / 1000 * yuan per kWh.
			e_sum := e_sum + r.wh * 0.001 * r.energy_price;
			s_sum := s_sum + r.wh * 0.001 * r.service_price;
			wh_sum := wh_sum + r.wh;
		END IF;
	END LOOP;
	kwh := wh_sum * 0.001;
	energy_fee := trunc(e_sum, 2);	-- truncated to the fen, never rounded up
	service_fee := trunc(s_sum, 2);
	total := energy_fee + service_fee;
	RETURN NEXT;
END
$$;

COMMENT ON FUNCTION bench_ref.price(evcharge.tou_tariff, bigint[]) IS
	'benchmark reference: evcharge.price in PL/pgSQL (the totals only)';
