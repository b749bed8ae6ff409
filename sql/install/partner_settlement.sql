-- partner_settlement.sql: what an interconnection partner and the operator
-- owe each other.  partner_payment() books money a partner sends by bank (an
-- affiliated partner paying what it owes, a prepaid one adding to its
-- deposit); partner_statement() books the monthly statement.  Every ledger
-- movement on a partner's accounts appears on exactly one statement: the
-- bills of sessions that ended before the month's end, the adjustments of
-- those bills, the refunds of bills made before it, and the payments
-- received before it, that no earlier statement carried.  A bill settled late (a pile record that came days
-- after) thus lands on the next statement, marked as from an earlier month,
-- and nothing is counted twice or lost.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- What a partner owes the operator now: its receivable less its deposit.
CREATE FUNCTION evcharge.partner_owes(p_partner_id bigint) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(sum(CASE a.kind WHEN 'partner_receivable' THEN a.balance ELSE -a.balance END), 0)
	FROM evcharge.partner p
	JOIN evcharge.account a ON a.operator_id = p.operator_id AND a.owner_id = p.partner_id
	                       AND a.kind IN ('partner_receivable', 'partner_prepaid')
	WHERE p.partner_id = p_partner_id;
END;
COMMENT ON FUNCTION evcharge.partner_owes(bigint) IS
	'what the partner owes the operator now, in yuan: its receivable (affiliated) less its deposit (prepaid); negative: the operator owes the partner';

