#!/usr/bin/env bash
# bench/pipeline.sh: heartbeats per second through the whole pipeline.
#
# Uses the evcharge installed system-wide (it does not build or install) and
# the private cluster .cluster/pbench.  The data: 10,000 guns (5,000
# registered AC piles of 7 kW, two guns each, at 4 stations with time-of-use
# plans; each gun already has a live state and 5 past sessions), 100 samples
# per gun 15 s apart from 2026-11-20 07:50 (Shanghai), over the 08:00 valley
# -> flat boundary and over midnight UTC (two daily partitions): 1,000,000
# heartbeats in timestamp order, interleaved across guns, as a loader would
# send them (every 10,000 rows in a row hold one sample of each gun).  Made
# once with SQL into a file in a temporary directory the server can read;
# every load reads that file, or its pieces, with a server-side COPY ... FROM.
#
# Loads, each into a fresh database made from one template, timed with
# clock_timestamp() around the COPYs in one psql session (autocommit: every
# COPY commits, as a bridge's batches would), for each batching of
# BENCH_BATCH_ROWS rows per COPY (default "1000000 100000 10000": one COPY of
# all, 10 of 100,000, 100 of 10,000):
#   (a)  plain:      a plain table with the same columns and only the same
#                    (gun, ts) index, no trigger, not partitioned;
#   (b0) no trigger: evcharge.heartbeat with its trigger disabled
#                    (partitions + index: what the log costs by itself);
#   (b)  pipeline:   evcharge.heartbeat, the C statement-level trigger:
#                    quarantine, gun_state, faults, offline ends, sessions;
#   (c)  PL/pgSQL:   bench_ref.heartbeat_ref with the row trigger of
#                    bench/reference/pipeline_plpgsql.sql, on the first
#                    BENCH_PLPGSQL_ROWS rows only (default 100,000; one COPY,
#                    and COPYs of 10,000), its rate extrapolated; then
#   (b') pipeline:   the same rows into evcharge.heartbeat in the same
#                    database, and the two results compared.
# (a), (b0) and (b) are repeated BENCH_REPS times (default 3), alternating;
# medians are reported.  After every (b) the result is checked: 1,000,000
# rows in the log, none quarantined, 10,000 gun_state rows holding each
# gun's last sample, every session as the generator made it (state, times,
# meters, Wh per class = evcharge.split_energy over the session's samples,
# jumps), the past sessions untouched.  Finally one (b) of each batching
# runs with pg_stat_statements tracking the trigger's statements, to show
# where the time goes.
#
# Prints rows/s, the ratios (b)/(a), (b)/(b0), (b)/(c) and (b')/(c), and the
# guns sustained at one sample per 15 s (rows/s x 15).  Exits 1 if a check
# fails or if the installed evcharge changed during the run.  About 16
# minutes on 2 cores.  Stops the pbench cluster when done (BENCH_KEEP=1:
# leaves it running, with the databases and the data files, to look into).
source "$(dirname "$0")/../scripts/lib.sh"

BENCH_DIR="$EV_ROOT/bench"
TPL=bench_pipeline_tpl
RUN=bench_pipeline_run
REPS=${BENCH_REPS:-3}
REF_ROWS=${BENCH_PLPGSQL_ROWS:-100000}
GUNS=10000
SAMPLES=100
ROWS=$((GUNS * SAMPLES))
BATCH=10000
T0='2026-11-20 07:50:00+08'
# Rows per COPY: all in one, and batches a bridge would send.
read -r -a SIZES <<< "${BENCH_BATCH_ROWS:-1000000 100000 10000}"

if [ $((REF_ROWS % BATCH)) -ne 0 ] || [ "$REF_ROWS" -lt "$BATCH" ] || [ "$REF_ROWS" -gt "$ROWS" ]; then
	die "BENCH_PLPGSQL_ROWS must be a multiple of $BATCH between $BATCH and $ROWS"
fi
for size in "${SIZES[@]}"; do
	if ! [ "$size" -gt 0 ] 2>/dev/null || [ $((ROWS % size)) -ne 0 ]; then
		die "BENCH_BATCH_ROWS: $size does not divide $ROWS"
	fi
done
# Heartbeats more than a day ahead of now() are quarantined: the data's day
# must be in the past.
[ "$(date -u +%s)" -gt "$(date -u -d '2026-11-20 09:00:00+08' +%s)" ] ||
	die "the data are dated $T0; this machine's clock says $(date -u), before that"

