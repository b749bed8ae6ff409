# Static analysis of the C code: cppcheck and clang-tidy as `make lint`
# runs them (see Makefile) must report nothing.
source "$(dirname "$0")/lib/tap.sh"
plan 1
out=$(make -s -C "$EV_ROOT" lint 2>&1)
rc=$?
echo "$out" | grep -vE '^[0-9]+ warnings? generated|^Suppressed|header-filter|^$' | sed 's/^/# /'
ok $rc "cppcheck and clang-tidy are quiet on src/, the bridge (src/bridge/) and the fuzz targets"
done_testing
