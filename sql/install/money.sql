-- money.sql: what moves money through the ledger (ledger.sql): top-ups from
-- the payment provider, manual credits, the settlement of bills (and the
-- adjustment of a settled bill a repair changed), refunds.  Every function
-- is idempotent on the event's own key.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Checks an amount of money given by a caller: positive, finite, yuan and
-- fen, and no more than an account can hold.
CREATE FUNCTION evcharge.check_amount(p_amount numeric, p_what text) RETURNS numeric
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

CREATE FUNCTION evcharge.wallet_account(p_account_id bigint) RETURNS evcharge.account
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a evcharge.account;
BEGIN
	SELECT * INTO a FROM evcharge.account WHERE account_id = p_account_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account % does not exist', coalesce(p_account_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Wallets are in evcharge.account (evcharge.member_wallet() opens a member''s).';
	END IF;
	IF a.kind NOT IN ('member_wallet', 'department_wallet', 'partner_prepaid') THEN
		RAISE EXCEPTION 'account % is not a wallet but %', p_account_id, a.kind
			USING ERRCODE = 'wrong_object_type', HINT = 'Top-ups, credits and refunds go to member, department or prepaid partner wallets.';
	END IF;
	RETURN a;
END $$;
COMMENT ON FUNCTION evcharge.wallet_account(bigint) IS 'the account if it is a wallet (member, department, prepaid partner), else an error';