# The installed library, to tell if someone reinstalls it during the run.
LIB="$($PG_CONFIG --pkglibdir)/evcharge.so"
[ -f "$LIB" ] || die "evcharge is not installed ($LIB is missing)"
lib_sum() { md5sum "$LIB" "$($PG_CONFIG --sharedir)/extension/evcharge--"*.sql | md5sum | cut -c1-12; }
LIB_AT_START=$(lib_sum)

WORK=$(mktemp -d /tmp/evcharge-pbench-XXXX)
chmod 755 "$WORK"
RESULTS="$WORK/results"
: > "$RESULTS"
cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept: cluster pbench (PGHOST=$PGHOST PGPORT=$PGPORT), databases $TPL and $RUN, data in $WORK"
		return
	fi
	cluster_down pbench
	rm -rf "$WORK"
}
trap cleanup EXIT
cluster_up pbench evcharge_pbench

# The cluster: checkpoints out of the way of the timings (CHECKPOINT is
# issued before each load instead), pg_stat_statements loaded for the
# breakdown at the end (tracking is off during the timed loads).
settings_now=$(pq -d postgres -A -t -c "SELECT current_setting('shared_preload_libraries') || '|' || current_setting('max_wal_size')")
pq -d postgres -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '1h'" \
	-c "ALTER SYSTEM SET shared_preload_libraries = 'pg_cron', 'pg_stat_statements'" \
	-c "SELECT pg_reload_conf()" >/dev/null
if [ "$settings_now" != "pg_cron, pg_stat_statements|8GB" ]; then
	say "restarting cluster pbench with pg_stat_statements"
	cluster_down pbench
	cluster_up pbench evcharge_pbench
fi
pq -d postgres -c "ALTER SYSTEM SET pg_stat_statements.track = 'none'" -c "SELECT pg_reload_conf()" >/dev/null
pq -d postgres -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
# pg_cron's launcher restarts every second while its database is missing.
if [ -z "$(pq -d postgres -A -t -c "SELECT 1 FROM pg_database WHERE datname = 'evcharge_pbench'")" ]; then
	pq -d postgres -c "CREATE DATABASE evcharge_pbench"
fi

say "making the template database $TPL and the data ($ROWS heartbeats of $GUNS guns)"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
	-c "DROP DATABASE IF EXISTS $TPL WITH (FORCE)" -c "CREATE DATABASE $TPL"
pq -d "$TPL" -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE"
pq -d "$TPL" -f "$BENCH_DIR/reference/pipeline_plpgsql.sql"
pq -d "$TPL" -v t0="$T0" -v guns="$GUNS" -v samples="$SAMPLES" <<'SQL'
SET client_min_messages = warning;
\o /dev/null
SET timezone = 'Asia/Shanghai';
-- The registry: one operator, 4 stations with the example plan for AC
-- (valley until 08:00, then flat) and one for DC, 5,000 AC piles of 7 kW
-- with two guns each, 1,250 per station.
INSERT INTO evcharge.operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO evcharge.station (station_id, operator_id, name)
SELECT s, 12, 'station ' || s FROM generate_series(1, 4) s;
INSERT INTO evcharge.station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, ct, format('00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, '
                     '19:00-22:00 peak, 22:00-24:00 flat | peak %s+0.5100, flat %s+0.5100, valley %s+0.5500',
                     round(1.03 + s / 100.0, 4), round(0.64 + s / 100.0, 4), round(0.33 + s / 100.0, 4))::evcharge.tou_tariff,
       '[2026-01-01,)', ct || ' 2026'
  FROM generate_series(1, 4) s, unnest(ARRAY['AC', 'DC']) ct;
INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w, firmware)
SELECT ('442000' || '0012' || '0' || '00' || '01' || lpad(n::text, 5, '0'))::evcharge.pile_id,
       (n - 1) % 4 + 1, 2, 7000, 'AC-2.3.1'
  FROM generate_series(1, :guns / 2) n;
