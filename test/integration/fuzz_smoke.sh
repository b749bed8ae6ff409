# A 20-second smoke run of the libFuzzer target for the id grammar, with
# AddressSanitizer and UBSan.  The long run is by hand: see docs/testing.md.
source "$(dirname "$0")/lib/tap.sh"
plan 2
make -s -C "$EV_ROOT/test/fuzz" fuzz_ids >/dev/null 2>&1
ok $? "fuzz target builds with clang -fsanitize=fuzzer,address,undefined"
work=$(mktemp -d)
"$EV_ROOT/test/fuzz/fuzz_ids" -max_total_time=20 -max_len=4096 -print_final_stats=1 \
	-artifact_prefix="$work/" "$work" "$EV_ROOT/test/fuzz/corpus" >"$work/log" 2>&1
rc=$?
grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' "$work/log" | sed 's/^/# /'
ok $rc "20 s of fuzzing found nothing"
# Keep whatever it found, to replay: ./test/fuzz/fuzz_ids <file>
if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
	mkdir -p "$EV_ROOT/.cluster/test-logs/fuzz-artifacts"
	cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$EV_ROOT/.cluster/test-logs/fuzz-artifacts/" 2>/dev/null
	echo "# artifacts kept in .cluster/test-logs/fuzz-artifacts"
fi
rm -rf "$work"
done_testing
