-- evcharge 0.1.0 -> 0.2.0: ALTER EXTENSION evcharge UPDATE TO '0.2.0'.
-- Every change that 0.2.0 makes to the extension's SQL, in the order of the
-- install files it belongs to.  test/integration/upgrade.sh installs 0.1.0,
-- runs this script and compares the catalogue with a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.2.0'" to load this file. \quit

-- == types and engines: time zones, tariff grammar, exact engine arithmetic ==



-- == money: references, plausibility limits, one operator per transaction ==



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

CREATE OR REPLACE FUNCTION evcharge.top_up(account_id bigint, amount numeric, provider_txn text,
	OUT txn_id bigint, OUT balance numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r record;
BEGIN
	w := evcharge.wallet_account(top_up.account_id);
	PERFORM evcharge.check_amount(top_up.amount, 'a top-up');
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
END $$;
COMMENT ON FUNCTION evcharge.manual_credit(bigint, numeric, text, text) IS
	'credits a wallet by hand (debiting the operator''s adjustments) with a mandatory note, once per request id';

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



-- == backup and restore, the drop guard ==



-- == jobs: watermarks, schedules kept, time arguments checked ==



-- == the OCPP bridge: registry, transaction ids, commands ==



-- == reference docs ==



-- == release ==
