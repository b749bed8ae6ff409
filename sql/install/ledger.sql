-- ledger.sql: the double-entry ledger.  Accounts (wallets, revenue, the
-- payment provider's clearing account, ...), transactions of entries that
-- sum to zero (enforced at commit), immutable once written, balances kept
-- with the entries, and the one function that posts (post_txn), idempotent
-- on the event's own key.  Top-ups, settlement and refunds are in
-- money.sql.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.sub_operator (
	sub_operator_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> '')
);
COMMENT ON TABLE evcharge.sub_operator IS
	'A sub-operator (a bus company, a station owner) to which part of an operator''s revenue is attributed';
COMMENT ON COLUMN evcharge.sub_operator.sub_operator_id IS 'sub-operator number';
COMMENT ON COLUMN evcharge.sub_operator.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.sub_operator.name IS 'its name';

CREATE TABLE evcharge.member (
	member_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	group_id bigint REFERENCES evcharge.customer_group,
	vin text,
	card_no text,
	created_at timestamptz NOT NULL DEFAULT now(),
	partner_id bigint REFERENCES evcharge.partner
);
CREATE INDEX member_group_idx ON evcharge.member (group_id);
COMMENT ON INDEX evcharge.member_group_idx IS 'the members of a customer group (department)';
CREATE UNIQUE INDEX member_card_idx ON evcharge.member (operator_id, card_no) WHERE card_no IS NOT NULL;
COMMENT ON INDEX evcharge.member_card_idx IS 'a card belongs to one member of the operator: a start by card finds who pays';
CREATE UNIQUE INDEX member_vin_idx ON evcharge.member (operator_id, vin) WHERE vin IS NOT NULL;
COMMENT ON INDEX evcharge.member_vin_idx IS 'a vehicle belongs to one member of the operator: a start by VIN finds who pays';
COMMENT ON TABLE evcharge.member IS
	'A driver with a wallet; a member of a department whose group pays for its members charges to the department''s wallet';
COMMENT ON COLUMN evcharge.member.member_id IS 'member number (charge_session.member_id)';
COMMENT ON COLUMN evcharge.member.operator_id IS 'the operator the member charges with';
COMMENT ON COLUMN evcharge.member.group_id IS 'the member''s customer group (department), if any';
COMMENT ON COLUMN evcharge.member.vin IS 'the vehicle''s VIN, for attribution to a sub-operator';
COMMENT ON COLUMN evcharge.member.card_no IS 'charging card number, for attribution to a sub-operator';
COMMENT ON COLUMN evcharge.member.created_at IS 'when registered';
COMMENT ON COLUMN evcharge.member.partner_id IS 'an interconnection partner''s user (e.g. a card of the partner''s fleet): the partner pays for the member''s charges, under its contract''s start channels';

ALTER TABLE evcharge.customer_group ADD COLUMN pays_for_members boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN evcharge.customer_group.pays_for_members IS
	'a department account: its members'' bills are paid from the department''s wallet, not their own';

-- What is attributed to a sub-operator: a station's charges, a department's,
-- a vehicle's (VIN) or a card's.  The most specific rule wins: VIN, card,
-- department, station.
CREATE TABLE evcharge.attribution (
	attribution_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sub_operator_id bigint NOT NULL REFERENCES evcharge.sub_operator,
	station_id bigint REFERENCES evcharge.station,
	group_id bigint REFERENCES evcharge.customer_group,
	vin text,
	card_no text,
	CHECK (num_nonnulls(station_id, group_id, vin, card_no) = 1)
);
CREATE UNIQUE INDEX attribution_station_idx ON evcharge.attribution (station_id) WHERE station_id IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_station_idx IS 'a station is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_group_idx ON evcharge.attribution (group_id) WHERE group_id IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_group_idx IS 'a customer group is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_vin_idx ON evcharge.attribution (vin) WHERE vin IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_vin_idx IS 'a vehicle is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_card_idx ON evcharge.attribution (card_no) WHERE card_no IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_card_idx IS 'a card is attributed to one sub-operator at most';
COMMENT ON TABLE evcharge.attribution IS
	'Which charges belong to a sub-operator: by station, department (group), vehicle (VIN) or card; the most specific applies (VIN, card, department, station)';