-- Partitions for the data's days, for the pipeline and for the reference.
SELECT evcharge.maintain_partitions(:'t0'::timestamptz + interval '12 hours');
SELECT bench_ref.make_partitions(:'t0'::timestamptz + interval '12 hours');
-- A network that has been running: every gun has a live state (idle, an
-- hour before the data) and 5 past sessions (ended, in the days before),
-- the same in the pipeline's tables and in the reference's, analysed, so
-- that the planner sees tables of their real size.
INSERT INTO evcharge.gun_state (gun, station_id, status, online, last_heartbeat, meter_wh, fault_code, updated_at)
SELECT evcharge.gun_id(p.pile_id, k), p.station_id, 'idle', true, :'t0'::timestamptz - interval '1 hour',
       1000000 + ((evcharge.serial_no(p.pile_id) - 1) * 2 + k - 1) * 37, 0, :'t0'::timestamptz - interval '1 hour'
  FROM evcharge.pile p, generate_series(1, 2) k;
INSERT INTO evcharge.charge_session (order_no, gun, station_id, channel, state, created_at, started_at,
	charging_ended_at, occupied_until, last_ts, first_meter_wh, high_meter_wh, wh_by_class, running_total, updated_at)
SELECT 'HIST-' || g.gun::text || '-' || d, g.gun, g.station_id, 'card', 'ended', st, st, st + interval '1 hour',
       st + interval '70 minutes', st + interval '70 minutes', 900000 + d * 7000, 907000 + d * 7000,
       '{0,0,7000,0}', 7.00, st + interval '70 minutes'
  FROM evcharge.gun_state g, generate_series(1, 5) d,
       LATERAL (SELECT :'t0'::timestamptz - d * interval '1 day' AS st) x;
INSERT INTO bench_ref.gun_state_ref SELECT * FROM evcharge.gun_state;
INSERT INTO bench_ref.charge_session_ref SELECT * FROM evcharge.charge_session;
-- (a): the same columns, the same (gun, ts) index, nothing else.
CREATE SCHEMA bench_plain;
CREATE TABLE bench_plain.heartbeat (LIKE evcharge.heartbeat INCLUDING DEFAULTS);
CREATE INDEX heartbeat_gun_ts_idx ON bench_plain.heartbeat (gun, ts);

-- The heartbeats.  Gun g (0..9999) is gun g % 2 + 1 of pile g / 2 + 1; its
-- samples i = 0..99 are 15 s apart, offset by (g % 150) x 0.1 s, so the
-- guns interleave and every 10,000 rows in time order hold one sample of
-- each gun.  By g % 10: 0 idle throughout; 1 charges for samples 0-59, is
-- occupied (finished, plugged) for 60-79, idle (unplugged) from 80: its
-- session ends; 2 idle 0-19, plugged 20-24, charges from 25; the others
-- charge throughout.  Charging adds 25-33 Wh per 15 s (about 7 kW) to a
-- lifetime register; 10 guns (g % 1000 = 7) jump by 5,000 Wh at sample 50,
-- which is not billed.  The pile's order number rides on charging and
-- occupied samples.
CREATE SCHEMA bench_gen;
CREATE UNLOGGED TABLE bench_gen.hb AS
SELECT evcharge.gun_id(('442000' || '0012' || '0' || '00' || '01' || lpad((g / 2 + 1)::text, 5, '0'))::evcharge.pile_id,
                       g % 2 + 1) AS gun,
       :'t0'::timestamptz + i * interval '15 s' + (g % 150) * interval '100 ms' AS ts,
       b.status,
       1000000 + g * 37 + 29 * b.steps + (7 * b.steps + g) % 5 - g % 5
         + CASE WHEN g % 1000 = 7 AND i >= 50 THEN 5000 ELSE 0 END AS meter_wh,
       CASE WHEN b.status = 'charging' THEN 6900 + (13 * i + g) % 200 ELSE 0 END AS power_w,
       (220 + (i + g) % 50 / 10.0)::numeric(7, 2) AS voltage_v,
       CASE WHEN b.status = 'charging' THEN ((6900 + (13 * i + g) % 200) / (220 + (i + g) % 50 / 10.0))::numeric(7, 2)
            ELSE 0 END AS current_a,
       CASE WHEN b.status <> 'idle' THEN (20 + b.steps / 2)::smallint END AS soc,
       0::smallint AS fault_code,
       CASE WHEN b.status IN ('charging', 'occupied') THEN 'CARD-' || lpad(g::text, 5, '0') || '-1120' END AS order_no
  FROM generate_series(0, :guns - 1) g
 CROSS JOIN generate_series(0, :samples - 1) i
 CROSS JOIN LATERAL (
	SELECT CASE g % 10
	         WHEN 0 THEN 'idle'
	         WHEN 1 THEN CASE WHEN i < 60 THEN 'charging' WHEN i < 80 THEN 'occupied' ELSE 'idle' END
	         WHEN 2 THEN CASE WHEN i < 20 THEN 'idle' WHEN i < 25 THEN 'plugged' ELSE 'charging' END
	         ELSE 'charging' END::evcharge.gun_status AS status,
	       CASE g % 10 WHEN 0 THEN 0 WHEN 1 THEN least(i, 59) WHEN 2 THEN greatest(i - 25, 0) ELSE i END AS steps) b;
