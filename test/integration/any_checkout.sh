# The README's two commands work from any checkout a user can make: the
# repository (its committed HEAD) is cloned into root's home (mode 700: a
# root user's first clone lands there) or, for another user, a fresh
# mode-700 directory, in a path with a space in it, and
#   - ./scripts/demo runs there to the end: it builds and installs evcharge,
#     makes its own demo cluster (as root, with the data where postgres can
#     reach it, on another port than the test cluster's) and runs the demo;
#   - ./scripts/test regress makes the clone's own test cluster the same way
#     and passes (the other suites run from this checkout already).
# Then ./scripts/demo stop, and everything the clone made is removed; the
# build the clone installed is replaced by this checkout's own.
source "$(dirname "$0")/lib/tap.sh"
plan 10
if [ "$(id -u)" -eq 0 ] && [ "$(stat -c %a "$HOME")" = 700 ]; then
	top=$(mktemp -d "$HOME/evcharge-it.XXXXXX")
else
	top=$(mktemp -d)
fi
clone="$top/an evcharge checkout"
real=
put_back() {
	# The clone installed its build into the server: put this checkout's back.
	if [ "$(id -u)" -eq 0 ]; then
		make -C "$EV_ROOT" -s install >/dev/null 2>&1
	else
		sudo -n make -C "$EV_ROOT" -s install >/dev/null 2>&1
	fi
}
cleanup() {
	[ -x "$clone/scripts/demo" ] && "$clone/scripts/demo" stop >/dev/null 2>&1
	[ -n "$real" ] && rm -rf "$(dirname "$real")"
	rm -rf "$top"
	put_back
}
trap cleanup EXIT

git clone -q "$EV_ROOT" "$clone" 2>"$top/clone.log"
ok $([ -x "$clone/scripts/demo" ] && [ "$(stat -c %a "$top")" = 700 ]; echo $?) \
	"the repository is cloned into a mode-700 directory with a space in its path ($top)"
if [ "$(id -u)" -eq 0 ]; then
	ok $([ "$(stat -c %a "$HOME")" = 700 ] && case "$top" in "$HOME"/*) true;; *) false;; esac; echo $?) \
		"as root: the clone is in root's home, $HOME, mode 700"
else
	ok 0 "the clone is in root's home # SKIP not run as root"
fi
if [ "$(id -u)" -eq 0 ]; then
	reach=0
	runuser -u postgres -- test -x "$clone" 2>/dev/null || reach=1
	ok $((1 - reach)) "as root: postgres cannot reach the clone"
else
	ok 0 "postgres cannot reach the clone # SKIP not run as root"
fi

rc=0
(cd "$clone" && MAKEFLAGS=-j2 ./scripts/demo) >"$top/demo.log" 2>&1 || rc=$?
ok $rc "./scripts/demo runs to the end in the clone"
[ $rc -eq 0 ] || tail -20 "$top/demo.log" | sed 's/^/# /'
port=$(sed -nE 's/^The cluster is running: +psql -h 127\.0\.0\.1 -p ([0-9]+) .*/\1/p' "$top/demo.log")
grep -q '^== Settlement' "$top/demo.log" && [ -n "$port" ] && [ "$port" != "$PGPORT" ]
ok $? "its output has the day's settlement and the demo cluster's port (${port:-none}; the test cluster's is $PGPORT)"
if [ -L "$clone/.cluster/demo" ]; then
	real=$(readlink -f "$clone/.cluster/demo")
fi
if [ "$(id -u)" -eq 0 ]; then
	is "$(psql -X -tA -h 127.0.0.1 -p "${port:-0}" -U postgres -d evcharge -c "SHOW data_directory" 2>&1)" "${real:-no link}/data" \
		"as root: the server runs on the data in /var/lib/evcharge, where .cluster/demo links"
else
	ok 0 "the server runs on the data in /var/lib/evcharge # SKIP not run as root"
fi
is "$(psql -X -tA -h 127.0.0.1 -p "${port:-0}" -U postgres -d evcharge \
	-c "SELECT (SELECT count(*) > 0 FROM evcharge.bill) AND (SELECT count(*) FROM evcharge.verify_ledger()) = 0" 2>&1)" t \
	"the demo database holds the day's bills and its ledger verifies"

rc=0
(cd "$clone" && MAKEFLAGS=-j2 ./scripts/test regress) >"$top/test.log" 2>&1 || rc=$?
grep -qE '^[0-9]+ passed, 0 failed$' "$top/test.log" && [ $rc -eq 0 ]
ok $? "./scripts/test regress passes in the clone, on a cluster of its own: $(tail -1 "$top/test.log")"
[ $rc -eq 0 ] || tail -20 "$top/test.log" | sed 's/^/# /'

(cd "$clone" && ./scripts/demo stop) >/dev/null 2>&1
ok $([ -n "$port" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; echo $?) "./scripts/demo stop stops the demo cluster"

[ -n "$real" ] && rm -rf "$(dirname "$real")"
rm -rf "$top"
ok $([ ! -e "$top" ] && { [ -z "$real" ] || [ ! -e "$(dirname "$real")" ]; }; echo $?) \
	"the clone and its cluster's data are removed"
done_testing