COMMENT ON COLUMN evcharge.attribution.attribution_id IS 'row id';
COMMENT ON COLUMN evcharge.attribution.sub_operator_id IS 'the sub-operator';
COMMENT ON COLUMN evcharge.attribution.station_id IS 'every charge at this station';
COMMENT ON COLUMN evcharge.attribution.group_id IS 'every charge by members of this group';
COMMENT ON COLUMN evcharge.attribution.vin IS 'every charge of this vehicle';
COMMENT ON COLUMN evcharge.attribution.card_no IS 'every charge with this card';

CREATE TABLE evcharge.account (
	account_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('member_wallet', 'department_wallet', 'partner_prepaid',
		'partner_receivable', 'partner_payable', 'unassigned_receivable', 'revenue_electricity',
		'revenue_service', 'revenue_occupancy', 'refunds_payable', 'fee_income', 'provider_clearing',
		'bank', 'adjustments')),
	owner_id bigint,
	sub_operator_id bigint REFERENCES evcharge.sub_operator,
	balance numeric(14, 2) NOT NULL DEFAULT 0,
	alert_threshold numeric(14, 2),
	alert_armed boolean NOT NULL DEFAULT true,
	created_at timestamptz NOT NULL DEFAULT now(),
	CHECK ((kind IN ('member_wallet', 'department_wallet', 'partner_prepaid', 'partner_receivable', 'partner_payable'))
	       = (owner_id IS NOT NULL)),
	CHECK (sub_operator_id IS NULL OR kind LIKE 'revenue_%'),
	UNIQUE NULLS NOT DISTINCT (operator_id, kind, owner_id, sub_operator_id)
);
COMMENT ON TABLE evcharge.account IS
	'An account of the ledger; its balance is kept with its entries (verify_ledger() checks), in the account''s natural sign: what a wallet holds, what revenue earned, what the provider holds for us';
COMMENT ON COLUMN evcharge.account.account_id IS 'account number';
COMMENT ON COLUMN evcharge.account.operator_id IS 'the operator whose books it is in';
COMMENT ON COLUMN evcharge.account.kind IS
	'member_wallet, department_wallet, partner_prepaid (money a prepaid partner deposited), partner_receivable (an affiliated partner owes), partner_payable, unassigned_receivable (bills with no payer yet), revenue_electricity, revenue_service, revenue_occupancy, refunds_payable, fee_income, provider_clearing (money at the payment provider), bank (the operator''s bank account: partners'' payments in), adjustments (manual credits)';
COMMENT ON COLUMN evcharge.account.owner_id IS 'the member, group or partner whose account it is';
COMMENT ON COLUMN evcharge.account.sub_operator_id IS 'for revenue: the sub-operator it is attributed to (NULL: the operator itself)';
COMMENT ON COLUMN evcharge.account.balance IS 'balance in yuan, natural sign (credit-normal accounts: credits minus debits)';
COMMENT ON COLUMN evcharge.account.alert_threshold IS 'for a department wallet: NOTIFY evcharge_alert once when the balance falls below it';
COMMENT ON COLUMN evcharge.account.alert_armed IS 'the alert fires on the next crossing (re-armed when the balance is back above the threshold)';
COMMENT ON COLUMN evcharge.account.created_at IS 'when opened';