CREATE INDEX ON bench_gen.hb (gun, ts);
ANALYZE bench_gen.hb;

-- What the pipeline must make of them.  Each gun's last sample; each
-- session: from the first charging sample to the first idle/plugged one
-- after it (or the last sample), its Wh per class as split_energy makes them
-- from the session's samples, the rises larger than 7 kW x dt x 1.2 + 10 Wh
-- taken out as jumps.
CREATE SCHEMA bench_pipe;
CREATE TABLE bench_pipe.last_sample AS
SELECT DISTINCT ON (gun) gun, ts, status, meter_wh FROM bench_gen.hb ORDER BY gun, ts DESC;
CREATE TABLE bench_pipe.expected AS
WITH span AS (
	SELECT s.gun, s.start,
	       (SELECT min(h.ts) FROM bench_gen.hb h
	         WHERE h.gun OPERATOR(evcharge.=) s.gun AND h.ts > s.start AND h.status IN ('idle', 'plugged')) AS stop
	  FROM (SELECT gun, min(ts) AS start FROM bench_gen.hb WHERE status = 'charging' GROUP BY gun) s
), smp AS (
	SELECT sp.gun, sp.stop, h.ts, h.meter_wh, h.status, h.order_no,
	       h.meter_wh - lag(h.meter_wh) OVER w AS rise,
	       extract(epoch FROM h.ts - lag(h.ts) OVER w) AS dt
	  FROM span sp JOIN bench_gen.hb h ON h.gun OPERATOR(evcharge.=) sp.gun
	   AND h.ts >= sp.start AND h.ts <= coalesce(sp.stop, 'infinity')
	WINDOW w AS (PARTITION BY sp.gun ORDER BY h.ts)
)
SELECT smp.gun, min(smp.order_no) AS order_no,
       CASE WHEN smp.stop IS NULL THEN 'charging' ELSE 'ended' END AS state,
       min(smp.ts) AS started_at, max(smp.ts) AS last_ts,
       min(smp.ts) FILTER (WHERE smp.status <> 'charging') AS charging_ended_at, smp.stop AS occupied_until,
       min(smp.meter_wh) AS first_meter_wh, max(smp.meter_wh) AS high_meter_wh,
       max(smp.meter_wh) - min(smp.meter_wh) AS rise_wh,
       coalesce(sum(smp.rise) FILTER (WHERE smp.rise > 7000 * smp.dt / 3600 * 1.2 + 10), 0) AS jump_wh,
       evcharge.split_energy(min(t.tariff::text)::evcharge.tou_tariff, array_agg(smp.ts ORDER BY smp.ts),
                             array_agg(smp.meter_wh ORDER BY smp.ts), 'Asia/Shanghai') AS split_wh
  FROM smp
  JOIN evcharge.pile p ON p.pile_id OPERATOR(evcharge.=) evcharge.pile(smp.gun)
  JOIN evcharge.station_tariff t ON t.station_id = p.station_id AND t.current_type = 'AC'
 GROUP BY smp.gun, smp.stop;
SQL
# In time order, as a loader sends them.
pq -d "$TPL" -c "\\copy (SELECT gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, fault_code, order_no FROM bench_gen.hb ORDER BY ts, gun) TO '$WORK/all.tsv'"
pq -d "$TPL" -c "DROP SCHEMA bench_gen CASCADE" -c "VACUUM ANALYZE"
pq -d "$TPL" -A -t <<'SQL'
SELECT format('data: %s sessions expected (%s ending), %s Wh of rise, %s Wh of it in %s jumps (not billed)',
              count(*), count(*) FILTER (WHERE state = 'ended'), sum(rise_wh), sum(jump_wh),
              count(*) FILTER (WHERE jump_wh > 0))
  FROM bench_pipe.expected;
