# The upgrade path: a database made with release 0.1.0 (its install script
# as it shipped, sql/release/evcharge--0.1.0.sql) and loaded the way 0.1.0
# users did (the 0.1.0 demo: ids, tariffs, a generated day through the
# pipeline, money), then ALTER EXTENSION evcharge UPDATE:
#   - the catalogue (test/integration/lib/catalogue.sql) equals a fresh
#     install of the current version, line for line;
#   - every row that was there is there unchanged (an md5 per table over the
#     columns 0.1.0 had);
#   - the ledger verifies, and the current demo day runs on it and bills
#     exactly as on a fresh install.
# Every change to the extension's SQL must come with its part of the upgrade
# script, or this test fails.
source "$(dirname "$0")/lib/tap.sh"
plan 9
old=evcharge_up_old
new=evcharge_up_new
dir=$EV_ROOT/test/integration/upgrade
version=$(sed -nE "s/^default_version = '(.*)'/\1/p" "$EV_ROOT/evcharge.control")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in $old $new; do
	q -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" -c "CREATE DATABASE $d" >/dev/null 2>&1
	q -d $d -c "ALTER DATABASE $d SET search_path = \"\$user\", public, evcharge" >/dev/null
done

q -d $old -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge VERSION '0.1.0' CASCADE" >/dev/null
is "$(q -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" 0.1.0 "release 0.1.0 installs from its own script"

# The 0.1.0 demo, with the generator of today (its output format is 0.1.0's).
cc -O2 -Wall -Wextra -Werror -o "$tmp/trafficgen" "$EV_ROOT/bench/trafficgen/trafficgen.c"
"$tmp/trafficgen" --quiet --out "$tmp/day"
loaded=0
{
	psql -X -q -v ON_ERROR_STOP=1 -d $old -f "$dir/ids-0.1.0.sql" &&
	psql -X -q -v ON_ERROR_STOP=1 -d $old -f "$dir/tariffs-0.1.0.sql" &&
	psql -X -q -v ON_ERROR_STOP=1 -v gen_dir="$tmp/day" -d $old -f "$dir/day-0.1.0.sql" &&
	psql -X -q -v ON_ERROR_STOP=1 -d $old -f "$dir/money-0.1.0.sql"
} >"$tmp/load.log" 2>&1 || loaded=1
ok $loaded "the 0.1.0 demo day and money load into 0.1.0"
[ $loaded -eq 0 ] || tail -20 "$tmp/load.log" | sed 's/^/# /'
q -d $old -c "SELECT count(*) FROM evcharge.bill" -c "SELECT count(*) FROM evcharge.ledger_entry" |
	tr '\n' ' ' | sed 's/^/# bills and ledger entries in 0.1.0: /'; echo
psql -X -q -d $old -v save=1 -f "$EV_ROOT/test/integration/lib/digest.sql" >"$tmp/before.txt"

rc=0
q -d $old -c "SET client_min_messages = warning" -c "ALTER EXTENSION evcharge UPDATE" >"$tmp/update.log" 2>&1 || rc=$?
ok $rc "ALTER EXTENSION evcharge UPDATE from 0.1.0"
[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/update.log"
is "$(q -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" "$version" "the database is at $version"

q -d $new -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE" >/dev/null
psql -X -q -d $old -f "$EV_ROOT/test/integration/lib/catalogue.sql" >"$tmp/cat_old.txt"
psql -X -q -d $new -f "$EV_ROOT/test/integration/lib/catalogue.sql" >"$tmp/cat_new.txt"
diff "$tmp/cat_new.txt" "$tmp/cat_old.txt" >"$tmp/cat.diff"
ok $? "the upgraded catalogue equals a fresh $version install ($(wc -l <"$tmp/cat_new.txt") lines)"
head -60 "$tmp/cat.diff" | sed 's/^/# /'

psql -X -q -d $old -v cols=saved -f "$EV_ROOT/test/integration/lib/digest.sql" >"$tmp/after.txt"
diff "$tmp/before.txt" "$tmp/after.txt" >"$tmp/data.diff"
ok $? "every table's rows are unchanged by the update ($(wc -l <"$tmp/before.txt") tables)"
sed 's/^/# /' "$tmp/data.diff" | head -20

is "$(q -d $old -c "SELECT count(*) FROM evcharge.verify_ledger()")" 0 "verify_ledger() finds nothing after the update"

# The current demo day, on the upgraded database and on a fresh one: the
# same bills, to the fen, and the ledger still verifies.
ran=0
for d in $old $new; do
	psql -X -q -v ON_ERROR_STOP=1 -v gen_dir="$tmp/day" -d $d -f "$EV_ROOT/demo/day.sql" >"$tmp/day-$d.log" 2>&1 || ran=1
done
ok $ran "today's demo day runs on the upgraded database and on a fresh one"
[ $ran -eq 0 ] || for d in $old $new; do tail -n 20 "$tmp/day-$d.log"; done | sed "s/^/# /"
bills() {
	q -d "$1" -c "SELECT md5(string_agg(concat_ws(' ', b.order_no, b.state, b.energy_wh, b.energy_fee, b.service_fee, b.occupancy_fee, b.total, b.anomalies), E'\n' ORDER BY b.order_no))
		FROM evcharge.bill b JOIN evcharge.station s USING (station_id) WHERE s.operator_id = 20"
}
is "$(bills $old)" "$(bills $new)" "the upgraded database bills today's day exactly as a fresh install"

[ -n "${KEEP:-}" ] || for d in $old $new; do q -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1; done
done_testing
