#!/usr/bin/env bash
# bench/small_tx.sh: heartbeats from many clients in small transactions.
#
# Uses the evcharge installed system-wide (it does not build or install) and
# the private cluster .cluster/txbench.  The data: 4,000 guns (2,000
# registered AC piles of 7 kW, two guns each, at 4 stations with
# time-of-use plans), every gun with a live state.  BENCH_CLIENTS clients
# (default 8) each own 500 guns (disjoint, as bridges of different sites
# would); a transaction is one INSERT ... SELECT of n heartbeats of n
# different guns of its client, timed now (clock_timestamp()): even guns
# idle, odd guns charging one order each with a rising register, so the
# trigger updates gun states and, for half the rows, the open sessions.
# Two cases, each with pgbench for BENCH_SECONDS (default 8) seconds:
#   many:  n uniform in 1..100 (mean 50.5) heartbeats per transaction;
#   one:   one heartbeat per transaction;
# each against
#   (a) plain:    bench_plain.heartbeat, the same columns and the same
#                 (gun, ts) index, no trigger, not partitioned;
#   (b) pipeline: evcharge.heartbeat and its C statement-level trigger.
# Alternating (a) and (b), BENCH_REPS times (default 3); prints rows/s of
# every run (rows in the table afterwards / seconds), the medians and the
# ratio (b)/(a) of the medians.  BENCH_PARTITIONS=N (default 0) first makes
# N more daily heartbeat partitions in the past, to show that the cost does
# not grow with them.  About 2 minutes.  Stops the cluster when done
# (BENCH_KEEP=1 leaves it running).
source "$(dirname "$0")/../scripts/lib.sh"

DB=bench_small_tx
REPS=${BENCH_REPS:-3}
SECS=${BENCH_SECONDS:-8}
CLIENTS=${BENCH_CLIENTS:-8}
PARTS=${BENCH_PARTITIONS:-0}
PGBENCH=$PG_BIN/pgbench

LIB="$($PG_CONFIG --pkglibdir)/evcharge.so"
[ -f "$LIB" ] || die "evcharge is not installed ($LIB is missing)"

WORK=$(mktemp -d /tmp/evcharge-sbench-XXXX)
chmod 755 "$WORK"
cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept: cluster txbench (PGHOST=$PGHOST PGPORT=$PGPORT), database $DB"
	else
		cluster_down txbench
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
cluster_up txbench evcharge_txbench

say "making database $DB"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
	-c "CREATE DATABASE $DB"
pq -d "$DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE"
pq -d "$DB" -v parts="$PARTS" <<'SQL'
SET client_min_messages = warning;
\o /dev/null
INSERT INTO evcharge.operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO evcharge.station (station_id, operator_id, name)
SELECT s, 12, 'station ' || s FROM generate_series(1, 4) s;
INSERT INTO evcharge.station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, ct, '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, '
              '19:00-22:00 peak, 22:00-24:00 flat | peak 1.0300+0.5100, flat 0.6400+0.5100, valley 0.3300+0.5500',
       '[2026-01-01,)', ct || ' 2026'
  FROM generate_series(1, 4) s, unnest(ARRAY['AC', 'DC']) ct;
INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w, firmware)
SELECT ('442000' || '0012' || '0' || '00' || '01' || lpad(n::text, 5, '0'))::evcharge.pile_id,
       (n - 1) % 4 + 1, 2, 7000, 'AC-2.3.1'
  FROM generate_series(1, 2000) n;
SELECT evcharge.maintain_partitions(now());
SET evcharge.heartbeat_retention_days = 3660;
SET evcharge.partitions_ahead_days = 366;
SELECT evcharge.maintain_partitions(now() - k * interval '1 day')
  FROM generate_series(:parts, 1, -367) k WHERE :parts > 0;
INSERT INTO evcharge.gun_state (gun, station_id, status, online, last_heartbeat, meter_wh, fault_code, updated_at)
SELECT evcharge.gun_id(p.pile_id, k), p.station_id, 'idle', true, now() - interval '1 hour', 1000000, 0,
       now() - interval '1 hour'
  FROM evcharge.pile p, generate_series(1, 2) k;
