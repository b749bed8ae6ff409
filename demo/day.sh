#!/usr/bin/env bash
# demo/day.sh: the day demo's shell step.  Builds bench/trafficgen with cc in
# a temporary directory, generates the day there (by default 4 stations x 6
# piles on 2026-11-20, seed 1; further arguments go to trafficgen), and
# replays it on the database given (default evcharge), with psql, which
# takes PGHOST/PGPORT/PGUSER from the caller (scripts/lib.sh's cluster_up):
#
# - through the bridge (the default): demo/day_load.sql registers the day,
#   demo/day_bridge.sql adds the members who start charges from the app,
#   evcharge-bridge (the installed one) is started on a free loopback port
#   against the database, demo/replay.js sends the day to it as OCPP 1.6J
#   charge points (ocpp-rpc, installed by scripts/lib.sh's ocpp_rpc_install
#   when missing), the bridge is stopped (SIGTERM), and demo/day_report.sql
#   shows what came of it;
# - by COPY (--copy): demo/day.sql, the heartbeats and pile records written
#   straight into the tables.
#
# The temporary directory is removed afterwards; the bridge's log is kept in
# $EV_BRIDGE_LOG when that is set.
#   demo/day.sh [--copy] [DATABASE [TRAFFICGEN ARGS...]]
#   demo/day.sh evcharge --seed 10 --defect-rate 0.03 --incidents 3
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=bridge
if [ "${1:-}" = --copy ]; then mode=copy; shift; fi
db=${1:-evcharge}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
bridge_pid=
cleanup() {
	[ -n "$bridge_pid" ] && kill -TERM "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
run_sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

cc -O2 -Wall -Wextra -Werror -o "$tmp/trafficgen" "$root/bench/trafficgen/trafficgen.c"
"$tmp/trafficgen" --quiet --out "$tmp/day" "$@"

if [ "$mode" = copy ]; then
	run_sql -v gen_dir="$tmp/day" -f "$root/demo/day.sql"
	exit 0
fi

run_sql -v gen_dir="$tmp/day" -f "$root/demo/day_load.sql"
run_sql -f "$root/demo/day_bridge.sql"
# The plan of the replay: the day, the step of each heartbeat line and pile
# record (day_load.sql's rule, the COPY replay's too), the app starts.
ms="(extract(epoch FROM %s) * 1000)::bigint::text"
plan="SELECT 'd', $(printf "$ms" day_start), $(printf "$ms" day_end) FROM demo_day.day"
plan="$plan UNION ALL SELECT 'h', n::text, $(printf "$ms" step) FROM demo_day.heartbeat_in"
plan="$plan UNION ALL SELECT 'r', n::text, $(printf "$ms" step) FROM demo_day.record_in"
plan="$plan UNION ALL SELECT 'a', pile_order_no, member_id::text FROM demo_day.app_start"
run_sql -c "\\copy ($plan) TO '$tmp/plan.tsv'"

OCPP_NODE_MODULES=$(bash -c "source '$root/scripts/lib.sh' && ocpp_rpc_install")
export OCPP_NODE_MODULES
bridge=$("${PG_CONFIG:-pg_config}" --bindir)/evcharge-bridge
[ -x "$bridge" ] || { echo "demo/day.sh: $bridge is not installed (make install)" >&2; exit 1; }
port=18900
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
log=${EV_BRIDGE_LOG:-$tmp/bridge.log}
# The day goes through in a minute or two, some thousand times faster than
# it happened: a pile's message rate is as many times its field rate, and
# the writer flushes every 5 ms rather than 20.
"$bridge" --db "dbname=$db" --ocpp "127.0.0.1:$port" --bridge-id demo-replay --flush-ms "${EV_FLUSH_MS:-5}" \
	--rate-per-second 100000 --rate-burst 1000000 2>"$log" &
bridge_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "==> the bridge listens on ws://127.0.0.1:$port/ocpp; replaying the day through it" >&2
if ! node "$root/demo/replay.js" "$tmp/day" "$tmp/plan.tsv" "ws://127.0.0.1:$port/ocpp" "$db"; then
	tail -20 "$log" >&2
	exit 1
fi
kill -TERM "$bridge_pid"
wait "$bridge_pid" || { echo "demo/day.sh: the bridge did not stop cleanly" >&2; tail -20 "$log" >&2; exit 1; }
bridge_pid=
run_sql -v mode=bridge -f "$root/demo/day_report.sql"
