-- evcharge 0.1.0 -> 0.2.0: ALTER EXTENSION evcharge UPDATE TO '0.2.0'.
-- Every change that 0.2.0 makes to the extension's SQL, in the order of the
-- install files it belongs to.  test/integration/upgrade.sh installs 0.1.0,
-- runs this script and compares the catalogue with a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.2.0'" to load this file. \quit

-- == types and engines: time zones, tariff grammar, exact engine arithmetic ==



-- == money: references, plausibility limits, one operator per transaction ==



-- == settlement without deadlocks ==



-- == statements over HTTPS only, signed with source and day ==



-- == backup and restore, the drop guard ==

-- pg_dump / pg_restore restore the books (docs/operations.md, "Backup and
-- restore").  The balance check at commit hangs on the entries, which a
-- restore loads after their transactions; the check on ledger_txn stays for
-- rows made now.
DROP TRIGGER ledger_txn_balanced ON evcharge.ledger_txn;
COMMENT ON FUNCTION evcharge.ledger_check_balanced() IS
	'constraint trigger, at commit, on ledger_entry and on ledger_txn rows made now: the transaction has at least two entries summing to zero';
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON evcharge.ledger_entry
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_check_balanced();
COMMENT ON TRIGGER ledger_entry_balanced ON evcharge.ledger_entry IS
	'at commit: the transaction of each new entry sums to zero (also in a restore, which loads entries after their transactions)';
CREATE CONSTRAINT TRIGGER ledger_txn_balanced AFTER INSERT ON evcharge.ledger_txn
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.created_at = now())
	EXECUTE FUNCTION evcharge.ledger_check_balanced();
COMMENT ON TRIGGER ledger_txn_balanced ON evcharge.ledger_txn IS
	'at commit: a transaction made now has entries summing to zero (a restored row, with its earlier time, is checked by its entries)';

-- An account opens at zero: its balance is what its entries make it
-- (ledger_apply).  A row that comes with a balance, as pg_restore's COPY of
-- the account table does, is opened at zero too, and the entries restored
-- after it bring the balance back, counted once.
CREATE FUNCTION evcharge.account_opens_at_zero() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	NEW.balance := 0;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.account_opens_at_zero() IS
	'trigger: a new account''s balance is 0 whatever the row says; its entries make its balance (so a restore does not count them twice)';
CREATE TRIGGER account_opens_at_zero BEFORE INSERT ON evcharge.account
	FOR EACH ROW EXECUTE FUNCTION evcharge.account_opens_at_zero();
COMMENT ON TRIGGER account_opens_at_zero ON evcharge.account IS
	'an account opens with balance 0: the balance is its entries'', applied by ledger_apply, also when a restore brings account and entries back';

-- An operator's policy row is made with the operator (its trigger), so a
-- policy row inserted for it afterwards would be a duplicate.  pg_restore, and a
-- plain dump through psql, do exactly that: the COPY of operator makes the
-- default rows, then the COPY of the policy table brings the rows that were
-- dumped.  So an inserted row replaces the operator's row when that row is
-- still the one made with the operator, untouched since (the same
-- transaction wrote both: equal xmin); a row someone changed is never
-- replaced, and inserting over it is the duplicate key it always was.
-- Shared by anomaly_policy and finance_policy (money.sql).
CREATE FUNCTION evcharge.policy_replaces_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format('DELETE FROM %I.%I p USING evcharge.operator o
	                WHERE p.operator_id = $1 AND o.operator_id = p.operator_id AND p.xmin = o.xmin',
	               TG_TABLE_SCHEMA, TG_TABLE_NAME)
		USING NEW.operator_id;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.policy_replaces_default() IS
	'trigger on anomaly_policy and finance_policy: a row inserted for an operator replaces the default row made with the operator if nobody changed it since (a restore brings the dumped rows after the operators)';
CREATE TRIGGER anomaly_policy_replaces_default BEFORE INSERT ON evcharge.anomaly_policy
	FOR EACH ROW EXECUTE FUNCTION evcharge.policy_replaces_default();
COMMENT ON TRIGGER anomaly_policy_replaces_default ON evcharge.anomaly_policy IS
	'an inserted row replaces the operator''s default row if that is untouched: pg_restore loads the dumped policies after the operators made theirs';
CREATE TRIGGER finance_policy_replaces_default BEFORE INSERT ON evcharge.finance_policy
	FOR EACH ROW EXECUTE FUNCTION evcharge.policy_replaces_default();
COMMENT ON TRIGGER finance_policy_replaces_default ON evcharge.finance_policy IS
	'an inserted row replaces the operator''s default row if that is untouched: pg_restore loads the dumped policies after the operators made theirs';

