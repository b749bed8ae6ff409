# test/integration/lib/tap.sh: a few TAP helpers for the integration scripts.
# Each script sources this, calls plan N, then ok/is, and ends with done_testing.
# The scripts run with PGHOST/PGPORT/PGUSER of the test cluster exported by
# scripts/test; EV_ROOT is the checkout.

EV_ROOT=${EV_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
_tap_n=0
_tap_failed=0
_tap_planned=0

plan() { _tap_planned=$1; echo "1..$1"; }

# ok CONDITION_EXIT_STATUS DESCRIPTION
ok() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
	fi
}

# is HAVE WANT DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		printf '#   have: %s\n#   want: %s\n' "$1" "$2"
	fi
}

# Print the rest of a plan that was not reached as failures, then exit.
done_testing() {
	while [ "$_tap_n" -lt "$_tap_planned" ]; do
		ok 1 "not reached"
	done
	[ "$_tap_failed" -eq 0 ]
	exit $?
}

# psql returning one unaligned value; errors go to stderr.
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$@"; }

# A fresh database with evcharge in it.
fresh_db() {
	q -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null 2>&1
	q -d "$1" -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE" \
		-c "ALTER DATABASE $1 SET search_path = \"\$user\", public, evcharge" >/dev/null
}
