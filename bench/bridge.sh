#!/usr/bin/env bash
# bench/bridge.sh: OCPP 1.6J charge points, and the same load from piles
# speaking the YKC cloud protocol, through evcharge-bridge into the whole
# pipeline, against the same rows written by one COPY.
#
# Uses the evcharge and evcharge-bridge installed on the machine; on a
# machine that has neither (a fresh Debian 12, as root) it installs the
# packages and builds and installs this checkout first (scripts/lib.sh).
# The load generator bench/ocppload/ocppload.c (libwebsockets client,
# jansson) is built into a temporary directory.  Private cluster
# .cluster/brbench, stopped when done (BENCH_KEEP=1 leaves it running).
#
# The data: one operator, 4 stations with the AC time-of-use plan (valley
# until 08:00, then flat), BENCH_PILES (10,000) registered AC piles of 7 kW
# with one gun, a member whose card the piles start with.  Each round, in a
# fresh database made from that template, for each rate of BENCH_RATES
# (default "20000": MeterValues due a second; 0 = each pile sends its next
# sample as soon as the previous one is answered, the capacity):
#   1. evcharge-bridge on loopback with its defaults (BENCH_BRIDGE_ARGS adds
#      flags, e.g. "--flush-ms 50") and --metrics;
#   2. ocppload: every pile connects, boots, says Available and stays idle
#      3 s (the bridge's VmRSS is read before and then: memory per idle
#      connection); then Preparing, StartTransaction (yesterday 07:45 in
#      Shanghai), Charging; then BENCH_SAMPLES (60) MeterValues each, 15 s
#      apart in simulated time, time compressed so that the piles are due
#      to send the rate; then StopTransaction, Finishing and Available a
#      minute later, which ends each session and makes its bill.  It
#      reports MeterValues answered a second, the time from each
#      transaction message to its CALLRESULT, the lag behind the schedule,
#      the CPU of the bridge, the database (postmaster, children, reaped
#      children) and itself over the MeterValues, and the bridge's rows per
#      flush and flush time (from --metrics);
#   3. checks: the rows in evcharge.heartbeat from MeterValues (power_w set)
#      equal the MeterValues answered, nothing quarantined, one bill per
#      pile with the energy the pile metered and no anomaly codes;
#   4. the ceiling: every heartbeat row the bridge wrote, in the order it
#      wrote them (received_at), into a fresh copy of the template with ONE
#      server-side COPY, timed (rows/s), and the same rows checked in.
# The YKC round (BENCH_PROTOCOLS, default "ocpp ykc": both, side by side)
# is the same load from the same piles logging in with their YKC numbers
# (ykc_pile): login, idle and plugged real-time data (0x13), the charge's
# real-time data, each sample a 0x13 and a heartbeat 0x03 (0x13 has no
# answer in the protocol: the heartbeat's 0x04 is the latency measured),
# the transaction record 0x3B (answered 0x40 after commit) with the pile's
# energy per class, then plugged and idle.  YKC real-time data carries no
# time (the bridge stamps it), so a YKC charge runs in real time: its
# energy is 6,992 W for the seconds it lasts, and its record is checked
# against the bill like a StopTransaction.
# BENCH_ROUNDS (3) rounds; prints every round and the medians.
# BENCH_PERF=1 adds 10 s of perf's profile of the bridge in round 1.  About 2
# minutes a round and rate at the defaults on 2 quiet cores.
source "$(dirname "$0")/../scripts/lib.sh"

PILES=${BENCH_PILES:-10000}
SAMPLES=${BENCH_SAMPLES:-60}
ROUNDS=${BENCH_ROUNDS:-3}
read -r -a RATES <<< "${BENCH_RATES:-20000}"
read -r -a PROTOCOLS <<< "${BENCH_PROTOCOLS:-ocpp ykc}"
read -r -a BRIDGE_ARGS <<< "${BENCH_BRIDGE_ARGS:-}"
TPL=bench_bridge_tpl
RUN=bench_bridge_run
CEIL=bench_bridge_ceiling
PREFIX=442000001200001			# pile ids: region 442000, operator 0012, AC (01), serial 5 digits
YKC_PREFIX=320102000			# their YKC numbers: these 9 digits and the same serial
CARD=1234567890123456

