-- quote.sql: pricing a charge with everything applied: the plans in force
-- across its span, group prices, promotions, occupancy fee and coupons.
-- price_session() prices meter samples (the pipeline passes heartbeats);
-- quote() prices a span and an energy total as a linear session.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TYPE evcharge.charge_quote AS (
	kwh numeric,
	energy_fee numeric,
	service_fee numeric,
	occupancy_fee numeric,
	discount numeric,
	total numeric,
	class_kwh numeric[],
	class_energy_fee numeric[],
	class_service_fee numeric[],
	applied text[]
);
COMMENT ON TYPE evcharge.charge_quote IS
	'A priced charge: kWh; electricity, service and occupancy fees, coupon discount and total (yuan, each truncated to the fen; total = energy + service + occupancy - discount); per class {sharp, peak, flat, valley[, deep_valley]} kWh and exact fees; and what applied (plans, group, promotions, occupancy, coupon)';
COMMENT ON COLUMN evcharge.charge_quote.kwh IS 'energy, kWh';
COMMENT ON COLUMN evcharge.charge_quote.energy_fee IS 'electricity fee, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_quote.service_fee IS 'service fee after group price and promotions, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_quote.occupancy_fee IS 'occupancy fee, yuan';
COMMENT ON COLUMN evcharge.charge_quote.discount IS 'the coupon''s discount on the service fee, yuan';
COMMENT ON COLUMN evcharge.charge_quote.total IS 'energy_fee + service_fee + occupancy_fee - discount';
COMMENT ON COLUMN evcharge.charge_quote.class_kwh IS 'kWh per class {sharp, peak, flat, valley}, and deep_valley when a plan has it';
COMMENT ON COLUMN evcharge.charge_quote.class_energy_fee IS 'exact electricity fee per class, before truncation';
COMMENT ON COLUMN evcharge.charge_quote.class_service_fee IS 'exact service fee per class, before truncation';
COMMENT ON COLUMN evcharge.charge_quote.applied IS 'what applied, in words: plans, group, promotions, occupancy, coupon';

