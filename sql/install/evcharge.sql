-- evcharge.sql: the module itself (C in src/evcharge.c).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

COMMENT ON SCHEMA evcharge IS 'evcharge: EV charging network core (pile ids, tariffs, sessions, bills, anomalies, money)';

CREATE FUNCTION evcharge.library_versions(OUT library text, OUT version text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'evcharge_library_versions'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.library_versions() IS
	'versions of evcharge, of the PostgreSQL it was built for, and of the libcurl and OpenSSL it runs with';
