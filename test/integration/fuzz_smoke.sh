# A 20-second smoke run of each libFuzzer target (the id grammar, the
# anomaly_set text form, the engines' arguments), with AddressSanitizer and
# UBSan.  The long runs are
# by hand: see docs/testing.md.  FUZZ_SMOKE_SECONDS shortens or lengthens
# each run.
source "$(dirname "$0")/lib/tap.sh"
plan 6
seconds=${FUZZ_SMOKE_SECONDS:-20}
smoke() {
	local target=$1 corpus=$2 work rc
	make -s -C "$EV_ROOT/test/fuzz" "$target" >/dev/null 2>&1
	ok $? "$target builds with clang -fsanitize=fuzzer,address,undefined"
	work=$(mktemp -d)
	"$EV_ROOT/test/fuzz/$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
		-artifact_prefix="$work/" "$work" "$EV_ROOT/test/fuzz/$corpus" >"$work/log" 2>&1
	rc=$?
	grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' "$work/log" | sed 's/^/# /'
	ok $rc "$target: $seconds s of fuzzing found nothing"
	# Keep whatever it found, to replay: ./test/fuzz/<target> <file>
	if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
		mkdir -p "$EV_ROOT/.cluster/test-logs/fuzz-artifacts/$target"
		cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* \
			"$EV_ROOT/.cluster/test-logs/fuzz-artifacts/$target/" 2>/dev/null
		echo "# artifacts kept in .cluster/test-logs/fuzz-artifacts/$target"
	fi
	rm -rf "$work"
}
smoke fuzz_ids corpus
smoke fuzz_anomaly corpus_anomaly
smoke fuzz_engines corpus_engines
done_testing
