# One command does not destroy the books: while the ledger holds entries
# (or there is any bill), DROP EXTENSION evcharge, with or without CASCADE,
# DROP SCHEMA evcharge CASCADE, and the CASCADE drops of what evcharge
# stands on (btree_gist, its schema) fail with 2BP01 and say what would be
# lost; nothing is dropped.  Other extensions and schemas drop as before,
# and so does evcharge while it holds no money.  SET evcharge.allow_drop =
# on (in the session, or by PGOPTIONS before the library is loaded) lets a
# deliberate drop through.
source "$(dirname "$0")/lib/tap.sh"
plan 18
db=evcharge_it_dropguard
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"; q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT

# refused "SQL": the command fails with 2BP01 and evcharge is still there.
refused() {
	local out rc=0
	out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d $db -c "$1" 2>&1) || rc=$?
	echo "$out" >"$work/last"
	[ $rc -ne 0 ] && echo "$out" | grep -q '^ERROR:  2BP01: ' &&
		[ "$(q -d $db -c "SELECT count(*) FROM pg_extension WHERE extname = 'evcharge'")" = 1 ]
}
books() { q -d $db -c "SELECT (SELECT count(*) FROM evcharge.ledger_entry) || ' ' || (SELECT count(*) FROM evcharge.ledger_txn)"; }

q -d $db -c "DROP EXTENSION evcharge" >/dev/null
ok $? "an evcharge that holds no money drops as any extension"
q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE" >/dev/null

q -d $db >/dev/null <<'SQL'
INSERT INTO evcharge.operator VALUES (1, 'drop guard test');
INSERT INTO evcharge.member (member_id, operator_id) VALUES (501, 1), (502, 1);
SELECT evcharge.top_up(evcharge.member_wallet(501), 100.00, 'DG-1');
SELECT evcharge.top_up(evcharge.member_wallet(502), 25.50, 'DG-2');
SQL
is "$(books)" "4 2" "the ledger holds 4 entries in 2 transactions"

refused "DROP EXTENSION evcharge"
ok $? "DROP EXTENSION evcharge is refused (2BP01)"
sed -n '1,3p' "$work/last" | sed 's/^/# /'
grep -q '^ERROR:  2BP01: cannot drop extension evcharge because it holds 4 ledger entries and 0 bills$' "$work/last"
ok $? "... saying what it holds"
grep -q '^DETAIL:  DROP EXTENSION evcharge was refused\. .*the ledger (4 entries in 2 transactions), 0 bills' "$work/last"
ok $? "... what would be lost"
grep -q '^HINT:  .*pg_dump.*SET evcharge.allow_drop = on' "$work/last"
ok $? "... and how to proceed deliberately"
refused "DROP EXTENSION evcharge CASCADE"
ok $? "DROP EXTENSION evcharge CASCADE is refused"
refused "DROP EXTENSION IF EXISTS pg_trgm, evcharge"
ok $? "DROP EXTENSION of a list that names evcharge is refused"
refused "DROP SCHEMA evcharge CASCADE"
ok $? "DROP SCHEMA evcharge CASCADE is refused"
refused "DROP EXTENSION btree_gist CASCADE"
ok $? "DROP EXTENSION btree_gist CASCADE (which evcharge requires) is refused"
grep -q 'It drops extension btree_gist, which evcharge requires' "$work/last"
ok $? "... saying it would cascade to evcharge"
refused "DROP SCHEMA public CASCADE"
ok $? "DROP SCHEMA public CASCADE (where btree_gist lives) is refused"
is "$(books)" "4 2" "after all that, the ledger is whole"

q -d $db -c "CREATE EXTENSION pg_trgm" -c "DROP EXTENSION pg_trgm" -c "CREATE SCHEMA scratch" \
	-c "CREATE TABLE scratch.t (i int)" -c "DROP SCHEMA scratch CASCADE" >/dev/null 2>&1
ok $? "other extensions and schemas drop as before"

# Deliberately: the setting in the session.
q -d $db -c "SET evcharge.allow_drop = on" -c "DROP EXTENSION evcharge" >/dev/null
ok $? "with SET evcharge.allow_drop = on, DROP EXTENSION evcharge drops it"
is "$(q -d $db -c "SELECT count(*) FROM pg_extension WHERE extname = 'evcharge'") $(q -d $db -c "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'evcharge_drop_guard'")" \
	"0 0" "the extension and its event trigger are gone"

# Deliberately, set before the library is loaded (a placeholder it takes up).
q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE" \
	-c "INSERT INTO evcharge.operator VALUES (1, 'again')" -c "INSERT INTO evcharge.member (member_id, operator_id) VALUES (501, 1)" \
	-c "SELECT evcharge.top_up(evcharge.member_wallet(501), 10.00, 'DG-3')" >/dev/null
refused "DROP SCHEMA evcharge CASCADE"
ok $? "the guard is back with the extension"
PGOPTIONS='-c evcharge.allow_drop=on' q -d $db -c "SET client_min_messages = warning" -c "DROP SCHEMA evcharge CASCADE" >/dev/null
ok $? "PGOPTIONS='-c evcharge.allow_drop=on' lets DROP SCHEMA evcharge CASCADE through"
done_testing
