-- calendar.sql: plans by calendar.  An operator's holiday calendar (public
-- holidays and the make-up working days China has), the days it declares
-- (a high-temperature day), its seasons (months), and plan_in_force(), the
-- one answer to "which plan prices this station's AC or DC piles at this
-- instant", which quote, the pipeline's heartbeat trigger, compute_bill
-- (through price_session), the balance guard and the evidence all ask.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

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

SELECT pg_catalog.pg_extension_config_dump('evcharge.calendar_day', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.declared_day', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.tariff_season', '');
