-- demo/day_report.sql: what came of the day demo, after either replay
-- (demo/day_copy.sql by COPY, demo/replay.js through the bridge): what was
-- taken in and quarantined, the sessions, the day's bills per station,
-- anomalies, settlement, the finance team's report, outages and network
-- incidents, the sessions still without a bill, and the energy billed and
-- measured against what the meters really did.  Through the bridge (psql
-- -v mode=bridge) it shows what the charge points sent and the money of the
-- members who started charges from the app too.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET timezone = 'Asia/Shanghai';
SET search_path = "$user", public, evcharge;
SELECT op, day_start, day_end FROM demo_day.day \gset
\if :{?mode}
\else
	\set mode copy
\endif
SELECT :'mode' = 'bridge' AS bridge \gset

-- The sessions this demo made, and the ground truth beside them: by the
-- pile's own order number (pile_order_no).  By COPY the session has it; over
-- OCPP the platform numbered the session, and the truth's session is the
-- one of that gun that started at the same time.  measured_wh: the energy
-- of its heartbeats, read back from the log as its bill reads them (jumps
-- out).  (Counted live, charge_session.wh_by_class, it would miss the last
-- rise over OCPP: the reading at the end of charging comes in a message of
-- its own after the StatusNotification that ends it.)
CREATE VIEW demo_day.session AS
SELECT cs.*, b.energy_wh AS billed_wh, b.total, b.energy_source,
       (SELECT x.meter_wh[cardinality(x.meter_wh)] FROM session_samples(cs.order_no) x) AS measured_wh,
       CASE WHEN :'mode' = 'bridge'
            THEN (SELECT e.order_no FROM demo_day.expected e WHERE e.gun = cs.gun::text AND e.started_at = cs.started_at)
            ELSE cs.order_no END AS pile_order_no
FROM charge_session cs LEFT JOIN bill b USING (order_no)
WHERE cs.station_id IN (SELECT station_id FROM demo_day.station_in);

\echo
\echo '== The traffic: a day of operator' :op 'as bench/trafficgen made it, with the defects it put in'
SELECT kind, count, detail FROM demo_day.summary ORDER BY n;

\if :bridge
\echo '== The replay through the bridge: per 5-minute step, each pile''s lines and records as OCPP 1.6J messages, then sweep_offline'
SELECT what AS action, n AS messages FROM demo_day.replay_summary WHERE kind = 'message' ORDER BY n DESC;
SELECT what AS refused_at_the_handshake FROM demo_day.replay_summary WHERE kind = 'refused' ORDER BY what;
SELECT string_agg(format('%s %s', what, n), ', ' ORDER BY what) AS the_replay
FROM demo_day.replay_summary WHERE kind = 'replay';
\else
\echo '== The replay: 5-minute steps; heartbeats and pile records as they arrived, then sweep_offline'
\endif
SELECT count(*) FILTER (WHERE at IS NOT NULL) AS steps, min(at) AS first_step, max(at) AS last_step,
       sum(heartbeats) AS heartbeat_lines, sum(records) AS pile_record_lines,
       sum(records) FILTER (WHERE at IS NULL) AS records_after_the_day,
       sum(went_offline) AS guns_went_offline, sum(incidents) AS incidents_found
FROM demo_day.sweep;

\if :bridge
\echo '== What was taken in: the rows the bridge wrote (a StatusNotification, a StartTransaction, a StopTransaction and every sample is one), copies too; bad lines are quarantined'
\else
\echo '== What was taken in: the log keeps every accepted line as delivered (copies too); bad lines are quarantined'
\endif
SELECT 'heartbeat' AS source, (SELECT count(*) FROM demo_day.heartbeat_in) AS lines,
       count(*) AS accepted, count(*) - count(DISTINCT (gun, ts)) AS accepted_copies,
       (SELECT count(*) FROM quarantine q WHERE q.source = 'heartbeat' AND operator_code(q.gun) = :op) AS quarantined
FROM heartbeat WHERE operator_code(gun) = :op
UNION ALL
SELECT 'pile_record', (SELECT count(*) FROM demo_day.record_in), count(*), count(*) - count(DISTINCT order_no),
       (SELECT count(*) FROM quarantine q WHERE q.source = 'pile_record' AND operator_code(q.gun) = :op)
