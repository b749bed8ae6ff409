-- daily_report.sql: an operator's day in money, per station and
-- sub-operator, as its finance team reads it: sessions, energy, electricity
-- fee, service fee, occupancy fee, discounts and total kept apart (an old
-- report showed the total as the electricity fee), with the day's top-ups,
-- manual credits and refunds, and the refunds of bills support made that
-- day (refund_bill), on the line of the bill's station.  The money of the
-- bills is what was charged:
-- settled bills, at their latest revision; held and not yet settled bills
-- are counted beside it, not added.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- The sub-operator a wallet's money belongs to: a department's by its
-- group, a member's by VIN, card or department; a partner's deposit, none.
CREATE FUNCTION evcharge.wallet_sub_operator(p_account_id bigint) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT CASE a.kind
		WHEN 'department_wallet' THEN evcharge.attributed_sub_operator(a.operator_id, NULL, a.owner_id, NULL, NULL)
		WHEN 'member_wallet' THEN (SELECT evcharge.attributed_sub_operator(a.operator_id, NULL, m.group_id, m.vin, m.card_no)
		                           FROM evcharge.member m WHERE m.member_id = a.owner_id)
		END
	FROM evcharge.account a WHERE a.account_id = p_account_id;
END;
COMMENT ON FUNCTION evcharge.wallet_sub_operator(bigint) IS
	'the sub-operator a wallet belongs to: a department wallet by its group, a member''s by VIN, card or department (the attribution rules); NULL for the operator itself and partners'' deposits';

CREATE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric, bill_refunds numeric)
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
		       0::numeric AS top_ups, 0::numeric AS credits, 0::numeric AS refunds, 0::numeric AS refund_fees,
		       0::numeric AS bill_refunds
		FROM bills b
		GROUP BY b.station_id, b.sub
	), bill_refund_lines AS (
		-- The day's refunds of bills, whatever day the bill was: on the line
		-- of its station and of the sub-operator whose revenue they took back.
		SELECT 'station'::text AS line, b.station_id, r.sub_operator_id,
		       0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
		       0::numeric, 0::numeric, 0::numeric, 0::numeric, sum(f.amount)
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op AND t.kind = 'bill_refund'
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.bill_refund f ON f.txn_id = t.txn_id
		JOIN evcharge.bill b ON b.order_no = f.order_no
		LEFT JOIN LATERAL (
			SELECT a.sub_operator_id FROM evcharge.ledger_entry e
			JOIN evcharge.account a ON a.account_id = e.account_id
			WHERE e.txn_id = t.txn_id AND a.kind LIKE 'revenue\_%'
			LIMIT 1) r ON true
		GROUP BY b.station_id, r.sub_operator_id
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
		       coalesce(sum(w.fee) FILTER (WHERE w.kind = 'refund_approve'), 0),
		       0::numeric
		FROM wallet_moves w
		GROUP BY w.sub
	), lines AS (
		-- A station's bills and its refunds of bills on one line.
		SELECT u.line, u.station_id, u.sub_operator_id, sum(u.sessions)::bigint AS sessions,
		       sum(u.held)::bigint AS held, sum(u.unsettled)::bigint AS unsettled, sum(u.energy_kwh) AS energy_kwh,
		       sum(u.energy_fee) AS energy_fee, sum(u.service_fee) AS service_fee,
		       sum(u.occupancy_fee) AS occupancy_fee, sum(u.discount) AS discount, sum(u.total) AS total,
		       sum(u.top_ups) AS top_ups, sum(u.credits) AS credits, sum(u.refunds) AS refunds,
		       sum(u.refund_fees) AS refund_fees, sum(u.bill_refunds) AS bill_refunds
		FROM (SELECT * FROM station_lines UNION ALL SELECT * FROM bill_refund_lines UNION ALL SELECT * FROM wallet_lines) u
		GROUP BY u.line, u.station_id, u.sub_operator_id
	), seen AS (
		SELECT * FROM lines l
		WHERE daily_report.only_sub_operator IS NULL OR l.sub_operator_id = daily_report.only_sub_operator
	)
	SELECT x.* FROM (
	SELECT s.line, s.station_id, st.name, s.sub_operator_id, so.name, s.sessions, s.held, s.unsettled,
	       s.energy_kwh, s.energy_fee, s.service_fee, s.occupancy_fee, s.discount, s.total,
	       s.top_ups, s.credits, s.refunds, s.refund_fees, s.bill_refunds
	FROM seen s
	LEFT JOIN evcharge.station st ON st.station_id = s.station_id
	LEFT JOIN evcharge.sub_operator so ON so.sub_operator_id = s.sub_operator_id
	UNION ALL
	SELECT 'total', NULL, NULL, daily_report.only_sub_operator, NULL,
	       coalesce(sum(s.sessions), 0)::bigint, coalesce(sum(s.held), 0)::bigint, coalesce(sum(s.unsettled), 0)::bigint,
	       coalesce(sum(s.energy_kwh), 0), coalesce(sum(s.energy_fee), 0), coalesce(sum(s.service_fee), 0),
	       coalesce(sum(s.occupancy_fee), 0), coalesce(sum(s.discount), 0), coalesce(sum(s.total), 0),
	       coalesce(sum(s.top_ups), 0), coalesce(sum(s.credits), 0), coalesce(sum(s.refunds), 0),
	       coalesce(sum(s.refund_fees), 0), coalesce(sum(s.bill_refunds), 0)
	FROM seen s
	) x (line, station_id, station, sub_operator_id, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee,
	     service_fee, occupancy_fee, discount, total, top_ups, credits, refunds, refund_fees, bill_refunds)
	ORDER BY array_position(ARRAY['station', 'wallets', 'total'], x.line), x.station_id, x.sub_operator_id NULLS FIRST;
END;
COMMENT ON FUNCTION evcharge.daily_report(bigint, date, bigint) IS
	'an operator''s day (books_day: in finance_policy.tz; an unknown operator or no day is an error): a line per station and sub-operator with sessions ended that day, held and unsettled bills, and the charged energy, electricity, service and occupancy fees, discounts and total; a line per sub-operator with the top-ups, manual credits and refunds (whole or partial) of its wallets; bill_refunds: the refunds of bills made that day (refund_bill), on the line of the bill''s station and sub-operator; a total line; only_sub_operator shows what one sub-operator may see';

-- The report of yesterday: the day before today in the operator's books
-- time zone (finance_policy.tz), what finance reads each morning.  The day
-- is named only here; a NULL day given to the three-argument form is still
-- an error, so a caller that lost its day does not get yesterday's report.
-- PL/pgSQL, not SQL: it depends on the three-argument form's columns only
-- when it runs, so that form can be redefined on its own.
CREATE FUNCTION evcharge.daily_report(operator_id bigint)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric, bill_refunds numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
	RETURN QUERY SELECT * FROM evcharge.daily_report(daily_report.operator_id,
		(now() AT TIME ZONE evcharge.books_tz(daily_report.operator_id))::date - 1);
END $$;
COMMENT ON FUNCTION evcharge.daily_report(bigint) IS
	'yesterday''s daily_report: the day before today in the operator''s books time zone (finance_policy.tz); P0002 for an unknown operator';
