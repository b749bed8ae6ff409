# The update to 0.3.0 and the piles whose id does not say AC or DC: a 0.2.0
# database with Zhongshan Jianxin's piles (digits 14-15 "10"), whose
# sessions 0.2.0 could not bill (bill_error, no bill), does not update by
# guessing their current type; the update stops, names them and changes
# nothing; given their types in a temporary table of the session, it goes
# through, fills pile.current_type, and the sessions left without a bill get
# one (at once when their pile record is in, by detect_lost_bills() when it
# is not).
source "$(dirname "$0")/lib/tap.sh"
plan 10
db=evcharge_it_upgrade_ct
q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
trap 'q -d postgres -c "DROP DATABASE IF EXISTS '$db' WITH (FORCE)" >/dev/null 2>&1' EXIT

q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge VERSION '0.2.0' CASCADE" >/dev/null
q -d $db >/dev/null <<'SQL'
SET search_path = evcharge;
INSERT INTO operator VALUES (2, 'Zhongshan Jianxin');
INSERT INTO station (station_id, operator_id, name) VALUES (21, 2, 'Jianxin Dongfeng');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (21, 'AC', '00:00-24:00 flat | flat 0.6000+0.4000', '[2026-01-01,)', 'AC'),
 (21, 'DC', '00:00-24:00 flat | flat 0.8008+0.4000', '[2026-01-01,)', 'DC');
-- Two Jianxin piles (detail 10), an AC pile (01), a ground lock (product 01, detail 10).
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES
	('44200100020001000110', 21, 1, 60000), ('44200100020001000075', 21, 1, 60000),
	('44200100020000100001', 21, 1, 7000), ('44200100020011000200', 21, 1, 1);
-- A DC charge of 23.32 kWh on each Jianxin pile; the first pile's record
-- comes, the second's never does.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT g, t0 + i * interval '15 s', CASE WHEN i = 121 THEN 'idle' ELSE 'charging' END::gun_status,
       500000 + least(i, 120) * 194, 60000, CASE WHEN i < 121 THEN o END
FROM (VALUES ('44200100020001000110001'::gun_id, 'JX-1', '2026-11-20 10:00+08'::timestamptz),
             ('44200100020001000075001', 'JX-2', '2026-11-20 10:00+08')) s(g, o, t0),
     generate_series(0, 121) i;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
VALUES ('JX-1', '44200100020001000110001', '2026-11-20 10:00+08', '2026-11-20 10:30+08', 23320);
SQL
is "$(q -d $db -c "SELECT count(b.order_no) || ' bills; ' || string_agg(s.order_no || ': ' || s.bill_error, '; ' ORDER BY s.order_no)
	FROM evcharge.charge_session s LEFT JOIN evcharge.bill b USING (order_no) WHERE s.bill_error IS NOT NULL")" \
	"0 bills; JX-1: 22023: current type NULL is neither AC nor DC" \
	"under 0.2.0 the Jianxin pile's session has no bill, only bill_error"

out=$(q -d $db -c "SET client_min_messages = warning" -c "ALTER EXTENSION evcharge UPDATE" 2>&1)
rc=$?
ok $((rc == 0)) "the update stops while two piles' ids do not say AC or DC"
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "evcharge 0.3.0 needs the current type of 2 registered pile(s) whose id does not say AC or DC" &&
	echo "$out" | grep -q "Piles 44200100020001000075, 44200100020001000110: digits 14-15" &&
	echo "$out" | grep -q "CREATE TEMP TABLE pile_current_type"
ok $? "its message names both piles (not the ground lock) and says how to give their types"
is "$(q -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" 0.2.0 "nothing changed: still 0.2.0"

out=$(q -d $db 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE TEMP TABLE pile_current_type (pile_id text PRIMARY KEY, current_type text NOT NULL);
INSERT INTO pile_current_type VALUES ('44200100020001000110', 'DC'), ('4420 0100 0200 0100 0075', 'DC');
ALTER EXTENSION evcharge UPDATE;
SQL
)
ok $? "given their types in a temporary table, the update goes through"
[ -z "$out" ] || echo "$out" | sed 's/^/# /'
is "$(q -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" 0.3.0 "the database is at 0.3.0"
is "$(q -d $db -c "SELECT string_agg(pile_id || ' ' || coalesce(current_type, '-'), ', ' ORDER BY pile_id) FROM evcharge.pile")" \
	"44200100020000100001 AC, 44200100020001000075 DC, 44200100020001000110 DC, 44200100020011000200 -" \
	"pile.current_type: from the id, from the table, none for the ground lock"
is "$(q -d $db -c "SELECT b.state || ' ' || b.total || ' ' || b.anomalies::text || ' ' || coalesce(s.bill_error, 'no bill_error')
	FROM evcharge.bill b JOIN evcharge.charge_session s USING (order_no) WHERE b.order_no = 'JX-1'")" \
	"final 27.99  no bill_error" \
	"the session whose record was in is billed by the update: 23.32 kWh DC, 27.99 yuan"
is "$(q -d $db -c "SELECT bills_lost FROM evcharge.detect_lost_bills('2026-11-20 16:00+08')")
$(q -d $db -c "SELECT b.state || ' ' || b.total || ' ' || b.anomalies::text FROM evcharge.bill b WHERE b.order_no = 'JX-2'")" \
	"1
held 27.95 1" \
	"the one without a record is billed by detect_lost_bills() from its heartbeats (23.28 kWh), priced, held as a lost bill"
q -d $db -c "INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200100020001000130', 21, 1, 60000)" >/dev/null 2>&1
ok $((! $?)) "and from then on a Jianxin pile is registered only with its type"
done_testing
