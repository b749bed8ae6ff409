-- demo/day_report.sql: what came of the day demo, after either replay
-- (demo/day_copy.sql by COPY, demo/replay.js through the bridge): what was
-- taken in and quarantined, the sessions, the day's bills per station,
-- anomalies, settlement, the finance team's report, outages and network
-- incidents, the sessions still without a bill, and the energy billed and
-- measured against what the meters really did.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET timezone = 'Asia/Shanghai';
SET search_path = "$user", public, evcharge;
SELECT op, day_start, day_end FROM demo_day.day \gset

-- The sessions this demo made, and the ground truth beside them.
CREATE VIEW demo_day.session AS
SELECT cs.*, b.energy_wh AS billed_wh, b.total, b.energy_source,
       (SELECT sum(w) FROM unnest(cs.wh_by_class) w)::bigint AS measured_wh
FROM charge_session cs LEFT JOIN bill b USING (order_no)
WHERE cs.station_id IN (SELECT station_id FROM demo_day.station_in);

\echo
\echo '== The traffic: a day of operator' :op 'as bench/trafficgen made it, with the defects it put in'
SELECT kind, count, detail FROM demo_day.summary ORDER BY n;

\echo '== The replay: 5-minute steps; heartbeats and pile records as they arrived, then sweep_offline'
SELECT count(*) FILTER (WHERE at IS NOT NULL) AS steps, min(at) AS first_step, max(at) AS last_step,
       sum(heartbeats) AS heartbeat_lines, sum(records) AS pile_record_lines,
       sum(records) FILTER (WHERE at IS NULL) AS records_after_the_day,
       sum(went_offline) AS guns_went_offline, sum(incidents) AS incidents_found
FROM demo_day.sweep;

\echo '== What was taken in: the log keeps every accepted line as delivered (copies too); bad lines are quarantined'
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

\echo '== Sessions by state (every session here was started at the pile: channel offline)'
SELECT state, channel, count(*) AS sessions, count(billed_wh) AS billed, count(*) - count(billed_wh) AS without_bill,
       count(bill_error) AS bill_errors, sum(jump_wh) AS jump_wh_not_billed
FROM demo_day.session GROUP BY state, channel ORDER BY state, channel;

\echo '== The day''s bills per station: energy, electricity fee, service fee and occupancy fee kept apart'
SELECT coalesce(s.station_id::text, 'all') AS station, coalesce(s.name, '') AS name,
       count(*) AS bills, round(sum(b.energy_wh) / 1000.0, 3) AS kwh,
       round(sum(b.wh_by_class[2]) / 1000.0, 1) AS peak_kwh, round(sum(b.wh_by_class[3]) / 1000.0, 1) AS flat_kwh,
       round(sum(b.wh_by_class[4]) / 1000.0, 1) AS valley_kwh,
       sum(b.energy_fee) AS energy_fee, sum(b.service_fee) AS service_fee,
       sum(b.occupancy_fee) AS occupancy_fee, sum(b.total) AS total
FROM bill b JOIN station s USING (station_id)
WHERE s.operator_id = :op
GROUP BY ROLLUP ((s.station_id, s.name)) ORDER BY s.station_id NULLS LAST;
SELECT current_type(b.gun) AS current, count(*) AS bills, round(sum(b.energy_wh) / 1000.0, 3) AS kwh,
       round(avg(b.energy_wh) / 1000.0, 1) AS avg_kwh,
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
SELECT b.order_no, b.gun, b.state, b.anomalies, anomaly_names(b.anomalies) AS names, b.energy_wh, b.total
FROM bill b JOIN station s USING (station_id)
WHERE s.operator_id = :op AND (b.state = 'held' OR b.revision > 0) ORDER BY b.ended_at;
\echo '== Bills made from heartbeats that a late pile record completed (their revisions)'
SELECT r.order_no, r.revision, r.method, r.before->>'anomalies' AS codes_before,
       r.before->>'energy_wh' AS wh_before, r.after->>'energy_wh' AS wh_after, r.after->>'state' AS state_after
FROM bill_revision r JOIN bill b USING (order_no) JOIN station s USING (station_id)
WHERE s.operator_id = :op ORDER BY r.order_no, r.revision;

