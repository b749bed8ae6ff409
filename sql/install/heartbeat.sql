-- heartbeat.sql: what the pile side writes (registered piles, heartbeats),
-- what cannot be accepted (quarantine), and the live state of every gun,
-- kept by the statement-level trigger in src/heartbeat_trigger.c.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TYPE evcharge.gun_status AS ENUM ('idle', 'plugged', 'charging', 'suspended', 'occupied', 'fault');
COMMENT ON TYPE evcharge.gun_status IS
	'What a gun reports: idle, plugged (not charging), charging, suspended (paused by car or pile), occupied (finished but still plugged, 满电占桩), fault';

CREATE TABLE evcharge.pile (
	pile_id evcharge.pile_id PRIMARY KEY CONSTRAINT pile_id_not_legacy CHECK (NOT evcharge.is_legacy(pile_id)),
	station_id bigint NOT NULL REFERENCES evcharge.station,
	gun_count int NOT NULL CHECK (gun_count BETWEEN 1 AND 999),
	rated_power_w int NOT NULL CHECK (rated_power_w > 0),
	firmware text,
	registered_at timestamptz NOT NULL DEFAULT now(),
	current_type text CONSTRAINT pile_current_type_check CHECK (current_type IN ('AC', 'DC'))
		CONSTRAINT pile_current_type_as_id CHECK (current_type = coalesce(evcharge.current_type(pile_id), current_type))
		CONSTRAINT pile_current_type_known CHECK (current_type IS NOT NULL
			OR coalesce(evcharge.product_kind(pile_id) = 'ground_lock', false))
);
CREATE INDEX pile_station_idx ON evcharge.pile (station_id);
COMMENT ON INDEX evcharge.pile_station_idx IS 'the piles of a station';
COMMENT ON TABLE evcharge.pile IS
	'Registered piles, guns numbered 1..gun_count; traffic for any other gun goes to quarantine.  Legacy 16-digit ids are refused: the cloud protocol does not accept them';
COMMENT ON COLUMN evcharge.pile.pile_id IS '20-digit pile id; its digits 14-15 give the current type when they are 01 (AC) or 02 (DC)';
COMMENT ON COLUMN evcharge.pile.station_id IS 'the station the pile stands at';
COMMENT ON COLUMN evcharge.pile.gun_count IS 'number of guns, numbered from 1';
COMMENT ON COLUMN evcharge.pile.rated_power_w IS 'rated power per gun in watts: a meter jump larger than this allows is not billed';
COMMENT ON COLUMN evcharge.pile.firmware IS 'firmware version as the pile reports it';
COMMENT ON COLUMN evcharge.pile.registered_at IS 'when the pile was registered';
COMMENT ON COLUMN evcharge.pile.current_type IS
	'AC or DC, what its sessions are priced by: taken from the id when digits 14-15 say it (01, 02), given at registration when they do not (Jianxin''s 10); NULL only for a parking ground lock whose id does not say';
COMMENT ON CONSTRAINT pile_id_not_legacy ON evcharge.pile IS
	'16-digit legacy ids are refused (the trigger pile_registration words the error)';
COMMENT ON CONSTRAINT pile_current_type_check ON evcharge.pile IS 'a current type is AC or DC';
COMMENT ON CONSTRAINT pile_current_type_as_id ON evcharge.pile IS
	'the current type agrees with the id''s digits 14-15 when they say it: the old platform showed AC piles as DC';
COMMENT ON CONSTRAINT pile_current_type_known ON evcharge.pile IS
	'every pile that charges knows its current type; a parking ground lock delivers no energy and may have none';

-- Registration: the current type from the id, or the one given when the id
-- does not say it; refusals worded for the person registering (a CHECK
-- constraint's own error names only the constraint).  A row trigger:
-- piles are registered by hand or by a loader a few at a time, not traffic.
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

-- The current type a gun's sessions are priced by: the registry's, never
-- the id's alone (an id may not say it).  NULL for a gun not registered.
CREATE FUNCTION evcharge.registered_current_type(gun evcharge.gun_id) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT pl.current_type FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(gun));
COMMENT ON FUNCTION evcharge.registered_current_type(evcharge.gun_id) IS
	'AC or DC as the pile registry has it for the gun''s pile (evcharge.pile.current_type): what pricing uses; NULL when the pile is not registered or is a ground lock without one';