SQL
n_all=$(wc -l < "$WORK/all.tsv")
[ "$n_all" -eq "$ROWS" ] || die "the data file has $n_all rows, not $ROWS"
head -n "$REF_ROWS" "$WORK/all.tsv" > "$WORK/prefix.tsv"
# The pieces of each batch size, in order: $WORK/pSIZE/x_00000, ...
for size in "${SIZES[@]}" "$BATCH"; do
	if [ "$size" -eq "$ROWS" ] || [ -d "$WORK/p$size" ]; then continue; fi
	mkdir "$WORK/p$size"
	(cd "$WORK/p$size" && split -l "$size" -d -a 5 ../all.tsv x_)
	chmod 755 "$WORK/p$size"
done
chmod 644 "$WORK"/*.tsv "$WORK"/p*/x_*
pieces() {
	if [ "$1" -eq "$ROWS" ]; then echo "$WORK/all.tsv"; else printf '%s\n' "$WORK/p$1"/x_*; fi
}
mode_of() { echo "$((ROWS / $1))x$1"; }
mapfile -t REF_PIECES < <(pieces "$BATCH" | head -n $((REF_ROWS / BATCH)))
say "data file: $n_all rows, $(du -m "$WORK/all.tsv" | cut -f1) MB, and its pieces of ${SIZES[*]} rows, in $WORK"

fresh_db() {
	pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
		-c "CREATE DATABASE $RUN TEMPLATE $TPL"
}

# timed_load TABLE FILE...: the COPYs of the files into TABLE in one psql
# session, each its own transaction; prints the seconds they took together.
timed_load() {
	local table=$1 f script="$WORK/load.sql"
	shift
	{
		echo "CHECKPOINT;"
		printf '%s\n' 'SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset'
		for f in "$@"; do
			printf "COPY %s (gun, ts, status, meter_wh, power_w, voltage_v, current_a, soc, fault_code, order_no) FROM '%s';\n" "$table" "$f"
		done
		printf '%s\n' 'SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3) AS secs \gset' '\echo :secs'
	} > "$script"
	pq -d "$RUN" -A -t -f "$script"
}

# record LABEL ROWS SECONDS
record() {
	printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"
	printf '  %-28s %8s rows %8s s %9.0f rows/s\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"
}

