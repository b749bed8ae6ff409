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
COMMENT ON FUNCTION evcharge.tou_tariff(jsonb) IS
	'a plan from the jsonb form that to_jsonb(tou_tariff) produces; validated like text input';

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
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
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
		            FROM evcharge.plan_in_force(s.station_id, evcharge.registered_current_type(s.gun), s.last_ts) t,
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
COMMENT ON FUNCTION evcharge.balance_guard(text[]) IS
	'called by the heartbeat trigger for the sessions a batch moved: a charging session whose paying wallet (member, department or prepaid partner) would fall below the operator''s stop_threshold within guard_interval at its present power and the plan''s highest price is recorded in stop_request and NOTIFY evcharge_stop is sent, once per session (for a charge an OCPP pile started, with a RemoteStopTransaction in ocpp_command); returns how many';

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
	       st.tz, evcharge.registered_current_type(cs.gun) AS current_type
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
COMMENT ON FUNCTION evcharge.session_evidence(text) IS
	'the heartbeat curve of a session for support: its gun''s heartbeats from 5 minutes before charging started to the unplug, one row per time (duplicates once, the highest reading), energy delivered so far as the bill counts it (from the first charging reading; jumps not billed), the tariff class in force, and notes: start, end of charging, unplug, jumps, 0 and -1 readings, silences longer than 2 minutes while charging, duplicates';

CREATE OR REPLACE FUNCTION evcharge.session_chart(p_order_no text) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f evcharge.chart_frame;
	body text;
	taken float8[] := '{}';
	step record;
	below record;
BEGIN
	f := evcharge.chart_load(p_order_no, 'support', 'en');
	body := evcharge.chart_bands(f) || evcharge.chart_axes(f) || evcharge.chart_curves(f);
	IF coalesce(cardinality(f.ev_ts), 0) = 0 THEN
		body := body || evcharge.chart_text((f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', NULL, 'no heartbeats');
		taken := evcharge.chart_text_box('no heartbeats', (f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', 12);
	END IF;
	step := evcharge.chart_moments(f, taken);
	body := body || step.svg;
	step := evcharge.chart_marks(f, step.taken);
	body := body || step.svg;
	step := evcharge.chart_claim_label(f, step.taken);
	body := body || step.svg;
	below := evcharge.chart_legend(f, f.py1 + 62);
	body := body || below.svg;
	below := evcharge.chart_anomaly_box(f, below.bottom + 20);
	body := body || below.svg;
	RETURN evcharge.chart_document(f, body, ceil(below.bottom + 12)::int);
END $$;
COMMENT ON FUNCTION evcharge.session_chart(text) IS
	'the evidence of a session for support as a self-contained SVG 1.1 document: energy measured (Wh) and power (kW) over the station''s local time, tariff classes as background bands with their prices, the pile''s claim beside the measured curve, start, end of charging and unplug, meter jumps and silences while charging, labels placed off the curves and each other, the bill''s anomaly codes with their causes; deterministic';

-- Row estimates of the plan functions (issue 14: speed): a plan has a few
-- segments and at most five prices, not the 1000 rows PostgreSQL assumes
-- of a set-returning function; with 1000 the evidence chart's plans crossed
-- jit_above_cost and spent a second compiling.
ALTER FUNCTION evcharge.tariff_segments(evcharge.tou_tariff) ROWS 8;
ALTER FUNCTION evcharge.tariff_prices(evcharge.tou_tariff) ROWS 5;

-- == issue 16 item 1: every pile gets a bill (with item 9, first bullet: a legacy id refused with its layout) ==
-- The pile registry knows each pile's current type (pile.current_type):
-- taken from the id when digits 14-15 say it (01 AC, 02 DC), given at
-- registration when they do not (Zhongshan Jianxin's 10), refused when the
-- two disagree.  Pricing everywhere (the pipeline's plan look-up in C,
-- compute_bill, quote, the balance guard, the evidence) uses the registry's
-- type.  A session that cannot be priced for any reason gets a held bill
-- with the reason (anomalies 17, 18, 19 are new; 12 as before).
--
-- Existing piles: the column is filled from the id.  A pile whose id does
-- not say AC or DC cannot be guessed (AC and DC are priced apart, and a
-- wrong guess bills every charge wrongly), so the update stops and names
-- such piles; their types are given in a temporary table of the session
-- that runs the update, which is then run again:
--   CREATE TEMP TABLE pile_current_type (pile_id text PRIMARY KEY, current_type text NOT NULL);
--   INSERT INTO pile_current_type VALUES ('44200100020001000110', 'DC'), ('44200100020001000075', 'DC');
--   ALTER EXTENSION evcharge UPDATE;
-- A parking ground lock needs none.  Sessions of such piles that ended
-- without a bill under 0.2.0 (bill_error "current type NULL is neither AC
-- nor DC") are billed at the end of this section when their pile record is
-- in, and by the next detect_lost_bills() run when it is not.  Item 9: the
-- same trigger (pile_registration) refuses a 16-digit legacy id with the
-- layout and hint of the id type, instead of the bare check constraint.
-- Codes 17 to 19 reach evcharge.anomaly_code from the module's catalogue
-- at the end of this script (section "issue 15 item 4").

CREATE OR REPLACE FUNCTION evcharge.quote(station_id bigint, current_type text, group_id bigint,
	started_at timestamptz, ended_at timestamptz, kwh numeric,
	occupied_until timestamptz DEFAULT NULL, member_id bigint DEFAULT NULL)
RETURNS evcharge.charge_quote
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.charge_quote;
	wh bigint;
	occ record;
	minutes bigint;
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

	-- Occupancy: whole minutes plugged after charging, beyond the grace.
	IF occupied_until IS NOT NULL THEN
		SELECT o.grace_minutes, o.fee_per_minute, o.cap,
		       EXISTS (SELECT 1 FROM evcharge.occupancy_exemption e
		               WHERE e.station_id = o.station_id AND e.group_id = quote.group_id) AS exempt
		INTO occ FROM evcharge.occupancy_fee o WHERE o.station_id = quote.station_id;
		IF FOUND THEN
			minutes := floor(extract(epoch FROM occupied_until - ended_at) / 60)::bigint - occ.grace_minutes;
			IF minutes > 0 AND occ.exempt THEN
				r.applied := r.applied || format('occupancy: %s min, group exempt', minutes);
			ELSIF minutes > 0 THEN
				r.occupancy_fee := trunc(minutes * occ.fee_per_minute, 2);
				IF occ.cap IS NOT NULL AND r.occupancy_fee > occ.cap THEN
					r.occupancy_fee := occ.cap;
					r.applied := r.applied || format('occupancy: %s min, capped', minutes);
				ELSE
					r.applied := r.applied || format('occupancy: %s min', minutes);
				END IF;
			END IF;
		END IF;
	END IF;

	-- The member's best coupon valid at the start for this much energy: the
	-- largest discount it gives (never more than the service fee), and of
	-- those the smallest coupon, soonest to expire, so that nothing is wasted.
	IF member_id IS NOT NULL THEN
		SELECT c.coupon_id, c.amount INTO cp
		FROM evcharge.coupon c JOIN evcharge.station s ON s.operator_id = c.operator_id
		WHERE s.station_id = quote.station_id AND c.member_id = quote.member_id
		  AND c.used_order_no IS NULL AND c.valid @> started_at AND c.min_kwh <= kwh
		ORDER BY least(c.amount, r.service_fee) DESC, c.amount ASC, upper(c.valid) ASC NULLS LAST, c.coupon_id
		LIMIT 1;
		IF FOUND AND r.service_fee > 0 THEN
			r.discount := least(cp.amount, r.service_fee);
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

ALTER TABLE evcharge.pile ADD COLUMN current_type text CONSTRAINT pile_current_type_check CHECK (current_type IN ('AC', 'DC'))
	CONSTRAINT pile_current_type_as_id CHECK (current_type = coalesce(evcharge.current_type(pile_id), current_type));

COMMENT ON COLUMN evcharge.pile.pile_id IS '20-digit pile id; its digits 14-15 give the current type when they are 01 (AC) or 02 (DC)';
COMMENT ON COLUMN evcharge.pile.current_type IS
	'AC or DC, what its sessions are priced by: taken from the id when digits 14-15 say it (01, 02), given at registration when they do not (Jianxin''s 10); NULL only for a parking ground lock whose id does not say';
CREATE FUNCTION evcharge.pile_registration() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	id_type text;
	detail text;
BEGIN
	IF NEW.pile_id IS NULL THEN
		RETURN NEW;			-- the primary key refuses it
	END IF;
	IF evcharge.is_legacy(NEW.pile_id) THEN
		RAISE EXCEPTION 'pile id "%" is a 16-digit legacy id, which the cloud pile protocol does not accept', NEW.pile_id
			USING ERRCODE = 'check_violation', SCHEMA = 'evcharge', TABLE = 'pile', CONSTRAINT = 'pile_id_not_legacy',
			      DETAIL = 'A legacy pile id has 16 digits: region (6), operator (4), serial (6).  A pile is registered under the 20-digit id it logs in with.',
			      HINT = 'A pile id has 20 digits: region (6), operator (4), reserved (1), product (2), detail (2), serial (5), for example "4420 0000 1200 0020 0045".';
	END IF;
	id_type := evcharge.current_type(NEW.pile_id);
	detail := substr(NEW.pile_id::text, 14, 2);
	IF NEW.current_type IS NOT NULL AND NEW.current_type NOT IN ('AC', 'DC') THEN
		RAISE EXCEPTION 'current type "%" of pile % is neither AC nor DC', NEW.current_type, NEW.pile_id
			USING ERRCODE = 'check_violation', SCHEMA = 'evcharge', TABLE = 'pile', CONSTRAINT = 'pile_current_type_check',
			      HINT = 'Give ''AC'' or ''DC''.';
	END IF;
	IF id_type IS NOT NULL AND NEW.current_type IS NULL THEN
		NEW.current_type := id_type;
	ELSIF id_type IS NOT NULL AND NEW.current_type <> id_type THEN
		RAISE EXCEPTION 'pile % cannot be registered as %: its id says %', NEW.pile_id, NEW.current_type, id_type
			USING ERRCODE = 'check_violation', SCHEMA = 'evcharge', TABLE = 'pile', CONSTRAINT = 'pile_current_type_as_id',
			      DETAIL = format('Digits 14-15 of the id are %s (%s).  The old platform showed AC piles as DC because it did not take the current type from the id.',
			                      detail, id_type),
			      HINT = format('Leave current_type out, and it is taken from the id; if the pile really is %s, its id is wrong: register it under the id it logs in with.',
			                    NEW.current_type);
	ELSIF id_type IS NULL AND NEW.current_type IS NULL
	      AND NOT coalesce(evcharge.product_kind(NEW.pile_id) = 'ground_lock', false) THEN
		RAISE EXCEPTION 'pile % needs its current type: its id does not say AC or DC', NEW.pile_id
			USING ERRCODE = 'not_null_violation', SCHEMA = 'evcharge', TABLE = 'pile', COLUMN = 'current_type',
			      DETAIL = format('Digits 14-15 of the id are %s; only 01 (AC) and 02 (DC) say the current type, and its sessions are priced by it.',
			                      detail),
			      HINT = 'Register it with current_type ''AC'' or ''DC'', as its nameplate says.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.pile_registration() IS
	'trigger: a registered pile''s current type is taken from its id when digits 14-15 say it; refuses (with the layout) a legacy id (23514), a type that contradicts the id (23514) and a missing type the id does not give (23502)';

CREATE TRIGGER pile_registration BEFORE INSERT OR UPDATE OF pile_id, current_type ON evcharge.pile
	FOR EACH ROW EXECUTE FUNCTION evcharge.pile_registration();
COMMENT ON TRIGGER pile_registration ON evcharge.pile IS
	'fills the current type from the id and words the registry''s refusals (legacy id, type against the id, type missing)';
CREATE FUNCTION evcharge.registered_current_type(gun evcharge.gun_id) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT pl.current_type FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(gun));
COMMENT ON FUNCTION evcharge.registered_current_type(evcharge.gun_id) IS
	'AC or DC as the pile registry has it for the gun''s pile (evcharge.pile.current_type): what pricing uses; NULL when the pile is not registered or is a ground lock without one';

-- The registry's current types: from the id, or from pg_temp.pile_current_type.
UPDATE evcharge.pile SET current_type = evcharge.current_type(pile_id)
WHERE current_type IS NULL AND evcharge.current_type(pile_id) IS NOT NULL;
DO $$
DECLARE
	unknown text[];
BEGIN
	IF to_regclass('pg_temp.pile_current_type') IS NOT NULL THEN
		EXECUTE 'UPDATE evcharge.pile p SET current_type = t.current_type FROM pg_temp.pile_current_type t
		         WHERE p.current_type IS NULL AND p.pile_id OPERATOR(evcharge.=) t.pile_id::evcharge.pile_id';
	END IF;
	SELECT array_agg(p.pile_id::text ORDER BY p.pile_id) INTO unknown FROM evcharge.pile p
	WHERE p.current_type IS NULL AND NOT coalesce(evcharge.product_kind(p.pile_id) = 'ground_lock', false);
	IF unknown IS NOT NULL THEN
		RAISE EXCEPTION 'evcharge 0.3.0 needs the current type of % registered pile(s) whose id does not say AC or DC', cardinality(unknown)
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Piles %s%s: digits 14-15 of their ids are neither 01 (AC) nor 02 (DC).  Their sessions are priced by the current type, which 0.3.0 keeps in evcharge.pile.current_type.',
			                      array_to_string(unknown[1:20], ', '), CASE WHEN cardinality(unknown) > 20 THEN format(' and %s more', cardinality(unknown) - 20) ELSE '' END),
			      HINT = format('In the session that runs the update: CREATE TEMP TABLE pile_current_type (pile_id text PRIMARY KEY, current_type text NOT NULL); INSERT INTO pile_current_type VALUES (''%s'', ''DC''), ...; then ALTER EXTENSION evcharge UPDATE again.',
			                    unknown[1]);
	END IF;
END $$;
ALTER TABLE evcharge.pile ADD CONSTRAINT pile_current_type_known CHECK (current_type IS NOT NULL
	OR coalesce(evcharge.product_kind(pile_id) = 'ground_lock', false));

COMMENT ON CONSTRAINT pile_id_not_legacy ON evcharge.pile IS
	'16-digit legacy ids are refused (the trigger pile_registration words the error)';
COMMENT ON CONSTRAINT pile_current_type_check ON evcharge.pile IS 'a current type is AC or DC';
COMMENT ON CONSTRAINT pile_current_type_as_id ON evcharge.pile IS
	'the current type agrees with the id''s digits 14-15 when they say it: the old platform showed AC piles as DC';
COMMENT ON CONSTRAINT pile_current_type_known ON evcharge.pile IS
	'every pile that charges knows its current type; a parking ground lock delivers no energy and may have none';

CREATE FUNCTION evcharge.unpriced_bill(p_order_no text, p_reason text) RETURNS evcharge.bill
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec_wh bigint;
	b evcharge.bill;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	SELECT r.energy_wh INTO rec_wh FROM evcharge.pile_record r
	WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	b.order_no := p_order_no;
	b.gun := s.gun;
	b.station_id := s.station_id;
	b.member_id := s.member_id;
	b.channel := s.channel;
	b.started_at := coalesce(s.started_at, s.created_at);
	b.ended_at := coalesce(s.charging_ended_at, s.last_ts, s.occupied_until, b.started_at);
	b.occupied_until := s.occupied_until;
	-- The pile's energy when it gave one, else what was measured live.
	b.energy_source := CASE WHEN rec_wh >= 0 THEN 'pile' ELSE 'heartbeats' END;
	b.energy_wh := CASE WHEN rec_wh >= 0 THEN rec_wh
	                    ELSE (SELECT coalesce(sum(w), 0) FROM unnest(s.wh_by_class) w)::bigint END;
	b.wh_by_class := ARRAY[0, 0, 0, 0];
	b.energy_fee := 0;
	b.service_fee := 0;
	b.occupancy_fee := 0;
	b.discount := 0;
	b.total := 0;
	b.applied := ARRAY['not priced: ' || coalesce(p_reason, 'no reason given')];
	b.anomalies := '19';
	b.state := 'held';
	b.revision := 0;
	b.finalised_at := now();
	b.updated_at := now();
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.unpriced_bill(text, text) IS
	'the bill of a session that could not be billed, written nowhere: its times, the pile''s energy (or the live measure), no amount, held with anomaly 19 and the reason in applied; what make_bill() stores when compute_bill() or store_bill() fails';

CREATE FUNCTION evcharge.make_bill(p_order_no text) RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st text;
	msg text;
	b evcharge.bill;
BEGIN
	BEGIN
		b := evcharge.store_bill(evcharge.compute_bill(p_order_no, 'auto'), 'auto', NULL);
		UPDATE evcharge.charge_session SET bill_error = NULL WHERE order_no = p_order_no AND bill_error IS NOT NULL;
		RETURN b;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	END;
	b := evcharge.store_bill(evcharge.unpriced_bill(p_order_no, st || ': ' || msg), 'auto', NULL);
	UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = p_order_no;
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.make_bill(text) IS
	'makes and stores the bill of an ended session as the pipeline does (compute_bill auto, store_bill; charge_session.bill_error cleared); when that fails, stores unpriced_bill() instead (held, anomaly 19, the error as its reason, also in charge_session.bill_error): every session the pipeline bills gets a bill';

CREATE OR REPLACE FUNCTION evcharge.try_finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st text;
	msg text;
BEGIN
	-- A bill made or completed clears bill_error (make_bill, finalise_bill),
	-- but one held without an amount keeps why.
	RETURN evcharge.finalise_bill(p_order_no);
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = p_order_no;
	RETURN false;
END $$;
COMMENT ON FUNCTION evcharge.try_finalise_bill(text) IS
	'finalise_bill() for the triggers: an error is recorded in charge_session.bill_error instead of failing the batch';

CREATE OR REPLACE FUNCTION evcharge.repair_bill(order_no text, reason text, method text DEFAULT 'recompute',
	energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := repair_bill.order_no;
	s evcharge.charge_session;
	old evcharge.bill;
	had_bill boolean;
	nb evcharge.bill;
	rated int;
BEGIN
	IF repair_bill.reason IS NULL OR btrim(repair_bill.reason) = '' THEN
		RAISE EXCEPTION 'a repair of order % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver or the support ticket would read it: ''pile record lost, recomputed from heartbeats''.';
	END IF;
	IF repair_bill.method IS NULL OR repair_bill.method NOT IN ('recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'repair method "%" is not known', repair_bill.method
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	-- Energy is set by hand only in a manual repair; given to another
	-- method it would be dropped without a word.
	IF repair_bill.energy_wh IS NOT NULL AND repair_bill.method <> 'manual' THEN
		RAISE EXCEPTION 'a % repair takes no energy (% Wh given)', repair_bill.method, repair_bill.energy_wh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Energy agreed by hand is a manual repair: repair_bill(order_no, reason, ''manual'', 12500).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = v_order;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', v_order
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	IF s.state IN ('pending', 'charging', 'occupied', 'cancelled') THEN
		RAISE EXCEPTION 'order % has no bill to repair: its session is %', v_order, s.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'A bill is repaired once its session has ended.';
	END IF;
	-- One repair at a time per bill: a second one fails at once, it does not wait.
	BEGIN
		PERFORM 1 FROM evcharge.charge_session cs WHERE cs.order_no = v_order FOR UPDATE NOWAIT;
		SELECT * INTO old FROM evcharge.bill b WHERE b.order_no = v_order FOR UPDATE NOWAIT;
		had_bill := FOUND;
	EXCEPTION WHEN lock_not_available THEN
		RAISE EXCEPTION 'bill % is being repaired or billed by another session', v_order
			USING ERRCODE = 'lock_not_available',
			      HINT = 'Wait for it to finish, then look at evcharge.bill_revision before repairing again.';
	END;
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	-- Energy by hand beyond any bill of the operator is refused before it is priced.
	IF repair_bill.method = 'manual' AND repair_bill.energy_wh IS NOT NULL THEN
		PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
			repair_bill.energy_wh, NULL, format('a repair of order %s', v_order));
	END IF;
	nb := evcharge.compute_bill(v_order, repair_bill.method, repair_bill.energy_wh);
	-- A bill that still cannot be priced is not released at no amount: that
	-- would be a default price of zero.
	IF nb.anomalies OPERATOR(evcharge.&&) '12+17+19'::evcharge.anomaly_set THEN
		RAISE EXCEPTION 'order % still cannot be priced', v_order
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = array_to_string(ARRAY(SELECT a FROM unnest(nb.applied) a
			                                     WHERE a LIKE 'not priced: %' OR a LIKE 'no tariff in force: %'), '; '),
			      HINT = CASE
			          WHEN evcharge.anomaly_has(nb.anomalies, 17) THEN
			              format('Register pile %s with its current type (evcharge.pile), then repair again.', evcharge.pile(s.gun))
			          WHEN evcharge.anomaly_has(nb.anomalies, 12) THEN
			              'Add the plan in force at the time to evcharge.station_tariff, then repair again.'
			          ELSE 'Mend the cause the detail names, then repair again.' END;
	END IF;
	-- Plausible: energy set by hand no more than the gun can deliver in the
	-- bill's span, and no bill beyond the operator's limits, whatever the method.
	SELECT pl.rated_power_w INTO rated FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	IF repair_bill.method = 'manual' AND rated IS NOT NULL
	   AND nb.energy_wh > evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at) THEN
		RAISE EXCEPTION '% Wh cannot have been charged by gun % from % to %', nb.energy_wh, s.gun, nb.started_at, nb.ended_at
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The gun is rated %s W: at most %s Wh in that time (rated power x time x 1.2 + 10 Wh).',
			                      rated, floor(evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at))),
			      HINT = 'Check the energy agreed; if the pile''s own record is right, repair with method pile.';
	END IF;
	PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
		nb.energy_wh, nb.total, format('a repair of order %s', v_order));

	-- The same repair again changes nothing and returns the bill as it is.
	IF had_bill AND old.state IN ('final', 'settled')
	   AND (nb.energy_wh, nb.wh_by_class, nb.energy_fee, nb.service_fee, nb.occupancy_fee, nb.discount,
	        nb.total, nb.energy_source, nb.coupon_id, evcharge.anomaly_codes(nb.anomalies))
	       IS NOT DISTINCT FROM
	       (old.energy_wh, old.wh_by_class, old.energy_fee, old.service_fee, old.occupancy_fee, old.discount,
	        old.total, old.energy_source, old.coupon_id, evcharge.anomaly_codes(old.anomalies)) THEN
		RETURN old;
	END IF;

	-- A settled bill stays settled: the difference moves as an adjustment.
	IF had_bill AND old.state = 'settled' THEN
		nb.state := 'settled';
	END IF;
	nb := evcharge.store_bill(nb, repair_bill.method, repair_bill.reason);
	UPDATE evcharge.charge_session cs SET bill_error = NULL WHERE cs.order_no = v_order AND cs.bill_error IS NOT NULL;
	IF had_bill AND old.state = 'settled' THEN
		PERFORM evcharge.adjust_settled_bill(v_order, old, nb, repair_bill.reason);
	END IF;

	IF had_bill THEN
		PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
	END IF;
	RETURN nb;
END $$;
COMMENT ON FUNCTION evcharge.repair_bill(text, text, text, bigint) IS
	'recomputes a bill (recompute: heartbeats, pile record and plans in force; pile: the pile''s energy; platform: the heartbeats'' energy; manual: energy_wh), releases it and records the revision with the reason (a settled bill stays settled and the difference is posted to the ledger); the same repair twice changes nothing; a repair already running on the bill makes this one fail at once (55P03); refused (22023): energy given to a method other than manual, manual energy beyond what the gun can deliver in the bill''s span (gun_energy_limit), a bill beyond the operator''s limits (check_bill_limits); refused (55000): a bill that still cannot be priced (no tariff, current type unknown, pricing failed)';

-- == issue 16 item 6: a bad start must not block a gun ==
-- start_session() refuses (P0002, with detail and hint) a gun that is not
-- registered and a member or partner that is not the operator's (it
-- accepted member 999, whose session then held the gun for record_wait);
-- cancel_session(order_no, reason) ends a start the pile never began, kept
-- in session_cancellation with who, when and why; the bridge's refused
-- remote start and detect_lost_bills()' cancellations go the same way.
-- detect_lost_bills() is created here once, with item 1's make_bill().
-- Who cancelled which start, when and why: cancel_session() (support, the
-- bridge for a remote start the pile refused) and detect_lost_bills() (a
-- start the pile never began).  An audit trail, like bill_revision.
CREATE TABLE evcharge.session_cancellation (
	order_no text PRIMARY KEY REFERENCES evcharge.charge_session,
	reason text NOT NULL CHECK (btrim(reason) <> ''),
	cancelled_by text NOT NULL DEFAULT current_user,
	cancelled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.session_cancellation IS
	'Every start cancelled by cancel_session() or detect_lost_bills(): why, by whom and when; never updated or deleted';
COMMENT ON COLUMN evcharge.session_cancellation.order_no IS 'the session cancelled';
COMMENT ON COLUMN evcharge.session_cancellation.reason IS 'why, as given to cancel_session() (or the job''s or the bridge''s own words)';
COMMENT ON COLUMN evcharge.session_cancellation.cancelled_by IS 'the database user who cancelled it';
COMMENT ON COLUMN evcharge.session_cancellation.cancelled_at IS 'when';

CREATE FUNCTION evcharge.session_cancellation_immutable() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'session cancellations are an audit trail and cannot be changed'
		USING ERRCODE = 'insufficient_privilege', HINT = 'A cancelled session stays cancelled; its record says who and why.';
END $$;
COMMENT ON FUNCTION evcharge.session_cancellation_immutable() IS 'trigger: refuses updates and deletes of session_cancellation';

CREATE TRIGGER session_cancellation_immutable BEFORE UPDATE OR DELETE ON evcharge.session_cancellation
	FOR EACH ROW EXECUTE FUNCTION evcharge.session_cancellation_immutable();
COMMENT ON TRIGGER session_cancellation_immutable ON evcharge.session_cancellation IS 'the audit trail of cancellations cannot be changed or deleted';
SELECT pg_catalog.pg_extension_config_dump('evcharge.session_cancellation', '');

CREATE FUNCTION evcharge.cancel_session(order_no text, reason text) RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	tx record;
BEGIN
	IF cancel_session.reason IS NULL OR btrim(cancel_session.reason) = '' THEN
		RAISE EXCEPTION 'a cancellation of order % needs a reason', coalesce(cancel_session.order_no, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the support ticket would read it: ''driver left before the pile started''.';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = cancel_session.order_no FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', cancel_session.order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	IF s.state = 'cancelled' THEN
		RETURN s;			-- cancelled already: nothing to do, nothing recorded twice
	END IF;
	IF s.state <> 'pending' THEN
		RAISE EXCEPTION 'order % cannot be cancelled: it has begun charging', s.order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its session is %s; the first charging heartbeat came at %s.', s.state,
			                      coalesce(s.started_at::text, 'an unknown time')),
			      HINT = 'A charge that has begun is stopped at the pile or remotely (evcharge.ocpp_stop_charge), and billed.';
	END IF;
	-- An OCPP pile may have begun without a charging heartbeat yet.
	SELECT t.transaction_id, t.started_at INTO tx FROM evcharge.ocpp_transaction t WHERE t.order_no = s.order_no;
	IF FOUND THEN
		RAISE EXCEPTION 'order % cannot be cancelled: the pile has begun its transaction', s.order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('OCPP transaction %s started at %s.', tx.transaction_id, tx.started_at),
			      HINT = 'A charge that has begun is stopped at the pile or remotely (evcharge.ocpp_stop_charge), and billed.';
	END IF;
	UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
	WHERE cs.order_no = s.order_no
	RETURNING * INTO s;
	INSERT INTO evcharge.session_cancellation (order_no, reason) VALUES (s.order_no, cancel_session.reason);
	-- A remote start not yet answered is withdrawn: no bridge sends it now.
	UPDATE evcharge.ocpp_command c SET answered_at = now(), answer = 'Cancelled'
	WHERE c.order_no = s.order_no AND c.action = 'RemoteStartTransaction' AND c.answered_at IS NULL;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.cancel_session(text, text) IS
	'ends a pending start the pile never began: the session is cancelled (its gun free at once), the cancellation recorded in session_cancellation (reason, database user, time), an unanswered RemoteStartTransaction withdrawn (answer Cancelled); a session cancelled already is returned as it is; refused: no reason (22023), an unknown order (P0002), a session that has begun charging or whose OCPP transaction has begun (55000)';

CREATE OR REPLACE FUNCTION evcharge.detect_lost_bills(at timestamptz DEFAULT now(),
	OUT sessions_closed bigint, OUT starts_cancelled bigint, OUT bills_lost bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	o text;
	st text;
	msg text;
BEGIN
	PERFORM evcharge.check_time(at, 'detect_lost_bills(at)');
	-- App starts the pile never began, each cancellation kept as
	-- cancel_session() keeps one.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
		FROM evcharge.station st JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE st.station_id = cs.station_id AND cs.state = 'pending' AND cs.created_at < at - p.record_wait
		RETURNING cs.order_no, p.record_wait),
	audit AS (
		INSERT INTO evcharge.session_cancellation (order_no, reason)
		SELECT c.order_no, format('detect_lost_bills: the pile did not begin the start within record_wait (%s)', c.record_wait)
		FROM c
		ON CONFLICT (order_no) DO NOTHING)
	SELECT count(*) INTO starts_cancelled FROM c;
	-- Open sessions of guns that went silent: they end at their last heartbeat.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'ended',
			charging_ended_at = coalesce(cs.charging_ended_at, cs.last_ts),
			occupied_until = cs.last_ts, updated_at = now()
		FROM evcharge.station st, evcharge.anomaly_policy p, evcharge.gun_state g
		WHERE st.station_id = cs.station_id AND p.operator_id = st.operator_id
		  AND g.gun OPERATOR(evcharge.=) cs.gun AND NOT g.online
		  AND cs.state IN ('charging', 'occupied') AND cs.last_ts < at - p.record_wait
		RETURNING 1)
	SELECT count(*) INTO sessions_closed FROM c;
	-- Ended sessions whose record has not come: billed from heartbeats, held.
	bills_lost := 0;
	FOR o IN
		SELECT cs.order_no FROM evcharge.charge_session cs
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE cs.state = 'ended'
		  AND coalesce(cs.occupied_until, cs.charging_ended_at, cs.last_ts) < at - p.record_wait
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = cs.order_no)
		  AND NOT EXISTS (SELECT 1 FROM evcharge.pile_record r WHERE r.order_no = cs.order_no)
		ORDER BY cs.order_no
		FOR UPDATE OF cs SKIP LOCKED
	LOOP
		PERFORM 1 FROM evcharge.coupon c JOIN evcharge.charge_session cs ON cs.member_id = c.member_id
		WHERE cs.order_no = o AND c.used_order_no IS NULL FOR UPDATE OF c;
		-- One session that cannot be billed at all does not stop the job.
		BEGIN
			PERFORM evcharge.make_bill(o);
			bills_lost := bills_lost + 1;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = o;
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.detect_lost_bills(timestamptz) IS
	'scheduled: cancels app starts the pile never began (each recorded in session_cancellation), ends open sessions of offline guns at their last heartbeat, and bills ended sessions whose pile record has not come within the operator''s record_wait from their heartbeats, held with anomaly 1 (2 when the gun went offline; make_bill: one that cannot be priced is held with its reason); a record that comes later completes the bill; at must lie from 2015 to now() + 1 day (check_time)';
CREATE OR REPLACE FUNCTION evcharge.ocpp_command_answer(p_command_id bigint, p_pile evcharge.pile_id, p_answer text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c evcharge.ocpp_command;
BEGIN
	UPDATE evcharge.ocpp_command x SET answered_at = now(), answer = p_answer
	WHERE x.command_id = p_command_id AND x.pile_id OPERATOR(evcharge.=) p_pile AND x.answered_at IS NULL
	RETURNING x.* INTO c;
	IF NOT FOUND OR c.action <> 'RemoteStartTransaction' OR p_answer = 'Accepted' THEN
		RETURN false;
	END IF;
	-- A start the pile did not accept: the app's session never begins, and
	-- is cancelled as support would cancel it (audited).  One that has begun
	-- after all (its transaction came first) is left to run.
	PERFORM 1 FROM evcharge.charge_session cs WHERE cs.order_no = c.order_no AND cs.state = 'pending' FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	BEGIN
		PERFORM evcharge.cancel_session(c.order_no,
			format('the pile did not accept the remote start (command %s answered %s)', c.command_id, p_answer));
	EXCEPTION WHEN object_not_in_prerequisite_state THEN
		RETURN false;
	END;
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_command_answer(bigint, evcharge.pile_id, text) IS
	'records a pile''s answer to a command sent to it (the first counts; another pile''s answer changes nothing); a RemoteStartTransaction answered anything but Accepted cancels its pending session through cancel_session() (recorded in session_cancellation); true when it did';

COMMENT ON COLUMN evcharge.ocpp_command.answer IS 'Accepted or Rejected (the pile''s status), CALLERROR <code>, Expired (a start not answered within 60 s), or Cancelled (a start withdrawn by cancel_session())';

-- == issue 16 item 2: partners' own order numbers ==
-- A partner numbers our sessions its own way (Didi: 27 digits) and keys its
-- statement by its numbers, so reconciling Didi's statement found every line
-- missing on both sides.  The session keeps the partner's number (from
-- start_session() or the pile record), the bill and the evidence show it,
-- and reconcile_statement() matches a line on either number.  Existing
-- sessions and bills have none (NULL): 0.2.0 never received one.
ALTER TABLE evcharge.partner ADD COLUMN order_no_digits smallint CHECK (order_no_digits BETWEEN 1 AND 64);
COMMENT ON COLUMN evcharge.partner.order_no_digits IS
	'how many decimal digits the partner''s own order numbers have (Didi: 27); NULL: any partner order number form (is_partner_order_no)';

