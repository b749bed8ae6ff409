-- evcharge 0.2.0 -> 0.3.0: ALTER EXTENSION evcharge UPDATE TO '0.3.0'.
-- Every change that 0.3.0 makes to the extension's SQL, one section per
-- topic, in the order of the install files it belongs to.  A function
-- changed by several sections is created once, in the last of them.
-- test/integration/upgrade.sh installs 0.1.0 and 0.2.0, updates each and
-- compares the catalogue with a fresh 0.3.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.3.0'" to load this file. \quit

-- == issue 16 item 5: plans by calendar, deep valley, free charging ==
-- tou_tariff gains a fifth class, deep valley (深谷, p4).  Nothing to do
-- for stored values: a plan without deep valley keeps the 4-class form of
-- 0.1.0 and 0.2.0 (version 1, same bytes, same hash), which the library
-- reads as before; only plans with deep valley use the 5-class form.
-- Between make install and this update the new library serves the old
-- SQL: its heartbeat trigger looks plans up by validity as 0.2.0 did (no
-- plan_in_force yet); enter plans with deep valley after the update.
CREATE OR REPLACE FUNCTION evcharge.tou_tariff(plan jsonb) RETURNS evcharge.tou_tariff
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	seg jsonb;
	pr record;
	n int := 0;
	segs text[] := '{}';
	prices text[] := '{}';
BEGIN
	IF jsonb_typeof(plan->'segments') IS DISTINCT FROM 'array' OR jsonb_typeof(plan->'prices') IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'invalid tou_tariff: a plan in jsonb has an array "segments" and an object "prices"'
			USING ERRCODE = 'invalid_text_representation',
			      HINT = 'Write it as to_jsonb(tou_tariff) does: {"segments": [{"start": "00:00", "end": "24:00", "class": "flat"}], "prices": {"flat": {"energy": 0.64, "service": 0.51}}}.';
	END IF;
	FOR seg IN SELECT * FROM jsonb_array_elements(plan->'segments') LOOP
		n := n + 1;
		IF jsonb_typeof(seg) IS DISTINCT FROM 'object'
		   OR coalesce(seg->>'start', '') !~ '^\d\d:\d\d$' OR coalesce(seg->>'end', '') !~ '^\d\d:\d\d$'
		   OR coalesce(seg->>'class', '') !~ '^[[:alnum:]_]+$' THEN
			RAISE EXCEPTION 'invalid tou_tariff: segment % of the jsonb plan is not {"start": "HH:MM", "end": "HH:MM", "class": name}', n
				USING ERRCODE = 'invalid_text_representation', DETAIL = format('Segment %s is %s.', n, seg);
		END IF;
		segs := segs || format('%s-%s %s', seg->>'start', seg->>'end', seg->>'class');
	END LOOP;
	FOR pr IN SELECT * FROM jsonb_each(plan->'prices') LOOP
		IF pr.key !~ '^[[:alnum:]_]+$' OR jsonb_typeof(pr.value) IS DISTINCT FROM 'object'
		   OR jsonb_typeof(pr.value->'energy') IS DISTINCT FROM 'number'
		   OR jsonb_typeof(pr.value->'service') IS DISTINCT FROM 'number' THEN
			RAISE EXCEPTION 'invalid tou_tariff: price "%" of the jsonb plan is not {"energy": number, "service": number}', pr.key
				USING ERRCODE = 'invalid_text_representation', DETAIL = format('It is %s.', pr.value);
		END IF;
		prices := prices || format('%s %s+%s', pr.key, pr.value->>'energy', pr.value->>'service');
	END LOOP;
	RETURN (array_to_string(segs, ', ') || ' | ' || array_to_string(prices, ', '))::evcharge.tou_tariff;
END $$;
CREATE FUNCTION evcharge.tariff_classes() RETURNS text[]
	AS 'MODULE_PATHNAME', 'tou_tariff_classes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.tariff_classes() IS
	'the class names in class order, {sharp, peak, flat, valley, deep_valley}: element k of every per-class array (split_energy, price, bills) is class k';
COMMENT ON TYPE evcharge.tou_tariff IS
	'A complete daily time-of-use price plan: segments covering the day once, each of class sharp/peak/flat/valley/deep_valley, and per class an electricity price and a service fee in yuan per kWh (4 decimals); stored as before 0.3.0 when it has no deep valley';
COMMENT ON FUNCTION evcharge.class_at(evcharge.tou_tariff, time) IS
	'the class (sharp, peak, flat, valley, deep_valley) in force at a local time of day';
COMMENT ON FUNCTION evcharge.split_energy(evcharge.tou_tariff, timestamptz[], bigint[], text) IS
	'Wh per class {sharp, peak, flat, valley}, and deep_valley when the plan has it, of a session from its meter samples: rises shared among segments in proportion to time, in the zone tz';
COMMENT ON TYPE evcharge.charge_amount IS
	'What energy costs: total kWh, electricity fee, service fee and total (yuan, truncated to the fen), and per class {sharp, peak, flat, valley[, deep_valley]} the kWh and the exact fees';
COMMENT ON COLUMN evcharge.charge_amount.class_kwh IS 'kWh per class {sharp, peak, flat, valley}, and deep_valley when the plan or the figures have it';

-- Plans by calendar: a season and a kind of day on each plan row (NULL,
-- as every existing row gets, is every day: those rows keep their
-- constraint, now limited to them).
ALTER TABLE evcharge.station_tariff
	ADD COLUMN season text CHECK (season ~ '^[a-z][a-z0-9_]{0,39}$'),
	ADD COLUMN day_kind text CHECK (day_kind ~ '^[a-z][a-z0-9_]{0,39}$' AND day_kind <> 'workday');
