#!/usr/bin/env bash
# demo/day.sh: the day demo's shell step.  Builds bench/trafficgen with cc in
# a temporary directory, generates the day there (by default 4 stations x 6
# piles on 2026-11-20, seed 1; further arguments go to trafficgen), and runs
# demo/day.sql on the database given (default evcharge) with psql, which
# takes PGHOST/PGPORT/PGUSER from the caller (scripts/lib.sh's cluster_up).
# The temporary directory is removed afterwards.
#   demo/day.sh [DATABASE [TRAFFICGEN ARGS...]]
#   demo/day.sh evcharge --seed 10 --defect-rate 0.03 --incidents 3
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
db=${1:-evcharge}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cc -O2 -Wall -Wextra -Werror -o "$tmp/trafficgen" "$root/bench/trafficgen/trafficgen.c"
"$tmp/trafficgen" --quiet --out "$tmp/day" "$@"
psql -X -q -v ON_ERROR_STOP=1 -v gen_dir="$tmp/day" -d "$db" -f "$root/demo/day.sql"