FROM pile_record WHERE operator_code(gun) = :op;
SELECT source, reason, count(*) AS rows, min(ts) AS first, max(ts) AS last
FROM quarantine WHERE operator_code(gun) = :op GROUP BY source, reason ORDER BY source, rows DESC, reason;
\echo '== Heartbeats out of order: behind a newer one of their gun in the file, and those that came in a later batch'
WITH o AS (
	SELECT h.*, max(ts) OVER w AS newest_before, max(step) OVER w AS step_of_newest
	FROM demo_day.heartbeat_in h
	WINDOW w AS (PARTITION BY gun ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
SELECT count(*) FILTER (WHERE ts < newest_before) AS behind_a_newer_line,
       count(*) FILTER (WHERE ts < newest_before AND status = 'charging') AS of_them_charging,
       count(*) FILTER (WHERE ts = newest_before) AS copies_of_the_newest,
       count(*) FILTER (WHERE ts < newest_before AND step > step_of_newest) AS in_a_later_batch
FROM o;

\echo '== Sessions by state (started at the pile: channel offline by COPY, card over OCPP; app: members'' starts from the app)'
SELECT state, channel, count(*) AS sessions, count(billed_wh) AS billed, count(*) - count(billed_wh) AS without_bill,
       count(bill_error) AS bill_errors, round(sum(jump_wh) / 1000.0, 3) AS jump_kwh_not_billed
FROM demo_day.session GROUP BY state, channel ORDER BY state, channel;

\echo '== The day''s bills per station: energy, electricity fee, service fee and occupancy fee kept apart'
SELECT coalesce(s.station_id::text, 'all') AS station, coalesce(s.name, '') AS name,
       count(*) AS bills, round(sum(b.energy_wh) / 1000.0, 3) AS kwh,
       round(sum(b.wh_by_class[2]) / 1000.0, 3) AS peak_kwh, round(sum(b.wh_by_class[3]) / 1000.0, 3) AS flat_kwh,
       round(sum(b.wh_by_class[4]) / 1000.0, 3) AS valley_kwh,
       sum(b.energy_fee) AS energy_fee, sum(b.service_fee) AS service_fee,
       sum(b.occupancy_fee) AS occupancy_fee, sum(b.total) AS total
FROM bill b JOIN station s USING (station_id)
WHERE s.operator_id = :op
GROUP BY ROLLUP ((s.station_id, s.name)) ORDER BY s.station_id NULLS LAST;
SELECT current_type(b.gun) AS current, count(*) AS bills, round(sum(b.energy_wh) / 1000.0, 3) AS kwh,
       round(avg(b.energy_wh) / 1000.0, 3) AS avg_kwh,
       round(avg(extract(epoch FROM b.ended_at - b.started_at) / 60)) AS avg_minutes,
       count(*) FILTER (WHERE b.occupancy_fee > 0) AS paid_occupancy, sum(b.total) AS total
FROM bill b JOIN station s USING (station_id) WHERE s.operator_id = :op GROUP BY 1 ORDER BY 1;

\echo '== Bill anomalies: codes found, and bills held (not charged until repaired)'
SELECT sessions_closed AS silent_sessions_closed, bills_lost AS bills_made_from_heartbeats
FROM demo_day.lost;
SELECT c.code, c.name, c.blocks_charge AS blocks, count(b.order_no) AS bills,
       count(b.order_no) FILTER (WHERE b.state = 'held') AS held
FROM bill b JOIN station s USING (station_id)
CROSS JOIN LATERAL unnest(anomaly_codes(b.anomalies)) AS x(code)
JOIN anomaly_code c USING (code)
WHERE s.operator_id = :op GROUP BY c.code, c.name, c.blocks_charge ORDER BY c.code;
SELECT b.order_no, b.gun, b.state, b.anomalies, anomaly_names(b.anomalies) AS names, round(b.energy_wh / 1000.0, 3) AS kwh, b.total
FROM bill b JOIN station s USING (station_id)
WHERE s.operator_id = :op AND (b.state = 'held' OR b.revision > 0) ORDER BY b.ended_at;
\echo '== Bills made from heartbeats that a late pile record completed (their revisions)'
SELECT r.order_no, r.revision, r.method, r.before->>'anomalies' AS codes_before,
       round((r.before->>'energy_wh')::numeric / 1000, 3) AS kwh_before, round((r.after->>'energy_wh')::numeric / 1000, 3) AS kwh_after,
       r.after->>'state' AS state_after
FROM bill_revision r JOIN bill b USING (order_no) JOIN station s USING (station_id)
WHERE s.operator_id = :op ORDER BY r.order_no, r.revision;

\echo '== Settlement: every final bill settled into the ledger (members'' app starts from their wallets; cards started at the pile have no wallet: unassigned)'
SELECT settled AS bills_settled FROM settle_bills();
SELECT x.kind, count(*) AS accounts, sum(x.transactions) AS transactions, sum(x.balance) AS balance
FROM (SELECT a.kind, a.balance,
             (SELECT count(DISTINCT e.txn_id) FROM ledger_entry e WHERE e.account_id = a.account_id) AS transactions
      FROM account a WHERE a.operator_id = :op) x
GROUP BY x.kind ORDER BY x.kind;
\if :bridge
\echo '== Members'' wallets: topped up by the payment provider, the app starts they paid, what is left'
SELECT w.member_id AS member, w.topped_up, w.app_starts, w.paid_for_charges, w.balance
FROM (SELECT m.member_id,
             (SELECT coalesce(sum(-e.amount), 0) FROM ledger_entry e JOIN ledger_txn t USING (txn_id)
              WHERE e.account_id = a.account_id AND t.kind = 'top_up') AS topped_up,
             (SELECT count(*) FROM demo_day.app_start x WHERE x.member_id = m.member_id AND x.order_no IS NOT NULL) AS app_starts,
             (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e JOIN ledger_txn t USING (txn_id)
              WHERE e.account_id = a.account_id AND t.kind = 'bill') AS paid_for_charges,
             a.balance
      FROM member m JOIN account a ON a.kind = 'member_wallet' AND a.owner_id = m.member_id AND a.operator_id = m.operator_id
      WHERE m.operator_id = :op) w
ORDER BY w.member_id;
\echo '== A member asks for the rest of the wallet back: the balance is frozen at the request, the operator approves, the provider pays it less 0.6 %'
SELECT r.refund_id, w.owner_id AS member, r.method, r.amount, r.fee, r.amount - r.fee AS paid_out, a.state
FROM (SELECT * FROM request_refund(member_wallet(2004), 'provider')) r
JOIN account w ON w.account_id = r.account_id
CROSS JOIN LATERAL approve_refund(r.refund_id) a;
\endif
\echo '== Two totals, and why they differ: every bill of the day, and the money settled (held bills wait for their repair)'
SELECT x.what, x.bills, x.kwh, x.total
FROM (SELECT 1 AS n, 'bills of the day (all of them, held ones too)' AS what, count(*) AS bills,
             round(sum(b.energy_wh) / 1000.0, 3) AS kwh, sum(b.total) AS total
      FROM bill b JOIN station s USING (station_id) WHERE s.operator_id = :op
      UNION ALL
      SELECT 2, 'of them held, not charged until repaired', count(*), coalesce(round(sum(b.energy_wh) / 1000.0, 3), 0), coalesce(sum(b.total), 0)
      FROM bill b JOIN station s USING (station_id) WHERE s.operator_id = :op AND b.state = 'held'
      UNION ALL
      SELECT 3, 'settled money: charged to a payer in the ledger', count(*), round(sum(b.energy_wh) / 1000.0, 3), sum(b.total)
      FROM bill b JOIN station s USING (station_id) WHERE s.operator_id = :op AND b.state = 'settled'
      UNION ALL
      SELECT 4, 'revenue in the ledger (electricity + service + occupancy)', NULL, NULL,
             (SELECT sum(balance) FROM account WHERE operator_id = :op AND kind LIKE 'revenue_%')) x
ORDER BY x.n;
SELECT count(*) AS ledger_discrepancies FROM verify_ledger();

\echo '== The finance team''s day: daily_report(), per station and sub-operator (money of settled bills; held ones beside)'
SELECT line, station, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee, service_fee,
       occupancy_fee, discount, total
FROM daily_report(:op, :'day_start'::date);
\if :bridge
\echo '== And the finance team''s report of today, when the demo moved the wallets'' money: the top-ups and the refund'
SELECT line, sub_operator, top_ups, credits, refunds, refund_fees
FROM daily_report(:op, (now() AT TIME ZONE 'Asia/Shanghai')::date) WHERE line IN ('wallets', 'total');
\endif

\echo '== Network incidents: many piles of a station silent together, reported once'
SELECT i.station_id AS station, s.name, i.started_at, i.detected_at, i.ended_at, i.piles, i.guns,
       round(extract(epoch FROM i.ended_at - i.started_at) / 60) AS minutes
FROM network_incident i JOIN station s USING (station_id)
WHERE s.operator_id = :op ORDER BY i.started_at;
\echo '== Offline periods outside an incident (and how many are part of one)'
SELECT o.gun, o.station_id AS station, o.started_at, o.detected_at, o.ended_at,
       round(extract(epoch FROM o.ended_at - o.started_at) / 60) AS minutes
FROM offline_period o WHERE operator_code(o.gun) = :op AND o.network_incident_id IS NULL
ORDER BY o.started_at, o.gun;
SELECT count(*) FILTER (WHERE network_incident_id IS NOT NULL) AS periods_in_incidents,
       count(*) FILTER (WHERE network_incident_id IS NULL) AS periods_alone,
       count(*) FILTER (WHERE ended_at IS NULL) AS still_open
FROM offline_period WHERE operator_code(gun) = :op;

\echo '== Sessions still without a bill, and what the generator did with their pile record'
SELECT s.order_no, s.gun, s.state, s.started_at, s.charging_ended_at, round(s.measured_wh / 1000.0, 3) AS measured_kwh,
       coalesce(e.record, 'not in the ground truth') AS pile_record, s.bill_error
FROM demo_day.session s LEFT JOIN demo_day.expected e ON e.order_no = s.pile_order_no
WHERE s.billed_wh IS NULL ORDER BY s.started_at;

\echo '== Energy against the ground truth: billed (the pile''s record, authoritative) and measured from heartbeats'
SELECT count(*) AS sessions_in_truth,
       count(s.order_no) AS found,
       count(s.billed_wh) AS billed,
       count(*) FILTER (WHERE s.billed_wh = e.energy_wh) AS billed_as_metered,
       count(*) FILTER (WHERE s.measured_wh = e.energy_wh) AS measured_as_metered,
       count(*) FILTER (WHERE s.started_at = e.started_at AND s.charging_ended_at = e.ended_at
                          AND s.occupied_until = e.unplugged_at) AS times_as_the_pile_saw_them,
       (SELECT count(*) FROM demo_day.session x WHERE NOT EXISTS (
           SELECT 1 FROM demo_day.expected y WHERE y.order_no = x.pile_order_no)) AS sessions_not_in_truth
FROM demo_day.expected e LEFT JOIN demo_day.session s ON s.pile_order_no = e.order_no;

\if :bridge
\echo '== The jump guard: a pile back online reads 0 first; over OCPP its StartTransaction carries its real register, which outranks the 0 at that instant: no jump'
\else
\echo '== The jump guard: a pile back online reads 0 first; the rise to its real register is not billed'
\endif
SELECT s.order_no, h.ts, h.status, round(h.meter_wh / 1000.0, 3) AS meter_kwh, h.power_w, h.soc
FROM demo_day.session s
CROSS JOIN LATERAL (SELECT * FROM heartbeat h WHERE h.gun = s.gun AND h.ts >= s.started_at - interval '20 min'
                    AND h.ts < s.started_at + interval '1 min' ORDER BY h.ts DESC LIMIT 6) h
WHERE s.jump_wh > 0 OR s.pile_order_no IN (SELECT e.order_no FROM demo_day.expected e WHERE e.notes LIKE '%zero-after-reconnect%')
ORDER BY s.order_no, h.ts;

\echo '== Sessions worth a look: the defects the generator put in, and every difference from the truth'
SELECT e.order_no, round(e.energy_wh / 1000.0, 3) AS metered_kwh, round(s.billed_wh / 1000.0, 3) AS billed_kwh,
       round(s.measured_wh / 1000.0, 3) AS measured_kwh, round(s.jump_wh / 1000.0, 3) AS jump_kwh,
       e.record, nullif(e.notes, '') AS notes,
       CASE
           WHEN s.order_no IS NULL THEN 'no session'
           WHEN s.billed_wh IS NULL THEN 'no bill'
           WHEN s.billed_wh <> e.energy_wh THEN 'billed energy differs'
           WHEN s.measured_wh IS DISTINCT FROM e.energy_wh AND s.jump_wh > 0
               THEN format('jump of %s kWh not billed; measured from the first real reading', round(s.jump_wh / 1000.0, 3))
           WHEN s.measured_wh IS DISTINCT FROM e.energy_wh THEN 'measured energy differs'
           WHEN s.started_at <> e.started_at OR s.charging_ended_at <> e.ended_at
                OR s.occupied_until IS DISTINCT FROM e.unplugged_at THEN 'times differ'
           ELSE 'as metered'
       END AS verdict
FROM demo_day.expected e LEFT JOIN demo_day.session s ON s.pile_order_no = e.order_no
WHERE e.record <> 'once' OR e.notes <> '' OR s.order_no IS NULL OR s.billed_wh IS DISTINCT FROM e.energy_wh
   OR s.measured_wh IS DISTINCT FROM e.energy_wh OR s.started_at <> e.started_at
   OR s.charging_ended_at IS DISTINCT FROM e.ended_at OR s.occupied_until IS DISTINCT FROM e.unplugged_at
ORDER BY e.started_at;
\echo '== Sessions the ground truth does not know (a late or repeated heartbeat must not make one)'
SELECT s.order_no, s.gun, s.state, s.started_at, s.charging_ended_at, round(s.measured_wh / 1000.0, 3) AS measured_kwh,
       round(s.billed_wh / 1000.0, 3) AS billed_kwh
FROM demo_day.session s
WHERE NOT EXISTS (SELECT 1 FROM demo_day.expected e WHERE e.order_no = s.pile_order_no)
ORDER BY s.started_at;