ALTER TABLE evcharge.station_tariff DROP CONSTRAINT station_tariff_no_overlap;
ALTER TABLE evcharge.station_tariff
	ADD CONSTRAINT station_tariff_no_overlap
		EXCLUDE USING gist (station_id WITH =, current_type WITH =, valid WITH &&)
		WHERE (season IS NULL AND day_kind IS NULL),
	ADD CONSTRAINT station_tariff_calendar_no_overlap
		EXCLUDE USING gist (station_id WITH =, current_type WITH =, (coalesce(season, '')) WITH =,
		                    (coalesce(day_kind, '')) WITH =, valid WITH &&)
		WHERE (season IS NOT NULL OR day_kind IS NOT NULL);
CREATE INDEX station_tariff_lookup_idx ON evcharge.station_tariff USING gist (station_id, current_type, valid);
COMMENT ON INDEX evcharge.station_tariff_lookup_idx IS 'the plans of a station and current type valid at an instant (plan_in_force)';
COMMENT ON TABLE evcharge.station_tariff IS
	'The plans of a station for AC or DC piles over validity ranges, each for every day or for a calendar condition (a season, a kind of day); plans of one station, current type and condition never overlap; plan_in_force() says which is in force';
COMMENT ON COLUMN evcharge.station_tariff.season IS 'the plan holds only in this season of the operator''s (tariff_season); NULL for every month';
COMMENT ON COLUMN evcharge.station_tariff.day_kind IS 'the plan holds only on this kind of day: weekday, weekend, holiday (calendar_day), or a kind the operator declares (declared_day, e.g. high_temperature); NULL for every day';

-- Free charging: promotions on the electricity price too.
ALTER TABLE evcharge.promotion
	ADD COLUMN energy_fee numeric(10, 4) CHECK (energy_fee >= 0 AND energy_fee <> 'NaN'),
	ADD COLUMN energy_factor numeric(6, 4) CHECK (energy_factor >= 0 AND energy_factor <= 1),
	ADD CONSTRAINT promotion_energy_one CHECK (num_nonnulls(energy_fee, energy_factor) <= 1);
COMMENT ON TABLE evcharge.promotion IS
	'A promotion on the service fee, and optionally the electricity price, over a validity range (service fee free until 11-11 00:00, 50 % in the opening week, free charging before 12:00); it begins and ends by itself: sessions are priced by the promotions valid during each part of them';
COMMENT ON COLUMN evcharge.promotion.energy_fee IS 'electricity price in yuan per kWh during the promotion (0 with service_fee 0 = free charging); NULL leaves the plan''s';
COMMENT ON COLUMN evcharge.promotion.energy_factor IS 'factor on the plan''s electricity price, 0 to 1 (0 = electricity free); at most one of energy_fee and energy_factor';

-- The calendar (sql/install/calendar.sql, whole).
CREATE TABLE evcharge.calendar_day (
	operator_id bigint NOT NULL REFERENCES evcharge.operator ON DELETE CASCADE,
	day date NOT NULL,
	kind text NOT NULL CHECK (kind IN ('holiday', 'workday')),
	name text CHECK (name <> ''),
	PRIMARY KEY (operator_id, day)
);
COMMENT ON TABLE evcharge.calendar_day IS
	'An operator''s holiday calendar: the public holidays (rest days whatever the weekday) and the make-up working days (调休: a Saturday or Sunday worked as a weekday); a day not listed is a weekday Monday to Friday and a weekend day Saturday and Sunday';
COMMENT ON COLUMN evcharge.calendar_day.operator_id IS 'the operator whose calendar it is';
COMMENT ON COLUMN evcharge.calendar_day.day IS 'the day, on the wall clock of each station (its tz)';
COMMENT ON COLUMN evcharge.calendar_day.kind IS 'holiday (a public holiday, a rest day) or workday (a make-up working day, priced as a weekday)';
COMMENT ON COLUMN evcharge.calendar_day.name IS 'what the day is, e.g. 国庆节 (National Day)';

CREATE TABLE evcharge.declared_day (
	operator_id bigint NOT NULL REFERENCES evcharge.operator ON DELETE CASCADE,
	day date NOT NULL,
	kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$' AND kind NOT IN ('weekday', 'weekend', 'holiday')),
	reason text,
	declared_at timestamptz NOT NULL DEFAULT now(),
	declared_by text NOT NULL DEFAULT current_user,
	PRIMARY KEY (operator_id, day)
);
COMMENT ON TABLE evcharge.declared_day IS
	'Days an operator declares, such as a high-temperature day (kind high_temperature): on such a day its stations'' plans for that kind are in force, before holiday, weekday, weekend and season plans; one kind per day';
COMMENT ON COLUMN evcharge.declared_day.operator_id IS 'the operator that declares it';
COMMENT ON COLUMN evcharge.declared_day.day IS 'the day, on the wall clock of each station (its tz)';
COMMENT ON COLUMN evcharge.declared_day.kind IS 'the kind of day, a lower-case name (high_temperature); station_tariff.day_kind names it';
COMMENT ON COLUMN evcharge.declared_day.reason IS 'why, e.g. the weather service''s notice';
COMMENT ON COLUMN evcharge.declared_day.declared_at IS 'when it was declared';
COMMENT ON COLUMN evcharge.declared_day.declared_by IS 'who declared it';

CREATE TABLE evcharge.tariff_season (
	operator_id bigint NOT NULL REFERENCES evcharge.operator ON DELETE CASCADE,
	month int NOT NULL CHECK (month BETWEEN 1 AND 12),
	season text NOT NULL CHECK (season ~ '^[a-z][a-z0-9_]{0,39}$'),
	PRIMARY KEY (operator_id, month)
);
COMMENT ON TABLE evcharge.tariff_season IS
	'An operator''s seasons: the season each month belongs to (a month in at most one), e.g. summer for July to September; station_tariff.season names one';
COMMENT ON COLUMN evcharge.tariff_season.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.tariff_season.month IS 'month of the year, 1 to 12, of the station''s local date';
COMMENT ON COLUMN evcharge.tariff_season.season IS 'the season''s name, lower case (summer, winter)';