[ "$PILES" -ge 1 ] && [ "$PILES" -le 99999 ] || die "BENCH_PILES must be 1 to 99999"
[ "$SAMPLES" -ge 1 ] || die "BENCH_SAMPLES must be at least 1"

LIB="$($PG_CONFIG --pkglibdir)/evcharge.so"
BRIDGE="$($PG_CONFIG --bindir)/evcharge-bridge"
if [ ! -f "$LIB" ] || [ ! -x "$BRIDGE" ]; then
	say "evcharge or evcharge-bridge is not installed: installing this checkout"
	install_deps
	build_install
fi
lib_sum() { md5sum "$LIB" "$BRIDGE" | md5sum | cut -c1-12; }
LIB_AT_START=$(lib_sum)

WORK=$(mktemp -d /tmp/evcharge-brbench-XXXX)
chmod 755 "$WORK"
bridge_pid=
cleanup() {
	[ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept: cluster brbench (PGHOST=$PGHOST PGPORT=$PGPORT), databases $TPL, $RUN; logs in $WORK"
		return
	fi
	cluster_down brbench
	rm -rf "$WORK"
}
trap cleanup EXIT

say "building the load generator"
make -s -C "$EV_ROOT/bench/ocppload" BIN="$WORK/ocppload" >/dev/null
GEN=$WORK/ocppload

# A descriptor per connection, for the bridge (and the generator, which
# raises its own limit too).
want_fds=$((PILES + 2048))
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
	ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
[ "$(ulimit -n)" -ge $((PILES + 64)) ] || die "only $(ulimit -n) file descriptors for $PILES connections: raise the hard limit (ulimit -Hn)"

cluster_up brbench evcharge_brbench
# Checkpoints spread as on a tuned server, and one before each load.
pq -d postgres -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
	-c "SELECT pg_reload_conf()" >/dev/null
DATADIR=$(pq -d postgres -A -t -c "SHOW data_directory")
PM_PID=$(as_owner head -1 "$DATADIR/postmaster.pid")

# The simulated day: yesterday, from 07:45 in Shanghai (over the 08:00
# valley -> flat boundary), so that no sample is in the future.
DAY=$(TZ=Asia/Shanghai date -d yesterday +%F)
START=$(date -u -d "$DAY 07:45:00 +0800" +%Y-%m-%dT%H:%M:%SZ)

say "making the template database $TPL: $PILES piles"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
	-c "DROP DATABASE IF EXISTS $CEIL WITH (FORCE)" -c "DROP DATABASE IF EXISTS $TPL WITH (FORCE)" \
	-c "CREATE DATABASE $TPL"
pq -d "$TPL" -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE"
pq -d "$TPL" -v piles="$PILES" -v prefix="$PREFIX" -v ykc_prefix="$YKC_PREFIX" -v card="$CARD" -v day="$DAY" <<'SQL'
SET client_min_messages = warning;
\o /dev/null
INSERT INTO evcharge.operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO evcharge.station (station_id, operator_id, name)
SELECT s, 12, 'station ' || s FROM generate_series(1, 4) s;
INSERT INTO evcharge.station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
       '[2020-01-01,)', 'AC 2020'
  FROM generate_series(1, 4) s;
INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w)
SELECT (:'prefix' || lpad(n::text, 5, '0'))::evcharge.pile_id, (n - 1) % 4 + 1, 1, 7000
  FROM generate_series(1, :piles) n;
INSERT INTO evcharge.ykc_pile (ykc_no, pile_id)
SELECT :'ykc_prefix' || lpad(n::text, 5, '0'), (:'prefix' || lpad(n::text, 5, '0'))::evcharge.pile_id
  FROM generate_series(1, :piles) n;
INSERT INTO evcharge.member (member_id, operator_id, card_no) VALUES (501, 12, :'card');
SELECT evcharge.maintain_partitions(:'day'::date + time '12:00');
SELECT evcharge.maintain_partitions(now());
-- A network that has been running (as bench/pipeline.sh has it): every gun
-- has a live state (idle, the evening before) and 5 past sessions, analysed,
-- so that the planner sees tables of their real size; in an empty database
-- the first flushes after 10,000 new sessions were planned for empty tables
-- and one took 20 s.
INSERT INTO evcharge.gun_state (gun, station_id, status, online, last_heartbeat, meter_wh, fault_code, updated_at)
SELECT evcharge.gun_id(p.pile_id, 1), p.station_id, 'idle', true, (:'day'::date - 1) + time '20:00',
       1000000 + (evcharge.serial_no(p.pile_id) - 1) * 37, 0, (:'day'::date - 1) + time '20:00'
  FROM evcharge.pile p;
