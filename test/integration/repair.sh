# Repairs from two support desks at once: the second repair of a bill fails
# at once (55P03) instead of waiting or repairing twice, and an operator
# who tells drivers of adjusted amounts gets a NOTIFY a listener receives.
source "$(dirname "$0")/lib/tap.sh"
plan 8
db=evcharge_it_repair
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

q -d $db >/dev/null <<'SQL'
INSERT INTO operator VALUES (1, 'repair test');
UPDATE anomaly_policy SET notify_adjustment = true WHERE operator_id = 1;
INSERT INTO station (station_id, operator_id, name) VALUES (1, 1, 'repair test');
INSERT INTO station_tariff (station_id, current_type, tariff, valid)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.8+0.45', '[2026-01-01,)');
INSERT INTO pile VALUES ('44200000010000100001', 1, 1, 7000);
INSERT INTO member (member_id, operator_id) VALUES (501, 1);
SELECT maintain_partitions('2026-11-20 12:00+08');
SELECT start_session('44200000010000100001001', 501, 'app') AS o \gset
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000010000100001001', '2026-11-20 10:00+08'::timestamptz + i * interval '1 min',
       CASE WHEN i = 60 THEN 'idle' ELSE 'charging' END::gun_status, 100000 + least(i, 59) * 116, :'o'
FROM generate_series(0, 60) i;
-- The pile claims 8000 Wh, the heartbeats 6844: anomaly 8, held.
INSERT INTO pile_record VALUES (:'o', '44200000010000100001001', '2026-11-20 10:00+08', '2026-11-20 10:59+08', 8000);
SQL
order=$(q -d $db -c "SELECT order_no FROM bill")
is "$(q -d $db -c "SELECT state || ' ' || anomalies FROM bill")" "held 8" "the bill is held with anomaly 8"

# Desk A repairs and keeps its transaction open for a few seconds; desk B
# tries the same bill meanwhile.
q -d $db >"$work/a.log" 2>&1 <<SQL &
BEGIN;
SELECT total FROM repair_bill('$order', 'desk A: meter photo checked', 'pile');
SELECT pg_sleep(4);
COMMIT;
SQL
pa=$!
for _ in $(seq 1 50); do
	[ "$(q -d $db -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()")" -ge 1 ] && break
	sleep 0.2
done
psql -X -q -tA -v VERBOSITY=verbose -d $db -c "SELECT total FROM repair_bill('$order', 'desk B: same complaint', 'platform')" \
	>"$work/b.log" 2>&1
rb=$?
wait $pa
ra=$?
sed 's/^/# B: /' "$work/b.log" | head -3
ok $([ $rb -ne 0 ] && grep -q '55P03' "$work/b.log"; echo $?) "the second repair fails with 55P03 while the first runs"
grep -q "is being repaired" "$work/b.log"
ok $? "its message says the bill is being repaired"
ok $ra "the first repair commits"
is "$(q -d $db -c "SELECT count(*) || ' ' || string_agg(method, ',') FROM bill_revision")" "1 pile" \
	"one revision, the first desk's"

# A listener hears the adjusted amount.
psql -X -q -d $db >"$work/listen.log" 2>&1 <<'SQL' &
LISTEN evcharge_notice;
SELECT pg_sleep(4);
SELECT 1;
SQL
pl=$!
for _ in $(seq 1 50); do
	[ "$(q -d $db -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()")" -ge 1 ] && break
	sleep 0.2
done
q -d $db -c "SELECT total FROM repair_bill('$order', 'desk B: platform meter after all', 'platform')" >/dev/null
ok $? "a second repair after the first is free to run"
wait $pl
grep 'evcharge_notice' "$work/listen.log" | sed 's/^/# /'
grep -q "Asynchronous notification \"evcharge_notice\" with payload \"{\"order_no\" : \"$order\", \"member_id\" : 501, \"old_total\" : 10.00, \"new_total\" : 8.54}\"" "$work/listen.log"
ok $? "the listener received evcharge_notice with the order, member and both totals"
is "$(q -d $db -c "SELECT member_id || ' ' || old_total || ' ' || new_total FROM customer_notice ORDER BY customer_notice_id")" \
	"501 10.00 8.54" "only the repair that changed the amount left a notice for the driver"
done_testing
