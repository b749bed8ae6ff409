-- jobs.sql: what only time reveals, as functions pg_cron runs: silent guns
-- and network incidents (sweep_offline), heartbeat partitions ahead and
-- behind (maintain_partitions), the nightly reconciliation and the monthly
-- partner statements with their watermarks (run_reconciliation,
-- book_partner_statements), and schedule_jobs() that registers them.
-- Every job is idempotent and safe to run twice or late.  pg_cron does not
-- catch up runs missed while the server was down: a job whose work is cut
-- in windows (a day's statement, a month's) remembers in job_watermark up
-- to where it has done it, and each run does every window from there to
-- now; the others sweep everything due as of now, so a late run does what
-- the missed ones would have.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- An integer setting (see src/evcharge.c for the GUCs and their defaults);
-- the default here applies only before the library is loaded.
CREATE FUNCTION evcharge.setting_int(name text, fallback int) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(nullif(current_setting(name, true), '')::int, fallback);
COMMENT ON FUNCTION evcharge.setting_int(text, int) IS
	'an integer evcharge setting, or the fallback when it is not defined yet';

-- A setting in time units (shown as 3min, 120s): an interval.
CREATE FUNCTION evcharge.setting_interval(name text, fallback interval) RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(nullif(current_setting(name, true), '')::interval, fallback);
COMMENT ON FUNCTION evcharge.setting_interval(text, interval) IS
	'an evcharge setting in time units as an interval, or the fallback when it is not defined yet';

CREATE FUNCTION evcharge.sweep_offline(at timestamptz DEFAULT now(),
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

-- Daily partitions of heartbeat, [00:00, 24:00) UTC, named heartbeat_pYYYYMMDD.
CREATE FUNCTION evcharge.maintain_partitions(at timestamptz DEFAULT now(),
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
		-- Its own index, as heartbeat_default's (heartbeat.sql says why).
		EXECUTE format('CREATE INDEX %I ON evcharge.%I (gun, ts)', part || '_gun_ts_idx', part);
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

-- A windowed job's row for this run, locked: made on the first run with
-- done_until = first_done; NULL when another run holds it.
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

-- One source's statement of one day, fetched and reconciled in a
-- subtransaction: a failure is recorded as a fetch_failed finding and
-- returned, never raised.
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

-- The nightly job.  Without a day: for every enabled source, every day
-- after its watermark that is over in the source's zone, oldest first, at
-- most 31 a run; a day that fails stops that source there (recorded) and
-- the others go on.  A source's first run does yesterday.  With a day: that
-- day for every source, by hand; the watermarks do not move.
CREATE FUNCTION evcharge.run_reconciliation(p_day date DEFAULT NULL)
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

-- The first instant a partner's statements have to cover: its first
-- session or ledger movement (a payment by the day it was received).
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

-- The monthly job, run daily: every partner's statements, month after
-- month, from the month after its watermark to the last month that ended
-- a day or more before at (in the operator's books zone), each booked by
-- partner_statement().  A month that fails stops that partner there
-- (recorded); the others go on.
CREATE FUNCTION evcharge.book_partner_statements(at timestamptz DEFAULT now(), OUT booked int)
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

-- evcharge's jobs: name, schedule (GMT), command, and the schedules that
-- earlier versions registered (a job still on one of those was not changed
-- by a DBA, and moves to today's).
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

-- Registers what is missing and keeps what a DBA changed: pg_cron's own
-- cron.job is where a DBA changes a schedule or pauses a job
-- (cron.alter_job), so it is the one place schedules live; a job is only
-- created when no job of its name exists, and only moved to today's
-- schedule when it is still on one that an earlier version registered.
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