INSERT INTO evcharge.charge_session (order_no, gun, station_id, channel, state, created_at, started_at,
	charging_ended_at, occupied_until, last_ts, first_meter_wh, high_meter_wh, wh_by_class, running_total, updated_at)
SELECT 'HIST-' || g.gun::text || '-' || d, g.gun, g.station_id, 'card', 'ended', st, st, st + interval '1 hour',
       st + interval '70 minutes', st + interval '70 minutes', 800000 + d * 7000, 807000 + d * 7000,
       '{0,0,7000,0}', 7.00, st + interval '70 minutes'
  FROM evcharge.gun_state g, generate_series(1, 5) d,
       LATERAL (SELECT (:'day'::date - d) + time '10:00' AS st) x;
ANALYZE;
SQL

# round_rate ROUND RATE PROTOCOL: one bridge run and its ceiling; appends a
# line of key=value figures to $WORK/results.
round_rate() {
	local round=$1 rate=$2 proto=$3 port mport yport url tag out gen_pid res mv_rows hb_rows q bills bad expect_wh secs ceil_rows
	pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
		-c "CREATE DATABASE $RUN TEMPLATE $TPL"
	pq -d "$RUN" -c "CHECKPOINT" >/dev/null
	port=18480
	while ! port_free "$port"; do port=$((port + 1)); done
	mport=$((port + 1))
	while ! port_free "$mport"; do mport=$((mport + 1)); done
	yport=$((mport + 1))
	while ! port_free "$yport"; do yport=$((yport + 1)); done
	tag=$round-$rate-$proto
	# Both listeners, as a network of mixed piles runs it; the round's piles use one.
	"$BRIDGE" --db "host=$PGHOST port=$PGPORT user=postgres dbname=$RUN" --ocpp "127.0.0.1:$port" \
		--ykc "127.0.0.1:$yport" --metrics "127.0.0.1:$mport" --bridge-id "bench-$tag" "${BRIDGE_ARGS[@]}" \
		2> "$WORK/bridge-$tag.log" &
	bridge_pid=$!
	for _ in $(seq 100); do port_free "$port" || port_free "$yport" || break; sleep 0.1; done
	{ port_free "$port" || port_free "$yport"; } && { tail "$WORK/bridge-$tag.log" >&2; die "the bridge did not start"; }
	sleep 0.5
	out=$WORK/gen-$tag.out
	if [ "$proto" = ykc ]; then url="tcp://127.0.0.1:$yport"; else url="ws://127.0.0.1:$port/ocpp"; fi
	"$GEN" --url "$url" --ykc-prefix "$YKC_PREFIX" --piles "$PILES" --samples "$SAMPLES" --rate "$rate" \
		--start "$START" --pile-prefix "$PREFIX" --id-tag "$CARD" --bridge-pid "$bridge_pid" --db-pid "$PM_PID" \
		--metrics "127.0.0.1:$mport" > "$out" 2> "$out.err" &
	gen_pid=$!
	if [ "${BENCH_PERF:-0}" = 1 ] && [ "$round" = 1 ] && command -v perf >/dev/null; then
		# 10 s of the bridge's profile during the MeterValues.
		while kill -0 "$gen_pid" 2>/dev/null && ! grep -q '^phase 2' "$out"; do sleep 0.5; done
		sleep 3
		perf record -q -o "$WORK/perf.data" -p "$bridge_pid" -- sleep 10 >/dev/null 2>&1 || true
		say "the bridge's profile, 10 s of the MeterValues (round $round, rate $rate):"
		perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep '%' | head -25 >&2 || true
	fi
	if ! wait "$gen_pid"; then
		cat "$out" >&2
		head -20 "$out.err" >&2
		say "the bridge's log, less connections, boots and flushes:"
		grep -v -E 'connected from|disconnected \(|flush: |BootNotification: ' "$WORK/bridge-$tag.log" | tail -20 >&2
		die "the load generator failed (round $round, rate $rate, $proto)"
	fi
	sed 's/^/    /' "$out" | grep -v RESULT >&2
	kill -TERM "$bridge_pid"
	wait "$bridge_pid" || die "the bridge did not stop cleanly (round $round)"
	bridge_pid=
	res=$(grep '^RESULT ' "$out" | cut -d' ' -f2-)
	get() { echo "$res" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }

	# What was answered is committed, and the pipeline made the bills.
	if [ "$proto" = ykc ]; then
		# Every sample a charging row, and the charge's first real-time data one more.
		mv_rows=$(pq -d "$RUN" -A -t -c "SELECT count(*) - $PILES FROM evcharge.heartbeat WHERE status = 'charging'")
	else
		mv_rows=$(pq -d "$RUN" -A -t -c "SELECT count(*) FROM evcharge.heartbeat WHERE power_w IS NOT NULL")
	fi
	[ "$mv_rows" -eq "$(get mv_answered)" ] ||
		die "round $round ($proto): $(get mv_answered) samples answered, $mv_rows rows of samples in evcharge.heartbeat"
	hb_rows=$(pq -d "$RUN" -A -t -c "SELECT count(*) FROM evcharge.heartbeat")
	q=$(pq -d "$RUN" -A -t -c "SELECT count(*) FROM evcharge.quarantine")
	[ "$q" = 0 ] || die "round $round: $q heartbeats quarantined"
	read -r bills bad expect_wh < <(pq -d "$RUN" -A -t -F ' ' -c "
		SELECT count(*), count(*) FILTER (WHERE b.anomalies::text <> '' OR b.energy_wh <> t.meter_stop_wh - t.meter_start_wh),
		       sum(t.meter_stop_wh - t.meter_start_wh)
		  FROM evcharge.bill b JOIN evcharge.ocpp_transaction t USING (order_no)")
	[ "$bills" = "$PILES" ] && [ "$bad" = 0 ] ||
		die "round $round ($proto): $bills bills for $PILES piles, $bad with anomaly codes or the wrong energy"

	# The ceiling: the same rows in one COPY into a fresh copy of the template.
	pq -d "$RUN" -c "\\copy (SELECT gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, fault_code, order_no, received_at FROM evcharge.heartbeat ORDER BY received_at, ts) TO '$WORK/hb.tsv'"
	chmod 644 "$WORK/hb.tsv"
	pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $CEIL WITH (FORCE)" \
		-c "CREATE DATABASE $CEIL TEMPLATE $TPL"
	pq -d "$CEIL" -c "CHECKPOINT" >/dev/null
	secs=$(pq -d "$CEIL" -A -t <<-SQL
		SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
		COPY evcharge.heartbeat (gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, fault_code, order_no, received_at) FROM '$WORK/hb.tsv';
		SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3);
	SQL
	)
	ceil_rows=$(pq -d "$CEIL" -A -t -c "SELECT count(*) FROM evcharge.heartbeat")
	[ "$ceil_rows" = "$hb_rows" ] || die "round $round: the ceiling COPY stored $ceil_rows of $hb_rows rows"
	q=$(pq -d "$CEIL" -A -t -c "SELECT count(*) FROM evcharge.quarantine")
	[ "$q" = 0 ] || die "round $round: $q heartbeats quarantined by the ceiling COPY"
	pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE $CEIL WITH (FORCE)"
	rm -f "$WORK/hb.tsv"

	echo "round=$round rate=$rate $res mv_rows=$mv_rows hb_rows=$hb_rows bills=$bills energy_wh=$expect_wh" \
		"ceiling_s=$secs ceiling_rows_per_s=$(awk -v r="$hb_rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')" \
		>> "$WORK/results"
}

