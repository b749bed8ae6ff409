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
-- Unknown references are errors (P0002), accounts are opened only for the
-- operator's own members, groups, partners and sub-operators, keys follow
-- one rule (check_key), money and energy are finite and plausible (per gun:
-- gun_energy_limit; per bill: finance_policy.max_bill_amount and
-- max_bill_energy_wh), NaN is refused by the checks of every money and
-- price column, and every ledger entry is in its transaction's and its
-- account's operator's books (composite foreign keys).

-- ledger.sql
ALTER TABLE evcharge.account ADD CONSTRAINT account_alert_threshold_check CHECK (alert_threshold <> 'NaN');
ALTER TABLE evcharge.account ADD CONSTRAINT account_operator_key UNIQUE (account_id, operator_id);
ALTER TABLE evcharge.ledger_txn ADD CONSTRAINT ledger_txn_operator_key UNIQUE (txn_id, operator_id);
ALTER TABLE evcharge.ledger_entry DROP CONSTRAINT ledger_entry_amount_check,
	ADD CONSTRAINT ledger_entry_amount_check CHECK (amount <> 0 AND amount <> 'NaN');
ALTER TABLE evcharge.ledger_entry ADD COLUMN operator_id bigint;
-- Existing entries take their transaction's operator (the ledger is
-- immutable: its trigger is set aside for this one fill).
ALTER TABLE evcharge.ledger_entry DISABLE TRIGGER ledger_entry_immutable;
UPDATE evcharge.ledger_entry e SET operator_id = t.operator_id FROM evcharge.ledger_txn t WHERE t.txn_id = e.txn_id;
ALTER TABLE evcharge.ledger_entry ENABLE TRIGGER ledger_entry_immutable;
-- 0.1.0 let post_txn put another operator's account in a transaction.
-- Such an entry cannot be corrected by the upgrade: it is named, and the
-- upgrade stops.
DO $$
DECLARE
	n bigint;
	first_txn bigint;
BEGIN
	SELECT count(*), min(e.txn_id) INTO n, first_txn
	FROM evcharge.ledger_entry e JOIN evcharge.account a ON a.account_id = e.account_id
	WHERE a.operator_id <> e.operator_id;
	IF n > 0 THEN
		RAISE EXCEPTION '% ledger entries are on accounts of another operator than their transaction''s', n
			USING ERRCODE = 'foreign_key_violation',
			      DETAIL = format('The first is in transaction %s; 0.2.0 keeps every transaction in one operator''s books.', first_txn),
			      HINT = 'Find them with evcharge.verify_ledger() and evcharge.ledger_entry on 0.1.0, decide with finance how to correct them, then update.';
	END IF;
END $$;
ALTER TABLE evcharge.ledger_entry ALTER COLUMN operator_id SET NOT NULL;
ALTER TABLE evcharge.ledger_entry DROP CONSTRAINT ledger_entry_txn_id_fkey,
	DROP CONSTRAINT ledger_entry_account_id_fkey,
	ADD CONSTRAINT ledger_entry_txn_operator_fkey FOREIGN KEY (txn_id, operator_id)
		REFERENCES evcharge.ledger_txn (txn_id, operator_id),
	ADD CONSTRAINT ledger_entry_account_operator_fkey FOREIGN KEY (account_id, operator_id)
		REFERENCES evcharge.account (account_id, operator_id);
COMMENT ON COLUMN evcharge.ledger_entry.operator_id IS
	'whose books: the operator of its transaction and of its account (both foreign keys), so no transaction posts across operators';
COMMENT ON CONSTRAINT ledger_entry_txn_operator_fkey ON evcharge.ledger_entry IS
	'the entry is of an existing transaction, in that transaction''s operator''s books';
COMMENT ON CONSTRAINT ledger_entry_account_operator_fkey ON evcharge.ledger_entry IS
	'the entry is on an existing account of the same operator: no transaction moves money across operators';
COMMENT ON CONSTRAINT account_operator_key ON evcharge.account IS
	'(account, operator), referenced by ledger entries so that an entry''s account is in its operator''s books';
COMMENT ON CONSTRAINT ledger_txn_operator_key ON evcharge.ledger_txn IS
	'(transaction, operator), referenced by ledger entries so that an entry is in its transaction''s operator''s books';

CREATE OR REPLACE FUNCTION evcharge.account_of(p_operator_id bigint, p_kind text, p_owner_id bigint DEFAULT NULL,
	p_sub_operator_id bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	id bigint;
	owner_kind text;
	owner_op bigint;
BEGIN
	SELECT a.account_id INTO id FROM evcharge.account a
	WHERE a.operator_id = p_operator_id AND a.kind = p_kind AND a.owner_id IS NOT DISTINCT FROM p_owner_id
	  AND a.sub_operator_id IS NOT DISTINCT FROM p_sub_operator_id;
	IF FOUND THEN
		RETURN id;
	END IF;
	-- Not open yet: check what it would be opened for.
	IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = p_operator_id) THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('An account of kind %s was asked for.', coalesce(p_kind, 'NULL')),
			      HINT = 'Operators are in evcharge.operator.';
	END IF;
	owner_kind := CASE
		WHEN p_kind = 'member_wallet' THEN 'member'
		WHEN p_kind = 'department_wallet' THEN 'customer group'
		WHEN p_kind IN ('partner_prepaid', 'partner_receivable', 'partner_payable') THEN 'partner'
		WHEN p_kind IN ('unassigned_receivable', 'revenue_electricity', 'revenue_service', 'revenue_occupancy',
		                'refunds_payable', 'fee_income', 'provider_clearing', 'bank', 'adjustments') THEN ''
		END;
	IF owner_kind IS NULL THEN
		RAISE EXCEPTION 'account kind "%" is not known', coalesce(p_kind, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Kinds are member_wallet, department_wallet, partner_prepaid, partner_receivable, partner_payable, unassigned_receivable, revenue_electricity, revenue_service, revenue_occupancy, refunds_payable, fee_income, provider_clearing, bank, adjustments.';
	END IF;
	IF (owner_kind <> '') <> (p_owner_id IS NOT NULL) THEN
		RAISE EXCEPTION 'an account of kind % %', p_kind,
			CASE WHEN owner_kind <> '' THEN 'needs an owner' ELSE 'has no owner' END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Owner %s was given.', coalesce(p_owner_id::text, 'NULL')),
			      HINT = 'Wallets, deposits, receivables and payables belong to a member, group or partner; the operator''s own accounts to nobody.';
	END IF;
	IF p_sub_operator_id IS NOT NULL AND p_kind NOT LIKE 'revenue\_%' THEN
		RAISE EXCEPTION 'an account of kind % is not attributed to a sub-operator', p_kind
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Sub-operator %s was given.', p_sub_operator_id),
			      HINT = 'Only revenue accounts are kept per sub-operator.';
	END IF;
	owner_op := CASE owner_kind
		WHEN 'member' THEN (SELECT m.operator_id FROM evcharge.member m WHERE m.member_id = p_owner_id)
		WHEN 'customer group' THEN (SELECT g.operator_id FROM evcharge.customer_group g WHERE g.group_id = p_owner_id)
		WHEN 'partner' THEN (SELECT pa.operator_id FROM evcharge.partner pa WHERE pa.partner_id = p_owner_id)
		END;
	IF owner_kind <> '' AND owner_op IS DISTINCT FROM p_operator_id THEN
		RAISE EXCEPTION 'operator % has no % %', p_operator_id, owner_kind, p_owner_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = CASE WHEN owner_op IS NULL THEN format('No %s %s is registered; no %s is opened for it.',
			                                                      owner_kind, p_owner_id, p_kind)
			                    ELSE format('%s %s is operator %s''s; an account is in the books of its owner''s operator.',
			                                upper(left(owner_kind, 1)) || substr(owner_kind, 2), p_owner_id, owner_op) END,
			      HINT = CASE owner_kind WHEN 'member' THEN 'Register the member in evcharge.member first.'
			                             WHEN 'partner' THEN 'Register the partner in evcharge.partner first.'
			                             ELSE 'Register the group in evcharge.customer_group first.' END;
	END IF;
	IF p_sub_operator_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.sub_operator so
	                                                 WHERE so.sub_operator_id = p_sub_operator_id
	                                                   AND so.operator_id = p_operator_id) THEN
		RAISE EXCEPTION 'operator % has no sub-operator %', p_operator_id, p_sub_operator_id
			USING ERRCODE = 'no_data_found', HINT = 'Sub-operators are in evcharge.sub_operator.';
	END IF;
	INSERT INTO evcharge.account (operator_id, kind, owner_id, sub_operator_id)
	VALUES (p_operator_id, p_kind, p_owner_id, p_sub_operator_id)
	ON CONFLICT (operator_id, kind, owner_id, sub_operator_id) DO NOTHING
	RETURNING account_id INTO id;
	IF id IS NULL THEN
		SELECT a.account_id INTO id FROM evcharge.account a
		WHERE a.operator_id = p_operator_id AND a.kind = p_kind AND a.owner_id IS NOT DISTINCT FROM p_owner_id
		  AND a.sub_operator_id IS NOT DISTINCT FROM p_sub_operator_id;
	END IF;
	RETURN id;
END $$;
COMMENT ON FUNCTION evcharge.account_of(bigint, text, bigint, bigint) IS
	'the account of this kind for the operator (and owner, or sub-operator for revenue), opened with balance 0 on first use; opened only for the operator''s own registered member, group, partner or sub-operator (else P0002), for a known kind with an owner exactly when the kind has one (else 22023)';

CREATE FUNCTION evcharge.check_key(p_key text, p_what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	-- C0 and C1 controls, DEL, zero-width and direction marks, line and
	-- paragraph separators, word joiners, the byte order mark.
	invisible constant text := E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]';
	-- What white space looks like at an end: spaces of every width.
	blank constant text := E'[ \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000]';
	shown text;
	at int;
	why text;
BEGIN
	IF p_key IS NOT NULL AND p_key <> '' AND char_length(p_key) <= 128 AND p_key !~ invisible
	   AND p_key !~ ('^' || blank) AND p_key !~ (blank || '$') THEN
		RETURN p_key;
	END IF;
	IF p_key IS NULL OR p_key = '' THEN
		RAISE EXCEPTION 'a % is needed', coalesce(p_what, 'key')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The key is %s.', CASE WHEN p_key IS NULL THEN 'NULL' ELSE 'empty' END),
			      HINT = 'Give the provider''s transaction id, the request id, the bank reference or the order number: 1 to 128 printable characters.';
	END IF;
	-- The key as JSON shows what cannot be seen (a newline as \n), and no
	-- more than 64 characters of it.
	shown := to_json(left(p_key, 64))::text || CASE WHEN char_length(p_key) > 64 THEN '...' ELSE '' END;
	IF char_length(p_key) > 128 THEN
		why := format('It is %s characters long; a key is at most 128.', char_length(p_key));
	ELSIF p_key ~ invisible THEN
		at := char_length(substring(p_key FROM ('^(.*?)' || invisible))) + 1;
		why := format('Character %s is U+%s, a control or invisible character.', at,
			upper(lpad(to_hex(ascii(substr(p_key, at, 1))), 4, '0')));
	ELSE
		why := 'It begins or ends with white space.';
	END IF;
	RAISE EXCEPTION '% % is not a valid key', coalesce(p_what, 'key'), shown
		USING ERRCODE = 'invalid_parameter_value', DETAIL = why,
		      HINT = 'A key is the event''s own id as its sender wrote it: 1 to 128 printable characters, no white space at either end, e.g. ''WX-4200001234202611201234''.';
END $$;
COMMENT ON FUNCTION evcharge.check_key(text, text) IS
	'returns the key (provider transaction id, request id, bank reference, order number) if it is 1 to 128 characters with no white space at either end and no control or invisible character, else raises 22023 naming what it was for; the one rule every money function applies to the keys that make it idempotent';

-- post_txn(): its 0.2.0 body is created once, by a later section of this script.
COMMENT ON FUNCTION evcharge.post_txn(bigint, text, text, bigint[], numeric[], text, text, jsonb) IS
	'posts a transaction (accounts of the operator and amounts in yuan and fen, debit positive, summing to 0) once per kind and key (check_key); a repeat returns the first transaction with replayed = true, a repeat by another operator is 23505; an account not in the operator''s books is P0002';

