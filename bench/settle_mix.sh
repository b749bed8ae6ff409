#!/usr/bin/env bash
# bench/settle_mix.sh: money under contention, and whether it deadlocks.
#
# pgbench with BENCH_CLIENTS (default 8) clients for BENCH_SECONDS (default
# 30) seconds, BENCH_REPS (default 3) runs, each on a fresh copy of one
# template database, in the private cluster .cluster/sbench.  Uses the
# evcharge installed system-wide (it does not build or install it): run it
# under the install lock (flock /tmp/evcharge.lock bench/settle_mix.sh).
#
# The data: one operator, one station (flat 0.80 + 0.45 yuan/kWh), one pile of
# 9 guns, 8 members whose 8 wallets every client shares, each topped up with
# 500 yuan; BENCH_SESSIONS (default 20,000) sessions of these members that
# have ended and wait for their pile record (member n % 8 + 1), and one bill
# settled, so the revenue accounts exist and have higher account numbers than
# the wallets (as in a network that has run for a while).
#
# The mix, one call per transaction as the real callers make them (weights):
#   top_up       30  the provider's callback: a wallet gets 1-50 yuan
#   record       25  a pile record arrives: the next session's bill is made
#                    (final) by the pipeline's trigger
#   settle_bill  10  settle_bill() of one of the 30 newest bills, if final
#   settle_bills  5  the settle job
#   repair       15  repair_bill(..., 'manual', energy) of one of the 100
#                    newest bills: a final one is revised, a settled one's
#                    difference is posted (adjust_settled_bill)
#   refund        5  request_refund() of a wallet
#   decide       10  approve (2 in 3) or reject the wallet's open refund
# The helpers in schema bench_mix catch only the refusals the functions are
# documented to give under these races (55P03 a bill being repaired or
# billed by another session, 55000 nothing to refund / already decided,
# 23505 a refund already open); anything else, a deadlock (40P01) above all,
# reaches pgbench.  pgbench runs with --max-tries=1: a deadlock is counted as
# a failed transaction (--failures-detailed), never retried away.
#
# Per run it prints pgbench's tps and failures, the deadlocks (pgbench's
# count, and the server log's "deadlock detected" with the scripts whose
# transactions were in each circle), what got done (top-ups, bills made and
# settled, adjustments, refunds), the settle job's skipped bills (WARNING
# lines), and checks the books: verify_ledger() empty, every settled bill
# charged to its payer exactly its total (bill plus adjustments), every final
# bill not charged.  Then the medians.  Exits 1 if a check fails.  Stops the
# cluster when done (BENCH_KEEP=1 leaves it running).
source "$(dirname "$0")/../scripts/lib.sh"

SECS=${BENCH_SECONDS:-30}
REPS=${BENCH_REPS:-3}
CLIENTS=${BENCH_CLIENTS:-8}
SESSIONS=${BENCH_SESSIONS:-20000}
TPL=bench_settle_tpl
RUN=bench_settle_run
PGBENCH=$PG_BIN/pgbench

WORK=$(mktemp -d /tmp/evcharge-sbench-XXXX)
cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "kept: cluster sbench (PGHOST=$PGHOST PGPORT=$PGPORT), database $RUN, scripts in $WORK"
		return
	fi
	cluster_down sbench
	rm -rf "$WORK"
}
trap cleanup EXIT
cluster_up sbench evcharge_sbench
LOG="$EV_ROOT/.cluster/sbench/server.log"

say "making the template database $TPL ($SESSIONS sessions of 8 members waiting for their records)"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
	-c "DROP DATABASE IF EXISTS $TPL WITH (FORCE)" -c "CREATE DATABASE $TPL"
pq -d "$TPL" -v sessions="$SESSIONS" <<'SQL'
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
INSERT INTO evcharge.member (member_id, operator_id) SELECT m, 12 FROM generate_series(1, 8) m;
-- The wallets first, then the provider's account, then (below) revenue.
SELECT evcharge.member_wallet(m) FROM generate_series(1, 8) m;
SELECT evcharge.top_up(evcharge.member_wallet(m), 500.00, 'SETUP-' || m) FROM generate_series(1, 8) m;
-- Session n (S000000 ...) of member n % 8 + 1: 30 minutes of charging,
-- ended, its pile record not in yet.
INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, channel, state, created_at, started_at,
	charging_ended_at, occupied_until, last_ts)
SELECT 'S' || lpad(n::text, 6, '0'), evcharge.gun_id('44200000120000100001', n % 9 + 1), 1, n % 8 + 1,
       'app', 'ended', t, t, t + interval '30 min', t + interval '30 min', t + interval '30 min'
FROM generate_series(0, :sessions) n,
     LATERAL (SELECT '2026-11-25 00:00+08'::timestamptz + n * interval '20 s' AS t) x;