-- A member's wallet (opened on first use).
CREATE FUNCTION evcharge.member_wallet(p_member_id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	op bigint;
BEGIN
	SELECT m.operator_id INTO op FROM evcharge.member m WHERE m.member_id = p_member_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'member % is not registered', coalesce(p_member_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Register the member in evcharge.member first.';
	END IF;
	RETURN evcharge.account_of(op, 'member_wallet', p_member_id);
END $$;
COMMENT ON FUNCTION evcharge.member_wallet(bigint) IS 'the member''s wallet account, opened on first use';

-- A top-up, as the payment provider's callback calls it.
CREATE FUNCTION evcharge.top_up(account_id bigint, amount numeric, provider_txn text,
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

-- A credit by an operator's staff, with its reason.
CREATE FUNCTION evcharge.manual_credit(account_id bigint, amount numeric, note text, request_id text,
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

-- NOTIFY evcharge_alert once when a department wallet falls below its threshold.
CREATE FUNCTION evcharge.check_alert(p_account_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a evcharge.account;
BEGIN
	SELECT * INTO a FROM evcharge.account WHERE account_id = p_account_id;
	IF a.alert_threshold IS NULL THEN
		RETURN false;
	END IF;
	IF a.balance < a.alert_threshold AND a.alert_armed THEN
		UPDATE evcharge.account SET alert_armed = false WHERE account_id = p_account_id;
		PERFORM pg_notify('evcharge_alert', json_build_object('account_id', a.account_id, 'kind', a.kind,
			'owner_id', a.owner_id, 'balance', a.balance, 'threshold', a.alert_threshold)::text);
		RETURN true;
	ELSIF a.balance >= a.alert_threshold AND NOT a.alert_armed THEN
		UPDATE evcharge.account SET alert_armed = true WHERE account_id = p_account_id;
	END IF;
	RETURN false;
END $$;
COMMENT ON FUNCTION evcharge.check_alert(bigint) IS
	'sends NOTIFY evcharge_alert once per crossing when a wallet with an alert threshold falls below it, and re-arms when it is back above; true when it sent one';

-- Who pays a session and to whom its revenue is attributed.
CREATE FUNCTION evcharge.bill_parties(p_order_no text, OUT operator_id bigint, OUT payer bigint,
	OUT sub_operator_id bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	m evcharge.member;
	p record;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	SELECT st.operator_id INTO operator_id FROM evcharge.station st WHERE st.station_id = s.station_id;
	SELECT * INTO m FROM evcharge.member mm WHERE mm.member_id = s.member_id;
	SELECT * INTO p FROM evcharge.payer_of(s.member_id, s.group_id, s.partner_id);
	payer := evcharge.account_of(operator_id, p.kind, p.owner_id);
	sub_operator_id := evcharge.attributed_sub_operator(operator_id, s.station_id, coalesce(s.group_id, m.group_id),
		m.vin, m.card_no);
END $$;
COMMENT ON FUNCTION evcharge.bill_parties(text) IS
	'who pays a session (its account by the rule of payer_of: the partner''s account for partner starts, the department''s wallet for members of a paying department, else the member''s wallet, else unassigned receivable) and the sub-operator its revenue is attributed to (VIN, card, department, station, in that order)';

-- The ledger lines of a bill's amounts: the payer debited the total, the
-- revenue accounts credited, service net of the coupon.
CREATE FUNCTION evcharge.bill_lines(p_order_no text, p_energy numeric, p_service numeric, p_occupancy numeric,
	p_discount numeric, OUT operator_id bigint, OUT accounts bigint[], OUT amounts numeric[])
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pp record;
BEGIN
	pp := evcharge.bill_parties(p_order_no);
	operator_id := pp.operator_id;
	accounts := ARRAY[pp.payer,
		evcharge.account_of(pp.operator_id, 'revenue_electricity', NULL, pp.sub_operator_id),
		evcharge.account_of(pp.operator_id, 'revenue_service', NULL, pp.sub_operator_id),
		evcharge.account_of(pp.operator_id, 'revenue_occupancy', NULL, pp.sub_operator_id)];
	amounts := ARRAY[p_energy + p_service - p_discount + p_occupancy, -p_energy, -(p_service - p_discount), -p_occupancy];
END $$;
COMMENT ON FUNCTION evcharge.bill_lines(text, numeric, numeric, numeric, numeric) IS
	'the accounts and amounts that settle a bill''s figures: the payer debited the total, electricity, service (net of the coupon) and occupancy revenue credited';

-- Settles one final bill: money moves once per order.  The bill is locked
-- first, then its accounts (post_txn): the order of docs/money.md, "Locks
-- and deadlocks".
CREATE FUNCTION evcharge.settle_bill(p_order_no text) RETURNS evcharge.ledger_txn
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
	l record;
	p record;
BEGIN
	SELECT * INTO b FROM evcharge.bill WHERE order_no = p_order_no FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	IF b.state = 'held' THEN
		RAISE EXCEPTION 'bill % is held and is not charged', p_order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its anomalies: %s.', coalesce(nullif(b.anomalies::text, ''), 'none recorded')),
			      HINT = 'Repair it with evcharge.repair_bill(); a repaired bill is settled for the repaired amount.';
	END IF;
	l := evcharge.bill_lines(p_order_no, b.energy_fee, b.service_fee, b.occupancy_fee, b.discount);
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill', p_order_no, l.accounts, l.amounts, p_order_no, NULL,
		jsonb_build_object('total', b.total, 'revision', b.revision, 'energy_wh', b.energy_wh));
	IF b.state <> 'settled' THEN
		UPDATE evcharge.bill SET state = 'settled' WHERE order_no = p_order_no;
	END IF;
	IF NOT p.replayed THEN
		PERFORM evcharge.check_alert(l.accounts[1]);
	END IF;
	RETURN p.txn;
END $$;
COMMENT ON FUNCTION evcharge.settle_bill(text) IS
	'settles a final bill: debits the payer''s account the total and credits electricity, service and occupancy revenue of the attributed sub-operator, once per order; a held bill is refused';

-- The job: every final bill not yet settled.  One transaction posts many
-- bills, so it takes its locks as one posting would (docs/money.md, "Locks
-- and deadlocks"): first the bills, skipping those another session holds
-- (being repaired, billed or settled: the next run takes them); then every
-- account the batch posts to, all at once, in account order; then it
-- settles the batch; if a bill of it cannot be settled, bill by bill, each
-- in its own subtransaction, so that the bill is left final with a WARNING
-- and the others are settled.
CREATE FUNCTION evcharge.settle_bills(OUT settled bigint)
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
	-- The batch in one subtransaction: a subtransaction per bill would make
	-- each update of an account this transaction locked above a MultiXact
	-- holding every earlier subtransaction, so the job's time grew with the
	-- square of its bills (1,000 bills 10.7 s, 2,000 42.9 s; bench/
	-- settle_bills.sh).  Only when a bill of the batch fails is the batch
	-- undone and settled bill by bill, each in its own subtransaction, so
	-- that the bad one is left final with its WARNING.
	BEGIN
		FOREACH o IN ARRAY ready LOOP
			PERFORM evcharge.settle_bill(o);
		END LOOP;
		settled := cardinality(ready);
		RETURN;
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
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

-- Refunds of one bill ("refund everything charged for this order"): money
-- given back to whoever paid it, by support, with the reason.  Each refund
-- reverses part of the bill's revenue lines (bill_refund's three parts), so
-- what is left to refund on a bill, line by line, is what it charged less
-- what its refunds gave back.
CREATE TABLE evcharge.bill_refund (
	bill_refund_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	request_id text NOT NULL UNIQUE,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	amount numeric(12, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	energy_fee numeric(12, 2) NOT NULL CHECK (energy_fee >= 0 AND energy_fee <> 'NaN'),
	service_fee numeric(12, 2) NOT NULL CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	occupancy_fee numeric(12, 2) NOT NULL CHECK (occupancy_fee >= 0 AND occupancy_fee <> 'NaN'),
	reason text NOT NULL CHECK (btrim(reason) <> ''),
	txn_id bigint NOT NULL REFERENCES evcharge.ledger_txn,
	refunded_by text NOT NULL DEFAULT current_user,
	refunded_at timestamptz NOT NULL DEFAULT now(),
	CHECK (amount = energy_fee + service_fee + occupancy_fee)
);
CREATE INDEX bill_refund_order_idx ON evcharge.bill_refund (order_no);
COMMENT ON INDEX evcharge.bill_refund_order_idx IS 'the refunds of a bill';
COMMENT ON TABLE evcharge.bill_refund IS
	'Refunds of single bills (refund_bill): what was given back to the payer, taken from which revenue lines, why, by whom; at most what the bill charged; never changed';
COMMENT ON COLUMN evcharge.bill_refund.bill_refund_id IS 'refund number';
COMMENT ON COLUMN evcharge.bill_refund.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.bill_refund.request_id IS 'the support request''s own id (check_key): the key of its ledger transaction, so a request is refunded once';
COMMENT ON COLUMN evcharge.bill_refund.account_id IS 'the account credited: whoever pays the bill (bill_parties): the member''s or department''s wallet, the partner''s deposit or receivable';
COMMENT ON COLUMN evcharge.bill_refund.amount IS 'yuan given back';
COMMENT ON COLUMN evcharge.bill_refund.energy_fee IS 'the part taken back from electricity revenue, yuan';
COMMENT ON COLUMN evcharge.bill_refund.service_fee IS 'the part taken back from service revenue (net of the coupon), yuan';
COMMENT ON COLUMN evcharge.bill_refund.occupancy_fee IS 'the part taken back from occupancy revenue, yuan';
COMMENT ON COLUMN evcharge.bill_refund.reason IS 'why, as support gave it';
COMMENT ON COLUMN evcharge.bill_refund.txn_id IS 'its ledger transaction (kind bill_refund)';
COMMENT ON COLUMN evcharge.bill_refund.refunded_by IS 'database user';
COMMENT ON COLUMN evcharge.bill_refund.refunded_at IS 'when';
CREATE TRIGGER bill_refund_immutable BEFORE UPDATE OR DELETE ON evcharge.bill_refund
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER bill_refund_immutable ON evcharge.bill_refund IS 'refunds of bills cannot be changed or deleted';

-- The bill's audit trail points at its refunds: a refund is a revision of
-- the bill (method refund) that names it.
ALTER TABLE evcharge.bill_revision ADD COLUMN bill_refund_id bigint REFERENCES evcharge.bill_refund;
COMMENT ON COLUMN evcharge.bill_revision.bill_refund_id IS 'for method refund: the refund this revision records (bill_refund)';

-- What a bill's refunds took back so far, line by line.
CREATE FUNCTION evcharge.bill_refunded(p_order_no text, OUT energy_fee numeric, OUT service_fee numeric,
	OUT occupancy_fee numeric, OUT total numeric, OUT refunds bigint)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(sum(r.energy_fee), 0), coalesce(sum(r.service_fee), 0), coalesce(sum(r.occupancy_fee), 0),
	       coalesce(sum(r.amount), 0), count(*)
	FROM evcharge.bill_refund r WHERE r.order_no = p_order_no;
END;
COMMENT ON FUNCTION evcharge.bill_refunded(text) IS
	'what the refunds of a bill gave back so far: per revenue line (electricity, service net of the coupon, occupancy), in all, and how many refunds';

-- A settled bill that a repair changed: the difference moves, as its own
-- transaction.  What a refund of the bill gave back is not given back
-- again: each revenue line moves as if it were at least what its refunds
-- took from it, so a repair after a refund never returns more than the
-- bill charged.
CREATE FUNCTION evcharge.adjust_settled_bill(p_order_no text, old evcharge.bill, nb evcharge.bill, p_reason text)
RETURNS evcharge.ledger_txn
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l record;
	p record;
	rf record;
BEGIN
	rf := evcharge.bill_refunded(p_order_no);
	IF rf.refunds = 0 THEN
		l := evcharge.bill_lines(p_order_no, nb.energy_fee - old.energy_fee, nb.service_fee - old.service_fee,
			nb.occupancy_fee - old.occupancy_fee, nb.discount - old.discount);
	ELSE
		l := evcharge.bill_lines(p_order_no,
			greatest(nb.energy_fee, rf.energy_fee) - greatest(old.energy_fee, rf.energy_fee),
			greatest(nb.service_fee - nb.discount, rf.service_fee) - greatest(old.service_fee - old.discount, rf.service_fee),
			greatest(nb.occupancy_fee, rf.occupancy_fee) - greatest(old.occupancy_fee, rf.occupancy_fee), 0);
	END IF;
	IF (SELECT bool_and(x = 0) FROM unnest(l.amounts) x) THEN
		RETURN NULL;
	END IF;
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_adjustment', p_order_no || '#' || nb.revision,
		l.accounts, l.amounts, p_order_no, p_reason, jsonb_build_object('old_total', old.total, 'new_total', nb.total,
		'energy_wh_delta', nb.energy_wh - old.energy_wh));
	RETURN p.txn;
END $$;
COMMENT ON FUNCTION evcharge.adjust_settled_bill(text, evcharge.bill, evcharge.bill, text) IS
	'posts the difference between a settled bill and its repaired version (payer and revenue), once per revision; a revenue line a refund of the bill took from moves as if it were at least what the refund took (bill_refunded), so nothing is given back twice';

-- The money layer follows the bills: a revision of a settled bill (a
-- repair, or a pile record that came after the bill was made from
-- heartbeats) posts the difference in the same transaction.  The pipeline
-- (bill.sql, repair.sql) writes the revision and calls nothing of money;
-- a refund's own revision (method refund) moved its money already.
CREATE FUNCTION evcharge.bill_revision_adjusts_ledger() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM evcharge.adjust_settled_bill(NEW.order_no, jsonb_populate_record(NULL::evcharge.bill, NEW.before),
		jsonb_populate_record(NULL::evcharge.bill, NEW.after), NEW.reason);
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.bill_revision_adjusts_ledger() IS
	'trigger on bill_revision: a revision of a bill that was settled (not a refund''s) posts the difference between before and after through adjust_settled_bill, in the same transaction';
CREATE TRIGGER bill_revision_adjusts_ledger AFTER INSERT ON evcharge.bill_revision
	FOR EACH ROW WHEN (NEW.method <> 'refund' AND NEW.before ->> 'state' = 'settled')
	EXECUTE FUNCTION evcharge.bill_revision_adjusts_ledger();
COMMENT ON TRIGGER bill_revision_adjusts_ledger ON evcharge.bill_revision IS
	'the ledger follows a settled bill''s revision: the difference is posted (adjust_settled_bill) as the revision is written';

-- Refunds.  What a refund costs is by band: finance's rule for a bank
-- transfer is 6 yuan under 10,000 yuan and 12 yuan from 10,000 to 100,000
-- yuan, plus the payment provider's 0.6 %, which is all a provider refund
-- costs.  Each operator has its own bands (refund_fee_bands), made with the
-- defaults below when the operator is registered; a refund beyond the last
-- band of its method is refused.

-- The defaults, the one place their figures are written: a new operator's
-- rows, and refund_fee(amount, method) without an operator.
CREATE FUNCTION evcharge.default_refund_fee_bands()
RETURNS TABLE (method text, up_to numeric[], fixed_fee numeric[], rate numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'bank', '{9999.99,100000.00}'::numeric[], '{6.00,12.00}'::numeric[], 0.006
	UNION ALL
	SELECT 'provider', '{999999999999.99}'::numeric[], '{0.00}'::numeric[], 0.006;
END;
COMMENT ON FUNCTION evcharge.default_refund_fee_bands() IS
	'the refund fee bands a new operator gets (finance''s rule): bank 6 yuan up to 9,999.99 yuan and 12 yuan up to 100,000.00, plus 0.6 %; provider 0.6 % with no band limit short of a trillion';

-- Whether a method's bands are well formed: one limit and one fixed fee per
-- band, limits in yuan and fen rising from above 0, fees of 0 or more.
CREATE FUNCTION evcharge.refund_fee_bands_valid(p_up_to numeric[], p_fixed_fee numeric[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(cardinality(p_up_to) >= 1 AND cardinality(p_up_to) = cardinality(p_fixed_fee)
	       AND array_ndims(p_up_to) = 1 AND array_ndims(p_fixed_fee) = 1
	       AND NOT EXISTS (
	           SELECT 1 FROM unnest(p_up_to, p_fixed_fee) WITH ORDINALITY AS b(up_to, fixed_fee, n)
	           WHERE b.up_to IS NULL OR b.fixed_fee IS NULL OR b.up_to IN ('NaN', 'Infinity')
	              OR b.fixed_fee IN ('NaN', 'Infinity') OR b.fixed_fee < 0 OR b.up_to <> trunc(b.up_to, 2)
	              OR b.up_to > 999999999999.99
	              OR b.up_to <= coalesce(p_up_to[b.n - 1], 0)), false);
END;
COMMENT ON FUNCTION evcharge.refund_fee_bands_valid(numeric[], numeric[]) IS
	'true when a method''s refund fee bands are well formed: as many fixed fees as limits (at least one), limits in yuan and fen rising from above 0 and below a trillion, fixed fees finite and 0 or more; the check of refund_fee_bands';

CREATE TABLE evcharge.refund_fee_bands (
	operator_id bigint NOT NULL REFERENCES evcharge.operator ON DELETE CASCADE,
	method text NOT NULL CHECK (method IN ('bank', 'provider')),
	up_to numeric(14, 2)[] NOT NULL,
	fixed_fee numeric(10, 2)[] NOT NULL,
	rate numeric(6, 5) NOT NULL CHECK (rate >= 0 AND rate < 1),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (operator_id, method),
	CONSTRAINT refund_fee_bands_valid CHECK (evcharge.refund_fee_bands_valid(up_to, fixed_fee))
);
COMMENT ON TABLE evcharge.refund_fee_bands IS
	'What a refund costs, per operator and method: bands of amounts, each with its fixed fee, plus a rate of the amount, truncated to the fen; a refund above the last band is refused; the defaults (default_refund_fee_bands) are made for every new operator';
COMMENT ON COLUMN evcharge.refund_fee_bands.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.refund_fee_bands.method IS 'bank or provider';
COMMENT ON COLUMN evcharge.refund_fee_bands.up_to IS
	'the bands'' upper limits, yuan, rising: band n holds the amounts above limit n-1 (from 0 for the first) up to limit n included; a refund above the last is refused';
COMMENT ON COLUMN evcharge.refund_fee_bands.fixed_fee IS 'the fixed fee of each band, yuan (bank: {6.00,12.00})';
COMMENT ON COLUMN evcharge.refund_fee_bands.rate IS 'the part of the amount added to the fixed fee (0.006: the provider''s 0.6 %)';
COMMENT ON COLUMN evcharge.refund_fee_bands.updated_at IS 'last change';
COMMENT ON CONSTRAINT refund_fee_bands_valid ON evcharge.refund_fee_bands IS
	'the bands are well formed (refund_fee_bands_valid): a fixed fee per limit, limits rising';

-- The one place a new operator's own rows are made, with the defaults: its
-- anomaly thresholds (anomaly_policy, anomaly.sql), its money settings
-- (finance_policy) and its refund fee bands (default_refund_fee_bands()).
-- A row already there is kept (ON CONFLICT DO NOTHING); a restore's rows
-- replace these through the tables' *_replace(s)_default triggers.
CREATE FUNCTION evcharge.operator_defaults() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	INSERT INTO evcharge.anomaly_policy (operator_id) SELECT n.operator_id FROM new_rows n
	ON CONFLICT (operator_id) DO NOTHING;
	INSERT INTO evcharge.finance_policy (operator_id) SELECT n.operator_id FROM new_rows n
	ON CONFLICT (operator_id) DO NOTHING;
	INSERT INTO evcharge.refund_fee_bands (operator_id, method, up_to, fixed_fee, rate)
	SELECT n.operator_id, d.method, d.up_to, d.fixed_fee, d.rate
	FROM new_rows n CROSS JOIN evcharge.default_refund_fee_bands() d
	ON CONFLICT (operator_id, method) DO NOTHING;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.operator_defaults() IS
	'trigger: every new operator gets its anomaly_policy, finance_policy and refund_fee_bands rows with the defaults';
CREATE TRIGGER operator_defaults AFTER INSERT ON evcharge.operator
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.operator_defaults();
COMMENT ON TRIGGER operator_defaults ON evcharge.operator IS
	'every new operator gets its anomaly thresholds, money settings and refund fee bands with the defaults';

-- As policy_replaces_default (anomaly.sql), per operator and method: a
-- restore brings the dumped rows after the operators made theirs, and each
-- replaces the default row of its own method only, so that two methods
-- restored in one transaction (pg_restore --single-transaction, where the
-- operator and both rows share one xmin) do not replace each other.
CREATE FUNCTION evcharge.refund_fee_bands_replace_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	DELETE FROM evcharge.refund_fee_bands b USING evcharge.operator o
	WHERE b.operator_id = NEW.operator_id AND b.method = NEW.method
	  AND o.operator_id = b.operator_id AND b.xmin = o.xmin;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.refund_fee_bands_replace_default() IS
	'trigger on refund_fee_bands: a row inserted for an operator and method replaces the default row of that method made with the operator if nobody changed it since (a restore brings the dumped rows after the operators)';
CREATE TRIGGER refund_fee_bands_replace_default BEFORE INSERT ON evcharge.refund_fee_bands
	FOR EACH ROW EXECUTE FUNCTION evcharge.refund_fee_bands_replace_default();
COMMENT ON TRIGGER refund_fee_bands_replace_default ON evcharge.refund_fee_bands IS
	'an inserted row replaces the operator''s default row of its method if that is untouched: pg_restore loads the dumped bands after the operators made theirs';

-- The fee of an amount under one method's bands: the band's fixed fee plus
-- the rate of the amount, truncated to the fen; above the last band, an
-- error that gives the limit.  The one rule both refund_fee()s apply.
CREATE FUNCTION evcharge.refund_fee_in_bands(p_amount numeric, p_method text, p_up_to numeric[],
	p_fixed_fee numeric[], p_rate numeric, p_whose text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	FOR n IN 1 .. coalesce(cardinality(p_up_to), 0) LOOP
		IF p_amount <= p_up_to[n] THEN
			RETURN trunc(p_fixed_fee[n] + p_amount * p_rate, 2);
		END IF;
	END LOOP;
	RAISE EXCEPTION 'a % refund of % yuan is above the last fee band', p_method, p_amount
		USING ERRCODE = 'invalid_parameter_value',
		      DETAIL = format('%s end at %s yuan (up_to %s).', p_whose,
		                      coalesce(p_up_to[cardinality(p_up_to)]::text, 'none'), coalesce(p_up_to::text, 'NULL')),
		      HINT = format('Refund at most %s yuan at a time by %s (request_refund takes an amount), or another method.',
		                    coalesce(p_up_to[cardinality(p_up_to)]::text, '0'), p_method);
END $$;
COMMENT ON FUNCTION evcharge.refund_fee_in_bands(numeric, text, numeric[], numeric[], numeric, text) IS
	'Internal: the fee of an amount under one method''s bands (the fixed fee of the first band whose limit the amount does not exceed, plus the rate of the amount, truncated to the fen); 22023 above the last band, naming its limit';

CREATE FUNCTION evcharge.unknown_refund_method(method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'refund method "%" is not known', coalesce(method, 'NULL')
		USING ERRCODE = 'invalid_parameter_value',
		      HINT = 'Use bank (6 or 12 yuan by band + 0.6 %) or provider (0.6 %); evcharge.refund_fee_bands has each operator''s fees.';
END $$;
COMMENT ON FUNCTION evcharge.unknown_refund_method(text) IS 'raises the error for a refund method other than bank or provider';

-- Checks a refund's amount and method for refund_fee().
CREATE FUNCTION evcharge.check_refund(p_amount numeric, p_method text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_amount IS NULL OR p_amount IN ('NaN', 'Infinity', '-Infinity') OR p_amount < 0 OR p_amount > 999999999999.99 THEN
		RAISE EXCEPTION 'refund amount % is not possible', coalesce(p_amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A refund is a finite amount of 0 or more yuan, below a trillion.',
			      HINT = 'A refund is 0 or more yuan, e.g. 1000.00.';
	END IF;
	IF p_method IS NULL OR p_method NOT IN ('bank', 'provider') THEN
		PERFORM evcharge.unknown_refund_method(p_method);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_refund(numeric, text) IS
	'Internal: raises 22023 for a refund amount that is negative, NaN, infinite or beyond a trillion, or a method other than bank or provider (unknown_refund_method)';

-- The fee under the default bands, what a new operator gets.
CREATE FUNCTION evcharge.refund_fee(amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d record;
BEGIN
	PERFORM evcharge.check_refund(refund_fee.amount, refund_fee.method);
	SELECT * INTO d FROM evcharge.default_refund_fee_bands() x WHERE x.method = refund_fee.method;
	RETURN evcharge.refund_fee_in_bands(refund_fee.amount, refund_fee.method, d.up_to, d.fixed_fee, d.rate,
		format('The default %s bands', refund_fee.method));
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(numeric, text) IS
	'the fee of a refund under the default bands (default_refund_fee_bands): bank 6 yuan up to 9,999.99 and 12 yuan up to 100,000.00, plus 0.6 %; provider 0.6 %; truncated to the fen (1000 by bank: 12.00; 20000 by bank: 132.00); 22023 for an amount that is negative, NaN or infinite, an unknown method or an amount above the last band';

-- The fee under an operator's own bands: what its refunds cost.
CREATE FUNCTION evcharge.refund_fee(operator_id bigint, amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.refund_fee_bands;
BEGIN
	PERFORM evcharge.check_refund(refund_fee.amount, refund_fee.method);
	SELECT * INTO b FROM evcharge.refund_fee_bands f
	WHERE f.operator_id = refund_fee.operator_id AND f.method = refund_fee.method;
	IF NOT FOUND THEN
		IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = refund_fee.operator_id) THEN
			RAISE EXCEPTION 'operator % is not registered', coalesce(refund_fee.operator_id::text, 'NULL')
				USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
		END IF;
		RAISE EXCEPTION 'operator % has no % refund fee bands', refund_fee.operator_id, refund_fee.method
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'Its row of refund_fee_bands for this method was deleted; no refund by it can be priced.',
			      HINT = 'Insert the bands again, e.g. the defaults: SELECT * FROM evcharge.default_refund_fee_bands().';
	END IF;
	RETURN evcharge.refund_fee_in_bands(refund_fee.amount, refund_fee.method, b.up_to, b.fixed_fee, b.rate,
		format('Operator %s''s %s bands (refund_fee_bands)', refund_fee.operator_id, refund_fee.method));
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(bigint, numeric, text) IS
	'the fee of a refund under the operator''s refund_fee_bands (the band''s fixed fee plus the rate of the amount, truncated to the fen; with the defaults 20000 by bank is 132.00); 22023 for an amount that is negative, NaN or infinite, an unknown method or an amount above the last band (its limit in the detail); P0002 for an operator not registered or without bands for the method';


CREATE TABLE evcharge.refund (
	refund_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	method text NOT NULL CHECK (method IN ('bank', 'provider')),
	amount numeric(14, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	fee numeric(14, 2) NOT NULL CHECK (fee >= 0 AND fee <> 'NaN'),
	state text NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'approved', 'rejected')),
	coupons_voided int NOT NULL DEFAULT 0,
	requested_at timestamptz NOT NULL DEFAULT now(),
	requested_by text NOT NULL DEFAULT current_user,
	decided_at timestamptz,
	decided_by text,
	reason text
);
CREATE UNIQUE INDEX refund_open_idx ON evcharge.refund (account_id) WHERE state = 'requested';
COMMENT ON INDEX evcharge.refund_open_idx IS 'one open refund request per wallet';
COMMENT ON TABLE evcharge.refund IS
	'A wallet refund: the amount asked for (at most the refundable balance; all of it when none is given) is frozen (moved to refunds payable) at request, paid out less the fee on approval, returned on rejection; one open request per wallet';
COMMENT ON COLUMN evcharge.refund.refund_id IS 'refund number (the key of its ledger transactions)';
COMMENT ON COLUMN evcharge.refund.account_id IS 'the wallet';
COMMENT ON COLUMN evcharge.refund.method IS 'bank or provider';
COMMENT ON COLUMN evcharge.refund.amount IS 'frozen amount, yuan: the whole balance, or the part the member asked for';
COMMENT ON COLUMN evcharge.refund.fee IS 'refund_fee(operator, amount, method), by the operator''s bands: what the member pays for it';
COMMENT ON COLUMN evcharge.refund.state IS 'requested, approved, rejected';
COMMENT ON COLUMN evcharge.refund.coupons_voided IS 'unused coupons voided by the request (finance_policy.void_coupons_on_refund)';
COMMENT ON COLUMN evcharge.refund.requested_at IS 'when requested';
COMMENT ON COLUMN evcharge.refund.requested_by IS 'database user';
COMMENT ON COLUMN evcharge.refund.decided_at IS 'when approved or rejected';
COMMENT ON COLUMN evcharge.refund.decided_by IS 'database user';
COMMENT ON COLUMN evcharge.refund.reason IS 'why it was rejected';

-- Whether a wallet pays for a session of this member, group and partner
-- (the rule of payer_of()).
CREATE FUNCTION evcharge.pays_for(w evcharge.account, p_member_id bigint, p_group_id bigint, p_partner_id bigint)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT EXISTS (SELECT 1 FROM evcharge.payer_of(p_member_id, p_group_id, p_partner_id) p
	               WHERE p.kind = w.kind AND p.owner_id = w.owner_id);
END;
COMMENT ON FUNCTION evcharge.pays_for(evcharge.account, bigint, bigint, bigint) IS
	'whether the wallet pays for a session of this member, group and partner, by the rule of payer_of()';

CREATE FUNCTION evcharge.request_refund(account_id bigint, method text, amount numeric DEFAULT NULL)
RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r evcharge.refund;
	fee numeric;
	voided int := 0;
	orders text[];
	accounts bigint[];
	o text;
	asked numeric;
BEGIN
	w := evcharge.wallet_account(request_refund.account_id);
	fee := evcharge.refund_fee(w.operator_id, 0, request_refund.method);	-- checks the method
	-- A part of the balance: a positive amount in yuan and fen.
	IF request_refund.amount IS NOT NULL THEN
		PERFORM evcharge.check_amount(request_refund.amount, 'a refund');
	END IF;
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
	IF request_refund.amount > w.balance THEN
		RAISE EXCEPTION 'a refund of % yuan is more than account % holds', request_refund.amount, w.account_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Its refundable balance is %s yuan, after the bills it owes (debts reduce it).', w.balance),
			      HINT = format('Ask for at most %s yuan, or give no amount to refund the whole balance.', w.balance);
	END IF;
	asked := coalesce(request_refund.amount, w.balance);
	fee := evcharge.refund_fee(w.operator_id, asked, request_refund.method);
	IF fee >= asked THEN
		RAISE EXCEPTION 'a % refund of % yuan would cost more than it returns', request_refund.method, asked
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The fee would be %s yuan.', fee),
			      HINT = 'A provider refund costs 0.6 % only.';
	END IF;
	INSERT INTO evcharge.refund (account_id, method, amount, fee)
	VALUES (w.account_id, request_refund.method, asked, fee) RETURNING * INTO r;
	PERFORM evcharge.post_txn(w.operator_id, 'refund_request', r.refund_id::text,
		ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')],
		ARRAY[r.amount, -r.amount], NULL, NULL, jsonb_build_object('refund_id', r.refund_id));
	-- Coupons go with the whole balance only: a member who keeps part of
	-- it keeps charging.
	IF w.kind = 'member_wallet' AND asked = w.balance AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		DELETE FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL;
		GET DIAGNOSTICS voided = ROW_COUNT;
		UPDATE evcharge.refund f SET coupons_voided = voided WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	END IF;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.request_refund(bigint, text, numeric) IS
	'requests a refund by bank or provider of a wallet''s whole positive balance, or of the amount given (positive, in yuan and fen, at most the balance: else 22023): the amount is frozen at once (moved to refunds payable), the fee fixed by the operator''s bands (refund_fee; an amount above the last band is 22023); a refund of the whole balance voids unused coupons when the operator''s policy says so';

CREATE FUNCTION evcharge.approve_refund(refund_id bigint) RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.refund;
	op bigint;
BEGIN
	SELECT * INTO r FROM evcharge.refund f WHERE f.refund_id = approve_refund.refund_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'refund % does not exist', approve_refund.refund_id USING ERRCODE = 'no_data_found';
	END IF;
	IF r.state = 'approved' THEN
		RETURN r;
	ELSIF r.state <> 'requested' THEN
		RAISE EXCEPTION 'refund % was %', r.refund_id, r.state
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Only a requested refund can be approved.';
	END IF;
	SELECT a.operator_id INTO op FROM evcharge.account a WHERE a.account_id = r.account_id;
	PERFORM evcharge.post_txn(op, 'refund_approve', r.refund_id::text,
		ARRAY[evcharge.account_of(op, 'refunds_payable'), evcharge.account_of(op, 'provider_clearing'),
		      evcharge.account_of(op, 'fee_income')],
		ARRAY[r.amount, -(r.amount - r.fee), -r.fee], NULL, NULL,
		jsonb_build_object('refund_id', r.refund_id, 'paid', r.amount - r.fee, 'fee', r.fee));
	UPDATE evcharge.refund f SET state = 'approved', decided_at = now(), decided_by = current_user
	WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.approve_refund(bigint) IS
	'approves a requested refund: pays the frozen amount less the fee out through the provider (fee to fee income); approving again returns it unchanged';

CREATE FUNCTION evcharge.reject_refund(refund_id bigint, reason text) RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.refund;
	op bigint;
BEGIN
	IF reject_refund.reason IS NULL OR btrim(reject_refund.reason) = '' THEN
		RAISE EXCEPTION 'rejecting refund % needs a reason', reject_refund.refund_id
			USING ERRCODE = 'invalid_parameter_value', HINT = 'The member is told why.';
	END IF;
	SELECT * INTO r FROM evcharge.refund f WHERE f.refund_id = reject_refund.refund_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'refund % does not exist', reject_refund.refund_id USING ERRCODE = 'no_data_found';
	END IF;
	IF r.state = 'rejected' THEN
		RETURN r;
	ELSIF r.state <> 'requested' THEN
		RAISE EXCEPTION 'refund % was %', r.refund_id, r.state
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Only a requested refund can be rejected.';
	END IF;
	SELECT a.operator_id INTO op FROM evcharge.account a WHERE a.account_id = r.account_id;
	PERFORM evcharge.post_txn(op, 'refund_reject', r.refund_id::text,
		ARRAY[evcharge.account_of(op, 'refunds_payable'), r.account_id],
		ARRAY[r.amount, -r.amount], NULL, reject_refund.reason, jsonb_build_object('refund_id', r.refund_id));
	UPDATE evcharge.refund f SET state = 'rejected', decided_at = now(), decided_by = current_user,
		reason = reject_refund.reason
	WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.reject_refund(bigint, text) IS
	'rejects a requested refund with a reason: the frozen amount goes back to the wallet; rejecting again returns it unchanged';

-- Support refunds one disputed bill: a credit to whoever paid it, at most
-- what the bill charged less what its refunds already gave back, once per
-- request id.  Without an amount, everything left.  A part is taken from
-- the occupancy fee first, then the service fee, then the electricity fee
-- (the disputes support settles by hand are mostly about occupancy).  The
-- bill is locked first, then its accounts: the order of every money
-- function (docs/money.md, "Locks and deadlocks").
CREATE FUNCTION evcharge.refund_bill(order_no text, reason text, request_id text, amount numeric DEFAULT NULL,
	OUT bill_refund_id bigint, OUT account_id bigint, OUT refunded numeric, OUT refunded_in_all numeric,
	OUT refundable numeric, OUT revision int, OUT txn_id bigint, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := refund_bill.order_no;
	b evcharge.bill;
	prev evcharge.bill_refund;
	rf record;
	left_e numeric;
	left_s numeric;
	left_o numeric;
	asked numeric;
	part_o numeric;
	part_s numeric;
	part_e numeric;
	l record;
	p record;
	br evcharge.bill_refund;
BEGIN
	PERFORM evcharge.check_key(refund_bill.request_id, 'request id');
	IF refund_bill.reason IS NULL OR btrim(refund_bill.reason) = '' THEN
		RAISE EXCEPTION 'a refund of bill % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver will read it: ''charged after the gun was unplugged, ticket 4471''.';
	END IF;
	IF refund_bill.amount IS NOT NULL THEN
		PERFORM evcharge.check_amount(refund_bill.amount, 'a refund of a bill');
	END IF;
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = v_order FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', coalesce(v_order, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	-- The same request again: its first answer.
	SELECT * INTO prev FROM evcharge.bill_refund r WHERE r.request_id = refund_bill.request_id;
	IF FOUND THEN
		IF prev.order_no <> v_order OR (refund_bill.amount IS NOT NULL AND refund_bill.amount <> prev.amount) THEN
			RAISE EXCEPTION 'request % was already applied, to bill % for % yuan', to_json(refund_bill.request_id)::text,
				prev.order_no, prev.amount
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('This call refunds bill %s%s.', v_order,
				                      CASE WHEN refund_bill.amount IS NULL THEN '' ELSE format(' for %s yuan', refund_bill.amount) END),
				      HINT = 'A request id is applied once; give a new request its own id.';
		END IF;
		rf := evcharge.bill_refunded(v_order);
		bill_refund_id := prev.bill_refund_id;
		account_id := prev.account_id;
		refunded := prev.amount;
		refunded_in_all := rf.total;
		refundable := greatest(b.energy_fee, rf.energy_fee) - rf.energy_fee
			+ greatest(b.service_fee - b.discount, rf.service_fee) - rf.service_fee
			+ greatest(b.occupancy_fee, rf.occupancy_fee) - rf.occupancy_fee;
		SELECT r.revision INTO revision FROM evcharge.bill_revision r WHERE r.bill_refund_id = prev.bill_refund_id;
		txn_id := prev.txn_id;
		replayed := true;
		RETURN;
	END IF;
	IF b.state <> 'settled' THEN
		RAISE EXCEPTION 'bill % has not been charged: it is %', v_order, b.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE b.state WHEN 'held' THEN format('A held bill is not charged until it is repaired (anomalies %s).', b.anomalies)
			                    ELSE 'A final bill is charged by the settlement job (settle_bills).' END,
			      HINT = 'Change what it will charge with evcharge.repair_bill(); a refund gives back what was charged.';
	END IF;
	-- What is left on each line: what the bill charges less what was given back.
	rf := evcharge.bill_refunded(v_order);
	left_e := greatest(b.energy_fee, rf.energy_fee) - rf.energy_fee;
	left_s := greatest(b.service_fee - b.discount, rf.service_fee) - rf.service_fee;
	left_o := greatest(b.occupancy_fee, rf.occupancy_fee) - rf.occupancy_fee;
	IF left_e + left_s + left_o = 0 THEN
		RAISE EXCEPTION 'bill % has nothing left to refund', v_order
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('It charged %s yuan; its %s refunds gave back %s yuan.', b.total, rf.refunds, rf.total),
			      HINT = 'A bill is refunded at most what it charged; a goodwill payment beyond it is a manual_credit.';
	END IF;
	asked := coalesce(refund_bill.amount, left_e + left_s + left_o);
	IF asked > left_e + left_s + left_o THEN
		RAISE EXCEPTION 'a refund of % yuan is more than bill % has left to refund', asked, v_order
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It charged %s yuan; %s yuan were refunded already; at most %s yuan are left.',
			                      b.total, rf.total, left_e + left_s + left_o),
			      HINT = 'Give at most what is left, or no amount to refund all of it.';
	END IF;
	part_o := least(asked, left_o);
	part_s := least(asked - part_o, left_s);
	part_e := asked - part_o - part_s;
	-- The payer credited, the revenue lines debited: the bill's lines reversed.
	l := evcharge.bill_lines(v_order, -part_e, -part_s, -part_o, 0);
	PERFORM evcharge.lock_accounts(l.accounts);
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_refund', refund_bill.request_id, l.accounts, l.amounts,
		v_order, refund_bill.reason, jsonb_build_object('order_no', v_order, 'amount', asked, 'account_id', l.accounts[1]));
	IF p.replayed THEN
		-- The same request id posted meanwhile for another bill.
		RAISE EXCEPTION 'request % was already applied, to bill % for % yuan', to_json(refund_bill.request_id)::text,
			(p.txn).result->>'order_no', (p.txn).result->>'amount'
			USING ERRCODE = 'unique_violation', HINT = 'A request id is applied once; give a new request its own id.';
	END IF;
	INSERT INTO evcharge.bill_refund (order_no, request_id, account_id, amount, energy_fee, service_fee, occupancy_fee,
		reason, txn_id)
	VALUES (v_order, refund_bill.request_id, l.accounts[1], asked, part_e, part_s, part_o, refund_bill.reason,
		(p.txn).txn_id)
	RETURNING * INTO br;
	-- The bill's audit trail records it as a revision that names the refund.
	UPDATE evcharge.bill bl SET revision = bl.revision + 1, updated_at = now()
	WHERE bl.order_no = v_order RETURNING bl.revision INTO revision;
	INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after, bill_refund_id)
	SELECT v_order, refund_bill.revision, 'refund', refund_bill.reason, to_jsonb(b), to_jsonb(bl), br.bill_refund_id
	FROM evcharge.bill bl WHERE bl.order_no = v_order;
	PERFORM evcharge.check_alert(l.accounts[1]);
	bill_refund_id := br.bill_refund_id;
	account_id := br.account_id;
	refunded := asked;
	refunded_in_all := rf.total + asked;
	refundable := left_e + left_s + left_o - asked;
	txn_id := (p.txn).txn_id;
	replayed := false;
END $$;
COMMENT ON FUNCTION evcharge.refund_bill(text, text, text, numeric) IS
	'refunds a settled bill to whoever paid it (bill_parties: member or department wallet, partner deposit or receivable) with the reason: the amount given, or everything left, at most what the bill charged less its earlier refunds (22023 beyond it, 55000 when nothing is left or the bill is not settled), taken from occupancy, then service, then electricity revenue; once per request id (a repeat returns the first answer with replayed = true; the same id for another bill or amount is 23505); recorded in bill_refund and as a bill revision (method refund) naming it';

-- A bill's life for support and the driver: made, every revision (repairs,
-- a late pile record, refunds), charged, refunded.  The evidence of a
-- disputed bill beside its heartbeat curve (session_evidence).
CREATE FUNCTION evcharge.bill_history(p_order_no text)
RETURNS TABLE (at timestamptz, event text, revision int, total numeric, amount numeric, refunded numeric,
	reason text, by_whom text, bill_refund_id bigint, txn_id bigint)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
BEGIN
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	RETURN QUERY
	SELECT x.at, x.event, x.revision, x.total, x.amount,
	       sum(coalesce(x.refund, 0)) OVER (ORDER BY x.at, x.seq, x.revision ROWS UNBOUNDED PRECEDING),
	       x.reason, x.by_whom, x.bill_refund_id, x.txn_id
	FROM (
		SELECT b.finalised_at AS at, 1 AS seq, 'made'::text AS event, 0 AS revision,
		       coalesce((r0.before->>'total')::numeric, b.total) AS total,
		       NULL::numeric AS amount, NULL::numeric AS refund, NULL::text AS reason, NULL::text AS by_whom,
		       NULL::bigint AS bill_refund_id, NULL::bigint AS txn_id
		FROM (SELECT 1) one
		LEFT JOIN evcharge.bill_revision r0 ON r0.order_no = b.order_no AND r0.revision = 1
		WHERE NOT EXISTS (SELECT 1 FROM evcharge.bill_revision r1
		                  WHERE r1.order_no = b.order_no AND r1.revision = 1 AND r1.before IS NULL)
		UNION ALL
		SELECT r.revised_at, 2, CASE WHEN r.method = 'refund' THEN 'refunded' ELSE 'revised: ' || r.method END,
		       r.revision, (r.after->>'total')::numeric,
		       CASE WHEN r.method = 'refund' THEN -f.amount ELSE (r.after->>'total')::numeric - coalesce((r.before->>'total')::numeric, 0) END,
		       f.amount, r.reason, r.revised_by, r.bill_refund_id, f.txn_id
		FROM evcharge.bill_revision r LEFT JOIN evcharge.bill_refund f ON f.bill_refund_id = r.bill_refund_id
		WHERE r.order_no = b.order_no
		UNION ALL
		SELECT t.created_at, 3, CASE t.kind WHEN 'bill' THEN 'charged' ELSE 'charged: adjustment' END,
		       NULL::int, CASE t.kind WHEN 'bill' THEN (t.result->>'total')::numeric ELSE (t.result->>'new_total')::numeric END,
		       (SELECT coalesce(-sum(le.amount), 0) FROM evcharge.ledger_entry le
		        JOIN evcharge.account a ON a.account_id = le.account_id
		        WHERE le.txn_id = t.txn_id AND a.kind LIKE 'revenue\_%'),
		       NULL::numeric, t.note, t.created_by, NULL::bigint, t.txn_id
		FROM evcharge.ledger_txn t
		WHERE t.order_no = b.order_no AND t.kind IN ('bill', 'bill_adjustment')
	) x
	ORDER BY x.at, x.seq, x.revision;
END $$;
COMMENT ON FUNCTION evcharge.bill_history(text) IS
	'the life of a bill, oldest first: made (revision 0), each revision (repairs, a late pile record, refunds: event refunded, naming the bill_refund), each time money moved for it (charged, adjustments), with the total after, the amount that moved, the refunds so far, the reason and who; the refunds of a bill in its evidence; P0002 for an order without a bill';

-- A card's day is found among the sessions created that day, so that a
-- start by a card with a limit costs the day's sessions, not the history.
CREATE INDEX charge_session_created_idx ON evcharge.charge_session (created_at);
COMMENT ON INDEX evcharge.charge_session_created_idx IS
	'sessions by creation: the day''s charges of a card (card_day_spending)';

-- A card's spending in a day of the operator's books: a maintenance card
-- shared by several cars has a daily limit (member.card_daily_limit).  What
-- it spent is what the charges it started that day came to: the bill's
-- total, or the amount so far of a charge still running.  A charge counts
-- for the card when it was started with it: the card on the session (a
-- start at the pile), an OCPP transaction begun with it as idTag, or a
-- start through the platform by card (channel card) of its member.
-- p_except_order leaves one charge out: a resent StartTransaction is not
-- held against the charge it starts.
CREATE FUNCTION evcharge.card_day_spending(p_operator_id bigint, p_card_no text, p_at timestamptz DEFAULT now(),
	p_except_order text DEFAULT NULL,
	OUT member_id bigint, OUT daily_limit numeric, OUT spent numeric, OUT remaining numeric, OUT day date)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	card text := regexp_replace(p_card_no, '\s', '', 'g');
	r tstzrange;
BEGIN
	day := (p_at AT TIME ZONE evcharge.books_tz(p_operator_id))::date;
	r := evcharge.books_day(p_operator_id, day);
	SELECT m.member_id, m.card_daily_limit INTO member_id, daily_limit
	FROM evcharge.member m WHERE m.operator_id = p_operator_id AND m.card_no = card;
	SELECT coalesce(sum(coalesce(b.total, cs.running_total, 0)), 0) INTO spent
	FROM evcharge.charge_session cs
	JOIN evcharge.station st ON st.station_id = cs.station_id AND st.operator_id = p_operator_id
	LEFT JOIN evcharge.bill b ON b.order_no = cs.order_no
	WHERE cs.created_at >= lower(r) AND cs.created_at < upper(r) AND cs.state <> 'cancelled'
	  AND cs.order_no IS DISTINCT FROM p_except_order
	  AND (cs.card_no = card
	       OR (cs.channel = 'card' AND cs.member_id = card_day_spending.member_id)
	       OR EXISTS (SELECT 1 FROM evcharge.ocpp_transaction t
	                  WHERE t.order_no = cs.order_no AND regexp_replace(t.id_tag, '\s', '', 'g') = card));
	remaining := CASE WHEN daily_limit IS NOT NULL THEN greatest(daily_limit - spent, 0) END;
END $$;
COMMENT ON FUNCTION evcharge.card_day_spending(bigint, text, timestamptz, text) IS
	'what a card of the operator spent in the day of its books that contains the instant (default now, finance_policy.tz): the charges started with it that day (the card on the session, an OCPP idTag, or a start by card of its member), at the bill''s total or the amount so far, but for the order given (p_except_order); with its member, its daily limit (member.card_daily_limit, NULL: none) and what is left of it';

-- The refusal of a start by a card whose day's spending reached its limit.
CREATE FUNCTION evcharge.check_card_limit(p_operator_id bigint, p_card_no text) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c record;
BEGIN
	c := evcharge.card_day_spending(p_operator_id, p_card_no);
	IF c.daily_limit IS NOT NULL AND c.spent >= c.daily_limit THEN
		RAISE EXCEPTION 'card % has reached its daily spending limit', regexp_replace(p_card_no, '\s', '', 'g')
			USING ERRCODE = 'EV002',
			      DETAIL = format('Its charges of %s (%s) came to %s yuan of a limit of %s.', to_char(c.day, 'YYYY-MM-DD'),
			                      evcharge.books_tz(p_operator_id), c.spent, c.daily_limit),
			      HINT = 'The card can charge again tomorrow, or the operator raises member.card_daily_limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_card_limit(bigint, text) IS
	'raises EV002 when the card''s charges of the day (card_day_spending) have reached its daily limit, with what it spent and the limit; nothing for a card without a limit or not registered';

-- The balance guard: stop a charge before the wallet would fall below the
-- threshold at the next heartbeat.
CREATE TABLE evcharge.stop_request (
	order_no text PRIMARY KEY REFERENCES evcharge.charge_session,
	gun evcharge.gun_id NOT NULL,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	balance numeric(14, 2) NOT NULL,
	running_total numeric(14, 2) NOT NULL,
	projected numeric(14, 2) NOT NULL,
	threshold numeric(10, 2) NOT NULL,
	requested_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.stop_request IS
	'Charges the balance guard asked the pile to stop (NOTIFY evcharge_stop), one per session, with the figures it decided on';
COMMENT ON COLUMN evcharge.stop_request.order_no IS 'the session';
COMMENT ON COLUMN evcharge.stop_request.gun IS 'the gun to stop';
COMMENT ON COLUMN evcharge.stop_request.account_id IS 'the wallet that pays';
COMMENT ON COLUMN evcharge.stop_request.balance IS 'the wallet''s balance then';
COMMENT ON COLUMN evcharge.stop_request.running_total IS 'the session''s amount so far at the plan''s prices';
COMMENT ON COLUMN evcharge.stop_request.projected IS 'what the next guard_interval would add at the session''s present power and the plan''s highest price';
COMMENT ON COLUMN evcharge.stop_request.threshold IS 'the operator''s stop_threshold';
COMMENT ON COLUMN evcharge.stop_request.requested_at IS 'when';

CREATE FUNCTION evcharge.balance_guard(p_orders text[]) RETURNS int
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
		       st.operator_id, fp.stop_threshold, fp.guard_interval, pay.kind AS payer_kind,
		       pay.owner_id AS payer_owner, cs.last_ts
		FROM unnest(p_orders) o
		JOIN evcharge.charge_session cs ON cs.order_no = o
		JOIN evcharge.gun_state g ON g.gun OPERATOR(evcharge.=) cs.gun
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.finance_policy fp ON fp.operator_id = st.operator_id
		CROSS JOIN LATERAL evcharge.payer_of(cs.member_id, cs.group_id, cs.partner_id) pay
		WHERE cs.state = 'charging'
		  AND pay.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
		  AND NOT EXISTS (SELECT 1 FROM evcharge.stop_request r WHERE r.order_no = cs.order_no)
	), w AS (
		-- Only sessions paid from a wallet; the price only for them.
		SELECT s.*, a.account_id, a.balance,
		       trunc(s.power_w / 1000.0 * extract(epoch FROM s.guard_interval) / 3600 * coalesce(
		           (SELECT max(p.energy_price + p.service_fee)
		            FROM evcharge.plan_in_force(s.station_id, evcharge.registered_current_type(s.gun), s.last_ts) t,
		                 evcharge.tariff_prices(t.tariff) p), 0), 2) AS projected
		FROM s
		JOIN LATERAL (SELECT a.account_id, a.balance FROM evcharge.account a
		              WHERE a.operator_id = s.operator_id AND a.kind = s.payer_kind AND a.owner_id = s.payer_owner
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

SELECT pg_catalog.pg_extension_config_dump('evcharge.stop_request', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund_refund_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund_fee_bands', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_refund', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_refund_bill_refund_id_seq', '');