DROP FUNCTION evcharge.verify_ledger();
CREATE FUNCTION evcharge.verify_ledger()
RETURNS TABLE (problem text, operator_id bigint, txn_id bigint, account_id bigint, expected numeric, actual numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'transaction does not balance', t.operator_id, t.txn_id, NULL::bigint, 0::numeric, coalesce(sum(e.amount), 0)
	FROM evcharge.ledger_txn t LEFT JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
	GROUP BY t.txn_id HAVING coalesce(sum(e.amount), 0) <> 0 OR count(e.entry_id) < 2
	UNION ALL
	SELECT 'entry in another operator''s books', t.operator_id, t.txn_id, e.account_id, t.operator_id::numeric,
	       (CASE WHEN e.operator_id IS DISTINCT FROM t.operator_id THEN e.operator_id ELSE a.operator_id END)::numeric
	FROM evcharge.ledger_entry e
	JOIN evcharge.ledger_txn t ON t.txn_id = e.txn_id
	LEFT JOIN evcharge.account a ON a.account_id = e.account_id
	WHERE e.operator_id IS DISTINCT FROM t.operator_id OR a.operator_id IS DISTINCT FROM t.operator_id
	UNION ALL
	SELECT 'operator''s books do not balance', a.operator_id, NULL::bigint, NULL::bigint, 0::numeric, sum(e.amount)
	FROM evcharge.ledger_entry e JOIN evcharge.account a ON a.account_id = e.account_id
	GROUP BY a.operator_id HAVING sum(e.amount) <> 0
	UNION ALL
	SELECT 'balance differs from its entries', a.operator_id, NULL::bigint, a.account_id,
	       coalesce((SELECT sum(e.amount) FROM evcharge.ledger_entry e WHERE e.account_id = a.account_id), 0)
	         * evcharge.account_sign(a.kind),
	       a.balance
	FROM evcharge.account a
	WHERE a.balance <> coalesce((SELECT sum(e.amount) FROM evcharge.ledger_entry e WHERE e.account_id = a.account_id), 0)
	                   * evcharge.account_sign(a.kind)
	UNION ALL
	SELECT 'account of an owner not the operator''s', a.operator_id, NULL::bigint, a.account_id, a.operator_id::numeric,
	       (CASE WHEN a.kind = 'member_wallet' THEN (SELECT m.operator_id FROM evcharge.member m WHERE m.member_id = a.owner_id)
	             WHEN a.kind = 'department_wallet' THEN (SELECT g.operator_id FROM evcharge.customer_group g WHERE g.group_id = a.owner_id)
	             WHEN a.kind LIKE 'partner\_%' THEN (SELECT p.operator_id FROM evcharge.partner p WHERE p.partner_id = a.owner_id)
	             ELSE (SELECT so.operator_id FROM evcharge.sub_operator so WHERE so.sub_operator_id = a.sub_operator_id) END)::numeric
	FROM evcharge.account a
	WHERE (a.owner_id IS NOT NULL OR a.sub_operator_id IS NOT NULL)
	  AND a.operator_id IS DISTINCT FROM
	      CASE WHEN a.kind = 'member_wallet' THEN (SELECT m.operator_id FROM evcharge.member m WHERE m.member_id = a.owner_id)
	           WHEN a.kind = 'department_wallet' THEN (SELECT g.operator_id FROM evcharge.customer_group g WHERE g.group_id = a.owner_id)
	           WHEN a.kind LIKE 'partner\_%' THEN (SELECT p.operator_id FROM evcharge.partner p WHERE p.partner_id = a.owner_id)
	           ELSE (SELECT so.operator_id FROM evcharge.sub_operator so WHERE so.sub_operator_id = a.sub_operator_id) END
	ORDER BY 1, 2, 3, 4;
END;
COMMENT ON FUNCTION evcharge.verify_ledger() IS
	'the ledger''s discrepancies, each with its operator: transactions whose entries do not sum to zero (or have fewer than two), entries outside their transaction''s operator''s books (expected: that operator, actual: the other), operators whose books do not sum to zero, accounts whose balance differs from their entries, accounts of a member, group, partner or sub-operator that is not registered with their operator (actual: its operator, NULL when unknown); no rows when healthy';

-- money.sql
ALTER TABLE evcharge.finance_policy DROP CONSTRAINT finance_policy_stop_threshold_check,
	ADD CONSTRAINT finance_policy_stop_threshold_check CHECK (stop_threshold >= 0 AND stop_threshold <> 'NaN');
ALTER TABLE evcharge.finance_policy
	ADD COLUMN max_bill_amount numeric(12, 2) NOT NULL DEFAULT 5000.00
		CHECK (max_bill_amount > 0 AND max_bill_amount <> 'NaN'),
	ADD COLUMN max_bill_energy_wh bigint NOT NULL DEFAULT 1000000 CHECK (max_bill_energy_wh > 0);
COMMENT ON COLUMN evcharge.finance_policy.max_bill_amount IS
	'the most one bill may come to, yuan (5000.00): a repair or a quote beyond it is refused as implausible';
COMMENT ON COLUMN evcharge.finance_policy.max_bill_energy_wh IS
	'the most energy one bill may carry, Wh (1,000,000: 1 MWh, beyond any vehicle''s battery): a repair or a quote beyond it is refused as implausible';
ALTER TABLE evcharge.refund DROP CONSTRAINT refund_amount_check,
	ADD CONSTRAINT refund_amount_check CHECK (amount > 0 AND amount <> 'NaN'),
	DROP CONSTRAINT refund_fee_check,
	ADD CONSTRAINT refund_fee_check CHECK (fee >= 0 AND fee <> 'NaN');

CREATE OR REPLACE FUNCTION evcharge.check_amount(p_amount numeric, p_what text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_amount IS NULL OR p_amount IN ('NaN', 'Infinity', '-Infinity') OR p_amount <= 0
	   OR p_amount <> trunc(p_amount, 2) OR p_amount > 999999999999.99 THEN
		RAISE EXCEPTION '% of % yuan is not possible', p_what, coalesce(p_amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'An amount of money is positive and finite, in yuan with at most two decimals (fen), below a trillion yuan.',
			      HINT = 'E.g. 100.00.';
	END IF;
	RETURN p_amount;
END $$;
COMMENT ON FUNCTION evcharge.check_amount(numeric, text) IS
	'returns the amount if it is positive, finite (not NaN or Infinity), in yuan and fen and below a trillion yuan, else raises 22023 naming what it was for';

CREATE FUNCTION evcharge.check_bill_limits(p_operator_id bigint, p_energy_wh numeric, p_total numeric, p_what text)
RETURNS void
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
		RAISE EXCEPTION '% would bill % Wh, more than one bill of operator % may carry', p_what, trim_scale(p_energy_wh), p_operator_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The operator''s limit is %s Wh (finance_policy.max_bill_energy_wh).', fp.max_bill_energy_wh),
			      HINT = 'Check the energy; if such a charge is real, the operator raises its limit.';
	END IF;
	IF p_total > fp.max_bill_amount THEN
		RAISE EXCEPTION '% would bill % yuan, more than one bill of operator % may come to', p_what, p_total, p_operator_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The operator''s limit is %s yuan (finance_policy.max_bill_amount).', fp.max_bill_amount),
			      HINT = 'Check the energy and the prices; if such a bill is real, the operator raises its limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_bill_limits(bigint, numeric, numeric, text) IS
	'raises 22023 when a bill''s energy or total is beyond the operator''s finance_policy.max_bill_energy_wh or max_bill_amount (P0002 for an operator not registered); used by repair_bill and quote';

-- top_up(): its 0.2.0 body is created once, by a later section of this script.
COMMENT ON FUNCTION evcharge.top_up(bigint, numeric, text) IS
	'credits a wallet with a top-up the payment provider confirmed (debiting provider clearing), once per provider transaction id: a repeat returns the first result with replayed = true';

-- manual_credit(): its 0.2.0 body is created once, by a later section of this script.
COMMENT ON FUNCTION evcharge.manual_credit(bigint, numeric, text, text) IS
	'credits a wallet by hand (debiting the operator''s adjustments) with a mandatory note, once per request id: a repeat returns the first result with replayed = true, the same id for another account or amount is 23505';

CREATE OR REPLACE FUNCTION evcharge.refund_fee(amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF amount IS NULL OR amount IN ('NaN', 'Infinity', '-Infinity') OR amount < 0 OR amount > 999999999999.99 THEN
		RAISE EXCEPTION 'refund amount % is not possible', coalesce(amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A refund is a finite amount of 0 or more yuan, below a trillion.',
			      HINT = 'A refund is 0 or more yuan, e.g. 1000.00.';
	END IF;
	RETURN CASE method
		WHEN 'bank' THEN trunc(6 + amount * 0.006, 2)
		WHEN 'provider' THEN trunc(amount * 0.006, 2)
		ELSE evcharge.unknown_refund_method(method) END;
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(numeric, text) IS
	'the fee of a refund: bank transfer 6 yuan + 0.6 %, payment provider 0.6 %, truncated to the fen (1000 by bank: 12.00); 22023 for an amount that is negative, NaN or infinite';

-- partner.sql
ALTER TABLE evcharge.partner DROP CONSTRAINT partner_credit_limit_check,
	ADD CONSTRAINT partner_credit_limit_check CHECK (credit_limit >= 0 AND credit_limit <> 'NaN');

-- partner_settlement.sql
CREATE OR REPLACE FUNCTION evcharge.partner_payment(partner_id bigint, amount numeric, reference text,
	received_on date DEFAULT NULL, OUT txn_id bigint, OUT owes numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
	acct bigint;
	r record;
BEGIN
	pa := evcharge.partner_row(partner_payment.partner_id);
	PERFORM evcharge.check_amount(partner_payment.amount, 'a partner payment');
	PERFORM evcharge.check_key(partner_payment.reference, 'bank reference');
	-- The value date puts the payment on a statement: one that never comes
	-- (infinity, a date not yet reached) or came before any (-infinity, a
	-- year 1) would hide it or misdate it.
	IF partner_payment.received_on IS NOT NULL AND (NOT isfinite(partner_payment.received_on)
	   OR partner_payment.received_on < date '2000-01-01'
	   OR partner_payment.received_on > (now() AT TIME ZONE evcharge.books_tz(pa.operator_id))::date) THEN
		RAISE EXCEPTION 'a payment received on % cannot be booked',
			CASE WHEN isfinite(partner_payment.received_on) THEN to_char(partner_payment.received_on, 'YYYY-MM-DD')
			     ELSE partner_payment.received_on::text END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The value date is from 2000-01-01 to today (%s in %s).',
			                      to_char(now() AT TIME ZONE evcharge.books_tz(pa.operator_id), 'YYYY-MM-DD'),
			                      evcharge.books_tz(pa.operator_id)),
			      HINT = 'Give the day the bank credited the money, as its statement line says, or leave it out (today).';
	END IF;
	acct := evcharge.account_of(pa.operator_id,
		CASE pa.kind WHEN 'prepaid' THEN 'partner_prepaid' ELSE 'partner_receivable' END, pa.partner_id);
	-- The partner's account is locked first, so what it owes after is this payment's.
	PERFORM 1 FROM evcharge.account a WHERE a.account_id = acct FOR UPDATE;
	SELECT (p.txn).txn_id, (p.txn).result, p.replayed INTO r
	FROM evcharge.post_txn(pa.operator_id, 'partner_payment', partner_payment.reference,
		ARRAY[evcharge.account_of(pa.operator_id, 'bank'), acct],
		ARRAY[partner_payment.amount, -partner_payment.amount], NULL, NULL,
		jsonb_build_object('partner_id', pa.partner_id, 'amount', partner_payment.amount,
		                   'owes', evcharge.partner_owes(pa.partner_id) - partner_payment.amount,
		                   'received_on', partner_payment.received_on)) p;
	txn_id := r.txn_id;
	owes := (r.result->>'owes')::numeric;
	replayed := r.replayed;
	IF replayed AND ((r.result->>'partner_id')::bigint <> pa.partner_id
	                 OR (r.result->>'amount')::numeric <> partner_payment.amount) THEN
		RAISE EXCEPTION 'payment reference % was already booked, for partner % and % yuan', partner_payment.reference,
			r.result->>'partner_id', r.result->>'amount'
			USING ERRCODE = 'unique_violation',
			      HINT = 'A bank reference is booked once; check the statement line it came from.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.partner_payment(bigint, numeric, text, date) IS
	'books money a partner sent by bank (debit bank, credit its receivable or deposit), once per bank reference (check_key); received_on dates it for the statement (default: when booked; from 2000-01-01 to today in the books time zone); returns what the partner owes after';

-- price_rules.sql
ALTER TABLE evcharge.customer_group DROP CONSTRAINT customer_group_service_fee_check,
	ADD CONSTRAINT customer_group_service_fee_check CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	DROP CONSTRAINT customer_group_service_factor_check,
	ADD CONSTRAINT customer_group_service_factor_check CHECK (service_factor >= 0 AND service_factor <> 'NaN');
ALTER TABLE evcharge.promotion DROP CONSTRAINT promotion_service_fee_check,
	ADD CONSTRAINT promotion_service_fee_check CHECK (service_fee >= 0 AND service_fee <> 'NaN');
ALTER TABLE evcharge.occupancy_fee DROP CONSTRAINT occupancy_fee_fee_per_minute_check,
	ADD CONSTRAINT occupancy_fee_fee_per_minute_check CHECK (fee_per_minute >= 0 AND fee_per_minute <> 'NaN'),
	DROP CONSTRAINT occupancy_fee_cap_check,
	ADD CONSTRAINT occupancy_fee_cap_check CHECK (cap >= 0 AND cap <> 'NaN');
ALTER TABLE evcharge.coupon DROP CONSTRAINT coupon_amount_check,
	ADD CONSTRAINT coupon_amount_check CHECK (amount > 0 AND amount <> 'NaN'),
	DROP CONSTRAINT coupon_min_kwh_check,
	ADD CONSTRAINT coupon_min_kwh_check CHECK (min_kwh >= 0 AND min_kwh <> 'NaN');

-- quote.sql
CREATE FUNCTION evcharge.gun_energy_limit(rated_power_w int, started_at timestamptz, ended_at timestamptz)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN rated_power_w::numeric * greatest(extract(epoch FROM ended_at) - extract(epoch FROM started_at), 0) / 3600 * 1.2 + 10;
COMMENT ON FUNCTION evcharge.gun_energy_limit(int, timestamptz, timestamptz) IS
	'the most Wh a gun of this rated power (W) can plausibly deliver from started_at to ended_at: rated power x hours x 1.2 + 10 Wh; energy given by hand beyond it (a repair, a quote) is refused';

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

	-- Where the price may change: plan changes and promotion bounds.
	SELECT array_agg(DISTINCT b ORDER BY b) INTO cuts FROM (
		SELECT lower(valid) AS b FROM evcharge.station_tariff
		WHERE station_id = p_station_id AND current_type = p_current_type
		  AND valid && tstzrange(t_from, t_to, '[]')
		UNION
		SELECT upper(valid) FROM evcharge.station_tariff
		WHERE station_id = p_station_id AND current_type = p_current_type
		  AND valid && tstzrange(t_from, t_to, '[]') AND NOT upper_inf(valid)
		UNION
		SELECT unnest(ARRAY[lower(promo.valid), upper(promo.valid)])
		FROM evcharge.promotion promo JOIN evcharge.promotion_station ps USING (promotion_id)
		WHERE ps.station_id = p_station_id AND promo.valid && tstzrange(t_from, t_to, '[]')
	) bounds WHERE b > t_from AND b <= t_to;
	cuts := ARRAY[t_from] || coalesce(cuts, '{}');

	-- The plan in force at each cut; none is an error that names the time.
	FOREACH cut IN ARRAY cuts LOOP
		IF cut = t_to AND cut <> t_from THEN
			CONTINUE;			-- nothing is consumed from the session's last instant on
		END IF;
		SELECT station_tariff_id, tariff, coalesce(name, 'plan ' || station_tariff_id) AS name INTO pl
		FROM evcharge.station_tariff
		WHERE station_id = p_station_id AND current_type = p_current_type AND valid @> cut;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'no tariff in force for station % (%) at %', p_station_id, p_current_type,
				to_char(cut AT TIME ZONE st.tz, 'YYYY-MM-DD HH24:MI:SS') || ' ' || st.tz
				USING ERRCODE = 'EV001',
				      DETAIL = format('Station "%s" has no %s plan whose validity contains that time; evcharge never prices at a default price.',
				                      st.name, p_current_type),
				      HINT = 'Add the plan to evcharge.station_tariff, then price the session again.';
		END IF;
		plans := plans || pl.tariff;
		plan_names := plan_names || pl.name;
		starts := starts || cut;
	END LOOP;

	wh := evcharge.split_energy_by_span(plans, starts, p_ts, p_meter_wh, st.tz);

	FOR k IN 1 .. array_length(plans, 1) LOOP
		FOR pr IN SELECT * FROM evcharge.tariff_prices(plans[k]) LOOP
			c := array_position(ARRAY['sharp', 'peak', 'flat', 'valley'], pr.class);
			IF wh[k][c] = 0 THEN
				CONTINUE;
			END IF;
			sr := evcharge.service_rate(p_station_id, p_group_id, starts[k], pr.service_fee);
			e_exact[c] := e_exact[c] + wh[k][c] * pr.energy_price / 1000;
			s_exact[c] := s_exact[c] + wh[k][c] * sr.rate / 1000;
			wh_sum[c] := wh_sum[c] + wh[k][c];
			applied := applied || ('plan: ' || plan_names[k]) || sr.applied;
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
	'prices a session''s meter samples at a station: each part by the plan in force then, group price and promotions applied; no occupancy fee or coupon; P0002 for a station or group that is not registered (or a group of another operator)';

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
	                       WHERE pl.station_id = s.station_id AND evcharge.current_type(pl.pile_id) = quote.current_type)
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

-- repair.sql
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
	IF had_bill AND old.state = 'settled' THEN
		PERFORM evcharge.adjust_settled_bill(v_order, old, nb, repair_bill.reason);
	END IF;

	IF had_bill THEN
		PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
	END IF;
	RETURN nb;
END $$;
COMMENT ON FUNCTION evcharge.repair_bill(text, text, text, bigint) IS
	'recomputes a bill (recompute: heartbeats, pile record and plans in force; pile: the pile''s energy; platform: the heartbeats'' energy; manual: energy_wh), releases it and records the revision with the reason (a settled bill stays settled and the difference is posted to the ledger); the same repair twice changes nothing; a repair already running on the bill makes this one fail at once (55P03); refused (22023): energy given to a method other than manual, manual energy beyond what the gun can deliver in the bill''s span (gun_energy_limit), a bill beyond the operator''s limits (check_bill_limits)';

CREATE OR REPLACE FUNCTION evcharge.repair_bills(codes evcharge.anomaly_set, station_id bigint, day date, reason text,
	method text DEFAULT 'recompute')
RETURNS TABLE (order_no text, old_total numeric, new_total numeric, state text, outcome text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text;
	b record;
	nb evcharge.bill;
	msg text;
BEGIN
	IF repair_bills.codes IS NULL OR repair_bills.codes OPERATOR(evcharge.=) ''::evcharge.anomaly_set THEN
		RAISE EXCEPTION 'a repair by rule needs the anomaly codes it applies to'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. repair_bills(''1'', 42, ''2026-11-20'', ''pile records lost in the outage'').';
	END IF;
	IF repair_bills.day IS NULL OR NOT isfinite(repair_bills.day) THEN
		RAISE EXCEPTION 'a repair by rule needs the day the bills ended on, not %', coalesce(repair_bills.day::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the day in the station''s time zone, e.g. ''2026-11-20''.';
	END IF;
	SELECT st.tz INTO tz FROM evcharge.station st WHERE st.station_id = repair_bills.station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % is not known', repair_bills.station_id
			USING ERRCODE = 'no_data_found', HINT = 'Stations are in evcharge.station.';
	END IF;
	FOR b IN
		SELECT bl.order_no, bl.total, bl.revision FROM evcharge.bill bl
		WHERE bl.station_id = repair_bills.station_id AND bl.state <> 'settled'
		  AND bl.anomalies OPERATOR(evcharge.@>) repair_bills.codes
		  AND bl.ended_at >= (repair_bills.day::timestamp AT TIME ZONE tz)
		  AND bl.ended_at < ((repair_bills.day + 1)::timestamp AT TIME ZONE tz)
		ORDER BY bl.order_no
	LOOP
		order_no := b.order_no;
		old_total := b.total;
		BEGIN
			nb := evcharge.repair_bill(b.order_no, repair_bills.reason, repair_bills.method);
			new_total := nb.total;
			state := nb.state;
			outcome := CASE WHEN nb.revision > b.revision THEN 'repaired' ELSE 'unchanged' END;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			new_total := NULL;
			state := NULL;
			outcome := 'skipped: ' || msg;
		END;
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.repair_bills(evcharge.anomaly_set, bigint, date, text, text) IS
	'repairs by rule every unsettled bill of a station that carries all the given codes and ended on the given day (station''s local time), each as repair_bill() would; one row per bill with its outcome (repaired, unchanged, or skipped with the reason)';


-- == settlement without deadlocks ==

-- Locks in one order: bills, coupons, then all of a transaction's accounts
-- at once in account order (lock_accounts, FOR NO KEY UPDATE); settle_bills
-- locks its whole batch up front and settles bill by bill (docs/money.md,
-- "Locks and deadlocks").

CREATE FUNCTION evcharge.lock_accounts(p_accounts bigint[]) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	PERFORM 1 FROM evcharge.account a WHERE a.account_id = ANY (p_accounts) ORDER BY a.account_id FOR NO KEY UPDATE;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION evcharge.lock_accounts(bigint[]) IS
	'locks the accounts (FOR NO KEY UPDATE) in account order, as every posting does: take all the accounts a transaction will post to in one call, after any bill, coupon or refund it locks; returns how many it locked';

CREATE OR REPLACE FUNCTION evcharge.post_txn(p_operator_id bigint, p_kind text, p_key text, p_accounts bigint[],
	p_amounts numeric[], p_order_no text DEFAULT NULL, p_note text DEFAULT NULL, p_result jsonb DEFAULT NULL,
	OUT txn evcharge.ledger_txn, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i int;
	total numeric := 0;
	bad record;
BEGIN
	PERFORM evcharge.check_key(p_key, format('%s key', coalesce(p_kind, 'ledger transaction')));
	SELECT * INTO txn FROM evcharge.ledger_txn t WHERE t.kind = p_kind AND t.idem_key = p_key;
	IF FOUND THEN
		IF txn.operator_id IS DISTINCT FROM p_operator_id THEN
			RAISE EXCEPTION '% % was already posted by operator %', p_kind, to_json(p_key)::text, txn.operator_id
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('Transaction %s is in operator %s''s books; operator %s asked for it again.',
				                      txn.txn_id, txn.operator_id, coalesce(p_operator_id::text, 'NULL')),
				      HINT = 'A key is applied once; check where the event came from.';
		END IF;
		replayed := true;
		RETURN;
	END IF;
	IF coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_amounts, 1), 0) THEN
		RAISE EXCEPTION '% accounts and % amounts', array_length(p_accounts, 1), array_length(p_amounts, 1)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR i IN 1 .. coalesce(array_length(p_amounts, 1), 0) LOOP
		IF p_amounts[i] IS NULL OR p_amounts[i] IN ('NaN', 'Infinity', '-Infinity') OR p_amounts[i] <> round(p_amounts[i], 2)
		   OR abs(p_amounts[i]) > 999999999999.99 THEN
			RAISE EXCEPTION 'amount % is not in yuan and fen', coalesce(p_amounts[i]::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
				      DETAIL = format('Entry %s of %s %s.', i, p_kind, to_json(p_key)::text),
				      HINT = 'Money is a finite amount with two decimals at most, below a trillion yuan; truncate to the fen first.';
		END IF;
		total := total + p_amounts[i];
	END LOOP;
	IF total <> 0 THEN
		RAISE EXCEPTION 'the entries of % % sum to %', p_kind, p_key, total
			USING ERRCODE = 'check_violation', HINT = 'Debits (positive) and credits (negative) must sum to 0.';
	END IF;
	-- Every account exists and is in this operator's books (the foreign
	-- keys would refuse it too; this names the account).
	SELECT x.account_id, a.operator_id INTO bad
	FROM unnest(p_accounts) WITH ORDINALITY AS x(account_id, n)
	LEFT JOIN evcharge.account a ON a.account_id = x.account_id
	WHERE a.operator_id IS DISTINCT FROM p_operator_id
	ORDER BY x.n LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'account % is not in operator %''s books', coalesce(bad.account_id::text, 'NULL'),
			coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found',
			      DETAIL = CASE WHEN bad.operator_id IS NULL THEN format('No account %s exists.', coalesce(bad.account_id::text, 'NULL'))
			                    ELSE format('It is operator %s''s; a transaction moves money within one operator''s books.', bad.operator_id) END,
			      HINT = 'Take the accounts from evcharge.account_of(operator, kind, ...) of the transaction''s operator.';
	END IF;
	INSERT INTO evcharge.ledger_txn (operator_id, kind, idem_key, order_no, note, result)
	VALUES (p_operator_id, p_kind, p_key, p_order_no, p_note, p_result)
	ON CONFLICT (kind, idem_key) DO NOTHING
	RETURNING * INTO txn;
	IF txn.txn_id IS NULL THEN
		-- Another transaction posted the same event meanwhile and committed.
		SELECT * INTO txn FROM evcharge.ledger_txn t WHERE t.kind = p_kind AND t.idem_key = p_key;
		IF txn.operator_id IS DISTINCT FROM p_operator_id THEN
			RAISE EXCEPTION '% % was already posted by operator %', p_kind, to_json(p_key)::text, txn.operator_id
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('Transaction %s is in operator %s''s books; operator %s asked for it again.',
				                      txn.txn_id, txn.operator_id, p_operator_id),
				      HINT = 'A key is applied once; check where the event came from.';
		END IF;
		replayed := true;
		RETURN;
	END IF;
	PERFORM evcharge.lock_accounts(p_accounts);
	INSERT INTO evcharge.ledger_entry (txn_id, account_id, amount, operator_id)
	SELECT txn.txn_id, x.account_id, sum(x.amount), p_operator_id
	FROM unnest(p_accounts, p_amounts) AS x(account_id, amount)
	GROUP BY x.account_id HAVING sum(x.amount) <> 0
	ORDER BY x.account_id;
	replayed := false;
END $$;
COMMENT ON FUNCTION evcharge.post_txn(bigint, text, text, bigint[], numeric[], text, text, jsonb) IS
	'posts a transaction (accounts of the operator and amounts in yuan and fen, debit positive, summing to 0) once per kind and key (check_key); a repeat returns the first transaction with replayed = true, a repeat by another operator is 23505; an account not in the operator''s books is P0002';

CREATE OR REPLACE FUNCTION evcharge.top_up(account_id bigint, amount numeric, provider_txn text,
	OUT txn_id bigint, OUT balance numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r record;
BEGIN
	w := evcharge.wallet_account(top_up.account_id);
	PERFORM evcharge.check_amount(top_up.amount, 'a top-up');
	PERFORM evcharge.check_key(top_up.provider_txn, 'provider transaction id');
	-- Both accounts are locked first, in account order (lock_accounts), so
	-- the balance returned is this top-up's.
	PERFORM evcharge.lock_accounts(ARRAY[evcharge.account_of(w.operator_id, 'provider_clearing'), w.account_id]);
	SELECT a.balance INTO balance FROM evcharge.account a WHERE a.account_id = w.account_id;
	SELECT (p.txn).txn_id, (p.txn).result, p.replayed INTO r
	FROM evcharge.post_txn(w.operator_id, 'top_up', top_up.provider_txn,
		ARRAY[evcharge.account_of(w.operator_id, 'provider_clearing'), w.account_id],
		ARRAY[top_up.amount, -top_up.amount], NULL, NULL,
		jsonb_build_object('account_id', w.account_id, 'amount', top_up.amount,
		                   'balance', balance + top_up.amount)) p;
	txn_id := r.txn_id;
	balance := (r.result->>'balance')::numeric;
	replayed := r.replayed;
	IF replayed AND ((r.result->>'account_id')::bigint <> w.account_id OR (r.result->>'amount')::numeric <> top_up.amount) THEN
		RAISE EXCEPTION 'provider transaction % was already applied, to account % for %', top_up.provider_txn,
			r.result->>'account_id', r.result->>'amount'
			USING ERRCODE = 'unique_violation',
			      HINT = 'A provider transaction id is applied once; check the provider''s callback.';
	END IF;
	IF NOT replayed THEN
		PERFORM evcharge.check_alert(w.account_id);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.top_up(bigint, numeric, text) IS
	'credits a wallet with a top-up the payment provider confirmed (debiting provider clearing), once per provider transaction id: a repeat returns the first result with replayed = true';

CREATE OR REPLACE FUNCTION evcharge.manual_credit(account_id bigint, amount numeric, note text, request_id text,
	OUT txn_id bigint, OUT balance numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r record;
BEGIN
	w := evcharge.wallet_account(manual_credit.account_id);
	PERFORM evcharge.check_amount(manual_credit.amount, 'a manual credit');
	PERFORM evcharge.check_key(manual_credit.request_id, 'request id');
	IF manual_credit.note IS NULL OR btrim(manual_credit.note) = '' THEN
		RAISE EXCEPTION 'a manual credit to account % needs a note', w.account_id
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Say why, e.g. ''goodwill: pile 0045 out of order on 11-20''.';
	END IF;
	PERFORM evcharge.lock_accounts(ARRAY[evcharge.account_of(w.operator_id, 'adjustments'), w.account_id]);
	SELECT a.balance INTO balance FROM evcharge.account a WHERE a.account_id = w.account_id;
	SELECT (p.txn).txn_id, (p.txn).result, p.replayed INTO r
	FROM evcharge.post_txn(w.operator_id, 'manual_credit', manual_credit.request_id,
		ARRAY[evcharge.account_of(w.operator_id, 'adjustments'), w.account_id],
		ARRAY[manual_credit.amount, -manual_credit.amount], NULL, manual_credit.note,
		jsonb_build_object('account_id', w.account_id, 'amount', manual_credit.amount,
		                   'balance', balance + manual_credit.amount)) p;
	txn_id := r.txn_id;
	balance := (r.result->>'balance')::numeric;
	replayed := r.replayed;
	IF replayed AND ((r.result->>'account_id')::bigint <> w.account_id
	                 OR (r.result->>'amount')::numeric <> manual_credit.amount) THEN
		RAISE EXCEPTION 'request % was already applied, to account % for %', to_json(manual_credit.request_id)::text,
			r.result->>'account_id', r.result->>'amount'
			USING ERRCODE = 'unique_violation',
			      DETAIL = format('This call credits account %s with %s.', w.account_id, manual_credit.amount),
			      HINT = 'A request id is applied once; give a new request its own id.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.manual_credit(bigint, numeric, text, text) IS
	'credits a wallet by hand (debiting the operator''s adjustments) with a mandatory note, once per request id: a repeat returns the first result with replayed = true, the same id for another account or amount is 23505';

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
COMMENT ON FUNCTION evcharge.settle_bills() IS
	'scheduled: settles every final bill not yet settled, locking the bills (skipping those another session holds: being repaired, billed or settled, left for the next run), then all their accounts at once in account order; a bill that cannot be settled is left final with a WARNING and does not stop the others; returns how many it settled';

CREATE OR REPLACE FUNCTION evcharge.request_refund(account_id bigint, method text) RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r evcharge.refund;
	fee numeric;
	voided int := 0;
	orders text[];
	accounts bigint[];
	o text;
BEGIN
	w := evcharge.wallet_account(request_refund.account_id);
	fee := evcharge.refund_fee(0, request_refund.method);	-- checks the method
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
	fee := evcharge.refund_fee(w.balance, request_refund.method);
	IF fee >= w.balance THEN
		RAISE EXCEPTION 'a % refund of % yuan would cost more than it returns', request_refund.method, w.balance
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The fee would be %s yuan.', fee),
			      HINT = 'A provider refund costs 0.6 % only.';
	END IF;
	INSERT INTO evcharge.refund (account_id, method, amount, fee)
	VALUES (w.account_id, request_refund.method, w.balance, fee) RETURNING * INTO r;
	PERFORM evcharge.post_txn(w.operator_id, 'refund_request', r.refund_id::text,
		ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')],
		ARRAY[r.amount, -r.amount], NULL, NULL, jsonb_build_object('refund_id', r.refund_id));
	IF w.kind = 'member_wallet' AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		DELETE FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL;
		GET DIAGNOSTICS voided = ROW_COUNT;
		UPDATE evcharge.refund f SET coupons_voided = voided WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	END IF;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.request_refund(bigint, text) IS
	'requests a refund of a wallet''s whole positive balance by bank or provider: the amount is frozen at once (moved to refunds payable), the fee fixed; voids unused coupons when the operator''s policy says so';


-- == statements over HTTPS only, signed with source and day ==

-- The URL rule, the source name and the fetch that checks a statement's
-- signature over source, day and body (src/http_fetch.c).
CREATE FUNCTION evcharge.check_statement_url(url_template text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_statement_url' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_statement_url(text) IS
	'true for a statement URL template that fetch_statement may fetch (https, a host, no user name or password, {day} in it), else an error (22023) saying what is wrong; the CHECK of statement_source.url_template';

CREATE FUNCTION evcharge.is_statement_source_name(name text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
COMMENT ON FUNCTION evcharge.is_statement_source_name(text) IS
	'whether a text can name a statement source: 1 to 63 letters, digits, dots, dashes and underscores, starting with a letter or digit (the name is a line of what a statement''s signature covers)';

CREATE FUNCTION evcharge.fetch_statement(source text, day date, url_template text, secret text) RETURNS text
	AS 'MODULE_PATHNAME', 'evcharge_fetch_statement' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION evcharge.fetch_statement(text, date, text, text) IS
	'the statement of a source for a day: an https GET of url_template with {day} as YYYY-MM-DD, the request signed (X-Evcharge-Timestamp, X-Evcharge-Signature: HMAC-SHA256 of "GET\n" path?query "\n" timestamp), the response''s X-Signature checked as HMAC-SHA256 of "evcharge-statement-v1\n" source "\n" day "\n" hex SHA-256 of the body (28000 if not); bounded by evcharge.http_timeout, evcharge.http_connect_timeout and evcharge.http_max_bytes, waits as wait event Extension, stops when cancelled';
REVOKE ALL ON FUNCTION evcharge.fetch_statement(text, date, text, text) FROM PUBLIC;

-- A source fetched over plain http in 0.1.0 is moved to https and disabled
-- (never fetched in plain text again, nor silently from a server that may
-- not serve https): the operator checks the address and enables it.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT s.source_id, s.url_template FROM evcharge.statement_source s
	         WHERE s.url_template ILIKE 'http://%' ORDER BY s.source_id LOOP
		UPDATE evcharge.statement_source s
		SET url_template = 'https://' || substr(r.url_template, 8), enabled = false
		WHERE s.source_id = r.source_id;
		RAISE WARNING 'statement source % was fetched over plain http: its URL is now https and it is disabled', r.source_id
			USING DETAIL = format('It was "%s".', r.url_template),
			      HINT = 'Check that the partner serves the statement over https, then UPDATE evcharge.statement_source SET enabled = true.';
	END LOOP;
END $$;
ALTER TABLE evcharge.statement_source DROP CONSTRAINT statement_source_url_template_check;
ALTER TABLE evcharge.statement_source
	ADD CONSTRAINT statement_source_url_template_check CHECK (evcharge.check_statement_url(url_template));

-- Every source gets a name, which its statements are now signed for; the
-- sources of 0.1.0 are named source-<id> (tell the partner, or rename).
ALTER TABLE evcharge.statement_source ADD COLUMN name text;
UPDATE evcharge.statement_source SET name = 'source-' || source_id;
ALTER TABLE evcharge.statement_source ALTER COLUMN name SET NOT NULL;
ALTER TABLE evcharge.statement_source ADD CONSTRAINT statement_source_name_key UNIQUE (name);
ALTER TABLE evcharge.statement_source
	ADD CONSTRAINT statement_source_name_check CHECK (evcharge.is_statement_source_name(name));
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM evcharge.statement_source) THEN
		RAISE WARNING 'statements must now be signed for their source and day: every source''s partner must sign the new way'
			USING DETAIL = 'X-Signature is HMAC-SHA256 of "evcharge-statement-v1", the source''s name, the day and the SHA-256 of the body (docs/money.md, "Signatures"); the sources are named source-<id>.',
			      HINT = 'Give each partner its source''s name (or set the name agreed with it) before the next reconciliation.';
	END IF;
END $$;
COMMENT ON COLUMN evcharge.statement_source.url_template IS 'https URL with {day} replaced by the day asked for (YYYY-MM-DD); plain http is refused (check_statement_url)';
COMMENT ON COLUMN evcharge.statement_source.name IS 'the name agreed with the partner or provider, unique; its statements are signed for this name and their day';

-- Every row checked with an error that says what is wrong and never shows
-- the row: a CHECK or NOT NULL violation would print the whole row, the
-- secret with it, to the client and the server log.  The CHECKs stay as
-- the declared rules (the same functions); this only speaks first.
CREATE FUNCTION evcharge.statement_source_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.kind IS NULL OR NEW.kind NOT IN ('provider', 'partner') THEN
		RAISE EXCEPTION 'statement source kind "%" is not provider or partner', NEW.kind
			USING ERRCODE = 'check_violation',
			      HINT = 'provider: the payment provider''s top-ups; partner: a partner''s bills (partner_id set).';
	END IF;
	IF (NEW.kind = 'partner') <> (NEW.partner_id IS NOT NULL) THEN
		RAISE EXCEPTION 'a % statement source %', NEW.kind,
			CASE WHEN NEW.kind = 'partner' THEN 'needs a partner_id' ELSE 'takes no partner_id' END
			USING ERRCODE = 'check_violation',
			      HINT = 'Set partner_id for kind partner, and only for it.';
	END IF;
	IF NEW.name IS NULL THEN
		RAISE EXCEPTION 'the statement source of "%" has no name', NEW.url_template
			USING ERRCODE = 'not_null_violation',
			      DETAIL = 'The name is agreed with the partner and is a line of what its statements'' signature covers.',
			      HINT = '1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit, such as wxpay-12.';
	END IF;
	IF NOT evcharge.is_statement_source_name(NEW.name) THEN
		RAISE EXCEPTION 'statement source name "%" is not valid', NEW.name
			USING ERRCODE = 'check_violation',
			      DETAIL = 'The name is agreed with the partner and is a line of what its statements'' signature covers.',
			      HINT = '1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit, such as wxpay-12.';
	END IF;
	IF NEW.url_template IS NULL THEN
		RAISE EXCEPTION 'statement source "%" has no url_template', NEW.name
			USING ERRCODE = 'not_null_violation',
			      HINT = 'An https URL with {day}, such as https://partner.example/statements/{day}.csv.';
	END IF;
	PERFORM evcharge.check_statement_url(NEW.url_template);
	IF NEW.secret IS NULL OR ((TG_OP = 'INSERT' OR NEW.secret IS DISTINCT FROM OLD.secret) AND length(NEW.secret) < 16) THEN
		RAISE EXCEPTION 'the secret of statement source "%" is % characters long', NEW.name, coalesce(length(NEW.secret), 0)
			USING ERRCODE = CASE WHEN NEW.secret IS NULL THEN 'not_null_violation' ELSE 'check_violation' END,
			      DETAIL = 'It keys the HMAC-SHA256 signatures of requests and statements; a short one can be guessed.',
			      HINT = 'Agree a random secret of at least 16 characters with the partner, such as the output of openssl rand -base64 24.';
	END IF;
	IF NEW.operator_id IS NULL THEN
		RAISE EXCEPTION 'statement source "%" has no operator_id', NEW.name
			USING ERRCODE = 'not_null_violation', HINT = 'Whose statement it is: an operator of evcharge.operator.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.statement_source_check() IS
	'trigger: checks a statement source before it is stored (kind and partner, name, https URL template, a secret of at least 16 characters when set) with errors that never show the secret';
CREATE TRIGGER statement_source_check BEFORE INSERT OR UPDATE ON evcharge.statement_source
	FOR EACH ROW EXECUTE FUNCTION evcharge.statement_source_check();
COMMENT ON TRIGGER statement_source_check ON evcharge.statement_source IS
	'clear errors for a statement source, before the CHECKs (whose violation would print the secret)';

CREATE OR REPLACE FUNCTION evcharge.import_statement(p_source_id bigint, p_day date) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	body text;
	lines text[];
	f text[];
	i int;
	n int := 0;
	header text;
BEGIN
	SELECT * INTO src FROM evcharge.statement_source s WHERE s.source_id = p_source_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'statement source % does not exist', p_source_id
			USING ERRCODE = 'no_data_found', HINT = 'Sources are in evcharge.statement_source.';
	END IF;
	body := evcharge.fetch_statement(src.name, p_day, src.url_template, src.secret);
	lines := regexp_split_to_array(rtrim(replace(body, E'\r', ''), E'\n'), E'\n');
	header := CASE src.kind WHEN 'provider' THEN 'provider_txn,account_id,amount,paid_at' ELSE 'order_no,energy_wh,total' END;
	IF lines[1] IS DISTINCT FROM header THEN
		RAISE EXCEPTION 'the % statement of % for % does not start with its header', src.kind, p_day, src.url_template
			USING ERRCODE = 'invalid_text_representation',
			      DETAIL = format('Its first line is "%s".', left(coalesce(lines[1], ''), 200)),
			      HINT = format('A %s statement is CSV starting with "%s".', src.kind, header);
	END IF;
	FOR i IN 2 .. coalesce(array_length(lines, 1), 0) LOOP
		CONTINUE WHEN lines[i] = '';
		f := string_to_array(lines[i], ',');
		BEGIN
			IF src.kind = 'provider' THEN
				IF array_length(f, 1) <> 4 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation', MESSAGE = '4 fields expected';
				END IF;
				INSERT INTO evcharge.provider_statement_line VALUES (src.source_id, p_day, f[1], f[2]::bigint,
					f[3]::numeric(14, 2), f[4]::timestamptz)
				ON CONFLICT (source_id, provider_txn) DO NOTHING;
			ELSE
				IF array_length(f, 1) <> 3 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation', MESSAGE = '3 fields expected';
				END IF;
				INSERT INTO evcharge.partner_statement_line VALUES (src.source_id, p_day, f[1], f[2]::bigint,
					f[3]::numeric(14, 2))
				ON CONFLICT (source_id, order_no) DO NOTHING;
			END IF;
		EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR numeric_value_out_of_range
		          OR datetime_field_overflow THEN
			RAISE EXCEPTION 'line % of the % statement of % cannot be read: %', i, src.kind, p_day, SQLERRM
				USING ERRCODE = 'invalid_text_representation',
				      DETAIL = format('The line is "%s".', left(lines[i], 200)),
				      HINT = format('Fields: %s.', header);
		END;
		n := n + 1;
	END LOOP;
	RETURN n;
END $$;
COMMENT ON FUNCTION evcharge.import_statement(bigint, date) IS
	'fetches a source''s statement of a day, signed for that source and day (fetch_statement), and stores its lines; a line that cannot be read fails the import, naming it; returns the number of lines';

-- 0.1.0's fetch, whose signature covered the body alone: a signed statement
-- of one day could be replayed as another's.  Its C entry point stays for
-- 0.1.0's install script.
DROP FUNCTION evcharge.signed_get(text, text);


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
-- maintain_partitions(): its 0.2.0 body is created once, by a later section of this script.
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

-- One check for the times jobs and reports are given (heartbeat.sql).
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

-- The jobs and functions that take a time check it (bill.sql,
-- partner_settlement.sql, daily_report.sql, reconcile.sql).
CREATE OR REPLACE FUNCTION evcharge.detect_lost_bills(at timestamptz DEFAULT now(),
	OUT sessions_closed bigint, OUT starts_cancelled bigint, OUT bills_lost bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	o text;
BEGIN
	PERFORM evcharge.check_time(at, 'detect_lost_bills(at)');
	-- App starts the pile never began.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
		FROM evcharge.station st JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE st.station_id = cs.station_id AND cs.state = 'pending' AND cs.created_at < at - p.record_wait
		RETURNING 1)
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
		PERFORM evcharge.store_bill(evcharge.compute_bill(o, 'auto'), 'auto', NULL);
		bills_lost := bills_lost + 1;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.detect_lost_bills(timestamptz) IS
	'scheduled: cancels app starts the pile never began, ends open sessions of offline guns at their last heartbeat, and bills ended sessions whose pile record has not come within the operator''s record_wait from their heartbeats, held with anomaly 1 (2 when the gun went offline); a record that comes later completes the bill; at must lie from 2015 to now() + 1 day (check_time)';

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
		occupancy_fee = f.occupancy_fee, charges = f.charges, adjustments = f.adjustments,
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
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment')), 0) AS charges,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_adjustment'), 0) AS adjustments,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment') AND i.earlier_month), 0)
	                 AS earlier_months,
	             coalesce(-sum(i.amount) FILTER (WHERE i.kind NOT IN ('bill', 'bill_adjustment')), 0) AS payments
	      FROM evcharge.partner_month_item i WHERE i.statement_id = st.statement_id) f
	WHERE s.statement_id = st.statement_id
	RETURNING s.* INTO st;
	RETURN st;
END $$;
COMMENT ON FUNCTION evcharge.partner_statement(bigint, date) IS
	'books the partner''s statement of the month (any day of it; the month must be over in the operator''s time zone): every ledger movement on the partner''s accounts dated before the month''s end that no earlier statement carried, its sessions, energy and fees, payments, and what each side owes; calling it again returns the booked statement';

-- daily_report(): its 0.2.0 body is created once, by a later section of this script.
COMMENT ON FUNCTION evcharge.daily_report(bigint, date, bigint) IS
	'an operator''s day (books_day: in finance_policy.tz; an unknown operator or no day is an error): a line per station and sub-operator with sessions ended that day, held and unsettled bills, and the charged energy, electricity, service and occupancy fees, discounts and total; a line per sub-operator with the top-ups, manual credits and refunds of its wallets; a total line; only_sub_operator shows what one sub-operator may see';

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
		       jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total, 'ended_at', b.ended_at), NULL,
		       'send the partner the order: its app may have lost the session'
		FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		WHERE cs.partner_id = src.partner_id AND b.ended_at >= d_from AND b.ended_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_statement_line l
		                  WHERE l.source_id = src.source_id AND l.order_no = b.order_no);
		INSERT INTO evcharge_finding
		SELECT 'missing_here', l.order_no, NULL, jsonb_build_object('energy_wh', l.energy_wh, 'total', l.total),
		       'no such bill here for this partner: check the order number with the partner'
		FROM evcharge.partner_statement_line l
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		                  WHERE b.order_no = l.order_no AND cs.partner_id = src.partner_id);
		INSERT INTO evcharge_finding
		SELECT CASE WHEN l.total < 0 THEN 'negative_amount'
		            WHEN abs(l.energy_wh - b.energy_wh) > greatest(tol, greatest(l.energy_wh, b.energy_wh) * pct / 100)
		                 THEN 'energy_differs'
		            ELSE 'amount_differs' END,
		       l.order_no, jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total),
		       jsonb_build_object('energy_wh', l.energy_wh, 'total', l.total),
		       'compare with session_evidence(order_no) and agree the figure with the partner'
		FROM evcharge.partner_statement_line l
		JOIN evcharge.bill b ON b.order_no = l.order_no
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no AND cs.partner_id = src.partner_id
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND (l.total < 0 OR l.total <> b.total
		       OR abs(l.energy_wh - b.energy_wh) > greatest(tol, greatest(l.energy_wh, b.energy_wh) * pct / 100));
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
	'compares a source''s stored statement of a day with the ledger (provider: top-ups paid but not credited, which are credited when p_apply, credited but not paid, amounts differing) or with the partner''s bills (missing at the partner, missing here, energy or amount differing, negative amounts); records and returns the new findings';

-- jobs.sql: the sweep counts silence from the server's start, partitions
-- are kept by the real day's retention.
CREATE OR REPLACE FUNCTION evcharge.sweep_offline(at timestamptz DEFAULT now(),
	OUT went_offline int, OUT incidents int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	silence interval := evcharge.setting_interval('evcharge.offline_after', '180 s');
	win interval := evcharge.setting_interval('evcharge.incident_window', '120 s');
	min_piles int := evcharge.setting_int('evcharge.incident_min_piles', 3);
	up timestamptz := pg_postmaster_start_time();
	c record;
	incident bigint;
BEGIN
	PERFORM evcharge.check_time(at, 'sweep_offline(at)', interval '0');
	-- Guns silent too long go offline; each gets one open offline period.
	-- Silence counts from the server's start at the earliest: while the
	-- database was down no heartbeat could be written, and that is not
	-- the guns' silence (else every gun would go offline after a restart
	-- and every open session end as lost).
	WITH gone AS (
		UPDATE evcharge.gun_state g SET online = false, updated_at = now()
		WHERE g.online AND greatest(g.last_heartbeat, CASE WHEN at >= up THEN up END) < at - silence
		RETURNING g.gun, g.station_id, g.last_heartbeat)
	INSERT INTO evcharge.offline_period (gun, station_id, started_at, detected_at)
	SELECT gun, station_id, last_heartbeat, at FROM gone ORDER BY gun
	ON CONFLICT (gun) WHERE ended_at IS NULL DO NOTHING;
	GET DIAGNOSTICS went_offline = ROW_COUNT;

	-- Open periods of a station whose silences began within the window of
	-- each other form a cluster; a cluster of enough piles is one incident.
	incidents := 0;
	FOR c IN
		WITH cand AS (
			SELECT o.offline_period_id, o.station_id, o.gun, o.started_at,
			       CASE WHEN o.started_at - lag(o.started_at) OVER w <= win THEN 0 ELSE 1 END AS starts_cluster
			FROM evcharge.offline_period o
			WHERE o.ended_at IS NULL AND o.network_incident_id IS NULL
			WINDOW w AS (PARTITION BY o.station_id ORDER BY o.started_at, o.offline_period_id)
		), numbered AS (
			SELECT *, sum(starts_cluster) OVER (PARTITION BY station_id ORDER BY started_at, offline_period_id) AS cluster
			FROM cand
		)
		SELECT station_id, min(started_at) AS started_at, array_agg(offline_period_id) AS periods,
		       count(DISTINCT evcharge.pile(gun)) AS piles, count(*) AS guns
		FROM numbered GROUP BY station_id, cluster
		HAVING count(DISTINCT evcharge.pile(gun)) >= min_piles
		ORDER BY station_id, min(started_at)
	LOOP
		INSERT INTO evcharge.network_incident (station_id, started_at, detected_at, piles, guns)
		VALUES (c.station_id, c.started_at, at, c.piles, c.guns)
		RETURNING network_incident_id INTO incident;
		UPDATE evcharge.offline_period SET network_incident_id = incident
		WHERE offline_period_id = ANY (c.periods);
		incidents := incidents + 1;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.sweep_offline(timestamptz) IS
	'marks guns silent longer than evcharge.offline_after offline with an offline period (silence counted from the server''s start at the earliest), and groups piles of one station silent within evcharge.incident_window into a network incident; at must lie from 2015 to now (check_time); idempotent';

CREATE OR REPLACE FUNCTION evcharge.maintain_partitions(at timestamptz DEFAULT now(),
	OUT created int, OUT dropped int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ahead int := evcharge.setting_int('evcharge.partitions_ahead_days', 7);
	keep int := evcharge.setting_int('evcharge.heartbeat_retention_days', 90);
	today date := (evcharge.check_time(at, 'maintain_partitions(at)') AT TIME ZONE 'UTC')::date;
	-- Retention counts back from the real day as well: an "at" ahead of now
	-- never drops heartbeats younger than the retention.
	keep_from date := least(today, (now() AT TIME ZONE 'UTC')::date) - keep;
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
		  AND to_date(substr(c.relname, 12), 'YYYYMMDD') < keep_from
		ORDER BY c.relname
	LOOP
		EXECUTE format('DROP TABLE evcharge.%I', p.relname);
		dropped := dropped + 1;
	END LOOP;
	DELETE FROM evcharge.heartbeat_default WHERE ts < keep_from::timestamp AT TIME ZONE 'UTC';
END $$;
COMMENT ON FUNCTION evcharge.maintain_partitions(timestamptz) IS
	'creates daily heartbeat partitions from yesterday to evcharge.partitions_ahead_days ahead and drops those older than evcharge.heartbeat_retention_days before at or before now, whichever is earlier; at must lie from 2015 to now() + 1 day (check_time); idempotent';

-- Where each windowed job has done its work: one row per job and what it
-- works for (a statement source, a partner).  A run locks the row for as
-- long as it works, so a second run at the same time skips that source or
-- partner instead of doing its days twice.
CREATE TABLE evcharge.job_watermark (
	job text NOT NULL CHECK (job IN ('reconcile', 'partner_statements')),
	subject_id bigint NOT NULL,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	done_until date NOT NULL CHECK (done_until >= '2014-12-01'),
	last_run_at timestamptz,
	last_result text,
	last_error text,
	failed_on date,
	PRIMARY KEY (job, subject_id),
	CHECK ((last_error IS NULL) = (failed_on IS NULL))
);
COMMENT ON TABLE evcharge.job_watermark IS
	'Up to where each windowed job has done its work, per statement source (reconcile) or partner (partner_statements); each run does every window after done_until that is due, in order, and stops at the first that fails.  A DBA may move done_until (back: to redo; forward: to skip a window that will never succeed)';
COMMENT ON COLUMN evcharge.job_watermark.job IS 'reconcile (run_reconciliation) or partner_statements (book_partner_statements)';
COMMENT ON COLUMN evcharge.job_watermark.subject_id IS 'the statement source (reconcile) or the partner (partner_statements)';
COMMENT ON COLUMN evcharge.job_watermark.operator_id IS 'whose source or partner';
COMMENT ON COLUMN evcharge.job_watermark.done_until IS 'the last day reconciled (in the source''s zone), or the first day of the last month booked: the next run starts after it';
COMMENT ON COLUMN evcharge.job_watermark.last_run_at IS 'when a run last worked on it';
COMMENT ON COLUMN evcharge.job_watermark.last_result IS 'what that run did, e.g. "reconciled 2026-11-28 to 2026-11-30" or "nothing due"';
COMMENT ON COLUMN evcharge.job_watermark.last_error IS 'the error that stopped that run, NULL when it got through';
COMMENT ON COLUMN evcharge.job_watermark.failed_on IS 'the day or month that failed (the next run starts there again), NULL when none did';

CREATE FUNCTION evcharge.take_watermark(p_job text, p_subject_id bigint, p_operator_id bigint, p_first_done date)
RETURNS evcharge.job_watermark
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	wm evcharge.job_watermark;
BEGIN
	INSERT INTO evcharge.job_watermark (job, subject_id, operator_id, done_until)
	VALUES (p_job, p_subject_id, p_operator_id, p_first_done)
	ON CONFLICT (job, subject_id) DO NOTHING;
	SELECT * INTO wm FROM evcharge.job_watermark w
	WHERE w.job = p_job AND w.subject_id = p_subject_id
	FOR UPDATE SKIP LOCKED;
	RETURN wm;
END $$;
COMMENT ON FUNCTION evcharge.take_watermark(text, bigint, bigint, date) IS
	'internal: the job_watermark row of a job and subject, made on the first run (done_until = p_first_done) and locked for this run; NULL when another run holds it';

CREATE FUNCTION evcharge.reconcile_source_day(p_source_id bigint, p_day date,
	OUT lines int, OUT findings int, OUT error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	BEGIN
		lines := evcharge.import_statement(p_source_id, p_day);
		SELECT count(*) INTO findings FROM evcharge.reconcile_statement(p_source_id, p_day);
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS error = MESSAGE_TEXT;
		lines := NULL;
		findings := NULL;
		INSERT INTO evcharge.reconciliation_finding (source_id, day, kind, key, action, theirs)
		VALUES (p_source_id, p_day, 'fetch_failed', 'statement',
		        'the next run of evcharge-reconcile tries again; by hand: run_reconciliation(''' || p_day || ''')',
		        jsonb_build_object('error', error))
		ON CONFLICT ON CONSTRAINT reconciliation_finding_once
		DO UPDATE SET theirs = EXCLUDED.theirs, action = EXCLUDED.action, found_at = now();
	END;
END $$;
COMMENT ON FUNCTION evcharge.reconcile_source_day(bigint, date) IS
	'internal: import_statement() and reconcile_statement() of one source and day in a subtransaction; a failure is recorded as a fetch_failed finding and returned as error';

-- The two windowed jobs move to jobs.sql, with their watermarks.
CREATE OR REPLACE FUNCTION evcharge.run_reconciliation(p_day date DEFAULT NULL)
RETURNS TABLE (source_id bigint, kind text, day date, lines int, findings int, error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	wm evcharge.job_watermark;
	last_day date;
	d date;
	first_day date;
	r record;
BEGIN
	IF p_day IS NOT NULL THEN
		PERFORM evcharge.check_time(p_day, 'run_reconciliation(p_day)');
		SELECT s.source_id, s.tz INTO r FROM evcharge.statement_source s
		WHERE s.enabled AND p_day > (now() AT TIME ZONE s.tz)::date ORDER BY s.source_id LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'day % has not begun for statement source %', p_day, r.source_id
				USING ERRCODE = 'invalid_parameter_value',
				      DETAIL = format('It is %s in %s, the source''s zone.', (now() AT TIME ZONE r.tz)::date, r.tz),
				      HINT = 'Reconcile a day that is over (today''s statement is partial), from 2015-01-01 on.';
		END IF;
	END IF;
	FOR src IN SELECT * FROM evcharge.statement_source s WHERE s.enabled ORDER BY s.source_id LOOP
		source_id := src.source_id;
		kind := src.kind;
		IF p_day IS NOT NULL THEN
			day := p_day;
			SELECT * INTO lines, findings, error FROM evcharge.reconcile_source_day(src.source_id, p_day);
			RETURN NEXT;
			CONTINUE;
		END IF;
		last_day := (now() AT TIME ZONE src.tz)::date - 1;
		wm := evcharge.take_watermark('reconcile', src.source_id, src.operator_id, last_day - 1);
		CONTINUE WHEN wm.job IS NULL;	-- another run is reconciling this source
		d := wm.done_until + 1;
		first_day := d;
		error := NULL;
		WHILE d <= last_day AND d < first_day + 31 LOOP
			day := d;
			SELECT * INTO lines, findings, error FROM evcharge.reconcile_source_day(src.source_id, d);
			RETURN NEXT;
			EXIT WHEN error IS NOT NULL;
			UPDATE evcharge.job_watermark w SET done_until = d
			WHERE w.job = 'reconcile' AND w.subject_id = src.source_id;
			d := d + 1;
		END LOOP;
		UPDATE evcharge.job_watermark w SET last_run_at = now(), last_error = error,
			failed_on = CASE WHEN error IS NOT NULL THEN d END,
			last_result = CASE WHEN d > first_day
			                   THEN format('reconciled %s to %s', first_day, d - 1)
			                   WHEN error IS NULL THEN 'nothing due'
			                   ELSE 'nothing reconciled' END
			              || CASE WHEN error IS NOT NULL THEN format('; %s failed', d)
			                      WHEN d <= last_day THEN format('; %s to %s on the next run', d, last_day)
			                      ELSE '' END
		WHERE w.job = 'reconcile' AND w.subject_id = src.source_id;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.run_reconciliation(date) IS
	'scheduled nightly: for every enabled statement source, fetches and reconciles every day after its job_watermark that is over in the source''s zone, oldest first (at most 31 a run; a source''s first run does yesterday); a day that fails is recorded as fetch_failed and stops that source there until the next run, the others go on; with p_day, that day for every source without moving the watermarks; one row per source and day';

CREATE FUNCTION evcharge.partner_first_activity(p_partner_id bigint) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT least(
		(SELECT min(least(cs.created_at, b.started_at, b.ended_at)) FROM evcharge.charge_session cs
		 LEFT JOIN evcharge.bill b ON b.order_no = cs.order_no WHERE cs.partner_id = p_partner_id),
		(SELECT min(least(t.created_at, ((t.result->>'received_on')::date)::timestamp AT TIME ZONE evcharge.books_tz(a.operator_id)))
		 FROM evcharge.account a
		 JOIN evcharge.ledger_entry e ON e.account_id = a.account_id
		 JOIN evcharge.ledger_txn t ON t.txn_id = e.txn_id
		 WHERE a.owner_id = p_partner_id AND a.kind IN ('partner_receivable', 'partner_prepaid')
		   AND a.operator_id = (SELECT p.operator_id FROM evcharge.partner p WHERE p.partner_id = p_partner_id)));
END;
COMMENT ON FUNCTION evcharge.partner_first_activity(bigint) IS
	'internal: the earliest session or ledger movement of a partner (a payment by the day received), where its statements begin; NULL when it has none';

CREATE OR REPLACE FUNCTION evcharge.book_partner_statements(at timestamptz DEFAULT now(), OUT booked int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	tz text;
	last_month date;
	first_month date;
	m date;
	wm evcharge.job_watermark;
	st evcharge.partner_month_statement;
	err text;
	n int;
BEGIN
	PERFORM evcharge.check_time(at, 'book_partner_statements(at)');
	booked := 0;
	FOR p IN SELECT pa.partner_id, pa.operator_id FROM evcharge.partner pa ORDER BY pa.partner_id LOOP
		tz := evcharge.books_tz(p.operator_id);
		-- A month is due one day after it ended: late pile records of its
		-- last day still make its statement.
		last_month := (date_trunc('month', least(at, now()) AT TIME ZONE tz - interval '1 day') - interval '1 month')::date;
		-- The first run starts at the partner's first activity, or books last
		-- month alone for a partner that has none; a statement booked by
		-- hand counts as done.
		wm := evcharge.take_watermark('partner_statements', p.partner_id, p.operator_id, (coalesce(
			(SELECT max(s.month) FROM evcharge.partner_month_statement s WHERE s.partner_id = p.partner_id),
			least(date_trunc('month', evcharge.partner_first_activity(p.partner_id) AT TIME ZONE tz)::date, last_month)
				- interval '1 month',
			last_month - interval '1 month'))::date);
		CONTINUE WHEN wm.job IS NULL;	-- another run is booking this partner
		m := (greatest(wm.done_until, (SELECT max(s.month) FROM evcharge.partner_month_statement s
		                               WHERE s.partner_id = p.partner_id)) + interval '1 month')::date;
		first_month := m;
		err := NULL;
		n := 0;
		WHILE m <= last_month LOOP
			BEGIN
				st := evcharge.partner_statement(p.partner_id, m);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
				EXIT;
			END;
			IF st.booked_at = now() THEN
				n := n + 1;
			END IF;
			UPDATE evcharge.job_watermark w SET done_until = m
			WHERE w.job = 'partner_statements' AND w.subject_id = p.partner_id;
			m := (m + interval '1 month')::date;
		END LOOP;
		booked := booked + n;
		UPDATE evcharge.job_watermark w SET last_run_at = now(), last_error = err,
			failed_on = CASE WHEN err IS NOT NULL THEN m END,
			last_result = CASE WHEN m > first_month
			                   THEN format('booked %s to %s', to_char(first_month, 'YYYY-MM'),
			                               to_char(m - interval '1 month', 'YYYY-MM'))
			                   WHEN err IS NULL THEN 'nothing due'
			                   ELSE 'nothing booked' END
			              || CASE WHEN err IS NOT NULL THEN format('; %s failed', to_char(m, 'YYYY-MM')) ELSE '' END
		WHERE w.job = 'partner_statements' AND w.subject_id = p.partner_id;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.book_partner_statements(timestamptz) IS
	'scheduled daily: for every partner, books each month''s statement after its job_watermark up to the last month that ended a day or more before at (operator''s books zone), in order; a partner''s first run starts at its first activity (or books last month alone); a month that fails stops that partner there, the others go on; at must lie from 2015 to now() + 1 day; returns how many statements it booked; idempotent';

CREATE FUNCTION evcharge.job_definitions(OUT jobname text, OUT schedule text, OUT command text,
	OUT earlier_schedules text[])
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT * FROM (VALUES
		('evcharge-sweep-offline', '* * * * *', 'SELECT evcharge.sweep_offline()', '{}'::text[]),
		('evcharge-partitions', '7 * * * *', 'SELECT evcharge.maintain_partitions()', '{}'),
		('evcharge-lost-bills', '*/5 * * * *', 'SELECT evcharge.detect_lost_bills()', '{}'),
		('evcharge-settle', '* * * * *', 'SELECT evcharge.settle_bills()', '{}'),
		('evcharge-reconcile', '30 18 * * *', 'SELECT * FROM evcharge.run_reconciliation()', '{}'),
		('evcharge-partner-statements', '0 20 * * *', 'SELECT evcharge.book_partner_statements()', '{0 20 1 * *}')
	) AS j (jobname, schedule, command, earlier_schedules);
END;
COMMENT ON FUNCTION evcharge.job_definitions() IS
	'evcharge''s six pg_cron jobs as schedule_jobs() registers them: name, default schedule (GMT), command, and the defaults of earlier versions';

-- schedule_jobs() returns what it did: a new result type.
DROP FUNCTION evcharge.schedule_jobs();
CREATE FUNCTION evcharge.schedule_jobs()
RETURNS TABLE (jobname text, schedule text, command text, active boolean, action text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	j record;
	have record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('pg_cron runs jobs from the database named by cron.database_name (%s).',
			                      coalesce(current_setting('cron.database_name', true), 'not set: pg_cron is not preloaded')),
			      HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and CREATE EXTENSION pg_cron here; see docs/operations.md.';
	END IF;
	PERFORM evcharge.maintain_partitions();
	FOR j IN SELECT * FROM evcharge.job_definitions() d ORDER BY d.jobname LOOP
		EXECUTE 'SELECT c.jobid, c.schedule, c.command, c.active FROM cron.job c
		         WHERE c.jobname = $1 AND c.database = current_database() ORDER BY c.jobid LIMIT 1'
			INTO have USING j.jobname;
		jobname := j.jobname;
		IF have.jobid IS NULL THEN
			EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING j.jobname, j.schedule, j.command;
			schedule := j.schedule;
			command := j.command;
			active := true;
			action := 'created';
		ELSIF have.schedule = ANY (j.earlier_schedules) THEN
			EXECUTE 'SELECT cron.alter_job($1, schedule => $2)' USING have.jobid, j.schedule;
			schedule := j.schedule;
			command := have.command;
			active := have.active;
			action := format('schedule %s of an earlier version moved to %s', have.schedule, j.schedule);
		ELSE
			schedule := have.schedule;
			command := have.command;
			active := have.active;
			action := CASE WHEN have.schedule = j.schedule AND have.command = j.command AND have.active THEN 'kept'
			               ELSE 'kept as changed: ' || concat_ws(', ',
			                   CASE WHEN have.schedule <> j.schedule THEN format('schedule %s (default %s)', have.schedule, j.schedule) END,
			                   CASE WHEN have.command <> j.command THEN format('command %s', have.command) END,
			                   CASE WHEN NOT have.active THEN 'paused' END) END;
		END IF;
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.schedule_jobs() IS
	'registers with pg_cron those of evcharge''s six jobs (job_definitions()) that are missing, keeps every job a DBA changed (schedule, command, paused) as it is, moves a job still on an earlier version''s default schedule to today''s, and makes the partitions now; one row per job with what it did; idempotent';

SELECT pg_catalog.pg_extension_config_dump('evcharge.job_watermark', '');
-- Existing sources and partners: the watermarks as 0.1.0's jobs left
-- them.  0.1.0 reconciled yesterday each night: the first run after the
-- upgrade does yesterday and the day before (again, harmlessly); a partner
-- with statements goes on after its last one (the others start at their
-- first activity, as on a fresh install).
INSERT INTO evcharge.job_watermark (job, subject_id, operator_id, done_until, last_result)
SELECT 'reconcile', s.source_id, s.operator_id, (now() AT TIME ZONE s.tz)::date - 3, 'set by the upgrade to 0.2.0'
FROM evcharge.statement_source s
UNION ALL
SELECT 'partner_statements', st.partner_id, st.operator_id, max(st.month), 'set by the upgrade to 0.2.0'
FROM evcharge.partner_month_statement st GROUP BY st.partner_id, st.operator_id;


-- == the OCPP bridge: registry, transaction ids, commands ==
-- New in 0.2.0: sql/install/bridge.sql, as it is there.

CREATE TABLE evcharge.ocpp_transaction (
	transaction_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL UNIQUE CHECK (order_no <> ''),
	pile_id evcharge.pile_id NOT NULL,
	connector_id int NOT NULL CHECK (connector_id BETWEEN 1 AND 999),
	id_tag text NOT NULL,
	meter_start_wh bigint NOT NULL,
	started_at timestamptz NOT NULL,
	remote boolean NOT NULL,
	meter_stop_wh bigint,
	stopped_at timestamptz,
	stop_reason text,
	created_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT ocpp_transaction_start_key UNIQUE (pile_id, connector_id, started_at)
);
COMMENT ON TABLE evcharge.ocpp_transaction IS
	'OCPP 1.6 transactions as the bridge answered them: the integer transactionId a charge point was given and the order number it stands for, both ways; a resent StartTransaction (same pile, connector and timestamp) gets the same id';
COMMENT ON CONSTRAINT ocpp_transaction_start_key ON evcharge.ocpp_transaction IS
	'one transaction per pile, connector and start time: a resent StartTransaction finds its first answer';
COMMENT ON COLUMN evcharge.ocpp_transaction.transaction_id IS 'the transactionId given to the charge point (OCPP integer)';
COMMENT ON COLUMN evcharge.ocpp_transaction.order_no IS 'the session''s order number: start_session()''s for a remote start, a new one for a start at the pile';
COMMENT ON COLUMN evcharge.ocpp_transaction.pile_id IS 'the charge point (registered when the transaction began; no foreign key, like charge_session.gun, so that the registry''s maintenance never touches this log)';
COMMENT ON COLUMN evcharge.ocpp_transaction.connector_id IS 'the connector, which is the gun of that number';
COMMENT ON COLUMN evcharge.ocpp_transaction.id_tag IS 'the idTag the charge point started with (a card number, or the one a remote start sent)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_start_wh IS 'meterStart, Wh';
COMMENT ON COLUMN evcharge.ocpp_transaction.started_at IS 'the StartTransaction timestamp, by the pile''s clock';
COMMENT ON COLUMN evcharge.ocpp_transaction.remote IS 'true when it took over a session opened by start_session() (a remote start)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_stop_wh IS 'meterStop of the first StopTransaction, Wh';
COMMENT ON COLUMN evcharge.ocpp_transaction.stopped_at IS 'the first StopTransaction timestamp';
COMMENT ON COLUMN evcharge.ocpp_transaction.stop_reason IS 'the StopTransaction reason (Local when the pile gave none)';
COMMENT ON COLUMN evcharge.ocpp_transaction.created_at IS 'when the bridge first stored it';

-- Whether an idTag may charge at a pile: a member card of the pile's
-- operator.  OCPP's statuses: Accepted or Invalid.
CREATE FUNCTION evcharge.ocpp_authorize(p_pile evcharge.pile_id, p_id_tag text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN EXISTS (
	SELECT 1 FROM evcharge.pile pl
	JOIN evcharge.station st USING (station_id)
	JOIN evcharge.member m ON m.operator_id = st.operator_id
	WHERE pl.pile_id OPERATOR(evcharge.=) p_pile
	  AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g'))
	OR EXISTS (
	-- The idTag of a RemoteStartTransaction: the order number of a session
	-- start_session() opened on this pile (a pile may Authorize it first).
	SELECT 1 FROM evcharge.charge_session cs
	WHERE cs.order_no = p_id_tag AND cs.state = 'pending'
	  AND evcharge.pile(cs.gun) OPERATOR(evcharge.=) p_pile) THEN 'Accepted' ELSE 'Invalid' END;
COMMENT ON FUNCTION evcharge.ocpp_authorize(evcharge.pile_id, text) IS
	'the OCPP idTagInfo status for an idTag at a pile: Accepted for the card of a member of the pile''s operator or the order number of a pending session on the pile (a remote start''s idTag), Invalid otherwise';

-- StartTransaction: the transactionId and order number, made once.
CREATE FUNCTION evcharge.ocpp_start_transaction(p_pile evcharge.pile_id, p_connector int, p_id_tag text,
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
END $$;
COMMENT ON FUNCTION evcharge.ocpp_start_transaction(evcharge.pile_id, int, text, bigint, timestamptz) IS
	'maps an OCPP StartTransaction to a transactionId and an order number, once: a pending start_session() on the gun is taken over (a remote start), otherwise a new order number is made; a resend returns the first answer; status is the idTagInfo status (NULL ids and Invalid for a gun that is not registered)';

-- StopTransaction: the transaction it closes, its first stop kept.
CREATE FUNCTION evcharge.ocpp_stop_transaction(p_pile evcharge.pile_id, p_transaction_id int, p_meter_stop bigint,
	p_ts timestamptz, p_reason text, OUT order_no text, OUT connector_id int, OUT started_at timestamptz,
	OUT meter_start_wh bigint, OUT id_tag text, OUT remote boolean)
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE evcharge.ocpp_transaction t
	SET meter_stop_wh = coalesce(t.meter_stop_wh, p_meter_stop),
	    stopped_at = coalesce(t.stopped_at, p_ts),
	    stop_reason = coalesce(t.stop_reason, p_reason, 'Local')
	WHERE t.transaction_id = p_transaction_id AND t.pile_id OPERATOR(evcharge.=) p_pile
	RETURNING t.order_no, t.connector_id, t.started_at, t.meter_start_wh, t.id_tag, t.remote;
END;
COMMENT ON FUNCTION evcharge.ocpp_stop_transaction(evcharge.pile_id, int, bigint, timestamptz, text) IS
	'records an OCPP StopTransaction on its transaction (the first stop counts) and returns what its pile record needs; no row for a transactionId this pile was never given';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_transaction', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_transaction_transaction_id_seq', '');

-- Which piles are connected to a bridge now, and to which: written by the
-- bridges (a row per pile that ever connected over OCPP), read by
-- start_session(), which refuses a remote start for a pile that is not.
CREATE TABLE evcharge.ocpp_bridge (
	bridge_id text PRIMARY KEY CHECK (bridge_id <> ''),
	started_at timestamptz NOT NULL DEFAULT now(),
	seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ocpp_bridge IS
	'The bridges (evcharge-bridge) that write to this database, each with its last sign of life: refreshed every 10 s, one row per bridge however many piles it holds; older than 30 s means the bridge is gone and its piles are not connected';
COMMENT ON COLUMN evcharge.ocpp_bridge.bridge_id IS 'the bridge (--bridge-id)';
COMMENT ON COLUMN evcharge.ocpp_bridge.started_at IS 'when its present run started';
COMMENT ON COLUMN evcharge.ocpp_bridge.seen_at IS 'its last refresh (every 10 s)';

CREATE TABLE evcharge.ocpp_connection (
	pile_id evcharge.pile_id PRIMARY KEY,
	bridge_id text NOT NULL CHECK (bridge_id <> ''),
	connected_at timestamptz NOT NULL DEFAULT now(),
	disconnected_at timestamptz
);
COMMENT ON TABLE evcharge.ocpp_connection IS
	'The OCPP connection of each pile that ever connected to a bridge: which bridge holds it (ocpp_bridge says whether that bridge is alive), since when, and when it ended (NULL while connected); a pile with a row is an OCPP pile, and a remote start needs it connected';
COMMENT ON COLUMN evcharge.ocpp_connection.pile_id IS 'the charge point';
COMMENT ON COLUMN evcharge.ocpp_connection.bridge_id IS 'the bridge holding (or that last held) its connection (--bridge-id)';
COMMENT ON COLUMN evcharge.ocpp_connection.connected_at IS 'when its present (or last) connection was opened';
COMMENT ON COLUMN evcharge.ocpp_connection.disconnected_at IS 'when the connection closed, or its bridge stopped; NULL while connected';

-- Commands to charge points, kept until the pile has answered them, so a
-- command made while the pile's bridge is down is sent when it connects.
CREATE TABLE evcharge.ocpp_command (
	command_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pile_id evcharge.pile_id NOT NULL,
	connector_id int NOT NULL CHECK (connector_id BETWEEN 1 AND 999),
	action text NOT NULL CHECK (action IN ('RemoteStartTransaction', 'RemoteStopTransaction')),
	order_no text NOT NULL,
	id_tag text CHECK (length(id_tag) <= 20),
	created_at timestamptz NOT NULL DEFAULT now(),
	sent_at timestamptz,
	sent_by text,
	answered_at timestamptz,
	answer text
);
CREATE UNIQUE INDEX ocpp_command_open_idx ON evcharge.ocpp_command (order_no, action) WHERE answered_at IS NULL;
COMMENT ON INDEX evcharge.ocpp_command_open_idx IS 'one open command of each action per session; also what the bridges search for work';
COMMENT ON TABLE evcharge.ocpp_command IS
	'Commands to charge points (RemoteStartTransaction from start_session(), RemoteStopTransaction from the balance guard or ocpp_stop_charge()), kept until answered: a bridge sends the open ones of the piles it holds (NOTIFY evcharge_command wakes it), again after a reconnect';
COMMENT ON COLUMN evcharge.ocpp_command.command_id IS 'row id; the OCPP message id of the CALL is cmd-<command_id>';
COMMENT ON COLUMN evcharge.ocpp_command.pile_id IS 'the charge point';
COMMENT ON COLUMN evcharge.ocpp_command.connector_id IS 'the connector (gun number)';
COMMENT ON COLUMN evcharge.ocpp_command.action IS 'RemoteStartTransaction or RemoteStopTransaction';
COMMENT ON COLUMN evcharge.ocpp_command.order_no IS 'the session it starts or stops';
COMMENT ON COLUMN evcharge.ocpp_command.id_tag IS 'RemoteStartTransaction: the idTag sent, which is the order number (the pile''s StartTransaction brings it back)';
COMMENT ON COLUMN evcharge.ocpp_command.created_at IS 'when it was made';
COMMENT ON COLUMN evcharge.ocpp_command.sent_at IS 'when a bridge last sent it (NULL: not yet)';
COMMENT ON COLUMN evcharge.ocpp_command.sent_by IS 'the bridge that last sent it';
COMMENT ON COLUMN evcharge.ocpp_command.answered_at IS 'when the answer was recorded (NULL: open)';
COMMENT ON COLUMN evcharge.ocpp_command.answer IS 'Accepted or Rejected (the pile''s status), CALLERROR <code>, or Expired (a start not answered within 60 s)';

-- Whether a pile is connected to a live bridge now.
CREATE FUNCTION evcharge.ocpp_pile_connected(p_pile evcharge.pile_id) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM evcharge.ocpp_connection c JOIN evcharge.ocpp_bridge b USING (bridge_id)
	WHERE c.pile_id OPERATOR(evcharge.=) p_pile AND c.disconnected_at IS NULL
	  AND b.seen_at > now() - interval '30 seconds');
COMMENT ON FUNCTION evcharge.ocpp_pile_connected(evcharge.pile_id) IS
	'true when the pile has an OCPP connection to a bridge that showed a sign of life (ocpp_bridge.seen_at) within the last 30 s';

-- The open commands a bridge should send now, marked sent.
CREATE FUNCTION evcharge.ocpp_take_commands(p_bridge text, OUT command_id bigint, OUT pile_id text,
	OUT action text, OUT connector_id int, OUT id_tag text, OUT transaction_id int)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- A remote start that no pile answered within 60 s is not sent (again):
	-- the app gave up long ago, and its session is cancelled.
	PERFORM evcharge.ocpp_command_answer(c.command_id, c.pile_id, 'Expired')
	FROM evcharge.ocpp_command c
	WHERE c.answered_at IS NULL AND c.action = 'RemoteStartTransaction'
	  AND c.created_at < now() - interval '60 seconds';
	RETURN QUERY
	UPDATE evcharge.ocpp_command c SET sent_at = now(), sent_by = p_bridge
	FROM evcharge.ocpp_connection k
	WHERE c.answered_at IS NULL AND k.pile_id OPERATOR(evcharge.=) c.pile_id
	  AND k.bridge_id = p_bridge AND k.disconnected_at IS NULL
	  AND (c.sent_at IS NULL OR c.sent_at < k.connected_at)
	  AND (c.action = 'RemoteStartTransaction' OR EXISTS (SELECT 1 FROM evcharge.ocpp_transaction x WHERE x.order_no = c.order_no))
	RETURNING c.command_id, c.pile_id::text, c.action, c.connector_id, c.id_tag,
	          (SELECT x.transaction_id FROM evcharge.ocpp_transaction x WHERE x.order_no = c.order_no);
END $$;
COMMENT ON FUNCTION evcharge.ocpp_take_commands(text) IS
	'called by a bridge: the open commands of the piles it holds that it has not sent on their present connection, marked sent by it (a stop only once the transaction is known); a remote start not answered within 60 s is answered Expired first (its session cancelled)';

-- A pile's answer to a command.
CREATE FUNCTION evcharge.ocpp_command_answer(p_command_id bigint, p_pile evcharge.pile_id, p_answer text) RETURNS boolean
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
	-- A start the pile did not accept: the app's session never begins.
	UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
	WHERE cs.order_no = c.order_no AND cs.state = 'pending';
	RETURN FOUND;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_command_answer(bigint, evcharge.pile_id, text) IS
	'records a pile''s answer to a command sent to it (the first counts; another pile''s answer changes nothing); a RemoteStartTransaction answered anything but Accepted cancels its pending session; true when it did';

-- An operator stops a charge: a RemoteStopTransaction for its pile.
CREATE FUNCTION evcharge.ocpp_stop_charge(p_order_no text) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t evcharge.ocpp_transaction;
	id bigint;
BEGIN
	SELECT * INTO t FROM evcharge.ocpp_transaction x WHERE x.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no OCPP transaction', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'No charge point has started a transaction for it over a bridge (evcharge.ocpp_transaction).',
			      HINT = 'Only a charge that an OCPP pile has started can be stopped remotely.';
	END IF;
	IF t.stopped_at IS NOT NULL THEN
		RAISE EXCEPTION 'order % is already stopped', p_order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its StopTransaction came at %s.', t.stopped_at);
	END IF;
	INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no)
	VALUES (t.pile_id, t.connector_id, 'RemoteStopTransaction', t.order_no)
	ON CONFLICT DO NOTHING
	RETURNING command_id INTO id;
	IF id IS NULL THEN
		SELECT c.command_id INTO id FROM evcharge.ocpp_command c
		WHERE c.order_no = p_order_no AND c.action = 'RemoteStopTransaction' AND c.answered_at IS NULL;
	END IF;
	PERFORM pg_notify('evcharge_command', json_build_object('pile_id', t.pile_id::text,
		'action', 'RemoteStopTransaction', 'order_no', t.order_no)::text);
	RETURN id;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_stop_charge(text) IS
	'an operator''s stop: a RemoteStopTransaction for the session''s transaction, sent by the bridge holding its pile (now, or when it connects); returns the command id (the open one when there is one already)';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_bridge', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_connection', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_command', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_command_command_id_seq', '');

-- OCPP security profile 1 (HTTP Basic): a password per pile, kept as a
-- salted PBKDF2-HMAC-SHA256 hash, and whether an operator's piles must have
-- one.  The hash is OpenSSL's in both the database (ocpp_hash_password, C)
-- and the bridge, so evcharge needs no pgcrypto.
CREATE TABLE evcharge.ocpp_credential (
	pile_id evcharge.pile_id PRIMARY KEY,
	salt bytea NOT NULL CHECK (length(salt) >= 16),
	iterations int NOT NULL CHECK (iterations BETWEEN 1000 AND 10000000),
	hash bytea NOT NULL CHECK (length(hash) = 32),
	set_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ocpp_credential IS
	'The HTTP Basic password of a charge point (OCPP security profile 1), as a salted PBKDF2-HMAC-SHA256 hash: a pile with a row must present its password to connect; set with ocpp_set_password()';
COMMENT ON COLUMN evcharge.ocpp_credential.pile_id IS 'the charge point (no foreign key, like ocpp_transaction: the registry''s maintenance never touches it)';
COMMENT ON COLUMN evcharge.ocpp_credential.salt IS 'random salt, 16 bytes';
COMMENT ON COLUMN evcharge.ocpp_credential.iterations IS 'PBKDF2 iterations (4096 from ocpp_set_password)';
COMMENT ON COLUMN evcharge.ocpp_credential.hash IS 'PBKDF2-HMAC-SHA256(password, salt, iterations), 32 bytes';
COMMENT ON COLUMN evcharge.ocpp_credential.set_at IS 'when the password was set';

CREATE TABLE evcharge.ocpp_policy (
	operator_id bigint PRIMARY KEY REFERENCES evcharge.operator ON DELETE CASCADE,
	require_password boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ocpp_policy IS
	'An operator''s OCPP connection settings; an operator without a row has the defaults';
COMMENT ON COLUMN evcharge.ocpp_policy.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.ocpp_policy.require_password IS 'whether its piles must have a password (ocpp_credential) to connect; off by default, when a pile without one is admitted';
COMMENT ON COLUMN evcharge.ocpp_policy.updated_at IS 'when it was last changed';

CREATE FUNCTION evcharge.ocpp_hash_password(p_password text, p_salt bytea, p_iterations int) RETURNS bytea
	AS 'MODULE_PATHNAME', 'evcharge_ocpp_hash_password' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.ocpp_hash_password(text, bytea, int) IS
	'PBKDF2-HMAC-SHA256 of a charge point''s password (OpenSSL, the same call as the bridge''s check), 32 bytes';

CREATE FUNCTION evcharge.ocpp_set_password(p_pile evcharge.pile_id, p_password text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	salt bytea;
BEGIN
	IF p_pile IS NULL THEN
		RAISE EXCEPTION 'a pile id is required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) p_pile) THEN
		RAISE EXCEPTION 'pile % is not registered', p_pile
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register it in evcharge.pile first.';
	END IF;
	IF p_password IS NULL THEN
		-- No password any more: the pile connects without one (unless its
		-- operator requires them).
		DELETE FROM evcharge.ocpp_credential c WHERE c.pile_id OPERATOR(evcharge.=) p_pile;
		RETURN;
	END IF;
	IF length(p_password) NOT BETWEEN 16 AND 40 OR p_password !~ '^[\x21-\x7e]+$' THEN
		RAISE EXCEPTION 'the password for pile % is not a valid OCPP password', p_pile
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It has %s characters.', length(p_password)),
			      HINT = 'An OCPP Basic password has 16 to 40 printable ASCII characters, without spaces.';
	END IF;
	salt := decode(replace(gen_random_uuid()::text, '-', ''), 'hex');
	INSERT INTO evcharge.ocpp_credential AS c (pile_id, salt, iterations, hash)
	VALUES (p_pile, salt, 4096, evcharge.ocpp_hash_password(p_password, salt, 4096))
	ON CONFLICT (pile_id) DO UPDATE SET salt = EXCLUDED.salt, iterations = EXCLUDED.iterations,
		hash = EXCLUDED.hash, set_at = now();
END $$;
COMMENT ON FUNCTION evcharge.ocpp_set_password(evcharge.pile_id, text) IS
	'sets the HTTP Basic password of a charge point (16 to 40 printable ASCII characters), kept as a salted PBKDF2-HMAC-SHA256 hash; NULL removes it';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_credential', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_policy', '');

-- start_session (session.sql): refuses a remote start for an OCPP pile that is not
-- connected (EV003) and makes the RemoteStartTransaction for one that is.
CREATE OR REPLACE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
	partner_id bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
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
	SELECT pl.station_id, pl.gun_count, s.tz INTO p
	FROM evcharge.pile pl JOIN evcharge.station s USING (station_id)
	WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	IF NOT FOUND OR evcharge.gun_no(start_session.gun) > p.gun_count THEN
		RAISE EXCEPTION 'gun % is not registered', gun
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register its pile in evcharge.pile.';
	END IF;
	-- The member's customer group (department, fleet, VIP class) at the
	-- start: its group price and occupancy exemption apply to this charge.
	-- A member who is a partner's user charges on the partner's account,
	-- under its contract and not at a member's price, however it starts.
	SELECT coalesce(start_session.partner_id, m.partner_id),
	       CASE WHEN coalesce(start_session.partner_id, m.partner_id) IS NULL THEN m.group_id END
	INTO partner_id, grp
	FROM (SELECT 1) one LEFT JOIN evcharge.member m ON m.member_id = start_session.member_id;
	IF partner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.partner pa
			JOIN evcharge.station st ON st.operator_id = pa.operator_id
			WHERE pa.partner_id = start_session.partner_id AND st.station_id = p.station_id) THEN
		RAISE EXCEPTION 'partner % has no contract with the operator of gun %', partner_id, gun
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register the partner in evcharge.partner for this operator.';
	END IF;
	IF partner_id IS NOT NULL THEN
		SELECT * INTO ptn FROM evcharge.partner x WHERE x.partner_id = start_session.partner_id;
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
	INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, group_id, partner_id, channel)
	VALUES (order_no, gun, p.station_id, member_id, grp, partner_id, channel);
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
COMMENT ON FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint) IS
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected';

-- balance_guard (money.sql): a RemoteStopTransaction for a charge an OCPP pile started.
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
		            FROM evcharge.station_tariff t, evcharge.tariff_prices(t.tariff) p
		            WHERE t.station_id = s.station_id AND t.current_type = evcharge.current_type(s.gun)
		              AND t.valid @> s.last_ts), 0), 2) AS projected
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


-- == reference docs ==



-- == speed: generic plans, report indexes ==
-- daily_report's day and anomaly_report's period served by indexes and
-- said so the planner sees them, so both cost the period, not the
-- history; no JIT for either.
CREATE INDEX bill_station_day_idx ON evcharge.bill (station_id, (coalesce(ended_at, started_at)));
COMMENT ON INDEX evcharge.bill_station_day_idx IS 'bills of a station by coalesce(ended_at, started_at), the day daily_report() counts a bill in';
CREATE INDEX charge_session_ended_idx ON evcharge.charge_session (charging_ended_at)
	WHERE state IN ('occupied', 'ended');
COMMENT ON INDEX evcharge.charge_session_ended_idx IS 'occupied and ended sessions by end of charging: anomaly_report''s pending sessions of a period';
CREATE OR REPLACE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric)
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
		       0::numeric AS top_ups, 0::numeric AS credits, 0::numeric AS refunds, 0::numeric AS refund_fees
		FROM bills b
		GROUP BY b.station_id, b.sub
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
		       coalesce(sum(w.fee) FILTER (WHERE w.kind = 'refund_approve'), 0)
		FROM wallet_moves w
		GROUP BY w.sub
	), lines AS (
		SELECT * FROM station_lines UNION ALL SELECT * FROM wallet_lines
	), seen AS (
		SELECT * FROM lines l
		WHERE daily_report.only_sub_operator IS NULL OR l.sub_operator_id = daily_report.only_sub_operator
	)
	SELECT x.* FROM (
	SELECT s.line, s.station_id, st.name, s.sub_operator_id, so.name, s.sessions, s.held, s.unsettled,
	       s.energy_kwh, s.energy_fee, s.service_fee, s.occupancy_fee, s.discount, s.total,
	       s.top_ups, s.credits, s.refunds, s.refund_fees
	FROM seen s
	LEFT JOIN evcharge.station st ON st.station_id = s.station_id
	LEFT JOIN evcharge.sub_operator so ON so.sub_operator_id = s.sub_operator_id
	UNION ALL
	SELECT 'total', NULL, NULL, daily_report.only_sub_operator, NULL,
	       coalesce(sum(s.sessions), 0)::bigint, coalesce(sum(s.held), 0)::bigint, coalesce(sum(s.unsettled), 0)::bigint,
	       coalesce(sum(s.energy_kwh), 0), coalesce(sum(s.energy_fee), 0), coalesce(sum(s.service_fee), 0),
	       coalesce(sum(s.occupancy_fee), 0), coalesce(sum(s.discount), 0), coalesce(sum(s.total), 0),
	       coalesce(sum(s.top_ups), 0), coalesce(sum(s.credits), 0), coalesce(sum(s.refunds), 0),
	       coalesce(sum(s.refund_fees), 0)
	FROM seen s
	) x (line, station_id, station, sub_operator_id, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee,
	     service_fee, occupancy_fee, discount, total, top_ups, credits, refunds, refund_fees)
	ORDER BY array_position(ARRAY['station', 'wallets', 'total'], x.line), x.station_id, x.sub_operator_id NULLS FIRST;
END;
CREATE OR REPLACE FUNCTION evcharge.anomaly_report(operator_id bigint, from_day date, to_day date)
RETURNS TABLE (dimension text, value text, code int, code_name text, bills bigint, bills_now bigint,
	sessions bigint, successful bigint, pending bigint, share numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 100 SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	hint text := 'E.g. anomaly_report(12, ''2026-11-01'', ''2026-11-30'') for November 2026, or anomaly_report_month(12, ''2026-11-01'').';
BEGIN
	IF anomaly_report.operator_id IS NULL THEN
		RAISE EXCEPTION 'operator_id of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'Every argument is required: the operator, the first day and the last day.', HINT = hint;
	END IF;
	IF anomaly_report.from_day IS NULL THEN
		RAISE EXCEPTION 'from_day of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'Every argument is required: the operator, the first day and the last day.', HINT = hint;
	END IF;
	IF anomaly_report.to_day IS NULL THEN
		RAISE EXCEPTION 'to_day of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'Every argument is required: the operator, the first day and the last day.', HINT = hint;
	END IF;
	IF anomaly_report.from_day > anomaly_report.to_day THEN
		RAISE EXCEPTION 'report period from "%" to "%" is empty',
			CASE WHEN isfinite(anomaly_report.from_day) THEN to_char(anomaly_report.from_day, 'YYYY-MM-DD')
			     ELSE anomaly_report.from_day::text END,
			CASE WHEN isfinite(anomaly_report.to_day) THEN to_char(anomaly_report.to_day, 'YYYY-MM-DD')
			     ELSE anomaly_report.to_day::text END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'The first day is after the last; both days are part of the period.', HINT = hint;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = anomaly_report.operator_id) THEN
		RAISE EXCEPTION 'operator "%" is not known', anomaly_report.operator_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('No row of evcharge.operator has operator_id %s.', anomaly_report.operator_id),
			      HINT = 'Operators are in evcharge.operator.';
	END IF;

	RETURN QUERY
	WITH ended AS (
		-- Billed sessions: every set of codes the bill ever had.  Each
		-- change of a bill is a revision with the bill before and after,
		-- so the current codes and those of the revisions are all of them.
		SELECT b.channel AS ch, cs.partner_id AS pid, pa.name AS pname, pl.firmware AS fw, true AS billed,
		       b.anomalies OPERATOR(evcharge.|) coalesce(rv.seen, ''::evcharge.anomaly_set) AS ever,
		       b.anomalies AS cur
		FROM evcharge.station st
		JOIN evcharge.bill b ON b.station_id = st.station_id
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no
		LEFT JOIN evcharge.partner pa ON pa.partner_id = cs.partner_id
		LEFT JOIN evcharge.pile pl ON pl.pile_id OPERATOR(evcharge.=) evcharge.pile(b.gun)
		LEFT JOIN LATERAL (
			SELECT evcharge.anomaly_union(x.codes) AS seen
			FROM evcharge.bill_revision r,
			     LATERAL (VALUES ((r.before ->> 'anomalies')::evcharge.anomaly_set),
			                     ((r.after ->> 'anomalies')::evcharge.anomaly_set)) AS x(codes)
			WHERE r.order_no = b.order_no AND b.revision > 0) rv ON true
		WHERE st.operator_id = anomaly_report.operator_id
		  AND b.ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE st.tz)
		  AND b.ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE st.tz)
		  -- Implied by the two above (no zone is a day away from UTC), but
		  -- without a station's zone: the planner sees the period's size
		  -- and reads bill_station_idx per station for it, not all bills.
		  AND b.ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE 'UTC') - interval '1 day'
		  AND b.ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE 'UTC') + interval '1 day'
		UNION ALL
		-- Sessions whose charging has ended and that have no bill yet
		-- (the pile record not in, not given up on; or the unplug awaited).
		SELECT cs.channel, cs.partner_id, pa.name, pl.firmware, false, NULL, NULL
		FROM evcharge.station st
		JOIN evcharge.charge_session cs ON cs.station_id = st.station_id
		LEFT JOIN evcharge.partner pa ON pa.partner_id = cs.partner_id
		LEFT JOIN evcharge.pile pl ON pl.pile_id OPERATOR(evcharge.=) evcharge.pile(cs.gun)
		WHERE st.operator_id = anomaly_report.operator_id
		  AND cs.state IN ('occupied', 'ended')
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = cs.order_no)
		  -- coalesce(cs.charging_ended_at, cs.last_ts) in the period, said
		  -- so that charge_session_ended_idx serves both branches (the
		  -- bounds in UTC are implied, as above, and tell the planner).
		  AND ((cs.charging_ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE st.tz)
		        AND cs.charging_ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE st.tz)
		        AND cs.charging_ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE 'UTC') - interval '1 day'
		        AND cs.charging_ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE 'UTC') + interval '1 day')
		       OR (cs.charging_ended_at IS NULL
		           AND cs.last_ts >= (anomaly_report.from_day::timestamp AT TIME ZONE st.tz)
		           AND cs.last_ts < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE st.tz)))
	), grouped AS (
		-- Each session once per dimension it belongs to (partner only
		-- when it came through one), and once more per code it carried.
		SELECT d.ord, d.dim, d.gkey, min(d.val) AS val, c.code AS c_code,
		       count(*) AS n,
		       count(*) FILTER (WHERE evcharge.anomaly_has(e.cur, c.code)) AS n_now,
		       count(*) FILTER (WHERE e.billed AND e.ever OPERATOR(evcharge.=) ''::evcharge.anomaly_set) AS n_ok,
		       count(*) FILTER (WHERE e.billed AND e.ever OPERATOR(evcharge.<>) ''::evcharge.anomaly_set) AS n_bad,
		       count(*) FILTER (WHERE e.billed AND e.cur OPERATOR(evcharge.<>) ''::evcharge.anomaly_set) AS n_bad_now,
		       count(*) FILTER (WHERE NOT e.billed) AS n_pending
		FROM ended e
		CROSS JOIN LATERAL (VALUES (1, 'total', 'all', 'all'), (2, 'channel', e.ch, e.ch),
			(3, 'partner', e.pname, e.pid::text), (4, 'firmware', e.fw, e.fw)) AS d(ord, dim, val, gkey)
		CROSS JOIN LATERAL (SELECT NULL::int UNION ALL SELECT unnest(evcharge.anomaly_codes(e.ever))) AS c(code)
		WHERE d.dim <> 'partner' OR e.pid IS NOT NULL
		GROUP BY d.ord, d.dim, d.gkey, c.code
	)
	SELECT r.dim, r.val, r.c_code, r.c_name, r.n_bills, r.n_bills_now, r.n_sessions, r.n_ok, r.n_pending,
	       round(r.n_bills::numeric / nullif(r.n_sessions, 0), 4)
	FROM (
		SELECT g.ord, g.dim, g.val, g.gkey, g.c_code, ac.name AS c_name,
		       CASE WHEN g.c_code IS NULL THEN g.n_bad ELSE g.n END AS n_bills,
		       CASE WHEN g.c_code IS NULL THEN g.n_bad_now ELSE g.n_now END AS n_bills_now,
		       gs.n AS n_sessions, gs.n_ok, gs.n_pending
		FROM grouped g
		JOIN grouped gs ON gs.ord = g.ord AND gs.gkey IS NOT DISTINCT FROM g.gkey AND gs.c_code IS NULL
		LEFT JOIN evcharge.anomaly_code ac ON ac.code = g.c_code
		UNION ALL
		-- No session at all: the total says so.
		SELECT 1, 'total', 'all', 'all', NULL, NULL, 0, 0, 0, 0, 0
		WHERE NOT EXISTS (SELECT 1 FROM ended)
	) r
	ORDER BY r.ord, r.val NULLS LAST, r.gkey NULLS LAST, r.c_code NULLS FIRST;
END $$;

-- == release ==
