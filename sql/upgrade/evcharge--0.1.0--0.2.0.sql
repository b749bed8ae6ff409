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

CREATE OR REPLACE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
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
		WHERE coalesce(b.ended_at, b.started_at) >= books.t0 AND coalesce(b.ended_at, b.started_at) < books.t1
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
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op AND t.created_at >= books.t0 AND t.created_at < books.t1
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		WHERE t.kind IN ('top_up', 'manual_credit') AND a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
		UNION ALL
		SELECT t.kind, evcharge.wallet_sub_operator(f.account_id), f.amount, f.fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op AND t.created_at >= books.t0 AND t.created_at < books.t1
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


-- == reference docs ==



-- == release ==