CREATE SCHEMA bench_mix;
CREATE SEQUENCE bench_mix.key;
-- Sessions whose record has been sent; S000000 is the one settled here.
CREATE SEQUENCE bench_mix.next_session MINVALUE 0 START 0;
CREATE FUNCTION bench_mix.record() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	n bigint := nextval('bench_mix.next_session');
	s evcharge.charge_session;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session WHERE order_no = 'S' || lpad(n::text, 6, '0');
	IF NOT FOUND THEN
		RETURN 'exhausted';
	END IF;
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh)
	VALUES (s.order_no, s.gun, s.started_at, s.charging_ended_at, 2000 + n % 1500);
	RETURN s.order_no;
END $$;
-- One of the k newest sessions whose record was sent.
CREATE FUNCTION bench_mix.recent(k int) RETURNS text LANGUAGE sql AS $$
	SELECT 'S' || lpad(greatest(0, last_value - floor(random() * k)::bigint)::text, 6, '0')
	FROM bench_mix.next_session
$$;
CREATE FUNCTION bench_mix.settle_one() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	o text := bench_mix.recent(30);
BEGIN
	IF NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = o AND b.state = 'final') THEN
		RETURN 'none';
	END IF;
	PERFORM evcharge.settle_bill(o);
	RETURN o;
END $$;
CREATE FUNCTION bench_mix.repair() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	o text := bench_mix.recent(100);
BEGIN
	IF NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = o) THEN
		RETURN 'none';
	END IF;
	PERFORM evcharge.repair_bill(o, 'bench: energy agreed with the driver', 'manual', 1000 + floor(random() * 3000)::bigint);
	RETURN o;
EXCEPTION WHEN lock_not_available THEN
	RETURN 'busy';
END $$;
CREATE FUNCTION bench_mix.refund(m int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN (evcharge.request_refund(evcharge.member_wallet(m), 'provider')).refund_id::text;
EXCEPTION WHEN object_not_in_prerequisite_state OR unique_violation THEN
	RETURN 'refused';
END $$;
CREATE FUNCTION bench_mix.decide(m int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r bigint;
BEGIN
	SELECT f.refund_id INTO r FROM evcharge.refund f
	WHERE f.account_id = evcharge.member_wallet(m) AND f.state = 'requested';
	IF NOT FOUND THEN
		RETURN 'none';
	END IF;
	IF random() < 2.0 / 3 THEN
		RETURN (evcharge.approve_refund(r)).state;
	END IF;
	RETURN (evcharge.reject_refund(r, 'bench: the member asked to keep the balance')).state;
EXCEPTION WHEN object_not_in_prerequisite_state THEN
	RETURN 'decided';
END $$;
-- Opens the revenue accounts: after the wallets and the provider's.
SELECT bench_mix.record();
SELECT evcharge.settle_bills();
VACUUM ANALYZE;
SQL

cat > "$WORK/top_up.sql" <<'EOF'
\set m random(1, 8)
\set amount random(1, 50)
SELECT balance FROM evcharge.top_up(evcharge.member_wallet(:m), :amount, 'PB-' || nextval('bench_mix.key'));
EOF
echo 'SELECT bench_mix.record();' > "$WORK/record.sql"
echo 'SELECT bench_mix.settle_one();' > "$WORK/settle_bill.sql"
echo 'SELECT evcharge.settle_bills();' > "$WORK/settle_bills.sql"
echo 'SELECT bench_mix.repair();' > "$WORK/repair.sql"
printf '\\set m random(1, 8)\nSELECT bench_mix.refund(:m);\n' > "$WORK/refund.sql"
printf '\\set m random(1, 8)\nSELECT bench_mix.decide(:m);\n' > "$WORK/decide.sql"
MIX=(top_up@30 record@25 settle_bill@10 settle_bills@5 repair@15 refund@5 decide@10)
SCRIPTS=()
for s in "${MIX[@]}"; do SCRIPTS+=(-f "$WORK/${s%@*}.sql@${s#*@}"); done

# The script a statement in a deadlock report belongs to.
script_of() {
	case "$1" in
	*top_up*) echo top_up ;; *record*) echo record ;; *settle_one*) echo settle_bill ;;
	*settle_bills*) echo settle_bills ;; *repair*) echo repair ;; *refund*) echo refund ;;
	*decide*) echo decide ;; *) echo other ;;
	esac
}