# check_pipeline ROWS VERBOSE: the C pipeline's result against the generator's.
check_pipeline() {
	local out
	out=$(pq -d "$RUN" -A -t -F ' ' -v rows="$1" <<'SQL'
WITH cs AS (
	-- the sessions of the data: the 50,000 past ones must stay as they were
	SELECT * FROM evcharge.charge_session WHERE order_no NOT LIKE 'HIST-%'
), s AS (
	SELECT e.order_no, e.state AS want_state, cs.state, e.jump_wh AS want_jump, cs.jump_wh,
	       e.rise_wh - e.jump_wh AS want_billed,
	       (SELECT sum(w) FROM unnest(cs.wh_by_class) w) AS billed,
	       e.split_wh, cs.wh_by_class,
	       e.started_at = cs.started_at AND e.last_ts = cs.last_ts
	         AND e.charging_ended_at IS NOT DISTINCT FROM cs.charging_ended_at
	         AND e.occupied_until IS NOT DISTINCT FROM cs.occupied_until
	         AND e.first_meter_wh = cs.first_meter_wh AND e.high_meter_wh = cs.high_meter_wh AS times_ok
	  FROM bench_pipe.expected e FULL JOIN cs ON cs.order_no = e.order_no
)
SELECT (SELECT count(*) FROM evcharge.heartbeat) AS log_rows,
       (SELECT count(*) FROM evcharge.quarantine) AS quarantined,
       (SELECT count(*) FROM evcharge.gun_state) AS gun_states,
       (SELECT count(*) FROM bench_pipe.last_sample l FULL JOIN evcharge.gun_state g ON g.gun OPERATOR(evcharge.=) l.gun
         WHERE g.last_heartbeat IS DISTINCT FROM l.ts OR g.status IS DISTINCT FROM l.status
            OR g.meter_wh IS DISTINCT FROM l.meter_wh OR NOT g.online) AS gun_state_wrong,
       (SELECT count(*) FROM cs) AS sessions,
       (SELECT count(*) FROM bench_pipe.expected) AS sessions_expected,
       count(*) FILTER (WHERE state IS DISTINCT FROM want_state OR NOT coalesce(times_ok, false)
                           OR jump_wh IS DISTINCT FROM want_jump OR billed IS DISTINCT FROM want_billed
                           OR (want_jump = 0 AND wh_by_class IS DISTINCT FROM split_wh)) AS sessions_wrong,
       sum(billed) AS billed_wh, sum(want_billed) AS expected_wh,
       sum(jump_wh) AS jump_wh, sum(want_jump) AS expected_jump_wh,
       (SELECT array_agg(w ORDER BY k) FROM (SELECT k, sum(cs.wh_by_class[k]) AS w
          FROM cs, generate_series(1, 4) k GROUP BY k) x) AS wh_by_class,
       (SELECT count(*) FILTER (WHERE state = 'ended') || '/' || count(*) FILTER (WHERE state = 'charging')
          FROM cs) AS ended_charging,
       (SELECT count(*) FROM evcharge.charge_session h
         WHERE h.order_no LIKE 'HIST-%' AND (h.state <> 'ended' OR h.last_ts >= '2026-11-20 07:50:00+08'
                                             OR h.wh_by_class <> '{0,0,7000,0}')) AS history_touched
  FROM s;
SQL
)
	# shellcheck disable=SC2086
	set -- "$1" "$2" $out
	local rows=$1 verbose=$2 log_rows=$3 quarantined=$4 gun_states=$5 gs_wrong=$6 sessions=$7 sessions_exp=$8
	local s_wrong=$9 billed=${10} billed_exp=${11} jump=${12} jump_exp=${13} split=${14} ended=${15} hist=${16}
	if [ "$verbose" = 1 ]; then
		echo "  check: $log_rows rows in heartbeat, $quarantined quarantined, $gun_states gun_state rows ($gs_wrong not holding the gun's last sample)"
		echo "         $sessions sessions (expected $sessions_exp; ended/charging $ended), $s_wrong differing from the generator's; $hist of the 50,000 past ones changed"
		echo "         billed $billed Wh (expected $billed_exp, by class {sharp,peak,flat,valley} $split), jumps $jump Wh (expected $jump_exp)"
		echo "         per charging gun: $(echo "scale=1; $billed / $sessions" | bc) Wh billed on average"
	fi
	if [ "$log_rows" -ne "$rows" ] || [ "$quarantined" -ne 0 ] || [ "$gun_states" -ne "$GUNS" ] || [ "$gs_wrong" -ne 0 ] ||
		[ "$sessions" -ne "$sessions_exp" ] || [ "$s_wrong" -ne 0 ] || [ "$hist" -ne 0 ] || [ "$billed" != "$billed_exp" ] || [ "$jump" != "$jump_exp" ]; then
		FAILED="$FAILED; pipeline result wrong ($log_rows rows, $quarantined quarantined, $gun_states gun states, $gs_wrong wrong, $sessions sessions, $s_wrong wrong, $billed/$billed_exp Wh, jumps $jump/$jump_exp)"
		echo "  CHECK FAILED" >&2
	fi
}

FAILED=""
say "timing (a) plain, (b0) evcharge.heartbeat without its trigger, (b) the pipeline: $REPS rounds"
for rep in $(seq 1 "$REPS"); do
	for size in "${SIZES[@]}"; do
		mode=$(mode_of "$size")
		mapfile -t files < <(pieces "$size")
		fresh_db
		secs=$(timed_load bench_plain.heartbeat "${files[@]}")
		record "(a) plain $mode" "$ROWS" "$secs"
		fresh_db
		pq -d "$RUN" -c "ALTER TABLE evcharge.heartbeat DISABLE TRIGGER heartbeat_ingest"
		secs=$(timed_load evcharge.heartbeat "${files[@]}")
		record "(b0) no trigger $mode" "$ROWS" "$secs"
		fresh_db
		secs=$(timed_load evcharge.heartbeat "${files[@]}")
		record "(b) pipeline $mode" "$ROWS" "$secs"
		check_pipeline "$ROWS" "$([ "$rep" = 1 ] && echo 1 || echo 0)"
	done
done

