# Backup and restore as a DBA does it: a database with the demo (ids,
# tariffs, a generated day through the pipeline) and money on top (top-ups,
# a manual credit, refunds approved and rejected, a partner's payment and
# booked statement, a repaired bill, policies changed from their defaults,
# a statement source) is dumped with pg_dump -Fc and as plain SQL, and
# restored into empty databases three ways: pg_restore, pg_restore
# --single-transaction, and the plain dump through psql.  Each restore must
# give no error and every table of the evcharge schema (partitions
# included) row for row as it was (an md5 per table over its sorted rows),
# the same sequence positions, and a ledger that verifies; and the
# pipeline goes on where it left off: a heartbeat batch after the restore
# ends the sessions that were open, and new money takes the next numbers.
source "$(dirname "$0")/lib/tap.sh"
plan 28
db=evcharge_it_backup
fresh_db $db
work=$(mktemp -d)
restored=(${db}_r1 ${db}_r2 ${db}_r3)
cleanup() {
	local d
	for d in "${restored[@]}"; do q -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1; done
	q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$work"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT

loaded=0
{
	q -d $db -f "$EV_ROOT/demo/ids.sql" && q -d $db -f "$EV_ROOT/demo/tariffs.sql" && "$EV_ROOT/demo/day.sh" $db
} >"$work/load.log" 2>&1 || loaded=1
ok $loaded "the demo (ids, tariffs, a day through the pipeline) loads"
[ $loaded -eq 0 ] || tail -20 "$work/load.log" | sed 's/^/# /'

# Money on top of the day's settled bills, each kind of event at least once.
q -d $db >"$work/money.log" 2>&1 <<'SQL'
SET client_min_messages = warning;
UPDATE anomaly_policy SET notify_adjustment = true, max_session = '12 hours' WHERE operator_id = 20;
UPDATE finance_policy SET stop_threshold = 2.50, void_coupons_on_refund = true WHERE operator_id = 20;
INSERT INTO member (member_id, operator_id, card_no) VALUES (7001, 20, 'BK-CARD-1'), (7002, 20, 'BK-CARD-2');
SELECT balance FROM top_up(member_wallet(7001), 300.00, 'BK-WX-1');
SELECT replayed FROM top_up(member_wallet(7001), 300.00, 'BK-WX-1');
SELECT balance FROM top_up(member_wallet(7002), 120.50, 'BK-WX-2');
SELECT balance FROM manual_credit(member_wallet(7002), 10.00, 'apology for a stuck gun', 'BK-CS-1');
SELECT refund_id FROM approve_refund((request_refund(member_wallet(7001), 'bank')).refund_id);
SELECT refund_id FROM reject_refund((request_refund(member_wallet(7002), 'provider')).refund_id, 'duplicate request');
INSERT INTO partner (partner_id, operator_id, name, kind, credit_limit) VALUES (71, 20, 'backup test fleet', 'affiliated', 1000);
SELECT owes FROM partner_payment(71, 50.00, 'BK-BANK-1', '2026-11-21');
SELECT statement_id FROM partner_statement(71, '2026-11-01');
-- A held bill of the day repaired from the platform's meter, then settled.
SELECT total FROM repair_bill((SELECT order_no FROM bill WHERE state = 'held' ORDER BY order_no LIMIT 1),
	'backup test: meter photo checked', 'platform');
SELECT settled FROM settle_bills();
-- The operator's own bank refund fees, a partial refund, a refund of a bill.
UPDATE refund_fee_bands SET up_to = '{50000}', fixed_fee = '{5}' WHERE operator_id = 20 AND method = 'bank';
SELECT refund_id FROM approve_refund((request_refund(member_wallet(7002), 'bank', 30.00)).refund_id);
SELECT refunded FROM refund_bill((SELECT order_no FROM bill WHERE state = 'settled' ORDER BY order_no LIMIT 1),
	'backup test: disputed bill', 'BK-RF-1', 1.00);
INSERT INTO statement_source (operator_id, kind, partner_id, url_template, secret, name)
VALUES (20, 'partner', 71, 'https://partner.example.com/{day}.csv', 'backup-test-secret', 'fleet-71');
-- Two charges still going at the dump: one started from the app by a
-- member, one started at the pile.
INSERT INTO operator VALUES (72, 'backup test, charging at the dump');
INSERT INTO station (station_id, operator_id, name) VALUES (7201, 72, 'backup test');
INSERT INTO station_tariff (station_id, current_type, tariff, valid)
VALUES (7201, 'AC', '00:00-24:00 flat | flat 0.8+0.45', '[2026-01-01,)');
INSERT INTO pile VALUES ('44200000720000100001', 7201, 2, 7000);
INSERT INTO member (member_id, operator_id) VALUES (7201, 72);
SELECT balance FROM top_up(member_wallet(7201), 100.00, 'BK-WX-72');
SELECT start_session('44200000720000100001001', 7201, 'app') AS o \gset
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000720000100001001', '2026-11-21 10:00+08'::timestamptz + i * interval '1 min', 'charging', 50000 + i * 110, 6600, :'o'
FROM generate_series(0, 20) i;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000720000100001002', '2026-11-21 10:05+08'::timestamptz + i * interval '1 min', 'charging', 80000 + i * 100, 6000, 'PILE-BK-0001'
FROM generate_series(0, 15) i;
SQL
ok $? "money on top: top-ups, a credit, refunds approved and rejected, a partner statement, a repair"
[ -s "$work/money.log" ] && grep -E 'ERROR|error' "$work/money.log" | sed 's/^/# /'
q -d $db -c "SELECT 'ledger entries ' || (SELECT count(*) FROM evcharge.ledger_entry) || ', bills ' || (SELECT count(*) FROM evcharge.bill) || ', heartbeat partitions ' || (SELECT count(*) FROM pg_inherits WHERE inhparent = 'evcharge.heartbeat'::regclass) || ', open sessions ' || (SELECT count(*) FROM evcharge.charge_session WHERE state IN ('pending', 'charging', 'occupied'))" |
	sed 's/^/# /'
is "$(q -d $db -c "SELECT count(*) FROM evcharge.verify_ledger()")" 0 "the ledger verifies before the dump"

# Every relation of the extension that holds rows users make is dumped by
# pg_dump: config tables and their sequences (anomaly_code is the
# extension's own list; heartbeat has its rows in its partitions).
is "$(q -d $db -c "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'evcharge'
	WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	  AND c.relkind IN ('r', 'S') AND c.relname <> 'anomaly_code' AND NOT (c.oid = ANY (e.extconfig))")" "" \
	"every table and sequence of the extension is marked for pg_dump (pg_extension_config_dump)"

psql -X -q -d $db -f "$EV_ROOT/test/integration/lib/digest.sql" >"$work/before.txt"
seqs() {
	q -d "$1" -c "SELECT string_agg(sequencename || '=' || coalesce(last_value::text, '-'), ' ' ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'evcharge'"
}
seqs $db >"$work/seq_before.txt"
echo "# $(wc -l <"$work/before.txt") tables, $(awk '{n += $2} END {print n}' "$work/before.txt") rows"

rc=0
pg_dump -Fc -d $db -f "$work/db.dump" 2>"$work/dump.err" && pg_dump -d $db -f "$work/db.sql" 2>>"$work/dump.err" || rc=1
ok $([ $rc -eq 0 ] && [ ! -s "$work/dump.err" ]; echo $?) "pg_dump -Fc and pg_dump (plain SQL) run without a warning"
sed 's/^/# /' "$work/dump.err"

for d in "${restored[@]}"; do
	q -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" -c "CREATE DATABASE $d TEMPLATE template0" >/dev/null 2>&1
done
restore() {
	local how=$1 d=$2 rc=0
	case $how in
	pg_restore) pg_restore -d "$d" "$work/db.dump" >"$work/$d.log" 2>&1 || rc=$? ;;
	single) pg_restore --single-transaction --exit-on-error -d "$d" "$work/db.dump" >"$work/$d.log" 2>&1 || rc=$? ;;
	psql) psql -X -q -v ON_ERROR_STOP=1 -d "$d" -f "$work/db.sql" >"$work/$d.log" 2>&1 || rc=$? ;;
	esac
	ok $([ $rc -eq 0 ] && ! grep -qiE 'error|warning' "$work/$d.log"; echo $?) "restore by $how: no error"
	grep -iE 'error|warning' "$work/$d.log" | head -8 | cut -c1-200 | sed 's/^/# /'
	psql -X -q -d "$d" -f "$EV_ROOT/test/integration/lib/digest.sql" >"$work/$d.txt" 2>&1
	diff "$work/before.txt" "$work/$d.txt" >"$work/$d.diff"
	ok $? "restore by $how: every evcharge table has the same rows ($(wc -l <"$work/before.txt") tables)"
	head -10 "$work/$d.diff" | sed 's/^/# /'
	is "$(seqs "$d")" "$(cat "$work/seq_before.txt")" "restore by $how: every evcharge sequence where it was"
	is "$(q -d "$d" -c "SELECT count(*) FROM evcharge.verify_ledger()")" 0 "restore by $how: verify_ledger() finds nothing"
}
restore pg_restore ${db}_r1
restore single ${db}_r2
restore psql ${db}_r3