RESULTS="$WORK/results"
: > "$RESULTS"
FAILED=""
for rep in $(seq 1 "$REPS"); do
	pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $RUN WITH (FORCE)" \
		-c "CREATE DATABASE $RUN TEMPLATE $TPL"
	log_from=$(stat -c %s "$LOG")
	say "run $rep of $REPS: $CLIENTS clients, $SECS s"
	"$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECS" --max-tries=1 --failures-detailed "${SCRIPTS[@]}" "$RUN" \
		> "$WORK/pgbench.$rep" 2>&1 || true
	tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/pgbench.$rep")
	done_tx=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/pgbench.$rep")
	failed_tx=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$WORK/pgbench.$rep")
	deadlocks=$(sed -nE 's/^number of deadlock failures: ([0-9]+).*/\1/p' "$WORK/pgbench.$rep")
	aborted=$(grep -c 'aborted in command' "$WORK/pgbench.$rep" || true)
	if [ -z "$tps" ] || [ "$aborted" -ne 0 ]; then
		cat "$WORK/pgbench.$rep" >&2
		FAILED="$FAILED; run $rep: pgbench did not finish cleanly ($aborted clients aborted)"
		tps=${tps:-0}
	fi
	# The server's view: every deadlock it detected, with the two statements.
	tail -c +"$((log_from + 1))" "$LOG" > "$WORK/log.$rep"
	log_deadlocks=$(grep -c 'ERROR:  deadlock detected' "$WORK/log.$rep" || true)
	cycles=$(awk '/ERROR:  deadlock detected/ { if (p != "") print p; p = ""; inside = 1; next }
	              inside && /^\tProcess [0-9]+: / { sub(/^\tProcess [0-9]+: /, ""); p = p (p == "" ? "" : "\037") $0; next }
	              inside && /^[0-9]{4}-/ && !/DETAIL|HINT|CONTEXT|STATEMENT/ { if (p != "") print p; p = ""; inside = 0 }
	              END { if (p != "") print p }' "$WORK/log.$rep" |
		while IFS=$'\037' read -r -a stmts; do
			for q in "${stmts[@]}"; do script_of "$q"; done | sort | paste -sd+
		done | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
	skipped=$(grep -c 'WARNING:  .*not settled' "$WORK/log.$rep" || true)
	# A deadlock the settle job caught (it then locks again) is not logged as
	# an error; its WARNING is, and it counts.
	retried=$(grep -c 'WARNING:  settle_bills() was in a deadlock' "$WORK/log.$rep" || true)
	log_deadlocks=$((log_deadlocks + retried))
	out=$(pq -d "$RUN" -A -t -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM evcharge.ledger_txn WHERE kind = 'top_up' AND idem_key LIKE 'PB-%'),
       (SELECT count(*) FROM evcharge.bill) - 1,
       (SELECT count(*) FROM evcharge.bill WHERE state = 'settled') - 1,
       (SELECT count(*) FROM evcharge.ledger_txn WHERE kind = 'bill_adjustment'),
       (SELECT count(*) FROM evcharge.bill_revision),
       (SELECT count(*) FROM evcharge.refund),
       (SELECT count(*) FROM evcharge.refund WHERE state = 'approved'),
       (SELECT count(*) FROM evcharge.refund WHERE state = 'rejected'),
       (SELECT count(*) FROM evcharge.verify_ledger()),
       (SELECT count(*) FROM evcharge.bill b
         WHERE (b.state = 'settled') IS DISTINCT FROM EXISTS (SELECT 1 FROM evcharge.ledger_txn t
                                                              WHERE t.kind = 'bill' AND t.idem_key = b.order_no)
            OR b.total <> coalesce((SELECT sum(e.amount) FROM evcharge.ledger_txn t JOIN evcharge.ledger_entry e USING (txn_id)
                                     WHERE t.order_no = b.order_no AND t.kind IN ('bill', 'bill_adjustment')
                                       AND e.account_id = evcharge.account_of(12, 'member_wallet', b.member_id)),
                                    CASE WHEN b.state = 'settled' THEN NULL ELSE b.total END))
SQL
)
	# shellcheck disable=SC2086
	set -- $out
	echo "  tps $tps ($done_tx transactions, $failed_tx failed: $deadlocks deadlocks by pgbench, $log_deadlocks in the server log, $retried of them caught by the settle job${cycles:+: $cycles})"
	echo "  done: $1 top-ups, $2 bills made, $3 settled, $4 adjustments ($5 revisions), refunds $6 requested, $7 approved, $8 rejected; settle job skipped $skipped bills"
	echo "  books: $9 verify_ledger() problems, ${10} bills charged wrongly"
	if [ "$9" -ne 0 ] || [ "${10}" -ne 0 ]; then
		FAILED="$FAILED; run $rep: the books are wrong ($9 ledger problems, ${10} bills)"
	fi
	printf '%s\t%s\t%s\t%s\n' "$tps" "${deadlocks:-0}" "$log_deadlocks" "$3" >> "$RESULTS"
done

say "summary"
sort -n -k1,1 "$RESULTS" | awk -F'\t' -v secs="$SECS" '{ t[NR] = $1 } END {
	printf "tps: median %s (runs: ", t[int((NR + 1) / 2)]; for (i = 1; i <= NR; i++) printf "%s%s", t[i], (i < NR ? ", " : ")\n") }'
for col in 2 3 4; do
	label=$(case $col in 2) echo "deadlocks (pgbench)";; 3) echo "deadlocks (server log)";; 4) echo "bills settled";; esac)
	cut -f"$col" "$RESULTS" | sort -n | awk -v l="$label" '{ v[NR] = $1 } END {
		printf "%s: median %s (runs: ", l, v[int((NR + 1) / 2)]; for (i = 1; i <= NR; i++) printf "%s%s", v[i], (i < NR ? ", " : ")\n") }'
done
if [ -n "$FAILED" ]; then
	die "checks failed${FAILED}"
fi
echo "all checks passed"
