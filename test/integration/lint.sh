# Static analysis of the C code: cppcheck and clang-tidy as `make lint`
# runs them (see Makefile) must report nothing.
source "$(dirname "$0")/lib/tap.sh"
plan 3
out=$(make -s -C "$EV_ROOT" lint 2>&1)
rc=$?
echo "$out" | grep -vE '^[0-9]+ warnings? generated|^Suppressed|header-filter|^$' | sed 's/^/# /'
ok $rc "cppcheck and clang-tidy are quiet on src/, the bridge (src/bridge/) and the fuzz targets"
# The load order is the call order (scripts/sql_order.py, run by the build).
files=$(sed -n '/^INSTALL_SQL = /,/^$/p' "$EV_ROOT/Makefile" | grep -o 'sql/install/[a-z_]*\.sql')
python3 "$EV_ROOT/scripts/sql_order.py" $files
ok $? "every SQL file (and the C that serves it) calls only what stands before it in INSTALL_SQL"
err=$(python3 "$EV_ROOT/scripts/sql_order.py" $(echo "$files" | grep -v '/money.sql') sql/install/money.sql 2>&1)
rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "sql/install/jobs.sql calls evcharge.settle_bills, declared later in sql/install/money.sql"
ok $? "money.sql loaded last: the check fails and names the call (jobs.sql calls settle_bills)"
done_testing
