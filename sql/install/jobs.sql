-- jobs.sql: what only time reveals, as functions pg_cron runs: silent guns
-- and network incidents (sweep_offline), heartbeat partitions ahead and
-- behind (maintain_partitions), and schedule_jobs() that registers them.
-- Every job is idempotent and safe to run twice or late.
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
	c record;
	incident bigint;
BEGIN
	-- Guns silent too long go offline; each gets one open offline period.
	WITH gone AS (
		UPDATE evcharge.gun_state g SET online = false, updated_at = now()
		WHERE g.online AND g.last_heartbeat < at - silence
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
	'marks guns silent longer than evcharge.offline_after offline with an offline period, and groups piles of one station silent within evcharge.incident_window into a network incident; idempotent';

-- Daily partitions of heartbeat, [00:00, 24:00) UTC, named heartbeat_pYYYYMMDD.
CREATE FUNCTION evcharge.maintain_partitions(at timestamptz DEFAULT now(),
	OUT created int, OUT dropped int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ahead int := evcharge.setting_int('evcharge.partitions_ahead_days', 7);
	keep int := evcharge.setting_int('evcharge.heartbeat_retention_days', 90);
	today date := (at AT TIME ZONE 'UTC')::date;
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
		  AND to_date(substr(c.relname, 12), 'YYYYMMDD') < today - keep
		ORDER BY c.relname
	LOOP
		EXECUTE format('DROP TABLE evcharge.%I', p.relname);
		dropped := dropped + 1;
	END LOOP;
	DELETE FROM evcharge.heartbeat_default WHERE ts < (today - keep)::timestamp AT TIME ZONE 'UTC';
END $$;
COMMENT ON FUNCTION evcharge.maintain_partitions(timestamptz) IS
	'creates daily heartbeat partitions from yesterday to evcharge.partitions_ahead_days ahead and drops those older than evcharge.heartbeat_retention_days; idempotent';

CREATE FUNCTION evcharge.schedule_jobs() RETURNS TABLE (jobname text, schedule text, command text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	jobs text[][] := ARRAY[
		['evcharge-sweep-offline', '* * * * *', 'SELECT evcharge.sweep_offline()'],
		['evcharge-partitions', '7 * * * *', 'SELECT evcharge.maintain_partitions()'],
		['evcharge-lost-bills', '*/5 * * * *', 'SELECT evcharge.detect_lost_bills()'],
		['evcharge-settle', '* * * * *', 'SELECT evcharge.settle_bills()'],
		['evcharge-reconcile', '30 18 * * *', 'SELECT * FROM evcharge.run_reconciliation()'],
		['evcharge-partner-statements', '0 20 1 * *', 'SELECT evcharge.book_partner_statements()']];
	i int;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('pg_cron runs jobs from the database named by cron.database_name (%s).',
			                      coalesce(current_setting('cron.database_name', true), 'not set: pg_cron is not preloaded')),
			      HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and CREATE EXTENSION pg_cron here; see docs/operations.md.';
	END IF;
	PERFORM evcharge.maintain_partitions();
	FOR i IN 1 .. array_length(jobs, 1) LOOP
		-- A job of the same name is replaced, so calling this again is harmless.
		EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING jobs[i][1], jobs[i][2], jobs[i][3];
		jobname := jobs[i][1];
		schedule := jobs[i][2];
		command := jobs[i][3];
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.schedule_jobs() IS
	'registers evcharge''s jobs with pg_cron (sweep_offline and settle_bills every minute, maintain_partitions hourly, detect_lost_bills every 5 minutes, run_reconciliation nightly, book_partner_statements monthly) and makes the partitions now; idempotent';