-- +1: debit-normal (assets, expenses); -1: credit-normal (liabilities, revenue).
CREATE FUNCTION evcharge.account_sign(kind text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN kind IN ('partner_receivable', 'unassigned_receivable', 'provider_clearing', 'bank', 'adjustments') THEN 1 ELSE -1 END;
COMMENT ON FUNCTION evcharge.account_sign(text) IS
	'+1 for debit-normal kinds (receivables, provider clearing, bank, adjustments), -1 for credit-normal ones (wallets, revenue, payables)';

-- The account of a kind for an operator (and owner or sub-operator), opened on first use.
CREATE FUNCTION evcharge.account_of(p_operator_id bigint, p_kind text, p_owner_id bigint DEFAULT NULL,
	p_sub_operator_id bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	id bigint;
BEGIN
	SELECT a.account_id INTO id FROM evcharge.account a
	WHERE a.operator_id = p_operator_id AND a.kind = p_kind AND a.owner_id IS NOT DISTINCT FROM p_owner_id
	  AND a.sub_operator_id IS NOT DISTINCT FROM p_sub_operator_id;
	IF FOUND THEN
		RETURN id;
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
	'the account of this kind for the operator (and owner, or sub-operator for revenue), opened with balance 0 on first use';

CREATE TABLE evcharge.ledger_txn (
	txn_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('top_up', 'manual_credit', 'bill', 'bill_adjustment', 'refund_request',
		'refund_approve', 'refund_reject', 'partner_payment')),
	idem_key text NOT NULL CHECK (idem_key <> ''),
	order_no text,
	note text,
	result jsonb,
	created_by text NOT NULL DEFAULT current_user,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (kind, idem_key)
);
CREATE INDEX ledger_txn_order_idx ON evcharge.ledger_txn (order_no) WHERE order_no IS NOT NULL;
COMMENT ON INDEX evcharge.ledger_txn_order_idx IS 'the ledger transactions of a bill';
CREATE INDEX ledger_txn_created_idx ON evcharge.ledger_txn (operator_id, created_at);
COMMENT ON INDEX evcharge.ledger_txn_created_idx IS 'an operator''s transactions in time: daily report, reconciliation';
COMMENT ON TABLE evcharge.ledger_txn IS
	'One movement of money: a set of ledger entries that sum to zero, made once per external event (its kind and key are unique); never changed: corrections are new transactions';
COMMENT ON COLUMN evcharge.ledger_txn.txn_id IS 'transaction number';
COMMENT ON COLUMN evcharge.ledger_txn.operator_id IS 'whose books';
COMMENT ON COLUMN evcharge.ledger_txn.kind IS 'top_up, manual_credit, bill, bill_adjustment, refund_request, refund_approve, refund_reject, partner_payment';
COMMENT ON COLUMN evcharge.ledger_txn.idem_key IS 'the event''s own key: the provider''s transaction id, the order number, the refund id; applying it again returns this transaction';
COMMENT ON COLUMN evcharge.ledger_txn.order_no IS 'the bill, for bill and bill_adjustment';
COMMENT ON COLUMN evcharge.ledger_txn.note IS 'why, for manual credits and adjustments';
COMMENT ON COLUMN evcharge.ledger_txn.result IS 'what the first application returned (e.g. the balance after), returned again on a repeat';
COMMENT ON COLUMN evcharge.ledger_txn.created_by IS 'database user';
COMMENT ON COLUMN evcharge.ledger_txn.created_at IS 'when';

CREATE TABLE evcharge.ledger_entry (
	entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	txn_id bigint NOT NULL REFERENCES evcharge.ledger_txn,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	amount numeric(14, 2) NOT NULL CHECK (amount <> 0)
);
CREATE INDEX ledger_entry_txn_idx ON evcharge.ledger_entry (txn_id);
COMMENT ON INDEX evcharge.ledger_entry_txn_idx IS 'the entries of a transaction';
CREATE INDEX ledger_entry_account_idx ON evcharge.ledger_entry (account_id);
COMMENT ON INDEX evcharge.ledger_entry_account_idx IS 'the entries of an account: statements, verify_ledger';
COMMENT ON TABLE evcharge.ledger_entry IS
	'One line of a transaction: an amount debited (positive) or credited (negative) to an account; the lines of a transaction sum to zero';
COMMENT ON COLUMN evcharge.ledger_entry.entry_id IS 'row id';
COMMENT ON COLUMN evcharge.ledger_entry.txn_id IS 'the transaction';
COMMENT ON COLUMN evcharge.ledger_entry.account_id IS 'the account';
COMMENT ON COLUMN evcharge.ledger_entry.amount IS 'yuan, debit positive, credit negative';

-- Immutable: corrections are new transactions.
CREATE FUNCTION evcharge.ledger_immutable() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'the ledger cannot be changed: % on %', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'Post a correcting transaction (manual_credit, a repair''s adjustment, a refund).';
END $$;
COMMENT ON FUNCTION evcharge.ledger_immutable() IS 'trigger: refuses updates and deletes of ledger transactions and entries';
CREATE TRIGGER ledger_txn_immutable BEFORE UPDATE OR DELETE ON evcharge.ledger_txn
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER ledger_txn_immutable ON evcharge.ledger_txn IS 'ledger transactions cannot be changed or deleted';
CREATE TRIGGER ledger_entry_immutable BEFORE UPDATE OR DELETE ON evcharge.ledger_entry
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER ledger_entry_immutable ON evcharge.ledger_entry IS 'ledger entries cannot be changed or deleted';

-- Balances move with the entries, in the same statement.
CREATE FUNCTION evcharge.ledger_apply() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	UPDATE evcharge.account a SET balance = a.balance + d.delta * evcharge.account_sign(a.kind)
	FROM (SELECT n.account_id, sum(n.amount) AS delta FROM new_entries n GROUP BY n.account_id) d
	WHERE a.account_id = d.account_id;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ledger_apply() IS 'trigger: adds new entries to their accounts'' balances';
CREATE TRIGGER ledger_apply AFTER INSERT ON evcharge.ledger_entry
	REFERENCING NEW TABLE AS new_entries
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ledger_apply();
COMMENT ON TRIGGER ledger_apply ON evcharge.ledger_entry IS 'new entries move their accounts'' balances in the same statement';

-- Balanced at commit: a transaction whose entries do not sum to zero, or
-- that has fewer than two, cannot be committed.
CREATE FUNCTION evcharge.ledger_check_balanced() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s numeric;
	n bigint;
BEGIN
	SELECT coalesce(sum(e.amount), 0), count(*) INTO s, n FROM evcharge.ledger_entry e WHERE e.txn_id = NEW.txn_id;
	IF s <> 0 OR n < 2 THEN
		RAISE EXCEPTION 'ledger transaction % does not balance', NEW.txn_id
			USING ERRCODE = 'check_violation',
			      DETAIL = format('Its %s entries sum to %s; every transaction needs at least two entries summing to 0.', n, s),
			      HINT = 'Post money through evcharge.post_txn() or the functions built on it.';
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ledger_check_balanced() IS 'constraint trigger, at commit: every transaction has at least two entries summing to zero';
CREATE CONSTRAINT TRIGGER ledger_txn_balanced AFTER INSERT ON evcharge.ledger_txn
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_check_balanced();
COMMENT ON TRIGGER ledger_txn_balanced ON evcharge.ledger_txn IS 'at commit: a transaction''s entries sum to zero';

-- Locks accounts the way every function that moves money does: in account
-- order, the last of the locks a money function takes (docs/money.md,
-- "Locks and deadlocks"), so that two of them never wait for each other in
-- a circle.  FOR NO KEY UPDATE is what the balance update takes anyway; it
-- does not block rows that only refer to an account (the balance guard's
-- stop request, a refund, a ledger entry), whose foreign keys take KEY SHARE.
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

-- Posts one transaction, once per (kind, key): the first call writes it and
-- its result; any later call with the same kind and key returns that
-- transaction and writes nothing.  Its accounts are locked in account order
-- (lock_accounts), so two postings never deadlock on them.
CREATE FUNCTION evcharge.post_txn(p_operator_id bigint, p_kind text, p_key text, p_accounts bigint[],
	p_amounts numeric[], p_order_no text DEFAULT NULL, p_note text DEFAULT NULL, p_result jsonb DEFAULT NULL,
	OUT txn evcharge.ledger_txn, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i int;
	total numeric := 0;
BEGIN
	IF p_key IS NULL OR p_key = '' THEN
		RAISE EXCEPTION 'a % needs its own key', p_kind
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the provider''s transaction id, the order number or the refund id.';
	END IF;
	SELECT * INTO txn FROM evcharge.ledger_txn t WHERE t.kind = p_kind AND t.idem_key = p_key;
	IF FOUND THEN
		replayed := true;
		RETURN;
	END IF;
	IF coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_amounts, 1), 0) THEN
		RAISE EXCEPTION '% accounts and % amounts', array_length(p_accounts, 1), array_length(p_amounts, 1)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR i IN 1 .. coalesce(array_length(p_amounts, 1), 0) LOOP
		IF p_amounts[i] IS NULL OR p_amounts[i] <> round(p_amounts[i], 2) THEN
			RAISE EXCEPTION 'amount % is not in yuan and fen', coalesce(p_amounts[i]::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Money has two decimals at most; truncate to the fen first.';
		END IF;
		total := total + p_amounts[i];
	END LOOP;
	IF total <> 0 THEN
		RAISE EXCEPTION 'the entries of % % sum to %', p_kind, p_key, total
			USING ERRCODE = 'check_violation', HINT = 'Debits (positive) and credits (negative) must sum to 0.';
	END IF;
	INSERT INTO evcharge.ledger_txn (operator_id, kind, idem_key, order_no, note, result)
	VALUES (p_operator_id, p_kind, p_key, p_order_no, p_note, p_result)
	ON CONFLICT (kind, idem_key) DO NOTHING
	RETURNING * INTO txn;
	IF txn.txn_id IS NULL THEN
		-- Another transaction posted the same event meanwhile and committed.
		SELECT * INTO txn FROM evcharge.ledger_txn t WHERE t.kind = p_kind AND t.idem_key = p_key;
		replayed := true;
		RETURN;
	END IF;
	PERFORM evcharge.lock_accounts(p_accounts);
	INSERT INTO evcharge.ledger_entry (txn_id, account_id, amount)
	SELECT txn.txn_id, x.account_id, sum(x.amount)
	FROM unnest(p_accounts, p_amounts) AS x(account_id, amount)
	GROUP BY x.account_id HAVING sum(x.amount) <> 0
	ORDER BY x.account_id;
	replayed := false;
END $$;
COMMENT ON FUNCTION evcharge.post_txn(bigint, text, text, bigint[], numeric[], text, text, jsonb) IS
	'posts a transaction (accounts and amounts, debit positive, summing to 0) once per kind and key; a repeat returns the first transaction with replayed = true';

-- Every discrepancy: unbalanced transactions, balances that differ from
-- their entries.  None when the ledger is healthy.
CREATE FUNCTION evcharge.verify_ledger()
RETURNS TABLE (problem text, txn_id bigint, account_id bigint, expected numeric, actual numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'transaction does not balance', t.txn_id, NULL::bigint, 0::numeric, coalesce(sum(e.amount), 0)
	FROM evcharge.ledger_txn t LEFT JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
	GROUP BY t.txn_id HAVING coalesce(sum(e.amount), 0) <> 0 OR count(e.entry_id) < 2
	UNION ALL
	SELECT 'balance differs from its entries', NULL::bigint, a.account_id,
	       coalesce((SELECT sum(e.amount) FROM evcharge.ledger_entry e WHERE e.account_id = a.account_id), 0)
	         * evcharge.account_sign(a.kind),
	       a.balance
	FROM evcharge.account a
	WHERE a.balance <> coalesce((SELECT sum(e.amount) FROM evcharge.ledger_entry e WHERE e.account_id = a.account_id), 0)
	                   * evcharge.account_sign(a.kind)
	ORDER BY 1, 2, 3;
END;
COMMENT ON FUNCTION evcharge.verify_ledger() IS
	'the ledger''s discrepancies: transactions whose entries do not sum to zero (or have fewer than two), accounts whose balance differs from their entries; no rows when healthy';

SELECT pg_catalog.pg_extension_config_dump('evcharge.sub_operator', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.member', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.attribution', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.account', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_txn', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_entry', '');