CREATE SCHEMA bench_plain;
CREATE TABLE bench_plain.heartbeat (LIKE evcharge.heartbeat INCLUDING DEFAULTS);
CREATE INDEX heartbeat_gun_ts_idx ON bench_plain.heartbeat (gun, ts);
-- Gun g (0..3999) is gun g % 2 + 1 of pile g / 2 + 1.
CREATE FUNCTION bench_plain.gun(g int) RETURNS evcharge.gun_id LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN evcharge.gun_id(('442000' || '0012' || '0' || '00' || '01' || lpad((g / 2 + 1)::text, 5, '0'))::evcharge.pile_id,
                       g % 2 + 1);
ANALYZE;
SQL
say "$(pq -d "$DB" -A -t -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'evcharge.heartbeat'::regclass") heartbeat partitions"

# One transaction: n heartbeats of n different guns of the client.
script() {
	local table=$1 nexpr=$2
	cat <<-EOF
	\\set n $nexpr
	\\set o random(0, 499)
	INSERT INTO $table (gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, fault_code, order_no)
	SELECT bench_plain.gun(g), clock_timestamp(), s.status::evcharge.gun_status,
	       CASE WHEN g % 2 = 1 THEN 1000000 + extract(epoch FROM clock_timestamp())::bigint - 1700000000 ELSE 1000000 END,
	       CASE WHEN g % 2 = 1 THEN 7000 ELSE 0 END, 220.0, CASE WHEN g % 2 = 1 THEN 31.8 ELSE 0 END,
	       CASE WHEN g % 2 = 1 THEN 50 END, 0, CASE WHEN g % 2 = 1 THEN 'SB-' || g END
	  FROM generate_series(0, :n - 1) i,
	       LATERAL (SELECT (:client_id % $CLIENTS) * 500 + (:o + i) % 500 AS g) x,
	       LATERAL (SELECT CASE WHEN g % 2 = 1 THEN 'charging' ELSE 'idle' END AS status) s;
	EOF
}
script bench_plain.heartbeat 'random(1, 100)' > "$WORK/plain_many.sql"
script evcharge.heartbeat 'random(1, 100)' > "$WORK/pipe_many.sql"
script bench_plain.heartbeat 1 > "$WORK/plain_one.sql"
script evcharge.heartbeat 1 > "$WORK/pipe_one.sql"

count() { pq -d "$DB" -A -t -c "SELECT count(*) FROM $1"; }
run() {
	local file=$1 table=$2 before after
	before=$(count "$table")
	as_owner "$PGBENCH" -h "$PGHOST" -p "$PGPORT" -U postgres -n -c "$CLIENTS" -j 2 -T "$SECS" -f "$file" "$DB" \
		> "$WORK/pgbench.out" 2>&1 || { cat "$WORK/pgbench.out" >&2; die "pgbench failed"; }
	after=$(count "$table")
	echo $(((after - before) / SECS))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for case in many one; do
	plain=()
	pipe=()
	for rep in $(seq "$REPS"); do
		pq -d "$DB" -c "CHECKPOINT" >/dev/null
		plain+=("$(run "$WORK/plain_$case.sql" bench_plain.heartbeat)")
		pq -d "$DB" -c "CHECKPOINT" >/dev/null
		pipe+=("$(run "$WORK/pipe_$case.sql" evcharge.heartbeat)")
		say "$case rep $rep: plain ${plain[-1]} rows/s, pipeline ${pipe[-1]} rows/s"
	done
	mp=$(median "${plain[@]}")
	mb=$(median "${pipe[@]}")
	q=$(pq -d "$DB" -A -t -c "SELECT count(*) FROM evcharge.quarantine")
	[ "$q" = 0 ] || die "$q heartbeats quarantined: the benchmark's rows should all be accepted"
	printf '%-5s %d clients: plain %s rows/s, pipeline %s rows/s (medians of %s), pipeline/plain %s\n' \
		"$case" "$CLIENTS" "$mp" "$mb" "$REPS" "$(awk -v a="$mb" -v b="$mp" 'BEGIN {printf "%.2f", a / b}')"
done
