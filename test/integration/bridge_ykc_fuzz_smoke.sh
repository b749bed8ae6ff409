# A 20-second smoke run of the bridge's YKC libFuzzer target
# (src/bridge/fuzz/fuzz_ykc.c: the YKC frame scanner and CRC, BCD and
# CP56Time2a, the mapping of every frame type and the platform's frames)
# with AddressSanitizer and UBSan.  Longer runs by hand: docs/bridge.md.
# FUZZ_SMOKE_SECONDS shortens or lengthens it.
source "$(dirname "$0")/lib/tap.sh"
plan 2
seconds=${FUZZ_SMOKE_SECONDS:-20}
make -s -C "$EV_ROOT" src/bridge/fuzz/fuzz_ykc >/dev/null 2>&1
ok $? "fuzz_ykc builds with clang -fsanitize=fuzzer,address,undefined"
work=$(mktemp -d)
"$EV_ROOT/src/bridge/fuzz/fuzz_ykc" -max_total_time="$seconds" -max_len=2048 -print_final_stats=1 \
	-artifact_prefix="$work/" "$work" "$EV_ROOT/src/bridge/fuzz/ykc_corpus" >"$work/log" 2>&1
rc=$?
grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' "$work/log" | sed 's/^/# /'
ok $rc "fuzz_ykc: $seconds s of fuzzing found nothing"
if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
	mkdir -p "$EV_ROOT/.cluster/test-logs/fuzz-artifacts/fuzz_ykc"
	cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$EV_ROOT/.cluster/test-logs/fuzz-artifacts/fuzz_ykc/" 2>/dev/null
	echo "# artifacts kept in .cluster/test-logs/fuzz-artifacts/fuzz_ykc"
fi
rm -rf "$work"
done_testing