CREATE FUNCTION evcharge.partner_row(p_partner_id bigint) RETURNS evcharge.partner
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
BEGIN
	SELECT * INTO pa FROM evcharge.partner p WHERE p.partner_id = p_partner_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'partner % is not registered', coalesce(p_partner_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Partners are in evcharge.partner.';
	END IF;
	RETURN pa;
END $$;
COMMENT ON FUNCTION evcharge.partner_row(bigint) IS 'the partner''s row, or error P0002 naming the unknown partner';

-- Money a partner sent to the operator's bank account.
CREATE FUNCTION evcharge.partner_payment(partner_id bigint, amount numeric, reference text,
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

CREATE TABLE evcharge.partner_month_statement (
	statement_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	partner_id bigint NOT NULL REFERENCES evcharge.partner,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	month date NOT NULL CHECK (extract(day FROM month) = 1),
	partner_kind text NOT NULL,
	period_end timestamptz NOT NULL,
	opening numeric(14, 2) NOT NULL,
	sessions int NOT NULL,
	energy_wh bigint NOT NULL,
	energy_fee numeric(14, 2) NOT NULL,
	service_fee numeric(14, 2) NOT NULL,
	occupancy_fee numeric(14, 2) NOT NULL,
	charges numeric(14, 2) NOT NULL,
	adjustments numeric(14, 2) NOT NULL,
	earlier_months numeric(14, 2) NOT NULL,
	payments numeric(14, 2) NOT NULL,
	closing numeric(14, 2) NOT NULL,
	partner_owes numeric(14, 2) NOT NULL CHECK (partner_owes >= 0),
	we_owe numeric(14, 2) NOT NULL CHECK (we_owe >= 0),
	pending_bills int NOT NULL,
	booked_at timestamptz NOT NULL DEFAULT now(),
	booked_by text NOT NULL DEFAULT current_user,
	refunds numeric(14, 2) NOT NULL DEFAULT 0,
	UNIQUE (partner_id, month),
	CHECK (closing = opening + charges - payments),
	CHECK (charges = energy_fee + service_fee + occupancy_fee),
	CHECK (partner_owes - we_owe = closing)
);
COMMENT ON TABLE evcharge.partner_month_statement IS
	'A partner''s monthly statement as booked by partner_statement(): what its users'' charges came to, what it paid, and what each side owes; one per partner and month, never changed';
COMMENT ON COLUMN evcharge.partner_month_statement.statement_id IS 'statement number';
COMMENT ON COLUMN evcharge.partner_month_statement.partner_id IS 'the partner';
COMMENT ON COLUMN evcharge.partner_month_statement.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.partner_month_statement.month IS 'the month (its first day)';
COMMENT ON COLUMN evcharge.partner_month_statement.partner_kind IS 'prepaid or affiliated, when booked';
COMMENT ON COLUMN evcharge.partner_month_statement.period_end IS 'the month''s end in the operator''s time zone (finance_policy.tz): the cut-off';
COMMENT ON COLUMN evcharge.partner_month_statement.opening IS 'what the partner owed at the previous statement''s close (negative: what we owed it); 0 on the first';
COMMENT ON COLUMN evcharge.partner_month_statement.sessions IS 'bills settled on this statement';
COMMENT ON COLUMN evcharge.partner_month_statement.energy_wh IS 'their energy, with the changes of repaired bills, Wh';
COMMENT ON COLUMN evcharge.partner_month_statement.energy_fee IS 'electricity fees, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.service_fee IS 'service fees net of coupons, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.occupancy_fee IS 'occupancy fees, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.charges IS 'what the partner''s users were charged on this statement: bills, adjustments and refunds of bills, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.adjustments IS 'the part of charges that repairs of already settled bills added (negative: gave back)';
COMMENT ON COLUMN evcharge.partner_month_statement.earlier_months IS 'the part of charges for sessions that ended before the month (settled late, after their own month''s statement)';
COMMENT ON COLUMN evcharge.partner_month_statement.payments IS 'money received from the partner (payments, deposits) less money returned to it, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.closing IS 'opening + charges - payments: what the partner owes at the cut-off (negative: what we owe it)';
COMMENT ON COLUMN evcharge.partner_month_statement.partner_owes IS 'what the partner owes the operator (closing when positive)';
COMMENT ON COLUMN evcharge.partner_month_statement.we_owe IS 'what the operator owes the partner, e.g. an unused deposit (-closing when negative)';
COMMENT ON COLUMN evcharge.partner_month_statement.pending_bills IS 'bills of the partner''s sessions ended by the cut-off not yet charged (held for repair or not yet settled): they will be on a later statement';
COMMENT ON COLUMN evcharge.partner_month_statement.booked_at IS 'when booked';
COMMENT ON COLUMN evcharge.partner_month_statement.booked_by IS 'database user';
COMMENT ON COLUMN evcharge.partner_month_statement.refunds IS 'the part of charges that refunds of the partner''s bills gave back (refund_bill), negative or 0, yuan';

CREATE TABLE evcharge.partner_month_item (
	txn_id bigint PRIMARY KEY REFERENCES evcharge.ledger_txn,
	statement_id bigint NOT NULL REFERENCES evcharge.partner_month_statement,
	kind text NOT NULL,
	order_no text,
	dated timestamptz NOT NULL,
	earlier_month boolean NOT NULL,
	energy_wh bigint NOT NULL,
	energy_fee numeric(14, 2) NOT NULL,
	service_fee numeric(14, 2) NOT NULL,
	occupancy_fee numeric(14, 2) NOT NULL,
	amount numeric(14, 2) NOT NULL
);
CREATE INDEX partner_month_item_statement_idx ON evcharge.partner_month_item (statement_id);
COMMENT ON INDEX evcharge.partner_month_item_statement_idx IS 'the lines of a partner statement';
COMMENT ON TABLE evcharge.partner_month_item IS
	'The lines of a partner statement: one ledger transaction on the partner''s accounts each, and each transaction on one statement only';
COMMENT ON COLUMN evcharge.partner_month_item.txn_id IS 'the ledger transaction';
COMMENT ON COLUMN evcharge.partner_month_item.statement_id IS 'the statement';
COMMENT ON COLUMN evcharge.partner_month_item.kind IS 'the transaction''s kind: bill, bill_adjustment, bill_refund, partner_payment, top_up, ...';
COMMENT ON COLUMN evcharge.partner_month_item.order_no IS 'the session, for bills, adjustments and refunds of bills';
COMMENT ON COLUMN evcharge.partner_month_item.dated IS 'the end of the session for bills and adjustments; the day received for payments; else (refunds of bills among them) when booked';
COMMENT ON COLUMN evcharge.partner_month_item.earlier_month IS 'dated before the statement''s month: carried from an earlier month';
COMMENT ON COLUMN evcharge.partner_month_item.energy_wh IS 'the bill''s energy (an adjustment: its change), Wh';
COMMENT ON COLUMN evcharge.partner_month_item.energy_fee IS 'electricity revenue of the transaction, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.service_fee IS 'service revenue net of coupons, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.occupancy_fee IS 'occupancy revenue, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.amount IS 'what it added to what the partner owes, yuan (negative: money received)';

-- Books (or returns, when booked already) a partner's statement of a month.
CREATE FUNCTION evcharge.partner_statement(partner_id bigint, month date)
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
		occupancy_fee = f.occupancy_fee, charges = f.charges, adjustments = f.adjustments, refunds = f.refunds,
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
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment', 'bill_refund')), 0) AS charges,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_adjustment'), 0) AS adjustments,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_refund'), 0) AS refunds,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment') AND i.earlier_month), 0)
	                 AS earlier_months,
	             coalesce(-sum(i.amount) FILTER (WHERE i.kind NOT IN ('bill', 'bill_adjustment', 'bill_refund')), 0) AS payments
	      FROM evcharge.partner_month_item i WHERE i.statement_id = st.statement_id) f
	WHERE s.statement_id = st.statement_id
	RETURNING s.* INTO st;
	RETURN st;
END $$;
COMMENT ON FUNCTION evcharge.partner_statement(bigint, date) IS
	'books the partner''s statement of the month (any day of it; the month must be over in the operator''s time zone): every ledger movement on the partner''s accounts dated before the month''s end that no earlier statement carried, its sessions, energy and fees, refunds of its bills, payments, and what each side owes; calling it again returns the booked statement';

-- The job that books them month after month, book_partner_statements(),
-- is in jobs.sql with its watermarks.

SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_month_statement', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_month_statement_statement_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_month_item', '');
