# Two loaders on two connections insert interleaved heartbeats for the same
# guns at the same time, in opposite gun orders: nothing committed is lost
# or counted twice, no deadlock, and every gun's live state is its newest
# heartbeat, whichever loader sent it.
source "$(dirname "$0")/lib/tap.sh"
plan 8
db=evcharge_it_concurrent
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

q -d $db >/dev/null <<'SQL'
INSERT INTO operator VALUES (1, 'concurrency test');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 1, 'concurrency test');
INSERT INTO station_tariff (station_id, current_type, tariff, valid)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.7+0.45', '[2026-01-01,)');
INSERT INTO pile SELECT ('44200000010000100' || lpad(i::text, 3, '0'))::pile_id, 1, 2, 7000 FROM generate_series(1, 50) i;
SELECT maintain_partitions('2026-11-20 12:00+08');
SQL

# Loader A sends the even seconds, loader B the odd ones; 100 batches each,
# every batch covering all 100 guns, A in ascending and B in descending order.
for who in A B; do
	{
		for b in $(seq 0 99); do
			if [ $who = A ]; then s=$((b * 2)); dir=ASC; else s=$((b * 2 + 1)); dir=DESC; fi
			echo "INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w)
			      SELECT gun_id(pile_id, g), '2026-11-20 10:00:00+08'::timestamptz + interval '1 s' * $s, 'charging',
			             100000 + $s, 3600
			      FROM pile, generate_series(1, 2) g ORDER BY pile_id $dir, g $dir;"
		done
	} > "$work/$who.sql"
done
q -d $db -f "$work/A.sql" >"$work/A.log" 2>&1 &
pa=$!
q -d $db -f "$work/B.sql" >"$work/B.log" 2>&1 &
pb=$!
wait $pa; ra=$?
wait $pb; rb=$?
cat "$work/A.log" "$work/B.log" | head -5 | sed 's/^/# /'
ok $([ $ra -eq 0 ] && [ $rb -eq 0 ]; echo $?) "both loaders finished without an error (no deadlock)"
is "$(q -d $db -c "SELECT count(*) FROM heartbeat")" 20000 "all 20000 heartbeats are in the log"
is "$(q -d $db -c "SELECT count(*) FROM gun_state")" 100 "one live state per gun"
is "$(q -d $db -c "SELECT count(*) FROM gun_state WHERE last_heartbeat = '2026-11-20 10:03:19+08' AND meter_wh = 100000 + 199")" 100 \
	"every gun's state is its newest heartbeat (loader B's last)"
is "$(q -d $db -c "SELECT count(*) FROM quarantine")" 0 "nothing quarantined"

# The charges end and their piles report without a total: each bill is
# measured from the log, and must be the meter's whole rise (1 Wh a second,
# 3.6 kW, for 199 s),
# whatever order the two loaders' batches committed in.
q -d $db >/dev/null <<'SQL'
INSERT INTO heartbeat (gun, ts, status, meter_wh)
SELECT gun_id(pile_id, g), '2026-11-20 10:04:00+08', 'idle', 100000 + 199 FROM pile, generate_series(1, 2) g;
INSERT INTO pile_record (order_no, gun, started_at, ended_at)
SELECT order_no, gun, started_at, charging_ended_at FROM charge_session;
SQL
is "$(q -d $db -c "SELECT count(*) FROM charge_session WHERE state = 'ended'")" 100 "one session per gun, ended"
is "$(q -d $db -c "SELECT count(*) FROM bill")" 100 "one bill per session"
is "$(q -d $db -c "SELECT count(*) FROM bill WHERE energy_wh = 199 AND total = trunc(0.199 * 0.7, 2) + trunc(0.199 * 0.45, 2)")" 100 \
	"every bill holds the whole rise, nothing lost or counted twice"
done_testing
