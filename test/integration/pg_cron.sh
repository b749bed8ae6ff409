# The real pg_cron is preloaded in the test cluster and runs jobs in the
# database named by cron.database_name (evcharge_it), next to evcharge.
source "$(dirname "$0")/lib/tap.sh"
plan 5
db=evcharge_it
q -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
	q -d postgres -c "CREATE DATABASE $db"
q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_cron" \
	-c "CREATE EXTENSION IF NOT EXISTS evcharge CASCADE" >/dev/null

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

# A job that uses evcharge, run by pg_cron itself within its next minute.
q -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS cron_probe;
CREATE TABLE cron_probe (ran_at timestamptz DEFAULT now(), region int);
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'evcharge_it_probe';
SELECT cron.schedule('evcharge_it_probe', '* * * * *',
  $$INSERT INTO cron_probe (region) VALUES (evcharge.region_code('4420 0000 1200 0020 0045'::evcharge.pile_id))$$);
SQL
is "$(q -d $db -c "SELECT count(*) FROM cron.job WHERE jobname = 'evcharge_it_probe'")" 1 "job scheduled"

ran=0
for _ in $(seq 1 90); do
	ran=$(q -d $db -c "SELECT count(*) FROM cron_probe")
	[ "$ran" -gt 0 ] && break
	sleep 1
done
ok $([ "$ran" -gt 0 ]; echo $?) "pg_cron ran the job within 90 seconds"
is "$(q -d $db -c "SELECT region FROM cron_probe LIMIT 1")" 442000 "the job called evcharge"
q -d $db -c "SELECT cron.unschedule('evcharge_it_probe')" >/dev/null
done_testing