-- A plan row names a season its operator has: a misspelt season would
-- never be in force, silently.
CREATE FUNCTION evcharge.station_tariff_check_season() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.season IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM evcharge.station s JOIN evcharge.tariff_season ts ON ts.operator_id = s.operator_id
		WHERE s.station_id = NEW.station_id AND ts.season = NEW.season) THEN
		RAISE EXCEPTION 'operator of station % has no season "%"', NEW.station_id, NEW.season
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = coalesce((SELECT format('Its seasons are %s.', string_agg(DISTINCT ts.season, ', '))
			                         FROM evcharge.station s JOIN evcharge.tariff_season ts ON ts.operator_id = s.operator_id
			                         WHERE s.station_id = NEW.station_id HAVING count(*) > 0),
			                        'It has no seasons.'),
			      HINT = 'Give the season''s months in evcharge.tariff_season first.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.station_tariff_check_season() IS
	'trigger: a plan''s season is one of its station operator''s seasons (23503 otherwise)';
CREATE TRIGGER station_tariff_check_season BEFORE INSERT OR UPDATE OF season, station_id ON evcharge.station_tariff
	FOR EACH ROW EXECUTE FUNCTION evcharge.station_tariff_check_season();
COMMENT ON TRIGGER station_tariff_check_season ON evcharge.station_tariff IS 'a plan''s season exists for its operator';