say "timing (c) PL/pgSQL row triggers on the first $REF_ROWS rows, then (b') the C pipeline on the same rows in the same database, and comparing them"
ref_modes=("1x$REF_ROWS")
[ "$REF_ROWS" -eq "$BATCH" ] || ref_modes+=("$((REF_ROWS / BATCH))x$BATCH")
for mode in "${ref_modes[@]}"; do
	if [ "$mode" = "1x$REF_ROWS" ]; then files=("$WORK/prefix.tsv"); else files=("${REF_PIECES[@]}"); fi
	fresh_db
	secs=$(timed_load bench_ref.heartbeat_ref "${files[@]}")
	record "(c) plpgsql $mode" "$REF_ROWS" "$secs"
	secs=$(timed_load evcharge.heartbeat "${files[@]}")
	record "(b') pipeline $mode" "$REF_ROWS" "$secs"
	diff=$(pq -d "$RUN" -A -t -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM bench_ref.heartbeat_ref), (SELECT count(*) FROM evcharge.heartbeat),
       (SELECT count(*) FROM bench_ref.charge_session_ref),
       (SELECT count(*) FROM bench_ref.charge_session_ref r FULL JOIN evcharge.charge_session c USING (order_no)
         WHERE (r.gun::text, r.state, r.started_at, r.charging_ended_at, r.occupied_until, r.last_ts, r.first_meter_wh,
                r.high_meter_wh, r.high_meter_at, r.wh_by_class, r.jump_wh, r.running_total)
               IS DISTINCT FROM
               (c.gun::text, c.state, c.started_at, c.charging_ended_at, c.occupied_until, c.last_ts, c.first_meter_wh,
                c.high_meter_wh, c.high_meter_at, c.wh_by_class, c.jump_wh, c.running_total)),
       (SELECT count(*) FROM bench_ref.gun_state_ref r FULL JOIN evcharge.gun_state c ON c.gun OPERATOR(evcharge.=) r.gun
         WHERE (r.station_id, r.status, r.online, r.last_heartbeat, r.current_order, r.power_w, r.soc, r.meter_wh, r.fault_code)
               IS DISTINCT FROM
               (c.station_id, c.status, c.online, c.last_heartbeat, c.current_order, c.power_w, c.soc, c.meter_wh, c.fault_code));
SQL
)
	# shellcheck disable=SC2086
	set -- $diff
	echo "  cross-check on the prefix: log $1 / $2 rows, $3 sessions, $4 differ from the C pipeline's, $5 gun states differ"
	if [ "$1" -ne "$2" ] || [ "$4" -ne 0 ] || [ "$5" -ne 0 ]; then
		FAILED="$FAILED; PL/pgSQL reference and C pipeline differ on the prefix ($mode)"
	fi
done

say "where the time goes: (b) once per batching with pg_stat_statements tracking the trigger's statements"
for size in "${SIZES[@]}"; do
	mode=$(mode_of "$size")
	mapfile -t files < <(pieces "$size")
	fresh_db
	pq -d postgres -c "ALTER DATABASE $RUN SET pg_stat_statements.track = 'all'" -c "SELECT pg_stat_statements_reset()" >/dev/null
	secs=$(timed_load evcharge.heartbeat "${files[@]}")
	b0=$(awk -F'\t' -v k="(b0) no trigger $mode" '$1 == k { n++; s += $3 } END { if (n) printf "%.1f", s / n }' "$RESULTS")
	echo "  (b) $mode with tracking: $secs s; the trigger's statements (calls, total):"
	pq -d postgres -A -t -v run="$RUN" -v secs="$secs" -v b0="$b0" <<'SQL'