-- Heartbeats: the raw log of what piles sent, partitioned by day on ts.  No
-- constraint beyond the column types (not even NOT NULL on gun, time and
-- status), so that a COPY is never failed by one bad row: the trigger moves
-- rows it cannot accept to evcharge.quarantine.
CREATE TABLE evcharge.heartbeat (
	gun evcharge.gun_id,
	ts timestamptz,
	status evcharge.gun_status,
	meter_wh bigint,
	power_w integer,
	voltage_v numeric(7, 2),
	current_a numeric(7, 2),
	soc smallint,
	fault_code smallint,
	order_no text,
	received_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
COMMENT ON TABLE evcharge.heartbeat IS
	'Heartbeats and real-time data per gun, as piles send them (every 10-60 s, about every 15 s while charging); partitioned by day on ts, see maintain_partitions()';
COMMENT ON COLUMN evcharge.heartbeat.gun IS 'the gun';
COMMENT ON COLUMN evcharge.heartbeat.ts IS 'when the pile took the sample (its clock)';
COMMENT ON COLUMN evcharge.heartbeat.status IS 'gun status';
COMMENT ON COLUMN evcharge.heartbeat.meter_wh IS 'cumulative energy register in Wh (-1 or NULL: no reading)';
COMMENT ON COLUMN evcharge.heartbeat.power_w IS 'power in W';
COMMENT ON COLUMN evcharge.heartbeat.voltage_v IS 'voltage in V';
COMMENT ON COLUMN evcharge.heartbeat.current_a IS 'current in A';
COMMENT ON COLUMN evcharge.heartbeat.soc IS 'state of charge of the car, percent';
COMMENT ON COLUMN evcharge.heartbeat.fault_code IS 'fault code, 0 for none (99: other)';
COMMENT ON COLUMN evcharge.heartbeat.order_no IS 'order number of the charge in progress, as the pile knows it';
COMMENT ON COLUMN evcharge.heartbeat.received_at IS 'when the platform received it';

-- Rows whose time has no partition yet, or is far from now, land here.
CREATE TABLE evcharge.heartbeat_default PARTITION OF evcharge.heartbeat DEFAULT;
COMMENT ON TABLE evcharge.heartbeat_default IS
	'Default partition of heartbeat: rows whose day has no partition (maintain_partitions() creates them ahead)';
-- Each partition has its own (gun, ts) index, made with it (this one here,
-- the daily ones by maintain_partitions()), and the partitioned table has
-- none: an index on it would be an extension object that pg_restore
-- recreates on every partition when it attaches it, before the dump's own
-- CREATE INDEX of that partition's index, which then fails ("already
-- exists").
CREATE INDEX heartbeat_default_gun_ts_idx ON evcharge.heartbeat_default (gun, ts);
COMMENT ON INDEX evcharge.heartbeat_default_gun_ts_idx IS
	'a gun''s heartbeats in time order (bills, evidence and the session machine read them back); each daily partition has its own';

CREATE TABLE evcharge.quarantine (
	quarantine_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source text NOT NULL CHECK (source IN ('heartbeat', 'pile_record')),
	reason text NOT NULL,
	gun evcharge.gun_id,
	ts timestamptz,
	payload jsonb NOT NULL,
	quarantined_at timestamptz NOT NULL DEFAULT now(),
	replayed_at timestamptz
);
CREATE INDEX quarantine_pending_idx ON evcharge.quarantine (gun) WHERE replayed_at IS NULL;
COMMENT ON INDEX evcharge.quarantine_pending_idx IS 'quarantined rows not yet replayed, by gun: replay_quarantine() of one pile';
COMMENT ON TABLE evcharge.quarantine IS
	'Traffic that could not be accepted, kept whole with the reason; replay_quarantine() feeds it again after the cause is mended (a pile registered)';
COMMENT ON COLUMN evcharge.quarantine.quarantine_id IS 'row id';
COMMENT ON COLUMN evcharge.quarantine.source IS 'heartbeat or pile_record';
COMMENT ON COLUMN evcharge.quarantine.reason IS 'why it was not accepted';
COMMENT ON COLUMN evcharge.quarantine.gun IS 'the gun it names';
COMMENT ON COLUMN evcharge.quarantine.ts IS 'its time';
COMMENT ON COLUMN evcharge.quarantine.payload IS 'the row as received';
COMMENT ON COLUMN evcharge.quarantine.quarantined_at IS 'when it was quarantined';
COMMENT ON COLUMN evcharge.quarantine.replayed_at IS 'when replay_quarantine() fed it again (NULL: still waiting)';

CREATE TABLE evcharge.gun_state (
	gun evcharge.gun_id PRIMARY KEY,
	station_id bigint NOT NULL,
	status evcharge.gun_status NOT NULL,
	online boolean NOT NULL DEFAULT true,
	last_heartbeat timestamptz NOT NULL,
	current_order text,
	power_w integer,
	soc smallint,
	meter_wh bigint,
	fault_code smallint,
	updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);
-- Every heartbeat batch rewrites these rows: room on the page and no index
-- on the columns that change keep the updates in place (HOT).  The offline
-- sweep reads the table once a minute; it needs no index.
CREATE INDEX gun_state_station_idx ON evcharge.gun_state (station_id);
COMMENT ON INDEX evcharge.gun_state_station_idx IS 'the live state of a station''s guns';
COMMENT ON TABLE evcharge.gun_state IS
	'Live state of each gun: its latest heartbeat (a late, older heartbeat never overwrites a newer one) and whether it is online';
COMMENT ON COLUMN evcharge.gun_state.gun IS 'the gun';
COMMENT ON COLUMN evcharge.gun_state.station_id IS 'its station';
COMMENT ON COLUMN evcharge.gun_state.status IS 'status of the latest heartbeat';
COMMENT ON COLUMN evcharge.gun_state.online IS 'false once sweep_offline() found it silent too long; true again on its next heartbeat';
COMMENT ON COLUMN evcharge.gun_state.last_heartbeat IS 'time of the latest heartbeat';
COMMENT ON COLUMN evcharge.gun_state.current_order IS 'order number of the latest heartbeat';
COMMENT ON COLUMN evcharge.gun_state.power_w IS 'latest power, W';
COMMENT ON COLUMN evcharge.gun_state.soc IS 'latest state of charge, percent';
COMMENT ON COLUMN evcharge.gun_state.meter_wh IS 'latest meter reading, Wh';
COMMENT ON COLUMN evcharge.gun_state.fault_code IS 'latest fault code';
COMMENT ON COLUMN evcharge.gun_state.updated_at IS 'when the row was last written';

CREATE TABLE evcharge.offline_period (
	offline_period_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	gun evcharge.gun_id NOT NULL,
	station_id bigint NOT NULL,
	started_at timestamptz NOT NULL,
	detected_at timestamptz NOT NULL,
	ended_at timestamptz,
	network_incident_id bigint,
	CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX offline_period_open_idx ON evcharge.offline_period (gun) WHERE ended_at IS NULL;
COMMENT ON INDEX evcharge.offline_period_open_idx IS 'at most one open offline period per gun';
CREATE INDEX offline_period_station_idx ON evcharge.offline_period (station_id, started_at);
COMMENT ON INDEX evcharge.offline_period_station_idx IS 'offline periods of a station in time: network incidents and reports';
CREATE INDEX offline_period_gun_idx ON evcharge.offline_period (gun, started_at);
COMMENT ON INDEX evcharge.offline_period_gun_idx IS 'a gun''s offline periods in time: every bill asks whether its gun went offline during the charge';
COMMENT ON TABLE evcharge.offline_period IS
	'Each span a gun was silent: from its last heartbeat until the next one (ended_at NULL while it lasts)';
COMMENT ON COLUMN evcharge.offline_period.offline_period_id IS 'row id';
COMMENT ON COLUMN evcharge.offline_period.gun IS 'the gun';
COMMENT ON COLUMN evcharge.offline_period.station_id IS 'its station';
COMMENT ON COLUMN evcharge.offline_period.started_at IS 'its last heartbeat before the silence';
COMMENT ON COLUMN evcharge.offline_period.detected_at IS 'when sweep_offline() marked it offline';
COMMENT ON COLUMN evcharge.offline_period.ended_at IS 'its first heartbeat after the silence';
COMMENT ON COLUMN evcharge.offline_period.network_incident_id IS 'the network incident it is part of, if any';

CREATE TABLE evcharge.network_incident (
	network_incident_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	station_id bigint NOT NULL,
	started_at timestamptz NOT NULL,
	detected_at timestamptz NOT NULL,
	piles int NOT NULL,
	guns int NOT NULL,
	ended_at timestamptz
);
ALTER TABLE evcharge.offline_period
	ADD FOREIGN KEY (network_incident_id) REFERENCES evcharge.network_incident;
COMMENT ON TABLE evcharge.network_incident IS
	'Many piles of one station silent from the same couple of minutes: a network (4G carrier) incident, reported once instead of a fault per pile';
COMMENT ON COLUMN evcharge.network_incident.network_incident_id IS 'row id';
COMMENT ON COLUMN evcharge.network_incident.station_id IS 'the station';
COMMENT ON COLUMN evcharge.network_incident.started_at IS 'the earliest last heartbeat among its piles';
COMMENT ON COLUMN evcharge.network_incident.detected_at IS 'when sweep_offline() recognised it';
COMMENT ON COLUMN evcharge.network_incident.piles IS 'piles that went silent together';
COMMENT ON COLUMN evcharge.network_incident.guns IS 'guns that went silent together';
COMMENT ON COLUMN evcharge.network_incident.ended_at IS 'when the last of its guns was heard again';

-- The one rule for a time given to a job or a report (an "at", a day, a
-- month): finite, not before 2015-01-01 00:00+08 (the platform's first day,
-- as for heartbeats: an earlier time is a clock that is not set), and not
-- later than ahead after now (clock_timestamp()); ahead NULL: no upper
-- bound.  what names the argument in the error.  An infinite time would make
-- a job run without end (generate_series to infinity) or treat every gun,
-- partition or session as due.
CREATE FUNCTION evcharge.check_time(t timestamptz, what text, ahead interval DEFAULT interval '1 day',
	shown text DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	earliest constant timestamptz := '2015-01-01 00:00+08';
	val text := coalesce(shown, t::text);
	hint text := format('Give %s from 2015-01-01 00:00+08 to %s.', what,
		CASE WHEN ahead IS NULL THEN 'any later time'
		     WHEN ahead = interval '0' THEN 'now()'
		     ELSE 'now() + ' || ahead::text END);
BEGIN
	IF t IS NULL THEN
		RAISE EXCEPTION '% cannot be NULL', what
			USING ERRCODE = 'null_value_not_allowed', HINT = hint;
	END IF;
	IF NOT isfinite(t) THEN
		RAISE EXCEPTION '% "%" is not a finite time', what, val
			USING ERRCODE = 'datetime_field_overflow',
			      DETAIL = 'A job or report works up to a time or on a day; infinity is neither.',
			      HINT = hint;
	END IF;
	IF t < earliest THEN
		RAISE EXCEPTION '% "%" is before 2015', what, val
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'evcharge knows no time before 2015-01-01 00:00+08: such a time is a clock that is not set.',
			      HINT = hint;
	END IF;
	IF t > clock_timestamp() + ahead THEN
		RAISE EXCEPTION '% "%" is too far ahead', what, val
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It is later than %s: the work it asks for is not due.',
			                      CASE WHEN ahead = interval '0' THEN 'now()' ELSE 'now() + ' || ahead::text END),
			      HINT = hint;
	END IF;
	RETURN t;
END $$;
COMMENT ON FUNCTION evcharge.check_time(timestamptz, text, interval, text) IS
	'refuses a time given to a job or report that is NULL (22004), infinite (22008), before 2015-01-01 00:00+08 or later than now() + ahead (22023), naming the argument (what) and the allowed window; returns the time';

-- The same rule for a day (a report's day, a statement's month): the day's
-- first instant in UTC must pass check_time(); the error shows the day.
CREATE FUNCTION evcharge.check_time(d date, what text, ahead interval DEFAULT interval '1 day') RETURNS date
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- Days beyond timestamptz's range are clamped to a finite time that is
	-- still out of the window, so that the error is the window's.
	PERFORM evcharge.check_time(
		CASE WHEN d IS NULL OR NOT isfinite(d) THEN d::timestamptz
		     WHEN d > '200000-01-01' THEN '200000-01-01 00:00+00'::timestamptz
		     WHEN d < '1000-01-01' THEN '1000-01-01 00:00+00'::timestamptz
		     ELSE d::timestamp AT TIME ZONE 'UTC' END,
		what, ahead, d::text);
	RETURN d;
END $$;
COMMENT ON FUNCTION evcharge.check_time(date, text, interval) IS
	'check_time() for a day: refuses NULL (22004), infinite days (22008) and days before 2015-01-01 or beginning later than now() + ahead (22023); returns the day';

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

-- Replay: feed quarantined traffic again, e.g. after registering a pile:
-- heartbeats first, so that the sessions they open are there when the pile
-- records of the same charges come.
CREATE FUNCTION evcharge.replay_quarantine(p_pile evcharge.pile_id DEFAULT NULL)
RETURNS TABLE (replayed bigint, quarantined_again bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	hb bigint[];
	rec bigint[];
	last_id bigint;
BEGIN
	SELECT array_agg(id ORDER BY id) FILTER (WHERE src = 'heartbeat'),
	       array_agg(id ORDER BY id) FILTER (WHERE src = 'pile_record')
	INTO hb, rec FROM (
		SELECT q.quarantine_id AS id, q.source AS src FROM evcharge.quarantine q
		WHERE q.replayed_at IS NULL
		  AND (p_pile IS NULL OR evcharge.pile(q.gun) OPERATOR(evcharge.=) p_pile)
		FOR UPDATE) locked;
	replayed := 0;
	quarantined_again := 0;
	IF hb IS NULL AND rec IS NULL THEN
		RETURN NEXT;
		RETURN;
	END IF;
	SELECT max(quarantine_id) INTO last_id FROM evcharge.quarantine;
	UPDATE evcharge.quarantine SET replayed_at = clock_timestamp()
	WHERE quarantine_id = ANY (coalesce(hb, '{}') || coalesce(rec, '{}'));
	IF hb IS NOT NULL THEN
		INSERT INTO evcharge.heartbeat
		SELECT (jsonb_populate_record(NULL::evcharge.heartbeat, q.payload)).*
		FROM evcharge.quarantine q WHERE q.quarantine_id = ANY (hb)
		ORDER BY q.quarantine_id;
	END IF;
	IF rec IS NOT NULL THEN
		-- As received: the record keeps the time it first arrived.
		INSERT INTO evcharge.pile_record
		SELECT (jsonb_populate_record(NULL::evcharge.pile_record, q.payload)).*
		FROM evcharge.quarantine q WHERE q.quarantine_id = ANY (rec)
		ORDER BY q.quarantine_id;
	END IF;
	-- What the triggers quarantined again in this transaction.
	SELECT count(*) INTO quarantined_again FROM evcharge.quarantine q
	WHERE q.quarantine_id > last_id AND q.xmin = pg_current_xact_id()::xid;
	replayed := coalesce(array_length(hb, 1), 0) + coalesce(array_length(rec, 1), 0) - quarantined_again;
	RETURN NEXT;
END $$;
COMMENT ON FUNCTION evcharge.replay_quarantine(evcharge.pile_id) IS
	'feeds quarantined heartbeats and pile records (of one pile, or all) through the triggers again, heartbeats first; returns how many were accepted and how many were quarantined again';

SELECT pg_catalog.pg_extension_config_dump('evcharge.pile', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.heartbeat_default', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.quarantine_quarantine_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.gun_state', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.offline_period', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.offline_period_offline_period_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.network_incident', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.network_incident_network_incident_id_seq', '');
