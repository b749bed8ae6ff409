-- evcharge 0.1.0 -> 0.2.0: ALTER EXTENSION evcharge UPDATE TO '0.2.0'.
-- Every change that 0.2.0 makes to the extension's SQL, in the order of the
-- install files it belongs to.  test/integration/upgrade.sh installs 0.1.0,
-- runs this script and compares the catalogue with a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.2.0'" to load this file. \quit

-- == types and engines: time zones, tariff grammar, exact engine arithmetic ==

-- Time zones (issue 11, item 1).  0.1.0 accepted whatever pg_tzset reads,
-- POSIX strings included: 'UTC+8' and '+08:00' passed the checks and were
-- followed as UTC-8.  0.2.0 stores zones in the domain time_zone, whose
-- check raises 22023 with the reason.  A database holding such a zone has
-- billed (or dated its books) in the wrong hours; the update stops and
-- names every row rather than keep billing wrongly or guess what was meant.
COMMENT ON FUNCTION evcharge.is_time_zone(text) IS
	'true for a zone evcharge accepts: a name of pg_timezone_names that says where a place is (Asia/Shanghai); false for POSIX strings (UTC+8, +08:00), abbreviations (CST, CET), Etc/GMT-8 and localtime; the test split_energy makes';

CREATE FUNCTION evcharge.check_time_zone(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_time_zone' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_time_zone(text) IS
	'true for a zone is_time_zone accepts, else error 22023 saying why (a POSIX offset''s inverted sign, an abbreviation) with a hint naming Asia/Shanghai; the check of the domain time_zone';

DO $$
DECLARE
	n int;
	rows text;
BEGIN
	SELECT count(*), string_agg(format('%s %s (tz %L)', b.what, b.id, b.tz), ', ' ORDER BY b.what, b.id)
	INTO n, rows
	FROM (SELECT 'station' AS what, s.station_id AS id, s.tz FROM evcharge.station s
	      WHERE NOT evcharge.is_time_zone(s.tz)
	      UNION ALL
	      SELECT 'finance_policy of operator', f.operator_id, f.tz FROM evcharge.finance_policy f
	      WHERE NOT evcharge.is_time_zone(f.tz)
	      UNION ALL
	      SELECT 'statement_source', r.source_id, r.tz FROM evcharge.statement_source r
	      WHERE NOT evcharge.is_time_zone(r.tz)) b;
	IF n > 0 THEN
		RAISE EXCEPTION 'cannot update evcharge to 0.2.0: % row(s) hold a time zone that 0.2.0 refuses', n
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'Rows: ' || rows || '.  PostgreSQL reads a POSIX offset such as "UTC+8" or "+08:00" with the sign inverted (UTC-8), '
			               'and an abbreviation such as "CET" without summer time, so these rows have been billed or dated in the wrong hours.',
			      HINT = 'Set each to a zone name such as Asia/Shanghai (UPDATE evcharge.station SET tz = ''Asia/Shanghai'' WHERE station_id = ...), '
			             'repair the bills of the stations concerned (evcharge.repair_bills), then run ALTER EXTENSION evcharge UPDATE again.';
	END IF;
END $$;

CREATE DOMAIN evcharge.time_zone AS text
	CONSTRAINT time_zone_check CHECK (evcharge.check_time_zone(VALUE));
COMMENT ON DOMAIN evcharge.time_zone IS
	'a time zone evcharge stores: a zone name of pg_timezone_names such as Asia/Shanghai (is_time_zone); anything else is refused with 22023';

ALTER TABLE evcharge.station DROP CONSTRAINT station_tz_check, ALTER COLUMN tz DROP DEFAULT;
ALTER TABLE evcharge.station ALTER COLUMN tz TYPE evcharge.time_zone,
	ALTER COLUMN tz SET DEFAULT 'Asia/Shanghai';
ALTER TABLE evcharge.finance_policy DROP CONSTRAINT finance_policy_tz_check, ALTER COLUMN tz DROP DEFAULT;
ALTER TABLE evcharge.finance_policy ALTER COLUMN tz TYPE evcharge.time_zone,
	ALTER COLUMN tz SET DEFAULT 'Asia/Shanghai';
ALTER TABLE evcharge.statement_source DROP CONSTRAINT statement_source_tz_check, ALTER COLUMN tz DROP DEFAULT;
ALTER TABLE evcharge.statement_source ALTER COLUMN tz TYPE evcharge.time_zone,
	ALTER COLUMN tz SET DEFAULT 'Asia/Shanghai';

-- The tariff grammar (item 4), the engines' exact arithmetic (item 2) and
-- split_energy's zone check are in the library: no SQL changes.



-- == money: references, plausibility limits, one operator per transaction ==



-- == settlement without deadlocks ==



-- == statements over HTTPS only, signed with source and day ==



-- == backup and restore, the drop guard ==



-- == jobs: watermarks, schedules kept, time arguments checked ==



-- == reference docs ==



-- == release ==
