-- time_zone.sql: the time zones evcharge stores and follows
-- (src/time_zone.c), and the domain every zone column has.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Time zones: evcharge stores and follows only zones of the time zone
-- database that say where a station is (Asia/Shanghai), never a POSIX
-- string such as 'UTC+8' or '+08:00', which PostgreSQL reads with the sign
-- inverted (UTC-8).
CREATE FUNCTION evcharge.is_time_zone(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_is_time_zone' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.is_time_zone(text) IS
	'true for a zone evcharge accepts: a name of pg_timezone_names that says where a place is (Asia/Shanghai); false for POSIX strings (UTC+8, +08:00), abbreviations (CST, CET), Etc/GMT-8 and localtime; the test split_energy makes';

CREATE FUNCTION evcharge.check_time_zone(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_time_zone' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_time_zone(text) IS
	'true for a zone is_time_zone accepts, else error 22023 saying why (a POSIX offset''s inverted sign, an abbreviation) with a hint naming Asia/Shanghai; the check of the domain time_zone';

CREATE DOMAIN evcharge.time_zone AS text
	CONSTRAINT time_zone_check CHECK (evcharge.check_time_zone(VALUE));
COMMENT ON DOMAIN evcharge.time_zone IS
	'a time zone evcharge stores: a zone name of pg_timezone_names such as Asia/Shanghai (is_time_zone); anything else is refused with 22023';