CREATE OR REPLACE FUNCTION evcharge.is_partner_order_no(partner_order_no text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN partner_order_no ~ '^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$';
COMMENT ON FUNCTION evcharge.is_partner_order_no(text) IS
	'whether a text has the form of a partner''s order number: 1 to 64 letters, digits, "-" and "_", starting with a letter or digit (the CHECK of charge_session.partner_order_no)';

CREATE OR REPLACE FUNCTION evcharge.partner_order_no_problem(p_partner_id bigint, p_partner_order_no text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p evcharge.partner;
	shown text := left(p_partner_order_no, 80);
BEGIN
	IF p_partner_order_no IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT * INTO p FROM evcharge.partner x WHERE x.partner_id = p_partner_id;
	IF NOT FOUND THEN
		RETURN format('order number "%s" is a partner''s, and the session has no partner', shown);
	END IF;
	IF p.order_no_digits IS NOT NULL AND p_partner_order_no !~ ('^[0-9]{' || p.order_no_digits || '}$') THEN
		RETURN format('partner %s (%s) numbers its orders with %s digits; "%s" %s', p.partner_id, p.name,
			p.order_no_digits, shown,
			CASE WHEN p_partner_order_no ~ '^[0-9]+$' THEN format('has %s', length(p_partner_order_no))
			     ELSE 'is not all digits' END);
	END IF;
	IF NOT evcharge.is_partner_order_no(p_partner_order_no) THEN
		RETURN format('"%s" is not a partner order number: 1 to 64 letters, digits, "-" or "_", starting with a letter or digit',
			shown);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.partner_order_no_problem(bigint, text) IS
	'what is wrong with a partner''s order number for that partner (its order_no_digits, else the form is_partner_order_no checks; no such partner), in a sentence; NULL when nothing is (or the number is NULL)';

ALTER TABLE evcharge.charge_session ADD COLUMN partner_order_no text CONSTRAINT charge_session_partner_order_no_check
	CHECK (partner_order_no IS NULL OR (partner_id IS NOT NULL AND evcharge.is_partner_order_no(partner_order_no)));
CREATE UNIQUE INDEX charge_session_partner_order_idx ON evcharge.charge_session (partner_id, partner_order_no)
	WHERE partner_order_no IS NOT NULL;
COMMENT ON INDEX evcharge.charge_session_partner_order_idx IS 'a partner''s own order number names one session of that partner';
COMMENT ON COLUMN evcharge.charge_session.partner_order_no IS 'the partner''s own order number for this session (Didi''s 27 digits), from start_session() or the pile record; unique per partner; NULL when the partner gave none';
-- Loaders that COPY pile records name their columns (the bridge does):
-- they go on working, the new column is NULL for them.
ALTER TABLE evcharge.pile_record ADD COLUMN partner_order_no text;
COMMENT ON COLUMN evcharge.pile_record.partner_order_no IS 'the partner''s own order number for the session, when the record carries one: the session takes it if it has none (finalise_bill, take_partner_order_no)';
ALTER TABLE evcharge.bill ADD COLUMN partner_order_no text;
COMMENT ON COLUMN evcharge.bill.partner_order_no IS 'the partner''s own order number for the session (charge_session.partner_order_no), when it has one';
COMMENT ON COLUMN evcharge.partner_statement_line.order_no IS 'the order, by our order number or by the partner''s own (charge_session.partner_order_no)';

-- start_session() takes the partner's number as a fifth, optional argument:
-- calls with four arguments or fewer work as before.
DROP FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint);
CREATE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
	partner_id bigint DEFAULT NULL, partner_order_no text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	found_pile boolean;
	mem evcharge.member;
	ptn evcharge.partner;
	owes numeric;
	grp bigint;
	busy text;
	order_no text;
BEGIN
	IF gun IS NULL OR channel IS NULL THEN
		RAISE EXCEPTION 'gun and channel are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF channel NOT IN ('app', 'qr', 'card', 'password', 'vin', 'partner') THEN
		RAISE EXCEPTION 'start channel "%" is not known', channel
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use app, qr, card, password, vin or partner.';
	END IF;
	SELECT pl.station_id, pl.gun_count, s.tz, s.operator_id INTO p
	FROM evcharge.pile pl JOIN evcharge.station s USING (station_id)
	WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	found_pile := FOUND;
	IF NOT found_pile OR evcharge.gun_no(start_session.gun) > p.gun_count THEN
		RAISE EXCEPTION 'gun % is not registered', gun
			USING ERRCODE = 'no_data_found',
			      DETAIL = CASE WHEN found_pile
			                    THEN format('Pile %s has %s gun(s); this is gun %s.', evcharge.pile(start_session.gun), p.gun_count, evcharge.gun_no(start_session.gun))
			                    ELSE format('Pile %s is not in the registry.', evcharge.pile(start_session.gun)) END,
			      HINT = 'Start on a gun of a registered pile (evcharge.pile, guns 1 to gun_count).';
	END IF;
	-- A start for nobody the operator knows would hold the gun for a
	-- session no wallet pays (and block it until detect_lost_bills gives up).
	IF start_session.member_id IS NOT NULL THEN
		SELECT * INTO mem FROM evcharge.member mm WHERE mm.member_id = start_session.member_id;
		IF NOT FOUND OR mem.operator_id <> p.operator_id THEN
			RAISE EXCEPTION 'operator % has no member %', p.operator_id, start_session.member_id
				USING ERRCODE = 'no_data_found',
				      DETAIL = format('Gun %s is operator %s''s; %s.', gun, p.operator_id,
				                      CASE WHEN mem.member_id IS NOT NULL
				                           THEN format('member %s is operator %s''s', mem.member_id, mem.operator_id)
				                           ELSE format('no member %s is registered', start_session.member_id) END),
				      HINT = 'Give one of the operator''s members (evcharge.member), or NULL for a partner''s user.';
		END IF;
	END IF;
	-- The member's customer group (department, fleet, VIP class) at the
	-- start: its group price and occupancy exemption apply to this charge.
	-- A member who is a partner's user charges on the partner's account,
	-- under its contract and not at a member's price, however it starts.
	SELECT coalesce(start_session.partner_id, m.partner_id),
	       CASE WHEN coalesce(start_session.partner_id, m.partner_id) IS NULL THEN m.group_id END
	INTO partner_id, grp
	FROM (SELECT 1) one LEFT JOIN evcharge.member m ON m.member_id = start_session.member_id;
	IF partner_id IS NOT NULL THEN
		SELECT * INTO ptn FROM evcharge.partner x WHERE x.partner_id = start_session.partner_id;
		IF NOT FOUND OR ptn.operator_id <> p.operator_id THEN
			RAISE EXCEPTION 'partner % has no contract with the operator of gun %', partner_id, gun
				USING ERRCODE = 'no_data_found',
				      DETAIL = format('Gun %s is operator %s''s; %s.', gun, p.operator_id,
				                      CASE WHEN ptn.partner_id IS NOT NULL
				                           THEN format('partner %s (%s) has its contract with operator %s', ptn.partner_id, ptn.name, ptn.operator_id)
				                           ELSE format('no partner %s is registered', partner_id) END),
				      HINT = 'Give one of the operator''s partners (evcharge.partner), or NULL for a member''s own start.';
		END IF;
		owes := evcharge.partner_owes(ptn.partner_id);
		IF ptn.kind = 'affiliated' AND ptn.credit_limit IS NOT NULL AND owes >= ptn.credit_limit THEN
			RAISE EXCEPTION 'partner % has reached its credit limit', partner_id
				USING ERRCODE = 'EV002',
				      DETAIL = format('It owes %s yuan of a limit of %s.', owes, ptn.credit_limit),
				      HINT = 'The partner pays what it owes first (evcharge.partner_payment), or the operator raises the limit.';
		ELSIF ptn.kind = 'prepaid' AND owes >= 0 THEN
			RAISE EXCEPTION 'partner % has no prepaid money left', partner_id
				USING ERRCODE = 'EV002',
				      DETAIL = format('Its prepaid account holds %s yuan.', -owes),
				      HINT = 'Top up the partner''s prepaid account (evcharge.top_up or evcharge.partner_payment).';
		END IF;
	END IF;
	-- The partner's own number for this session, in its form, once.
	IF start_session.partner_order_no IS NOT NULL THEN
		DECLARE
			problem text := evcharge.partner_order_no_problem(partner_id, start_session.partner_order_no);
		BEGIN
			IF problem IS NOT NULL THEN
				RAISE EXCEPTION 'partner order number "%" cannot be taken', left(start_session.partner_order_no, 80)
					USING ERRCODE = 'invalid_parameter_value', DETAIL = upper(left(problem, 1)) || substr(problem, 2) || '.',
					      HINT = 'Pass the number as the partner''s app shows it, with the partner_id of that partner.';
			END IF;
			SELECT cs.order_no INTO busy FROM evcharge.charge_session cs
			WHERE cs.partner_id = start_session.partner_id AND cs.partner_order_no = start_session.partner_order_no;
			IF FOUND THEN
				RAISE EXCEPTION 'partner % order number "%" is already order %', partner_id, start_session.partner_order_no, busy
					USING ERRCODE = 'unique_violation',
					      DETAIL = 'A partner''s order number names one session.',
					      HINT = 'A repeated start from the partner''s app is the session already made: use its order number.';
			END IF;
		END;
	END IF;
	-- A start by card: the card's daily spending limit (a maintenance card
	-- shared by several cars), EV002 once its day's charges reached it.
	IF channel = 'card' THEN
		PERFORM evcharge.check_card_limit(m.operator_id, m.card_no)
		FROM evcharge.member m WHERE m.member_id = start_session.member_id AND m.card_no IS NOT NULL;
	END IF;
	SELECT cs.order_no INTO busy FROM evcharge.charge_session cs
	WHERE cs.gun OPERATOR(evcharge.=) start_session.gun AND cs.state IN ('pending', 'charging', 'occupied');
	IF FOUND THEN
		RAISE EXCEPTION 'gun % is busy with order %', gun, busy
			USING ERRCODE = 'lock_not_available', HINT = 'A gun charges one session at a time; wait for it to end.';
	END IF;
	-- A pile that speaks OCPP (it has connected to a bridge) is started by
	-- a RemoteStartTransaction, which needs it connected now: the app hears
	-- at once that it is not, instead of a session that never begins.
	DECLARE
		conn record;
	BEGIN
		SELECT c.bridge_id, c.disconnected_at, b.seen_at INTO conn
		FROM evcharge.ocpp_connection c LEFT JOIN evcharge.ocpp_bridge b USING (bridge_id)
		WHERE c.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
		IF FOUND AND NOT evcharge.ocpp_pile_connected(evcharge.pile(start_session.gun)) THEN
			RAISE EXCEPTION 'pile % of gun % is not connected', evcharge.pile(start_session.gun), gun
				USING ERRCODE = 'EV003',
				      DETAIL = CASE WHEN conn.disconnected_at IS NOT NULL
				                    THEN format('Its OCPP connection to bridge %s ended at %s.', conn.bridge_id, conn.disconnected_at)
				                    ELSE format('Bridge %s, which holds its connection, was last seen at %s.', conn.bridge_id, conn.seen_at) END,
				      HINT = 'A remote start needs the pile online; try again when it has reconnected, or start at the pile with a card.';
		END IF;
	END;
	order_no := to_char(now() AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
	            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0');
	INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, group_id, partner_id, channel, partner_order_no)
	VALUES (order_no, gun, p.station_id, member_id, grp, partner_id, channel, start_session.partner_order_no);
	-- For an OCPP pile the RemoteStartTransaction, its idTag the order
	-- number; the bridge holding the pile sends it within a second.
	INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no, id_tag)
	SELECT c.pile_id, evcharge.gun_no(start_session.gun), 'RemoteStartTransaction', order_no, order_no
	FROM evcharge.ocpp_connection c WHERE c.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	IF FOUND THEN
		PERFORM pg_notify('evcharge_command', json_build_object('pile_id', evcharge.pile(start_session.gun)::text,
			'action', 'RemoteStartTransaction', 'order_no', order_no)::text);
	END IF;
	RETURN order_no;
END $$;
COMMENT ON FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint, text) IS
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; partner_order_no, the partner''s own number for it (22023 when not in the partner''s form or without a partner, 23505 when the partner already used it); for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected; refuses (P0002) a gun that is not registered and a member or partner that is not the operator''s; 55P03 for a busy gun; EV002 for a start by card whose day''s charges reached its daily limit (check_card_limit); cancel_session() ends a start the pile never began';

CREATE OR REPLACE FUNCTION evcharge.partner_order_no_refusal(s evcharge.charge_session, p_partner_order_no text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	other text;
BEGIN
	IF p_partner_order_no IS NULL OR p_partner_order_no IS NOT DISTINCT FROM s.partner_order_no THEN
		RETURN NULL;
	ELSIF s.partner_order_no IS NOT NULL THEN
		RETURN format('the session has partner order number "%s" already', s.partner_order_no);
	ELSIF s.partner_id IS NULL THEN
		RETURN 'the session has no partner';
	END IF;
	other := evcharge.partner_order_no_problem(s.partner_id, p_partner_order_no);
	IF other IS NOT NULL THEN
		RETURN other;
	END IF;
	SELECT cs.order_no INTO other FROM evcharge.charge_session cs
	WHERE cs.partner_id = s.partner_id AND cs.partner_order_no = p_partner_order_no AND cs.order_no <> s.order_no;
	IF FOUND THEN
		RETURN format('partner %s''s order %s has it', s.partner_id, other);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.partner_order_no_refusal(evcharge.charge_session, text) IS
	'why a session cannot take a partner order number, in words: it has another, it has no partner, the number is not in the partner''s form (partner_order_no_problem), or another session of the partner has it; NULL when it can or already has it';

CREATE OR REPLACE FUNCTION evcharge.take_partner_order_no(s evcharge.charge_session, rec evcharge.pile_record)
RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF rec.partner_order_no IS NULL OR s.partner_order_no IS NOT NULL
	   OR evcharge.partner_order_no_refusal(s, rec.partner_order_no) IS NOT NULL THEN
		RETURN s;
	END IF;
	-- Another session taking the same number at the same moment wins: this
	-- one keeps none, and its bill is made all the same.
	BEGIN
		UPDATE evcharge.charge_session cs SET partner_order_no = rec.partner_order_no, updated_at = now()
		WHERE cs.order_no = s.order_no
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		NULL;
	END;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.take_partner_order_no(evcharge.charge_session, evcharge.pile_record) IS
	'gives a session without a partner order number the one its pile record carries, when partner_order_no_refusal() finds nothing against it; returns the session as it is then';

CREATE OR REPLACE FUNCTION evcharge.finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	old evcharge.bill;
	nb evcharge.bill;
	why text;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session WHERE order_no = p_order_no FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record WHERE order_no = p_order_no ORDER BY received_at, ctid LIMIT 1;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO old FROM evcharge.bill WHERE order_no = p_order_no FOR UPDATE;
	-- A charge started at the pile: its record says by whom.  Not for a
	-- bill already settled: its payer has been charged.
	IF NOT FOUND OR old.state <> 'settled' THEN
		s := evcharge.identify_starter(s, rec);
	END IF;
	s := evcharge.take_partner_order_no(s, rec);
	IF old.order_no IS NOT NULL THEN
		IF NOT old.anomalies OPERATOR(evcharge.&&) '1+2'::evcharge.anomaly_set THEN
			RETURN false;
		END IF;
		-- A bill made from heartbeats gets its record: the pile's figures
		-- are authoritative, codes 1 and 2 go.  But energy a person agreed
		-- by hand (repair method manual) is an agreement with the driver:
		-- it is kept, and the record is only compared with it.
		PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
		IF EXISTS (SELECT 1 FROM evcharge.bill_revision r WHERE r.order_no = p_order_no AND r.method = 'manual') THEN
			nb := evcharge.compute_bill(p_order_no, 'manual', old.energy_wh);
			why := 'the pile record arrived after the bill was repaired by hand; the energy agreed by hand is kept';
			IF old.state <> 'held' THEN
				nb.state := old.state;
			END IF;
		ELSE
			nb := evcharge.compute_bill(p_order_no, 'auto');
			why := 'the pile record arrived after the bill was made from heartbeats';
		END IF;
		-- A settled bill stays settled: the difference moves in the ledger,
		-- and the driver is told when the operator says so.  One the record
		-- cannot be priced by keeps what was charged (try_finalise_bill
		-- records why).
		IF old.state = 'settled' AND nb.anomalies OPERATOR(evcharge.&&) '12+17+18+19'::evcharge.anomaly_set THEN
			RAISE EXCEPTION 'the late pile record of settled order % cannot be billed', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = array_to_string(nb.applied, '; '),
				      HINT = 'The settled bill stands; mend the cause, then repair_bill() it.';
		END IF;
		IF old.state = 'settled' THEN
			nb.state := 'settled';
		END IF;
		nb := evcharge.store_bill(nb, 'pile_record', why);
		UPDATE evcharge.charge_session SET bill_error = NULL WHERE order_no = p_order_no AND bill_error IS NOT NULL;
		IF old.state = 'settled' THEN
			PERFORM evcharge.adjust_settled_bill(p_order_no, old, nb, why);
			PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
		END IF;
		RETURN true;
	END IF;
	-- A record before the unplug (many piles send it when charging stops)
	-- ends charging; the bill waits for the unplug, which the occupancy fee
	-- needs.  A session that never saw a heartbeat ends with its record.
	IF s.state IN ('charging', 'occupied') THEN
		UPDATE evcharge.charge_session SET state = 'occupied',
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
		RETURN false;
	ELSIF s.state = 'pending' THEN
		UPDATE evcharge.charge_session SET state = 'ended',
			started_at = coalesce(started_at, rec.started_at),
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at),
			occupied_until = coalesce(occupied_until, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
	END IF;
	-- The member's free coupons are locked first: two bills cannot take one.
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	PERFORM evcharge.make_bill(p_order_no);
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.finalise_bill(text) IS
	'makes the bill of a session that has ended and whose pile record is in (make_bill: held when a blocking anomaly is found or it cannot be priced), or completes a bill made from heartbeats when its record comes late (energy agreed by hand is kept; a settled bill''s difference is posted to the ledger); returns false when there is nothing to do yet';

CREATE OR REPLACE FUNCTION evcharge.reconcile_statement(p_source_id bigint, p_day date, p_apply boolean DEFAULT true)
RETURNS SETOF evcharge.reconciliation_finding
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	d_from timestamptz;
	d_to timestamptz;
	r record;
	tol bigint;
	pct numeric;
BEGIN
	SELECT * INTO src FROM evcharge.statement_source s WHERE s.source_id = p_source_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'statement source % does not exist', p_source_id
			USING ERRCODE = 'no_data_found', HINT = 'Sources are in evcharge.statement_source.';
	END IF;
	PERFORM evcharge.check_time(p_day, 'reconcile_statement(p_day)');
	d_from := p_day::timestamp AT TIME ZONE src.tz;
	d_to := (p_day + 1)::timestamp AT TIME ZONE src.tz;
	IF to_regclass('pg_temp.evcharge_finding') IS NULL THEN
		CREATE TEMP TABLE evcharge_finding (kind text, key text, ours jsonb, theirs jsonb, action text) ON COMMIT DROP;
	ELSE
		TRUNCATE evcharge_finding;
	END IF;

	IF src.kind = 'provider' THEN
		-- Paid at the provider, never credited here: credit it now (the
		-- provider confirmed it), unless only reporting.
		FOR r IN
			SELECT l.* FROM evcharge.provider_statement_line l
			WHERE l.source_id = src.source_id AND l.day = p_day
			  AND NOT EXISTS (SELECT 1 FROM evcharge.ledger_txn t WHERE t.kind = 'top_up' AND t.idem_key = l.provider_txn)
			ORDER BY l.provider_txn
		LOOP
			IF p_apply THEN
				PERFORM evcharge.top_up(r.account_id, r.amount, r.provider_txn);
			END IF;
			INSERT INTO evcharge_finding VALUES ('paid_not_credited', r.provider_txn, NULL,
				jsonb_build_object('account_id', r.account_id, 'amount', r.amount, 'paid_at', r.paid_at),
				CASE WHEN p_apply THEN 'credited to the wallet now' ELSE 'credit it: top_up(account_id, amount, provider_txn)' END);
		END LOOP;
		INSERT INTO evcharge_finding
		SELECT 'credited_not_paid', t.idem_key, t.result, NULL, 'ask the provider: credited here, not in its statement'
		FROM evcharge.ledger_txn t
		WHERE t.kind = 'top_up' AND t.operator_id = src.operator_id AND t.created_at >= d_from AND t.created_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.provider_statement_line l
		                  WHERE l.source_id = src.source_id AND l.provider_txn = t.idem_key);
		INSERT INTO evcharge_finding
		SELECT 'amount_differs', l.provider_txn, t.result,
		       jsonb_build_object('account_id', l.account_id, 'amount', l.amount), 'ask the provider: the amounts differ'
		FROM evcharge.provider_statement_line l
		JOIN evcharge.ledger_txn t ON t.kind = 'top_up' AND t.idem_key = l.provider_txn
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND ((t.result->>'amount')::numeric <> l.amount OR (t.result->>'account_id')::bigint <> l.account_id);
	ELSE
		SELECT p.energy_tolerance_wh, p.energy_tolerance_pct INTO tol, pct
		FROM evcharge.anomaly_policy p WHERE p.operator_id = src.operator_id;
		INSERT INTO evcharge_finding
		SELECT 'missing_at_partner', b.order_no,
		       jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total, 'ended_at', b.ended_at)
		       || CASE WHEN cs.partner_order_no IS NOT NULL THEN jsonb_build_object('partner_order_no', cs.partner_order_no)
		               ELSE '{}' END, NULL,
		       'send the partner the order: its app may have lost the session'
		FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		WHERE cs.partner_id = src.partner_id AND b.ended_at >= d_from AND b.ended_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_statement_line l
		                  WHERE l.source_id = src.source_id AND l.order_no IN (b.order_no, cs.partner_order_no));
		-- A line names the bill by our order number or by the partner's own
		-- (Didi keys its statement by its 27 digits): the partner's bill of
		-- that partner order number, else the one of that order number.
		INSERT INTO evcharge_finding
		WITH m AS (
			SELECT l.order_no AS key, l.energy_wh, l.total, b.order_no, b.energy_wh AS our_wh, b.total AS our_total,
			       b.partner_order_no
			FROM evcharge.partner_statement_line l
			LEFT JOIN LATERAL (
				SELECT bb.order_no, bb.energy_wh, bb.total, cs.partner_order_no
				FROM evcharge.charge_session cs JOIN evcharge.bill bb USING (order_no)
				WHERE cs.partner_id = src.partner_id AND (cs.partner_order_no = l.order_no OR cs.order_no = l.order_no)
				ORDER BY cs.partner_order_no = l.order_no DESC NULLS LAST
				LIMIT 1) b ON true
			WHERE l.source_id = src.source_id AND l.day = p_day)
		SELECT 'missing_here', m.key, NULL, jsonb_build_object('energy_wh', m.energy_wh, 'total', m.total),
		       'no such bill here for this partner: check the order number with the partner'
		FROM m WHERE m.order_no IS NULL
		UNION ALL
		SELECT CASE WHEN m.total < 0 THEN 'negative_amount'
		            WHEN abs(m.energy_wh - m.our_wh) > greatest(tol, greatest(m.energy_wh, m.our_wh) * pct / 100)
		                 THEN 'energy_differs'
		            ELSE 'amount_differs' END,
		       m.key, jsonb_build_object('energy_wh', m.our_wh, 'total', m.our_total)
		              || CASE WHEN m.partner_order_no IS NOT NULL
		                      THEN jsonb_build_object('order_no', m.order_no, 'partner_order_no', m.partner_order_no)
		                      ELSE '{}' END,
		       jsonb_build_object('energy_wh', m.energy_wh, 'total', m.total),
		       'compare with session_evidence(order_no) and agree the figure with the partner'
		FROM m
		WHERE m.order_no IS NOT NULL
		  AND (m.total < 0 OR m.total <> m.our_total
		       OR abs(m.energy_wh - m.our_wh) > greatest(tol, greatest(m.energy_wh, m.our_wh) * pct / 100));
	END IF;

	RETURN QUERY
	WITH ins AS (
		INSERT INTO evcharge.reconciliation_finding AS x (source_id, day, kind, key, ours, theirs, action)
		SELECT src.source_id, p_day, f.kind, f.key, f.ours, f.theirs, f.action FROM evcharge_finding f
		ORDER BY f.kind, f.key
		ON CONFLICT ON CONSTRAINT reconciliation_finding_once DO NOTHING
		RETURNING x.*)
	SELECT * FROM ins ORDER BY ins.kind, ins.key;
END $$;
COMMENT ON FUNCTION evcharge.reconcile_statement(bigint, date, boolean) IS
	'compares a source''s stored statement of a day with the ledger (provider: top-ups paid but not credited, which are credited when p_apply, credited but not paid, amounts differing) or with the partner''s bills, a line matching by our order number or the partner''s own (missing at the partner, missing here, energy or amount differing, negative amounts); records and returns the new findings';

-- == issue 16 item 7: the bill's own breakdown ==
-- A bill keeps how its fees were made, per class, exact and as charged
-- (bill_breakdown), with its revisions (bill_revision keeps whole rows), so
-- support no longer rebuilds them with price().
ALTER TABLE evcharge.bill ADD COLUMN breakdown jsonb CHECK (jsonb_typeof(breakdown) = 'array');
COMMENT ON COLUMN evcharge.bill.breakdown IS
	'how the energy and service fees were made, per class with energy: [{"class", "wh", "energy_fee_exact", "energy_fee", "service_fee_exact", "service_fee"}] (bill_breakdown); the charged shares add up to energy_fee and service_fee; NULL when nothing was priced (no tariff) or, for a bill made before 0.3.0, when it could not be worked out exactly';

