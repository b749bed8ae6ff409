-- pgTAP: the jobs' watermarks and the times jobs accept.
--
-- Partner statements and reconciliation remember in job_watermark up to
-- where they have done their work: a run books every month (reconciles
-- every day) from there to now, in order; running again does nothing
-- twice; a run with an earlier time does nothing; a month that fails stops
-- that partner there and the others go on; a first run starts at the
-- partner's first activity (a source's: yesterday), not in year 1.
-- Every job and function taking a time refuses infinite and implausible
-- ones (issue 11 item 10): maintain_partitions('-infinity') wrote
-- temporary files until the disk was full, maintain_partitions('294276-12-01')
-- dropped every heartbeat partition, sweep_offline('infinity') marked every
-- gun offline.
BEGIN;
SELECT plan(37);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';
-- The old maintain_partitions('-infinity') ran until the disk was full:
-- here it would stop at these limits instead (and fail the test).
SET LOCAL statement_timeout = '20s';
SET LOCAL temp_file_limit = '64MB';

SELECT has_table('evcharge', 'job_watermark', 'table job_watermark exists');
SELECT ok((SELECT 'evcharge.job_watermark'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'evcharge'),
          'job_watermark is dumped with the data (pg_extension_config_dump)');

-- Operator 70: one station, a pile of nine guns; partners 71, 72, 73 and 74
-- whose users charged two and three months ago; 75 never had a session.
INSERT INTO operator VALUES (70, 'jobs test');
INSERT INTO station (station_id, operator_id, name) VALUES (70, 70, 'jobs test');
INSERT INTO station_tariff (station_id, current_type, tariff, valid)
VALUES (70, 'AC', '00:00-24:00 flat | flat 0.8+0.45', '[2015-01-01,)');
INSERT INTO pile VALUES ('44200000700000100001', 70, 9, 7000, NULL);
INSERT INTO partner (partner_id, operator_id, name) VALUES
	(71, 70, 'first'), (72, 70, 'second'), (73, 70, 'third'), (74, 70, 'fourth'), (75, 70, 'idle');