\echo '== Settlement: every final bill settled into the ledger (cards started at the pile have no wallet: unassigned)'
SELECT settled AS bills_settled FROM settle_bills();
SELECT a.kind, count(DISTINCT e.txn_id) AS transactions, a.balance
FROM account a LEFT JOIN ledger_entry e USING (account_id)
WHERE a.operator_id = :op GROUP BY a.account_id, a.kind, a.balance ORDER BY a.kind;
SELECT (SELECT sum(total) FROM bill b JOIN station s USING (station_id) WHERE s.operator_id = :op AND b.state = 'settled')
         AS settled_bills_total,
       (SELECT sum(balance) FROM account WHERE operator_id = :op AND kind LIKE 'revenue_%') AS revenue_in_ledger,
       (SELECT count(*) FROM verify_ledger()) AS ledger_discrepancies;

\echo '== The finance team''s day: daily_report(), per station and sub-operator (money of settled bills; held ones beside)'
SELECT line, station, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee, service_fee,
       occupancy_fee, discount, total
FROM daily_report(:op, :'day_start'::date);

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
SELECT s.order_no, s.gun, s.state, s.started_at, s.charging_ended_at, s.measured_wh,
       coalesce(e.record, 'not in the ground truth') AS pile_record, s.bill_error
FROM demo_day.session s LEFT JOIN demo_day.expected e USING (order_no)
WHERE s.billed_wh IS NULL ORDER BY s.started_at;

\echo '== Energy against the ground truth: billed (the pile''s record, authoritative) and measured live from heartbeats'
SELECT count(*) AS sessions_in_truth,
       count(s.order_no) AS found,
       count(s.billed_wh) AS billed,
       count(*) FILTER (WHERE s.billed_wh = e.energy_wh) AS billed_as_metered,
       count(*) FILTER (WHERE s.measured_wh = e.energy_wh) AS measured_as_metered,
       count(*) FILTER (WHERE s.started_at = e.started_at AND s.charging_ended_at = e.ended_at
                          AND s.occupied_until = e.unplugged_at) AS times_as_the_pile_saw_them,
       (SELECT count(*) FROM demo_day.session x WHERE NOT EXISTS (
           SELECT 1 FROM demo_day.expected y WHERE y.order_no = x.order_no)) AS sessions_not_in_truth
FROM demo_day.expected e LEFT JOIN demo_day.session s USING (order_no);

\echo '== The jump guard: a pile back online reads 0 first; the rise to its real register is not billed'
SELECT s.order_no, h.ts, h.status, h.meter_wh, h.power_w, h.soc
FROM demo_day.session s
CROSS JOIN LATERAL (SELECT * FROM heartbeat h WHERE h.gun = s.gun AND h.ts >= s.started_at - interval '20 min'
                    AND h.ts < s.started_at + interval '1 min' ORDER BY h.ts DESC LIMIT 6) h
WHERE s.jump_wh > 0 ORDER BY s.order_no, h.ts;

\echo '== Sessions worth a look: the defects the generator put in, and every difference from the truth'
SELECT e.order_no, e.energy_wh AS metered_wh, s.billed_wh, s.measured_wh, s.jump_wh,
       e.record, nullif(e.notes, '') AS notes,
       CASE
           WHEN s.order_no IS NULL THEN 'no session'
           WHEN s.billed_wh IS NULL THEN 'no bill'
           WHEN s.billed_wh <> e.energy_wh THEN 'billed energy differs'
           WHEN s.measured_wh IS DISTINCT FROM e.energy_wh AND s.jump_wh > 0
               THEN format('jump of %s Wh not billed; measured from the first real reading', s.jump_wh)
           WHEN s.measured_wh IS DISTINCT FROM e.energy_wh THEN 'measured energy differs'
           WHEN s.started_at <> e.started_at OR s.charging_ended_at <> e.ended_at
                OR s.occupied_until IS DISTINCT FROM e.unplugged_at THEN 'times differ'
           ELSE 'as metered'
       END AS verdict
FROM demo_day.expected e LEFT JOIN demo_day.session s USING (order_no)
WHERE e.record <> 'once' OR e.notes <> '' OR s.order_no IS NULL OR s.billed_wh IS DISTINCT FROM e.energy_wh
   OR s.measured_wh IS DISTINCT FROM e.energy_wh OR s.started_at <> e.started_at
   OR s.charging_ended_at IS DISTINCT FROM e.ended_at OR s.occupied_until IS DISTINCT FROM e.unplugged_at
ORDER BY e.started_at;
\echo '== Sessions the ground truth does not know (a late or repeated heartbeat must not make one)'
SELECT s.order_no, s.gun, s.state, s.started_at, s.charging_ended_at, s.measured_wh, s.billed_wh
FROM demo_day.session s
WHERE NOT EXISTS (SELECT 1 FROM demo_day.expected e WHERE e.order_no = s.order_no)
ORDER BY s.started_at;
