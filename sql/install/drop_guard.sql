-- drop_guard.sql: one command does not destroy the books.  The bills and
-- the ledger are member tables of the extension, so a plain DROP EXTENSION
-- evcharge (no CASCADE needed) would drop them with it, as would DROP
-- SCHEMA evcharge CASCADE, or a CASCADE drop of btree_gist (which evcharge
-- requires) or of its schema.  An event trigger at ddl_command_start (the
-- tables are still there) refuses such a command while the ledger holds
-- entries or there is any bill, saying what would be lost, unless the
-- session has SET evcharge.allow_drop = on.  The trigger's function is C
-- (src/drop_guard.c): only the parse tree says what a DROP names.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Whether a DROP of these extensions or schemas reaches evcharge, and if
-- it does while evcharge holds ledger entries or bills, the error.
CREATE FUNCTION evcharge.drop_guard_check(p_kind text, p_names text[], p_cascade boolean) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	via text;
	cmd text;
	entries bigint;
	txns bigint;
	bills bigint;
BEGIN
	cmd := format('DROP %s %s%s', upper(p_kind),
		(SELECT string_agg(quote_ident(n), ', ') FROM unnest(p_names) n),
		CASE WHEN p_cascade THEN ' CASCADE' ELSE '' END);
	IF p_kind = 'extension' AND 'evcharge' = ANY (p_names) THEN
		via := NULL;
	ELSIF NOT p_cascade THEN
		-- Without CASCADE, dropping what evcharge stands on fails by itself.
		RETURN;
	ELSE
		-- What evcharge stands on: the extensions it requires (and theirs),
		-- and the schemas they and evcharge live in.
		WITH RECURSIVE req(oid, depth) AS (
			SELECT e.oid, 0 FROM pg_extension e WHERE e.extname = 'evcharge'
			UNION
			SELECT d.refobjid, r.depth + 1 FROM req r
			JOIN pg_depend d ON d.classid = 'pg_extension'::regclass AND d.objid = r.oid
			                AND d.refclassid = 'pg_extension'::regclass
		)
		SELECT CASE
			WHEN p_kind = 'extension' THEN format('It drops extension %s, which evcharge requires, and evcharge with it.', e.extname)
			WHEN r.depth = 0 THEN format('It drops schema %s, and extension evcharge in it.', n.nspname)
			ELSE format('It drops schema %s, which holds extension %s, which evcharge requires, and evcharge with it.',
			            n.nspname, e.extname) END
		INTO via
		FROM req r JOIN pg_extension e ON e.oid = r.oid JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE (p_kind = 'extension' AND r.depth > 0 AND e.extname = ANY (p_names))
		   OR (p_kind = 'schema' AND n.nspname = ANY (p_names))
		ORDER BY r.depth LIMIT 1;
		IF NOT FOUND THEN
			RETURN;
		END IF;
	END IF;
	SELECT count(*) INTO entries FROM evcharge.ledger_entry;
	SELECT count(*) INTO txns FROM evcharge.ledger_txn;
	SELECT count(*) INTO bills FROM evcharge.bill;
	IF entries = 0 AND bills = 0 THEN
		RETURN;
	END IF;
	RAISE EXCEPTION 'cannot drop extension evcharge because it holds % ledger entries and % bills', entries, bills
		USING ERRCODE = 'dependent_objects_still_exist',
		      DETAIL = concat_ws(' ', format('%s was refused.', cmd), via,
		                         format('The extension''s tables would go with it: the ledger (%s entries in %s transactions), %s bills, and every other row evcharge keeps.',
		                                entries, txns, bills)),
		      HINT = 'Back up the database first (pg_dump; see docs/operations.md, "Backup and restore"). To drop it deliberately, SET evcharge.allow_drop = on in this session and run the command again.';
END $$;
COMMENT ON FUNCTION evcharge.drop_guard_check(text, text[], boolean) IS
	'called by the event trigger evcharge_drop_guard with what a DROP EXTENSION or DROP SCHEMA names and whether it cascades: raises 2BP01 with what would be lost if the drop reaches evcharge while its ledger holds entries or there are bills';

CREATE FUNCTION evcharge.drop_guard() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'evcharge_drop_guard'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION evcharge.drop_guard() IS
	'event trigger function (C): hands what a DROP EXTENSION or DROP SCHEMA names to drop_guard_check(), unless evcharge.allow_drop is on';

CREATE EVENT TRIGGER evcharge_drop_guard ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
	EXECUTE FUNCTION evcharge.drop_guard();
COMMENT ON EVENT TRIGGER evcharge_drop_guard IS
	'refuses DROP EXTENSION evcharge, and drops that cascade to it, while the ledger holds entries or there are bills; SET evcharge.allow_drop = on lets a deliberate drop through';