-- Heartbeat partitions carry their own index; the partitioned table none,
-- since pg_restore would make its index on each partition at ATTACH, before
-- the dump's CREATE INDEX of it.  The daily partitions of 0.1.0 have theirs
-- through the parent's index: dropping that drops them, and each partition
-- gets its own again, under the same name (this reads every partition
-- once: on a large heartbeat log the update takes as long as building its
-- indexes).
DROP INDEX evcharge.heartbeat_gun_ts_idx;
CREATE INDEX heartbeat_default_gun_ts_idx ON evcharge.heartbeat_default (gun, ts);
COMMENT ON INDEX evcharge.heartbeat_default_gun_ts_idx IS
	'a gun''s heartbeats in time order (bills, evidence and the session machine read them back); each daily partition has its own';
DO $$
DECLARE
	p record;
BEGIN
	FOR p IN
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname ~ '^heartbeat_p\d{8}$'
		ORDER BY c.relname
	LOOP
		EXECUTE format('CREATE INDEX %I ON evcharge.%I (gun, ts)', p.relname || '_gun_ts_idx', p.relname);
	END LOOP;
END $$;

-- maintain_partitions() makes each new partition's index.  (A later section
-- that replaces it again must keep that line.)
-- Daily partitions of heartbeat, [00:00, 24:00) UTC, named heartbeat_pYYYYMMDD.
CREATE OR REPLACE FUNCTION evcharge.maintain_partitions(at timestamptz DEFAULT now(),
	OUT created int, OUT dropped int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ahead int := evcharge.setting_int('evcharge.partitions_ahead_days', 7);
	keep int := evcharge.setting_int('evcharge.heartbeat_retention_days', 90);
	today date := (at AT TIME ZONE 'UTC')::date;
	d date;
	lo text;
	hi text;
	part text;
	p record;
BEGIN
	created := 0;
	dropped := 0;
	FOR d IN SELECT g::date FROM generate_series((today - 1)::timestamp, (today + ahead)::timestamp, interval '1 day') g LOOP
		part := 'heartbeat_p' || to_char(d, 'YYYYMMDD');
		-- Bounds as ISO text in UTC: independent of the session's DateStyle
		-- and time zone (a bound printed as "... CST" would be read back as
		-- US Central).
		lo := to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00';
		hi := to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00';
		CONTINUE WHEN EXISTS (
			SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname = part);
		-- Rows already in the default partition move into the new one
		-- directly, so the trigger does not see them twice.
		EXECUTE format('CREATE TABLE evcharge.%I (LIKE evcharge.heartbeat INCLUDING DEFAULTS)', part);
		-- Its own index, as heartbeat_default's (heartbeat.sql says why).
		EXECUTE format('CREATE INDEX %I ON evcharge.%I (gun, ts)', part || '_gun_ts_idx', part);
		EXECUTE format('WITH moved AS (DELETE FROM evcharge.heartbeat_default WHERE ts >= %L::timestamptz AND ts < %L::timestamptz RETURNING *)
		                INSERT INTO evcharge.%I SELECT * FROM moved', lo, hi, part);
		EXECUTE format('ALTER TABLE evcharge.heartbeat ATTACH PARTITION evcharge.%I FOR VALUES FROM (%L) TO (%L)',
		               part, lo, hi);
		EXECUTE format('COMMENT ON TABLE evcharge.%I IS %L', part,
		               format('heartbeats of %s (UTC), made by evcharge.maintain_partitions()', d));
		created := created + 1;
	END LOOP;

	FOR p IN
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname ~ '^heartbeat_p\d{8}$'
		  AND to_date(substr(c.relname, 12), 'YYYYMMDD') < today - keep
		ORDER BY c.relname
	LOOP
		EXECUTE format('DROP TABLE evcharge.%I', p.relname);
		dropped := dropped + 1;
	END LOOP;
	DELETE FROM evcharge.heartbeat_default WHERE ts < (today - keep)::timestamp AT TIME ZONE 'UTC';
END $$;
COMMENT ON FUNCTION evcharge.maintain_partitions(timestamptz) IS
	'creates daily heartbeat partitions from yesterday to evcharge.partitions_ahead_days ahead and drops those older than evcharge.heartbeat_retention_days; idempotent';

-- The identity sequences of the ledger, attribution and reconciliation
-- tables are dumped with them.
SELECT pg_catalog.pg_extension_config_dump('evcharge.attribution_attribution_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.account_account_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_txn_txn_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_entry_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.statement_source_source_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.reconciliation_finding_finding_id_seq', '');

-- The drop guard (drop_guard.sql).
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



-- == jobs: watermarks, schedules kept, time arguments checked ==



-- == the OCPP bridge: registry, transaction ids, commands ==



-- == reference docs ==



-- == release ==
