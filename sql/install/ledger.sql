-- ledger.sql: the double-entry ledger.  Accounts (wallets, revenue, the
-- payment provider's clearing account, ...), transactions of entries that
-- sum to zero (enforced at commit), immutable once written, balances kept
-- with the entries, and the one function that posts (post_txn), idempotent
-- on the event's own key.  Top-ups, settlement and refunds are in
-- money.sql.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

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
	CHECK (alert_threshold <> 'NaN'),
	UNIQUE NULLS NOT DISTINCT (operator_id, kind, owner_id, sub_operator_id),
	-- What ledger entries reference: an entry's account is in its operator's books.
	CONSTRAINT account_operator_key UNIQUE (account_id, operator_id)
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

-- The account of a kind for an operator (and owner or sub-operator), opened
-- on first use.  An account is opened only for what the operator has: a
-- wallet for its own registered member, department (customer group) or
-- partner, revenue for its own sub-operator; anything else is an error
-- (P0002), never an account of nobody's money.
CREATE FUNCTION evcharge.account_of(p_operator_id bigint, p_kind text, p_owner_id bigint DEFAULT NULL,
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

CREATE TABLE evcharge.ledger_txn (
	txn_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('top_up', 'manual_credit', 'bill', 'bill_adjustment', 'refund_request',
		'refund_approve', 'refund_reject', 'partner_payment', 'bill_refund')),
	idem_key text NOT NULL CHECK (idem_key <> ''),
	order_no text,
	note text,
	result jsonb,
	created_by text NOT NULL DEFAULT current_user,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (kind, idem_key),
	-- What ledger entries reference: an entry is in its transaction's operator's books.
	CONSTRAINT ledger_txn_operator_key UNIQUE (txn_id, operator_id)
);
CREATE INDEX ledger_txn_order_idx ON evcharge.ledger_txn (order_no) WHERE order_no IS NOT NULL;
COMMENT ON INDEX evcharge.ledger_txn_order_idx IS 'the ledger transactions of a bill';
CREATE INDEX ledger_txn_created_idx ON evcharge.ledger_txn (operator_id, created_at);
COMMENT ON INDEX evcharge.ledger_txn_created_idx IS 'an operator''s transactions in time: daily report, reconciliation';
COMMENT ON TABLE evcharge.ledger_txn IS
	'One movement of money: a set of ledger entries that sum to zero, made once per external event (its kind and key are unique); never changed: corrections are new transactions';
COMMENT ON COLUMN evcharge.ledger_txn.txn_id IS 'transaction number';
COMMENT ON COLUMN evcharge.ledger_txn.operator_id IS 'whose books';
COMMENT ON COLUMN evcharge.ledger_txn.kind IS 'top_up, manual_credit, bill, bill_adjustment, refund_request, refund_approve, refund_reject, partner_payment, bill_refund';
COMMENT ON COLUMN evcharge.ledger_txn.idem_key IS 'the event''s own key: the provider''s transaction id, the order number, the refund id; applying it again returns this transaction';
COMMENT ON COLUMN evcharge.ledger_txn.order_no IS 'the bill, for bill, bill_adjustment and bill_refund';
COMMENT ON COLUMN evcharge.ledger_txn.note IS 'why, for manual credits, adjustments and refunds of bills';
COMMENT ON COLUMN evcharge.ledger_txn.result IS 'what the first application returned (e.g. the balance after), returned again on a repeat';
COMMENT ON COLUMN evcharge.ledger_txn.created_by IS 'database user';
COMMENT ON COLUMN evcharge.ledger_txn.created_at IS 'when';

-- One operator per transaction, declared: an entry carries its operator,
-- and the two foreign keys make it the operator of its transaction and of
-- its account.  No trigger: a restore checks them as any foreign key.
CREATE TABLE evcharge.ledger_entry (
	entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	txn_id bigint NOT NULL,
	account_id bigint NOT NULL,
	amount numeric(14, 2) NOT NULL CHECK (amount <> 0 AND amount <> 'NaN'),
	operator_id bigint NOT NULL,
	CONSTRAINT ledger_entry_txn_operator_fkey FOREIGN KEY (txn_id, operator_id)
		REFERENCES evcharge.ledger_txn (txn_id, operator_id),
	CONSTRAINT ledger_entry_account_operator_fkey FOREIGN KEY (account_id, operator_id)
		REFERENCES evcharge.account (account_id, operator_id)
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

-- Balanced at commit: a transaction whose entries do not sum to zero, or
-- that has fewer than two, cannot be committed.  The check hangs on the
-- entries, so that it runs when they are there: pg_restore (and a plain
-- dump through psql) loads ledger_txn and ledger_entry by separate COPYs,
-- each committed on its own, and the entries of every transaction come in
-- the same COPY.  A transaction row made now (created_at is the
-- transaction's start, as post_txn and any INSERT that leaves the default
-- make it) is checked too, which catches one left with no entry at all; a
-- row that carries an earlier time, as a restored one does, is not: its
-- entries are checked when they come, and verify_ledger() reports a
-- transaction without any.
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

-- The one rule for the keys and references that make money move once: a
-- provider's transaction id, a staff request id, a bank reference, an order
-- number.  A key is compared exactly, so what looks alike must be alike: 1
-- to 128 characters, no white space at either end, no control or invisible
-- character (a key ' ' or 'k' || E'\n' is a callback gone wrong, not a
-- payment; a key of 100,000 characters is not anyone's id).
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
-- transaction and writes nothing.  Every account must be the operator's:
-- the foreign keys of ledger_entry refuse anything else, and the check here
-- says which account it was.  Its accounts are locked in account order
-- (lock_accounts), so two postings never deadlock on them.
CREATE FUNCTION evcharge.post_txn(p_operator_id bigint, p_kind text, p_key text, p_accounts bigint[],
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

-- Every discrepancy, per operator: unbalanced transactions, entries outside
-- their transaction''s operator''s books, an operator whose books do not
-- balance, balances that differ from their entries, accounts whose owner is
-- not the operator's.  None when the ledger is healthy.  There is no
-- movement between operators: each transaction is in one operator's books.
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

SELECT pg_catalog.pg_extension_config_dump('evcharge.account', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_txn', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_entry', '');
-- The identity sequences too, or a restored database would number new rows
-- from 1 again.
SELECT pg_catalog.pg_extension_config_dump('evcharge.account_account_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_txn_txn_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_entry_entry_id_seq', '');