-- The plan in force at a station for a current type at an instant.  The
-- station's local date decides, on its wall clock (station.tz):
--   1. a plan for the kind of day the operator declared that day
--      (day_kind = declared_day.kind, e.g. high_temperature);
--   2. on a public holiday of the operator's calendar, a holiday plan;
--   3. a weekday or weekend plan: Saturday and Sunday are weekend days,
--      a public holiday is a rest day (weekend) too, a make-up working
--      day (calendar_day.kind workday) is a weekday;
--   4. a plan for the season of the day's month (tariff_season);
--   5. a plan with no calendar condition.
-- A plan with both a season and a kind of day ranks just above the same
-- kind of day without a season.  Only rows whose validity contains the
-- instant take part; the exclusion constraints leave at most one per rank.
-- until: the answer holds from p_at until then (exclusive) at least: the
-- next local midnight, the end of the chosen row, or the start of another
-- row of the station and current type, whichever comes first.  No row
-- when no plan is in force: callers raise (EV001), never a default price.  A plain SQL function so that the planner inlines it into the
-- heartbeat trigger's per-batch look-up: a few index probes per gun.
CREATE FUNCTION evcharge.plan_in_force(p_station_id bigint, p_current_type text, p_at timestamptz)
RETURNS TABLE (station_tariff_id bigint, tariff evcharge.tou_tariff, name text, local_day date,
               day_type text, season text, matched text, until timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT t.station_tariff_id, t.tariff, coalesce(t.name, 'plan ' || t.station_tariff_id),
	       l.local_day, coalesce(dd.kind, d.holiday, d.rest), sn.season,
	       CASE WHEN t.day_kind IS NULL AND t.season IS NULL THEN 'every day'
	            ELSE concat_ws(' ', t.season, t.day_kind) END,
	       least((l.local_day + 1)::timestamp AT TIME ZONE s.tz,
	             CASE WHEN NOT upper_inf(t.valid) THEN upper(t.valid) END,
	             (SELECT min(lower(n.valid)) FROM evcharge.station_tariff n
	              WHERE n.station_id = s.station_id AND n.current_type = p_current_type AND lower(n.valid) > p_at))
	FROM evcharge.station s
	CROSS JOIN LATERAL (SELECT (p_at AT TIME ZONE s.tz)::date AS local_day) l
	LEFT JOIN evcharge.calendar_day cd ON cd.operator_id = s.operator_id AND cd.day = l.local_day
	CROSS JOIN LATERAL (SELECT CASE WHEN cd.kind = 'holiday' THEN 'holiday' END AS holiday,
	                           CASE WHEN cd.kind = 'workday' THEN 'weekday'
	                                WHEN cd.kind = 'holiday' OR extract(isodow FROM l.local_day) >= 6 THEN 'weekend'
	                                ELSE 'weekday' END AS rest) d
	LEFT JOIN evcharge.declared_day dd ON dd.operator_id = s.operator_id AND dd.day = l.local_day
	LEFT JOIN evcharge.tariff_season sn ON sn.operator_id = s.operator_id
	                                   AND sn.month = extract(month FROM l.local_day)::int
	JOIN evcharge.station_tariff t ON t.station_id = s.station_id AND t.current_type = p_current_type
	                              AND t.valid @> p_at
	WHERE s.station_id = p_station_id
	  AND (t.season IS NULL OR t.season = sn.season)
	  AND (t.day_kind IS NULL OR t.day_kind = dd.kind OR t.day_kind = d.holiday OR t.day_kind = d.rest)
	ORDER BY CASE WHEN t.day_kind IS NULL THEN 0 WHEN t.day_kind = dd.kind THEN 3
	              WHEN t.day_kind = 'holiday' THEN 2 ELSE 1 END * 2 + (t.season IS NOT NULL)::int DESC,
	         t.station_tariff_id
	LIMIT 1;
END;
COMMENT ON FUNCTION evcharge.plan_in_force(bigint, text, timestamptz) IS
	'the plan in force at a station for AC or DC at an instant, by the station''s local date: declared day > holiday > weekday/weekend > season > every day; with the day''s type and season, the condition that matched, and until when the answer holds; no row when none is in force (callers raise EV001)';

SELECT pg_catalog.pg_extension_config_dump('evcharge.calendar_day', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.declared_day', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.tariff_season', '');

-- Pricing: promotions_at (the one list of valid promotions), energy_rate,
-- price_session by plan_in_force with cuts at local midnight.
CREATE OR REPLACE FUNCTION evcharge.promotions_at(p_station_id bigint, p_group_id bigint, p_at timestamptz)
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
CREATE OR REPLACE FUNCTION evcharge.service_rate(p_station_id bigint, p_group_id bigint, p_at timestamptz,
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
CREATE OR REPLACE FUNCTION evcharge.energy_rate(p_station_id bigint, p_group_id bigint, p_at timestamptz,
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
CREATE OR REPLACE FUNCTION evcharge.price_session(p_station_id bigint, p_current_type text, p_group_id bigint,
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
			RAISE EXCEPTION 'no tariff in force for station % (%) at %', p_station_id, p_current_type,
				to_char(cut AT TIME ZONE st.tz, 'YYYY-MM-DD HH24:MI:SS') || ' ' || st.tz
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
COMMENT ON TYPE evcharge.charge_quote IS
	'A priced charge: kWh; electricity, service and occupancy fees, coupon discount and total (yuan, each truncated to the fen; total = energy + service + occupancy - discount); per class {sharp, peak, flat, valley[, deep_valley]} kWh and exact fees; and what applied (plans, group, promotions, occupancy, coupon)';
COMMENT ON COLUMN evcharge.charge_quote.class_kwh IS 'kWh per class {sharp, peak, flat, valley}, and deep_valley when a plan has it';

-- A live session's Wh per class may have a fifth figure, deep valley.
ALTER TABLE evcharge.charge_session DROP CONSTRAINT charge_session_wh_by_class_check;
ALTER TABLE evcharge.charge_session ADD CONSTRAINT charge_session_wh_by_class_check
	CHECK (array_length(wh_by_class, 1) IN (4, 5));
COMMENT ON COLUMN evcharge.charge_session.wh_by_class IS 'Wh so far per class {sharp, peak, flat, valley}, and deep_valley once it has some, as measured live';
COMMENT ON COLUMN evcharge.bill.wh_by_class IS 'billed Wh per class {sharp, peak, flat, valley}, and deep_valley when a plan of the session has it';

-- The balance guard and the evidence ask plan_in_force too.
CREATE OR REPLACE FUNCTION evcharge.balance_guard(p_orders text[]) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	-- No wallet in the ledger at all (the platform does not hold the money):
	-- nothing to guard, and nothing to spend per batch on finding that out.
	IF NOT EXISTS (SELECT 1 FROM evcharge.account a
	               WHERE a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')) THEN
		RETURN 0;
	END IF;
	WITH s AS (
		SELECT cs.order_no, cs.gun, cs.station_id, cs.member_id, cs.partner_id,
		       coalesce(cs.running_total, 0) AS running_total, coalesce(g.power_w, 0) AS power_w,
		       st.operator_id, fp.stop_threshold, fp.guard_interval,
		       (SELECT cg.group_id FROM evcharge.customer_group cg
		        WHERE cg.pays_for_members AND cg.group_id = coalesce(cs.group_id,
		              (SELECT m.group_id FROM evcharge.member m WHERE m.member_id = cs.member_id))) AS dept,
		       cs.last_ts
		FROM unnest(p_orders) o
		JOIN evcharge.charge_session cs ON cs.order_no = o
		JOIN evcharge.gun_state g ON g.gun OPERATOR(evcharge.=) cs.gun
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.finance_policy fp ON fp.operator_id = st.operator_id
		WHERE cs.state = 'charging'
		  AND NOT EXISTS (SELECT 1 FROM evcharge.stop_request r WHERE r.order_no = cs.order_no)
	), w AS (
		-- Only sessions paid from a wallet; the price only for them.
		SELECT s.*, a.account_id, a.balance,
		       trunc(s.power_w / 1000.0 * extract(epoch FROM s.guard_interval) / 3600 * coalesce(
		           (SELECT max(p.energy_price + p.service_fee)
		            FROM evcharge.plan_in_force(s.station_id, evcharge.current_type(s.gun), s.last_ts) t,
		                 evcharge.tariff_prices(t.tariff) p), 0), 2) AS projected
		FROM s
		JOIN LATERAL (SELECT a.account_id, a.balance FROM evcharge.account a
		              WHERE a.operator_id = s.operator_id
		                AND ((s.partner_id IS NOT NULL AND a.kind = 'partner_prepaid' AND a.owner_id = s.partner_id)
		                  OR (s.partner_id IS NULL AND s.dept IS NOT NULL AND a.kind = 'department_wallet' AND a.owner_id = s.dept)
		                  OR (s.partner_id IS NULL AND s.dept IS NULL AND a.kind = 'member_wallet' AND a.owner_id = s.member_id))
		              LIMIT 1) a ON true
	), stopped AS (
		INSERT INTO evcharge.stop_request (order_no, gun, account_id, balance, running_total, projected, threshold)
		SELECT w.order_no, w.gun, w.account_id, w.balance, w.running_total, w.projected, w.stop_threshold
		FROM w WHERE w.balance - w.running_total - w.projected < w.stop_threshold
		ON CONFLICT (order_no) DO NOTHING
		RETURNING order_no, gun, account_id, balance, running_total
	), remote_stop AS (
		-- For a charge an OCPP pile started, the RemoteStopTransaction the
		-- bridge holding the pile sends (woken by the NOTIFY below).
		INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no)
		SELECT t.pile_id, t.connector_id, 'RemoteStopTransaction', t.order_no
		FROM stopped JOIN evcharge.ocpp_transaction t ON t.order_no = stopped.order_no
		WHERE t.stopped_at IS NULL
		ON CONFLICT DO NOTHING
	)
	SELECT count(pg_notify('evcharge_stop', json_build_object('order_no', order_no, 'gun', gun::text,
		'balance', balance, 'running_total', running_total)::text)) INTO n FROM stopped;
	RETURN n;
END $$;
CREATE OR REPLACE FUNCTION evcharge.session_evidence(p_order_no text)
RETURNS TABLE (ts timestamptz, meter_wh bigint, energy_wh bigint, power_w int, status evcharge.gun_status,
	soc smallint, order_no text, tariff_class text, note text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	gap_after CONSTANT interval := interval '2 min';
	s record;
	smp record;
	nsamples int;
	i int := 0;				-- the last sample at or before the row
	r record;
	notes text[];
	high bigint;			-- highest reading among the samples so far
	prev_ts timestamptz;
	ended_noted boolean := false;
	unplug_noted boolean := false;
	gap int;
BEGIN
	SELECT cs.gun, cs.station_id, cs.started_at, cs.charging_ended_at, cs.occupied_until,
	       coalesce(cs.started_at, cs.created_at) - interval '5 min' AS lo,
	       coalesce(cs.occupied_until, cs.last_ts, cs.charging_ended_at, cs.started_at, cs.created_at) AS hi,
	       st.tz, evcharge.current_type(cs.gun) AS current_type
	INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'No charging session has this order number, so there are no heartbeats to show.',
			      HINT = 'Order numbers are in evcharge.charge_session; a charge started at the pile appears there with its first charging heartbeat or its pile record.';
	END IF;
	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);

	FOR r IN
		SELECT d.ts, d.meter_wh, d.power_w, d.status, d.soc, d.order_no, d.copies,
		       (SELECT evcharge.class_at(t.tariff, (d.ts AT TIME ZONE s.tz)::time)
		        FROM evcharge.plan_in_force(s.station_id, s.current_type, d.ts) t) AS tariff_class
		FROM (SELECT DISTINCT ON (h.ts) h.ts, h.meter_wh, h.power_w, h.status, h.soc, h.order_no,
		             count(*) OVER (PARTITION BY h.ts) AS copies
		      FROM evcharge.heartbeat h
		      WHERE h.gun OPERATOR(evcharge.=) s.gun AND h.ts >= s.lo AND h.ts <= s.hi
		      ORDER BY h.ts, h.meter_wh DESC NULLS LAST, h.received_at, h.status, h.power_w) d
		ORDER BY d.ts
	LOOP
		notes := '{}';
		IF r.ts = s.started_at THEN
			notes := notes || 'start of charging'::text;
		END IF;
		-- A silence while charging: the pile was offline or its data lost.
		IF prev_ts >= s.started_at AND prev_ts < coalesce(s.charging_ended_at, 'infinity')
		   AND r.ts - prev_ts > gap_after THEN
			gap := extract(epoch FROM r.ts - prev_ts)::int;
			notes := notes || format('no heartbeat for %s min %s s before this: possible lost data', gap / 60, gap % 60);
		END IF;

		-- Energy so far: the last sample at or before this row.  At a sample,
		-- a rise of the highest reading that the count did not take is a jump.
		IF i < nsamples AND smp.ts[i + 1] = r.ts THEN
			i := i + 1;
			IF high IS NOT NULL AND r.meter_wh > high
			   AND r.meter_wh - high > smp.meter_wh[i] - smp.meter_wh[i - 1] THEN
				notes := notes || format('meter jump of %s Wh, not billed',
					(r.meter_wh - high) - (smp.meter_wh[i] - smp.meter_wh[i - 1]));
			END IF;
			high := greatest(high, r.meter_wh);
		END IF;
		IF r.ts >= s.started_at AND r.ts <= coalesce(s.charging_ended_at, 'infinity') THEN
			IF r.meter_wh < 0 THEN
				notes := notes || 'no meter reading (-1): ignored'::text;
			ELSIF r.meter_wh = 0 AND high > 0 THEN
				notes := notes || 'meter reads 0 (a pile back online): ignored, counting resumes above the highest reading'::text;
			ELSIF r.meter_wh < high THEN
				notes := notes || format('meter below its highest reading (%s Wh): nothing counted', high);
			END IF;
		END IF;

		IF NOT ended_noted AND r.ts >= s.charging_ended_at THEN
			notes := notes || CASE WHEN r.ts = s.charging_ended_at THEN 'end of charging'
				ELSE format('end of charging at %s, before this heartbeat',
				            to_char(s.charging_ended_at AT TIME ZONE s.tz, 'HH24:MI:SS')) END;
			ended_noted := true;
		END IF;
		IF NOT unplug_noted AND r.ts >= s.occupied_until THEN
			notes := notes || CASE WHEN r.ts = s.occupied_until THEN 'unplugged'
				ELSE format('unplugged at %s, before this heartbeat', to_char(s.occupied_until AT TIME ZONE s.tz, 'HH24:MI:SS')) END;
			unplug_noted := true;
		END IF;
		IF r.copies > 1 THEN
			notes := notes || format('received %s times: the highest reading is shown', r.copies);
		END IF;

		ts := r.ts;
		meter_wh := r.meter_wh;
		energy_wh := CASE WHEN i > 0 THEN smp.meter_wh[i] END;
		power_w := r.power_w;
		status := r.status;
		soc := r.soc;
		order_no := r.order_no;
		tariff_class := r.tariff_class;
		note := nullif(array_to_string(notes, '; '), '');
		RETURN NEXT;
		prev_ts := r.ts;
	END LOOP;
END $$;
CREATE OR REPLACE FUNCTION evcharge.session_chart(p_order_no text) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	width CONSTANT int := 960;
	px0 CONSTANT int := 80;				-- the plot area, px
	px1 CONSTANT int := 880;
	py0 CONSTANT int := 90;
	py1 CONSTANT int := 390;
	s record;
	b evcharge.bill;
	has_bill boolean;
	ev_ts timestamptz[];
	ev_wh bigint[];
	ev_w int[];
	ev_note text[];
	n int;
	t0 timestamptz;
	t1 timestamptz;
	span numeric;						-- seconds from t0 to t1
	l0 timestamp;						-- t0 and t1 on the station's wall clock
	l1 timestamp;
	tick_every interval;
	tick timestamp;
	x numeric;
	v numeric;
	e_top numeric;
	e_step numeric;
	p_top numeric;
	p_step numeric;
	r record;
	k int;
	body text[] := '{}';
	shown_plan bigint[] := '{}';		-- the plans and classes drawn as bands
	shown_class text[] := '{}';
	lines text[];
	y numeric;
	height int;
BEGIN
	-- The curve; session_evidence raises the error for an unknown order.
	SELECT array_agg(e.ts ORDER BY e.ts), array_agg(e.energy_wh ORDER BY e.ts),
	       array_agg(e.power_w ORDER BY e.ts), array_agg(e.note ORDER BY e.ts)
	INTO ev_ts, ev_wh, ev_w, ev_note
	FROM evcharge.session_evidence(p_order_no) e;
	n := coalesce(array_length(ev_ts, 1), 0);
	SELECT cs.order_no, cs.gun, cs.station_id, cs.state, cs.started_at, cs.charging_ended_at,
	       cs.occupied_until, cs.created_at, st.name AS station_name, st.tz,
	       evcharge.current_type(cs.gun) AS current_type
	INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	has_bill := FOUND;

	-- Time axis: the heartbeats shown and the session's moments, at least a
	-- minute; ticks at round local times, at most 8 of them.
	t0 := coalesce(least(ev_ts[1], s.started_at), s.created_at);
	t1 := greatest(ev_ts[n], s.started_at, s.charging_ended_at, s.occupied_until, t0 + interval '1 min');
	span := extract(epoch FROM t1 - t0);
	l0 := t0 AT TIME ZONE s.tz;
	l1 := t1 AT TIME ZONE s.tz;
	SELECT m * interval '1 min' INTO tick_every
	FROM unnest(ARRAY[1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440]) m
	WHERE span / 60 / m <= 8 ORDER BY m LIMIT 1;
	tick_every := coalesce(tick_every, ceil(span / 86400 / 8) * interval '1 day');

	-- Value axes: 0 to a round top, steps of 1, 2 or 5 times a power of ten.
	v := greatest(coalesce((SELECT max(w) FROM unnest(ev_wh) w), 0), 100) / 5.0;
	e_step := 10 ^ floor(log(v));
	e_step := CASE WHEN v <= e_step THEN e_step WHEN v <= 2 * e_step THEN 2 * e_step
	               WHEN v <= 5 * e_step THEN 5 * e_step ELSE 10 * e_step END;
	e_top := greatest(ceil(coalesce((SELECT max(w) FROM unnest(ev_wh) w), 0) / e_step), 1) * e_step;
	v := greatest(coalesce((SELECT max(w) FROM unnest(ev_w) w), 0) / 1000.0, 1) / 5.0;
	p_step := 10 ^ floor(log(v));
	p_step := CASE WHEN v <= p_step THEN p_step WHEN v <= 2 * p_step THEN 2 * p_step
	               WHEN v <= 5 * p_step THEN 5 * p_step ELSE 10 * p_step END;
	p_top := greatest(ceil(coalesce((SELECT max(w) FROM unnest(ev_w) w), 0) / 1000.0 / p_step), 1) * p_step;

	-- Tariff bands: each segment of each plan in force, on every local day
	-- the chart covers, cut to the plan's validity and to the chart.
	body := body || '<g id="tariff-bands">'::text;
	FOR r IN
		SELECT greatest(seg.f, t0, lower(t.valid)) AS f, least(seg.t, t1, upper(t.valid)) AS t, seg.class,
		       t.station_tariff_id
		FROM evcharge.station_tariff t
		CROSS JOIN generate_series((l0::date - 1)::timestamp, l1::date::timestamp, interval '1 day') d
		CROSS JOIN LATERAL (SELECT (d::date + g.starts) AT TIME ZONE s.tz AS f, (d::date + g.ends) AT TIME ZONE s.tz AS t, g.class
		                    FROM evcharge.tariff_segments(t.tariff) g) seg
		WHERE t.station_id = s.station_id AND t.current_type = s.current_type
		  AND t.valid && tstzrange(t0, t1) AND seg.f < t1 AND seg.t > t0
		  AND seg.t > lower(t.valid) AND (upper_inf(t.valid) OR seg.f < upper(t.valid))
		  -- the plan by calendar in force that day (plan_in_force), not every plan valid then
		  AND (SELECT f.station_tariff_id FROM evcharge.plan_in_force(s.station_id, s.current_type,
		           greatest(seg.f, t0, lower(t.valid))) f) = t.station_tariff_id
		ORDER BY 1
	LOOP
		shown_plan := shown_plan || r.station_tariff_id;
		shown_class := shown_class || r.class;
		body := body || format('<rect class="band-%s" x="%s" y="%s" width="%s" height="%s"/>',
			evcharge.xml_escape(r.class), round(px0 + (px1 - px0) * extract(epoch FROM r.f - t0) / span, 1), py0,
			round((px1 - px0) * extract(epoch FROM r.t - r.f) / span, 1), py1 - py0);
	END LOOP;
	body := body || '</g>'::text;

	-- Grid and axes.
	body := body || '<g id="axes">'::text;
	FOR k IN 0 .. round(e_top / e_step)::int LOOP
		y := py1 - (py1 - py0) * k * e_step / e_top;
		body := body || format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', px0, round(y, 1), px1, round(y, 1))
		             || format('<text x="%s" y="%s" text-anchor="end">%s</text>', px0 - 6, round(y + 4, 1), round(k * e_step));
	END LOOP;
	FOR k IN 0 .. round(p_top / p_step)::int LOOP
		y := py1 - (py1 - py0) * k * p_step / p_top;
		body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', px1, round(y, 1), px1 + 4, round(y, 1))
		             || format('<text x="%s" y="%s">%s</text>', px1 + 7, round(y + 4, 1), round(k * p_step, 1));
	END LOOP;
	tick := date_bin(tick_every, l0, timestamp '2000-01-01');
	IF tick < l0 THEN
		tick := tick + tick_every;
	END IF;
	WHILE tick <= l1 LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM (tick AT TIME ZONE s.tz) - t0) / span;
		body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', round(x, 1), py1, round(x, 1), py1 + 4)
		             || format('<text x="%s" y="%s" text-anchor="middle">%s</text>', round(x, 1), py1 + 17,
		                       to_char(tick, CASE WHEN tick::date = l0::date THEN 'HH24:MI' ELSE 'MM-DD HH24:MI' END));
		tick := tick + tick_every;
	END LOOP;
	body := body
		|| format('<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>', px0, py0, px1 - px0, py1 - py0)
		|| format('<text x="%s" y="%s" text-anchor="middle">%s</text>', (px0 + px1) / 2, py1 + 35,
		          evcharge.xml_escape(format('local time (%s), %s', s.tz,
		              CASE WHEN l0::date = l1::date THEN to_char(l0, 'YYYY-MM-DD')
		                   ELSE to_char(l0, 'YYYY-MM-DD') || ' to ' || to_char(l1, 'YYYY-MM-DD') END)))
		|| format('<text x="20" y="%s" text-anchor="middle" transform="rotate(-90 20 %s)">energy delivered (Wh)</text>',
		          (py0 + py1) / 2, (py0 + py1) / 2)
		|| format('<text x="%s" y="%s" text-anchor="middle" transform="rotate(90 %s %s)">power (kW)</text>',
		          width - 20, (py0 + py1) / 2, width - 20, (py0 + py1) / 2)
		|| '</g>'::text;

	-- The curves.
	body := body || format('<polyline class="power" points="%s"/>', coalesce((
		SELECT string_agg(format('%s,%s', round(px0 + (px1 - px0) * extract(epoch FROM u.t - t0) / span, 1),
		                         round(py1 - (py1 - py0) * u.w / 1000.0 / p_top, 1)), ' ' ORDER BY u.t)
		FROM unnest(ev_ts, ev_w) u(t, w) WHERE u.w IS NOT NULL), ''));
	body := body || format('<polyline class="energy" points="%s"/>', coalesce((
		SELECT string_agg(format('%s,%s', round(px0 + (px1 - px0) * extract(epoch FROM u.t - t0) / span, 1),
		                         round(py1 - (py1 - py0) * u.w / e_top, 1)), ' ' ORDER BY u.t)
		FROM unnest(ev_ts, ev_wh) u(t, w) WHERE u.w IS NOT NULL), ''));
	IF n = 0 THEN
		body := body || format('<text x="%s" y="%s" text-anchor="middle">no heartbeats</text>', (px0 + px1) / 2, (py0 + py1) / 2);
	END IF;

	-- The session's moments.
	body := body || '<g id="moments">'::text;
	FOR r IN
		SELECT m.moment, m.label, m.line_no
		FROM (VALUES (s.started_at, 'start', 1), (s.charging_ended_at, 'end of charging', 2),
		             (s.occupied_until, 'unplugged', 3)) m(moment, label, line_no)
		WHERE m.moment IS NOT NULL ORDER BY m.line_no
	LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM r.moment - t0) / span;
		body := body || format('<line class="mark" x1="%s" y1="%s" x2="%s" y2="%s"/>', round(x, 1), py0, round(x, 1), py1)
		             || (CASE WHEN x < (px0 + px1) / 2
		                 THEN format('<text x="%s" y="%s">', round(x + 3, 1), py0 + 14 * r.line_no)
		                 ELSE format('<text x="%s" y="%s" text-anchor="end">', round(x - 3, 1), py0 + 14 * r.line_no) END
		                 || format('%s %s</text>', r.label, to_char(r.moment AT TIME ZONE s.tz, 'HH24:MI:SS')));
	END LOOP;
	body := body || '</g>'::text;

	-- What the bill did not count: meter jumps, and silences while charging.
	body := body || '<g id="marks">'::text;
	FOR r IN
		SELECT g.prev, g.t, substring(g.note FROM 'no heartbeat for ([0-9]+ min [0-9]+ s)') AS len
		FROM (SELECT u.t, u.note, lag(u.t) OVER (ORDER BY u.t) AS prev FROM unnest(ev_ts, ev_note) u(t, note)) g
		WHERE g.note ~ 'no heartbeat for' ORDER BY g.t
	LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM r.prev - t0) / span;
		body := body || format('<rect class="gap" x="%s" y="%s" width="%s" height="%s"/>', round(x, 1), py0,
		                       round((px1 - px0) * extract(epoch FROM r.t - r.prev) / span, 1), py1 - py0)
		             || format('<text class="warn" x="%s" y="%s">no data %s</text>', round(x + 2, 1), py1 - 6, r.len);
	END LOOP;
	FOR r IN
		SELECT u.t, u.w, substring(u.note FROM 'meter jump of ([0-9]+) Wh') AS jump
		FROM unnest(ev_ts, ev_wh, ev_note) u(t, w, note)
		WHERE u.note ~ 'meter jump of' ORDER BY u.t
	LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM r.t - t0) / span;
		y := py1 - (py1 - py0) * coalesce(r.w, 0) / e_top;
		body := body || format('<circle class="jump" cx="%s" cy="%s" r="5"/>', round(x, 1), round(y, 1))
		             || format('<text class="warn" x="%s" y="%s" text-anchor="end">jump +%s Wh, not billed</text>',
		                       round(x - 8, 1), round(y - 8, 1), r.jump);
	END LOOP;
	body := body || '</g>'::text;

	-- Legend: the two curves, then each class drawn with its plan's prices
	-- (a class twice when a plan change during the session changed them),
	-- four to a line.
	y := py1 + 62;
	body := body || '<g id="legend">'::text
		|| format('<line class="energy" x1="%s" y1="%s" x2="%s" y2="%s"/>', px0, y - 4, px0 + 24, y - 4)
		|| format('<text x="%s" y="%s">energy delivered (Wh), as the bill counts it</text>', px0 + 30, y)
		|| format('<line class="power" x1="%s" y1="%s" x2="%s" y2="%s"/>', px0 + 340, y - 4, px0 + 364, y - 4)
		|| format('<text x="%s" y="%s">power (kW)</text>', px0 + 370, y)
		|| format('<rect class="gap" x="%s" y="%s" width="24" height="10"/>', px0 + 460, y - 9)
		|| format('<text x="%s" y="%s">no heartbeat for over 2 min while charging</text>', px0 + 490, y);
	y := y + 22;
	k := 0;
	FOR r IN
		SELECT DISTINCT seg.class, p.energy_price, p.service_fee,
		       array_position(evcharge.tariff_classes(), seg.class) AS pos
		FROM evcharge.station_tariff t
		CROSS JOIN LATERAL evcharge.tariff_segments(t.tariff) seg
		JOIN LATERAL evcharge.tariff_prices(t.tariff) p ON p.class = seg.class
		WHERE t.station_id = s.station_id AND t.current_type = s.current_type AND t.valid && tstzrange(t0, t1)
		  AND EXISTS (SELECT 1 FROM unnest(shown_plan, shown_class) u(plan, class)
		              WHERE u.plan = t.station_tariff_id AND u.class = seg.class)
		ORDER BY pos, seg.class, p.energy_price, p.service_fee
	LOOP
		IF k = 0 THEN
			body := body || format('<text x="%s" y="%s">tariff classes (electricity + service fee, yuan/kWh):</text>', px0, y);
		END IF;
		IF k % 4 = 0 THEN
			y := y + 20;
		END IF;
		body := body || format('<rect class="band-%s" x="%s" y="%s" width="14" height="10"/>',
		                       evcharge.xml_escape(r.class), px0 + 200 * (k % 4), y - 9)
		             || format('<text x="%s" y="%s">%s %s + %s</text>', px0 + 20 + 200 * (k % 4), y,
		                       evcharge.xml_escape(r.class), round(r.energy_price, 4), round(r.service_fee, 4));
		k := k + 1;
	END LOOP;
	IF k = 0 THEN
		body := body || format('<text class="warn" x="%s" y="%s">no %s plan in force at this station: nothing can be priced</text>',
		                       px0, y, s.current_type);
	END IF;
	body := body || '</g>'::text;

	-- The bill's anomalies.
	IF NOT has_bill THEN
		lines := ARRAY['No bill yet: anomalies are looked for when the bill is made.'];
	ELSIF cardinality(evcharge.anomaly_codes(b.anomalies)) = 0 THEN
		lines := ARRAY[format('No anomalies on the bill (%s).', b.state)];
	ELSE
		lines := ARRAY[format('Anomalies on the bill (%s): %s', b.state, b.anomalies::text)]
			|| ARRAY(SELECT format('%s %s: %s', a.code, a.name, coalesce(c.description, ''))
			         FROM unnest(evcharge.anomaly_codes(b.anomalies), evcharge.anomaly_names(b.anomalies)) a(code, name)
			         LEFT JOIN evcharge.anomaly_code c ON c.code = a.code
			         ORDER BY a.code);
	END IF;
	y := y + 20;
	body := body || '<g id="anomalies">'::text
		|| format('<rect class="box" x="%s" y="%s" width="%s" height="%s"/>', px0, y, px1 - px0, 10 + 16 * cardinality(lines));
	FOR k IN 1 .. cardinality(lines) LOOP
		body := body || format('<text%s x="%s" y="%s">%s</text>', CASE WHEN k = 1 THEN ' class="head"' ELSE '' END,
		                       px0 + 8, y + 16 * k, evcharge.xml_escape(lines[k]));
	END LOOP;
	body := body || '</g>'::text;
	height := y + 10 + 16 * cardinality(lines) + 12;

	RETURN array_to_string(ARRAY[
		'<?xml version="1.0" encoding="UTF-8"?>',
		format('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%s" height="%s" viewBox="0 0 %s %s">',
		       width, height, width, height),
		format('<title>%s</title>', evcharge.xml_escape(format('Charging evidence for order %s', s.order_no))),
		format('<desc>%s</desc>', evcharge.xml_escape(format(
			'Energy delivered (Wh, left axis) and power (kW, right axis) from the heartbeats of gun %s at station %s, on the station''s local time (%s); background bands are the tariff classes in force.',
			s.gun, s.station_name, s.tz))),
		'<style type="text/css">'
		'text { font-family: sans-serif; font-size: 12px; fill: #222222; } '
		'.title { font-size: 16px; font-weight: bold; } .head { font-weight: bold; } .warn { fill: #cc0000; } '
		'.band-sharp { fill: #f4cccc; } .band-peak { fill: #fce5cd; } .band-flat { fill: #d9ead3; } .band-valley { fill: #cfe2f3; } .band-deep_valley { fill: #9fc5e8; } '
		'.grid { stroke: #cccccc; stroke-width: 1; } .axis { stroke: #444444; stroke-width: 1; } '
		'.frame { fill: none; stroke: #444444; stroke-width: 1; } '
		'.energy { fill: none; stroke: #1f4e79; stroke-width: 2; } '
		'.power { fill: none; stroke: #c55a11; stroke-width: 1.5; stroke-dasharray: 6 3; } '
		'.mark { stroke: #000000; stroke-width: 1; stroke-dasharray: 4 3; } '
		'.jump { fill: #cc0000; } .gap { fill: #888888; fill-opacity: 0.35; } '
		'.box { fill: #fff8e1; stroke: #b58900; stroke-width: 1; }'
		'</style>',
		format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', width, height),
		format('<text class="title" x="%s" y="26">%s</text>', px0, evcharge.xml_escape(format('Order %s · gun %s · %s',
			s.order_no, s.gun, s.station_name))),
		format('<text x="%s" y="48">%s</text>', px0, evcharge.xml_escape(CASE WHEN has_bill THEN
			format('Bill: %s kWh, total %s yuan (electricity %s, service %s, occupancy %s, discount %s), %s',
			       to_char(b.energy_wh / 1000.0, 'FM999999990.000'), b.total, b.energy_fee, b.service_fee,
			       b.occupancy_fee, b.discount, b.state)
			ELSE format('No bill yet (session %s); measured so far: %s kWh', s.state,
			            to_char(coalesce((SELECT max(w) FROM unnest(ev_wh) w), 0) / 1000.0, 'FM999999990.000')) END)),
		format('<text x="%s" y="66">%s</text>', px0, evcharge.xml_escape(format('%s heartbeats, %s to %s local time',
			n, to_char(l0, 'HH24:MI:SS'), to_char(l1, 'HH24:MI:SS'))))
	] || body || '</svg>'::text, E'\n') || E'\n';
END $$;
