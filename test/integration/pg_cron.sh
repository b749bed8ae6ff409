# The real pg_cron is preloaded in the test cluster and runs jobs in the
# database named by cron.database_name (evcharge_it), next to evcharge:
# a probe job that calls evcharge, and evcharge's own jobs registered by
# evcharge.schedule_jobs(), which must mark a silent gun offline; and
# schedule_jobs() run again keeps what a DBA changed with cron.alter_job
# (issue 12: lost-bills set to */10 came back as */5).
source "$(dirname "$0")/lib/tap.sh"
plan 14
db=evcharge_it
q -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
	q -d postgres -c "CREATE DATABASE $db"
# The database stays (pg_cron's launcher lives in it); evcharge is made anew
# (deliberately dropped: evcharge.allow_drop, should it hold money).
q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_cron" \
	-c "SET evcharge.allow_drop = on" -c "DROP EXTENSION IF EXISTS evcharge CASCADE" -c "CREATE EXTENSION evcharge CASCADE" >/dev/null
# Jobs of an earlier run of the tests go; the sweep counts silence from the
# server's start at the earliest, which may be a minute ago: a short
# offline_after lets it act within the wait below.
q -d $db -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'evcharge-%'" >/dev/null
q -d $db -c "ALTER DATABASE $db SET evcharge.offline_after = '30s'" >/dev/null

q -d $db -c "SHOW shared_preload_libraries" | grep -q pg_cron
ok $? "pg_cron is in shared_preload_libraries"
# The launcher connects to its database once that exists; give it a moment.
launchers=0
for _ in $(seq 1 30); do
	launchers=$(q -d $db -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher' AND datname = '$db'")
	[ "$launchers" -eq 1 ] && break
	sleep 1
done
is "$launchers" 1 "the pg_cron launcher is running in $db"

# A probe job that uses evcharge, and a gun that has been silent 10 minutes.
q -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS cron_probe;
CREATE TABLE cron_probe (ran_at timestamptz DEFAULT now(), region int);
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'evcharge_it_probe';
SELECT cron.schedule('evcharge_it_probe', '* * * * *',
  $$INSERT INTO cron_probe (region) VALUES (evcharge.region_code('4420 0000 1200 0020 0045'::evcharge.pile_id))$$);
INSERT INTO evcharge.operator VALUES (1, 'cron test');
INSERT INTO evcharge.station (station_id, operator_id, name) VALUES (1, 1, 'cron test');
INSERT INTO evcharge.pile VALUES ('44200000010000100001', 1, 1, 7000);
INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh)
VALUES ('44200000010000100001001', now() - interval '10 minutes', 'idle', 1000);
SQL
is "$(q -d $db -c "SELECT online FROM evcharge.gun_state")" t "the gun is online after its heartbeat"

# schedule_jobs() twice: the same six jobs, not twelve.
first=$(q -d $db -c "SELECT string_agg(action, ',') FROM evcharge.schedule_jobs()") &&
	second=$(q -d $db -c "SELECT string_agg(action, ',') FROM evcharge.schedule_jobs()")
ok $? "schedule_jobs() runs, twice"
is "$(q -d $db -c "SELECT string_agg(jobname || ' ' || schedule, ', ' ORDER BY jobname) FROM cron.job WHERE jobname LIKE 'evcharge-%'")" \
	"evcharge-lost-bills */5 * * * *, evcharge-partitions 7 * * * *, evcharge-partner-statements 0 20 * * *, evcharge-reconcile 30 18 * * *, evcharge-settle * * * * *, evcharge-sweep-offline * * * * *" \
	"schedule_jobs() registered its six jobs once"
is "$first/$second" "created,created,created,created,created,created/kept,kept,kept,kept,kept,kept" \
	"the first call created the six jobs, the second kept them"

# A DBA slows the lost-bills job down and pauses the reconciliation; a job
# left on 0.1.0's monthly schedule is not a DBA's choice.
q -d $db >/dev/null <<'SQL'
SELECT cron.alter_job(jobid, schedule => '*/10 * * * *') FROM cron.job WHERE jobname = 'evcharge-lost-bills';
SELECT cron.alter_job(jobid, active => false) FROM cron.job WHERE jobname = 'evcharge-reconcile';
SELECT cron.alter_job(jobid, schedule => '0 20 1 * *') FROM cron.job WHERE jobname = 'evcharge-partner-statements';
SQL
is "$(q -d $db -c "SELECT string_agg(jobname || ': ' || action, '; ' ORDER BY jobname) FROM evcharge.schedule_jobs() WHERE action <> 'kept'")" \
	"evcharge-lost-bills: kept as changed: schedule */10 * * * * (default */5 * * * *); evcharge-partner-statements: schedule 0 20 1 * * of an earlier version moved to 0 20 * * *; evcharge-reconcile: kept as changed: paused" \
	"schedule_jobs() says what it kept and what it moved"
is "$(q -d $db -c "SELECT string_agg(jobname || ' ' || schedule || ' ' || active, ', ' ORDER BY jobname) FROM cron.job WHERE jobname IN ('evcharge-lost-bills', 'evcharge-reconcile', 'evcharge-partner-statements')")" \
	"evcharge-lost-bills */10 * * * * true, evcharge-partner-statements 0 20 * * * true, evcharge-reconcile 30 18 * * * false" \
	"the DBA's */10 and pause survive schedule_jobs(); 0.1.0's monthly schedule became daily"
q -d $db -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'evcharge-settle'" >/dev/null
is "$(q -d $db -c "SELECT string_agg(jobname || ': ' || action, '; ') FROM evcharge.schedule_jobs() WHERE action <> 'kept' AND action NOT LIKE 'kept as changed%'")" \
	"evcharge-settle: created" "a job that was unscheduled is created again (pause it instead to stop it)"
ok $([ "$(q -d $db -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'evcharge.heartbeat'::regclass")" -ge 9 ]; echo $?) \
	"schedule_jobs() made the heartbeat partitions"

ran=0
offline=t
for _ in $(seq 1 100); do
	ran=$(q -d $db -c "SELECT count(*) FROM cron_probe")
	offline=$(q -d $db -c "SELECT online FROM evcharge.gun_state")
	[ "$ran" -gt 0 ] && [ "$offline" = f ] && break
	sleep 1
done
ok $([ "$ran" -gt 0 ]; echo $?) "pg_cron ran the probe job within 100 seconds"
is "$(q -d $db -c "SELECT region FROM cron_probe LIMIT 1")" 442000 "the probe job called evcharge"
is "$offline" f "pg_cron ran evcharge.sweep_offline(), which marked the silent gun offline"
is "$(q -d $db -c "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'evcharge-sweep-offline' AND d.status = 'succeeded'")" \
	1 "the sweep job's run succeeded"
q -d $db -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'evcharge_it_probe' OR jobname LIKE 'evcharge-%'" >/dev/null
q -d $db -c "ALTER DATABASE $db RESET evcharge.offline_after" >/dev/null
done_testing