CREATE OR REPLACE FUNCTION evcharge.bill_breakdown(wh bigint[], energy_fee_exact numeric[], service_fee_exact numeric[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	WITH c AS (
		SELECT u.i, (ARRAY['sharp', 'peak', 'flat', 'valley'])[u.i::int] AS class, u.wh, u.e, u.s,
		       trunc(u.e, 2) AS e_cut, trunc(u.s, 2) AS s_cut
		FROM unnest(bill_breakdown.wh, bill_breakdown.energy_fee_exact, bill_breakdown.service_fee_exact)
		     WITH ORDINALITY AS u(wh, e, s, i)
	), kept AS (
		SELECT round((trunc(sum(c.e), 2) - sum(c.e_cut)) * 100)::int AS e_fens,
		       round((trunc(sum(c.s), 2) - sum(c.s_cut)) * 100)::int AS s_fens
		FROM c
	), ranked AS (
		SELECT c.*, row_number() OVER (ORDER BY c.e - c.e_cut DESC, c.i) AS e_rank,
		       row_number() OVER (ORDER BY c.s - c.s_cut DESC, c.i) AS s_rank
		FROM c
	)
	SELECT coalesce(jsonb_agg(jsonb_build_object(
		'class', coalesce(r.class, 'class ' || r.i),
		'wh', r.wh,
		'energy_fee_exact', trim_scale(r.e),
		'energy_fee', r.e_cut + CASE WHEN r.e_rank <= k.e_fens THEN 0.01 ELSE 0 END,
		'service_fee_exact', trim_scale(r.s),
		'service_fee', r.s_cut + CASE WHEN r.s_rank <= k.s_fens THEN 0.01 ELSE 0 END) ORDER BY r.i)
		FILTER (WHERE r.wh <> 0 OR r.e <> 0 OR r.s <> 0), '[]'::jsonb)
	FROM ranked r CROSS JOIN kept k;
END;
COMMENT ON FUNCTION evcharge.bill_breakdown(bigint[], numeric[], numeric[]) IS
	'a bill''s breakdown from Wh and exact fees per class {sharp, peak, flat, valley}: a jsonb array, one object per class with energy, of class, wh, energy_fee_exact, energy_fee, service_fee_exact, service_fee; the charged shares are the exact fees cut to the fen, plus a fen each to the classes that lost most in their cut, so that they add up to trunc(sum, 2) of each fee';

CREATE OR REPLACE FUNCTION evcharge.store_bill(b evcharge.bill, p_method text, p_reason text) RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old evcharge.bill;
BEGIN
	SELECT * INTO old FROM evcharge.bill WHERE order_no = b.order_no FOR UPDATE;
	IF NOT FOUND THEN
		-- Made by a repair: revision 1, with no bill before.
		b.revision := CASE WHEN p_method = 'auto' THEN 0 ELSE 1 END;
		INSERT INTO evcharge.bill SELECT b.*;
		IF b.revision = 1 THEN
			INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
			VALUES (b.order_no, 1, p_method, p_reason, NULL, to_jsonb(b));
		END IF;
	ELSE
		b.finalised_at := old.finalised_at;
		b.revision := old.revision + 1;
		b.updated_at := now();
		UPDATE evcharge.bill SET gun = b.gun, station_id = b.station_id, member_id = b.member_id,
			channel = b.channel, started_at = b.started_at, ended_at = b.ended_at,
			occupied_until = b.occupied_until, energy_wh = b.energy_wh, wh_by_class = b.wh_by_class,
			energy_fee = b.energy_fee, service_fee = b.service_fee, occupancy_fee = b.occupancy_fee,
			discount = b.discount, total = b.total, applied = b.applied, energy_source = b.energy_source,
			anomalies = b.anomalies, coupon_id = b.coupon_id, state = b.state, revision = b.revision,
			updated_at = b.updated_at, partner_order_no = b.partner_order_no, breakdown = b.breakdown
		WHERE order_no = b.order_no;
		INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
		VALUES (b.order_no, b.revision, p_method, p_reason, to_jsonb(old), to_jsonb(b));
	END IF;
	UPDATE evcharge.coupon SET used_order_no = NULL, used_at = NULL
	WHERE used_order_no = b.order_no AND coupon_id IS DISTINCT FROM b.coupon_id;
	IF b.coupon_id IS NOT NULL THEN
		UPDATE evcharge.coupon SET used_order_no = b.order_no, used_at = now()
		WHERE coupon_id = b.coupon_id AND (used_order_no IS NULL OR used_order_no = b.order_no);
		IF NOT FOUND THEN
			RAISE EXCEPTION 'coupon % was taken by another bill while order % was billed', b.coupon_id, b.order_no
				USING ERRCODE = 'serialization_failure', HINT = 'Bill it again: finalise_bill() or repair_bill().';
		END IF;
	END IF;
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.store_bill(evcharge.bill, text, text) IS
	'writes a bill from compute_bill(): inserts it, or updates it and records the revision (method, reason, before, after); moves the coupon it uses';

-- daily_report's body (BEGIN ATOMIC) reads bill.*, which PostgreSQL expands
-- when the function is created: made again with the bill's new columns,
-- as a fresh install has it.

-- The bills made before 0.3.0: a bill keeps its Wh per class but neither
-- its per-class fees nor the rates that made them.  Its breakdown is worked
-- out again, with price() over its wh_by_class, only where that is exactly
-- what priced it: one plan (the one its applied names, the only row of
-- that name in force during the bill at its station and current type), no
-- group price or promotion (their rates may have changed since, and the
-- bill does not keep them), a price for every class with energy, and
-- price() giving the bill's own electricity and service fees to the fen.
-- Any other bill (no tariff, a plan change during the session: the bill
-- keeps Wh per class summed over the plans; a group price or promotion)
-- keeps NULL.  Revisions made before 0.3.0 stay as they were written.
WITH ok AS MATERIALIZED (
	SELECT b.order_no, b.wh_by_class, t.tariff
	FROM evcharge.bill b
	CROSS JOIN LATERAL (SELECT min(substr(a, 7)) AS plan, count(DISTINCT a) AS plans
	                    FROM unnest(b.applied) a WHERE a LIKE 'plan: %') p
	JOIN LATERAL (SELECT min(st.station_tariff_id) AS station_tariff_id, count(*) AS n
	              FROM evcharge.station_tariff st
	              WHERE st.station_id = b.station_id AND st.current_type = evcharge.current_type(b.gun)
	                AND coalesce(st.name, 'plan ' || st.station_tariff_id) = p.plan
	                AND st.valid && tstzrange(least(b.started_at, b.ended_at), greatest(b.started_at, b.ended_at), '[]')) one
	  ON one.n = 1
	JOIN evcharge.station_tariff t ON t.station_tariff_id = one.station_tariff_id
	WHERE p.plans = 1
	  AND NOT EXISTS (SELECT 1 FROM unnest(b.applied) a
	                  WHERE a LIKE 'group: %' OR a LIKE 'promotion: %' OR a LIKE 'no tariff%')
	  AND array_ndims(b.wh_by_class) = 1 AND array_length(b.wh_by_class, 1) = 4
	  AND NOT EXISTS (SELECT 1 FROM unnest(b.wh_by_class, ARRAY['sharp', 'peak', 'flat', 'valley']) u(wh, class)
	                  WHERE u.wh < 0 OR u.wh IS NULL
	                     OR (u.wh > 0 AND NOT EXISTS (SELECT 1 FROM evcharge.tariff_prices(t.tariff) pr
	                                                 WHERE pr.class = u.class)))
), priced AS MATERIALIZED (
	SELECT ok.order_no, evcharge.price(ok.tariff, ok.wh_by_class) AS pr FROM ok
)
UPDATE evcharge.bill b
SET breakdown = evcharge.bill_breakdown(b.wh_by_class, (x.pr).class_energy_fee, (x.pr).class_service_fee)
FROM priced x
WHERE x.order_no = b.order_no AND (x.pr).energy_fee = b.energy_fee AND (x.pr).service_fee = b.service_fee;

-- == issue 16 item 8: evidence a driver can be shown ==
-- The evidence chart shows the pile's claim beside the measured curve, each
-- anomaly's cause, labels placed off the curves, and a driver's view
-- (driver_chart).  compute_bill takes the pile clock's rule from
-- pile_record_clock_faults, which the chart also prints.

-- A length of time as support says it: "2 h", "1 h 20 min", "3 min 30 s",
-- "45 s" (whole seconds, the sign dropped).
CREATE FUNCTION evcharge.duration_words(d interval) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE
		WHEN s >= 3600 THEN concat_ws(' ', (s / 3600) || ' h', CASE WHEN s % 3600 >= 60 THEN (s % 3600 / 60) || ' min' END)
		WHEN s >= 60 THEN concat_ws(' ', (s / 60) || ' min', CASE WHEN s % 60 > 0 THEN (s % 60) || ' s' END)
		ELSE s || ' s' END
	FROM (SELECT abs(floor(extract(epoch FROM d)))::bigint AS s) x);
COMMENT ON FUNCTION evcharge.duration_words(interval) IS
	'a length of time in words as support writes it: 2 h, 1 h 20 min, 3 min 30 s, 45 s (whole seconds, sign dropped)';

-- Why the pile's clock is not believed for a record (anomaly 3), one
-- sentence per reason, times on the wall clock of tz; empty when it is
-- believed.  The one rule: compute_bill() believes the record's times
-- exactly when this is empty, and the evidence chart prints these words.
CREATE FUNCTION evcharge.pile_record_clock_faults(rec evcharge.pile_record, p_started_at timestamptz,
	pol evcharge.anomaly_policy, tz text) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(array_agg(f.said ORDER BY f.n) FILTER (WHERE f.said IS NOT NULL), '{}')
	FROM (VALUES
		(1, CASE WHEN rec.started_at < pol.plausible_from THEN
			format('start %s is before %s: the pile''s clock was not set',
			       to_char(rec.started_at AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'),
			       to_char(pol.plausible_from AT TIME ZONE tz, 'YYYY-MM-DD')) END),
		(2, CASE WHEN rec.ended_at < rec.started_at THEN
			format('end %s is before its start %s', to_char(rec.ended_at AT TIME ZONE tz, 'HH24:MI:SS'),
			       to_char(rec.started_at AT TIME ZONE tz, 'HH24:MI:SS')) END),
		(3, CASE WHEN rec.ended_at > rec.received_at + pol.clock_skew THEN
			format('end %s is %s after it arrived (%s)', to_char(rec.ended_at AT TIME ZONE tz, 'HH24:MI'),
			       evcharge.duration_words(rec.ended_at - rec.received_at),
			       to_char(rec.received_at AT TIME ZONE tz, 'HH24:MI')) END),
		(4, CASE WHEN p_started_at IS NOT NULL
		          AND greatest(rec.started_at - p_started_at, p_started_at - rec.started_at) > pol.clock_skew THEN
			format('start %s is %s from the platform''s start %s', to_char(rec.started_at AT TIME ZONE tz, 'HH24:MI'),
			       evcharge.duration_words(greatest(rec.started_at - p_started_at, p_started_at - rec.started_at)),
			       to_char(p_started_at AT TIME ZONE tz, 'HH24:MI')) END)
	) f(n, said);
END;
COMMENT ON FUNCTION evcharge.pile_record_clock_faults(evcharge.pile_record, timestamptz, evcharge.anomaly_policy, text) IS
	'why a pile record''s times are not believed (anomaly 3): start before the policy''s plausible_from, end before start, end more than clock_skew after it arrived, start more than clock_skew from the platform''s; one sentence each, times in tz; empty when believed (compute_bill''s rule)';

-- compute_bill: its clock rule is pile_record_clock_faults().
CREATE OR REPLACE FUNCTION evcharge.compute_bill(p_order_no text, p_method text DEFAULT 'auto', p_energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	has_rec boolean;
	pol evcharge.anomaly_policy;
	rated int;
	firmware text;
	allowed text[];
	smp record;
	nsamples int;
	measured bigint;
	t_start timestamptz;
	t_end timestamptz;
	times_ok boolean := true;
	plausible boolean := true;
	chosen bigint;
	source text;
	ts timestamptz[];
	wh bigint[];
	q evcharge.charge_quote;
	ctype text;
	no_price int;				-- why it has no price: 12, 17 or 19 (docs/anomalies.md)
	codes int[] := '{}';
	occ record;
	minutes bigint;
	occupancy numeric := 0;
	applied text[];
	cp record;
	discount numeric := 0;
	tol bigint;
	b evcharge.bill;
	i int;
	blind boolean;
BEGIN
	IF p_method IS NULL OR p_method NOT IN ('auto', 'recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'bill method "%" is not known', p_method
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A bill is computed by recompute, pile, platform or manual (auto is the pipeline''s own).',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	has_rec := FOUND;
	pol := evcharge.station_policy(s.station_id);
	tol := pol.energy_tolerance_wh;
	SELECT pl.rated_power_w, pl.firmware, pl.current_type INTO rated, firmware, ctype
	FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	SELECT pa.allowed_channels INTO allowed FROM evcharge.partner pa WHERE pa.partner_id = s.partner_id;

	-- The pile's clock: a record dated 1999, ending before it starts, ending
	-- after it was received, or far from the platform's start is not believed.
	IF has_rec THEN
		times_ok := cardinality(evcharge.pile_record_clock_faults(rec, s.started_at, pol, 'UTC')) = 0;
	END IF;
	t_start := coalesce(s.started_at, CASE WHEN has_rec AND times_ok THEN rec.started_at END, s.created_at);
	t_end := coalesce(s.charging_ended_at, CASE WHEN has_rec AND times_ok THEN rec.ended_at END, s.last_ts,
		s.occupied_until, t_start);
	-- The gun went offline during the session: what the platform saw ends
	-- at the silence, so the pile's own end (when its clock is believed) is
	-- the end, and the pile's figures are not held against the heartbeats'.
	blind := EXISTS (SELECT 1 FROM evcharge.offline_period o
		WHERE o.gun OPERATOR(evcharge.=) s.gun AND o.started_at <= coalesce(s.occupied_until, t_end)
		  AND coalesce(o.ended_at, 'infinity') >= t_start);
	IF blind AND has_rec AND times_ok AND rec.ended_at > t_end THEN
		t_end := rec.ended_at;
	END IF;

	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);
	measured := CASE WHEN nsamples > 0 THEN smp.meter_wh[nsamples] ELSE 0 END;

	-- The pile's energy is believed only if the gun could deliver it in the
	-- longer of the record's span and the platform's.
	IF has_rec AND rec.energy_wh IS NOT NULL THEN
		plausible := coalesce(rec.energy_wh <= rated::bigint * extract(epoch FROM
			greatest(CASE WHEN times_ok THEN rec.ended_at - rec.started_at END, t_end - t_start)) / 3600 * 1.2 + 10, true);
	END IF;

	CASE p_method
	WHEN 'auto', 'recompute' THEN
		IF has_rec AND rec.energy_wh IS NOT NULL AND plausible THEN
			chosen := rec.energy_wh;
			source := 'pile';
		ELSE
			source := 'heartbeats';
		END IF;
	WHEN 'pile' THEN
		IF NOT has_rec OR rec.energy_wh IS NULL THEN
			RAISE EXCEPTION 'order % has no pile record with energy', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Use recompute, platform, or manual with the energy.';
		END IF;
		chosen := rec.energy_wh;
		source := 'pile';
	WHEN 'platform' THEN
		source := 'heartbeats';
	ELSE
		IF p_energy_wh IS NULL OR p_energy_wh < 0 THEN
			RAISE EXCEPTION 'energy % Wh cannot be set by hand', coalesce(p_energy_wh::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'A manual repair needs the energy in Wh, 0 or more: repair_bill(order_no, reason, ''manual'', 12500).';
		END IF;
		chosen := p_energy_wh;
		source := 'manual';
	END CASE;

	-- The curve to price: measured, scaled to the chosen total in the
	-- measured proportions, or the total evenly over the span.
	IF measured = 0 THEN
		ts := ARRAY[t_start, greatest(t_end, t_start + interval '1 s')];
		wh := ARRAY[0, coalesce(chosen, 0)];
	ELSIF chosen IS NULL THEN
		ts := smp.ts;
		wh := smp.meter_wh;
	ELSE
		ts := smp.ts;
		wh := smp.meter_wh;
		FOR i IN 1 .. nsamples LOOP
			wh[i] := floor(smp.meter_wh[i]::numeric * chosen / measured)::bigint;
		END LOOP;
	END IF;

	-- Priced by the registry's current type.  Whatever keeps a session from
	-- being priced (no type, no plan, an error in pricing) gives a bill with
	-- its energy, no amount and the reason, held: never a default price,
	-- never no bill.
	IF ctype IS NULL THEN
		no_price := 17;
		applied := ARRAY[format(CASE WHEN rated IS NULL THEN 'not priced: pile %s is not in the pile registry, which gives its current type'
		                             ELSE 'not priced: the pile registry does not give the current type of pile %s' END,
		                        evcharge.pile(s.gun))];
	ELSE
		BEGIN
			q := evcharge.price_session(s.station_id, ctype, s.group_id, ts, wh);
			applied := q.applied;
		EXCEPTION WHEN SQLSTATE 'EV001' THEN
			no_price := 12;
			applied := ARRAY['no tariff in force: ' || SQLERRM];
		WHEN OTHERS THEN
			no_price := 19;
			applied := ARRAY[format('not priced: %s: %s', SQLSTATE, SQLERRM)];
		END;
	END IF;
	IF no_price IS NOT NULL THEN
		q.kwh := wh[array_length(wh, 1)] / 1000.0;
		q.class_kwh := ARRAY[0, 0, 0, 0];
		q.energy_fee := 0;
		q.service_fee := 0;
	END IF;
	IF NOT plausible THEN
		applied := applied || format('the pile''s %s Wh exceed what %s W allow in its span', rec.energy_wh, rated);
	END IF;
	-- A partner order number in the pile's record that the session did not
	-- take (finalise_bill) is said on the bill.
	IF has_rec AND rec.partner_order_no IS DISTINCT FROM s.partner_order_no AND rec.partner_order_no IS NOT NULL THEN
		applied := applied || format('the pile record''s partner order number "%s" is not taken: %s',
			left(rec.partner_order_no, 80), coalesce(evcharge.partner_order_no_refusal(s, rec.partner_order_no),
			                                         'another session took it at the same moment'));
	END IF;

	SELECT o.grace_minutes, o.fee_per_minute, o.cap,
	       EXISTS (SELECT 1 FROM evcharge.occupancy_exemption e WHERE e.station_id = o.station_id AND e.group_id = s.group_id) AS exempt
	INTO occ FROM evcharge.occupancy_fee o WHERE o.station_id = s.station_id;
	IF FOUND AND no_price IS NULL AND s.occupied_until IS NOT NULL AND s.charging_ended_at IS NOT NULL THEN
		minutes := floor(extract(epoch FROM s.occupied_until - s.charging_ended_at) / 60)::bigint - occ.grace_minutes;
		IF minutes > 0 AND NOT occ.exempt THEN
			occupancy := least(trunc(minutes * occ.fee_per_minute, 2), coalesce(occ.cap, 'Infinity'::numeric));
			applied := applied || format('occupancy: %s min', minutes);
		END IF;
	END IF;

	-- The member's best coupon; the one this bill already holds counts as free.
	IF s.member_id IS NOT NULL AND q.service_fee > 0 THEN
		SELECT c.coupon_id, c.amount INTO cp
		FROM evcharge.coupon c JOIN evcharge.station st ON st.operator_id = c.operator_id
		WHERE st.station_id = s.station_id AND c.member_id = s.member_id
		  AND (c.used_order_no IS NULL OR c.used_order_no = p_order_no)
		  AND c.valid @> t_start AND c.min_kwh <= q.kwh
		ORDER BY least(c.amount, q.service_fee) DESC, c.amount ASC, upper(c.valid) ASC NULLS LAST, c.coupon_id
		LIMIT 1;
		IF FOUND THEN
			discount := least(cp.amount, q.service_fee);
			applied := applied || format('coupon: %s', cp.coupon_id);
			b.coupon_id := cp.coupon_id;
		END IF;
	END IF;

	b.order_no := p_order_no;
	b.gun := s.gun;
	b.station_id := s.station_id;
	b.member_id := s.member_id;
	b.channel := s.channel;
	b.started_at := t_start;
	b.ended_at := t_end;
	b.occupied_until := s.occupied_until;
	b.energy_wh := round(q.kwh * 1000)::bigint;
	b.wh_by_class := ARRAY(SELECT round(k * 1000)::bigint FROM unnest(q.class_kwh) k);
	b.energy_fee := q.energy_fee;
	b.service_fee := q.service_fee;
	b.occupancy_fee := occupancy;
	b.discount := discount;
	b.total := q.energy_fee + q.service_fee + occupancy - discount;
	b.applied := ARRAY(SELECT a FROM unnest(applied) a ORDER BY a);
	b.energy_source := source;
	b.partner_order_no := s.partner_order_no;
	-- Per class, exact and as charged; nothing to break down without a price.
	b.breakdown := CASE WHEN no_price IS NULL THEN evcharge.bill_breakdown(b.wh_by_class, q.class_energy_fee, q.class_service_fee) END;

	-- Anomalies (docs/anomalies.md).
	IF NOT has_rec THEN
		codes := codes || CASE WHEN blind THEN 2 ELSE 1 END;
	ELSE
		IF NOT times_ok THEN
			codes := codes || 3;
		END IF;
		-- Blind, the pile may well have charged more than was seen, never
		-- less: only less (or an implausible figure) is a mismatch then.
		IF rec.energy_wh IS NOT NULL AND (NOT plausible OR (measured > 0 AND
			CASE WHEN blind THEN measured - rec.energy_wh ELSE abs(rec.energy_wh - measured) END
			> greatest(tol, greatest(rec.energy_wh, measured) * pol.energy_tolerance_pct / 100))) THEN
			codes := codes || 8;
		END IF;
		IF times_ok AND NOT blind AND s.started_at IS NOT NULL AND s.charging_ended_at IS NOT NULL
		   AND greatest((rec.ended_at - rec.started_at) - (s.charging_ended_at - s.started_at),
		                (s.charging_ended_at - s.started_at) - (rec.ended_at - rec.started_at)) > pol.duration_tolerance THEN
			codes := codes || 9;
		END IF;
		IF times_ok AND NOT blind AND s.charging_ended_at IS NOT NULL AND s.occupied_until IS NOT NULL
		   AND greatest(rec.ended_at - s.charging_ended_at, s.charging_ended_at - rec.ended_at) > pol.occupancy_tolerance THEN
			codes := codes || 10;
		END IF;
	END IF;
	IF t_end < t_start THEN
		codes := codes || 3;
	END IF;
	IF t_end - t_start > pol.max_session OR (t_end <= t_start AND b.energy_wh > 0) THEN
		codes := codes || 5;
	END IF;
	IF smp.jump_wh > tol THEN
		codes := codes || 11;
	END IF;
	IF no_price IS NOT NULL THEN
		codes := codes || no_price;
	ELSIF b.energy_wh > 0 AND b.total <= 0 THEN
		codes := codes || 13;
	END IF;
	IF allowed IS NOT NULL AND s.channel <> ALL (allowed) THEN
		codes := codes || 14;
	END IF;
	IF b.energy_wh > tol AND measured = 0 AND nsamples >= 2 THEN
		codes := codes || 15;
	END IF;
	IF firmware LIKE ANY (pol.defective_firmware) THEN
		codes := codes || 16;
	END IF;
	-- More than the operator allows one bill (finance_policy): held, the limit said.
	BEGIN
		PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
			b.energy_wh, CASE WHEN no_price IS NULL THEN b.total END, format('order %s', p_order_no));
	EXCEPTION WHEN invalid_parameter_value THEN
		codes := codes || 18;
		b.applied := ARRAY(SELECT a FROM unnest(b.applied || SQLERRM) a ORDER BY a);
	END;
	b.anomalies := evcharge.anomaly_set(codes);
	b.state := CASE WHEN p_method = 'auto' AND evcharge.anomaly_blocking(b.anomalies) THEN 'held' ELSE 'final' END;
	b.revision := 0;
	b.finalised_at := now();
	b.updated_at := now();
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.compute_bill(text, text, bigint) IS
	'the bill a session would have now and its anomalies, written nowhere: method auto as the pipeline bills (held on a blocking anomaly), recompute, pile, platform or manual (p_energy_wh) as a repair would; priced by the registry''s current type; a session that cannot be priced keeps its energy with no amount (12 no tariff, 17 current type unknown, 19 pricing failed), one beyond the operator''s finance_policy limits carries 18';

-- What caused each anomaly of a bill, in the words of support: the figures
-- behind the code (the record's times against when it arrived, the two
-- energies and how far apart they are, the jumps kept out), so a ticket
-- need not look them up.  A code whose figures are not at hand is
-- explained by its description.
CREATE FUNCTION evcharge.anomaly_causes(p_order_no text) RETURNS TABLE (code int, name text, cause text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
	s evcharge.charge_session;
	rec evcharge.pile_record;
	has_rec boolean;
	pol evcharge.anomaly_policy;
	tz text;
	smp record;
	measured bigint;
	a record;
	said text;
	tol text;
BEGIN
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'Anomalies are looked for when the bill is made; this order has none yet, or is not known.',
			      HINT = 'Bills are in evcharge.bill; session_evidence(order_no) shows a session before it is billed.';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	SELECT st.tz INTO tz FROM evcharge.station st WHERE st.station_id = b.station_id;
	pol := evcharge.station_policy(b.station_id);
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	has_rec := FOUND;
	smp := evcharge.session_samples(p_order_no);
	measured := coalesce(smp.meter_wh[cardinality(smp.meter_wh)], 0);
	tol := format('tolerance %s Wh or %s %%', pol.energy_tolerance_wh, pol.energy_tolerance_pct);
	FOR a IN
		SELECT u.code, u.name, c.description
		FROM unnest(evcharge.anomaly_codes(b.anomalies), evcharge.anomaly_names(b.anomalies)) u(code, name)
		LEFT JOIN evcharge.anomaly_code c ON c.code = u.code
		ORDER BY u.code
	LOOP
		said := CASE a.code
			WHEN 1 THEN format('no pile record came within %s of the end: billed from the heartbeats',
			                   evcharge.duration_words(pol.record_wait))
			WHEN 2 THEN 'no pile record, and the gun was offline during the session: billed from the heartbeats'
			WHEN 3 THEN nullif(array_to_string(
				CASE WHEN has_rec THEN evcharge.pile_record_clock_faults(rec, s.started_at, pol, tz) ELSE '{}' END
				|| CASE WHEN b.ended_at < b.started_at THEN
					ARRAY[format('end of charging %s is before its start %s', to_char(b.ended_at AT TIME ZONE tz, 'HH24:MI:SS'),
					             to_char(b.started_at AT TIME ZONE tz, 'HH24:MI:SS'))] ELSE '{}' END, '; '), '')
			WHEN 5 THEN CASE WHEN b.ended_at - b.started_at > pol.max_session
				THEN format('charging lasted %s, longer than %s', evcharge.duration_words(b.ended_at - b.started_at),
				            evcharge.duration_words(pol.max_session))
				ELSE format('%s Wh billed with no charging time', b.energy_wh) END
			WHEN 8 THEN coalesce(
				(SELECT x || format('; the heartbeats measured %s Wh', measured) FROM unnest(b.applied) x
				 WHERE x LIKE 'the pile''s % Wh exceed what % W allow in its span' LIMIT 1),
				CASE WHEN has_rec THEN format('the pile''s record says %s Wh, the heartbeats measured %s Wh: %s Wh apart (%s)',
				                             rec.energy_wh, measured, abs(rec.energy_wh - measured), tol) END)
			WHEN 9 THEN CASE WHEN has_rec AND s.charging_ended_at IS NOT NULL THEN
				format('charging lasted %s by the pile''s record and %s by the heartbeats (tolerance %s)',
				       evcharge.duration_words(rec.ended_at - rec.started_at),
				       evcharge.duration_words(s.charging_ended_at - s.started_at), evcharge.duration_words(pol.duration_tolerance)) END
			WHEN 10 THEN CASE WHEN has_rec AND s.charging_ended_at IS NOT NULL THEN
				format('the pile''s record ends charging at %s, the heartbeats at %s (tolerance %s)',
				       to_char(rec.ended_at AT TIME ZONE tz, 'HH24:MI:SS'), to_char(s.charging_ended_at AT TIME ZONE tz, 'HH24:MI:SS'),
				       evcharge.duration_words(pol.occupancy_tolerance)) END
			WHEN 11 THEN format('meter jumps of %s Wh in all were not billed (%s)', smp.jump_wh,
			                    format('tolerance %s Wh', pol.energy_tolerance_wh))
			WHEN 12 THEN format('no %s plan in force at the station when it charged: nothing could be priced',
			                    evcharge.registered_current_type(b.gun))
			END;
		code := a.code;
		name := a.name;
		cause := coalesce(said, a.description, '');
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.anomaly_causes(text) IS
	'what caused each anomaly code of a bill, with the figures behind it (3: which time of the pile''s record is not believed and why; 8: the two energies and how far apart; 9, 10: the two durations or ends; 11: the Wh kept out; 1, 2, 5, 12 likewise), else the code''s description; P0002 for an order without a bill';

-- session_chart (support) and driver_chart (the driver's receipt) are each
-- a sequence of named steps over one chart_frame: load the order, draw the
-- bands, the axes and the curves, place the labels where they cover neither
-- a curve nor each other, then the legend and the box below, and wrap it
-- all in a document.  The frame is made once (chart_load) and only read.

-- Everything a chart is drawn from: the order, its bill and pile record,
-- the evidence rows, the axes and the plot area in pixels, and the
-- segments of every line drawn in the plot (labels keep off them).
CREATE TYPE evcharge.chart_frame AS (
	order_no text,
	view text,
	lang text,
	gun text,
	station_id bigint,
	station_name text,
	tz text,
	current_type text,
	session_state text,
	created_at timestamptz,
	started_at timestamptz,
	charging_ended_at timestamptz,
	occupied_until timestamptz,
	live_wh_by_class bigint[],
	has_bill boolean,
	bill_state text,
	bill_started_at timestamptz,
	bill_ended_at timestamptz,
	bill_energy_wh bigint,
	bill_wh_by_class bigint[],
	energy_source text,
	energy_fee numeric,
	service_fee numeric,
	occupancy_fee numeric,
	discount numeric,
	total numeric,
	anomalies evcharge.anomaly_set,
	applied text[],
	has_record boolean,
	rec_started_at timestamptz,
	rec_ended_at timestamptz,
	rec_energy_wh bigint,
	rec_received_at timestamptz,
	rec_faults text[],
	ev_ts timestamptz[],
	ev_wh bigint[],
	ev_w int[],
	ev_note text[],
	measured_wh bigint,
	curve_ts timestamptz[],
	curve_wh bigint[],
	t0 timestamptz,
	t1 timestamptz,
	span float8,
	e_top numeric,
	e_step numeric,
	p_top numeric,
	p_step numeric,
	width int,
	px0 float8,
	px1 float8,
	py0 float8,
	py1 float8,
	header text[],
	classes text[],
	seg_x1 float8[],
	seg_y1 float8[],
	seg_x2 float8[],
	seg_y2 float8[],
	seg_soft boolean[],
	priced boolean,
	partner_order_no text
);
COMMENT ON COLUMN evcharge.chart_frame.order_no IS 'the order';
COMMENT ON COLUMN evcharge.chart_frame.view IS 'support or driver';
COMMENT ON COLUMN evcharge.chart_frame.lang IS 'the language of the words: en (support), zh or en (driver)';
COMMENT ON COLUMN evcharge.chart_frame.gun IS 'the gun, as text';
COMMENT ON COLUMN evcharge.chart_frame.station_id IS 'the station';
COMMENT ON COLUMN evcharge.chart_frame.station_name IS 'the station''s name';
COMMENT ON COLUMN evcharge.chart_frame.tz IS 'the station''s time zone: the chart''s clock';
COMMENT ON COLUMN evcharge.chart_frame.current_type IS 'AC or DC, from the pile registry (registered_current_type)';
COMMENT ON COLUMN evcharge.chart_frame.session_state IS 'the session''s state';
COMMENT ON COLUMN evcharge.chart_frame.created_at IS 'when the session was made';
COMMENT ON COLUMN evcharge.chart_frame.started_at IS 'start of charging';
COMMENT ON COLUMN evcharge.chart_frame.charging_ended_at IS 'end of charging';
COMMENT ON COLUMN evcharge.chart_frame.occupied_until IS 'the unplug';
COMMENT ON COLUMN evcharge.chart_frame.live_wh_by_class IS 'the session''s Wh per class so far';
COMMENT ON COLUMN evcharge.chart_frame.has_bill IS 'whether the order has a bill';
COMMENT ON COLUMN evcharge.chart_frame.bill_state IS 'final, held or settled';
COMMENT ON COLUMN evcharge.chart_frame.bill_started_at IS 'the bill''s start';
COMMENT ON COLUMN evcharge.chart_frame.bill_ended_at IS 'the bill''s end';
COMMENT ON COLUMN evcharge.chart_frame.bill_energy_wh IS 'the bill''s energy, Wh';
COMMENT ON COLUMN evcharge.chart_frame.bill_wh_by_class IS 'the bill''s Wh per class';
COMMENT ON COLUMN evcharge.chart_frame.energy_source IS 'where the bill''s energy came from: pile, heartbeats, manual';
COMMENT ON COLUMN evcharge.chart_frame.energy_fee IS 'the bill''s electricity fee, yuan';
COMMENT ON COLUMN evcharge.chart_frame.service_fee IS 'the bill''s service fee, yuan';
COMMENT ON COLUMN evcharge.chart_frame.occupancy_fee IS 'the bill''s occupancy fee, yuan';
COMMENT ON COLUMN evcharge.chart_frame.discount IS 'the bill''s discount, yuan';
COMMENT ON COLUMN evcharge.chart_frame.total IS 'the bill''s total, yuan';
COMMENT ON COLUMN evcharge.chart_frame.anomalies IS 'the bill''s anomaly codes';
COMMENT ON COLUMN evcharge.chart_frame.applied IS 'what applied to the bill';
COMMENT ON COLUMN evcharge.chart_frame.has_record IS 'whether a pile record came';
COMMENT ON COLUMN evcharge.chart_frame.rec_started_at IS 'the pile record''s start';
COMMENT ON COLUMN evcharge.chart_frame.rec_ended_at IS 'the pile record''s end';
COMMENT ON COLUMN evcharge.chart_frame.rec_energy_wh IS 'the pile record''s energy, Wh: the pile''s claim';
COMMENT ON COLUMN evcharge.chart_frame.rec_received_at IS 'when the record was received';
COMMENT ON COLUMN evcharge.chart_frame.rec_faults IS 'why the record''s clock is not believed (pile_record_clock_faults); empty when it is';
COMMENT ON COLUMN evcharge.chart_frame.ev_ts IS 'the times of the evidence rows';
COMMENT ON COLUMN evcharge.chart_frame.ev_wh IS 'their energy so far, Wh';
COMMENT ON COLUMN evcharge.chart_frame.ev_w IS 'their power, W';
COMMENT ON COLUMN evcharge.chart_frame.ev_note IS 'their notes';
COMMENT ON COLUMN evcharge.chart_frame.measured_wh IS 'the energy the heartbeats measured, Wh';
COMMENT ON COLUMN evcharge.chart_frame.curve_ts IS 'the times of the energy curve drawn';
COMMENT ON COLUMN evcharge.chart_frame.curve_wh IS 'its energy, Wh: measured (support), or as billed (driver)';
COMMENT ON COLUMN evcharge.chart_frame.t0 IS 'the start of the time axis';
COMMENT ON COLUMN evcharge.chart_frame.t1 IS 'its end';
COMMENT ON COLUMN evcharge.chart_frame.span IS 'its length, s';
COMMENT ON COLUMN evcharge.chart_frame.e_top IS 'the top of the energy axis, Wh';
COMMENT ON COLUMN evcharge.chart_frame.e_step IS 'its step, Wh';
COMMENT ON COLUMN evcharge.chart_frame.p_top IS 'the top of the power axis, kW';
COMMENT ON COLUMN evcharge.chart_frame.p_step IS 'its step, kW';
COMMENT ON COLUMN evcharge.chart_frame.width IS 'the document''s width, px';
COMMENT ON COLUMN evcharge.chart_frame.px0 IS 'the plot''s left edge, px';
COMMENT ON COLUMN evcharge.chart_frame.px1 IS 'its right edge, px';
COMMENT ON COLUMN evcharge.chart_frame.py0 IS 'its top, px';
COMMENT ON COLUMN evcharge.chart_frame.py1 IS 'its bottom, px';
COMMENT ON COLUMN evcharge.chart_frame.header IS 'the header lines, wrapped';
COMMENT ON COLUMN evcharge.chart_frame.classes IS 'the tariff classes drawn, in the chart''s order';
COMMENT ON COLUMN evcharge.chart_frame.seg_x1 IS 'the segments drawn in the plot: start x, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_y1 IS 'start y, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_x2 IS 'end x, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_y2 IS 'end y, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_soft IS 'whether a label may cross the segment when no other spot is left (the power curve)';
COMMENT ON COLUMN evcharge.chart_frame.priced IS 'whether the bill has a price: not one held because nothing could price it (anomaly 12, no tariff in force; 17, current type unknown; 19, pricing failed)';
COMMENT ON COLUMN evcharge.chart_frame.partner_order_no IS 'the partner''s own order number of the session (charge_session.partner_order_no), NULL when it has none';
COMMENT ON TYPE evcharge.chart_frame IS
	'internal to session_chart and driver_chart: what a chart is drawn from (order, bill, pile record, evidence rows, the curve drawn, axes, plot area in px, header lines, classes shown, the segments labels must not cover); made once by chart_load';

-- A coordinate or length in the document: one decimal.
CREATE FUNCTION evcharge.chart_num(v float8) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN round(v::numeric, 1)::text;
COMMENT ON FUNCTION evcharge.chart_num(float8) IS 'a chart coordinate as written in the document: one decimal';

-- How wide a text is drawn, px: a generous estimate per character for a
-- sans-serif face (DejaVu Sans, the widest common one), Chinese and other
-- wide characters one em, bold 15 % wider.  Labels are placed with it, so
-- it errs wide.
CREATE FUNCTION evcharge.chart_text_width(t text, size float8, bold boolean DEFAULT false) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN size * CASE WHEN bold THEN 1.15 ELSE 1 END * coalesce((
	SELECT sum(CASE
		WHEN ascii(c) >= 4352 THEN 1.0
		WHEN c = ANY (ARRAY['i', 'j', 'l', 'I', 'J', '.', ',', ':', ';', '''', '|', '!', ' ', '(', ')', '[', ']', '{', '}', 'f', 't', 'r', '/', '-']) THEN 0.42
		WHEN c = ANY (ARRAY['m', 'w', 'M', 'W', '%', '@']) THEN 1.0
		WHEN c = ANY (ARRAY['+', '=', '<', '>', '~', '#', '&']) THEN 0.84
		WHEN c ~ '[A-Z]' THEN 0.80
		WHEN c ~ '[a-z0-9]' THEN 0.65
		ELSE 0.85 END)
	FROM regexp_split_to_table(t, '') c WHERE c <> ''), 0)::float8;
COMMENT ON FUNCTION evcharge.chart_text_width(text, float8, boolean) IS
	'an estimate, erring wide, of the width in px of a text drawn in a sans-serif face at this size (wide characters such as Chinese one em, bold 15 % wider): how labels are placed and lines wrapped';

-- The box a text covers: x0, y0, x1, y1 (px), from its anchor point.
CREATE FUNCTION evcharge.chart_text_box(t text, x float8, y float8, anchor text, size float8, bold boolean DEFAULT false)
RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT ARRAY[x - w * CASE anchor WHEN 'middle' THEN 0.5 WHEN 'end' THEN 1 ELSE 0 END - 2, y - 0.95 * size - 1,
                     x + w * CASE anchor WHEN 'middle' THEN 0.5 WHEN 'end' THEN 0 ELSE 1 END + 2, y + 0.3 * size + 1]
	FROM (SELECT evcharge.chart_text_width(t, size, bold) AS w) e);
COMMENT ON FUNCTION evcharge.chart_text_box(text, float8, float8, text, float8, boolean) IS
	'the box {x0, y0, x1, y1} a text drawn at (x, y) with this text-anchor (start, middle, end) and size covers, by chart_text_width, with 2 px to spare';

-- A <text> element (the text escaped).
CREATE FUNCTION evcharge.chart_text(x float8, y float8, anchor text, cls text, t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN format('<text%s x="%s" y="%s"%s>%s</text>', CASE WHEN cls IS NOT NULL THEN format(' class="%s"', cls) END,
	evcharge.chart_num(x), evcharge.chart_num(y),
	CASE WHEN anchor IN ('middle', 'end') THEN format(' text-anchor="%s"', anchor) END, evcharge.xml_escape(t));
COMMENT ON FUNCTION evcharge.chart_text(float8, float8, text, text, text) IS
	'a chart <text> element at (x, y) with an optional class and text-anchor, its text escaped by xml_escape';

-- A text cut into lines no wider than max_px (at spaces; a word wider
-- than the line, such as Chinese without spaces, at characters).
CREATE FUNCTION evcharge.chart_wrap(t text, max_px float8, size float8) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines text[] := '{}';
	cur text := '';
	word text;
	c text;
BEGIN
	FOR word IN SELECT w FROM regexp_split_to_table(t, ' ') w LOOP
		IF cur <> '' AND evcharge.chart_text_width(cur || ' ' || word, size) <= max_px THEN
			cur := cur || ' ' || word;
			CONTINUE;
		END IF;
		IF cur <> '' THEN
			lines := lines || cur;
			cur := '';
		END IF;
		IF evcharge.chart_text_width(word, size) <= max_px THEN
			cur := word;
		ELSE
			FOREACH c IN ARRAY regexp_split_to_array(word, '') LOOP
				IF cur <> '' AND evcharge.chart_text_width(cur || c, size) > max_px THEN
					lines := lines || cur;
					cur := '';
				END IF;
				cur := cur || c;
			END LOOP;
		END IF;
	END LOOP;
	IF cur <> '' OR cardinality(lines) = 0 THEN
		lines := lines || cur;
	END IF;
	RETURN lines;
END $$;
COMMENT ON FUNCTION evcharge.chart_wrap(text, float8, float8) IS
	'a text cut into lines no wider than max_px by chart_text_width: at spaces, and within a word (Chinese has no spaces) at characters';

-- The words of the driver's receipt in the driver's language (zh: Chinese,
-- simplified; en: English).
CREATE FUNCTION evcharge.chart_word(lang text, key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE lang WHEN 'zh' THEN w.zh ELSE w.en END FROM (VALUES
	('title', '充电明细', 'Charging receipt'),
	('order', '订单号', 'order'),
	('gun', '充电枪', 'charger'),
	('local_time', '当地时间', 'local time'),
	('delivered', '已充电量', 'energy delivered'),
	('start', '开始充电', 'started'),
	('end', '充电结束', 'finished'),
	('unplugged', '拔枪', 'unplugged'),
	('period', '时段', 'time'),
	('energy', '电量', 'energy'),
	('electricity', '电费', 'electricity'),
	('service', '服务费', 'service fee'),
	('occupancy', '占位费', 'parking after charging'),
	('discount', '优惠', 'discount'),
	('total', '合计', 'total'),
	('yuan', '元', 'yuan'),
	('per_kwh', '元/kWh', 'yuan/kWh'),
	('settled', '已从账户扣款。', 'Paid from your account.'),
	('final', '将从账户扣款。', 'To be paid from your account.'),
	('held', '本单金额正在核实，核实前不扣款。', 'We are checking the amount of this charge; nothing is taken until then.'),
	('no_bill', '充电尚未结算，以下为目前已充电量。', 'This charge is not settled yet; below is the energy delivered so far.'),
	('no_price', '本站电价待确认，金额确认后再结算。', 'The price at this station is being confirmed; the amount follows.'),
	('pending', '待定', 'to follow'),
	('member_price', '服务费已按会员价或优惠计算。', 'The service fee is at your member price or promotion.'),
	('no_heartbeats', '暂无充电数据', 'no charging data yet')
) w(key, zh, en) WHERE w.key = chart_word.key);
COMMENT ON FUNCTION evcharge.chart_word(text, text) IS
	'a word or sentence of the driver''s chart in the driver''s language: zh (Chinese, simplified) or en (English)';

-- A tariff class: its place in the order of classes, its colour, and its
-- name for the driver.  Classes other than the five known ones sort after
-- them by name and take a colour of their own.
CREATE FUNCTION evcharge.chart_class_rank(class text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN coalesce(array_position(ARRAY['sharp', 'peak', 'flat', 'valley', 'deep'],
	CASE WHEN class IN ('deepvalley', 'deep_valley') THEN 'deep' ELSE class END), 100);
COMMENT ON FUNCTION evcharge.chart_class_rank(text) IS
	'the place of a tariff class in the chart''s order: sharp, peak, flat, valley, deep valley (deep, deepvalley), then any other (100)';

CREATE FUNCTION evcharge.chart_class_colour(class text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN coalesce((ARRAY['#f4cccc', '#fce5cd', '#d9ead3', '#cfe2f3', '#d9d2e9'])[evcharge.chart_class_rank(class)],
	(ARRAY['#ead1dc', '#fff2cc', '#d0e0e3', '#e6e6e6'])[1 + (length(class) + ascii(class)) % 4]);
COMMENT ON FUNCTION evcharge.chart_class_colour(text) IS
	'the background colour of a tariff class in the chart: sharp red, peak orange, flat green, valley blue, deep valley violet, any other a pale colour of its own';

CREATE FUNCTION evcharge.chart_class_name(class text, lang text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE lang
	WHEN 'zh' THEN coalesce((ARRAY['尖峰', '高峰', '平段', '低谷', '深谷'])[evcharge.chart_class_rank(class)], class)
	WHEN 'en' THEN coalesce((ARRAY['sharp peak', 'peak', 'flat', 'valley', 'deep valley'])[evcharge.chart_class_rank(class)], class)
	ELSE class END;
COMMENT ON FUNCTION evcharge.chart_class_name(text, text) IS
	'a tariff class as the driver reads it: zh 尖峰 高峰 平段 低谷 深谷, en sharp peak, peak, flat, valley, deep valley; any other lang (the support view) the class itself';

-- kWh with three decimals; a number of yuan with two.
CREATE FUNCTION evcharge.chart_kwh(wh numeric) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_char(wh / 1000.0, 'FM999999990.000');
COMMENT ON FUNCTION evcharge.chart_kwh(numeric) IS 'Wh as kWh with three decimals, as the chart writes energy';

-- The pixel of an instant on the time axis, and of an energy on the
-- energy axis (Wh) and a power on the power axis (W).
CREATE FUNCTION evcharge.chart_x(f evcharge.chart_frame, t timestamptz) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN f.px0 + (f.px1 - f.px0) * extract(epoch FROM t - f.t0)::float8 / f.span;
COMMENT ON FUNCTION evcharge.chart_x(evcharge.chart_frame, timestamptz) IS 'the x pixel of an instant on the chart''s time axis';

CREATE FUNCTION evcharge.chart_y(f evcharge.chart_frame, wh numeric) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN f.py1 - (f.py1 - f.py0) * (wh / f.e_top)::float8;
COMMENT ON FUNCTION evcharge.chart_y(evcharge.chart_frame, numeric) IS 'the y pixel of an energy (Wh) on the chart''s energy axis';

CREATE FUNCTION evcharge.chart_y_power(f evcharge.chart_frame, w numeric) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN f.py1 - (f.py1 - f.py0) * (w / 1000.0 / f.p_top)::float8;
COMMENT ON FUNCTION evcharge.chart_y_power(evcharge.chart_frame, numeric) IS 'the y pixel of a power (W) on the chart''s power axis (kW)';

-- A round step for an axis from 0 to top with about five steps: 1, 2 or 5
-- times a power of ten; and the top, a whole number of steps.
CREATE FUNCTION evcharge.chart_step(top numeric, least_top numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE WHEN v <= p THEN p WHEN v <= 2 * p THEN 2 * p WHEN v <= 5 * p THEN 5 * p ELSE 10 * p END
	FROM (SELECT v, 10 ^ floor(log(v)) AS p FROM (SELECT greatest(top, least_top) / 5.0 AS v) a) b);
COMMENT ON FUNCTION evcharge.chart_step(numeric, numeric) IS
	'a round step (1, 2 or 5 times a power of ten) for a chart axis from 0 to top (at least least_top) in about five steps';

-- The tariff bands of the chart: each segment of each plan in force at the
-- station for the gun's current type, on every local day the chart covers,
-- cut to the plan's validity and to the chart, with the class's prices.
CREATE FUNCTION evcharge.chart_band_spans(f evcharge.chart_frame)
RETURNS TABLE (band_from timestamptz, band_to timestamptz, band_class text, station_tariff_id bigint,
	energy_price numeric, service_price numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	-- A handful of rows, but generate_series over days is estimated at 1000
	-- and the plan's cost crosses jit_above_cost: compiling took 1.2 s of a
	-- chart's 1.3 s.
	SET jit = off
BEGIN ATOMIC
	SELECT greatest(seg.seg_from, f.t0, lower(t.valid)), least(seg.seg_to, f.t1, upper(t.valid)), seg.class,
	       t.station_tariff_id, p.energy_price, p.service_fee
	FROM evcharge.station_tariff t
	CROSS JOIN generate_series(((f.t0 AT TIME ZONE f.tz)::date - 1)::timestamp, (f.t1 AT TIME ZONE f.tz)::date::timestamp,
	                           interval '1 day') d
	CROSS JOIN LATERAL (SELECT (d::date + g.starts) AT TIME ZONE f.tz AS seg_from, (d::date + g.ends) AT TIME ZONE f.tz AS seg_to, g.class
	                    FROM evcharge.tariff_segments(t.tariff) g) seg
	LEFT JOIN LATERAL evcharge.tariff_prices(t.tariff) p ON p.class = seg.class
	WHERE t.station_id = f.station_id AND t.current_type = f.current_type
	  AND t.valid && tstzrange(f.t0, f.t1) AND seg.seg_from < f.t1 AND seg.seg_to > f.t0
	  AND seg.seg_to > lower(t.valid) AND (upper_inf(t.valid) OR seg.seg_from < upper(t.valid))
	  -- the plan by calendar in force then (plan_in_force), not every plan valid then
	  AND (SELECT x.station_tariff_id FROM evcharge.plan_in_force(f.station_id, f.current_type,
	           greatest(seg.seg_from, f.t0, lower(t.valid))) x) = t.station_tariff_id
	ORDER BY 1;
END;
COMMENT ON FUNCTION evcharge.chart_band_spans(evcharge.chart_frame) IS
	'the tariff bands a chart draws: every segment of the plan in force (plan_in_force: by calendar, a declared hot day''s plan on that day) at the station for the gun''s current type over the chart''s span, cut to the plan''s validity and the chart, with its class and the class''s electricity and service prices';

-- The lines drawn in the plot, as points in px: the energy curve, the
-- power curve (support), the pile's claim (support) and the session's
-- moments.  The curves are drawn from these, and labels keep off them.
CREATE FUNCTION evcharge.chart_paths(f evcharge.chart_frame)
RETURNS TABLE (path text, x float8[], y float8[])
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'energy', array_agg(evcharge.chart_x(f, u.t) ORDER BY u.t), array_agg(evcharge.chart_y(f, u.w) ORDER BY u.t)
	FROM unnest(f.curve_ts, f.curve_wh) u(t, w) WHERE u.w IS NOT NULL
	HAVING count(*) > 0
	UNION ALL
	SELECT 'power', array_agg(evcharge.chart_x(f, u.t) ORDER BY u.t), array_agg(evcharge.chart_y_power(f, u.w) ORDER BY u.t)
	FROM unnest(f.ev_ts, f.ev_w) u(t, w) WHERE u.w IS NOT NULL AND f.view = 'support'
	HAVING count(*) > 0
	UNION ALL
	SELECT 'claim', ARRAY[f.px0, f.px1], ARRAY[evcharge.chart_y(f, f.rec_energy_wh), evcharge.chart_y(f, f.rec_energy_wh)]
	WHERE f.view = 'support' AND f.rec_energy_wh IS NOT NULL
	UNION ALL
	SELECT 'moment-' || m.what, ARRAY[evcharge.chart_x(f, m.at), evcharge.chart_x(f, m.at)], ARRAY[f.py0 - 40, f.py1]
	FROM (VALUES ('start', f.started_at), ('end', f.charging_ended_at), ('unplugged', f.occupied_until)) m(what, at)
	WHERE m.at IS NOT NULL;
END;
COMMENT ON FUNCTION evcharge.chart_paths(evcharge.chart_frame) IS
	'the lines a chart draws in its plot, as px points: the energy curve, the power curve and the pile''s claim (support view), the start, end of charging and unplug';

-- The header of the chart, one line per fact (each drawn 20 px below the
-- one before; a long one is wrapped).  Support: the order, gun and
-- station; the bill and where its energy came from; the pile's record;
-- the heartbeats shown.  Driver: the receipt's title, where, when, how
-- much.  A further fact of the order (a partner's order number) is one
-- more line here.
CREATE FUNCTION evcharge.chart_header(f evcharge.chart_frame) RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines text[];
	n int := coalesce(cardinality(f.ev_ts), 0);
	local_from timestamp := coalesce(f.bill_started_at, f.started_at, f.created_at) AT TIME ZONE f.tz;
	local_to timestamp := coalesce(f.bill_ended_at, f.charging_ended_at, f.ev_ts[n]) AT TIME ZONE f.tz;
BEGIN
	IF f.view = 'driver' THEN
		lines := ARRAY[
			format('%s · %s %s', evcharge.chart_word(f.lang, 'title'), evcharge.chart_word(f.lang, 'order'), f.order_no),
			format('%s · %s %s', f.station_name, evcharge.chart_word(f.lang, 'gun'), f.gun),
			format('%s–%s (%s)', to_char(local_from, 'YYYY-MM-DD HH24:MI'),
			       CASE WHEN local_to::date = local_from::date THEN '' ELSE to_char(local_to, 'YYYY-MM-DD ') END
			       || coalesce(to_char(local_to, 'HH24:MI'), '…'), evcharge.chart_word(f.lang, 'local_time'))
			|| format(' · %s %s kWh', evcharge.chart_word(f.lang, 'delivered'),
			          evcharge.chart_kwh(coalesce(f.bill_energy_wh, f.measured_wh)))
			|| CASE WHEN f.priced
			        THEN format(' · %s %s %s', evcharge.chart_word(f.lang, 'total'), f.total, evcharge.chart_word(f.lang, 'yuan')) ELSE '' END];
		RETURN lines;
	END IF;
	lines := ARRAY[format('Order %s · gun %s', f.order_no, f.gun), format('Station %s', f.station_name)];
	-- The partner's own number: Didi's users quote Didi's 27 digits.
	IF f.partner_order_no IS NOT NULL THEN
		lines := lines || format('Partner order %s', f.partner_order_no);
	END IF;
	IF f.has_bill THEN
		lines := lines || format('Bill, %s: %s kWh %s; total %s yuan (electricity %s, service %s, occupancy %s, discount %s)',
			CASE f.bill_state WHEN 'held' THEN 'held (not charged until repaired)' WHEN 'settled' THEN 'settled (charged)'
			     ELSE 'final (to be charged)' END,
			evcharge.chart_kwh(f.bill_energy_wh),
			CASE f.energy_source
				WHEN 'pile' THEN CASE WHEN f.bill_energy_wh <> f.measured_wh
					THEN format('from the pile''s record; the heartbeats measured %s kWh', evcharge.chart_kwh(f.measured_wh))
					ELSE 'from the pile''s record, as the heartbeats measured' END
				WHEN 'manual' THEN format('set by hand in a repair; the heartbeats measured %s kWh', evcharge.chart_kwh(f.measured_wh))
				ELSE 'measured from the heartbeats' END,
			f.total, f.energy_fee, f.service_fee, f.occupancy_fee, f.discount);
	ELSE
		lines := lines || format('No bill yet (session %s); measured so far: %s kWh', f.session_state, evcharge.chart_kwh(f.measured_wh));
	END IF;
	lines := lines || CASE WHEN f.has_record THEN
		format('Pile''s record: %s, %s to %s', coalesce(evcharge.chart_kwh(f.rec_energy_wh) || ' kWh', 'no energy'),
		       to_char(f.rec_started_at AT TIME ZONE f.tz, 'HH24:MI:SS'), to_char(f.rec_ended_at AT TIME ZONE f.tz, 'HH24:MI:SS'))
		|| CASE WHEN cardinality(f.rec_faults) > 0 THEN ' (its clock is not believed)' ELSE '' END
		ELSE 'No pile record' END;
	lines := lines || format('%s heartbeats, %s to %s local time', n, to_char(f.t0 AT TIME ZONE f.tz, 'HH24:MI:SS'),
		to_char(f.t1 AT TIME ZONE f.tz, 'HH24:MI:SS'));
	RETURN lines;
END $$;
COMMENT ON FUNCTION evcharge.chart_header(evcharge.chart_frame) IS
	'the header lines of a chart: support: order, gun, station; the bill, its state and where its energy came from; the pile''s record; the heartbeats shown; driver: title and order, station and gun, when, energy and total';

-- Step 1: everything the chart is drawn from.  The time axis covers the
-- heartbeats shown, the session's moments and the pile record's times when
-- its clock is believed; the energy axis the curve, the bill's energy and
-- the pile's claim.  The driver's curve is the bill's energy: the heartbeat
-- curve in its proportions, as the bill split it.
CREATE FUNCTION evcharge.chart_load(p_order_no text, p_view text, p_lang text) RETURNS evcharge.chart_frame
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f evcharge.chart_frame;
	s record;
	b evcharge.bill;
	rec evcharge.pile_record;
	n int;
	believed boolean;
	top numeric;
	p record;
BEGIN
	-- The curve; session_evidence raises the error for an unknown order.
	SELECT array_agg(e.ts ORDER BY e.ts), array_agg(e.energy_wh ORDER BY e.ts),
	       array_agg(e.power_w ORDER BY e.ts), array_agg(e.note ORDER BY e.ts)
	INTO f.ev_ts, f.ev_wh, f.ev_w, f.ev_note
	FROM evcharge.session_evidence(p_order_no) e;
	n := coalesce(cardinality(f.ev_ts), 0);
	SELECT cs.*, st.name AS station_name, st.tz, evcharge.registered_current_type(cs.gun) AS current_type INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	f.order_no := p_order_no;
	f.view := p_view;
	f.lang := p_lang;
	f.gun := s.gun::text;
	f.station_id := s.station_id;
	f.station_name := s.station_name;
	f.tz := s.tz;
	f.current_type := s.current_type;
	f.partner_order_no := s.partner_order_no;
	f.session_state := s.state;
	f.created_at := s.created_at;
	f.started_at := s.started_at;
	f.charging_ended_at := s.charging_ended_at;
	f.occupied_until := s.occupied_until;
	f.live_wh_by_class := s.wh_by_class;
	f.measured_wh := coalesce((SELECT max(w) FROM unnest(f.ev_wh) w), 0);

	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	f.has_bill := FOUND;
	IF f.has_bill THEN
		f.bill_state := b.state;
		f.bill_started_at := b.started_at;
		f.bill_ended_at := b.ended_at;
		f.bill_energy_wh := b.energy_wh;
		f.bill_wh_by_class := b.wh_by_class;
		f.energy_source := b.energy_source;
		f.energy_fee := b.energy_fee;
		f.service_fee := b.service_fee;
		f.occupancy_fee := b.occupancy_fee;
		f.discount := b.discount;
		f.total := b.total;
		f.anomalies := b.anomalies;
		f.applied := b.applied;
	END IF;
	-- Priced: not a bill held because nothing could price it (anomaly 12,
	-- no tariff in force; 17, the pile's current type unknown; 19, pricing
	-- failed), whose amounts mean nothing yet.  The one place both views ask.
	f.priced := f.has_bill AND NOT evcharge.anomaly_has(f.anomalies, 12)
		AND NOT evcharge.anomaly_has(f.anomalies, 17) AND NOT evcharge.anomaly_has(f.anomalies, 19)
		AND NOT EXISTS (SELECT 1 FROM unnest(f.applied) a WHERE a LIKE 'no tariff%' OR a LIKE 'not priced:%');
	-- The record the bill reads: the first one received.
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	f.has_record := FOUND;
	f.rec_faults := '{}';
	IF f.has_record THEN
		f.rec_started_at := rec.started_at;
		f.rec_ended_at := rec.ended_at;
		f.rec_energy_wh := rec.energy_wh;
		f.rec_received_at := rec.received_at;
		f.rec_faults := evcharge.pile_record_clock_faults(rec, s.started_at, evcharge.station_policy(s.station_id), s.tz);
	END IF;
	believed := f.has_record AND cardinality(f.rec_faults) = 0;

	-- The curve drawn: measured (support), or as billed (driver).
	f.curve_ts := f.ev_ts;
	f.curve_wh := f.ev_wh;
	IF p_view = 'driver' AND f.has_bill AND f.bill_energy_wh <> f.measured_wh THEN
		IF f.measured_wh > 0 THEN
			f.curve_wh := ARRAY(SELECT floor(w::numeric * f.bill_energy_wh / f.measured_wh)::bigint
			                    FROM unnest(f.ev_wh) WITH ORDINALITY u(w, i) ORDER BY u.i);
		ELSE
			f.curve_ts := ARRAY[f.bill_started_at, greatest(f.bill_ended_at, f.bill_started_at + interval '1 s')];
			f.curve_wh := ARRAY[0, f.bill_energy_wh];
		END IF;
	END IF;

	-- Time axis.
	f.t0 := coalesce(least(f.ev_ts[1], f.curve_ts[1], s.started_at, CASE WHEN believed THEN f.rec_started_at END), s.created_at);
	f.t1 := greatest(f.ev_ts[n], f.curve_ts[cardinality(f.curve_ts)], s.started_at, s.charging_ended_at, s.occupied_until,
		CASE WHEN believed THEN f.rec_ended_at END, f.t0 + interval '1 min');
	f.span := extract(epoch FROM f.t1 - f.t0)::float8;

	-- Value axes: 0 to a round top.
	top := greatest(coalesce((SELECT max(w) FROM unnest(f.curve_wh) w), 0), f.measured_wh,
		CASE WHEN p_view = 'support' THEN coalesce(f.rec_energy_wh, 0) ELSE 0 END, 0);
	f.e_step := evcharge.chart_step(top, 100);
	f.e_top := greatest(ceil(top / f.e_step), 1) * f.e_step;
	top := coalesce((SELECT max(w) FROM unnest(f.ev_w) w), 0) / 1000.0;
	f.p_step := evcharge.chart_step(top, 1);
	f.p_top := greatest(ceil(top / f.p_step), 1) * f.p_step;

	-- The plot area, below the header.
	f.width := 960;
	f.header := ARRAY(SELECT l FROM unnest(evcharge.chart_header(f)) WITH ORDINALITY h(line, i),
	                  unnest(evcharge.chart_wrap(h.line, 800, CASE WHEN h.i = 1 THEN 18.4 ELSE 12 END)) l);
	f.px0 := 80;
	f.px1 := 880;
	f.py0 := 26 + 20 * (cardinality(f.header) - 1) + 48;
	f.py1 := f.py0 + 300;

	f.classes := ARRAY(SELECT DISTINCT ON (evcharge.chart_class_rank(c.band_class), c.band_class) c.band_class
	                   FROM evcharge.chart_band_spans(f) c
	                   ORDER BY evcharge.chart_class_rank(c.band_class), c.band_class);
	f.seg_x1 := '{}';
	f.seg_y1 := '{}';
	f.seg_x2 := '{}';
	f.seg_y2 := '{}';
	f.seg_soft := '{}';
	FOR p IN SELECT * FROM evcharge.chart_paths(f) LOOP
		f.seg_soft := f.seg_soft || array_fill(p.path = 'power', ARRAY[greatest(cardinality(p.x) - 1, 0)]);
		f.seg_x1 := f.seg_x1 || p.x[1:cardinality(p.x) - 1];
		f.seg_y1 := f.seg_y1 || p.y[1:cardinality(p.y) - 1];
		f.seg_x2 := f.seg_x2 || p.x[2:cardinality(p.x)];
		f.seg_y2 := f.seg_y2 || p.y[2:cardinality(p.y)];
	END LOOP;
	RETURN f;
END $$;
COMMENT ON FUNCTION evcharge.chart_load(text, text, text) IS
	'step 1 of a chart: the order''s session, bill, pile record (and why its clock is not believed) and evidence rows; the curve drawn (measured for support, as billed for the driver); the time axis (heartbeats, moments, the record''s times when believed), the value axes, the header, the plot area, the classes shown and the segments labels keep off';

-- Step 2: the tariff classes as background bands, one <rect> per band.
CREATE FUNCTION evcharge.chart_bands(f evcharge.chart_frame) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT '<g id="tariff-bands">' || coalesce(string_agg(format('<rect class="band-%s" x="%s" y="%s" width="%s" height="%s"/>',
		evcharge.xml_escape(c.band_class), evcharge.chart_num(evcharge.chart_x(f, c.band_from)), evcharge.chart_num(f.py0),
		evcharge.chart_num(evcharge.chart_x(f, c.band_to) - evcharge.chart_x(f, c.band_from)), evcharge.chart_num(f.py1 - f.py0)),
		'' ORDER BY c.band_from), '') || '</g>'
	FROM evcharge.chart_band_spans(f) c;
END;
COMMENT ON FUNCTION evcharge.chart_bands(evcharge.chart_frame) IS
	'step 2 of a chart: the tariff classes in force as background bands, <g id="tariff-bands"> with a <rect class="band-CLASS"> per band';

-- Step 3: grid, ticks, the axes' units and the time axis's caption.  The
-- energy axis in Wh (support) or kWh (driver); the power axis (kW) on the
-- right for support; ticks at round local times, at most 8.
CREATE FUNCTION evcharge.chart_axes(f evcharge.chart_frame) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	body text := '<g id="axes">';
	k int;
	y float8;
	x float8;
	l0 timestamp := f.t0 AT TIME ZONE f.tz;
	l1 timestamp := f.t1 AT TIME ZONE f.tz;
	tick_every interval;
	tick timestamp;
BEGIN
	FOR k IN 0 .. round(f.e_top / f.e_step)::int LOOP
		y := evcharge.chart_y(f, k * f.e_step);
		body := body || format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', f.px0, evcharge.chart_num(y), f.px1, evcharge.chart_num(y))
			|| evcharge.chart_text(f.px0 - 6, y + 4, 'end', NULL, CASE WHEN f.view = 'driver'
				THEN trim(trailing '.' FROM trim(trailing '0' FROM to_char(k * f.e_step / 1000, 'FM999999990.000')))
				ELSE round(k * f.e_step)::text END);
	END LOOP;
	body := body || evcharge.chart_text(f.px0 - 6, f.py0 - 10, 'end', NULL, CASE WHEN f.view = 'driver' THEN 'kWh' ELSE 'Wh' END);
	IF f.view = 'support' THEN
		FOR k IN 0 .. round(f.p_top / f.p_step)::int LOOP
			y := evcharge.chart_y_power(f, k * f.p_step * 1000);
			body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', f.px1, evcharge.chart_num(y), f.px1 + 4, evcharge.chart_num(y))
				|| evcharge.chart_text(f.px1 + 7, y + 4, NULL, NULL, round(k * f.p_step, 1)::text);
		END LOOP;
		body := body || evcharge.chart_text(f.px1 + 7, f.py0 - 10, NULL, NULL, 'kW');
	END IF;

	SELECT m * interval '1 min' INTO tick_every
	FROM unnest(ARRAY[1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440]) m
	WHERE f.span / 60 / m <= 8 ORDER BY m LIMIT 1;
	tick_every := coalesce(tick_every, ceil(f.span / 86400 / 8) * interval '1 day');
	tick := date_bin(tick_every, l0, timestamp '2000-01-01');
	IF tick < l0 THEN
		tick := tick + tick_every;
	END IF;
	WHILE tick <= l1 LOOP
		x := evcharge.chart_x(f, tick AT TIME ZONE f.tz);
		body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', evcharge.chart_num(x), f.py1,
		                       evcharge.chart_num(x), f.py1 + 4)
			|| evcharge.chart_text(x, f.py1 + 17, 'middle', NULL,
			                       to_char(tick, CASE WHEN tick::date = l0::date THEN 'HH24:MI' ELSE 'MM-DD HH24:MI' END));
		tick := tick + tick_every;
	END LOOP;
	RETURN body
		|| format('<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>', f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0)
		|| evcharge.chart_text((f.px0 + f.px1) / 2, f.py1 + 35, 'middle', NULL,
			format('%s (%s), %s', CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'local_time') ELSE 'local time' END, f.tz,
			       CASE WHEN l0::date = l1::date THEN to_char(l0, 'YYYY-MM-DD')
			            ELSE to_char(l0, 'YYYY-MM-DD') || ' – ' || to_char(l1, 'YYYY-MM-DD') END))
		|| '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_axes(evcharge.chart_frame) IS
	'step 3 of a chart: <g id="axes">: grid and energy ticks (Wh for support, kWh for the driver), power ticks (kW, support), time ticks at round local times, the units above the axes, the frame and the caption with the zone and date';

-- Step 4: the curves: power (dashed, support), the energy curve, and the
-- pile's claim (support): a line at the energy its record gives, with a
-- diamond at the record's end when its clock is believed.
CREATE FUNCTION evcharge.chart_curves(f evcharge.chart_frame) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT '<g id="curves">'
		|| coalesce(string_agg(CASE WHEN p.path IN ('energy', 'power', 'claim') THEN
			format('<polyline class="%s" points="%s"/>', p.path,
			       (SELECT string_agg(evcharge.chart_num(u.x) || ',' || evcharge.chart_num(u.y), ' ' ORDER BY u.i)
			        FROM unnest(p.x, p.y) WITH ORDINALITY u(x, y, i))) END,
			'' ORDER BY array_position(ARRAY['power', 'claim', 'energy'], p.path)), '')
		|| coalesce((SELECT format('<path class="claim-end" d="M %s %s l 6 6 l -6 6 l -6 -6 z"/>',
		                           evcharge.chart_num(evcharge.chart_x(f, f.rec_ended_at)),
		                           evcharge.chart_num(evcharge.chart_y(f, f.rec_energy_wh) - 6))
		             WHERE f.view = 'support' AND f.rec_energy_wh IS NOT NULL AND cardinality(f.rec_faults) = 0), '')
		|| '</g>'
	FROM evcharge.chart_paths(f) p;
END;
COMMENT ON FUNCTION evcharge.chart_curves(evcharge.chart_frame) IS
	'step 4 of a chart: <g id="curves">: the power curve (support, dashed), the pile''s claim (support: a line at its record''s energy, a diamond at its end when its clock is believed) and the energy curve, from chart_paths';

-- Placing one label: the first of the candidate spots (x, y, text-anchor)
-- where its box lies inside the area and covers neither a label already
-- placed (taken: four numbers a box) nor a line of the plot; failing
-- that, the first that crosses only the power curve; then the first that
-- covers no label; failing that, the first.  The
-- label is drawn on a pale box, and its box is added to taken.
CREATE FUNCTION evcharge.chart_place_label(f evcharge.chart_frame, t text, cls text, cand_x float8[], cand_y float8[],
	cand_anchor text[], area float8[], INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	size CONSTANT float8 := 12;
	w float8 := evcharge.chart_text_width(t, size);
	i int;
	k int;
	chosen int;
	second int;
	fallback int;
	x0 float8;
	y0 float8;
	x1 float8;
	y1 float8;
	free boolean;
	hard_free boolean;
BEGIN
	<<candidates>>
	FOR i IN 1 .. cardinality(cand_x) LOOP
		-- The box as chart_text_box() gives it, with the width known.
		x0 := cand_x[i] - w * CASE cand_anchor[i] WHEN 'middle' THEN 0.5 WHEN 'end' THEN 1 ELSE 0 END - 2;
		x1 := x0 + w + 4;
		y0 := cand_y[i] - 0.95 * size - 1;
		y1 := cand_y[i] + 0.3 * size + 1;
		CONTINUE WHEN x0 < area[1] OR y0 < area[2] OR x1 > area[3] OR y1 > area[4];
		FOR k IN 1 .. coalesce(cardinality(taken), 0) / 4 LOOP
			CONTINUE candidates WHEN taken[4 * k - 3] < x1 AND taken[4 * k - 1] > x0 AND taken[4 * k - 2] < y1 AND taken[4 * k] > y0;
		END LOOP;
		fallback := coalesce(fallback, i);
		-- Clear of every line: a segment crosses the box (2 px around it)
		-- when, cut to the box's columns, its rows meet the box's.
		SELECT coalesce(NOT bool_or(true), true), coalesce(NOT bool_or(NOT s.soft), true) FROM (
			SELECT s.soft FROM unnest(f.seg_x1, f.seg_y1, f.seg_x2, f.seg_y2, f.seg_soft) s(sx1, sy1, sx2, sy2, soft),
			     LATERAL (SELECT greatest(least(s.sx1, s.sx2), x0 - 2) AS cx0, least(greatest(s.sx1, s.sx2), x1 + 2) AS cx1) c,
			     LATERAL (SELECT CASE WHEN s.sx1 = s.sx2 THEN s.sy1 ELSE s.sy1 + (s.sy2 - s.sy1) * (c.cx0 - s.sx1) / (s.sx2 - s.sx1) END AS ya,
			                     CASE WHEN s.sx1 = s.sx2 THEN s.sy2 ELSE s.sy1 + (s.sy2 - s.sy1) * (c.cx1 - s.sx1) / (s.sx2 - s.sx1) END AS yb) e
			WHERE c.cx0 <= c.cx1 AND greatest(e.ya, e.yb) >= y0 - 2 AND least(e.ya, e.yb) <= y1 + 2) s
		INTO free, hard_free;
		IF free THEN
			chosen := i;
			EXIT;
		END IF;
		IF hard_free THEN
			second := coalesce(second, i);
		END IF;
	END LOOP;
	chosen := coalesce(chosen, second, fallback, 1);
	x0 := cand_x[chosen] - w * CASE cand_anchor[chosen] WHEN 'middle' THEN 0.5 WHEN 'end' THEN 1 ELSE 0 END - 2;
	y0 := cand_y[chosen] - 0.95 * size - 1;
	taken := coalesce(taken, '{}') || ARRAY[x0, y0, x0 + w + 4, cand_y[chosen] + 0.3 * size + 1];
	svg := format('<rect class="label-box" x="%s" y="%s" width="%s" height="%s"/>', evcharge.chart_num(x0),
	              evcharge.chart_num(y0), evcharge.chart_num(w + 4), evcharge.chart_num(0.3 * size + 1 + 0.95 * size + 1))
		|| evcharge.chart_text(cand_x[chosen], cand_y[chosen], cand_anchor[chosen], cls, t);
END $$;
COMMENT ON FUNCTION evcharge.chart_place_label(evcharge.chart_frame, text, text, float8[], float8[], text[], float8[], float8[]) IS
	'places a chart label at the first candidate spot whose box (chart_text_box) is inside the area and covers no label placed before and no line of the plot (else one crossing only the power curve, else one covering no label, else the first); returns the <rect class="label-box"> and <text> and adds the box to taken';

-- Candidate spots around a point: beside it on the right and the left,
-- then above and below it ever further, then anywhere in its column.
CREATE FUNCTION evcharge.chart_spots_near(x float8, y float8, OUT xs float8[], OUT ys float8[], OUT anchors text[])
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	SELECT array_agg(x + c.dx ORDER BY c.n, c.m), array_agg(y + c.dy ORDER BY c.n, c.m), array_agg(c.anchor ORDER BY c.n, c.m)
	FROM (SELECT d.n, a.m, d.dy, CASE a.anchor WHEN 'start' THEN 9 WHEN 'end' THEN -9 ELSE 0 END AS dx, a.anchor
	      FROM (SELECT g AS n, CASE WHEN g % 2 = 1 THEN -4 - 14 * ((g - 1) / 2) ELSE 16 + 14 * ((g - 2) / 2) END::float8 AS dy
	            FROM generate_series(1, 40) g) d
	      CROSS JOIN (VALUES (1, 'start'), (2, 'end'), (3, 'middle')) a(m, anchor)) c;
END;
COMMENT ON FUNCTION evcharge.chart_spots_near(float8, float8) IS
	'candidate spots (x, y, text-anchor) for a label of a point: right, left and centred, just above it, just below, then ever further above and below (14 px a step, 20 steps each way)';

-- Candidate spots along a vertical line at x from the top of the plot
-- down: right of it, then left.
CREATE FUNCTION evcharge.chart_spots_down(x float8, y0 float8, y1 float8, OUT xs float8[], OUT ys float8[], OUT anchors text[])
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	SELECT array_agg(x + CASE a.anchor WHEN 'start' THEN 5 ELSE -5 END ORDER BY g, a.m), array_agg(y0 + 14 * g ORDER BY g, a.m),
	       array_agg(a.anchor ORDER BY g, a.m)
	FROM generate_series(1, greatest(floor((y1 - y0) / 14)::int - 1, 1)) g
	CROSS JOIN (VALUES (1, 'start'), (2, 'end')) a(m, anchor);
END;
COMMENT ON FUNCTION evcharge.chart_spots_down(float8, float8, float8) IS
	'candidate spots (x, y, text-anchor) for a label of a vertical line at x: every 14 px from y0 down to y1, right of the line, then left';

-- Step 5: the session's moments as dashed lines, each labelled with its
-- time where the label covers nothing.
CREATE FUNCTION evcharge.chart_moments(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	x float8;
	c record;
	placed record;
	area float8[] := ARRAY[f.px0 + 1, f.py0 - 40, f.px1 - 1, f.py1 - 1];
BEGIN
	svg := '<g id="moments">';
	FOR r IN
		SELECT m.at, m.label
		FROM (VALUES (f.started_at, CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'start') ELSE 'start' END, 1),
		             (f.charging_ended_at, CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'end') ELSE 'end of charging' END, 2),
		             (f.occupied_until, CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'unplugged') ELSE 'unplugged' END, 3))
		     m(at, label, n)
		WHERE m.at IS NOT NULL ORDER BY m.n
	LOOP
		x := evcharge.chart_x(f, r.at);
		-- Above the plot, where no curve runs, in two rows, right of the
		-- line then left of it; in the plot along the line when both are full.
		c := evcharge.chart_spots_down(x, f.py0, f.py1);
		placed := evcharge.chart_place_label(f, format('%s %s', r.label, to_char(r.at AT TIME ZONE f.tz,
			CASE WHEN f.view = 'driver' THEN 'HH24:MI' ELSE 'HH24:MI:SS' END)), NULL,
			ARRAY[x + 5, x - 5, x + 5, x - 5] || c.xs, ARRAY[f.py0 - 6, f.py0 - 6, f.py0 - 24, f.py0 - 24] || c.ys,
			ARRAY['start', 'end', 'start', 'end'] || c.anchors, area, taken);
		taken := placed.taken;
		svg := svg || format('<line class="mark" x1="%s" y1="%s" x2="%s" y2="%s"/>', evcharge.chart_num(x), f.py0 - 40,
		                     evcharge.chart_num(x), f.py1)
			|| placed.svg;
	END LOOP;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_moments(evcharge.chart_frame, float8[]) IS
	'step 5 of a chart: <g id="moments">: the start, end of charging and unplug as dashed lines with their times (support: HH:MI:SS in English; driver: HH:MI in the driver''s words), labels placed by chart_place_label';

-- Step 6 (support): what the bill did not count: each silence while
-- charging as a grey band, each meter jump as a red dot, labelled.
CREATE FUNCTION evcharge.chart_marks(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	x float8;
	w float8;
	y float8;
	c record;
	placed record;
	bx float8[];
	lx float8;
	ly float8;
	area float8[] := ARRAY[f.px0 + 1, f.py0 + 1, f.px1 - 1, f.py1 - 1];
BEGIN
	svg := '<g id="marks">';
	FOR r IN
		SELECT g.prev, g.t, substring(g.note FROM 'no heartbeat for ([0-9]+ min [0-9]+ s)') AS len
		FROM (SELECT u.t, u.note, lag(u.t) OVER (ORDER BY u.t) AS prev FROM unnest(f.ev_ts, f.ev_note) u(t, note)) g
		WHERE g.note ~ 'no heartbeat for' ORDER BY g.t
	LOOP
		x := evcharge.chart_x(f, r.prev);
		w := evcharge.chart_x(f, r.t) - x;
		svg := svg || format('<rect class="gap" x="%s" y="%s" width="%s" height="%s"/>', evcharge.chart_num(x), f.py0,
		                     evcharge.chart_num(w), f.py1 - f.py0);
		-- Inside the band from the bottom up, then beside it.
		SELECT array_agg(s.x ORDER BY s.n) AS xs, array_agg(s.y ORDER BY s.n) AS ys, array_agg(s.a ORDER BY s.n) AS anchors INTO c
		FROM (SELECT g * 2 + k AS n, CASE k WHEN 0 THEN x + w / 2 WHEN 1 THEN x + w + 3 ELSE x - 3 END AS x,
		             f.py1 - 6 - 14 * g AS y, CASE k WHEN 0 THEN 'middle' WHEN 1 THEN 'start' ELSE 'end' END AS a
		      FROM generate_series(0, floor((f.py1 - f.py0) / 14)::int - 2) g, generate_series(0, 2) k) s;
		placed := evcharge.chart_place_label(f, format('no data %s', r.len), 'warn', c.xs, c.ys, c.anchors, area, taken);
		taken := placed.taken;
		svg := svg || placed.svg;
	END LOOP;
	FOR r IN
		SELECT u.t, u.w, substring(u.note FROM 'meter jump of ([0-9]+) Wh') AS jump
		FROM unnest(f.ev_ts, f.ev_wh, f.ev_note) u(t, w, note)
		WHERE u.note ~ 'meter jump of' ORDER BY u.t
	LOOP
		x := evcharge.chart_x(f, r.t);
		y := evcharge.chart_y(f, coalesce(r.w, 0));
		c := evcharge.chart_spots_near(x, y);
		placed := evcharge.chart_place_label(f, format('jump +%s Wh, not billed', r.jump), 'warn', c.xs, c.ys, c.anchors, area, taken);
		taken := placed.taken;
		svg := svg || format('<circle class="jump" cx="%s" cy="%s" r="5"/>', evcharge.chart_num(x), evcharge.chart_num(y));
		-- A label placed away from its dot points at it.
		bx := taken[cardinality(taken) - 3:cardinality(taken)];
		lx := greatest(bx[1], least(x, bx[3]));
		ly := greatest(bx[2], least(y, bx[4]));
		IF sqrt((lx - x) ^ 2 + (ly - y) ^ 2) > 20 THEN
			svg := svg || format('<line class="leader" x1="%s" y1="%s" x2="%s" y2="%s"/>', evcharge.chart_num(x), evcharge.chart_num(y),
			                     evcharge.chart_num(lx), evcharge.chart_num(ly));
		END IF;
		svg := svg || placed.svg;
	END LOOP;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_marks(evcharge.chart_frame, float8[]) IS
	'step 6 of the support chart: <g id="marks">: each silence longer than 2 minutes while charging as a grey band (no data M min S s), each meter jump as a red dot (jump +N Wh, not billed), labels placed by chart_place_label';

-- Step 7 (support): the pile's claim labelled: its energy and how far it
-- is from what the heartbeats measured; beside its line, from the right
-- end leftwards, just above or below it, then further away.
CREATE FUNCTION evcharge.chart_claim_label(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	y float8;
	c record;
	placed record;
	said text;
BEGIN
	svg := '<g id="claim">';
	IF f.view = 'support' AND f.rec_energy_wh IS NOT NULL THEN
		y := evcharge.chart_y(f, f.rec_energy_wh);
		said := format('pile''s record %s Wh', f.rec_energy_wh) || CASE
			WHEN f.rec_energy_wh > f.measured_wh THEN format(': %s Wh above the heartbeats'' %s Wh', f.rec_energy_wh - f.measured_wh, f.measured_wh)
			WHEN f.rec_energy_wh < f.measured_wh THEN format(': %s Wh below the heartbeats'' %s Wh', f.measured_wh - f.rec_energy_wh, f.measured_wh)
			ELSE ': the heartbeats'' figure' END;
		SELECT array_agg(s.x ORDER BY s.n) AS xs, array_agg(s.y ORDER BY s.n) AS ys, array_agg(s.a ORDER BY s.n) AS anchors INTO c
		FROM (SELECT g * 100 + k AS n, f.px1 - 4 - 40 * k AS x,
		             y + CASE WHEN g % 2 = 0 THEN -5 - 14 * (g / 2) ELSE 16 + 14 * (g / 2) END AS y, 'end' AS a
		      FROM generate_series(0, 19) g, generate_series(0, 19) k) s;
		placed := evcharge.chart_place_label(f, said, 'claim-text', c.xs, c.ys, c.anchors,
			ARRAY[f.px0 + 1, f.py0 + 1, f.px1 - 1, f.py1 - 1], taken);
		taken := placed.taken;
		svg := svg || placed.svg;
	END IF;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_claim_label(evcharge.chart_frame, float8[]) IS
	'step 7 of the support chart: <g id="claim">: the label of the pile''s claim (pile''s record N Wh, M Wh above or below the heartbeats), placed by chart_place_label';

-- Step 7 (driver): each band named in the driver's words at its top, where
-- it fits.
CREATE FUNCTION evcharge.chart_band_labels(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	x0 float8;
	x1 float8;
	c record;
	placed record;
	name text;
BEGIN
	svg := '<g id="band-labels">';
	FOR r IN SELECT * FROM evcharge.chart_band_spans(f) ORDER BY 1 LOOP
		x0 := evcharge.chart_x(f, r.band_from);
		x1 := evcharge.chart_x(f, r.band_to);
		name := evcharge.chart_class_name(r.band_class, f.lang);
		CONTINUE WHEN x1 - x0 < evcharge.chart_text_width(name, 12) + 8;
		SELECT array_agg((x0 + x1) / 2 ORDER BY g) AS xs, array_agg(f.py0 + 16 + 14 * g ORDER BY g) AS ys,
		       array_agg('middle'::text ORDER BY g) AS anchors INTO c
		FROM generate_series(0, 18) g;
		placed := evcharge.chart_place_label(f, name, 'band-name', c.xs, c.ys, c.anchors,
			ARRAY[x0 + 1, f.py0 + 1, x1 - 1, f.py1 - 1], taken);
		taken := placed.taken;
		svg := svg || placed.svg;
	END LOOP;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_band_labels(evcharge.chart_frame, float8[]) IS
	'step 7 of the driver''s chart: <g id="band-labels">: each tariff band named in the driver''s words (chart_class_name) near its top, where it fits, placed by chart_place_label';

-- Items laid out in rows from left to right, wrapped at the plot's width:
-- each a swatch (the class of a line, a band, or none) and a text.
-- Returns the SVG and the baseline of the last row.
CREATE FUNCTION evcharge.chart_flow(f evcharge.chart_frame, y float8, kinds text[], classes text[], texts text[],
	OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i int;
	x float8 := f.px0;
	w float8;
BEGIN
	svg := '';
	FOR i IN 1 .. coalesce(cardinality(texts), 0) LOOP
		w := CASE WHEN kinds[i] = 'none' THEN 0 ELSE 30 END + evcharge.chart_text_width(texts[i], 12);
		IF x > f.px0 AND x + w > f.px1 THEN
			x := f.px0;
			y := y + 20;
		END IF;
		svg := svg || CASE kinds[i]
			WHEN 'line' THEN format('<line class="%s" x1="%s" y1="%s" x2="%s" y2="%s"/>', classes[i], evcharge.chart_num(x),
			                        evcharge.chart_num(y - 4), evcharge.chart_num(x + 24), evcharge.chart_num(y - 4))
			WHEN 'box' THEN format('<rect class="%s" x="%s" y="%s" width="24" height="10"/>', evcharge.xml_escape(classes[i]),
			                       evcharge.chart_num(x), evcharge.chart_num(y - 9))
			WHEN 'dot' THEN format('<circle class="%s" cx="%s" cy="%s" r="5"/>', classes[i], evcharge.chart_num(x + 12), evcharge.chart_num(y - 4))
			ELSE '' END
			|| evcharge.chart_text(x + CASE WHEN kinds[i] = 'none' THEN 0 ELSE 30 END, y, NULL,
			                       CASE WHEN kinds[i] = 'none' THEN classes[i] END, texts[i]);
		x := x + w + 24;
	END LOOP;
	bottom := y;
END $$;
COMMENT ON FUNCTION evcharge.chart_flow(evcharge.chart_frame, float8, text[], text[], text[]) IS
	'lays out legend items left to right, wrapped at the plot''s width, 20 px a row: each a swatch (line, box or dot of a class, or none: plain text of that class) and its text; returns the SVG and the last row''s baseline';

-- Step 8: the legend.  Support: what each line is (the energy curve is
-- what the heartbeats measured, whatever the bill counted), the marks
-- shown, then each class drawn with its plan's prices (a class twice when
-- a plan change during the session changed them).  Driver: the curve and
-- the classes by name.
CREATE FUNCTION evcharge.chart_legend(f evcharge.chart_frame, y float8, OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	kinds text[];
	classes text[];
	texts text[];
	r record;
	flow record;
BEGIN
	IF f.view = 'driver' THEN
		kinds := ARRAY['line'];
		classes := ARRAY['energy'];
		texts := ARRAY[format('%s (kWh)', evcharge.chart_word(f.lang, 'delivered'))];
		FOR r IN SELECT c FROM unnest(f.classes) c LOOP
			kinds := kinds || 'box'::text;
			classes := classes || ('band-' || r.c);
			texts := texts || evcharge.chart_class_name(r.c, f.lang);
		END LOOP;
		flow := evcharge.chart_flow(f, y, kinds, classes, texts);
		svg := '<g id="legend">' || flow.svg || '</g>';
		bottom := flow.bottom;
		RETURN;
	END IF;

	kinds := ARRAY['line', 'line'];
	classes := ARRAY['energy', 'power'];
	texts := ARRAY['energy measured from the heartbeats (Wh)', 'power (kW)'];
	IF f.rec_energy_wh IS NOT NULL THEN
		kinds := kinds || 'line'::text;
		classes := classes || 'claim'::text;
		texts := texts || CASE WHEN f.energy_source = 'pile' THEN 'the pile''s record (Wh), the energy billed'
		                       ELSE 'the pile''s record (Wh)' END;
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(f.ev_note) n WHERE n ~ 'no heartbeat for') THEN
		kinds := kinds || 'box'::text;
		classes := classes || 'gap'::text;
		texts := texts || 'no heartbeat for over 2 min while charging'::text;
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(f.ev_note) n WHERE n ~ 'meter jump of') THEN
		kinds := kinds || 'dot'::text;
		classes := classes || 'jump'::text;
		texts := texts || 'meter jump, not billed'::text;
	END IF;
	flow := evcharge.chart_flow(f, y, kinds, classes, texts);
	svg := '<g id="legend">' || flow.svg;
	y := flow.bottom + 22;
	kinds := '{}';
	classes := '{}';
	texts := '{}';
	FOR r IN
		SELECT DISTINCT c.band_class, c.energy_price, c.service_price, evcharge.chart_class_rank(c.band_class) AS rank
		FROM evcharge.chart_band_spans(f) c
		ORDER BY rank, c.band_class, c.energy_price, c.service_price
	LOOP
		kinds := kinds || 'box'::text;
		classes := classes || ('band-' || r.band_class);
		texts := texts || CASE WHEN r.energy_price IS NULL THEN format('%s: no price', r.band_class)
		                       ELSE format('%s %s + %s', r.band_class, round(r.energy_price, 4), round(r.service_price, 4)) END;
	END LOOP;
	IF cardinality(texts) > 0 THEN
		svg := svg || evcharge.chart_text(f.px0, y, NULL, NULL, 'tariff classes (electricity + service fee, yuan/kWh):');
		flow := evcharge.chart_flow(f, y + 20, kinds, classes, texts);
		svg := svg || flow.svg;
		bottom := flow.bottom;
	ELSE
		svg := svg || evcharge.chart_text(f.px0, y, NULL, 'warn', CASE WHEN f.current_type IS NULL
			THEN 'the pile''s current type (AC or DC) is not known: no plan applies, nothing can be priced'
			ELSE format('no %s plan in force at this station: nothing can be priced', f.current_type) END);
		bottom := y;
	END IF;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_legend(evcharge.chart_frame, float8) IS
	'step 8 of a chart: <g id="legend">: support: the energy measured from the heartbeats, power, the pile''s record (and whether it was billed), silences and jumps when shown, then every class drawn with its electricity and service prices (or that no plan is in force); driver: the curve and the classes by name; returns the SVG and the last baseline';

-- Step 9 (support): the bill's anomalies in a box: the codes as operators
-- write them, and one line per code with its name and what caused it.
CREATE FUNCTION evcharge.chart_anomaly_box(f evcharge.chart_frame, y float8, OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines text[];
	heads int := 1;
	k int;
BEGIN
	IF NOT f.has_bill THEN
		lines := ARRAY['No bill yet: anomalies are looked for when the bill is made.'];
	ELSIF cardinality(evcharge.anomaly_codes(f.anomalies)) = 0 THEN
		lines := ARRAY[format('No anomalies on the bill (%s).', f.bill_state)];
	ELSE
		lines := ARRAY[format('Anomalies on the bill (%s): %s', f.bill_state, f.anomalies::text)]
			|| ARRAY(SELECT l FROM evcharge.anomaly_causes(f.order_no) WITH ORDINALITY c2(code, name, cause, i),
			                       unnest(evcharge.chart_wrap(format('%s %s: %s', c2.code, c2.name, c2.cause), f.px1 - f.px0 - 16, 12))
			                       WITH ORDINALITY w(l, j)
			         ORDER BY c2.i, w.j);
	END IF;
	svg := '<g id="anomalies">'
		|| format('<rect class="box" x="%s" y="%s" width="%s" height="%s"/>', f.px0, evcharge.chart_num(y), f.px1 - f.px0,
		          10 + 16 * cardinality(lines));
	FOR k IN 1 .. cardinality(lines) LOOP
		svg := svg || evcharge.chart_text(f.px0 + 8, y + 16 * k, NULL, CASE WHEN k <= heads THEN 'head' END, lines[k]);
	END LOOP;
	svg := svg || '</g>';
	bottom := y + 10 + 16 * cardinality(lines);
END $$;
COMMENT ON FUNCTION evcharge.chart_anomaly_box(evcharge.chart_frame, float8) IS
	'step 9 of the support chart: <g id="anomalies">: a box with the bill''s codes as operators write them (8+11) and a line per code with its name and its cause (anomaly_causes), wrapped; or that there are none, or no bill yet';

-- Step 9 (driver): the receipt: per class, when it was delivered, how
-- much, at which prices; then the fees and the total of the bill, and
-- whether it is paid.  No code and no internal word: a held bill is "being
-- checked", a bill that could not be priced "to follow".
CREATE FUNCTION evcharge.chart_receipt(f evcharge.chart_frame, y float8, OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	wh bigint[] := CASE WHEN f.has_bill THEN f.bill_wh_by_class ELSE f.live_wh_by_class END;
	priced boolean := f.priced;
	col int[] := ARRAY[0, 300, 420, 640];
	lang text := f.lang;
	x0 float8 := f.px0;
	said text;
	line_y float8;
BEGIN
	svg := '<g id="receipt">';
	line_y := y;
	svg := svg || evcharge.chart_text(x0 + col[1], line_y, NULL, 'head', evcharge.chart_word(lang, 'period'))
		|| evcharge.chart_text(x0 + col[2] + 90, line_y, 'end', 'head', evcharge.chart_word(lang, 'energy'))
		|| evcharge.chart_text(x0 + col[3], line_y, NULL, 'head',
		                       format('%s (%s)', evcharge.chart_word(lang, 'electricity'), evcharge.chart_word(lang, 'per_kwh')))
		|| evcharge.chart_text(x0 + col[4], line_y, NULL, 'head',
		                       format('%s (%s)', evcharge.chart_word(lang, 'service'), evcharge.chart_word(lang, 'per_kwh')));
	FOR r IN
		SELECT cl.class, cl.rank, coalesce(wh[cl.rank], 0) AS class_wh,
		       (SELECT min(sp.band_from) FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class AND sp.band_to > coalesce(f.bill_started_at, f.started_at, f.t0)) AS first_at,
		       (SELECT string_agg(to_char(greatest(sp.band_from, coalesce(f.bill_started_at, f.started_at)) AT TIME ZONE f.tz, 'HH24:MI')
		                          || '–' || to_char(least(sp.band_to, coalesce(f.bill_ended_at, f.charging_ended_at, f.t1)) AT TIME ZONE f.tz, 'HH24:MI'),
		                          ', ' ORDER BY sp.band_from)
		        FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class AND sp.band_to > coalesce(f.bill_started_at, f.started_at)
		          AND sp.band_from < coalesce(f.bill_ended_at, f.charging_ended_at, f.t1)) AS spans,
		       (SELECT string_agg(DISTINCT to_char(sp.energy_price, 'FM990.0000'), ' / ') FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class) AS e_price,
		       (SELECT string_agg(DISTINCT to_char(sp.service_price, 'FM990.0000'), ' / ') FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class) AS s_price
		FROM (SELECT c AS class, evcharge.chart_class_rank(c) AS rank FROM unnest(f.classes) c) cl
		WHERE coalesce(wh[cl.rank], 0) > 0
		ORDER BY first_at, cl.rank, cl.class
	LOOP
		line_y := line_y + 20;
		svg := svg || format('<rect class="band-%s" x="%s" y="%s" width="10" height="10"/>', evcharge.xml_escape(r.class),
		                     evcharge.chart_num(x0), evcharge.chart_num(line_y - 9))
			|| evcharge.chart_text(x0 + 16, line_y, NULL, NULL,
			                       format('%s %s', evcharge.chart_class_name(r.class, lang), coalesce(r.spans, '')))
			|| evcharge.chart_text(x0 + col[2] + 90, line_y, 'end', NULL, evcharge.chart_kwh(r.class_wh) || ' kWh')
			|| evcharge.chart_text(x0 + col[3], line_y, NULL, NULL,
			                       CASE WHEN priced THEN coalesce(r.e_price, '') ELSE evcharge.chart_word(lang, 'pending') END)
			|| evcharge.chart_text(x0 + col[4], line_y, NULL, NULL,
			                       CASE WHEN priced THEN coalesce(r.s_price, '') ELSE evcharge.chart_word(lang, 'pending') END);
	END LOOP;
	line_y := line_y + 8;
	svg := svg || format('<line class="rule" x1="%s" y1="%s" x2="%s" y2="%s"/>', x0, evcharge.chart_num(line_y), f.px1, evcharge.chart_num(line_y));
	line_y := line_y + 20;
	IF priced THEN
		said := format('%s %s · %s %s', evcharge.chart_word(lang, 'electricity'), f.energy_fee,
		               evcharge.chart_word(lang, 'service'), f.service_fee)
			|| CASE WHEN f.occupancy_fee > 0 THEN format(' · %s %s', evcharge.chart_word(lang, 'occupancy'), f.occupancy_fee) ELSE '' END
			|| CASE WHEN f.discount > 0 THEN format(' · %s -%s', evcharge.chart_word(lang, 'discount'), f.discount) ELSE '' END
			|| format(' (%s)', evcharge.chart_word(lang, 'yuan'));
		svg := svg || evcharge.chart_text(x0, line_y, NULL, NULL, said)
			|| evcharge.chart_text(f.px1, line_y, 'end', 'total',
			                       format('%s %s %s', evcharge.chart_word(lang, 'total'), f.total, evcharge.chart_word(lang, 'yuan')));
		IF EXISTS (SELECT 1 FROM unnest(f.applied) x WHERE x LIKE 'group: %' OR x LIKE 'promotion: %') THEN
			line_y := line_y + 20;
			svg := svg || evcharge.chart_text(x0, line_y, NULL, NULL, evcharge.chart_word(lang, 'member_price'));
		END IF;
	END IF;
	line_y := line_y + 22;
	svg := svg || evcharge.chart_text(x0, line_y, NULL, 'head', evcharge.chart_word(lang, CASE
		WHEN NOT f.has_bill THEN 'no_bill'
		WHEN NOT priced THEN 'no_price'
		WHEN f.bill_state = 'held' THEN 'held'
		WHEN f.bill_state = 'settled' THEN 'settled'
		ELSE 'final' END));
	svg := svg || '</g>';
	bottom := line_y;
END $$;
COMMENT ON FUNCTION evcharge.chart_receipt(evcharge.chart_frame, float8) IS
	'step 9 of the driver''s chart: <g id="receipt">: a line per class delivered (its times, kWh, electricity and service price per kWh), the bill''s fees and total in yuan, and whether it is paid, to be paid, being checked (held) or not priced yet, in the driver''s words';

-- Step 10: the document: declaration, root with its size, title,
-- description, the style sheet (a colour for every class shown), the
-- header lines and the body.
CREATE FUNCTION evcharge.chart_document(f evcharge.chart_frame, body text, height int) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT array_to_string(ARRAY[
		'<?xml version="1.0" encoding="UTF-8"?>',
		format('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%s" height="%s" viewBox="0 0 %s %s">',
		       f.width, height, f.width, height),
		format('<title>%s</title>', evcharge.xml_escape(CASE WHEN f.view = 'driver'
			THEN format('%s %s %s', evcharge.chart_word(f.lang, 'title'), evcharge.chart_word(f.lang, 'order'), f.order_no)
			ELSE format('Charging evidence for order %s', f.order_no) END)),
		format('<desc>%s</desc>', evcharge.xml_escape(CASE WHEN f.view = 'driver'
			THEN format('%s (kWh), %s (%s); %s', evcharge.chart_word(f.lang, 'delivered'), evcharge.chart_word(f.lang, 'local_time'), f.tz,
			            f.station_name)
			ELSE format('Energy measured (Wh, left axis) and power (kW, right axis) from the heartbeats of gun %s at station %s, on the station''s local time (%s); background bands are the tariff classes in force.',
			            f.gun, f.station_name, f.tz) END)),
		'<style type="text/css">'
		'text { font-family: sans-serif; font-size: 12px; fill: #222222; } '
		'.title { font-size: 16px; font-weight: bold; } .head { font-weight: bold; } .total { font-size: 14px; font-weight: bold; } '
		|| CASE WHEN f.view = 'support' THEN '.warn { fill: #cc0000; } .claim-text { fill: #6a1b9a; } ' ELSE '.band-name { fill: #444444; } ' END
		|| coalesce((SELECT string_agg(format('.band-%s { fill: %s; }', evcharge.xml_escape(c), evcharge.chart_class_colour(c)), ' ' ORDER BY i)
		             FROM unnest(f.classes) WITH ORDINALITY u(c, i)) || ' ', '')
		|| '.grid { stroke: #cccccc; stroke-width: 1; } .axis { stroke: #444444; stroke-width: 1; } '
		'.frame { fill: none; stroke: #444444; stroke-width: 1; } '
		'.energy { fill: none; stroke: #1f4e79; stroke-width: 2; } '
		'.mark { stroke: #000000; stroke-width: 1; stroke-dasharray: 4 3; } '
		'.label-box { fill: #ffffff; fill-opacity: 0.85; } '
		|| CASE WHEN f.view = 'support' THEN
		'.power { fill: none; stroke: #c55a11; stroke-width: 1.5; stroke-dasharray: 6 3; } '
		'.claim { fill: none; stroke: #6a1b9a; stroke-width: 1.5; stroke-dasharray: 2 3; } .claim-end { fill: #6a1b9a; } '
		'.jump { fill: #cc0000; } .leader { stroke: #cc0000; stroke-width: 0.8; } .gap { fill: #888888; fill-opacity: 0.35; } '
		'.box { fill: #fff8e1; stroke: #b58900; stroke-width: 1; }'
		ELSE '.rule { stroke: #888888; stroke-width: 1; }' END
		|| '</style>',
		format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', f.width, height),
		'<g id="header">' || (SELECT string_agg(E'\n' || evcharge.chart_text(f.px0, 26 + 20 * (h.i - 1), NULL, CASE WHEN h.i = 1 THEN 'title' END, h.l), '' ORDER BY h.i)
		                      FROM unnest(f.header) WITH ORDINALITY h(l, i)) || E'\n</g>',
		regexp_replace(body, '><', E'>\n<', 'g'),
		'</svg>'], E'\n') || E'\n';
END;
COMMENT ON FUNCTION evcharge.chart_document(evcharge.chart_frame, text, int) IS
	'step 10 of a chart: the SVG 1.1 document around the body: declaration, root with width, height and viewBox, title, description, the inline style sheet with a colour for every class shown, a white background and <g id="header"> with the header lines';

-- The evidence as a chart for support: an SVG 1.1 document with no
-- external reference and no script.  Energy measured (Wh, left axis) and
-- power (kW, right axis) over the station's wall-clock time, the tariff
-- classes in force as background bands, the pile's claim beside the
-- measured curve, the start, end of charging and unplug as dashed lines,
-- meter jumps and silences while charging marked, labels placed off the
-- curves, and the bill's anomalies with their causes in a box below.
-- Every number is written with fixed decimals and nothing depends on the
-- time of the call, so the same data always gives the same document.

-- The same charge as a receipt the driver can be sent, in the driver's
-- language (zh, the default, or en): what was delivered when (the energy
-- curve as billed, over the tariff bands named in the driver's words), at
-- which prices, the fees and the total in yuan, and whether it is paid.
-- No anomaly code, no heartbeat, no meter jump: those are support's.
CREATE FUNCTION evcharge.driver_chart(p_order_no text, p_lang text DEFAULT 'zh') RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f evcharge.chart_frame;
	body text;
	taken float8[] := '{}';
	step record;
	below record;
BEGIN
	IF p_lang NOT IN ('zh', 'en') THEN
		RAISE EXCEPTION 'language "%" is not one the driver''s chart is written in', p_lang
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'The driver''s chart is written in Chinese (zh) and English (en).',
			      HINT = format('Use driver_chart(%L) for Chinese or driver_chart(%L, ''en'') for English.', p_order_no, p_order_no);
	END IF;
	f := evcharge.chart_load(p_order_no, 'driver', p_lang);
	body := evcharge.chart_bands(f) || evcharge.chart_axes(f) || evcharge.chart_curves(f);
	IF coalesce(cardinality(f.ev_ts), 0) = 0 THEN
		body := body || evcharge.chart_text((f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', NULL,
		                                    evcharge.chart_word(p_lang, 'no_heartbeats'));
		taken := evcharge.chart_text_box(evcharge.chart_word(p_lang, 'no_heartbeats'), (f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', 12);
	END IF;
	step := evcharge.chart_moments(f, taken);
	body := body || step.svg;
	step := evcharge.chart_band_labels(f, step.taken);
	body := body || step.svg;
	below := evcharge.chart_legend(f, f.py1 + 62);
	body := body || below.svg;
	below := evcharge.chart_receipt(f, below.bottom + 30);
	body := body || below.svg;
	RETURN evcharge.chart_document(f, body, ceil(below.bottom + 16)::int);
END $$;
COMMENT ON FUNCTION evcharge.driver_chart(text, text) IS
	'the charge as a receipt for the driver, a self-contained SVG 1.1 document in the driver''s language (zh, default, or en): the energy delivered as billed over the station''s local time and its tariff bands named, a line per class with its times, kWh and prices, the fees and total in yuan and whether it is paid; no codes or internal words; 22023 for another language';

-- == issue 16 item 9: daily_report of yesterday ==
-- The report of yesterday: the day before today in the operator's books
-- time zone (finance_policy.tz), what finance reads each morning.  The day
-- is named only here; a NULL day given to the three-argument form is still
-- an error, so a caller that lost its day does not get yesterday's report.
-- PL/pgSQL, not SQL: it depends on the three-argument form's columns only
-- when it runs, so that form can be redefined on its own.
CREATE FUNCTION evcharge.daily_report(operator_id bigint)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric, bill_refunds numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
	RETURN QUERY SELECT * FROM evcharge.daily_report(daily_report.operator_id,
		(now() AT TIME ZONE evcharge.books_tz(daily_report.operator_id))::date - 1);
END $$;
COMMENT ON FUNCTION evcharge.daily_report(bigint) IS
	'yesterday''s daily_report: the day before today in the operator''s books time zone (finance_policy.tz); P0002 for an unknown operator';

-- == issue 16 item 3: refund fees by band, per operator ==
-- Refunds.  What a refund costs is by band: finance's rule for a bank
-- transfer is 6 yuan under 10,000 yuan and 12 yuan from 10,000 to 100,000
-- yuan, plus the payment provider's 0.6 %, which is all a provider refund
-- costs.  Each operator has its own bands (refund_fee_bands), made with the
-- defaults below when the operator is registered; a refund beyond the last
-- band of its method is refused.

-- The defaults, the one place their figures are written: a new operator's
-- rows, and refund_fee(amount, method) without an operator.
CREATE FUNCTION evcharge.default_refund_fee_bands()
RETURNS TABLE (method text, up_to numeric[], fixed_fee numeric[], rate numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'bank', '{9999.99,100000.00}'::numeric[], '{6.00,12.00}'::numeric[], 0.006
	UNION ALL
	SELECT 'provider', '{999999999999.99}'::numeric[], '{0.00}'::numeric[], 0.006;
END;
COMMENT ON FUNCTION evcharge.default_refund_fee_bands() IS
	'the refund fee bands a new operator gets (finance''s rule): bank 6 yuan up to 9,999.99 yuan and 12 yuan up to 100,000.00, plus 0.6 %; provider 0.6 % with no band limit short of a trillion';

-- Whether a method's bands are well formed: one limit and one fixed fee per
-- band, limits in yuan and fen rising from above 0, fees of 0 or more.
CREATE FUNCTION evcharge.refund_fee_bands_valid(p_up_to numeric[], p_fixed_fee numeric[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(cardinality(p_up_to) >= 1 AND cardinality(p_up_to) = cardinality(p_fixed_fee)
	       AND array_ndims(p_up_to) = 1 AND array_ndims(p_fixed_fee) = 1
	       AND NOT EXISTS (
	           SELECT 1 FROM unnest(p_up_to, p_fixed_fee) WITH ORDINALITY AS b(up_to, fixed_fee, n)
	           WHERE b.up_to IS NULL OR b.fixed_fee IS NULL OR b.up_to IN ('NaN', 'Infinity')
	              OR b.fixed_fee IN ('NaN', 'Infinity') OR b.fixed_fee < 0 OR b.up_to <> trunc(b.up_to, 2)
	              OR b.up_to > 999999999999.99
	              OR b.up_to <= coalesce(p_up_to[b.n - 1], 0)), false);
END;
COMMENT ON FUNCTION evcharge.refund_fee_bands_valid(numeric[], numeric[]) IS
	'true when a method''s refund fee bands are well formed: as many fixed fees as limits (at least one), limits in yuan and fen rising from above 0 and below a trillion, fixed fees finite and 0 or more; the check of refund_fee_bands';

CREATE TABLE evcharge.refund_fee_bands (
	operator_id bigint NOT NULL REFERENCES evcharge.operator ON DELETE CASCADE,
	method text NOT NULL CHECK (method IN ('bank', 'provider')),
	up_to numeric(14, 2)[] NOT NULL,
	fixed_fee numeric(10, 2)[] NOT NULL,
	rate numeric(6, 5) NOT NULL CHECK (rate >= 0 AND rate < 1),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (operator_id, method),
	CONSTRAINT refund_fee_bands_valid CHECK (evcharge.refund_fee_bands_valid(up_to, fixed_fee))
);
COMMENT ON TABLE evcharge.refund_fee_bands IS
	'What a refund costs, per operator and method: bands of amounts, each with its fixed fee, plus a rate of the amount, truncated to the fen; a refund above the last band is refused; the defaults (default_refund_fee_bands) are made for every new operator';
COMMENT ON COLUMN evcharge.refund_fee_bands.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.refund_fee_bands.method IS 'bank or provider';
COMMENT ON COLUMN evcharge.refund_fee_bands.up_to IS
	'the bands'' upper limits, yuan, rising: band n holds the amounts above limit n-1 (from 0 for the first) up to limit n included; a refund above the last is refused';
COMMENT ON COLUMN evcharge.refund_fee_bands.fixed_fee IS 'the fixed fee of each band, yuan (bank: {6.00,12.00})';
COMMENT ON COLUMN evcharge.refund_fee_bands.rate IS 'the part of the amount added to the fixed fee (0.006: the provider''s 0.6 %)';
COMMENT ON COLUMN evcharge.refund_fee_bands.updated_at IS 'last change';
COMMENT ON CONSTRAINT refund_fee_bands_valid ON evcharge.refund_fee_bands IS
	'the bands are well formed (refund_fee_bands_valid): a fixed fee per limit, limits rising';

CREATE FUNCTION evcharge.operator_refund_fee_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	INSERT INTO evcharge.refund_fee_bands (operator_id, method, up_to, fixed_fee, rate)
	SELECT n.operator_id, d.method, d.up_to, d.fixed_fee, d.rate
	FROM new_rows n CROSS JOIN evcharge.default_refund_fee_bands() d
	ON CONFLICT (operator_id, method) DO NOTHING;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.operator_refund_fee_default() IS
	'trigger: every new operator gets refund_fee_bands rows with the defaults (default_refund_fee_bands)';

CREATE TRIGGER operator_refund_fee_default AFTER INSERT ON evcharge.operator
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.operator_refund_fee_default();
COMMENT ON TRIGGER operator_refund_fee_default ON evcharge.operator IS 'every new operator gets its refund fee bands with the defaults';
-- The operators registered before 0.3.0 get the defaults too.
INSERT INTO evcharge.refund_fee_bands (operator_id, method, up_to, fixed_fee, rate)
SELECT o.operator_id, d.method, d.up_to, d.fixed_fee, d.rate
FROM evcharge.operator o CROSS JOIN evcharge.default_refund_fee_bands() d
ORDER BY o.operator_id, d.method;

-- As policy_replaces_default (anomaly.sql), per operator and method: a
-- restore brings the dumped rows after the operators made theirs, and each
-- replaces the default row of its own method only, so that two methods
-- restored in one transaction (pg_restore --single-transaction, where the
-- operator and both rows share one xmin) do not replace each other.
CREATE FUNCTION evcharge.refund_fee_bands_replace_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	DELETE FROM evcharge.refund_fee_bands b USING evcharge.operator o
	WHERE b.operator_id = NEW.operator_id AND b.method = NEW.method
	  AND o.operator_id = b.operator_id AND b.xmin = o.xmin;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.refund_fee_bands_replace_default() IS
	'trigger on refund_fee_bands: a row inserted for an operator and method replaces the default row of that method made with the operator if nobody changed it since (a restore brings the dumped rows after the operators)';

CREATE TRIGGER refund_fee_bands_replace_default BEFORE INSERT ON evcharge.refund_fee_bands
	FOR EACH ROW EXECUTE FUNCTION evcharge.refund_fee_bands_replace_default();
COMMENT ON TRIGGER refund_fee_bands_replace_default ON evcharge.refund_fee_bands IS
	'an inserted row replaces the operator''s default row of its method if that is untouched: pg_restore loads the dumped bands after the operators made theirs';

-- The fee of an amount under one method's bands: the band's fixed fee plus
-- the rate of the amount, truncated to the fen; above the last band, an
-- error that gives the limit.  The one rule both refund_fee()s apply.
CREATE FUNCTION evcharge.refund_fee_in_bands(p_amount numeric, p_method text, p_up_to numeric[],
	p_fixed_fee numeric[], p_rate numeric, p_whose text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	FOR n IN 1 .. coalesce(cardinality(p_up_to), 0) LOOP
		IF p_amount <= p_up_to[n] THEN
			RETURN trunc(p_fixed_fee[n] + p_amount * p_rate, 2);
		END IF;
	END LOOP;
	RAISE EXCEPTION 'a % refund of % yuan is above the last fee band', p_method, p_amount
		USING ERRCODE = 'invalid_parameter_value',
		      DETAIL = format('%s end at %s yuan (up_to %s).', p_whose,
		                      coalesce(p_up_to[cardinality(p_up_to)]::text, 'none'), coalesce(p_up_to::text, 'NULL')),
		      HINT = format('Refund at most %s yuan at a time by %s (request_refund takes an amount), or another method.',
		                    coalesce(p_up_to[cardinality(p_up_to)]::text, '0'), p_method);
END $$;
COMMENT ON FUNCTION evcharge.refund_fee_in_bands(numeric, text, numeric[], numeric[], numeric, text) IS
	'Internal: the fee of an amount under one method''s bands (the fixed fee of the first band whose limit the amount does not exceed, plus the rate of the amount, truncated to the fen); 22023 above the last band, naming its limit';

CREATE OR REPLACE FUNCTION evcharge.unknown_refund_method(method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'refund method "%" is not known', coalesce(method, 'NULL')
		USING ERRCODE = 'invalid_parameter_value',
		      HINT = 'Use bank (6 or 12 yuan by band + 0.6 %) or provider (0.6 %); evcharge.refund_fee_bands has each operator''s fees.';
END $$;
COMMENT ON FUNCTION evcharge.unknown_refund_method(text) IS 'raises the error for a refund method other than bank or provider';

-- Checks a refund's amount and method for refund_fee().
CREATE FUNCTION evcharge.check_refund(p_amount numeric, p_method text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_amount IS NULL OR p_amount IN ('NaN', 'Infinity', '-Infinity') OR p_amount < 0 OR p_amount > 999999999999.99 THEN
		RAISE EXCEPTION 'refund amount % is not possible', coalesce(p_amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A refund is a finite amount of 0 or more yuan, below a trillion.',
			      HINT = 'A refund is 0 or more yuan, e.g. 1000.00.';
	END IF;
	IF p_method IS NULL OR p_method NOT IN ('bank', 'provider') THEN
		PERFORM evcharge.unknown_refund_method(p_method);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_refund(numeric, text) IS
	'Internal: raises 22023 for a refund amount that is negative, NaN, infinite or beyond a trillion, or a method other than bank or provider (unknown_refund_method)';

-- The fee under the default bands, what a new operator gets.
CREATE OR REPLACE FUNCTION evcharge.refund_fee(amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d record;
BEGIN
	PERFORM evcharge.check_refund(refund_fee.amount, refund_fee.method);
	SELECT * INTO d FROM evcharge.default_refund_fee_bands() x WHERE x.method = refund_fee.method;
	RETURN evcharge.refund_fee_in_bands(refund_fee.amount, refund_fee.method, d.up_to, d.fixed_fee, d.rate,
		format('The default %s bands', refund_fee.method));
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(numeric, text) IS
	'the fee of a refund under the default bands (default_refund_fee_bands): bank 6 yuan up to 9,999.99 and 12 yuan up to 100,000.00, plus 0.6 %; provider 0.6 %; truncated to the fen (1000 by bank: 12.00; 20000 by bank: 132.00); 22023 for an amount that is negative, NaN or infinite, an unknown method or an amount above the last band';

-- The fee under an operator's own bands: what its refunds cost.
CREATE FUNCTION evcharge.refund_fee(operator_id bigint, amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.refund_fee_bands;
BEGIN
	PERFORM evcharge.check_refund(refund_fee.amount, refund_fee.method);
	SELECT * INTO b FROM evcharge.refund_fee_bands f
	WHERE f.operator_id = refund_fee.operator_id AND f.method = refund_fee.method;
	IF NOT FOUND THEN
		IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = refund_fee.operator_id) THEN
			RAISE EXCEPTION 'operator % is not registered', coalesce(refund_fee.operator_id::text, 'NULL')
				USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
		END IF;
		RAISE EXCEPTION 'operator % has no % refund fee bands', refund_fee.operator_id, refund_fee.method
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'Its row of refund_fee_bands for this method was deleted; no refund by it can be priced.',
			      HINT = 'Insert the bands again, e.g. the defaults: SELECT * FROM evcharge.default_refund_fee_bands().';
	END IF;
	RETURN evcharge.refund_fee_in_bands(refund_fee.amount, refund_fee.method, b.up_to, b.fixed_fee, b.rate,
		format('Operator %s''s %s bands (refund_fee_bands)', refund_fee.operator_id, refund_fee.method));
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(bigint, numeric, text) IS
	'the fee of a refund under the operator''s refund_fee_bands (the band''s fixed fee plus the rate of the amount, truncated to the fen; with the defaults 20000 by bank is 132.00); 22023 for an amount that is negative, NaN or infinite, an unknown method or an amount above the last band (its limit in the detail); P0002 for an operator not registered or without bands for the method';

COMMENT ON COLUMN evcharge.refund.fee IS 'refund_fee(operator, amount, method), by the operator''s bands: what the member pays for it';
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund_fee_bands', '');

-- == issue 16 item 4: refunds of a bill, and partial refunds of a wallet ==
ALTER TABLE evcharge.ledger_txn DROP CONSTRAINT ledger_txn_kind_check,
	ADD CONSTRAINT ledger_txn_kind_check CHECK (kind IN ('top_up', 'manual_credit', 'bill', 'bill_adjustment', 'refund_request',
		'refund_approve', 'refund_reject', 'partner_payment', 'bill_refund'));
COMMENT ON COLUMN evcharge.ledger_txn.kind IS 'top_up, manual_credit, bill, bill_adjustment, refund_request, refund_approve, refund_reject, partner_payment, bill_refund';
COMMENT ON COLUMN evcharge.ledger_txn.order_no IS 'the bill, for bill, bill_adjustment and bill_refund';
COMMENT ON COLUMN evcharge.ledger_txn.note IS 'why, for manual credits, adjustments and refunds of bills';
ALTER TABLE evcharge.bill_revision DROP CONSTRAINT bill_revision_method_check,
	ADD CONSTRAINT bill_revision_method_check CHECK (method IN ('recompute', 'pile', 'platform', 'manual', 'pile_record', 'refund'));
COMMENT ON COLUMN evcharge.bill_revision.method IS 'recompute, pile, platform, manual (repair_bill), pile_record (a late pile record completed a bill made from heartbeats), or refund (refund_bill gave part or all of it back: bill_refund_id)';
-- Refunds of one bill ("refund everything charged for this order"): money
-- given back to whoever paid it, by support, with the reason.  Each refund
-- reverses part of the bill's revenue lines (bill_refund's three parts), so
-- what is left to refund on a bill, line by line, is what it charged less
-- what its refunds gave back.
CREATE TABLE evcharge.bill_refund (
	bill_refund_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	request_id text NOT NULL UNIQUE,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	amount numeric(12, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	energy_fee numeric(12, 2) NOT NULL CHECK (energy_fee >= 0 AND energy_fee <> 'NaN'),
	service_fee numeric(12, 2) NOT NULL CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	occupancy_fee numeric(12, 2) NOT NULL CHECK (occupancy_fee >= 0 AND occupancy_fee <> 'NaN'),
	reason text NOT NULL CHECK (btrim(reason) <> ''),
	txn_id bigint NOT NULL REFERENCES evcharge.ledger_txn,
	refunded_by text NOT NULL DEFAULT current_user,
	refunded_at timestamptz NOT NULL DEFAULT now(),
	CHECK (amount = energy_fee + service_fee + occupancy_fee)
);
CREATE INDEX bill_refund_order_idx ON evcharge.bill_refund (order_no);
COMMENT ON INDEX evcharge.bill_refund_order_idx IS 'the refunds of a bill';
COMMENT ON TABLE evcharge.bill_refund IS
	'Refunds of single bills (refund_bill): what was given back to the payer, taken from which revenue lines, why, by whom; at most what the bill charged; never changed';
COMMENT ON COLUMN evcharge.bill_refund.bill_refund_id IS 'refund number';
COMMENT ON COLUMN evcharge.bill_refund.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.bill_refund.request_id IS 'the support request''s own id (check_key): the key of its ledger transaction, so a request is refunded once';
COMMENT ON COLUMN evcharge.bill_refund.account_id IS 'the account credited: whoever pays the bill (bill_parties): the member''s or department''s wallet, the partner''s deposit or receivable';
COMMENT ON COLUMN evcharge.bill_refund.amount IS 'yuan given back';
COMMENT ON COLUMN evcharge.bill_refund.energy_fee IS 'the part taken back from electricity revenue, yuan';
COMMENT ON COLUMN evcharge.bill_refund.service_fee IS 'the part taken back from service revenue (net of the coupon), yuan';
COMMENT ON COLUMN evcharge.bill_refund.occupancy_fee IS 'the part taken back from occupancy revenue, yuan';
COMMENT ON COLUMN evcharge.bill_refund.reason IS 'why, as support gave it';
COMMENT ON COLUMN evcharge.bill_refund.txn_id IS 'its ledger transaction (kind bill_refund)';
COMMENT ON COLUMN evcharge.bill_refund.refunded_by IS 'database user';
COMMENT ON COLUMN evcharge.bill_refund.refunded_at IS 'when';
CREATE TRIGGER bill_refund_immutable BEFORE UPDATE OR DELETE ON evcharge.bill_refund
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER bill_refund_immutable ON evcharge.bill_refund IS 'refunds of bills cannot be changed or deleted';

-- The bill's audit trail points at its refunds: a refund is a revision of
-- the bill (method refund) that names it.
ALTER TABLE evcharge.bill_revision ADD COLUMN bill_refund_id bigint REFERENCES evcharge.bill_refund;
COMMENT ON COLUMN evcharge.bill_revision.bill_refund_id IS 'for method refund: the refund this revision records (bill_refund)';

-- What a bill's refunds took back so far, line by line.
CREATE FUNCTION evcharge.bill_refunded(p_order_no text, OUT energy_fee numeric, OUT service_fee numeric,
	OUT occupancy_fee numeric, OUT total numeric, OUT refunds bigint)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(sum(r.energy_fee), 0), coalesce(sum(r.service_fee), 0), coalesce(sum(r.occupancy_fee), 0),
	       coalesce(sum(r.amount), 0), count(*)
	FROM evcharge.bill_refund r WHERE r.order_no = p_order_no;
END;
COMMENT ON FUNCTION evcharge.bill_refunded(text) IS
	'what the refunds of a bill gave back so far: per revenue line (electricity, service net of the coupon, occupancy), in all, and how many refunds';

-- A settled bill that a repair changed: the difference moves, as its own
-- transaction.  What a refund of the bill gave back is not given back
-- again: each revenue line moves as if it were at least what its refunds
-- took from it, so a repair after a refund never returns more than the
-- bill charged.
CREATE OR REPLACE FUNCTION evcharge.adjust_settled_bill(p_order_no text, old evcharge.bill, nb evcharge.bill, p_reason text)
RETURNS evcharge.ledger_txn
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l record;
	p record;
	rf record;
BEGIN
	rf := evcharge.bill_refunded(p_order_no);
	IF rf.refunds = 0 THEN
		l := evcharge.bill_lines(p_order_no, nb.energy_fee - old.energy_fee, nb.service_fee - old.service_fee,
			nb.occupancy_fee - old.occupancy_fee, nb.discount - old.discount);
	ELSE
		l := evcharge.bill_lines(p_order_no,
			greatest(nb.energy_fee, rf.energy_fee) - greatest(old.energy_fee, rf.energy_fee),
			greatest(nb.service_fee - nb.discount, rf.service_fee) - greatest(old.service_fee - old.discount, rf.service_fee),
			greatest(nb.occupancy_fee, rf.occupancy_fee) - greatest(old.occupancy_fee, rf.occupancy_fee), 0);
	END IF;
	IF (SELECT bool_and(x = 0) FROM unnest(l.amounts) x) THEN
		RETURN NULL;
	END IF;
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_adjustment', p_order_no || '#' || nb.revision,
		l.accounts, l.amounts, p_order_no, p_reason, jsonb_build_object('old_total', old.total, 'new_total', nb.total,
		'energy_wh_delta', nb.energy_wh - old.energy_wh));
	RETURN p.txn;
END $$;
COMMENT ON FUNCTION evcharge.adjust_settled_bill(text, evcharge.bill, evcharge.bill, text) IS
	'posts the difference between a settled bill and its repaired version (payer and revenue), once per revision; a revenue line a refund of the bill took from moves as if it were at least what the refund took (bill_refunded), so nothing is given back twice';

COMMENT ON TABLE evcharge.refund IS
	'A wallet refund: the amount asked for (at most the refundable balance; all of it when none is given) is frozen (moved to refunds payable) at request, paid out less the fee on approval, returned on rejection; one open request per wallet';
COMMENT ON COLUMN evcharge.refund.amount IS 'frozen amount, yuan: the whole balance, or the part the member asked for';
COMMENT ON COLUMN evcharge.finance_policy.void_coupons_on_refund IS 'whether a request to refund a member''s whole balance voids the member''s unused coupons';
-- request_refund takes an amount now: a new signature.
DROP FUNCTION evcharge.request_refund(bigint, text);
CREATE FUNCTION evcharge.request_refund(account_id bigint, method text, amount numeric DEFAULT NULL)
RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r evcharge.refund;
	fee numeric;
	voided int := 0;
	orders text[];
	accounts bigint[];
	o text;
	asked numeric;
BEGIN
	w := evcharge.wallet_account(request_refund.account_id);
	fee := evcharge.refund_fee(w.operator_id, 0, request_refund.method);	-- checks the method
	-- A part of the balance: a positive amount in yuan and fen.
	IF request_refund.amount IS NOT NULL THEN
		PERFORM evcharge.check_amount(request_refund.amount, 'a refund');
	END IF;
	-- The balance frozen is the balance after the bills the wallet owes are
	-- settled, with the wallet locked.  Locks in the order of every money
	-- function (docs/money.md, "Locks and deadlocks"): the final bills it
	-- pays first (waiting for a settlement or repair of one of them to end),
	-- then the coupons it voids, then all the accounts at once: the wallet,
	-- refunds payable and the bills' revenue.
	SELECT coalesce(array_agg(x.order_no ORDER BY x.order_no), '{}') INTO orders
	FROM (SELECT b.order_no FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
	      WHERE b.state = 'final' AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)
	      ORDER BY b.order_no FOR UPDATE OF b) x;
	IF w.kind = 'member_wallet' AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		PERFORM 1 FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL ORDER BY c.coupon_id FOR UPDATE;
	END IF;
	accounts := ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')];
	FOREACH o IN ARRAY orders LOOP
		accounts := accounts || (evcharge.bill_lines(o, 0, 0, 0, 0)).accounts;
	END LOOP;
	PERFORM evcharge.lock_accounts(accounts);
	SELECT * INTO w FROM evcharge.account a WHERE a.account_id = w.account_id;
	-- Bills still held, or a charge running, would be owed later: no refund
	-- until they are done.
	IF EXISTS (SELECT 1 FROM evcharge.charge_session cs WHERE cs.state IN ('pending', 'charging', 'occupied')
	           AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)) THEN
		RAISE EXCEPTION 'account % pays for a charge in progress', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Request the refund after the charge has ended.';
	END IF;
	IF EXISTS (SELECT 1 FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
	           WHERE b.state = 'held' AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)) THEN
		RAISE EXCEPTION 'account % pays for a bill held for repair', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Repair the held bill first (evcharge.repair_bill); its amount will be charged.';
	END IF;
	FOREACH o IN ARRAY orders LOOP
		PERFORM evcharge.settle_bill(o);
	END LOOP;
	SELECT * INTO w FROM evcharge.account a WHERE a.account_id = w.account_id;
	IF EXISTS (SELECT 1 FROM evcharge.refund f WHERE f.account_id = w.account_id AND f.state = 'requested') THEN
		RAISE EXCEPTION 'account % already has a refund waiting for approval', w.account_id
			USING ERRCODE = 'unique_violation', HINT = 'Approve or reject it first (evcharge.refund).';
	END IF;
	IF w.balance <= 0 THEN
		RAISE EXCEPTION 'account % has nothing to refund', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its balance is %s yuan; debts reduce what is refundable.', w.balance),
			      HINT = 'Only a positive balance can be refunded.';
	END IF;
	IF request_refund.amount > w.balance THEN
		RAISE EXCEPTION 'a refund of % yuan is more than account % holds', request_refund.amount, w.account_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Its refundable balance is %s yuan, after the bills it owes (debts reduce it).', w.balance),
			      HINT = format('Ask for at most %s yuan, or give no amount to refund the whole balance.', w.balance);
	END IF;
	asked := coalesce(request_refund.amount, w.balance);
	fee := evcharge.refund_fee(w.operator_id, asked, request_refund.method);
	IF fee >= asked THEN
		RAISE EXCEPTION 'a % refund of % yuan would cost more than it returns', request_refund.method, asked
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The fee would be %s yuan.', fee),
			      HINT = 'A provider refund costs 0.6 % only.';
	END IF;
	INSERT INTO evcharge.refund (account_id, method, amount, fee)
	VALUES (w.account_id, request_refund.method, asked, fee) RETURNING * INTO r;
	PERFORM evcharge.post_txn(w.operator_id, 'refund_request', r.refund_id::text,
		ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')],
		ARRAY[r.amount, -r.amount], NULL, NULL, jsonb_build_object('refund_id', r.refund_id));
	-- Coupons go with the whole balance only: a member who keeps part of
	-- it keeps charging.
	IF w.kind = 'member_wallet' AND asked = w.balance AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		DELETE FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL;
		GET DIAGNOSTICS voided = ROW_COUNT;
		UPDATE evcharge.refund f SET coupons_voided = voided WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	END IF;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.request_refund(bigint, text, numeric) IS
	'requests a refund by bank or provider of a wallet''s whole positive balance, or of the amount given (positive, in yuan and fen, at most the balance: else 22023): the amount is frozen at once (moved to refunds payable), the fee fixed by the operator''s bands (refund_fee; an amount above the last band is 22023); a refund of the whole balance voids unused coupons when the operator''s policy says so';

-- Support refunds one disputed bill: a credit to whoever paid it, at most
-- what the bill charged less what its refunds already gave back, once per
-- request id.  Without an amount, everything left.  A part is taken from
-- the occupancy fee first, then the service fee, then the electricity fee
-- (the disputes support settles by hand are mostly about occupancy).  The
-- bill is locked first, then its accounts: the order of every money
-- function (docs/money.md, "Locks and deadlocks").
CREATE FUNCTION evcharge.refund_bill(order_no text, reason text, request_id text, amount numeric DEFAULT NULL,
	OUT bill_refund_id bigint, OUT account_id bigint, OUT refunded numeric, OUT refunded_in_all numeric,
	OUT refundable numeric, OUT revision int, OUT txn_id bigint, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := refund_bill.order_no;
	b evcharge.bill;
	prev evcharge.bill_refund;
	rf record;
	left_e numeric;
	left_s numeric;
	left_o numeric;
	asked numeric;
	part_o numeric;
	part_s numeric;
	part_e numeric;
	l record;
	p record;
	br evcharge.bill_refund;
BEGIN
	PERFORM evcharge.check_key(refund_bill.request_id, 'request id');
	IF refund_bill.reason IS NULL OR btrim(refund_bill.reason) = '' THEN
		RAISE EXCEPTION 'a refund of bill % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver will read it: ''charged after the gun was unplugged, ticket 4471''.';
	END IF;
	IF refund_bill.amount IS NOT NULL THEN
		PERFORM evcharge.check_amount(refund_bill.amount, 'a refund of a bill');
	END IF;
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = v_order FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', coalesce(v_order, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	-- The same request again: its first answer.
	SELECT * INTO prev FROM evcharge.bill_refund r WHERE r.request_id = refund_bill.request_id;
	IF FOUND THEN
		IF prev.order_no <> v_order OR (refund_bill.amount IS NOT NULL AND refund_bill.amount <> prev.amount) THEN
			RAISE EXCEPTION 'request % was already applied, to bill % for % yuan', to_json(refund_bill.request_id)::text,
				prev.order_no, prev.amount
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('This call refunds bill %s%s.', v_order,
				                      CASE WHEN refund_bill.amount IS NULL THEN '' ELSE format(' for %s yuan', refund_bill.amount) END),
				      HINT = 'A request id is applied once; give a new request its own id.';
		END IF;
		rf := evcharge.bill_refunded(v_order);
		bill_refund_id := prev.bill_refund_id;
		account_id := prev.account_id;
		refunded := prev.amount;
		refunded_in_all := rf.total;
		refundable := greatest(b.energy_fee, rf.energy_fee) - rf.energy_fee
			+ greatest(b.service_fee - b.discount, rf.service_fee) - rf.service_fee
			+ greatest(b.occupancy_fee, rf.occupancy_fee) - rf.occupancy_fee;
		SELECT r.revision INTO revision FROM evcharge.bill_revision r WHERE r.bill_refund_id = prev.bill_refund_id;
		txn_id := prev.txn_id;
		replayed := true;
		RETURN;
	END IF;
	IF b.state <> 'settled' THEN
		RAISE EXCEPTION 'bill % has not been charged: it is %', v_order, b.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE b.state WHEN 'held' THEN format('A held bill is not charged until it is repaired (anomalies %s).', b.anomalies)
			                    ELSE 'A final bill is charged by the settlement job (settle_bills).' END,
			      HINT = 'Change what it will charge with evcharge.repair_bill(); a refund gives back what was charged.';
	END IF;
	-- What is left on each line: what the bill charges less what was given back.
	rf := evcharge.bill_refunded(v_order);
	left_e := greatest(b.energy_fee, rf.energy_fee) - rf.energy_fee;
	left_s := greatest(b.service_fee - b.discount, rf.service_fee) - rf.service_fee;
	left_o := greatest(b.occupancy_fee, rf.occupancy_fee) - rf.occupancy_fee;
	IF left_e + left_s + left_o = 0 THEN
		RAISE EXCEPTION 'bill % has nothing left to refund', v_order
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('It charged %s yuan; its %s refunds gave back %s yuan.', b.total, rf.refunds, rf.total),
			      HINT = 'A bill is refunded at most what it charged; a goodwill payment beyond it is a manual_credit.';
	END IF;
	asked := coalesce(refund_bill.amount, left_e + left_s + left_o);
	IF asked > left_e + left_s + left_o THEN
		RAISE EXCEPTION 'a refund of % yuan is more than bill % has left to refund', asked, v_order
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It charged %s yuan; %s yuan were refunded already; at most %s yuan are left.',
			                      b.total, rf.total, left_e + left_s + left_o),
			      HINT = 'Give at most what is left, or no amount to refund all of it.';
	END IF;
	part_o := least(asked, left_o);
	part_s := least(asked - part_o, left_s);
	part_e := asked - part_o - part_s;
	-- The payer credited, the revenue lines debited: the bill's lines reversed.
	l := evcharge.bill_lines(v_order, -part_e, -part_s, -part_o, 0);
	PERFORM evcharge.lock_accounts(l.accounts);
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_refund', refund_bill.request_id, l.accounts, l.amounts,
		v_order, refund_bill.reason, jsonb_build_object('order_no', v_order, 'amount', asked, 'account_id', l.accounts[1]));
	IF p.replayed THEN
		-- The same request id posted meanwhile for another bill.
		RAISE EXCEPTION 'request % was already applied, to bill % for % yuan', to_json(refund_bill.request_id)::text,
			(p.txn).result->>'order_no', (p.txn).result->>'amount'
			USING ERRCODE = 'unique_violation', HINT = 'A request id is applied once; give a new request its own id.';
	END IF;
	INSERT INTO evcharge.bill_refund (order_no, request_id, account_id, amount, energy_fee, service_fee, occupancy_fee,
		reason, txn_id)
	VALUES (v_order, refund_bill.request_id, l.accounts[1], asked, part_e, part_s, part_o, refund_bill.reason,
		(p.txn).txn_id)
	RETURNING * INTO br;
	-- The bill's audit trail records it as a revision that names the refund.
	UPDATE evcharge.bill bl SET revision = bl.revision + 1, updated_at = now()
	WHERE bl.order_no = v_order RETURNING bl.revision INTO revision;
	INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after, bill_refund_id)
	SELECT v_order, refund_bill.revision, 'refund', refund_bill.reason, to_jsonb(b), to_jsonb(bl), br.bill_refund_id
	FROM evcharge.bill bl WHERE bl.order_no = v_order;
	PERFORM evcharge.check_alert(l.accounts[1]);
	bill_refund_id := br.bill_refund_id;
	account_id := br.account_id;
	refunded := asked;
	refunded_in_all := rf.total + asked;
	refundable := left_e + left_s + left_o - asked;
	txn_id := (p.txn).txn_id;
	replayed := false;
END $$;
COMMENT ON FUNCTION evcharge.refund_bill(text, text, text, numeric) IS
	'refunds a settled bill to whoever paid it (bill_parties: member or department wallet, partner deposit or receivable) with the reason: the amount given, or everything left, at most what the bill charged less its earlier refunds (22023 beyond it, 55000 when nothing is left or the bill is not settled), taken from occupancy, then service, then electricity revenue; once per request id (a repeat returns the first answer with replayed = true; the same id for another bill or amount is 23505); recorded in bill_refund and as a bill revision (method refund) naming it';

-- A bill's life for support and the driver: made, every revision (repairs,
-- a late pile record, refunds), charged, refunded.  The evidence of a
-- disputed bill beside its heartbeat curve (session_evidence).
CREATE FUNCTION evcharge.bill_history(p_order_no text)
RETURNS TABLE (at timestamptz, event text, revision int, total numeric, amount numeric, refunded numeric,
	reason text, by_whom text, bill_refund_id bigint, txn_id bigint)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
BEGIN
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	RETURN QUERY
	SELECT x.at, x.event, x.revision, x.total, x.amount,
	       sum(coalesce(x.refund, 0)) OVER (ORDER BY x.at, x.seq, x.revision ROWS UNBOUNDED PRECEDING),
	       x.reason, x.by_whom, x.bill_refund_id, x.txn_id
	FROM (
		SELECT b.finalised_at AS at, 1 AS seq, 'made'::text AS event, 0 AS revision,
		       coalesce((r0.before->>'total')::numeric, b.total) AS total,
		       NULL::numeric AS amount, NULL::numeric AS refund, NULL::text AS reason, NULL::text AS by_whom,
		       NULL::bigint AS bill_refund_id, NULL::bigint AS txn_id
		FROM (SELECT 1) one
		LEFT JOIN evcharge.bill_revision r0 ON r0.order_no = b.order_no AND r0.revision = 1
		WHERE NOT EXISTS (SELECT 1 FROM evcharge.bill_revision r1
		                  WHERE r1.order_no = b.order_no AND r1.revision = 1 AND r1.before IS NULL)
		UNION ALL
		SELECT r.revised_at, 2, CASE WHEN r.method = 'refund' THEN 'refunded' ELSE 'revised: ' || r.method END,
		       r.revision, (r.after->>'total')::numeric,
		       CASE WHEN r.method = 'refund' THEN -f.amount ELSE (r.after->>'total')::numeric - coalesce((r.before->>'total')::numeric, 0) END,
		       f.amount, r.reason, r.revised_by, r.bill_refund_id, f.txn_id
		FROM evcharge.bill_revision r LEFT JOIN evcharge.bill_refund f ON f.bill_refund_id = r.bill_refund_id
		WHERE r.order_no = b.order_no
		UNION ALL
		SELECT t.created_at, 3, CASE t.kind WHEN 'bill' THEN 'charged' ELSE 'charged: adjustment' END,
		       NULL::int, CASE t.kind WHEN 'bill' THEN (t.result->>'total')::numeric ELSE (t.result->>'new_total')::numeric END,
		       (SELECT coalesce(-sum(le.amount), 0) FROM evcharge.ledger_entry le
		        JOIN evcharge.account a ON a.account_id = le.account_id
		        WHERE le.txn_id = t.txn_id AND a.kind LIKE 'revenue\_%'),
		       NULL::numeric, t.note, t.created_by, NULL::bigint, t.txn_id
		FROM evcharge.ledger_txn t
		WHERE t.order_no = b.order_no AND t.kind IN ('bill', 'bill_adjustment')
	) x
	ORDER BY x.at, x.seq, x.revision;
END $$;
COMMENT ON FUNCTION evcharge.bill_history(text) IS
	'the life of a bill, oldest first: made (revision 0), each revision (repairs, a late pile record, refunds: event refunded, naming the bill_refund), each time money moved for it (charged, adjustments), with the total after, the amount that moved, the refunds so far, the reason and who; the refunds of a bill in its evidence; P0002 for an order without a bill';

SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_refund', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_refund_bill_refund_id_seq', '');
ALTER TABLE evcharge.partner_month_statement ADD COLUMN refunds numeric(14, 2) NOT NULL DEFAULT 0;
COMMENT ON COLUMN evcharge.partner_month_statement.refunds IS 'the part of charges that refunds of the partner''s bills gave back (refund_bill), negative or 0, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.charges IS 'what the partner''s users were charged on this statement: bills, adjustments and refunds of bills, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.kind IS 'the transaction''s kind: bill, bill_adjustment, bill_refund, partner_payment, top_up, ...';
COMMENT ON COLUMN evcharge.partner_month_item.order_no IS 'the session, for bills, adjustments and refunds of bills';
COMMENT ON COLUMN evcharge.partner_month_item.dated IS 'the end of the session for bills and adjustments; the day received for payments; else (refunds of bills among them) when booked';
CREATE OR REPLACE FUNCTION evcharge.partner_statement(partner_id bigint, month date)
RETURNS evcharge.partner_month_statement
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
	st evcharge.partner_month_statement;
	m date := date_trunc('month', partner_statement.month)::date;
	tz text;
	p_start timestamptz;
	p_end timestamptz;
	later date;
	opening numeric;
BEGIN
	IF partner_statement.month IS NULL THEN
		RAISE EXCEPTION 'a partner statement needs a month'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give any day of the month, e.g. ''2026-10-01''.';
	END IF;
	PERFORM evcharge.check_time(partner_statement.month, 'partner_statement(month)', NULL);
	pa := evcharge.partner_row(partner_statement.partner_id);
	-- One booking at a time per partner: the second waits and returns the first's.
	PERFORM 1 FROM evcharge.partner p WHERE p.partner_id = pa.partner_id FOR UPDATE;
	SELECT * INTO st FROM evcharge.partner_month_statement s WHERE s.partner_id = pa.partner_id AND s.month = m;
	IF FOUND THEN
		RETURN st;
	END IF;
	tz := evcharge.books_tz(pa.operator_id);
	p_start := m::timestamp AT TIME ZONE tz;
	p_end := (m + interval '1 month')::timestamp AT TIME ZONE tz;
	IF p_end > now() THEN
		RAISE EXCEPTION 'the statement of % for % cannot be booked before the month is over', to_char(m, 'YYYY-MM'), pa.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The month ends at %s (%s).', to_char(p_end AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'), tz),
			      HINT = 'The evcharge-partner-statements job books last month''s statements on the 2nd.';
	END IF;
	SELECT max(s.month) INTO later FROM evcharge.partner_month_statement s
	WHERE s.partner_id = pa.partner_id AND s.month > m;
	IF later IS NOT NULL THEN
		RAISE EXCEPTION 'the statement of % for % cannot be booked after that of %', to_char(m, 'YYYY-MM'), pa.name,
			to_char(later, 'YYYY-MM')
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'What it would have carried is on the later statement.',
			      HINT = 'Statements are booked month after month; read the later one.';
	END IF;

	opening := coalesce((SELECT s.closing FROM evcharge.partner_month_statement s
	                     WHERE s.partner_id = pa.partner_id ORDER BY s.month DESC LIMIT 1), 0);
	INSERT INTO evcharge.partner_month_statement (partner_id, operator_id, month, partner_kind, period_end, opening,
		sessions, energy_wh, energy_fee, service_fee, occupancy_fee, charges, adjustments, earlier_months, payments,
		closing, partner_owes, we_owe, pending_bills)
	VALUES (pa.partner_id, pa.operator_id, m, pa.kind, p_end, opening, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		opening, greatest(opening, 0), greatest(-opening, 0), 0)
	RETURNING * INTO st;

	-- Every transaction on the partner's accounts that no statement carries
	-- yet and that is dated before the cut-off.
	INSERT INTO evcharge.partner_month_item (txn_id, statement_id, kind, order_no, dated, earlier_month, energy_wh,
		energy_fee, service_fee, occupancy_fee, amount)
	SELECT x.txn_id, st.statement_id, x.kind, x.order_no, x.dated, x.dated < p_start,
	       CASE x.kind WHEN 'bill' THEN coalesce((x.result->>'energy_wh')::bigint, 0)
	                   WHEN 'bill_adjustment' THEN coalesce((x.result->>'energy_wh_delta')::bigint, 0) ELSE 0 END,
	       x.energy_fee, x.service_fee, x.occupancy_fee, x.amount
	FROM (
		SELECT t.txn_id, t.kind, t.order_no, t.result,
		       CASE WHEN t.kind IN ('bill', 'bill_adjustment') THEN coalesce(b.ended_at, b.started_at, t.created_at)
		            WHEN t.result->>'received_on' IS NOT NULL
		            THEN ((t.result->>'received_on')::date)::timestamp AT TIME ZONE tz
		            ELSE t.created_at END AS dated,
		       sum(e.amount) FILTER (WHERE a.owner_id = pa.partner_id
		                             AND a.kind IN ('partner_receivable', 'partner_prepaid')) AS amount,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_electricity'), 0) AS energy_fee,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_service'), 0) AS service_fee,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_occupancy'), 0) AS occupancy_fee
		FROM evcharge.ledger_txn t
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		LEFT JOIN evcharge.bill b ON b.order_no = t.order_no
		WHERE t.txn_id IN (SELECT e2.txn_id FROM evcharge.ledger_entry e2
		                   JOIN evcharge.account a2 ON a2.account_id = e2.account_id
		                   WHERE a2.operator_id = pa.operator_id AND a2.owner_id = pa.partner_id
		                     AND a2.kind IN ('partner_receivable', 'partner_prepaid'))
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_month_item i WHERE i.txn_id = t.txn_id)
		GROUP BY t.txn_id, b.ended_at, b.started_at
	) x
	WHERE x.dated < p_end;

	UPDATE evcharge.partner_month_statement s SET
		sessions = f.sessions, energy_wh = f.energy_wh, energy_fee = f.energy_fee, service_fee = f.service_fee,
		occupancy_fee = f.occupancy_fee, charges = f.charges, adjustments = f.adjustments, refunds = f.refunds,
		earlier_months = f.earlier_months, payments = f.payments,
		closing = s.opening + f.charges - f.payments,
		partner_owes = greatest(s.opening + f.charges - f.payments, 0),
		we_owe = greatest(-(s.opening + f.charges - f.payments), 0),
		pending_bills = (SELECT count(*) FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		                 WHERE cs.partner_id = pa.partner_id AND b.state IN ('final', 'held')
		                   AND coalesce(b.ended_at, b.started_at) < p_end)
	FROM (SELECT count(DISTINCT i.order_no) FILTER (WHERE i.kind = 'bill') AS sessions,
	             coalesce(sum(i.energy_wh), 0) AS energy_wh,
	             coalesce(sum(i.energy_fee), 0) AS energy_fee,
	             coalesce(sum(i.service_fee), 0) AS service_fee,
	             coalesce(sum(i.occupancy_fee), 0) AS occupancy_fee,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment', 'bill_refund')), 0) AS charges,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_adjustment'), 0) AS adjustments,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_refund'), 0) AS refunds,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment') AND i.earlier_month), 0)
	                 AS earlier_months,
	             coalesce(-sum(i.amount) FILTER (WHERE i.kind NOT IN ('bill', 'bill_adjustment', 'bill_refund')), 0) AS payments
	      FROM evcharge.partner_month_item i WHERE i.statement_id = st.statement_id) f
	WHERE s.statement_id = st.statement_id
	RETURNING s.* INTO st;
	RETURN st;
END $$;
COMMENT ON FUNCTION evcharge.partner_statement(bigint, date) IS
	'books the partner''s statement of the month (any day of it; the month must be over in the operator''s time zone): every ledger movement on the partner''s accounts dated before the month''s end that no earlier statement carried, its sessions, energy and fees, refunds of its bills, payments, and what each side owes; calling it again returns the booked statement';

-- daily_report has a new column, bill_refunds: a new result type.
DROP FUNCTION evcharge.daily_report(bigint, date, bigint);
CREATE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric, bill_refunds numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp SET jit = off
BEGIN ATOMIC
	WITH books AS (
		SELECT daily_report.operator_id AS op, lower(d.r) AS t0, upper(d.r) AS t1
		FROM (SELECT evcharge.books_day(daily_report.operator_id,
		             CASE WHEN daily_report.day IS NOT NULL
		                  THEN evcharge.check_time(daily_report.day, 'daily_report(day)') END) AS r) d
	), bills AS (
		-- The day's bills: sessions whose charging ended that day.  Their
		-- sub-operator is where the ledger put their revenue, or for bills
		-- not yet settled where the attribution rules would.
		SELECT b.*, coalesce(r.sub_operator_id, evcharge.attributed_sub_operator(books.op, b.station_id,
		           coalesce(cs.group_id, m.group_id), m.vin, m.card_no)) AS sub
		FROM books
		JOIN evcharge.station st ON st.operator_id = books.op
		JOIN evcharge.bill b ON b.station_id = st.station_id
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no
		LEFT JOIN evcharge.member m ON m.member_id = cs.member_id
		LEFT JOIN LATERAL (
			SELECT a.sub_operator_id FROM evcharge.ledger_txn t
			JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
			JOIN evcharge.account a ON a.account_id = e.account_id
			WHERE t.kind = 'bill' AND t.idem_key = b.order_no AND a.kind LIKE 'revenue\_%'
			LIMIT 1) r ON b.state = 'settled'
		-- The day's bounds as scalar subqueries, not join columns: so the
		-- planner sees a range on bill_station_day_idx per station, not a
		-- join filter over every bill of the operator's history.
		WHERE coalesce(b.ended_at, b.started_at) >= (SELECT books.t0 FROM books)
		  AND coalesce(b.ended_at, b.started_at) < (SELECT books.t1 FROM books)
	), station_lines AS (
		SELECT 'station'::text AS line, b.station_id, b.sub AS sub_operator_id,
		       count(*) AS sessions, count(*) FILTER (WHERE b.state = 'held') AS held,
		       count(*) FILTER (WHERE b.state = 'final') AS unsettled,
		       round(coalesce(sum(b.energy_wh) FILTER (WHERE b.state = 'settled'), 0) / 1000.0, 3) AS energy_kwh,
		       coalesce(sum(b.energy_fee) FILTER (WHERE b.state = 'settled'), 0) AS energy_fee,
		       coalesce(sum(b.service_fee) FILTER (WHERE b.state = 'settled'), 0) AS service_fee,
		       coalesce(sum(b.occupancy_fee) FILTER (WHERE b.state = 'settled'), 0) AS occupancy_fee,
		       coalesce(sum(b.discount) FILTER (WHERE b.state = 'settled'), 0) AS discount,
		       coalesce(sum(b.total) FILTER (WHERE b.state = 'settled'), 0) AS total,
		       0::numeric AS top_ups, 0::numeric AS credits, 0::numeric AS refunds, 0::numeric AS refund_fees,
		       0::numeric AS bill_refunds
		FROM bills b
		GROUP BY b.station_id, b.sub
	), bill_refund_lines AS (
		-- The day's refunds of bills, whatever day the bill was: on the line
		-- of its station and of the sub-operator whose revenue they took back.
		SELECT 'station'::text AS line, b.station_id, r.sub_operator_id,
		       0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
		       0::numeric, 0::numeric, 0::numeric, 0::numeric, sum(f.amount)
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op AND t.kind = 'bill_refund'
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.bill_refund f ON f.txn_id = t.txn_id
		JOIN evcharge.bill b ON b.order_no = f.order_no
		LEFT JOIN LATERAL (
			SELECT a.sub_operator_id FROM evcharge.ledger_entry e
			JOIN evcharge.account a ON a.account_id = e.account_id
			WHERE e.txn_id = t.txn_id AND a.kind LIKE 'revenue\_%'
			LIMIT 1) r ON true
		GROUP BY b.station_id, r.sub_operator_id
	), wallet_moves AS (
		-- The day's money in and out of wallets: what the wallet was credited
		-- by top-ups and manual credits, and the refunds paid out (approved).
		SELECT t.kind, evcharge.wallet_sub_operator(e.account_id) AS sub, -e.amount AS amount, 0::numeric AS fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		WHERE t.kind IN ('top_up', 'manual_credit') AND a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
		UNION ALL
		SELECT t.kind, evcharge.wallet_sub_operator(f.account_id), f.amount, f.fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.refund f ON f.refund_id::text = t.idem_key
		WHERE t.kind = 'refund_approve'
	), wallet_lines AS (
		SELECT 'wallets'::text AS line, NULL::bigint AS station_id, w.sub AS sub_operator_id,
		       0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'top_up'), 0),
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'manual_credit'), 0),
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'refund_approve'), 0),
		       coalesce(sum(w.fee) FILTER (WHERE w.kind = 'refund_approve'), 0),
		       0::numeric
		FROM wallet_moves w
		GROUP BY w.sub
	), lines AS (
		-- A station's bills and its refunds of bills on one line.
		SELECT u.line, u.station_id, u.sub_operator_id, sum(u.sessions)::bigint AS sessions,
		       sum(u.held)::bigint AS held, sum(u.unsettled)::bigint AS unsettled, sum(u.energy_kwh) AS energy_kwh,
		       sum(u.energy_fee) AS energy_fee, sum(u.service_fee) AS service_fee,
		       sum(u.occupancy_fee) AS occupancy_fee, sum(u.discount) AS discount, sum(u.total) AS total,
		       sum(u.top_ups) AS top_ups, sum(u.credits) AS credits, sum(u.refunds) AS refunds,
		       sum(u.refund_fees) AS refund_fees, sum(u.bill_refunds) AS bill_refunds
		FROM (SELECT * FROM station_lines UNION ALL SELECT * FROM bill_refund_lines UNION ALL SELECT * FROM wallet_lines) u
		GROUP BY u.line, u.station_id, u.sub_operator_id
	), seen AS (
		SELECT * FROM lines l
		WHERE daily_report.only_sub_operator IS NULL OR l.sub_operator_id = daily_report.only_sub_operator
	)
	SELECT x.* FROM (
	SELECT s.line, s.station_id, st.name, s.sub_operator_id, so.name, s.sessions, s.held, s.unsettled,
	       s.energy_kwh, s.energy_fee, s.service_fee, s.occupancy_fee, s.discount, s.total,
	       s.top_ups, s.credits, s.refunds, s.refund_fees, s.bill_refunds
	FROM seen s
	LEFT JOIN evcharge.station st ON st.station_id = s.station_id
	LEFT JOIN evcharge.sub_operator so ON so.sub_operator_id = s.sub_operator_id
	UNION ALL
	SELECT 'total', NULL, NULL, daily_report.only_sub_operator, NULL,
	       coalesce(sum(s.sessions), 0)::bigint, coalesce(sum(s.held), 0)::bigint, coalesce(sum(s.unsettled), 0)::bigint,
	       coalesce(sum(s.energy_kwh), 0), coalesce(sum(s.energy_fee), 0), coalesce(sum(s.service_fee), 0),
	       coalesce(sum(s.occupancy_fee), 0), coalesce(sum(s.discount), 0), coalesce(sum(s.total), 0),
	       coalesce(sum(s.top_ups), 0), coalesce(sum(s.credits), 0), coalesce(sum(s.refunds), 0),
	       coalesce(sum(s.refund_fees), 0), coalesce(sum(s.bill_refunds), 0)
	FROM seen s
	) x (line, station_id, station, sub_operator_id, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee,
	     service_fee, occupancy_fee, discount, total, top_ups, credits, refunds, refund_fees, bill_refunds)
	ORDER BY array_position(ARRAY['station', 'wallets', 'total'], x.line), x.station_id, x.sub_operator_id NULLS FIRST;
END;
COMMENT ON FUNCTION evcharge.daily_report(bigint, date, bigint) IS
	'an operator''s day (books_day: in finance_policy.tz; an unknown operator or no day is an error): a line per station and sub-operator with sessions ended that day, held and unsettled bills, and the charged energy, electricity, service and occupancy fees, discounts and total; a line per sub-operator with the top-ups, manual credits and refunds (whole or partial) of its wallets; bill_refunds: the refunds of bills made that day (refund_bill), on the line of the bill''s station and sub-operator; a total line; only_sub_operator shows what one sub-operator may see';

-- == issue 16 item 9: a daily spending limit per card ==
ALTER TABLE evcharge.member ADD COLUMN card_daily_limit numeric(12, 2) CHECK (card_daily_limit > 0 AND card_daily_limit <> 'NaN');
COMMENT ON COLUMN evcharge.member.card_daily_limit IS
	'the most the member''s card may spend in a day of the operator''s books, yuan (a maintenance card shared by several cars): a start by the card is refused once the day''s charges reach it (card_day_spending); NULL: no limit';
-- A card's day is found among the sessions created that day, so that a
-- start by a card with a limit costs the day's sessions, not the history.
CREATE INDEX charge_session_created_idx ON evcharge.charge_session (created_at);
COMMENT ON INDEX evcharge.charge_session_created_idx IS
	'sessions by creation: the day''s charges of a card (card_day_spending)';

-- A card's spending in a day of the operator's books: a maintenance card
-- shared by several cars has a daily limit (member.card_daily_limit).  What
-- it spent is what the charges it started that day came to: the bill's
-- total, or the amount so far of a charge still running.  A charge counts
-- for the card when it was started with it: the card on the session (a
-- start at the pile), an OCPP transaction begun with it as idTag, or a
-- start through the platform by card (channel card) of its member.
-- p_except_order leaves one charge out: a resent StartTransaction is not
-- held against the charge it starts.
CREATE FUNCTION evcharge.card_day_spending(p_operator_id bigint, p_card_no text, p_at timestamptz DEFAULT now(),
	p_except_order text DEFAULT NULL,
	OUT member_id bigint, OUT daily_limit numeric, OUT spent numeric, OUT remaining numeric, OUT day date)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	card text := regexp_replace(p_card_no, '\s', '', 'g');
	r tstzrange;
BEGIN
	day := (p_at AT TIME ZONE evcharge.books_tz(p_operator_id))::date;
	r := evcharge.books_day(p_operator_id, day);
	SELECT m.member_id, m.card_daily_limit INTO member_id, daily_limit
	FROM evcharge.member m WHERE m.operator_id = p_operator_id AND m.card_no = card;
	SELECT coalesce(sum(coalesce(b.total, cs.running_total, 0)), 0) INTO spent
	FROM evcharge.charge_session cs
	JOIN evcharge.station st ON st.station_id = cs.station_id AND st.operator_id = p_operator_id
	LEFT JOIN evcharge.bill b ON b.order_no = cs.order_no
	WHERE cs.created_at >= lower(r) AND cs.created_at < upper(r) AND cs.state <> 'cancelled'
	  AND cs.order_no IS DISTINCT FROM p_except_order
	  AND (cs.card_no = card
	       OR (cs.channel = 'card' AND cs.member_id = card_day_spending.member_id)
	       OR EXISTS (SELECT 1 FROM evcharge.ocpp_transaction t
	                  WHERE t.order_no = cs.order_no AND regexp_replace(t.id_tag, '\s', '', 'g') = card));
	remaining := CASE WHEN daily_limit IS NOT NULL THEN greatest(daily_limit - spent, 0) END;
END $$;
COMMENT ON FUNCTION evcharge.card_day_spending(bigint, text, timestamptz, text) IS
	'what a card of the operator spent in the day of its books that contains the instant (default now, finance_policy.tz): the charges started with it that day (the card on the session, an OCPP idTag, or a start by card of its member), at the bill''s total or the amount so far, but for the order given (p_except_order); with its member, its daily limit (member.card_daily_limit, NULL: none) and what is left of it';

-- The refusal of a start by a card whose day's spending reached its limit.
CREATE FUNCTION evcharge.check_card_limit(p_operator_id bigint, p_card_no text) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c record;
BEGIN
	c := evcharge.card_day_spending(p_operator_id, p_card_no);
	IF c.daily_limit IS NOT NULL AND c.spent >= c.daily_limit THEN
		RAISE EXCEPTION 'card % has reached its daily spending limit', regexp_replace(p_card_no, '\s', '', 'g')
			USING ERRCODE = 'EV002',
			      DETAIL = format('Its charges of %s (%s) came to %s yuan of a limit of %s.', to_char(c.day, 'YYYY-MM-DD'),
			                      evcharge.books_tz(p_operator_id), c.spent, c.daily_limit),
			      HINT = 'The card can charge again tomorrow, or the operator raises member.card_daily_limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_card_limit(bigint, text) IS
	'raises EV002 when the card''s charges of the day (card_day_spending) have reached its daily limit, with what it spent and the limit; nothing for a card without a limit or not registered';

CREATE OR REPLACE FUNCTION evcharge.ocpp_authorize(p_pile evcharge.pile_id, p_id_tag text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN EXISTS (
	-- The idTag of a RemoteStartTransaction: the order number of a session
	-- start_session() opened on this pile (a pile may Authorize it first).
	SELECT 1 FROM evcharge.charge_session cs
	WHERE cs.order_no = p_id_tag AND cs.state = 'pending'
	  AND evcharge.pile(cs.gun) OPERATOR(evcharge.=) p_pile) THEN 'Accepted'
	ELSE coalesce((
	-- Only a card with a limit costs the look at its day.
	SELECT CASE WHEN m.card_daily_limit IS NULL THEN 'Accepted'
	            WHEN (evcharge.card_day_spending(st.operator_id, m.card_no)).spent >= m.card_daily_limit THEN 'Blocked'
	            ELSE 'Accepted' END
	FROM evcharge.pile pl
	JOIN evcharge.station st USING (station_id)
	JOIN evcharge.member m ON m.operator_id = st.operator_id
	WHERE pl.pile_id OPERATOR(evcharge.=) p_pile
	  AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')), 'Invalid') END;
COMMENT ON FUNCTION evcharge.ocpp_authorize(evcharge.pile_id, text) IS
	'the OCPP idTagInfo status for an idTag at a pile: Accepted for the card of a member of the pile''s operator or the order number of a pending session on the pile (a remote start''s idTag), Blocked for a card whose charges of the day reached its daily limit (card_day_spending), Invalid otherwise';

CREATE OR REPLACE FUNCTION evcharge.ocpp_start_transaction(p_pile evcharge.pile_id, p_connector int, p_id_tag text,
	p_meter_start bigint, p_ts timestamptz, OUT transaction_id int, OUT order_no text, OUT remote boolean,
	OUT status text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	g evcharge.gun_id;
	pending text;
BEGIN
	SELECT t.transaction_id, t.order_no, t.remote INTO transaction_id, order_no, remote
	FROM evcharge.ocpp_transaction t
	WHERE t.pile_id OPERATOR(evcharge.=) p_pile AND t.connector_id = p_connector AND t.started_at = p_ts;
	IF NOT FOUND THEN
		SELECT pl.gun_count, st.tz INTO p
		FROM evcharge.pile pl JOIN evcharge.station st USING (station_id)
		WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
		IF NOT FOUND OR p_connector NOT BETWEEN 1 AND p.gun_count THEN
			-- Not a gun of a registered pile: nothing stored, the pile is told Invalid.
			status := 'Invalid';
			RETURN;
		END IF;
		g := evcharge.gun_id(p_pile, p_connector);
		-- A session start_session() opened for this gun and no transaction
		-- has taken yet: this is the remote start it asked for.
		SELECT cs.order_no INTO pending FROM evcharge.charge_session cs
		WHERE cs.gun OPERATOR(evcharge.=) g AND cs.state = 'pending'
		  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction t WHERE t.order_no = cs.order_no);
		remote := pending IS NOT NULL;
		order_no := coalesce(pending, to_char(p_ts AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
		            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0'));
		INSERT INTO evcharge.ocpp_transaction AS t (order_no, pile_id, connector_id, id_tag, meter_start_wh, started_at, remote)
		VALUES (order_no, p_pile, p_connector, p_id_tag, p_meter_start, p_ts, remote)
		ON CONFLICT ON CONSTRAINT ocpp_transaction_start_key DO NOTHING
		RETURNING t.transaction_id INTO transaction_id;
		IF transaction_id IS NULL THEN
			-- Another bridge stored the same start first.
			SELECT t.transaction_id, t.order_no, t.remote INTO transaction_id, order_no, remote
			FROM evcharge.ocpp_transaction t
			WHERE t.pile_id OPERATOR(evcharge.=) p_pile AND t.connector_id = p_connector AND t.started_at = p_ts;
		END IF;
	END IF;
	status := CASE WHEN remote THEN 'Accepted' ELSE evcharge.ocpp_authorize(p_pile, p_id_tag) END;
	-- A card at its daily limit is Blocked, but a resent StartTransaction
	-- (a pile that rebooted mid-charge) is not held against the charge it
	-- starts: the limit is reached only counting this charge itself.
	IF status = 'Blocked' AND EXISTS (
		SELECT 1 FROM evcharge.pile pl
		JOIN evcharge.station st USING (station_id)
		JOIN evcharge.member m ON m.operator_id = st.operator_id
		WHERE pl.pile_id OPERATOR(evcharge.=) p_pile AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')
		  AND (evcharge.card_day_spending(st.operator_id, m.card_no, now(), order_no)).spent < m.card_daily_limit) THEN
		status := 'Accepted';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_start_transaction(evcharge.pile_id, int, text, bigint, timestamptz) IS
	'maps an OCPP StartTransaction to a transactionId and an order number, once: a pending start_session() on the gun is taken over (a remote start), otherwise a new order number is made; a resend returns the first answer; status is the idTagInfo status (NULL ids and Invalid for a gun that is not registered; Blocked for a card at its daily spending limit, not counting the charge being started, so a resend is not Blocked by its own charge)';

-- == issue 13 item 2: a StopTransaction of a transactionId the bridge never issued ==
-- Stored as a transaction known from its stop alone (or closing the open
-- one whose answer the pile lost), so the pipeline bills or holds it.
ALTER TABLE evcharge.ocpp_transaction
	ALTER COLUMN connector_id DROP NOT NULL,
	ALTER COLUMN meter_start_wh DROP NOT NULL,
	ADD COLUMN pile_transaction_id int,
	ADD CONSTRAINT ocpp_transaction_started CHECK (pile_transaction_id IS NOT NULL OR (connector_id IS NOT NULL AND meter_start_wh IS NOT NULL));
CREATE UNIQUE INDEX ocpp_transaction_unknown_stop_idx ON evcharge.ocpp_transaction (pile_id, stopped_at)
	WHERE pile_transaction_id IS NOT NULL;
COMMENT ON INDEX evcharge.ocpp_transaction_unknown_stop_idx IS
	'one transaction per pile and stop time for a StopTransaction whose transactionId the bridge never issued: its resend finds the first';
COMMENT ON CONSTRAINT ocpp_transaction_started ON evcharge.ocpp_transaction IS
	'a transaction begun by StartTransaction has its connector and meterStart; only one known from its StopTransaction alone may lack them';
COMMENT ON COLUMN evcharge.ocpp_transaction.connector_id IS 'the connector, which is the gun of that number (NULL only for a StopTransaction of a transaction never issued whose connector the pile cannot be told from)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_start_wh IS 'meterStart, Wh (for a transaction known from its StopTransaction alone: the first reading of its transactionData, NULL without one)';
COMMENT ON COLUMN evcharge.ocpp_transaction.started_at IS 'the StartTransaction timestamp, by the pile''s clock (for a transaction known from its StopTransaction alone: the first sample of its transactionData, else the stop''s time)';
COMMENT ON COLUMN evcharge.ocpp_transaction.pile_transaction_id IS 'for a transaction known from its StopTransaction alone (the pile never got its StartTransaction answered: -1 after an offline start): the transactionId the pile sent; NULL for a transaction begun by StartTransaction, whose id is transaction_id';

-- StopTransaction: the transaction it closes, its first stop kept.
CREATE OR REPLACE FUNCTION evcharge.ocpp_stop_transaction(p_pile evcharge.pile_id, p_transaction_id int, p_meter_stop bigint,
	p_ts timestamptz, p_reason text, OUT order_no text, OUT connector_id int, OUT started_at timestamptz,
	OUT meter_start_wh bigint, OUT id_tag text, OUT remote boolean)
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE evcharge.ocpp_transaction t
	SET meter_stop_wh = coalesce(t.meter_stop_wh, p_meter_stop),
	    stopped_at = coalesce(t.stopped_at, p_ts),
	    stop_reason = coalesce(t.stop_reason, p_reason, 'Local')
	WHERE t.transaction_id = p_transaction_id AND t.pile_id OPERATOR(evcharge.=) p_pile
	  AND t.pile_transaction_id IS NULL
	RETURNING t.order_no, t.connector_id, t.started_at, t.meter_start_wh, t.id_tag, t.remote;
END;
COMMENT ON FUNCTION evcharge.ocpp_stop_transaction(evcharge.pile_id, int, bigint, timestamptz, text) IS
	'records an OCPP StopTransaction on its transaction (the first stop counts) and returns what its pile record needs; no row for a transactionId this pile was never given';

-- StopTransaction for a transactionId the bridge never issued: -1 (or any
-- other id) from a pile whose StartTransaction was never answered, often
-- after an offline start.  Stored so that the pipeline bills it or holds it.
CREATE FUNCTION evcharge.ocpp_stop_unknown_transaction(p_pile evcharge.pile_id, p_transaction_id int,
	p_meter_stop bigint, p_ts timestamptz, p_reason text, p_id_tag text, p_first_at timestamptz, p_first_wh bigint,
	p_connector int, OUT order_no text, OUT connector_id int, OUT started_at timestamptz, OUT energy_wh bigint, OUT id_tag text,
	OUT remote boolean, OUT outcome text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t evcharge.ocpp_transaction;
	p record;
	ids int[];
	tag text := nullif(p_id_tag, '');
BEGIN
	-- A resend: this pile's stop of this time and meter is stored already.
	SELECT * INTO t FROM evcharge.ocpp_transaction x
	WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at = p_ts AND x.meter_stop_wh = p_meter_stop
	ORDER BY x.transaction_id LIMIT 1;
	IF FOUND THEN
		outcome := 'resent';
	ELSE
		-- A StartTransaction stored whose answer the pile lost: the open
		-- transaction of this pile that fits the stop (begun within a day
		-- before it, at a meter not above meterStop), if one alone does,
		-- else the one of those with the stop's idTag or first sample.
		SELECT array_agg(x.transaction_id ORDER BY x.transaction_id) INTO ids
		FROM evcharge.ocpp_transaction x
		WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at IS NULL AND x.pile_transaction_id IS NULL
		  AND x.started_at <= p_ts AND x.started_at > p_ts - interval '1 day' AND x.meter_start_wh <= p_meter_stop;
		IF cardinality(ids) > 1 THEN
			SELECT array_agg(x.transaction_id ORDER BY x.transaction_id) INTO ids
			FROM evcharge.ocpp_transaction x
			WHERE x.transaction_id = ANY (ids)
			  AND (x.id_tag = tag OR x.started_at = p_first_at OR x.meter_start_wh = p_first_wh);
		END IF;
		IF cardinality(ids) = 1 THEN
			UPDATE evcharge.ocpp_transaction x
			SET meter_stop_wh = p_meter_stop, stopped_at = p_ts, stop_reason = coalesce(p_reason, 'Local')
			WHERE x.transaction_id = ids[1] AND x.stopped_at IS NULL
			RETURNING x.* INTO t;
			outcome := 'matched';
		END IF;
		IF t.transaction_id IS NULL THEN
			-- A transaction the platform never saw begin: a new order number,
			-- its start the first sample of transactionData (else the stop).
			SELECT pl.gun_count, st.tz INTO p
			FROM evcharge.pile pl JOIN evcharge.station st USING (station_id)
			WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
			IF NOT FOUND THEN
				outcome := 'not registered';
				RETURN;
			END IF;
			-- The connector, which StopTransaction does not carry: the pile's
			-- only gun, else its one gun in a session (charging, suspended or
			-- occupied) that no open transaction holds, as the bridge saw it
			-- (p_connector) or else as gun_state has it; NULL when it cannot
			-- be told.
			IF p.gun_count = 1 THEN
				connector_id := 1;
			ELSIF p_connector BETWEEN 1 AND p.gun_count
			  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction x
			                  WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at IS NULL
			                    AND x.connector_id = p_connector) THEN
				connector_id := p_connector;
			ELSE
				SELECT CASE WHEN count(*) = 1 THEN min(evcharge.gun_no(gs.gun)) END INTO connector_id
				FROM evcharge.gun_state gs
				WHERE gs.gun OPERATOR(evcharge.=) ANY (ARRAY(SELECT evcharge.gun_id(p_pile, g) FROM generate_series(1, p.gun_count) g))
				  AND gs.status IN ('charging', 'suspended', 'occupied')
				  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction x
				                  WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at IS NULL
				                    AND x.connector_id = evcharge.gun_no(gs.gun));
			END IF;
			started_at := least(coalesce(p_first_at, p_ts), p_ts);
			order_no := to_char(started_at AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
			            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0');
			INSERT INTO evcharge.ocpp_transaction AS x (order_no, pile_id, connector_id, id_tag, meter_start_wh,
				started_at, remote, meter_stop_wh, stopped_at, stop_reason, pile_transaction_id)
			VALUES (order_no, p_pile, connector_id, coalesce(tag, ''),
				CASE WHEN p_first_wh <= p_meter_stop THEN p_first_wh END, started_at, false, p_meter_stop, p_ts,
				coalesce(p_reason, 'Local'), p_transaction_id)
			ON CONFLICT (pile_id, stopped_at) WHERE pile_transaction_id IS NOT NULL DO NOTHING
			RETURNING x.* INTO t;
			IF t.transaction_id IS NULL THEN
				-- Another bridge stored the same stop first.
				SELECT * INTO t FROM evcharge.ocpp_transaction x
				WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at = p_ts AND x.pile_transaction_id IS NOT NULL;
				outcome := 'resent';
			ELSE
				outcome := 'unknown';
			END IF;
		END IF;
	END IF;
	order_no := t.order_no;
	connector_id := t.connector_id;
	started_at := t.started_at;
	energy_wh := t.meter_stop_wh - t.meter_start_wh;
	id_tag := t.id_tag;
	remote := t.remote;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_stop_unknown_transaction(evcharge.pile_id, int, bigint, timestamptz, text, text, timestamptz, bigint, int) IS
	'records an OCPP StopTransaction whose transactionId this pile was never given (-1 after an offline start): a resend finds its first answer (outcome resent); the one open transaction of the pile that fits it is closed (matched: a StartTransaction whose answer was lost); otherwise a transaction known from its stop alone is stored with a new order number (unknown), its start and meter the first sample of transactionData, its connector the pile''s only gun, the one the bridge saw in a session, or its one gun in a session by gun_state (NULL when it cannot be told); returns what its pile record needs';

-- == issue 13 item 1: the bridges' registry cache, refreshed on NOTIFY evcharge_registry ==
-- The bridges keep what the handshake needs (registered piles, their
-- password hashes, their operators' policy) in memory, read on a thread of
-- their own, so that a slow database never holds up a handshake; a change
-- of any of it tells them to read it again (LISTEN evcharge_registry).
-- Statement-level, so a COPY of many piles is one notification; the
-- bridge's own firmware updates do not fire it.
CREATE FUNCTION evcharge.ocpp_registry_notify() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_notify('evcharge_registry', TG_TABLE_NAME);
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_registry_notify() IS
	'statement trigger on pile, station, ocpp_credential and ocpp_policy: NOTIFY evcharge_registry, so that the bridges read again the registry their handshakes check';

CREATE TRIGGER ocpp_registry_notify AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF pile_id, station_id
	ON evcharge.pile FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.pile IS 'a pile registered, moved or removed: the bridges read their registry again';
CREATE TRIGGER ocpp_registry_notify AFTER DELETE OR TRUNCATE OR UPDATE OF operator_id
	ON evcharge.station FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.station IS 'a station given to another operator (whose password policy then applies) or removed: the bridges read their registry again';
CREATE TRIGGER ocpp_registry_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON evcharge.ocpp_credential FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.ocpp_credential IS 'a password set or removed: the bridges read their registry again';
CREATE TRIGGER ocpp_registry_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON evcharge.ocpp_policy FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.ocpp_policy IS 'an operator''s password policy changed: the bridges read their registry again';

-- == issue 17 item 2: YKC piles, their pile numbers and transaction serials ==
ALTER TABLE evcharge.ocpp_transaction ADD COLUMN ykc_serial text
	CONSTRAINT ocpp_transaction_ykc_serial_digits CHECK (ykc_serial ~ '^[0-9]{32}$');
CREATE UNIQUE INDEX ocpp_transaction_ykc_serial_idx ON evcharge.ocpp_transaction (ykc_serial);
COMMENT ON INDEX evcharge.ocpp_transaction_ykc_serial_idx IS 'one transaction per YKC serial: a resent record or real-time data finds its order';
COMMENT ON CONSTRAINT ocpp_transaction_ykc_serial_digits ON evcharge.ocpp_transaction IS 'a YKC transaction serial is 32 decimal digits';
COMMENT ON COLUMN evcharge.ocpp_transaction.ykc_serial IS 'for a transaction of a YKC pile: its 32-digit transaction serial (the pile''s, or the one a remote start sent); NULL for OCPP';

-- == issue 17 items 2-5: the YKC registry, records, billing model and anomaly 20 ==

-- ======================================================================
-- The YKC cloud protocol (云快充 1.5/1.6, docs/bridge.md "The YKC
-- protocol"): a pile logs in with a 14-digit pile number, which the
-- registry maps to its 20-digit pile id; its transactions are known by a
-- 32-digit serial, kept on the ocpp_transaction row of its order (so that
-- remote stops and the balance guard treat them like OCPP's); the billing
-- model it is sent is the station's plan in force.
-- ======================================================================

CREATE TABLE evcharge.ykc_pile (
	ykc_no text PRIMARY KEY CONSTRAINT ykc_pile_no_digits CHECK (ykc_no ~ '^[0-9]{14}$'),
	pile_id evcharge.pile_id NOT NULL UNIQUE REFERENCES evcharge.pile ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ykc_pile IS
	'The YKC pile numbers: the 14 BCD digits a pile speaking the YKC cloud protocol logs in with, mapped one to one to its 20-digit pile id; a login of a number without a row is refused';
COMMENT ON COLUMN evcharge.ykc_pile.ykc_no IS 'the YKC pile number, 14 digits as the pile sends them in BCD';
COMMENT ON COLUMN evcharge.ykc_pile.pile_id IS 'the registered pile it is';
COMMENT ON COLUMN evcharge.ykc_pile.created_at IS 'when the mapping was made';
COMMENT ON CONSTRAINT ykc_pile_no_digits ON evcharge.ykc_pile IS 'a YKC pile number is 14 decimal digits';
SELECT pg_catalog.pg_extension_config_dump('evcharge.ykc_pile', '');

-- A YKC login: the pile it is, or why it is refused.  The firmware the pile
-- reports is written to the registry when it is admitted.
CREATE FUNCTION evcharge.ykc_login(p_ykc_no text, p_current_type text, p_gun_count int, p_firmware text,
	OUT pile_id evcharge.pile_id, OUT refusal text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
BEGIN
	SELECT pl.pile_id, pl.gun_count, pl.current_type, pl.firmware INTO p
	FROM evcharge.ykc_pile y JOIN evcharge.pile pl ON pl.pile_id OPERATOR(evcharge.=) y.pile_id
	WHERE y.ykc_no = p_ykc_no;
	IF NOT FOUND THEN
		refusal := format('pile number %s is not mapped to a registered pile (evcharge.ykc_pile)', p_ykc_no);
		RETURN;
	END IF;
	IF p.gun_count <> p_gun_count THEN
		refusal := format('pile number %s (pile %s) logs in with %s gun(s); the registry has %s', p_ykc_no,
			p.pile_id, p_gun_count, p.gun_count);
		RETURN;
	END IF;
	IF p.current_type IS DISTINCT FROM p_current_type THEN
		refusal := format('pile number %s (pile %s) logs in as %s; the registry has it %s', p_ykc_no,
			p.pile_id, p_current_type, coalesce(p.current_type, 'without a current type'));
		RETURN;
	END IF;
	IF p.firmware IS DISTINCT FROM nullif(p_firmware, '') THEN
		UPDATE evcharge.pile pl SET firmware = nullif(p_firmware, '') WHERE pl.pile_id OPERATOR(evcharge.=) p.pile_id;
	END IF;
	pile_id := p.pile_id;
END $$;
COMMENT ON FUNCTION evcharge.ykc_login(text, text, int, text) IS
	'checks a YKC login (0x01) against the registry: the pile number mapped in ykc_pile, the gun count and current type the registry has; returns the pile (its firmware written) or, with a NULL pile, the reason of the refusal';

-- The order of a YKC transaction serial: the one it has, else made once
-- (a pending start_session() on the gun is taken over, as a remote start).
CREATE FUNCTION evcharge.ykc_transaction(p_pile evcharge.pile_id, p_gun int, p_serial text, p_ts timestamptz)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t record;
	o text;
BEGIN
	SELECT x.order_no INTO o FROM evcharge.ocpp_transaction x WHERE x.ykc_serial = p_serial;
	IF FOUND THEN
		RETURN o;
	END IF;
	-- The session's energy counts from 0 on a YKC pile (its real-time data
	-- carries the energy charged so far), so the start's meter is 0.
	SELECT s.transaction_id, s.order_no INTO t FROM evcharge.ocpp_start_transaction(p_pile, p_gun, p_serial, 0, p_ts) s;
	IF t.transaction_id IS NULL THEN
		RETURN NULL;
	END IF;
	UPDATE evcharge.ocpp_transaction x SET ykc_serial = p_serial
	WHERE x.transaction_id = t.transaction_id AND x.ykc_serial IS NULL;
	RETURN t.order_no;
END $$;
COMMENT ON FUNCTION evcharge.ykc_transaction(evcharge.pile_id, int, text, timestamptz) IS
	'the order number of a YKC transaction serial on a gun: the one it was given, else a new transaction made by ocpp_start_transaction() (a pending start_session() on the gun taken over) and the serial kept on it; NULL for a gun that is not registered';

-- A YKC transaction record (0x3B): its transaction stopped (the first
-- record counts); first is false for a resend.
CREATE FUNCTION evcharge.ykc_record(p_pile evcharge.pile_id, p_gun int, p_serial text, p_started timestamptz,
	p_ended timestamptz, p_energy_wh bigint, p_meter_stop_wh bigint, OUT order_no text, OUT first boolean,
	OUT remote boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t evcharge.ocpp_transaction;
BEGIN
	order_no := evcharge.ykc_transaction(p_pile, p_gun, p_serial, p_started);
	IF order_no IS NULL THEN
		RETURN;
	END IF;
	SELECT * INTO t FROM evcharge.ocpp_transaction x WHERE x.ykc_serial = p_serial FOR UPDATE;
	first := t.stopped_at IS NULL;
	remote := t.remote;
	IF first THEN
		UPDATE evcharge.ocpp_transaction x
		SET meter_stop_wh = p_energy_wh, stopped_at = p_ended, stop_reason = 'Local'
		WHERE x.transaction_id = t.transaction_id;
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.ykc_record(evcharge.pile_id, int, text, timestamptz, timestamptz, bigint, bigint) IS
	'records a YKC transaction record on the transaction of its serial (made from the record when its real-time data never came), the first record counting: returns its order number, whether this is the first, and whether it was a remote start; NULL order for a gun that is not registered';

-- Why a plan cannot be a YKC billing model (NULL when it can): the model
-- gives each of the day's 48 half-hours one of four classes.
CREATE FUNCTION evcharge.ykc_plan_problem(p_tariff evcharge.tou_tariff) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN (
	SELECT string_agg(format('%s-%s %s', to_char(s.starts, 'HH24:MI'), CASE WHEN s.ends = '24:00' THEN '24:00' ELSE to_char(s.ends, 'HH24:MI') END, s.class),
	                  ', ' ORDER BY s.starts)
	       || ': a YKC billing model gives whole half-hours of sharp, peak, flat or valley only'
	FROM evcharge.tariff_segments(p_tariff) s
	WHERE s.class = 'deep_valley'
	   OR extract(epoch FROM s.starts)::bigint % 1800 <> 0
	   OR extract(epoch FROM s.ends)::bigint % 1800 <> 0
	HAVING count(*) > 0);
COMMENT ON FUNCTION evcharge.ykc_plan_problem(evcharge.tou_tariff) IS
	'NULL when a plan can be sent to YKC piles as their billing model; else the segments that cannot (a boundary off the half-hour, or deep valley, which the model lacks), named';

-- The billing model of a YKC pile now (0x05/0x09 answers, 0x58 pushes).
CREATE FUNCTION evcharge.ykc_billing_model(p_pile evcharge.pile_id, OUT model_id int, OUT valid_until timestamptz,
	OUT energy_price bigint[], OUT service_fee bigint[], OUT classes int[], OUT problem text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	plan record;
BEGIN
	SELECT pl.station_id, pl.current_type INTO p FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
	IF NOT FOUND OR p.current_type IS NULL THEN
		problem := format('pile %s is not registered with a current type', p_pile);
		RETURN;
	END IF;
	SELECT * INTO plan FROM evcharge.plan_in_force(p.station_id, p.current_type, now());
	IF NOT FOUND THEN
		problem := format('no %s plan is in force at station %s now', p.current_type, p.station_id);
		RETURN;
	END IF;
	problem := evcharge.ykc_plan_problem(plan.tariff);
	IF problem IS NOT NULL THEN
		problem := format('the plan in force (%s, station %s, %s) cannot be a YKC billing model: %s', plan.name,
			p.station_id, p.current_type, problem);
		RETURN;
	END IF;
	-- Prices in 0.00001 yuan: exact, since plans carry 4 decimals.
	SELECT array_agg(coalesce((pr.energy_price * 100000)::bigint, 0) ORDER BY c.k),
	       array_agg(coalesce((pr.service_fee * 100000)::bigint, 0) ORDER BY c.k)
	INTO energy_price, service_fee
	FROM unnest(ARRAY['sharp', 'peak', 'flat', 'valley']) WITH ORDINALITY c(name, k)
	LEFT JOIN evcharge.tariff_prices(plan.tariff) pr ON pr.class = c.name;
	SELECT array_agg(array_position(ARRAY['sharp', 'peak', 'flat', 'valley'],
	                                 evcharge.class_at(plan.tariff, time '00:00' + h * interval '30 minutes')) - 1 ORDER BY h)
	INTO classes FROM generate_series(0, 47) h;
	-- The model's number (4 BCD digits): the plan and its content, so a
	-- plan edited in place is a new model too.
	model_id := (hashtext(plan.station_tariff_id::text || ' ' || plan.tariff::text) & 2147483647) % 9999 + 1;
	valid_until := plan.until;
END $$;
COMMENT ON FUNCTION evcharge.ykc_billing_model(evcharge.pile_id) IS
	'the YKC billing model of a pile now: the station''s plan in force for its current type as a model number (1-9999, from the plan and its content), the electricity price and service fee of sharp, peak, flat and valley in 0.00001 yuan, the class (0 sharp .. 3 valley) of each of the 48 half-hours, and until when it holds; a plan the model cannot express gives no model and the problem instead (never a rounded one)';

-- A plan stored for a station with YKC piles must be one their billing
-- model can express: a warning says which segments cannot (the plan is
-- kept: the station's OCPP piles and evcharge's bills use it; its YKC piles
-- are sent no model while it is in force, and the bridge logs it).
CREATE FUNCTION evcharge.ykc_plan_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT n.station_id, n.current_type, n.station_tariff_id, evcharge.ykc_plan_problem(n.tariff) AS problem,
		       count(*) AS piles
		FROM new_plans n
		JOIN evcharge.pile pl ON pl.station_id = n.station_id AND pl.current_type = n.current_type
		JOIN evcharge.ykc_pile y ON y.pile_id OPERATOR(evcharge.=) pl.pile_id
		WHERE evcharge.ykc_plan_problem(n.tariff) IS NOT NULL
		GROUP BY 1, 2, 3, 4
	LOOP
		RAISE WARNING 'plan % of station % (%) cannot be sent to its % YKC pile(s)', r.station_tariff_id, r.station_id,
			r.current_type, r.piles
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = r.problem || '.',
			      HINT = 'Put every boundary on a half-hour and use no deep valley, or the YKC piles get no billing model while this plan is in force (evcharge still bills their sessions by it).';
	END LOOP;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ykc_plan_check() IS
	'statement trigger on station_tariff: a WARNING for each plan stored for a station with YKC piles of its current type that a YKC billing model cannot express (ykc_plan_problem)';
CREATE TRIGGER ykc_plan_check_insert AFTER INSERT ON evcharge.station_tariff
	REFERENCING NEW TABLE AS new_plans FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ykc_plan_check();
COMMENT ON TRIGGER ykc_plan_check_insert ON evcharge.station_tariff IS 'warns when a plan stored cannot be a billing model of the station''s YKC piles';
CREATE TRIGGER ykc_plan_check_update AFTER UPDATE ON evcharge.station_tariff
	REFERENCING NEW TABLE AS new_plans FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ykc_plan_check();
COMMENT ON TRIGGER ykc_plan_check_update ON evcharge.station_tariff IS 'warns when a plan changed cannot be a billing model of the station''s YKC piles';

-- Anomaly 20: the pile's own energy per class (a YKC record's sharp, peak,
-- flat and valley) against evcharge's split on the bill.  Not blocking:
-- the bill is priced by evcharge's split of the measured curve, and the
-- disagreement is evidence for support (a pile clock or model off).
CREATE FUNCTION evcharge.class_energy_disagrees(p_pile_wh bigint[], p_bill_wh bigint[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (
	SELECT 1 FROM generate_series(1, greatest(cardinality(p_bill_wh), 4)) k
	WHERE abs(coalesce(p_pile_wh[k], 0) - coalesce(p_bill_wh[k], 0))
	      > greatest(100, (SELECT sum(x) FROM unnest(p_bill_wh) x) * 2 / 100))
	AND cardinality(p_pile_wh) > 0 AND cardinality(p_bill_wh) > 0;
COMMENT ON FUNCTION evcharge.class_energy_disagrees(bigint[], bigint[]) IS
	'true when a pile''s energy per class (sharp, peak, flat, valley) and a bill''s differ in some class by more than 100 Wh or 2 % of the bill''s energy, whichever is more (anomaly 20); a class the pile does not count (deep valley) is 0 on its side';

CREATE FUNCTION evcharge.class_energy_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pile_wh bigint[];
BEGIN
	SELECT r.wh_by_class INTO pile_wh FROM evcharge.pile_record r
	WHERE r.order_no = NEW.order_no AND r.wh_by_class IS NOT NULL
	ORDER BY r.received_at LIMIT 1;
	IF evcharge.class_energy_disagrees(pile_wh, NEW.wh_by_class) THEN
		NEW.anomalies := NEW.anomalies OPERATOR(evcharge.|) '20'::evcharge.anomaly_set;
	ELSIF NEW.anomalies OPERATOR(evcharge.@>) '20'::evcharge.anomaly_set THEN
		NEW.anomalies := NEW.anomalies OPERATOR(evcharge.-) '20'::evcharge.anomaly_set;
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.class_energy_check() IS
	'row trigger on bill: adds anomaly 20 (class_energy_mismatch) when the pile record of the order carries the pile''s energy per class and it disagrees with the bill''s (class_energy_disagrees), and takes it off when a recomputed bill agrees';
CREATE TRIGGER class_energy_check BEFORE INSERT OR UPDATE OF wh_by_class, anomalies ON evcharge.bill
	FOR EACH ROW EXECUTE FUNCTION evcharge.class_energy_check();
COMMENT ON TRIGGER class_energy_check ON evcharge.bill IS 'anomaly 20: the pile''s energy per class against the bill''s';
-- == issue 15 item 4: the anomaly catalogue has one home ==
-- The table of codes is filled from the module's catalogue (the C array of
-- src/anomaly_codes.c, through anomaly_catalogue()), as a fresh install
-- fills it: new codes are added, and a name, description or effect changed
-- in C replaces the table's.  No code is ever removed.
INSERT INTO evcharge.anomaly_code AS a (code, name, description, blocks_charge)
SELECT c.code, c.name, c.description, c.blocks_charge FROM evcharge.anomaly_catalogue() c ORDER BY c.code
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
	blocks_charge = EXCLUDED.blocks_charge
WHERE (a.name, a.description, a.blocks_charge) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.blocks_charge);

-- == issue 14 item 3: the settle job settles its batch in one subtransaction ==
-- A subtransaction per bill made every update of the accounts the job had
-- locked a MultiXact of all the earlier ones: the job's time grew with the
-- square of the backlog (10,000 bills took 1,120 s).  The per-bill
-- subtransactions are now only the fallback when a bill of the batch fails.
CREATE OR REPLACE FUNCTION evcharge.settle_bills(OUT settled bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	orders text[];
	ready text[] := '{}';
	accounts bigint[] := '{}';
	o text;
	tries int := 0;
	st text;
	msg text;
BEGIN
	settled := 0;
	SELECT coalesce(array_agg(x.order_no ORDER BY x.finalised_at, x.order_no), '{}') INTO orders
	FROM (SELECT b.order_no, b.finalised_at FROM evcharge.bill b WHERE b.state = 'final'
	      ORDER BY b.finalised_at, b.order_no FOR UPDATE SKIP LOCKED) x;
	IF cardinality(orders) = 0 THEN
		RETURN;
	END IF;
	-- Who pays and who earns, per bill: the accounts to lock (a bill whose
	-- parties cannot be found is left for the next run, with a warning).
	FOREACH o IN ARRAY orders LOOP
		BEGIN
			accounts := accounts || (evcharge.bill_lines(o, 0, 0, 0, 0)).accounts;
			ready := ready || o;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			RAISE WARNING 'bill % is not settled in this run: %', o, msg
				USING DETAIL = format('SQLSTATE %s, finding who pays it.', st),
				      HINT = 'settle_bills() tries it again on its next run; settle_bill() shows the error.';
		END;
	END LOOP;
	-- All the accounts at once, in account order.  Only a caller that holds
	-- accounts and then waits for others out of that order (several money
	-- calls in one transaction) can close a circle with this wait; if the
	-- deadlock detector picks this one, it lets go and waits again.
	LOOP
		BEGIN
			PERFORM evcharge.lock_accounts(accounts);
			EXIT;
		EXCEPTION WHEN deadlock_detected THEN
			tries := tries + 1;
			RAISE WARNING 'settle_bills() was in a deadlock while locking the accounts of % bills (try %)',
				cardinality(ready), tries
				USING DETAIL = 'Another transaction holds accounts and waits for others out of account order.',
				      HINT = 'Call one money function per transaction; see docs/money.md, "Locks and deadlocks".';
			IF tries >= 3 THEN
				RETURN;
			END IF;
		END;
	END LOOP;
	-- The batch in one subtransaction: a subtransaction per bill would make
	-- each update of an account this transaction locked above a MultiXact
	-- holding every earlier subtransaction, so the job's time grew with the
	-- square of its bills (1,000 bills 10.7 s, 2,000 42.9 s; bench/
	-- settle_bills.sh).  Only when a bill of the batch fails is the batch
	-- undone and settled bill by bill, each in its own subtransaction, so
	-- that the bad one is left final with its WARNING.
	BEGIN
		FOREACH o IN ARRAY ready LOOP
			PERFORM evcharge.settle_bill(o);
		END LOOP;
		settled := cardinality(ready);
		RETURN;
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	FOREACH o IN ARRAY ready LOOP
		BEGIN
			PERFORM evcharge.settle_bill(o);
			settled := settled + 1;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			RAISE WARNING 'bill % is not settled in this run: %', o, msg
				USING DETAIL = format('SQLSTATE %s, settling it.', st),
				      HINT = 'settle_bills() tries it again on its next run; settle_bill() shows the error.';
		END;
	END LOOP;
END $$;

-- == issue 15 item 7: one trigger makes a new operator's default rows ==
DROP TRIGGER operator_policy_default ON evcharge.operator;
DROP TRIGGER operator_finance_default ON evcharge.operator;
DROP TRIGGER operator_refund_fee_default ON evcharge.operator;
DROP FUNCTION evcharge.operator_policy_default();
DROP FUNCTION evcharge.operator_finance_default();
DROP FUNCTION evcharge.operator_refund_fee_default();
CREATE FUNCTION evcharge.operator_defaults() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	INSERT INTO evcharge.anomaly_policy (operator_id) SELECT n.operator_id FROM new_rows n
	ON CONFLICT (operator_id) DO NOTHING;
	INSERT INTO evcharge.finance_policy (operator_id) SELECT n.operator_id FROM new_rows n
	ON CONFLICT (operator_id) DO NOTHING;
	INSERT INTO evcharge.refund_fee_bands (operator_id, method, up_to, fixed_fee, rate)
	SELECT n.operator_id, d.method, d.up_to, d.fixed_fee, d.rate
	FROM new_rows n CROSS JOIN evcharge.default_refund_fee_bands() d
	ON CONFLICT (operator_id, method) DO NOTHING;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.operator_defaults() IS
	'trigger: every new operator gets its anomaly_policy, finance_policy and refund_fee_bands rows with the defaults';
CREATE TRIGGER operator_defaults AFTER INSERT ON evcharge.operator
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.operator_defaults();
COMMENT ON TRIGGER operator_defaults ON evcharge.operator IS
	'every new operator gets its anomaly thresholds, money settings and refund fee bands with the defaults';

-- == issue 15 item 3: who pays, one function (payer_of) ==
-- bill_parties, pays_for and the balance guard each had the rule; now they
-- ask payer_of().
CREATE FUNCTION evcharge.payer_of(p_member_id bigint, p_group_id bigint, p_partner_id bigint)
RETURNS TABLE (kind text, owner_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT CASE WHEN p_partner_id IS NOT NULL THEN
	                 CASE WHEN pa.kind = 'prepaid' THEN 'partner_prepaid' ELSE 'partner_receivable' END
	            WHEN d.group_id IS NOT NULL THEN 'department_wallet'
	            WHEN p_member_id IS NOT NULL THEN 'member_wallet'
	            ELSE 'unassigned_receivable' END,
	       CASE WHEN p_partner_id IS NOT NULL THEN p_partner_id
	            WHEN d.group_id IS NOT NULL THEN d.group_id
	            ELSE p_member_id END
	FROM (VALUES (1)) one (x)
	LEFT JOIN evcharge.partner pa ON pa.partner_id = p_partner_id
	LEFT JOIN LATERAL (
		SELECT g.group_id FROM evcharge.customer_group g
		WHERE g.pays_for_members AND p_partner_id IS NULL
		  AND g.group_id = coalesce(p_group_id, (SELECT m.group_id FROM evcharge.member m WHERE m.member_id = p_member_id))
	) d ON true;
END;
COMMENT ON FUNCTION evcharge.payer_of(bigint, bigint, bigint) IS
	'who pays a charge of this member, group and partner, as the kind and owner of the paying account: the partner (partner_prepaid or partner_receivable), else a paying department (department_wallet), else the member (member_wallet), else unassigned_receivable with no owner; the one rule of bill_parties, pays_for and balance_guard';

CREATE OR REPLACE FUNCTION evcharge.bill_parties(p_order_no text, OUT operator_id bigint, OUT payer bigint,
	OUT sub_operator_id bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	m evcharge.member;
	p record;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	SELECT st.operator_id INTO operator_id FROM evcharge.station st WHERE st.station_id = s.station_id;
	SELECT * INTO m FROM evcharge.member mm WHERE mm.member_id = s.member_id;
	SELECT * INTO p FROM evcharge.payer_of(s.member_id, s.group_id, s.partner_id);
	payer := evcharge.account_of(operator_id, p.kind, p.owner_id);
	sub_operator_id := evcharge.attributed_sub_operator(operator_id, s.station_id, coalesce(s.group_id, m.group_id),
		m.vin, m.card_no);
END $$;
COMMENT ON FUNCTION evcharge.bill_parties(text) IS
	'who pays a session (its account by the rule of payer_of: the partner''s account for partner starts, the department''s wallet for members of a paying department, else the member''s wallet, else unassigned receivable) and the sub-operator its revenue is attributed to (VIN, card, department, station, in that order)';

CREATE OR REPLACE FUNCTION evcharge.pays_for(w evcharge.account, p_member_id bigint, p_group_id bigint, p_partner_id bigint)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT EXISTS (SELECT 1 FROM evcharge.payer_of(p_member_id, p_group_id, p_partner_id) p
	               WHERE p.kind = w.kind AND p.owner_id = w.owner_id);
END;
COMMENT ON FUNCTION evcharge.pays_for(evcharge.account, bigint, bigint, bigint) IS
	'whether the wallet pays for a session of this member, group and partner, by the rule of payer_of()';

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
		       st.operator_id, fp.stop_threshold, fp.guard_interval, pay.kind AS payer_kind,
		       pay.owner_id AS payer_owner, cs.last_ts
		FROM unnest(p_orders) o
		JOIN evcharge.charge_session cs ON cs.order_no = o
		JOIN evcharge.gun_state g ON g.gun OPERATOR(evcharge.=) cs.gun
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.finance_policy fp ON fp.operator_id = st.operator_id
		CROSS JOIN LATERAL evcharge.payer_of(cs.member_id, cs.group_id, cs.partner_id) pay
		WHERE cs.state = 'charging'
		  AND pay.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
		  AND NOT EXISTS (SELECT 1 FROM evcharge.stop_request r WHERE r.order_no = cs.order_no)
	), w AS (
		-- Only sessions paid from a wallet; the price only for them.
		SELECT s.*, a.account_id, a.balance,
		       trunc(s.power_w / 1000.0 * extract(epoch FROM s.guard_interval) / 3600 * coalesce(
		           (SELECT max(p.energy_price + p.service_fee)
		            FROM evcharge.plan_in_force(s.station_id, evcharge.registered_current_type(s.gun), s.last_ts) t,
		                 evcharge.tariff_prices(t.tariff) p), 0), 2) AS projected
		FROM s
		JOIN LATERAL (SELECT a.account_id, a.balance FROM evcharge.account a
		              WHERE a.operator_id = s.operator_id AND a.kind = s.payer_kind AND a.owner_id = s.payer_owner
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
COMMENT ON FUNCTION evcharge.balance_guard(text[]) IS
	'called by the heartbeat trigger for the sessions a batch moved: a charging session whose paying wallet (member, department or prepaid partner) would fall below the operator''s stop_threshold within guard_interval at its present power and the plan''s highest price is recorded in stop_request and NOTIFY evcharge_stop is sent, once per session (for a charge an OCPP pile started, with a RemoteStopTransaction in ocpp_command); returns how many';

-- == issue 15 item 8: the pipeline calls nothing of money ==
-- A settled bill's revision is posted by the money layer's trigger on
-- bill_revision, no longer by finalise_bill and repair_bill; store_bill
-- writes the revision after the coupon is taken, so the accounts are
-- locked after the coupon as before.  (Files moved: finance_policy.sql,
-- start.sql, notices in bill.sql; no object changed by the moves.)
CREATE OR REPLACE FUNCTION evcharge.store_bill(b evcharge.bill, p_method text, p_reason text) RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old evcharge.bill;
BEGIN
	SELECT * INTO old FROM evcharge.bill WHERE order_no = b.order_no FOR UPDATE;
	IF NOT FOUND THEN
		-- Made by a repair: revision 1, with no bill before.
		b.revision := CASE WHEN p_method = 'auto' THEN 0 ELSE 1 END;
		INSERT INTO evcharge.bill SELECT b.*;
		IF b.revision = 1 THEN
			INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
			VALUES (b.order_no, 1, p_method, p_reason, NULL, to_jsonb(b));
		END IF;
	ELSE
		b.finalised_at := old.finalised_at;
		b.revision := old.revision + 1;
		b.updated_at := now();
		UPDATE evcharge.bill SET gun = b.gun, station_id = b.station_id, member_id = b.member_id,
			channel = b.channel, started_at = b.started_at, ended_at = b.ended_at,
			occupied_until = b.occupied_until, energy_wh = b.energy_wh, wh_by_class = b.wh_by_class,
			energy_fee = b.energy_fee, service_fee = b.service_fee, occupancy_fee = b.occupancy_fee,
			discount = b.discount, total = b.total, applied = b.applied, energy_source = b.energy_source,
			anomalies = b.anomalies, coupon_id = b.coupon_id, state = b.state, revision = b.revision,
			updated_at = b.updated_at, partner_order_no = b.partner_order_no, breakdown = b.breakdown
		WHERE order_no = b.order_no;
	END IF;
	UPDATE evcharge.coupon SET used_order_no = NULL, used_at = NULL
	WHERE used_order_no = b.order_no AND coupon_id IS DISTINCT FROM b.coupon_id;
	IF b.coupon_id IS NOT NULL THEN
		UPDATE evcharge.coupon SET used_order_no = b.order_no, used_at = now()
		WHERE coupon_id = b.coupon_id AND (used_order_no IS NULL OR used_order_no = b.order_no);
		IF NOT FOUND THEN
			RAISE EXCEPTION 'coupon % was taken by another bill while order % was billed', b.coupon_id, b.order_no
				USING ERRCODE = 'serialization_failure', HINT = 'Bill it again: finalise_bill() or repair_bill().';
		END IF;
	END IF;
	-- The revision last, once the coupon is taken: a settled bill's revision
	-- is what the money layer posts the difference of (money.sql,
	-- bill_revision_adjusts_ledger), and it locks accounts after the coupon
	-- as every money function does.
	IF old.order_no IS NOT NULL THEN
		INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
		VALUES (b.order_no, b.revision, p_method, p_reason, to_jsonb(old), to_jsonb(b));
	END IF;
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.store_bill(evcharge.bill, text, text) IS
	'writes a bill from compute_bill(): inserts it, or updates it and records the revision (method, reason, before, after); moves the coupon it uses';

CREATE OR REPLACE FUNCTION evcharge.finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	old evcharge.bill;
	nb evcharge.bill;
	why text;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session WHERE order_no = p_order_no FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record WHERE order_no = p_order_no ORDER BY received_at, ctid LIMIT 1;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO old FROM evcharge.bill WHERE order_no = p_order_no FOR UPDATE;
	-- A charge started at the pile: its record says by whom.  Not for a
	-- bill already settled: its payer has been charged.
	IF NOT FOUND OR old.state <> 'settled' THEN
		s := evcharge.identify_starter(s, rec);
	END IF;
	s := evcharge.take_partner_order_no(s, rec);
	IF old.order_no IS NOT NULL THEN
		IF NOT old.anomalies OPERATOR(evcharge.&&) '1+2'::evcharge.anomaly_set THEN
			RETURN false;
		END IF;
		-- A bill made from heartbeats gets its record: the pile's figures
		-- are authoritative, codes 1 and 2 go.  But energy a person agreed
		-- by hand (repair method manual) is an agreement with the driver:
		-- it is kept, and the record is only compared with it.
		PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
		IF EXISTS (SELECT 1 FROM evcharge.bill_revision r WHERE r.order_no = p_order_no AND r.method = 'manual') THEN
			nb := evcharge.compute_bill(p_order_no, 'manual', old.energy_wh);
			why := 'the pile record arrived after the bill was repaired by hand; the energy agreed by hand is kept';
			IF old.state <> 'held' THEN
				nb.state := old.state;
			END IF;
		ELSE
			nb := evcharge.compute_bill(p_order_no, 'auto');
			why := 'the pile record arrived after the bill was made from heartbeats';
		END IF;
		-- A settled bill stays settled: the difference moves in the ledger,
		-- and the driver is told when the operator says so.  One the record
		-- cannot be priced by keeps what was charged (try_finalise_bill
		-- records why).
		IF old.state = 'settled' AND nb.anomalies OPERATOR(evcharge.&&) '12+17+18+19'::evcharge.anomaly_set THEN
			RAISE EXCEPTION 'the late pile record of settled order % cannot be billed', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = array_to_string(nb.applied, '; '),
				      HINT = 'The settled bill stands; mend the cause, then repair_bill() it.';
		END IF;
		IF old.state = 'settled' THEN
			nb.state := 'settled';
		END IF;
		nb := evcharge.store_bill(nb, 'pile_record', why);
		UPDATE evcharge.charge_session SET bill_error = NULL WHERE order_no = p_order_no AND bill_error IS NOT NULL;
		-- The ledger follows the revision (money.sql, bill_revision_adjusts_ledger).
		IF old.state = 'settled' THEN
			PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
		END IF;
		RETURN true;
	END IF;
	-- A record before the unplug (many piles send it when charging stops)
	-- ends charging; the bill waits for the unplug, which the occupancy fee
	-- needs.  A session that never saw a heartbeat ends with its record.
	IF s.state IN ('charging', 'occupied') THEN
		UPDATE evcharge.charge_session SET state = 'occupied',
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
		RETURN false;
	ELSIF s.state = 'pending' THEN
		UPDATE evcharge.charge_session SET state = 'ended',
			started_at = coalesce(started_at, rec.started_at),
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at),
			occupied_until = coalesce(occupied_until, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
	END IF;
	-- The member's free coupons are locked first: two bills cannot take one.
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	PERFORM evcharge.make_bill(p_order_no);
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.finalise_bill(text) IS
	'makes the bill of a session that has ended and whose pile record is in (make_bill: held when a blocking anomaly is found or it cannot be priced), or completes a bill made from heartbeats when its record comes late (energy agreed by hand is kept; a settled bill''s difference is posted to the ledger); returns false when there is nothing to do yet';

CREATE OR REPLACE FUNCTION evcharge.repair_bill(order_no text, reason text, method text DEFAULT 'recompute',
	energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := repair_bill.order_no;
	s evcharge.charge_session;
	old evcharge.bill;
	had_bill boolean;
	nb evcharge.bill;
	rated int;
BEGIN
	IF repair_bill.reason IS NULL OR btrim(repair_bill.reason) = '' THEN
		RAISE EXCEPTION 'a repair of order % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver or the support ticket would read it: ''pile record lost, recomputed from heartbeats''.';
	END IF;
	IF repair_bill.method IS NULL OR repair_bill.method NOT IN ('recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'repair method "%" is not known', repair_bill.method
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	-- Energy is set by hand only in a manual repair; given to another
	-- method it would be dropped without a word.
	IF repair_bill.energy_wh IS NOT NULL AND repair_bill.method <> 'manual' THEN
		RAISE EXCEPTION 'a % repair takes no energy (% Wh given)', repair_bill.method, repair_bill.energy_wh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Energy agreed by hand is a manual repair: repair_bill(order_no, reason, ''manual'', 12500).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = v_order;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', v_order
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	IF s.state IN ('pending', 'charging', 'occupied', 'cancelled') THEN
		RAISE EXCEPTION 'order % has no bill to repair: its session is %', v_order, s.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'A bill is repaired once its session has ended.';
	END IF;
	-- One repair at a time per bill: a second one fails at once, it does not wait.
	BEGIN
		PERFORM 1 FROM evcharge.charge_session cs WHERE cs.order_no = v_order FOR UPDATE NOWAIT;
		SELECT * INTO old FROM evcharge.bill b WHERE b.order_no = v_order FOR UPDATE NOWAIT;
		had_bill := FOUND;
	EXCEPTION WHEN lock_not_available THEN
		RAISE EXCEPTION 'bill % is being repaired or billed by another session', v_order
			USING ERRCODE = 'lock_not_available',
			      HINT = 'Wait for it to finish, then look at evcharge.bill_revision before repairing again.';
	END;
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	-- Energy by hand beyond any bill of the operator is refused before it is priced.
	IF repair_bill.method = 'manual' AND repair_bill.energy_wh IS NOT NULL THEN
		PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
			repair_bill.energy_wh, NULL, format('a repair of order %s', v_order));
	END IF;
	nb := evcharge.compute_bill(v_order, repair_bill.method, repair_bill.energy_wh);
	-- A bill that still cannot be priced is not released at no amount: that
	-- would be a default price of zero.
	IF nb.anomalies OPERATOR(evcharge.&&) '12+17+19'::evcharge.anomaly_set THEN
		RAISE EXCEPTION 'order % still cannot be priced', v_order
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = array_to_string(ARRAY(SELECT a FROM unnest(nb.applied) a
			                                     WHERE a LIKE 'not priced: %' OR a LIKE 'no tariff in force: %'), '; '),
			      HINT = CASE
			          WHEN evcharge.anomaly_has(nb.anomalies, 17) THEN
			              format('Register pile %s with its current type (evcharge.pile), then repair again.', evcharge.pile(s.gun))
			          WHEN evcharge.anomaly_has(nb.anomalies, 12) THEN
			              'Add the plan in force at the time to evcharge.station_tariff, then repair again.'
			          ELSE 'Mend the cause the detail names, then repair again.' END;
	END IF;
	-- Plausible: energy set by hand no more than the gun can deliver in the
	-- bill's span, and no bill beyond the operator's limits, whatever the method.
	SELECT pl.rated_power_w INTO rated FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	IF repair_bill.method = 'manual' AND rated IS NOT NULL
	   AND nb.energy_wh > evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at) THEN
		RAISE EXCEPTION '% Wh cannot have been charged by gun % from % to %', nb.energy_wh, s.gun, nb.started_at, nb.ended_at
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The gun is rated %s W: at most %s Wh in that time (rated power x time x 1.2 + 10 Wh).',
			                      rated, floor(evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at))),
			      HINT = 'Check the energy agreed; if the pile''s own record is right, repair with method pile.';
	END IF;
	PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
		nb.energy_wh, nb.total, format('a repair of order %s', v_order));

	-- The same repair again changes nothing and returns the bill as it is.
	IF had_bill AND old.state IN ('final', 'settled')
	   AND (nb.energy_wh, nb.wh_by_class, nb.energy_fee, nb.service_fee, nb.occupancy_fee, nb.discount,
	        nb.total, nb.energy_source, nb.coupon_id, evcharge.anomaly_codes(nb.anomalies))
	       IS NOT DISTINCT FROM
	       (old.energy_wh, old.wh_by_class, old.energy_fee, old.service_fee, old.occupancy_fee, old.discount,
	        old.total, old.energy_source, old.coupon_id, evcharge.anomaly_codes(old.anomalies)) THEN
		RETURN old;
	END IF;

	-- A settled bill stays settled: the difference moves as an adjustment.
	IF had_bill AND old.state = 'settled' THEN
		nb.state := 'settled';
	END IF;
	nb := evcharge.store_bill(nb, repair_bill.method, repair_bill.reason);
	UPDATE evcharge.charge_session cs SET bill_error = NULL WHERE cs.order_no = v_order AND cs.bill_error IS NOT NULL;
	-- A settled bill's difference is posted by the money layer as the
	-- revision is written (money.sql, bill_revision_adjusts_ledger).

	IF had_bill THEN
		PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
	END IF;
	RETURN nb;
END $$;
COMMENT ON FUNCTION evcharge.repair_bill(text, text, text, bigint) IS
	'recomputes a bill (recompute: heartbeats, pile record and plans in force; pile: the pile''s energy; platform: the heartbeats'' energy; manual: energy_wh), releases it and records the revision with the reason (a settled bill stays settled and the difference is posted to the ledger); the same repair twice changes nothing; a repair already running on the bill makes this one fail at once (55P03); refused (22023): energy given to a method other than manual, manual energy beyond what the gun can deliver in the bill''s span (gun_energy_limit), a bill beyond the operator''s limits (check_bill_limits); refused (55000): a bill that still cannot be priced (no tariff, current type unknown, pricing failed)';

CREATE FUNCTION evcharge.bill_revision_adjusts_ledger() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM evcharge.adjust_settled_bill(NEW.order_no, jsonb_populate_record(NULL::evcharge.bill, NEW.before),
		jsonb_populate_record(NULL::evcharge.bill, NEW.after), NEW.reason);
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.bill_revision_adjusts_ledger() IS
	'trigger on bill_revision: a revision of a bill that was settled (not a refund''s) posts the difference between before and after through adjust_settled_bill, in the same transaction';
CREATE TRIGGER bill_revision_adjusts_ledger AFTER INSERT ON evcharge.bill_revision
	FOR EACH ROW WHEN (NEW.method <> 'refund' AND NEW.before ->> 'state' = 'settled')
	EXECUTE FUNCTION evcharge.bill_revision_adjusts_ledger();
COMMENT ON TRIGGER bill_revision_adjusts_ledger ON evcharge.bill_revision IS
	'the ledger follows a settled bill''s revision: the difference is posted (adjust_settled_bill) as the revision is written';

-- == issue 15 item 1: heartbeat acceptance written once, in C ==
-- The trigger's test (src/heartbeat_check.c) words its own reasons and
-- bounds pile clocks by the operator's anomaly_policy.plausible_from; the
-- SQL function that repeated it becomes that same C code, with the policy's
-- bound as an argument.
DROP FUNCTION evcharge.heartbeat_problem(evcharge.gun_id, timestamptz, evcharge.gun_status, bigint, smallint, evcharge.pile_id, int);
COMMENT ON COLUMN evcharge.anomaly_policy.plausible_from IS 'a pile clock before this is not set: a pile record starting before it is anomaly 3 (quarantined when its order is unknown), a heartbeat before it is quarantined';
-- Why a heartbeat cannot be accepted, or NULL: the heartbeat trigger's own
-- test and words (src/heartbeat_check.c), for a support engineer or a
-- loader to ask of one row.  p_pile and p_gun_count are the registered
-- pile's (NULL when it is not registered), p_plausible_from its operator's
-- anomaly_policy.plausible_from (NULL when the operator has no policy row).
CREATE FUNCTION evcharge.heartbeat_problem(p_gun evcharge.gun_id, p_ts timestamptz, p_status evcharge.gun_status,
	p_meter_wh bigint, p_soc smallint, p_pile evcharge.pile_id, p_gun_count int, p_plausible_from timestamptz)
	RETURNS text
	AS 'MODULE_PATHNAME', 'heartbeat_problem' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.heartbeat_problem(evcharge.gun_id, timestamptz, evcharge.gun_status, bigint, smallint, evcharge.pile_id, int, timestamptz) IS
	'why the heartbeat trigger would refuse this heartbeat (the quarantine reason), or NULL: its own test, in C; clocks are bounded by the operator''s plausible_from and a day after now()';


-- == issue 15 item 2: the occupancy fee and the coupon, one rule each ==
-- quote() and compute_bill worked both out each on its own and had drifted
-- (the quote said "group exempt" and "capped", the bill did not); both now
-- ask occupancy_charge() and best_coupon().
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

CREATE OR REPLACE FUNCTION evcharge.quote(station_id bigint, current_type text, group_id bigint,
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


-- == issue 15: SQL-callable C names follow type_action ==
-- price() is tou_tariff_price in C; the old C name stays in the library for
-- the frozen 0.1.0 and 0.2.0 install scripts.
CREATE OR REPLACE FUNCTION evcharge.price(tariff evcharge.tou_tariff, wh bigint[]) RETURNS evcharge.charge_amount
	AS 'MODULE_PATHNAME', 'tou_tariff_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- == issue 15: compute_bill tests for the plan instead of catching EV001 ==
-- (and, with item 2, asks occupancy_charge() and best_coupon()); the words
-- of "no plan in force" in one function for price_session and the bill; the
-- operator's bill limits tested (bill_limit_breach) rather than caught; the
-- anomaly rules name their codes (the names anomaly_set accepts).
-- Why a span cannot be priced, tested rather than raised: the first instant
-- of [p_from, p_to) (p_from itself when they are equal) at which no plan is
-- in force at the station for the current type, or NULL when a plan is in
-- force throughout.  It walks plan_in_force()'s answers by their until, so
-- the calendar and its precedence stay plan_in_force's: one probe per local
-- day or plan change of the span.
CREATE FUNCTION evcharge.plan_gap(p_station_id bigint, p_current_type text, p_from timestamptz, p_to timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t timestamptz := p_from;
	u timestamptz;
BEGIN
	LOOP
		SELECT f.until INTO u FROM evcharge.plan_in_force(p_station_id, p_current_type, t) f;
		IF NOT FOUND THEN
			RETURN t;
		END IF;
		IF u >= p_to THEN
			RETURN NULL;
		END IF;
		IF u <= t THEN
			RAISE EXCEPTION 'plan_in_force() at % holds only until %', t, u
				USING ERRCODE = 'internal_error';
		END IF;
		t := u;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.plan_gap(bigint, text, timestamptz, timestamptz) IS
	'the first instant of [p_from, p_to) (p_from when equal) at which the station has no plan in force for the current type, by plan_in_force(); NULL when a plan is in force throughout: compute_bill tests it instead of catching EV001';

-- The words of "no plan in force", the one wording of price_session's
-- EV001 and of the bill held for it (anomaly 12): the time in the
-- station's zone, named.
CREATE FUNCTION evcharge.no_plan_reason(p_station_id bigint, p_current_type text, p_at timestamptz)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT format('no tariff in force for station %s (%s) at %s', p_station_id, p_current_type,
	              to_char(p_at AT TIME ZONE s.tz, 'YYYY-MM-DD HH24:MI:SS') || ' ' || s.tz)
	FROM (SELECT 1) one LEFT JOIN evcharge.station s ON s.station_id = p_station_id;
END;
COMMENT ON FUNCTION evcharge.no_plan_reason(bigint, text, timestamptz) IS
	'"no tariff in force for station N (AC) at <local time> <zone>": the words of price_session''s EV001 and of a bill held for anomaly 12';

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

-- The operator's plausibility limits for one bill (finance_policy), the
-- one rule: why a bill of this energy and total is beyond them, in the
-- words of an error (message, detail, hint), or NULLs when it is within.
-- compute_bill tests it (anomaly 18); check_bill_limits raises it.
CREATE FUNCTION evcharge.bill_limit_breach(p_operator_id bigint, p_energy_wh numeric, p_total numeric, p_what text,
	OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	fp evcharge.finance_policy;
BEGIN
	SELECT * INTO fp FROM evcharge.finance_policy f WHERE f.operator_id = p_operator_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
	END IF;
	IF p_energy_wh > fp.max_bill_energy_wh THEN
		message := format('%s would bill %s Wh, more than one bill of operator %s may carry', p_what, trim_scale(p_energy_wh), p_operator_id);
		detail := format('The operator''s limit is %s Wh (finance_policy.max_bill_energy_wh).', fp.max_bill_energy_wh);
		hint := 'Check the energy; if such a charge is real, the operator raises its limit.';
	ELSIF p_total > fp.max_bill_amount THEN
		message := format('%s would bill %s yuan, more than one bill of operator %s may come to', p_what, p_total, p_operator_id);
		detail := format('The operator''s limit is %s yuan (finance_policy.max_bill_amount).', fp.max_bill_amount);
		hint := 'Check the energy and the prices; if such a bill is real, the operator raises its limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.bill_limit_breach(bigint, numeric, numeric, text) IS
	'why a bill''s energy or total is beyond the operator''s finance_policy.max_bill_energy_wh or max_bill_amount (energy first), as message, detail and hint; NULLs when within; P0002 for an operator not registered: the one rule of check_bill_limits and compute_bill (anomaly 18)';

CREATE OR REPLACE FUNCTION evcharge.check_bill_limits(p_operator_id bigint, p_energy_wh numeric, p_total numeric, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	br record;
BEGIN
	SELECT * INTO br FROM evcharge.bill_limit_breach(p_operator_id, p_energy_wh, p_total, p_what);
	IF br.message IS NOT NULL THEN
		RAISE EXCEPTION '%', br.message
			USING ERRCODE = 'invalid_parameter_value', DETAIL = br.detail, HINT = br.hint;
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_bill_limits(bigint, numeric, numeric, text) IS
	'raises 22023 when a bill''s energy or total is beyond the operator''s finance_policy.max_bill_energy_wh or max_bill_amount (bill_limit_breach; P0002 for an operator not registered); used by repair_bill and quote';

CREATE OR REPLACE FUNCTION evcharge.compute_bill(p_order_no text, p_method text DEFAULT 'auto', p_energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	has_rec boolean;
	pol evcharge.anomaly_policy;
	rated int;
	firmware text;
	allowed text[];
	smp record;
	nsamples int;
	measured bigint;
	t_start timestamptz;
	t_end timestamptz;
	times_ok boolean := true;
	plausible boolean := true;
	chosen bigint;
	source text;
	ts timestamptz[];
	wh bigint[];
	q evcharge.charge_quote;
	ctype text;
	no_price evcharge.anomaly_set;	-- why it has no price: no_tariff, current_type_unknown or not_priced (docs/anomalies.md)
	codes evcharge.anomaly_set := '';
	occ record;
	gap timestamptz;			-- the first instant without a plan in force
	breach text;				-- why the bill is beyond the operator's limits
	occupancy numeric := 0;
	applied text[];
	cp record;
	discount numeric := 0;
	tol bigint;
	b evcharge.bill;
	i int;
	blind boolean;
BEGIN
	IF p_method IS NULL OR p_method NOT IN ('auto', 'recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'bill method "%" is not known', p_method
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A bill is computed by recompute, pile, platform or manual (auto is the pipeline''s own).',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	has_rec := FOUND;
	pol := evcharge.station_policy(s.station_id);
	tol := pol.energy_tolerance_wh;
	SELECT pl.rated_power_w, pl.firmware, pl.current_type INTO rated, firmware, ctype
	FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	SELECT pa.allowed_channels INTO allowed FROM evcharge.partner pa WHERE pa.partner_id = s.partner_id;

	-- The pile's clock: a record dated 1999, ending before it starts, ending
	-- after it was received, or far from the platform's start is not believed.
	IF has_rec THEN
		times_ok := cardinality(evcharge.pile_record_clock_faults(rec, s.started_at, pol, 'UTC')) = 0;
	END IF;
	t_start := coalesce(s.started_at, CASE WHEN has_rec AND times_ok THEN rec.started_at END, s.created_at);
	t_end := coalesce(s.charging_ended_at, CASE WHEN has_rec AND times_ok THEN rec.ended_at END, s.last_ts,
		s.occupied_until, t_start);
	-- The gun went offline during the session: what the platform saw ends
	-- at the silence, so the pile's own end (when its clock is believed) is
	-- the end, and the pile's figures are not held against the heartbeats'.
	blind := EXISTS (SELECT 1 FROM evcharge.offline_period o
		WHERE o.gun OPERATOR(evcharge.=) s.gun AND o.started_at <= coalesce(s.occupied_until, t_end)
		  AND coalesce(o.ended_at, 'infinity') >= t_start);
	IF blind AND has_rec AND times_ok AND rec.ended_at > t_end THEN
		t_end := rec.ended_at;
	END IF;

	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);
	measured := CASE WHEN nsamples > 0 THEN smp.meter_wh[nsamples] ELSE 0 END;

	-- The pile's energy is believed only if the gun could deliver it in the
	-- longer of the record's span and the platform's.
	IF has_rec AND rec.energy_wh IS NOT NULL THEN
		plausible := coalesce(rec.energy_wh <= rated::bigint * extract(epoch FROM
			greatest(CASE WHEN times_ok THEN rec.ended_at - rec.started_at END, t_end - t_start)) / 3600 * 1.2 + 10, true);
	END IF;

	CASE p_method
	WHEN 'auto', 'recompute' THEN
		IF has_rec AND rec.energy_wh IS NOT NULL AND plausible THEN
			chosen := rec.energy_wh;
			source := 'pile';
		ELSE
			source := 'heartbeats';
		END IF;
	WHEN 'pile' THEN
		IF NOT has_rec OR rec.energy_wh IS NULL THEN
			RAISE EXCEPTION 'order % has no pile record with energy', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Use recompute, platform, or manual with the energy.';
		END IF;
		chosen := rec.energy_wh;
		source := 'pile';
	WHEN 'platform' THEN
		source := 'heartbeats';
	ELSE
		IF p_energy_wh IS NULL OR p_energy_wh < 0 THEN
			RAISE EXCEPTION 'energy % Wh cannot be set by hand', coalesce(p_energy_wh::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'A manual repair needs the energy in Wh, 0 or more: repair_bill(order_no, reason, ''manual'', 12500).';
		END IF;
		chosen := p_energy_wh;
		source := 'manual';
	END CASE;

	-- The curve to price: measured, scaled to the chosen total in the
	-- measured proportions, or the total evenly over the span.
	IF measured = 0 THEN
		ts := ARRAY[t_start, greatest(t_end, t_start + interval '1 s')];
		wh := ARRAY[0, coalesce(chosen, 0)];
	ELSIF chosen IS NULL THEN
		ts := smp.ts;
		wh := smp.meter_wh;
	ELSE
		ts := smp.ts;
		wh := smp.meter_wh;
		FOR i IN 1 .. nsamples LOOP
			wh[i] := floor(smp.meter_wh[i]::numeric * chosen / measured)::bigint;
		END LOOP;
	END IF;

	-- Priced by the registry's current type.  Whatever keeps a session from
	-- being priced (no type, no plan, an error in pricing) gives a bill with
	-- its energy, no amount and the reason, held: never a default price,
	-- never no bill.
	IF ctype IS NULL THEN
		no_price := 'current_type_unknown';
		applied := ARRAY[format(CASE WHEN rated IS NULL THEN 'not priced: pile %s is not in the pile registry, which gives its current type'
		                             ELSE 'not priced: the pile registry does not give the current type of pile %s' END,
		                        evcharge.pile(s.gun))];
	ELSE
		-- No plan in force is tested, not caught (anomaly 12); what no
		-- test can foresee (a group of another operator, an amount beyond
		-- range) is caught, so the record still gives a held bill (19).
		SELECT evcharge.plan_gap(s.station_id, ctype, min(u.t), max(u.t)) INTO gap
		FROM unnest(ts, wh) AS u(t, w) WHERE u.w >= 0;
		IF gap IS NOT NULL THEN
			no_price := 'no_tariff';
			applied := ARRAY['no tariff in force: ' || evcharge.no_plan_reason(s.station_id, ctype, gap)];
		ELSE
			BEGIN
				q := evcharge.price_session(s.station_id, ctype, s.group_id, ts, wh);
				applied := q.applied;
			EXCEPTION WHEN OTHERS THEN
				no_price := 'not_priced';
				applied := ARRAY[format('not priced: %s: %s', SQLSTATE, SQLERRM)];
			END;
		END IF;
	END IF;
	IF no_price IS NOT NULL THEN
		q.kwh := wh[array_length(wh, 1)] / 1000.0;
		q.class_kwh := ARRAY[0, 0, 0, 0];
		q.energy_fee := 0;
		q.service_fee := 0;
	END IF;
	IF NOT plausible THEN
		applied := applied || format('the pile''s %s Wh exceed what %s W allow in its span', rec.energy_wh, rated);
	END IF;
	-- A partner order number in the pile's record that the session did not
	-- take (finalise_bill) is said on the bill.
	IF has_rec AND rec.partner_order_no IS DISTINCT FROM s.partner_order_no AND rec.partner_order_no IS NOT NULL THEN
		applied := applied || format('the pile record''s partner order number "%s" is not taken: %s',
			left(rec.partner_order_no, 80), coalesce(evcharge.partner_order_no_refusal(s, rec.partner_order_no),
			                                         'another session took it at the same moment'));
	END IF;

	-- Occupancy and the coupon, by the rules quote() uses; the coupon this
	-- bill already holds counts as free.
	IF no_price IS NULL THEN
		SELECT o.fee, o.applied INTO occ
		FROM evcharge.occupancy_charge(s.station_id, s.group_id, s.charging_ended_at, s.occupied_until) o;
		occupancy := occ.fee;
		IF occ.applied IS NOT NULL THEN
			applied := applied || occ.applied;
		END IF;
	END IF;
	IF s.member_id IS NOT NULL THEN
		SELECT c.coupon_id, c.discount INTO cp
		FROM evcharge.best_coupon(s.station_id, s.member_id, t_start, q.kwh, q.service_fee, p_order_no) c;
		IF FOUND THEN
			discount := cp.discount;
			applied := applied || format('coupon: %s', cp.coupon_id);
			b.coupon_id := cp.coupon_id;
		END IF;
	END IF;

	b.order_no := p_order_no;
	b.gun := s.gun;
	b.station_id := s.station_id;
	b.member_id := s.member_id;
	b.channel := s.channel;
	b.started_at := t_start;
	b.ended_at := t_end;
	b.occupied_until := s.occupied_until;
	b.energy_wh := round(q.kwh * 1000)::bigint;
	b.wh_by_class := ARRAY(SELECT round(k * 1000)::bigint FROM unnest(q.class_kwh) k);
	b.energy_fee := q.energy_fee;
	b.service_fee := q.service_fee;
	b.occupancy_fee := occupancy;
	b.discount := discount;
	b.total := q.energy_fee + q.service_fee + occupancy - discount;
	b.applied := ARRAY(SELECT a FROM unnest(applied) a ORDER BY a);
	b.energy_source := source;
	b.partner_order_no := s.partner_order_no;
	-- Per class, exact and as charged; nothing to break down without a price.
	b.breakdown := CASE WHEN no_price IS NULL THEN evcharge.bill_breakdown(b.wh_by_class, q.class_energy_fee, q.class_service_fee) END;

	-- Anomalies (docs/anomalies.md).
	IF NOT has_rec THEN
		codes := codes OPERATOR(evcharge.|) CASE WHEN blind THEN 'bill_lost_offline' ELSE 'bill_lost' END::evcharge.anomaly_set;
	ELSE
		IF NOT times_ok THEN
			codes := codes OPERATOR(evcharge.|) 'time_anomaly';
		END IF;
		-- Blind, the pile may well have charged more than was seen, never
		-- less: only less (or an implausible figure) is a mismatch then.
		IF rec.energy_wh IS NOT NULL AND (NOT plausible OR (measured > 0 AND
			CASE WHEN blind THEN measured - rec.energy_wh ELSE abs(rec.energy_wh - measured) END
			> greatest(tol, greatest(rec.energy_wh, measured) * pol.energy_tolerance_pct / 100))) THEN
			codes := codes OPERATOR(evcharge.|) 'energy_mismatch';
		END IF;
		IF times_ok AND NOT blind AND s.started_at IS NOT NULL AND s.charging_ended_at IS NOT NULL
		   AND greatest((rec.ended_at - rec.started_at) - (s.charging_ended_at - s.started_at),
		                (s.charging_ended_at - s.started_at) - (rec.ended_at - rec.started_at)) > pol.duration_tolerance THEN
			codes := codes OPERATOR(evcharge.|) 'duration_mismatch';
		END IF;
		IF times_ok AND NOT blind AND s.charging_ended_at IS NOT NULL AND s.occupied_until IS NOT NULL
		   AND greatest(rec.ended_at - s.charging_ended_at, s.charging_ended_at - rec.ended_at) > pol.occupancy_tolerance THEN
			codes := codes OPERATOR(evcharge.|) 'occupancy_mismatch';
		END IF;
	END IF;
	IF t_end < t_start THEN
		codes := codes OPERATOR(evcharge.|) 'time_anomaly';
	END IF;
	IF t_end - t_start > pol.max_session OR (t_end <= t_start AND b.energy_wh > 0) THEN
		codes := codes OPERATOR(evcharge.|) 'duration_anomaly';
	END IF;
	IF smp.jump_wh > tol THEN
		codes := codes OPERATOR(evcharge.|) 'energy_lost';
	END IF;
	IF no_price IS NOT NULL THEN
		codes := codes OPERATOR(evcharge.|) no_price;
	ELSIF b.energy_wh > 0 AND b.total <= 0 THEN
		codes := codes OPERATOR(evcharge.|) 'nonpositive_amount';
	END IF;
	IF allowed IS NOT NULL AND s.channel <> ALL (allowed) THEN
		codes := codes OPERATOR(evcharge.|) 'channel_not_allowed';
	END IF;
	IF b.energy_wh > tol AND measured = 0 AND nsamples >= 2 THEN
		codes := codes OPERATOR(evcharge.|) 'no_energy_flowed';
	END IF;
	IF firmware LIKE ANY (pol.defective_firmware) THEN
		codes := codes OPERATOR(evcharge.|) 'defective_firmware';
	END IF;
	-- More than the operator allows one bill (finance_policy): held, the limit said.
	SELECT br.message INTO breach
	FROM evcharge.bill_limit_breach((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
		b.energy_wh, CASE WHEN no_price IS NULL THEN b.total END, format('order %s', p_order_no)) br;
	IF breach IS NOT NULL THEN
		codes := codes OPERATOR(evcharge.|) 'beyond_bill_limits';
		b.applied := ARRAY(SELECT a FROM unnest(b.applied || breach) a ORDER BY a);
	END IF;
	b.anomalies := codes;
	b.state := CASE WHEN p_method = 'auto' AND evcharge.anomaly_blocking(b.anomalies) THEN 'held' ELSE 'final' END;
	b.revision := 0;
	b.finalised_at := now();
	b.updated_at := now();
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.compute_bill(text, text, bigint) IS
	'the bill a session would have now and its anomalies, written nowhere: method auto as the pipeline bills (held on a blocking anomaly), recompute, pile, platform or manual (p_energy_wh) as a repair would; priced by the registry''s current type; a session that cannot be priced keeps its energy with no amount (12 no tariff, 17 current type unknown, 19 pricing failed), one beyond the operator''s finance_policy limits carries 18';

-- == issue 16 item 1, last: the sessions 0.2.0 could not bill ==
-- After every section that changes bill or compute_bill.
-- Sessions whose bill failed under 0.2.0 though their pile record is in
-- (charge_session.bill_error): billed now, priced where they can be, held
-- with the reason where they cannot.  (Those without a record are
-- detect_lost_bills()' work, as ever.)
DO $$
DECLARE
	o text;
BEGIN
	FOR o IN
		SELECT cs.order_no FROM evcharge.charge_session cs
		WHERE cs.state = 'ended'
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = cs.order_no)
		  AND EXISTS (SELECT 1 FROM evcharge.pile_record r WHERE r.order_no = cs.order_no)
		ORDER BY cs.order_no
	LOOP
		PERFORM evcharge.make_bill(o);
	END LOOP;
END $$;
