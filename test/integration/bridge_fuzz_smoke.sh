# A 20-second smoke run of the bridge's libFuzzer target (src/bridge/fuzz/:
# OCPP-J frame decoder, schema check and mapping) with AddressSanitizer and
# UBSan.  Longer runs by hand: docs/bridge.md.  FUZZ_SMOKE_SECONDS shortens or
# lengthens it.
source "$(dirname "$0")/lib/tap.sh"
plan 2
seconds=${FUZZ_SMOKE_SECONDS:-20}
make -s -C "$EV_ROOT" fuzz-bridge >/dev/null 2>&1
ok $? "fuzz_frame builds with clang -fsanitize=fuzzer,address,undefined"
work=$(mktemp -d)
"$EV_ROOT/src/bridge/fuzz/fuzz_frame" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
	-dict="$EV_ROOT/src/bridge/fuzz/ocpp.dict" \
	-artifact_prefix="$work/" "$work" "$EV_ROOT/src/bridge/fuzz/corpus" >"$work/log" 2>&1
rc=$?
grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' "$work/log" | sed 's/^/# /'
ok $rc "fuzz_frame: $seconds s of fuzzing found nothing"
if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
	mkdir -p "$EV_ROOT/.cluster/test-logs/fuzz-artifacts/fuzz_frame"
	cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$EV_ROOT/.cluster/test-logs/fuzz-artifacts/fuzz_frame/" 2>/dev/null
	echo "# artifacts kept in .cluster/test-logs/fuzz-artifacts/fuzz_frame"
fi
rm -rf "$work"
done_testing
