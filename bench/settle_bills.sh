#!/usr/bin/env bash
# bench/settle_bills.sh: how many bills a second the settle job settles.
#
# BENCH_BILLS (default 10,000) final bills over BENCH_WALLETS (default 100)
# member wallets that many bills share, in the private cluster
# .cluster/sbills.  Uses the evcharge installed system-wide (it does not
# build or install it): run it under the install lock (flock
# /tmp/evcharge.lock bench/settle_bills.sh).
#
# The data: one operator, one station, one pile, BENCH_WALLETS members, each
# wallet topped up; BENCH_BILLS sessions (n of member n % wallets + 1) with
# their bills written final directly (the pipeline that makes them is
# measured by bench/pipeline.sh; here only their settlement is), 2,000 to
# 3,499 Wh at 0.80 + 0.45 yuan/kWh, some with an occupancy fee and a coupon
# discount so that every revenue line moves; one bill settled first, so the
# revenue accounts exist.
#
# Per run (BENCH_REPS, default 3), each on a fresh copy of the template:
#   job         SELECT settle_bills(): the settle job, one call, one
#               transaction (commit and its deferred checks included)
#   per bill    SELECT count(settle_bill(order_no)) over the same bills in
#               one transaction: the per-bill path settle_bills took before
#               it posted set-based, the in-process reference
# and checks the books after each: verify_ledger() empty, every bill
# settled and charged to its wallet exactly its total, each wallet's
# balance its top-up less its bills.  Prints bills/s of each, the medians
# and their ratio.  Exits 1 if a check fails.  Stops the cluster when done
# (BENCH_KEEP=1 leaves it running).
source "$(dirname "$0")/../scripts/lib.sh"

BILLS=${BENCH_BILLS:-10000}
WALLETS=${BENCH_WALLETS:-100}
REPS=${BENCH_REPS:-3}
TPL=bench_bills_tpl
RUN=bench_bills_run

cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept: cluster sbills (PGHOST=$PGHOST PGPORT=$PGPORT), database $RUN"
		return
	fi
	cluster_down sbills
}
trap cleanup EXIT
cluster_up sbills evcharge_sbills

say "making the template database $TPL ($BILLS final bills over $WALLETS wallets)"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
	-c "DROP DATABASE IF EXISTS $TPL WITH (FORCE)" -c "CREATE DATABASE $TPL"
pq -d "$TPL" -v bills="$BILLS" -v wallets="$WALLETS" <<'SQL'
SET client_min_messages = warning;
\o /dev/null
CREATE EXTENSION evcharge CASCADE;
SET timezone = 'Asia/Shanghai';
INSERT INTO evcharge.operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO evcharge.station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot');
INSERT INTO evcharge.station_tariff (station_id, current_type, tariff, valid, name)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w, firmware)
VALUES ('44200000120000100001', 1, 9, 7000, 'AC-2.3.1');
INSERT INTO evcharge.member (member_id, operator_id) SELECT m, 12 FROM generate_series(1, :wallets) m;
SELECT evcharge.member_wallet(m) FROM generate_series(1, :wallets) m;
SELECT evcharge.top_up(evcharge.member_wallet(m), 100000.00, 'SETUP-' || m) FROM generate_series(1, :wallets) m;
INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, channel, state, created_at, started_at,
	charging_ended_at, occupied_until, last_ts)
SELECT 'B' || lpad(n::text, 7, '0'), evcharge.gun_id('44200000120000100001', n % 9 + 1), 1, n % :wallets + 1,
       'app', 'ended', t, t, t + interval '30 min', t + interval '40 min', t + interval '40 min'
FROM generate_series(0, :bills) n,
     LATERAL (SELECT '2026-11-25 00:00+08'::timestamptz + n * interval '20 s' AS t) x;
-- The bills, as finalise_bill writes them: fees truncated to the fen.
INSERT INTO evcharge.bill (order_no, gun, station_id, member_id, channel, started_at, ended_at, occupied_until,
	energy_wh, wh_by_class, energy_fee, service_fee, occupancy_fee, discount, total, applied, energy_source,
	finalised_at)