WITH x AS (
	SELECT CASE
	         WHEN query LIKE 'COPY %' THEN 'COPY'
	         WHEN query LIKE 'WITH checked AS%' THEN 'IngestSql: quarantine, gun_state, faults, offline'
	         WHEN query LIKE 'SELECT b.gun::text%' THEN 'SessionSql: the batch per gun + open sessions'
	         WHEN query LIKE 'INSERT INTO evcharge.charge_session%' THEN 'SessionWriteSql: write sessions back'
	         WHEN query LIKE '%try_finalise_bill%' THEN 'SessionBillSql: bills of ended sessions'
	         ELSE 'other: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 40) END AS label,
	       sum(s.calls) AS calls, sum(s.total_exec_time) / 1000 AS sum_s
	  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
	 WHERE d.datname = :'run' AND s.total_exec_time > 50 AND s.query NOT LIKE 'CHECKPOINT%'
	 GROUP BY 1
), rest AS (
	SELECT :secs - sum(sum_s) FILTER (WHERE label <> 'COPY') AS s FROM x
)
SELECT line FROM (
	SELECT 1 AS k, -sum_s AS o, format('    %-52s %5s calls %8s s', label, calls, round(sum_s::numeric, 2)) AS line
	  FROM x WHERE label <> 'COPY'
	UNION ALL
	SELECT 2, 0, format('    %-52s %19s s', 'rest: the COPY, transition table, C code', round(s::numeric, 2)) FROM rest
	UNION ALL
	SELECT 3, 0, format('      %-50s %19s s', 'the COPY alone (trigger disabled, mean of (b0))', :'b0')
	UNION ALL
	SELECT 4, 0, format('      %-50s %19s s', 'rest - (b0): transition table + C code (noisy)', round((s - :'b0'::numeric)::numeric, 1)) FROM rest
) l ORDER BY k, o;
SQL
done
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)"

say "summary"
awk -F'\t' -v rows="$ROWS" '
	{ n[$1]++; v[$1, n[$1]] = $2 / $3 }
	END {
		for (k in n) {
			m = n[k]
			for (i = 1; i <= m; i++) a[i] = v[k, i]
			for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			med[k] = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
			lo[k] = a[1]; hi[k] = a[m]
			printf "%s\t%.0f\t%.0f\t%.0f\t%d\n", k, med[k], lo[k], hi[k], m > "/dev/stderr"
		}
	}' "$RESULTS" 2> "$WORK/medians"
print_summary() {
	local mode=$1 cmode=$2 a b0 b c bp
	a=$(awk -F'\t' -v k="(a) plain $mode" '$1 == k { print $2 }' "$WORK/medians")
	b0=$(awk -F'\t' -v k="(b0) no trigger $mode" '$1 == k { print $2 }' "$WORK/medians")
	b=$(awk -F'\t' -v k="(b) pipeline $mode" '$1 == k { print $2 }' "$WORK/medians")
	c=$(awk -F'\t' -v k="(c) plpgsql $cmode" '$1 == k { print $2 }' "$WORK/medians")
	bp=$(awk -F'\t' -v k="(b') pipeline $cmode" '$1 == k { print $2 }' "$WORK/medians")
	echo "batching $mode (COPYs x rows):"
	awk -F'\t' -v m="$mode" -v cm="$cmode" '$1 ~ (" " m "$") || $1 ~ (" " cm "$") {
		printf "  %-28s %9s rows/s  (median of %s; range %s-%s)\n", $1, $2, $5, $3, $4 }' "$WORK/medians" | sort
	echo "  (b)/(a)  = $(echo "scale=2; $b / $a" | bc)   (goal >= 0.5)"
	echo "  (b)/(b0) = $(echo "scale=2; $b / $b0" | bc)   (against the same COPY with the trigger disabled)"
	echo "  (b)/(c)  = $(echo "scale=1; $b / $c" | bc)   (goal >= 10; (c) measured on the first $REF_ROWS rows, its rate extrapolated)"
	echo "  (b')/(c) = $(echo "scale=1; $bp / $c" | bc)   (both on the same first $REF_ROWS rows)"
	echo "  guns sustained at one sample per 15 s: (b) $((b * 15)), (a) $((a * 15)), (c) $((c * 15))"
	echo "    = $(echo "scale=2; $b * 15 / 600000" | bc) x a 600,000-gun operator, $(echo "scale=2; $b * 15 / 3600000" | bc) x China's 3.6 M public points (end 2024), $(echo "scale=2; $b * 15 / 4700000" | bc) x 4.7 M (end 2025)"
}
for size in "${SIZES[@]}"; do
	if [ "$size" -ge "$REF_ROWS" ]; then
		print_summary "$(mode_of "$size")" "1x$REF_ROWS"
	else
		print_summary "$(mode_of "$size")" "$((REF_ROWS / BATCH))x$BATCH"
	fi
done
if [ "$(lib_sum)" != "$LIB_AT_START" ]; then
	FAILED="$FAILED; the installed evcharge changed during the run (someone reinstalled it): run again"
fi
if [ -n "$FAILED" ]; then
	die "checks failed${FAILED}"
fi
echo "all checks passed"
