#!/usr/bin/env bash
# bench/tariff.sh: the billing engine (split_energy + price) in C against the
# same logic in PL/pgSQL (bench/reference/tariff_plpgsql.sql).
#
# Uses the evcharge installed system-wide (it does not build or install),
# in database bench_tariff, made anew, of the private cluster .cluster/bench.
#   1. Cross-check: C and PL/pgSQL must give the same split and the same
#      money on a realistic session and on about 100 generated ones (example
#      plan, over midnight, random plans, clock changes, edge cases).  Any
#      difference: its smallest failing input is printed and the script
#      exits 1 without timing (BENCH_TIME_ANYWAY=1 times all the same).
#   2. Timing: in one psql session, n calls of split_energy + price of the
#      realistic session per implementation, n calibrated for about
#      BENCH_TARGET_S seconds (default 2) a timing; 5 rounds alternating C
#      and PL/pgSQL; prints the medians in sessions per second and C/PL/pgSQL.
# Stops the bench cluster when done.
source "$(dirname "$0")/../scripts/lib.sh"

BENCH_DIR="$EV_ROOT/bench"
DB=bench_tariff
TARGET_S=${BENCH_TARGET_S:-2}
ROUNDS=${BENCH_ROUNDS:-5}

trap 'cluster_down bench' EXIT
cluster_up bench evcharge_bench

say "creating database $DB"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
	-c "CREATE DATABASE $DB"
pq -d "$DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE"
pq -d "$DB" -f "$BENCH_DIR/reference/tariff_plpgsql.sql" -f "$BENCH_DIR/tariff_harness.sql"

say "making the sessions"
pq -d "$DB" <<'SQL'
\o /dev/null
-- The realistic session: 600 heartbeats 15 s apart (up to 0.8 s late) from
-- 13:05 to about 15:35 in Shanghai, over the 14:00 flat -> peak boundary,
-- DC power 7-60 kW with noise; two samples sent twice, one reading that
-- went backwards, three pairs arrived out of order.
SELECT setseed(0.42);
INSERT INTO bench.main_session
SELECT bench.example_plan(), 'Asia/Shanghai', s.ts, s.wh
  FROM bench.make_session('2025-06-12 13:05:00+08', 600, 15, kw_max => 60, kw_min => 7,
                          jitter_s => 0.8, n_dup => 2, n_glitch => 1, n_swap => 3) AS s;
INSERT INTO bench.cases SELECT 0, 'the benchmark session', plan, tz, ts, wh FROM bench.main_session;
SELECT bench.make_cases();
\o
SQL

pq -d "$DB" -A -t <<'SQL'
SELECT format(E'session: %s samples, %s to %s (%s), split {sharp,peak,flat,valley} Wh %s\n'
              '         %s kWh, electricity %s + service %s = %s yuan',
              cardinality(m.ts),
              to_char(min(t) AT TIME ZONE m.tz, 'YYYY-MM-DD HH24:MI:SS'),
              to_char(max(t) AT TIME ZONE m.tz, 'HH24:MI:SS'), m.tz,
              evcharge.split_energy(m.plan, m.ts, m.wh, m.tz),
              p.kwh, p.energy_fee, p.service_fee, p.total)
  FROM bench.main_session AS m,
       LATERAL evcharge.price(m.plan, evcharge.split_energy(m.plan, m.ts, m.wh, m.tz)) AS p,
       LATERAL unnest(m.ts) AS t
 GROUP BY m.plan, m.tz, m.ts, m.wh, p.kwh, p.energy_fee, p.service_fee, p.total;
SQL

say "cross-check: C against PL/pgSQL"
pq -d "$DB" <<'SQL'
CREATE TABLE bench.check_results AS
SELECT c.id, c.label, cardinality(c.ts) AS samples,
       bench.outcome('c', c.plan, c.tz, c.ts, c.wh) AS c_result,
       bench.outcome('plpgsql', c.plan, c.tz, c.ts, c.wh) AS plpgsql_result
  FROM bench.cases AS c;
SQL
ncases=$(pq -d "$DB" -A -t -c "SELECT count(*) FROM bench.check_results")
ndiff=$(pq -d "$DB" -A -t -c "SELECT count(*) FROM bench.check_results WHERE c_result IS DISTINCT FROM plpgsql_result")
nerr=$(pq -d "$DB" -A -t -c "SELECT count(*) FROM bench.check_results WHERE c_result LIKE 'error%'")
echo "cross-check: $ncases sessions, $ndiff differences ($nerr of the cases are expected errors, compared by SQLSTATE)"
if [ "$ndiff" -ne 0 ]; then
	pq -d "$DB" -A -t <<'SQL'
SELECT format(E'DIFFERENT #%s %s (%s samples)\n  C:        %s\n  PL/pgSQL: %s', id, label, samples, c_result, plpgsql_result)
  FROM bench.check_results WHERE c_result IS DISTINCT FROM plpgsql_result ORDER BY samples, id;
SQL
	say "shrinking the smallest failing case"
	pq -d "$DB" -A -t <<'SQL'
WITH f AS (
	SELECT c.* FROM bench.cases AS c JOIN bench.check_results AS r USING (id)
	 WHERE r.c_result IS DISTINCT FROM r.plpgsql_result
	 ORDER BY cardinality(c.ts), c.id LIMIT 1
), s AS (
	SELECT f.id, f.plan, f.tz, (bench.shrink(f.plan, f.tz, f.ts, f.wh)).* FROM f
)
SELECT format(E'smallest failing input (from #%s):\n  SELECT evcharge.split_energy(%L, %L, %L, %L);\n  C:        %s\n  PL/pgSQL: %s',
              id, plan, ts, wh, tz,
              bench.outcome('c', plan, tz, ts, wh), bench.outcome('plpgsql', plan, tz, ts, wh))
  FROM s;
SQL
	if [ "${BENCH_TIME_ANYWAY:-0}" != 1 ]; then
		die "C and PL/pgSQL differ on $ndiff of $ncases sessions; not timing"
	fi
fi

say "timing: $ROUNDS rounds, C and PL/pgSQL alternating, ~${TARGET_S} s each (one psql session)"
pq -d "$DB" -A -t -v target="$TARGET_S" -v rounds="$ROUNDS" <<'SQL'
CREATE TEMP TABLE timing AS SELECT * FROM bench.run_timing(:target, :rounds);
SELECT format('round %s  %-8s %7s calls  %6s s  %9s sessions/s', run,
              CASE impl WHEN 'c' THEN 'C' ELSE 'PL/pgSQL' END, calls,
              round(seconds::numeric, 3), round(per_second::numeric, 1))
  FROM timing ORDER BY run, impl;
WITH m AS (
	SELECT impl, percentile_disc(0.5) WITHIN GROUP (ORDER BY per_second) AS med,
	       min(per_second) AS lo, max(per_second) AS hi
	  FROM timing GROUP BY impl
)
SELECT format(E'C:        %s sessions/s (median of %s; range %s-%s)\n'
              'PL/pgSQL: %s sessions/s (median of %s; range %s-%s)\n'
              'C/PLpgSQL: %sx',
              round(c.med::numeric, 0), :rounds, round(c.lo::numeric, 0), round(c.hi::numeric, 0),
              round(p.med::numeric, 1), :rounds, round(p.lo::numeric, 1), round(p.hi::numeric, 1),
              round((c.med / p.med)::numeric, 1))
  FROM m AS c, m AS p WHERE c.impl = 'c' AND p.impl = 'plpgsql';
SQL