CREATE TEMP TABLE months AS
SELECT (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') - interval '3 months')::date AS m3,
       (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') - interval '2 months')::date AS m2,
       -- the last month due: over a day ago
       (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai' - interval '1 day') - interval '1 month')::date AS due;
-- A one-hour charge of 5900 Wh on a gun at t0, with its pile record.
CREATE FUNCTION pg_temp.charge(g int, partner bigint, t0 timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	o text := evcharge.start_session(evcharge.gun_id('44200000700000100001', g), NULL, 'partner', partner);
BEGIN
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT evcharge.gun_id('44200000700000100001', g), t0 + i * interval '1 min',
	       (CASE WHEN i = 60 THEN 'idle' ELSE 'charging' END)::evcharge.gun_status, 100000 + least(i, 59) * 100, o
	FROM generate_series(0, 60) i;
	INSERT INTO evcharge.pile_record VALUES (o, evcharge.gun_id('44200000700000100001', g), t0, t0 + interval '59 min', 5900);
	RETURN o;
END $$;
CREATE TEMP TABLE charged AS
SELECT pg_temp.charge(p - 70, p, (SELECT m3 FROM months) + interval '10 days 8 hours') FROM generate_series(71, 74) p;
INSERT INTO charged
SELECT pg_temp.charge(p - 66, p, (SELECT m2 FROM months) + interval '10 days 8 hours') FROM generate_series(71, 74) p;
SELECT is((SELECT settled FROM settle_bills()), 8::bigint, 'eight partner bills settled, in two months');

-- 73's statement of m2 will fail once.
CREATE FUNCTION pg_temp.fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.partner_id = 73 AND NEW.month = (SELECT m2 FROM months) THEN
		RAISE EXCEPTION 'the books of % are closed for maintenance', NEW.month USING ERRCODE = 'lock_not_available';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER fail_once BEFORE INSERT ON evcharge.partner_month_statement
	FOR EACH ROW EXECUTE FUNCTION pg_temp.fail_once();

-- The run after two missed months books each of them, month after month.
SELECT is((SELECT booked FROM book_partner_statements()),
          (SELECT 3 * count(*)::int + 2 FROM months, generate_series(m3, due, interval '1 month')),
          'a run books every month due of every partner: 71, 72 and 74 each month, 73 up to its failure, 75 one');
SELECT results_eq(
	$$SELECT partner_id, month, sessions FROM partner_month_statement WHERE partner_id = 71 ORDER BY month LIMIT 2$$,
	$$SELECT 71::bigint, m3, 1 FROM months UNION ALL SELECT 71::bigint, m2, 1 FROM months$$,
	'partner 71: its first statement is the month of its first session, then the next, one session each');
SELECT is((SELECT array_agg(month ORDER BY month) FROM partner_month_statement WHERE partner_id = 71),
          (SELECT array_agg(d::date ORDER BY d) FROM months, generate_series(m3, due, interval '1 month') d),
          'partner 71: a statement for every month from its first to the last due, none skipped');
SELECT is((SELECT count(*)::int FROM partner_month_statement s, months WHERE s.month < m3), 0,
          'no statement before the first activity (not year 1)');
SELECT is((SELECT string_agg(to_char(month, 'YYYY-MM'), ',') FROM partner_month_statement WHERE partner_id = 75),
          (SELECT to_char(due, 'YYYY-MM') FROM months),
          'a partner without any activity gets last month''s statement alone');
SELECT results_eq(
	$$SELECT done_until, failed_on, last_error FROM job_watermark WHERE job = 'partner_statements' AND subject_id = 73$$,
	$$SELECT m3, m2, 'the books of ' || m2 || ' are closed for maintenance' FROM months$$,
	'partner 73 stops at the month that failed: done until the month before, the failure recorded');
SELECT is((SELECT array_agg(month ORDER BY month) FROM partner_month_statement WHERE partner_id = 73),
          (SELECT ARRAY[m3] FROM months), 'partner 73 has only the month before the failure');
SELECT is((SELECT count(*)::int FROM partner_month_statement WHERE partner_id = 74),
          (SELECT count(*)::int FROM months, generate_series(m3, due, interval '1 month')),
          'partner 74, after the failing one, went on');
SELECT is((SELECT count(*)::int FROM job_watermark w, months
           WHERE w.job = 'partner_statements' AND w.subject_id IN (71, 72, 74, 75)
             AND w.done_until = due AND w.last_error IS NULL AND w.last_run_at = now()),
          4, 'the other partners are done until the last month due, no error');

-- Run twice: nothing booked twice; run with an earlier time: nothing.
SELECT is((SELECT booked FROM book_partner_statements()), 0, 'a second run books nothing (the failure still fails)');
SELECT is((SELECT booked FROM book_partner_statements(now() - interval '40 days')), 0,
          'a late run with an earlier time books nothing');
SELECT is((SELECT count(*)::int FROM partner_month_statement), (SELECT count(DISTINCT (partner_id, month))::int FROM partner_month_statement),
          'one statement per partner and month');
SELECT is((SELECT count(*)::int FROM partner_month_item), (SELECT count(DISTINCT txn_id)::int FROM partner_month_item),
          'every ledger transaction on one statement only');

-- Mended: the next run goes on from the failed month.
DROP TRIGGER fail_once ON evcharge.partner_month_statement;
SELECT is((SELECT booked FROM book_partner_statements()),
          (SELECT count(*)::int FROM months, generate_series(m2, due, interval '1 month')),
          'after the failure is mended the next run books 73''s months from the failed one');
SELECT results_eq(
	$$SELECT done_until, failed_on, last_error FROM job_watermark WHERE job = 'partner_statements' AND subject_id = 73$$,
	$$SELECT due, NULL::date, NULL::text FROM months$$, 'partner 73 is done until the last month due');
SELECT is((SELECT sum(sessions)::int FROM partner_month_statement WHERE partner_id = 73), 2,
          'partner 73''s two sessions are each on its month''s statement');

-- Reconciliation: a source that cannot be reached.  Its first run does
-- yesterday (not year 1) and fails there; moved back three days, the run
-- stops at the first of them.
INSERT INTO statement_source (operator_id, kind, url_template, secret, name)
VALUES (70, 'provider', 'https://127.0.0.1:9/unreachable/{day}.csv', 'secret-of-sixteen-characters', 'unreachable-70');
SELECT results_eq($$SELECT day, lines, error IS NOT NULL FROM run_reconciliation()$$,
	$$SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date - 1, NULL::int, true$$,
	'a source''s first run reconciles yesterday, and records that it failed');
SELECT results_eq($$SELECT done_until, failed_on, last_error IS NOT NULL FROM job_watermark WHERE job = 'reconcile'$$,
	$$SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date - 2, (now() AT TIME ZONE 'Asia/Shanghai')::date - 1, true$$,
	'its watermark stays before the failed day, which is recorded');
UPDATE job_watermark SET done_until = (now() AT TIME ZONE 'Asia/Shanghai')::date - 4 WHERE job = 'reconcile';
SELECT results_eq($$SELECT day FROM run_reconciliation()$$,
	$$SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date - 3$$,
	'three days behind, the run starts at the oldest and stops at its failure');
SELECT is((SELECT string_agg(day::text, ',' ORDER BY day) FROM reconciliation_finding WHERE kind = 'fetch_failed'),
          (SELECT ((now() AT TIME ZONE 'Asia/Shanghai')::date - 3) || ',' || ((now() AT TIME ZONE 'Asia/Shanghai')::date - 1)),
          'each failed day is a fetch_failed finding; the days after the failure were not tried');
SELECT results_eq($$SELECT count(*)::int FROM run_reconciliation((now() AT TIME ZONE 'Asia/Shanghai')::date - 10)$$,
	$$VALUES (1)$$, 'a day by hand is tried for every source');
SELECT is((SELECT done_until FROM job_watermark WHERE job = 'reconcile'), (now() AT TIME ZONE 'Asia/Shanghai')::date - 4,
          'and does not move the watermark');

-- Times that are not times.
INSERT INTO gun_state (gun, station_id, status, last_heartbeat)
VALUES ('44200000700000100001009', 70, 'idle', now() - interval '1 hour');
SELECT throws_ok($$SELECT sweep_offline('infinity')$$, '22008', NULL, 'sweep_offline(''infinity'') is refused (22008)');
SELECT throws_ok($$SELECT sweep_offline(now() + interval '1 hour')$$, '22023', NULL,
                 'sweep_offline of a time to come is refused (22023)');
SELECT is((SELECT online FROM gun_state WHERE gun = '44200000700000100001009'), true, 'and no gun went offline');
DO $$ BEGIN PERFORM evcharge.maintain_partitions(); END $$;
CREATE TEMP TABLE parts AS SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'evcharge.heartbeat'::regclass;
SELECT throws_ok($$SELECT maintain_partitions('-infinity')$$, '22008', NULL,
                 'maintain_partitions(''-infinity'') is refused at once (22008), no temporary files');
SELECT throws_ok($$SELECT maintain_partitions('294276-12-01')$$, '22023',
                 'maintain_partitions(at) "294276-12-01 00:00:00+08" is too far ahead',
                 'maintain_partitions(''294276-12-01'') is refused (22023)');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'evcharge.heartbeat'::regclass), (SELECT n FROM parts),
          'and every partition is still there');
-- A heartbeat of two days ago, retention two days, at a day ahead: kept.
DO $$ BEGIN PERFORM evcharge.maintain_partitions(now() - interval '2 days'); END $$;
INSERT INTO heartbeat (gun, ts, status) VALUES ('44200000700000100001009', now() - interval '2 days', 'idle');
SET LOCAL evcharge.heartbeat_retention_days = 2;
DO $$ BEGIN PERFORM evcharge.maintain_partitions(now() + interval '1 day'); END $$;
SELECT is((SELECT count(*)::int FROM heartbeat WHERE ts = now() - interval '2 days'), 1,
          'an at a day ahead drops no heartbeat younger than the retention counted from now');
SELECT throws_ok($$SELECT detect_lost_bills('infinity')$$, '22008', NULL, 'detect_lost_bills(''infinity'') is refused');
SELECT throws_ok($$SELECT book_partner_statements('infinity')$$, '22008', NULL, 'book_partner_statements(''infinity'') is refused');
SELECT throws_ok($$SELECT partner_statement(71, '-infinity')$$, '22008', NULL, 'partner_statement(..., ''-infinity'') is refused');
SELECT throws_ok($$SELECT * FROM run_reconciliation('infinity')$$, '22008', NULL, 'run_reconciliation(''infinity'') is refused');
SELECT throws_ok($$SELECT * FROM daily_report(70, '1999-01-01')$$, '22023',
                 'daily_report(day) "1999-01-01" is before 2015', 'daily_report of a day before 2015 is refused');

SELECT * FROM finish();
ROLLBACK;