: > "$WORK/results"
for round in $(seq "$ROUNDS"); do
	for rate in "${RATES[@]}"; do
		for proto in "${PROTOCOLS[@]}"; do
			say "round $round, rate $rate, $proto ($PILES piles x $SAMPLES samples)"
			round_rate "$round" "$rate" "$proto"
			line=$(tail -1 "$WORK/results")
			awk -v line="$line" 'BEGIN {
				n = split(line, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
				per = v["rss_idle_kb"] - v["rss_before_kb"]
				printf "==> round %s rate %s %s: %s samples/s into committed rows (%s rows), answer p50 %s ms p99 %s ms; " \
				       "ceiling (one COPY of %s rows) %s rows/s; %.2f KiB per idle connection; " \
				       "CPU over %.1f s: bridge %.0f%%, database %.0f%%, generator %.0f%% of a core; %s rows per flush, %s ms per flush\n",
				       v["round"], v["rate"], v["protocol"], v["mv_per_s"], v["mv_rows"], v["mv_p50_ms"], v["mv_p99_ms"],
				       v["hb_rows"], v["ceiling_rows_per_s"], per / v["piles"],
				       v["cpu_span_s"], 100 * v["cpu_bridge_s"] / v["cpu_span_s"], 100 * v["cpu_db_s"] / v["cpu_span_s"],
				       100 * v["cpu_gen_s"] / v["cpu_span_s"], v["rows_per_flush"], v["flush_ms"]
			}' >&2
		done
	done