# The pipeline goes on: the same heartbeat batch on the original and on a
# restored database (every gun with an open session unplugged a minute
# after its last heartbeat) ends the open sessions and bills them alike;
# new money posts and takes the next numbers in both.
batch() {
	q -d "$1" <<'SQL'
SET client_min_messages = warning;
CREATE TEMP TABLE open_before AS
SELECT order_no FROM evcharge.charge_session WHERE state IN ('pending', 'charging', 'occupied');
INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no, received_at)
SELECT g.gun, g.last_heartbeat + interval '1 min', 'idle', g.meter_wh, 0, NULL, g.last_heartbeat + interval '1 min'
FROM evcharge.gun_state g
WHERE EXISTS (SELECT 1 FROM evcharge.charge_session s JOIN open_before o USING (order_no) WHERE s.gun OPERATOR(evcharge.=) g.gun)
ORDER BY g.gun;
SELECT (SELECT count(*) FROM open_before) || ' open, '
       || (SELECT count(*) FROM evcharge.charge_session s JOIN open_before o USING (order_no) WHERE s.state IN ('ended', 'cancelled'))
       || ' ended or cancelled, '
       || (SELECT count(*) FROM evcharge.charge_session s JOIN open_before o USING (order_no) WHERE s.state IN ('pending', 'charging', 'occupied'))
       || ' still open';