SELECT cs.order_no, cs.gun, 1, cs.member_id, 'app', cs.started_at, cs.charging_ended_at, cs.occupied_until,
       f.wh, ARRAY[0, 0, f.wh, 0]::bigint[], f.e, f.s, f.o, f.d, f.e + f.s + f.o - f.d, '{}', 'pile',
       cs.charging_ended_at
FROM evcharge.charge_session cs,
     LATERAL (SELECT 2000 + substr(cs.order_no, 2)::int % 1500 AS wh) w,
     LATERAL (SELECT w.wh, trunc(w.wh * 0.8 / 1000, 2) AS e, trunc(w.wh * 0.45 / 1000, 2) AS s,
                     CASE WHEN substr(cs.order_no, 2)::int % 5 = 0 THEN 1.50 ELSE 0 END AS o,
                     CASE WHEN substr(cs.order_no, 2)::int % 7 = 0 THEN 0.30 ELSE 0 END AS d) f;
-- Opens the revenue accounts: after the wallets and the provider's.
SELECT evcharge.settle_bill('B0000000');
VACUUM ANALYZE;
SQL

# The books after a run: problems of the ledger, bills not charged exactly
# their total to their wallet, wallets whose balance is not 100,000 less
# their bills.
check_books() {
	pq -d "$RUN" -A -t -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM evcharge.verify_ledger()),
       (SELECT count(*) FROM evcharge.bill b
         WHERE b.state <> 'settled'
            OR b.total IS DISTINCT FROM (SELECT sum(e.amount) FROM evcharge.ledger_txn t
                                         JOIN evcharge.ledger_entry e USING (txn_id)
                                         WHERE t.kind = 'bill' AND t.idem_key = b.order_no
                                           AND e.account_id = evcharge.account_of(12, 'member_wallet', b.member_id))),
       (SELECT count(*) FROM evcharge.account a
         WHERE a.kind = 'member_wallet'
           AND a.balance <> 100000.00 - (SELECT coalesce(sum(b.total), 0) FROM evcharge.bill b WHERE b.member_id = a.owner_id))
SQL
}

RESULTS=$(mktemp /tmp/evcharge-sbills-XXXX)
FAILED=""
for rep in $(seq 1 "$REPS"); do
	for way in job perbill; do
		pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
			-c "CREATE DATABASE $RUN TEMPLATE $TPL"
		pq -d "$RUN" -c "CHECKPOINT" -c "SELECT count(*) FROM evcharge.bill" >/dev/null
		if [ "$way" = job ]; then
			sql="SELECT settled FROM evcharge.settle_bills()"
		else
			sql="SELECT count(evcharge.settle_bill(b.order_no)) FROM (SELECT b.order_no FROM evcharge.bill b
			     WHERE b.state = 'final' ORDER BY b.finalised_at, b.order_no) b"
		fi
		t0=$(date +%s.%N)
		n=$(pq -d "$RUN" -A -t -c "$sql")
		t1=$(date +%s.%N)
		# shellcheck disable=SC2046
		set -- $(check_books)
		rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
		echo "  run $rep, $way: $n bills in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s, $rate bills/s; books: $1 ledger problems, $2 bills charged wrongly, $3 wallets off"
		if [ "$n" -ne "$BILLS" ] || [ "$1" -ne 0 ] || [ "$2" -ne 0 ] || [ "$3" -ne 0 ]; then
			FAILED="$FAILED; run $rep $way: $n of $BILLS settled, books $1/$2/$3"
		fi
		printf '%s\t%s\n' "$way" "$rate" >> "$RESULTS"
	done
done

say "summary ($BILLS bills over $WALLETS wallets, $REPS runs)"
med() { awk -F'\t' -v w="$1" '$1 == w { print $2 }' "$RESULTS" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
runs() { awk -F'\t' -v w="$1" '$1 == w { print $2 }' "$RESULTS" | paste -sd' '; }
job=$(med job)
per=$(med perbill)
echo "settle_bills(): median $job bills/s (runs: $(runs job))"
echo "settle_bill() per bill: median $per bills/s (runs: $(runs perbill))"
awk -v a="$job" -v b="$per" 'BEGIN { printf "ratio: %.1fx\n", a / b }'
rm -f "$RESULTS"
if [ -n "$FAILED" ]; then
	die "checks failed${FAILED}"
fi
echo "all checks passed"
