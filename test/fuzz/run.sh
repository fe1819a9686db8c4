#!/bin/bash
# Runs libFuzzer targets for a bounded time; fails on any crash, hang,
# leak or sanitizer report (docs/reliability.md, "Fuzzing").
#
#   run.sh FUZZER CORPUS-DIR      one target (what meson's suite fuzz runs)
#   run.sh BUILD-DIR              every fuzz_* target of a -Dfuzz=true build
#
# FUZZ_SECONDS (default 60) per target.  The committed corpus is read, never
# written: new inputs go to a temporary directory.  A failing input is kept
# in FUZZ_ARTIFACTS (default ./fuzz-artifacts) and printed; add it to
# corpus/<target>/ once fixed.  Exits 77 when there is no fuzzer to run.
set -u

secs=${FUZZ_SECONDS:-60}
here=$(cd "$(dirname "$0")" && pwd)
arts=${FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}

run_one() {
	local fuzzer=$1 corpus=$2 name work log rc units
	name=$(basename "$fuzzer")
	work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
	log=$work.log
	mkdir -p "$arts"
	echo "$name: ${secs} s, seeds from $corpus"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	taskset -c 0 "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-error_exitcode=1 -timeout_exitcode=1 \
		-print_final_stats=1 -artifact_prefix="$arts/$name-" \
		"$work" "$corpus" >"$log" 2>&1
	rc=$?
	units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $rc -ne 0 ] || grep -q 'runtime error:\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer' "$log"; then
		tail -60 "$log"
		echo "$name: FAILED (exit $rc) after ${units:-?} inputs; input kept in $arts/"
		ls -1 "$arts" | sed "s|^|  $arts/|"
		rm -rf "$work" "$log"
		return 1
	fi
	echo "$name: ${units:-?} inputs in ${secs} s, $(ls "$work" | wc -l) new corpus entries, no crash, hang, leak or sanitizer report"
	rm -rf "$work" "$log"
}

if [ $# -eq 2 ]; then
	[ -x "$1" ] || { echo "no fuzzer at $1"; exit 77; }
	run_one "$1" "$2"
	exit
fi
dir=${1:-build-fuzz}
targets=("$dir"/test/fuzz/fuzz_*)
[ -x "${targets[0]}" ] || {
	echo "no fuzz targets in $dir: build with clang -Dfuzz=true (scripts/isostack build --fuzz)"
	exit 77
}
fail=0
for f in "${targets[@]}"; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	run_one "$f" "$here/corpus/${f##*/fuzz_}" || fail=1
done
exit $fail