SQL
}
orig=$(batch $db)
after=$(batch ${db}_r1)
echo "# the batch on the original: $orig"
ok $(echo "$after" | grep -qE '^[1-9][0-9]* open, [0-9]+ ended or cancelled, 0 still open$'; echo $?) \
	"a heartbeat batch after the restore ends every session that was open ($after)"
is "$after" "$orig" "... exactly as on the original database"
sessions() {
	q -d "$1" -c "SELECT md5(string_agg(concat_ws(' ', s.order_no, s.state, s.charging_ended_at, s.occupied_until, s.last_ts, s.high_meter_wh, s.wh_by_class, b.state, b.energy_wh, b.total, b.anomalies), E'\n' ORDER BY s.order_no))
		FROM evcharge.charge_session s LEFT JOIN evcharge.bill b USING (order_no)"
}
is "$(sessions ${db}_r1)" "$(sessions $db)" "sessions and bills after the batch are the original's"
money() {
	q -d "$1" -c "SELECT txn_id || ' ' || balance FROM evcharge.top_up(evcharge.member_wallet(7002), 20.00, 'BK-WX-AFTER')" \
		-c "SELECT (SELECT max(entry_id) FROM evcharge.ledger_entry) || ' ' || (SELECT count(*) FROM evcharge.verify_ledger())"
}
is "$(money ${db}_r1 | tr '\n' ' ')" "$(money $db | tr '\n' ' ')" \
	"a top-up after the restore takes the next transaction and entry numbers, as on the original"
is "$(q -d ${db}_r1 -c "SELECT notify_adjustment || ' ' || max_session || ' ' || (SELECT stop_threshold FROM evcharge.finance_policy WHERE operator_id = 20) FROM evcharge.anomaly_policy WHERE operator_id = 20")" \
	"true 12:00:00 2.50" "the operator's changed policies are restored, not replaced by the defaults"
is "$(q -d ${db}_r1 -c "INSERT INTO evcharge.operator VALUES (77, 'after the restore')" -c "SELECT count(*) FROM evcharge.anomaly_policy WHERE operator_id = 77" -c "SELECT count(*) FROM evcharge.finance_policy WHERE operator_id = 77" | tr '\n' ' ')" \
	"1 1 " "a new operator after the restore gets its default policies"
bands() {
	q -d "$1" -c "SELECT string_agg(method || ' ' || up_to::text || ' ' || fixed_fee::text, ' ' ORDER BY method) FROM evcharge.refund_fee_bands WHERE operator_id = 20"
}
is "$(bands ${db}_r1) / $(bands ${db}_r2) / $(bands ${db}_r3)" \
	"$(bands $db) / $(bands $db) / $(bands $db)" \
	"the operator's own refund fee bands are restored by each restore, not replaced by the defaults"
is "$(q -d ${db}_r1 -c "SELECT count(*) FROM evcharge.refund_fee_bands WHERE operator_id = 77")" \
	"2" "a new operator after the restore gets its default refund fee bands"

# The ledger's rules hold in the restored database as they did: a
# transaction made now needs balanced entries by commit, with none or with
# entries that do not sum to zero; an account opens at zero.
ledger_rule() {
	psql -X -q -v ON_ERROR_STOP=1 -d ${db}_r1 -c "BEGIN" -c "$1" -c "COMMIT" 2>&1 | grep -o 'ledger transaction [0-9]* does not balance'
}
ok $(ledger_rule "INSERT INTO evcharge.ledger_txn (operator_id, kind, idem_key) VALUES (20, 'manual_credit', 'BK-RAW-1')" >/dev/null; echo $?) \
	"a transaction with no entry cannot be committed"
ok $(ledger_rule "WITH t AS (INSERT INTO evcharge.ledger_txn (operator_id, kind, idem_key) VALUES (20, 'manual_credit', 'BK-RAW-2') RETURNING txn_id)
	INSERT INTO evcharge.ledger_entry (txn_id, account_id, amount, operator_id) SELECT t.txn_id, evcharge.member_wallet(7001), 5.00, 20 FROM t" >/dev/null; echo $?) \
	"a transaction whose entries do not sum to zero cannot be committed"
is "$(q -d ${db}_r1 -c "INSERT INTO evcharge.account (operator_id, kind, balance) VALUES (77, 'adjustments', 99.00) RETURNING balance")" \
	"0.00" "an account opens at zero whatever the row says"
done_testing
