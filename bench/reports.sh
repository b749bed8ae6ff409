#!/usr/bin/env bash
# bench/reports.sh: do the reports cost the period or the history?
#
# Uses the evcharge installed system-wide (it does not build or install) and
# the private cluster .cluster/rbench.  The data: one operator, 40 stations
# of 30 guns (a 1,200-gun network), BENCH_BILLS_PER_DAY (default 1,000)
# ended sessions per day, each with its bill (final), over BENCH_DAYS days
# (default 30) before 2026-11-20 (Asia/Shanghai).  Timed, each BENCH_CALLS
# times (default 5) in one psql session, median in ms:
#   daily_report(12, '2026-11-19'), daily_report of one station-day
#   (only_sub_operator NULL: the whole operator; per station is the same
#   call), anomaly_report(12, '2026-11-19', '2026-11-19') and
#   anomaly_report_month(12, '2026-11-01');
# then nine times as much history is added before it (ten times in all),
# ANALYZE, and the same calls timed again.  Prints both medians and their
# ratio (goal: within 1.2).  About a minute.  Stops the cluster when done
# (BENCH_KEEP=1 leaves it running).
source "$(dirname "$0")/../scripts/lib.sh"

DB=bench_reports
DAYS=${BENCH_DAYS:-30}
PER_DAY=${BENCH_BILLS_PER_DAY:-1000}
CALLS=${BENCH_CALLS:-5}

cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept: cluster rbench (PGHOST=$PGHOST PGPORT=$PGPORT), database $DB"
	else
		cluster_down rbench
	fi
}
trap cleanup EXIT
cluster_up rbench evcharge_rbench

say "making database $DB"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
	-c "CREATE DATABASE $DB"
pq -d "$DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE"
pq -d "$DB" <<'SQL'
SET client_min_messages = warning;
\o /dev/null
INSERT INTO evcharge.operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO evcharge.station (station_id, operator_id, name)
SELECT s, 12, 'station ' || s FROM generate_series(1, 40) s;
INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w, firmware)
SELECT ('442000' || '0012' || '0' || '00' || '01' || lpad(n::text, 5, '0'))::evcharge.pile_id,
       (n - 1) % 40 + 1, 2, 7000, 'AC-2.3.1'
  FROM generate_series(1, 600) n;
SQL

# pg_temp functions live for one session: each load makes it anew.
HISTORY_FN=$(cat <<'SQL'
-- Days d0 - 1 back to d0 - ndays of history: per_day sessions a day on the
-- 1,200 guns, each an hour of charging, billed.
CREATE FUNCTION pg_temp.history(d0 date, ndays int, per_day int) RETURNS void LANGUAGE sql AS $f$
	INSERT INTO evcharge.charge_session (order_no, gun, station_id, channel, state, started_at, charging_ended_at,
		occupied_until, last_ts, first_meter_wh, high_meter_wh, wh_by_class)
	SELECT 'R' || to_char(d0 - d, 'YYYYMMDD') || '-' || i, evcharge.gun_id(p.pile_id, i % 2 + 1), p.station_id,
	       'card', 'ended', st, st + interval '1 hour', st + interval '70 minutes', st + interval '70 minutes',
	       1000000, 1007000, '{0,0,7000,0}'
	  FROM generate_series(1, ndays) d, generate_series(0, per_day - 1) i,
	       LATERAL (SELECT ((d0 - d)::timestamp + (i % 1440) * interval '1 minute') AT TIME ZONE 'Asia/Shanghai' AS st) t,
	       LATERAL (SELECT pile_id, station_id FROM evcharge.pile
	                 WHERE pile_id OPERATOR(evcharge.=) ('442000' || '0012' || '0' || '00' || '01'
	                       || lpad((i / 2 % 600 + 1)::text, 5, '0'))::evcharge.pile_id) p;
	INSERT INTO evcharge.bill (order_no, gun, station_id, channel, started_at, ended_at, occupied_until, energy_wh,
		wh_by_class, energy_fee, service_fee, occupancy_fee, discount, total, applied, energy_source)
	SELECT order_no, gun, station_id, channel, started_at, charging_ended_at, occupied_until, 7000, wh_by_class,
	       4.48, 3.57, 0, 0, 8.05, '{}', 'pile'
	  FROM evcharge.charge_session
	 WHERE order_no LIKE 'R%' AND started_at >= (d0 - ndays)::timestamp AT TIME ZONE 'Asia/Shanghai'
	   AND started_at < d0::timestamp AT TIME ZONE 'Asia/Shanghai';
$f$;
SQL
)

timing() {
	pq -d "$DB" -A -t -v calls="$CALLS" <<'SQL'
SET client_min_messages = warning;
CREATE OR REPLACE FUNCTION pg_temp.ms(q text, n int) RETURNS numeric LANGUAGE plpgsql AS $f$
DECLARE
	t timestamptz;
	v numeric[] := '{}';
BEGIN
	EXECUTE q;		-- warm
	FOR i IN 1 .. n LOOP
		t := clock_timestamp();
		EXECUTE q;
		v := v || extract(epoch FROM clock_timestamp() - t)::numeric * 1000;
	END LOOP;
	RETURN (SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY x), 2) FROM unnest(v) x);
END $f$;
SELECT 'daily_report', pg_temp.ms('SELECT count(*) FROM evcharge.daily_report(12, ''2026-11-19'')', :calls);
SELECT 'anomaly_report day', pg_temp.ms('SELECT count(*) FROM evcharge.anomaly_report(12, ''2026-11-19'', ''2026-11-19'')', :calls);
SELECT 'anomaly_report_month', pg_temp.ms('SELECT count(*) FROM evcharge.anomaly_report_month(12, ''2026-11-01'')', :calls);
SQL
}

say "history: $DAYS days of $PER_DAY bills"
pq -d "$DB" >/dev/null <<SQL
SET client_min_messages = warning;
$HISTORY_FN
SELECT pg_temp.history('2026-11-20', $DAYS, $PER_DAY);
ANALYZE;
SQL
before=$(timing)
n1=$(pq -d "$DB" -A -t -c "SELECT count(*) FROM evcharge.bill")
say "history: $((DAYS * 9)) more days"
pq -d "$DB" >/dev/null <<SQL
SET client_min_messages = warning;
$HISTORY_FN
SELECT pg_temp.history(('2026-11-20'::date - $DAYS), $((DAYS * 9)), $PER_DAY);
ANALYZE;
SQL
after=$(timing)
n2=$(pq -d "$DB" -A -t -c "SELECT count(*) FROM evcharge.bill")
join -t '|' <(echo "$before" | sort) <(echo "$after" | sort) |
	awk -F '|' -v n1="$n1" -v n2="$n2" '{printf "%-22s %8.2f ms on %d bills, %8.2f ms on %d bills, ratio %.2f\n", $1, $2, n1, $3, n2, $3 / $2}'