-- The most energy a gun of this rated power can plausibly deliver between
-- two instants: rated power x time, x 1.2 + 10 Wh for meters and clocks
-- (the margin the session machine, session_samples() and the bill's check
-- of the pile's figure allow).  Exact: numeric seconds, no interval.
CREATE FUNCTION evcharge.gun_energy_limit(rated_power_w int, started_at timestamptz, ended_at timestamptz)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN rated_power_w::numeric * greatest(extract(epoch FROM ended_at) - extract(epoch FROM started_at), 0) / 3600 * 1.2 + 10;
COMMENT ON FUNCTION evcharge.gun_energy_limit(int, timestamptz, timestamptz) IS
	'the most Wh a gun of this rated power (W) can plausibly deliver from started_at to ended_at: rated power x hours x 1.2 + 10 Wh; energy given by hand beyond it (a repair, a quote) is refused';

-- The promotions valid at a station at a moment for a group (a promotion
-- limited to groups applies to those only), in id order: the one place
-- that says which promotions apply, for service_rate and energy_rate.
CREATE FUNCTION evcharge.promotions_at(p_station_id bigint, p_group_id bigint, p_at timestamptz)
RETURNS SETOF evcharge.promotion
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT pr.*
	FROM evcharge.promotion pr
	JOIN evcharge.promotion_station ps ON ps.promotion_id = pr.promotion_id AND ps.station_id = p_station_id
	WHERE pr.valid @> p_at
	  AND (NOT EXISTS (SELECT 1 FROM evcharge.promotion_group pg WHERE pg.promotion_id = pr.promotion_id)
	       OR EXISTS (SELECT 1 FROM evcharge.promotion_group pg
	                  WHERE pg.promotion_id = pr.promotion_id AND pg.group_id = p_group_id))
	ORDER BY pr.promotion_id;
END;
COMMENT ON FUNCTION evcharge.promotions_at(bigint, bigint, timestamptz) IS
	'the promotions valid at a station at a moment for a group (those limited to other groups left out), in id order';

-- The service fee per kWh due for one class at one moment: the plan's,
-- replaced or scaled by the group price where the group is bound to the
-- station, then by the cheapest promotion valid then for the station (and
-- for the group, when the promotion is limited to groups).
CREATE FUNCTION evcharge.service_rate(p_station_id bigint, p_group_id bigint, p_at timestamptz,
	p_base numeric, OUT rate numeric, OUT applied text[])
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	g record;
	p record;
	best numeric;
	best_name text;
BEGIN
	rate := p_base;
	applied := '{}';
	IF p_group_id IS NOT NULL THEN
		SELECT cg.name, cg.service_fee, cg.service_factor INTO g
		FROM evcharge.customer_group cg
		JOIN evcharge.group_station gs ON gs.group_id = cg.group_id AND gs.station_id = p_station_id
		WHERE cg.group_id = p_group_id;
		IF FOUND AND (g.service_fee IS NOT NULL OR g.service_factor IS NOT NULL) THEN
			rate := coalesce(g.service_fee, rate * g.service_factor);
			applied := applied || ('group: ' || g.name);
		END IF;
	END IF;
	best := rate;
	FOR p IN
		SELECT pr.name, pr.service_fee, pr.service_factor
		FROM evcharge.promotions_at(p_station_id, p_group_id, p_at) pr
	LOOP
		IF coalesce(p.service_fee, rate * p.service_factor) < best THEN
			best := coalesce(p.service_fee, rate * p.service_factor);
			best_name := p.name;
		END IF;
	END LOOP;
	IF best_name IS NOT NULL THEN
		rate := best;
		applied := applied || ('promotion: ' || best_name);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.service_rate(bigint, bigint, timestamptz, numeric) IS
	'service fee per kWh at a station for a group at a moment, from the plan''s: group price (bound stations only), then the cheapest valid promotion';

-- The electricity price per kWh due for one class at one moment: the
-- plan's, unless a promotion valid then lowers it ("free charging before
-- 12:00" waives it with energy_fee 0); the cheapest wins.  Group prices
-- are on the service fee only.
CREATE FUNCTION evcharge.energy_rate(p_station_id bigint, p_group_id bigint, p_at timestamptz,
	p_base numeric, OUT rate numeric, OUT applied text[])
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	best_name text;
BEGIN
	rate := p_base;
	applied := '{}';
	FOR p IN
		SELECT pr.name, pr.energy_fee, pr.energy_factor
		FROM evcharge.promotions_at(p_station_id, p_group_id, p_at) pr
		WHERE pr.energy_fee IS NOT NULL OR pr.energy_factor IS NOT NULL
	LOOP
		IF coalesce(p.energy_fee, p_base * p.energy_factor) < rate THEN
			rate := coalesce(p.energy_fee, p_base * p.energy_factor);
			best_name := p.name;
		END IF;
	END LOOP;
	IF best_name IS NOT NULL THEN
		applied := ARRAY['promotion: ' || best_name];
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.energy_rate(bigint, bigint, timestamptz, numeric) IS
	'electricity price per kWh at a station for a group at a moment, from the plan''s: the cheapest valid promotion on electricity (free charging), if any';

CREATE FUNCTION evcharge.price_session(p_station_id bigint, p_current_type text, p_group_id bigint,
	p_ts timestamptz[], p_meter_wh bigint[])
RETURNS evcharge.charge_quote
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st record;
	t_from timestamptz;
	t_to timestamptz;
	cuts timestamptz[];
	plans evcharge.tou_tariff[] := '{}';
	plan_names text[] := '{}';
	starts timestamptz[] := '{}';
	cut timestamptz;
	pl record;
	wh bigint[];
	k int;
	c int;
	pr record;
	sr record;
	er record;
	hard boolean[];
	prev_plan bigint;
	e_exact numeric[] := '{0,0,0,0}';
	s_exact numeric[] := '{0,0,0,0}';
	wh_sum bigint[] := '{0,0,0,0}';
	applied text[] := '{}';
	r evcharge.charge_quote;
BEGIN
	SELECT s.station_id, s.tz, s.name, s.operator_id INTO st FROM evcharge.station s WHERE s.station_id = p_station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % does not exist', coalesce(p_station_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Register it in evcharge.station.';
	END IF;
	-- A group that is not the station's operator's would price at the
	-- public rate without a word: an unknown group is an error.
	IF p_group_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.customer_group g
	                                          WHERE g.group_id = p_group_id AND g.operator_id = st.operator_id) THEN
		RAISE EXCEPTION 'operator % has no customer group %', st.operator_id, p_group_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('Station %s is operator %s''s; %s.', p_station_id, st.operator_id,
			                      coalesce((SELECT format('group %s is operator %s''s', g.group_id, g.operator_id)
			                                FROM evcharge.customer_group g WHERE g.group_id = p_group_id),
			                               format('no group %s is registered', p_group_id))),
			      HINT = 'Give one of the operator''s groups (evcharge.customer_group), or NULL for the public price.';
	END IF;
	IF p_current_type IS NULL OR p_current_type NOT IN ('AC', 'DC') THEN
		RAISE EXCEPTION 'current type % is neither AC nor DC', quote_nullable(p_current_type)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass ''AC'' or ''DC'', as evcharge.current_type(pile) gives it.';
	END IF;
	IF p_ts IS NULL OR p_meter_wh IS NULL THEN
		RAISE EXCEPTION 'the samples of a session are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- The span of the readings (a -1 is no reading and draws no energy).
	SELECT min(t), max(t) INTO t_from, t_to FROM unnest(p_ts, p_meter_wh) AS u(t, w) WHERE w >= 0;
	IF t_from IS NULL THEN
		RAISE EXCEPTION 'a session needs at least one meter reading' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- Where the price may change: plan changes and promotion bounds, and,
	-- when the station has plans by calendar then, each local midnight,
	-- where one may give way to another (the session is split at the day
	-- boundary in the station's zone, each part priced by its day's plan).
	-- A midnight where the plan stays is no cut: the split and the figures
	-- are as without it.
	SELECT array_agg(b ORDER BY b), array_agg(h ORDER BY b) INTO cuts, hard FROM (
		SELECT b, bool_or(h) AS h FROM (
			SELECT lower(valid) AS b, true AS h FROM evcharge.station_tariff
			WHERE station_id = p_station_id AND current_type = p_current_type
			  AND valid && tstzrange(t_from, t_to, '[]')
			UNION ALL
			SELECT upper(valid), true FROM evcharge.station_tariff
			WHERE station_id = p_station_id AND current_type = p_current_type
			  AND valid && tstzrange(t_from, t_to, '[]') AND NOT upper_inf(valid)
			UNION ALL
			SELECT unnest(ARRAY[lower(promo.valid), upper(promo.valid)]), true
			FROM evcharge.promotion promo JOIN evcharge.promotion_station ps USING (promotion_id)
			WHERE ps.station_id = p_station_id AND promo.valid && tstzrange(t_from, t_to, '[]')
			UNION ALL
			SELECT d::date::timestamp AT TIME ZONE st.tz, false
			FROM generate_series((t_from AT TIME ZONE st.tz)::date + 1, (t_to AT TIME ZONE st.tz)::date, interval '1 day') d
			WHERE EXISTS (SELECT 1 FROM evcharge.station_tariff c
			              WHERE c.station_id = p_station_id AND c.current_type = p_current_type
			                AND (c.season IS NOT NULL OR c.day_kind IS NOT NULL)
			                AND c.valid && tstzrange(t_from, t_to, '[]'))
		) x GROUP BY b
	) bounds WHERE b > t_from AND b <= t_to;
	cuts := ARRAY[t_from] || coalesce(cuts, '{}');
	hard := ARRAY[true] || coalesce(hard, '{}');

	-- The plan in force at each cut (plan_in_force, the one answer); none
	-- is an error that names the time.
	FOR k IN 1 .. array_length(cuts, 1) LOOP
		cut := cuts[k];
		IF cut = t_to AND cut <> t_from THEN
			CONTINUE;			-- nothing is consumed from the session's last instant on
		END IF;
		SELECT f.station_tariff_id, f.tariff, f.name INTO pl
		FROM evcharge.plan_in_force(p_station_id, p_current_type, cut) f;
		IF NOT FOUND THEN
			RAISE EXCEPTION '%', evcharge.no_plan_reason(p_station_id, p_current_type, cut)
				USING ERRCODE = 'EV001',
				      DETAIL = format('Station "%s" has no %s plan whose validity contains that time; evcharge never prices at a default price.',
				                      st.name, p_current_type),
				      HINT = 'Add the plan to evcharge.station_tariff, then price the session again.';
		END IF;
		IF NOT hard[k] AND pl.station_tariff_id = prev_plan THEN
			CONTINUE;			-- the same plan on the next day
		END IF;
		prev_plan := pl.station_tariff_id;
		plans := plans || pl.tariff;
		plan_names := plan_names || pl.name;
		starts := starts || cut;
	END LOOP;

	wh := evcharge.split_energy_by_span(plans, starts, p_ts, p_meter_wh, st.tz);
	-- 4 classes, or 5 when a plan has deep valley (split_energy_by_span's)
	IF array_length(wh, 2) = 5 THEN
		e_exact := e_exact || 0::numeric;
		s_exact := s_exact || 0::numeric;
		wh_sum := wh_sum || 0::bigint;
	END IF;

	FOR k IN 1 .. array_length(plans, 1) LOOP
		FOR pr IN SELECT * FROM evcharge.tariff_prices(plans[k]) LOOP
			c := array_position(evcharge.tariff_classes(), pr.class);
			IF wh[k][c] = 0 THEN
				CONTINUE;
			END IF;
			sr := evcharge.service_rate(p_station_id, p_group_id, starts[k], pr.service_fee);
			er := evcharge.energy_rate(p_station_id, p_group_id, starts[k], pr.energy_price);
			e_exact[c] := e_exact[c] + wh[k][c] * er.rate / 1000;
			s_exact[c] := s_exact[c] + wh[k][c] * sr.rate / 1000;
			wh_sum[c] := wh_sum[c] + wh[k][c];
			applied := applied || ('plan: ' || plan_names[k]) || sr.applied || er.applied;
		END LOOP;
	END LOOP;
	IF array_length(applied, 1) IS NULL THEN
		applied := ARRAY['plan: ' || plan_names[1]];
	END IF;

	r.class_kwh := ARRAY(SELECT trim_scale(w / 1000.0) FROM unnest(wh_sum) w);
	r.class_energy_fee := ARRAY(SELECT trim_scale(x) FROM unnest(e_exact) x);
	r.class_service_fee := ARRAY(SELECT trim_scale(x) FROM unnest(s_exact) x);
	r.kwh := round((SELECT sum(w) FROM unnest(wh_sum) w) / 1000.0, 3);
	r.energy_fee := trunc((SELECT sum(x) FROM unnest(e_exact) x), 2);
	r.service_fee := trunc((SELECT sum(x) FROM unnest(s_exact) x), 2);
	r.occupancy_fee := 0.00;
	r.discount := 0.00;
	r.total := r.energy_fee + r.service_fee;
	r.applied := ARRAY(SELECT DISTINCT a FROM unnest(applied) a ORDER BY a);
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.price_session(bigint, text, bigint, timestamptz[], bigint[]) IS
	'prices a session''s meter samples at a station: each part by the plan in force then (plan_in_force; split at local midnight where the day''s plan changes), group price and promotions (on the service fee and the electricity price) applied; no occupancy fee or coupon; P0002 for a station or group that is not registered (or a group of another operator)';

-- The occupancy fee of a charge, the one rule quote() and compute_bill
-- use: whole minutes plugged after charging ended, beyond the station's
-- grace, at its price per minute, truncated to the fen, up to its cap; a
-- group the station exempts pays nothing.  Always one row: the fee (0 when
-- none) and what applied, in words (NULL when no minute is charged).
CREATE FUNCTION evcharge.occupancy_charge(p_station_id bigint, p_group_id bigint,
	p_charging_ended_at timestamptz, p_occupied_until timestamptz)
RETURNS TABLE (fee numeric, applied text)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
BEGIN ATOMIC
	SELECT CASE WHEN m.minutes > 0 AND NOT m.exempt
	            THEN least(trunc(m.minutes * m.fee_per_minute, 2), coalesce(m.cap, 'Infinity'::numeric))
	            ELSE 0.00 END,
	       CASE WHEN m.minutes > 0 THEN
	            format('occupancy: %s min', m.minutes)
	            || CASE WHEN m.exempt THEN ', group exempt'
	                    WHEN m.cap IS NOT NULL AND trunc(m.minutes * m.fee_per_minute, 2) > m.cap THEN ', capped'
	                    ELSE '' END END
	FROM (SELECT 1) AS one
	LEFT JOIN LATERAL (
		SELECT floor(extract(epoch FROM p_occupied_until - p_charging_ended_at) / 60)::bigint - o.grace_minutes AS minutes,
		       o.fee_per_minute, o.cap,
		       EXISTS (SELECT 1 FROM evcharge.occupancy_exemption e
		               WHERE e.station_id = o.station_id AND e.group_id = p_group_id) AS exempt
		FROM evcharge.occupancy_fee o
		WHERE o.station_id = p_station_id
		  AND p_occupied_until IS NOT NULL AND p_charging_ended_at IS NOT NULL) AS m ON true;
END;
COMMENT ON FUNCTION evcharge.occupancy_charge(bigint, bigint, timestamptz, timestamptz) IS
	'the occupancy fee of a charge at a station for a group (whole minutes plugged after charging ended beyond the grace, truncated to the fen, capped; exempt groups pay 0) and what applied in words ("occupancy: N min[, group exempt | , capped]", NULL when no minute is charged): the one rule of quote() and compute_bill';

-- The coupon a charge uses, the one rule quote() and compute_bill use: of
-- the member's coupons of the station's operator valid at the start and
-- meant for this much energy, the one with the largest discount (never
-- more than the service fee), and of those the smallest, soonest to
-- expire, so that nothing is wasted.  p_order_no's own coupon counts as
-- free (a bill worked out again keeps it).  No row when none applies or
-- the service fee is 0.
CREATE FUNCTION evcharge.best_coupon(p_station_id bigint, p_member_id bigint, p_started_at timestamptz,
	p_kwh numeric, p_service_fee numeric, p_order_no text)
RETURNS TABLE (coupon_id bigint, discount numeric)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
BEGIN ATOMIC
	SELECT c.coupon_id, least(c.amount, p_service_fee)
	FROM evcharge.coupon c JOIN evcharge.station s ON s.operator_id = c.operator_id
	WHERE p_service_fee > 0 AND s.station_id = p_station_id AND c.member_id = p_member_id
	  AND (c.used_order_no IS NULL OR c.used_order_no = p_order_no)
	  AND c.valid @> p_started_at AND c.min_kwh <= p_kwh
	ORDER BY least(c.amount, p_service_fee) DESC, c.amount ASC, upper(c.valid) ASC NULLS LAST, c.coupon_id
	LIMIT 1;
END;
COMMENT ON FUNCTION evcharge.best_coupon(bigint, bigint, timestamptz, numeric, numeric, text) IS
	'the coupon a charge uses and its discount: the member''s coupon of the station''s operator, valid at the start, for at least its energy, giving the largest discount (at most the service fee), then the smallest and soonest to expire; the order''s own coupon counts as free; no row when none applies or the service fee is 0: the one rule of quote() and compute_bill';

CREATE FUNCTION evcharge.quote(station_id bigint, current_type text, group_id bigint,
	started_at timestamptz, ended_at timestamptz, kwh numeric,
	occupied_until timestamptz DEFAULT NULL, member_id bigint DEFAULT NULL)
RETURNS evcharge.charge_quote
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.charge_quote;
	wh bigint;
	occ record;
	cp record;
	op bigint;
	rated int;
BEGIN
	IF started_at IS NULL OR ended_at IS NULL OR kwh IS NULL THEN
		RAISE EXCEPTION 'started_at, ended_at and kwh are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT isfinite(started_at) OR NOT isfinite(ended_at) OR NOT isfinite(coalesce(occupied_until, ended_at)) THEN
		RAISE EXCEPTION 'a charge from % to % (unplugged %) cannot be priced', started_at, ended_at,
			coalesce(occupied_until::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A charge starts, ends and is unplugged at finite times.',
			      HINT = 'Give the times of the charge, e.g. ''2026-11-20 10:00+08''.';
	END IF;
	IF kwh IN ('NaN', 'Infinity', '-Infinity') THEN
		RAISE EXCEPTION 'energy % kWh is not a number of kWh', kwh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'evcharge measures energy in Wh: give kWh with at most 3 decimals, 0 or more.';
	END IF;
	IF ended_at < started_at THEN
		RAISE EXCEPTION 'the charge ends (%) before it starts (%)', ended_at, started_at
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kwh < 0 OR kwh <> round(kwh, 3) THEN
		RAISE EXCEPTION 'energy % kWh is not a whole number of Wh at least 0', kwh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'evcharge measures energy in Wh: give kWh with at most 3 decimals.';
	END IF;
	IF ended_at = started_at AND kwh > 0 THEN
		RAISE EXCEPTION 'a charge of % kWh cannot start and end at the same time (%)', kwh, started_at
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Energy flows over time: give the time charging ended.';
	END IF;
	IF occupied_until IS NOT NULL AND occupied_until < ended_at THEN
		RAISE EXCEPTION 'the gun is unplugged (%) before charging ends (%)', occupied_until, ended_at
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- Plausible: no more than the station's most powerful gun of that
	-- current type can deliver in the span, nor than the operator allows
	-- one bill (finance_policy).
	SELECT s.operator_id, (SELECT max(pl.rated_power_w) FROM evcharge.pile pl
	                       WHERE pl.station_id = s.station_id AND pl.current_type = quote.current_type)
	INTO op, rated
	FROM evcharge.station s WHERE s.station_id = quote.station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % does not exist', coalesce(quote.station_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Register it in evcharge.station.';
	END IF;
	IF rated IS NOT NULL AND kwh * 1000 > evcharge.gun_energy_limit(rated, started_at, ended_at) THEN
		RAISE EXCEPTION '% kWh cannot be charged at station % from % to %', kwh, quote.station_id, started_at, ended_at
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Its most powerful %s gun is rated %s W: at most %s kWh in that time (rated power x time x 1.2 + 10 Wh).',
			                      quote.current_type, rated, trunc(evcharge.gun_energy_limit(rated, started_at, ended_at) / 1000, 3)),
			      HINT = 'Check the energy and the times of the charge.';
	END IF;
	PERFORM evcharge.check_bill_limits(op, kwh * 1000, NULL, 'a quote');
	wh := (kwh * 1000)::bigint;

	-- A linear session: the energy rises evenly from start to end.
	r := evcharge.price_session(quote.station_id, quote.current_type, quote.group_id,
	                            ARRAY[started_at, ended_at], ARRAY[0, wh]);

	IF quote.member_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.member m
	                                               WHERE m.member_id = quote.member_id AND m.operator_id = op) THEN
		RAISE EXCEPTION 'operator % has no member %', op, quote.member_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('Station %s is operator %s''s; %s.', quote.station_id, op,
			                      coalesce((SELECT format('member %s is operator %s''s', m.member_id, m.operator_id)
			                                FROM evcharge.member m WHERE m.member_id = quote.member_id),
			                               format('no member %s is registered', quote.member_id))),
			      HINT = 'Give one of the operator''s members (evcharge.member), or NULL for no coupon.';
	END IF;

	-- Occupancy and the coupon, by the rules the bill uses.
	SELECT o.fee, o.applied INTO occ
	FROM evcharge.occupancy_charge(quote.station_id, quote.group_id, ended_at, occupied_until) o;
	r.occupancy_fee := occ.fee;
	IF occ.applied IS NOT NULL THEN
		r.applied := r.applied || occ.applied;
	END IF;
	IF member_id IS NOT NULL THEN
		SELECT c.coupon_id, c.discount INTO cp
		FROM evcharge.best_coupon(quote.station_id, quote.member_id, started_at, kwh, r.service_fee, NULL) c;
		IF FOUND THEN
			r.discount := cp.discount;
			r.applied := r.applied || format('coupon: %s', cp.coupon_id);
		END IF;
	END IF;

	r.total := r.energy_fee + r.service_fee + r.occupancy_fee - r.discount;
	r.applied := ARRAY(SELECT a FROM unnest(r.applied) a ORDER BY a);
	PERFORM evcharge.check_bill_limits(op, wh, r.total, 'a quote');
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.quote(bigint, text, bigint, timestamptz, timestamptz, numeric, timestamptz, bigint) IS
	'what a charge would cost: plans in force across the span, group price, promotions, occupancy fee up to occupied_until, the member''s best coupon; refuses (22023) energy beyond what the station''s most powerful gun of the type can deliver in the span (gun_energy_limit) or beyond the operator''s bill limits (check_bill_limits), NaN, infinite or negative energy and infinite times; P0002 for a station, group or member not the operator''s';
