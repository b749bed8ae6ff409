-- test/integration/lib/digest.sql: a line per table of the evcharge schema
-- (partitions included): name, row count and an md5 over its rows sorted,
-- each row as the text of its columns.  With -v cols=saved, only the columns
-- saved in digest_check.cols (by -v save=1 on an earlier run) are digested:
-- the data of an old version compared after an upgrade that added columns.
-- The table of anomaly codes is the extension's own list, to which a
-- release appends codes: with -v cols=saved only the codes saved are
-- digested (those rows must be unchanged; the new ones are the catalogue
-- test's to compare with a fresh install).
--   psql -v save=1 -f digest.sql     digest every column, and save the lists
--   psql -v cols=saved -f digest.sql digest the saved columns only
\set ON_ERROR_STOP on
\pset format unaligned
\pset tuples_only on
\pset footer off
SET client_min_messages = warning;
\if :{?save}
CREATE SCHEMA IF NOT EXISTS digest_check;
DROP TABLE IF EXISTS digest_check.cols;
CREATE TABLE digest_check.cols AS
SELECT c.relname::text AS rel, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) AS cols
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'evcharge'::regnamespace AND c.relkind = 'r'
GROUP BY c.relname;
DROP TABLE IF EXISTS digest_check.codes;
CREATE TABLE digest_check.codes AS SELECT code FROM evcharge.anomaly_code;
\endif
\if :{?cols}
SELECT format('SELECT %L || '' '' || count(*) || '' '' || coalesce(md5(string_agg(r, E''\n'' ORDER BY r COLLATE "C")), ''-'') FROM (SELECT ROW(%s)::text AS r FROM evcharge.%I%s) t',
	rel, cols, rel, CASE WHEN rel = 'anomaly_code' THEN ' WHERE code IN (SELECT code FROM digest_check.codes)' ELSE '' END)
FROM digest_check.cols ORDER BY rel
\gexec
\else
SELECT format('SELECT %L || '' '' || count(*) || '' '' || coalesce(md5(string_agg(r, E''\n'' ORDER BY r COLLATE "C")), ''-'') FROM (SELECT t::text AS r FROM evcharge.%I t) t',
	c.relname, c.relname)
FROM pg_class c WHERE c.relnamespace = 'evcharge'::regnamespace AND c.relkind = 'r' ORDER BY c.relname
\gexec
\endif
