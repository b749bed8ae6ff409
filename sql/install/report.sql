-- report.sql: the anomaly statistics operators compiled by hand: per
-- start channel, per partner and per firmware version, over a period of
-- days or a month, every anomaly code a bill carried at any time beside the
-- sessions, successful bills and bills still to come of the same group
-- (anomaly_report, anomaly_report_month).  It reads bills (bill.sql), their
-- revisions and the sessions not billed yet (session.sql); it writes
-- nothing.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- The report over the operator's stations for the sessions whose charging
-- ended between from_day and to_day, both included, on the station's wall
-- clock.  A bill counts under every code it carried at any time: the codes
-- it has now and those of every revision (a lost bill completed by its
-- record later, a bill a repair cleared).  Rows: the group's own figures
-- (code NULL), then one per code seen in the group; groups are the total,
-- each start channel, each partner and each firmware version.
CREATE FUNCTION evcharge.anomaly_report(operator_id bigint, from_day date, to_day date)
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
COMMENT ON FUNCTION evcharge.anomaly_report(bigint, date, date) IS
	'anomaly statistics of an operator''s sessions whose charging ended from from_day to to_day (both included, station''s local time), in total and per start channel, partner and firmware version: per group its sessions, successful bills (never any anomaly), pending sessions (ended, not billed yet) and bills with any anomaly (code NULL), then per code the bills that carried it at any time (current codes and every revision''s) and those that still carry it; share is bills / sessions';

-- The same for one calendar month, named by any of its days.
CREATE FUNCTION evcharge.anomaly_report_month(operator_id bigint, month date)
RETURNS TABLE (dimension text, value text, code int, code_name text, bills bigint, bills_now bigint,
	sessions bigint, successful bigint, pending bigint, share numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 100 SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	first_day date;
BEGIN
	IF anomaly_report_month.month IS NULL THEN
		RAISE EXCEPTION 'month of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'The month is named by any of its days.',
			      HINT = 'E.g. anomaly_report_month(12, ''2026-11-01'') for November 2026.';
	END IF;
	IF NOT isfinite(anomaly_report_month.month) THEN
		RAISE EXCEPTION 'month "%" is not a month', anomaly_report_month.month
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'infinity and -infinity lie in no month.',
			      HINT = 'Name the month by any of its days: anomaly_report_month(12, ''2026-11-01''); for all time use anomaly_report(12, ''-infinity'', ''infinity'').';
	END IF;
	first_day := date_trunc('month', anomaly_report_month.month)::date;
	RETURN QUERY
	SELECT * FROM evcharge.anomaly_report(anomaly_report_month.operator_id, first_day,
		(first_day + interval '1 month' - interval '1 day')::date);
END $$;
COMMENT ON FUNCTION evcharge.anomaly_report_month(bigint, date) IS
	'anomaly_report() for the calendar month that contains the given day, from its first day to its last';