done
[ "$(lib_sum)" = "$LIB_AT_START" ] || die "the installed evcharge or evcharge-bridge changed during the run: run it again"

# Medians per rate and protocol, side by side.
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# fig RATE PROTOCOL KEY: the median of KEY (a RESULT key or a derived one) over the rounds.
fig() {
	awk -v r="$1" -v pr="$2" -v what="$3" '{ delete v; for (i = 1; i <= NF; i++) { split($i, p, "="); v[p[1]] = p[2] }
		if (v["rate"] != r || v["protocol"] != pr) next
		if (what == "kb_conn") printf "%.2f\n", (v["rss_idle_kb"] - v["rss_before_kb"]) / v["piles"]
		else if (what == "kb_conn_end") printf "%.2f\n", (v["rss_end_kb"] - v["rss_before_kb"]) / v["piles"]
		else if (what ~ /^start_/ && v["protocol"] == "ykc") next
		else if (what == "ratio") printf "%.3f\n", v["mv_per_s"] / v["ceiling_rows_per_s"]
		else if (what ~ /^cpu_(bridge|db|gen|bridge_main|bridge_writer)$/) printf "%.1f\n", 100 * v[what "_s"] / v["cpu_span_s"]
		else if (what == "cpu_total") printf "%.1f\n", 100 * (v["cpu_bridge_s"] + v["cpu_db_s"] + v["cpu_gen_s"]) / v["cpu_span_s"]
		else print v[what]
	}' "$WORK/results" | median
}
# row LABEL KEY...: one line, a column per protocol (keys joined by " / ").
row() {
	local label=$1 pr k cell line=""
	shift
	for pr in "${PROTOCOLS[@]}"; do
		cell=""
		for k in "$@"; do cell="${cell:+$cell / }$(fig "$rate" "$pr" "$k")"; done
		line="$line$(printf '%-26s' "$cell")"
	done
	printf '  %-50s %s\n' "$label" "$line"
}
echo
echo "evcharge-bridge, $PILES piles x $SAMPLES samples on loopback, $(nproc) cores; medians of $ROUNDS round(s)" \
	"(bridge flags: ${BENCH_BRIDGE_ARGS:-defaults})"
echo "  OCPP: a sample is a MeterValues, answered after commit.  YKC: a real-time data frame (0x13, unanswered)"
echo "  and a heartbeat (0x03, answered 0x04 by the bridge at once); its record 0x3B is answered after commit."
for rate in "${RATES[@]}"; do
	if [ "$rate" = 0 ]; then label="as fast as answered"; else label="$rate due a second"; fi
	echo "samples $label:"
	printf '  %-50s %s\n' "" "$(for pr in "${PROTOCOLS[@]}"; do printf '%-26s' "$pr"; done)"
	row "samples/s into committed rows" mv_per_s
	row "ceiling: the same rows in one COPY, rows/s" ceiling_rows_per_s
	row "bridge / ceiling" ratio
	row "answer to a sample p50 / p99 / max, ms" mv_p50_ms mv_p99_ms mv_max_ms
	row "start (OCPP StartTransaction) p50 / p99, ms" start_p50_ms start_p99_ms
	row "stop (StopTransaction; YKC record) p50 / p99, ms" stop_p50_ms stop_p99_ms
	row "lag behind the schedule p50 / p99, ms" lag_p50_ms lag_p99_ms
	row "bridge memory per idle connection, KiB" kb_conn
	row "  after the run, connections open, KiB" kb_conn_end
	row "CPU % of a core: bridge / database / generator" cpu_bridge cpu_db cpu_gen
	row "  the bridge's main / writer thread" cpu_bridge_main cpu_bridge_writer
	row "bridge flush (--metrics): rows / ms per flush" rows_per_flush flush_ms
done
