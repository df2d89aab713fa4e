#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for FUZZ_SECONDS (default 60) with cargo-fuzz on a nightly
# toolchain, prints the executions per target, and exits non-zero on a finding (the input is in
# tests/fuzz/artifacts/<target>/). Without nightly or cargo-fuzz it says so and runs the property
# tests instead, with PROPTEST_CASES (default 60 per FUZZ_SECONDS) cases each.
#
#   FUZZ_SECONDS=600 make fuzz                     longer
#   FUZZ_TARGETS="parse_webhook" make fuzz         one target
#   FUZZ_PROPTEST=1 make fuzz                      the fallback, even with nightly
#
# cargo-fuzz is installed into .cache/cargo-fuzz on first use. The committed seeds
# (tests/fuzz/corpus) are rewritten from events/ first; what libFuzzer finds on top of them goes
# to tests/fuzz/target/corpus (ignored), so later runs resume from it. Inputs that found a bug
# are kept as tests/fuzz/corpus/<target>/finding-*: a run fails on them at once until it is fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-verify_signature parse_webhook format_reply}
PROPTEST_CASES=${PROPTEST_CASES:-$((FUZZ_SECONDS * 60))}
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT=.cache/cargo-fuzz
FUZZ_DIR=tests/fuzz
# A single input slower than this is a finding too (a hang or something quadratic).
TIMEOUT_SECONDS=25

case "$FUZZ_SECONDS" in
'' | *[!0-9]* | 0)
	echo "make fuzz: FUZZ_SECONDS must be a positive number of seconds, not '$FUZZ_SECONDS'" >&2
	exit 2
	;;
esac

echo "==> seeds: tests/fuzz/corpus from events/ and sample agent replies"
cargo test --quiet --test properties -- --ignored --exact write_fuzz_seeds >/dev/null

proptest_instead() {
	echo "==> make fuzz: $1."
	echo "==> NOT fuzzing: running the property tests instead, PROPTEST_CASES=$PROPTEST_CASES."
	PROPTEST_CASES=$PROPTEST_CASES cargo test --test properties --test reply
	echo "==> property tests passed ($PROPTEST_CASES cases each; tests/reply.rs keeps its own count)."
	echo "==> for real fuzzing: rustup toolchain install nightly, then make fuzz again."
}

if [ -n "${FUZZ_PROPTEST:-}" ]; then
	proptest_instead "FUZZ_PROPTEST is set"
	exit 0
fi

# A nightly toolchain: through rustup, or a nightly rustc on PATH.
if command -v rustup >/dev/null && rustup run nightly rustc --version >/dev/null 2>&1; then
	NIGHTLY=(cargo +nightly)
elif rustc --version 2>/dev/null | grep -q nightly; then
	NIGHTLY=(cargo)
else
	proptest_instead "no nightly toolchain (cargo-fuzz needs one)"
	exit 0
fi

CARGO_FUZZ=$CARGO_FUZZ_ROOT/bin/cargo-fuzz
if ! "$CARGO_FUZZ" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
	echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT"
	if ! cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$CARGO_FUZZ_ROOT"; then
		proptest_instead "cargo-fuzz could not be installed"
		exit 0
	fi
fi
export PATH="$PWD/$CARGO_FUZZ_ROOT/bin:$PATH"

echo "==> building the fuzz targets (nightly, AddressSanitizer)"
"${NIGHTLY[@]}" fuzz build --fuzz-dir "$FUZZ_DIR"

mkdir -p "$FUZZ_DIR/target/logs"
summary=$(printf '%-18s %14s  %s' target executions result)
failed=0
for target in $FUZZ_TARGETS; do
	case "$target" in
	parse_webhook) extra=(-dict="$FUZZ_DIR/dict/webhook.dict" -max_len=16384) ;;
	format_reply) extra=(-dict="$FUZZ_DIR/dict/reply.dict" -max_len=16384) ;;
	*) extra=(-max_len=4096) ;;
	esac
	work="$FUZZ_DIR/target/corpus/$target"
	log="$FUZZ_DIR/target/logs/$target.log"
	mkdir -p "$work"
	echo "==> fuzzing $target for ${FUZZ_SECONDS}s (log: $log)"
	status=0
	"${NIGHTLY[@]}" fuzz run --fuzz-dir "$FUZZ_DIR" "$target" "$work" "$FUZZ_DIR/corpus/$target" -- \
		-max_total_time="$FUZZ_SECONDS" -timeout="$TIMEOUT_SECONDS" -print_final_stats=1 \
		"${extra[@]}" >"$log" 2>&1 || status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ "$status" -eq 0 ]; then
		result="ok"
	elif grep -q "failed to build fuzz script" "$log"; then
		failed=1
		result="BUILD FAILED (see $log)"
		grep -m 1 -A 8 "^error" "$log" || true
	else
		failed=1
		artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		result="FINDING ${artifact:-(see $log)}"
		grep -m 1 -A 12 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" || tail -n 30 "$log"
	fi
	echo "    $target: ${runs:-?} executions, $result"
	summary+=$'\n'$(printf '%-18s %14s  %s' "$target" "${runs:-?}" "$result")
done

echo
echo "$summary"
if [ "$failed" -ne 0 ]; then
	echo "make fuzz: findings above. With PATH=\$PWD/$CARGO_FUZZ_ROOT/bin:\$PATH,"
	echo "  reproduce: ${NIGHTLY[*]} fuzz run --fuzz-dir $FUZZ_DIR <target> <file>"
	echo "  minimise:  ${NIGHTLY[*]} fuzz tmin --fuzz-dir $FUZZ_DIR <target> <file>"
	exit 1
fi
