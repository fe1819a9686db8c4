#!/usr/bin/env bash
# The short soak: `isostack bench soak` for SOAK_SECONDS (30) of mixed
# traffic, every transfer verified (docs/testing.md, "Soak").
#
# Binaries: those of an ASan build when there is one: this build dir if it
# is instrumented (isostack test runs this test in build-asan, suite
# sanitize), else a build-asan beside it whose daemon and shim are not
# older than this build's (a stale one would test old code); otherwise
# this build's, and it says so. Under ASan the daemon runs with
# detect_leaks=1: LeakSanitizer checks it when it exits (SIGTERM at the
# end of the soak), and its log must have no AddressSanitizer,
# LeakSanitizer or UBSan report; the isoperf clients under the shim
# (C, instrumented) exit through LeakSanitizer too, each one checked.
#
# Asserts: every traffic worker moved data and none failed; lwIP's pools
# (memp.*.used, memp.heap.used), the applications' sockets, backend's open
# sockets and mem.backed back at their idle values once the traffic
# stopped; the daemon exited 0. Never speed, and not RSS under ASan (its
# quarantine keeps freed memory).
soak_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$soak_dir/../lib.sh"

BUILD=${ISOSTACK_BUILD:-$soak_dir/../../../build}
SECONDS_OF_TRAFFIC=${SOAK_SECONDS:-30}

command -v ldd >/dev/null || skip "needs ldd (libc-bin)"
is_asan() { ldd "$1" 2>/dev/null | grep -q 'libasan\.so\|libclang_rt\.asan'; }

# pick DIR: the binaries of build dir DIR, all four present.
pick() {
	local d=$1
	DAEMON=$d/daemon/isostackd SHIM=$d/libisosock/libisosock.so
	ISOPERF=$d/bench/isoperf ISOSTAT=$d/daemon/isostat
	[ -x "$DAEMON" ] && [ -f "$SHIM" ] && [ -x "$ISOPERF" ] && [ -x "$ISOSTAT" ]
}

asan=0
if is_asan "$ISOSTACK_DAEMON" && pick "$(dirname "$(dirname "$ISOSTACK_DAEMON")")"; then
	asan=1
	why="this build is instrumented"
elif [ -d "$BUILD/../build-asan" ] && pick "$BUILD/../build-asan" && is_asan "$DAEMON" &&
     [ ! "$DAEMON" -ot "$ISOSTACK_DAEMON" ] && [ ! "$SHIM" -ot "$BUILD/libisosock/libisosock.so" ]; then
	asan=1
	why="build-asan beside this build, not older than it"
else
	pick "$BUILD" || skip "no shim, isoperf or isostat in $BUILD (build them first)"
	DAEMON=$ISOSTACK_DAEMON
	why="no up-to-date ASan build (isostack build --sanitize): this build, no leak check"
fi
step "binaries: $(dirname "$(dirname "$DAEMON")") ($why)"

out=$(mktemp -d /tmp/soak-short.XXXXXX)
# Kept when the test fails, for its logs.
trap 'st=$?; if [ $st -eq 0 ]; then rm -rf "$out"; else echo "soak output kept in $out"; fi' EXIT
export ISOSTACK_DAEMON=$DAEMON ISOSTACK_SHIM=$SHIM ISOSTACK_ISOPERF=$ISOPERF ISOSTACK_ISOSTAT=$ISOSTAT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# One known leak of libxdp's, not ours, once per port (lsan.supp says which).
export LSAN_OPTIONS=suppressions=$soak_dir/lsan.supp:print_suppressions=1

step "isostack bench soak --seconds $SECONDS_OF_TRAFFIC"
rc=0
"$ISOSTACK_CLI" bench soak --seconds "$SECONDS_OF_TRAFFIC" --interval 5 --out "$out" || rc=$?
if [ ! -f "$out/soak.json" ]; then
	tail -n 30 "$out/isostackd.log" 2>/dev/null || true
	fail "bench soak left no soak.json (exit $rc)"
fi

step "checks"
python3 - "$out/soak.json" "$asan" <<'PY' || fail "the soak's results (above)"
import json, sys
r = json.load(open(sys.argv[1]))
asan = sys.argv[2] == "1"
bad = []
for name, w in r["workers"].items():
    if w["ops"] <= 0:
        bad.append(f"{name}: no verified transfer at all")
    if w["failures"]:
        bad.append(f"{name}: {w['failures']} failed: {w['errors'][:2]}")
if r["workers"]["restart"].get("runs", 0) < 3:
    bad.append("fewer than 3 applications started under the shim")
pools = {k: v for k, v in r["series"].items() if k != "rss_kb"}
if not any(k.startswith("memp.") for k in pools):
    bad.append("no memp.* series: isostat -r has no pool levels")
for k, v in pools.items():
    print(f"  {k:26} idle {v['first']:>10}  max {v['max']:>10}  after {v['last']:>10}"
          f"  {'ok' if v['ok'] else 'NOT BACK'} ({v['tolerance']})")
    if not v["ok"]:
        bad.append(f"{k}: {v['first']} before the traffic, {v['last']} after it")
if r.get("daemon_exit") != 0:
    bad.append(f"isostackd exited with status {r.get('daemon_exit')}")
if r.get("sanitizer_reports"):
    bad.append(f"{r['sanitizer_reports']} sanitizer lines in the daemon's log")
if asan != r.get("asan"):
    bad.append(f"bench soak saw asan={r.get('asan')}, the test expected {asan}")
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
if grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out/isostackd.log"; then
	fail "sanitizer report in the daemon's log"
fi
[ $rc -eq 0 ] || fail "isostack bench soak exited $rc"
if [ $asan = 1 ]; then
	grep -q 'AddressSanitizer\|LeakSanitizer' "$out/soak-logs/isoperf-client.log" 2>/dev/null &&
		fail "a sanitizer report from an application under the shim (above)"
	echo "PASS: verified traffic, pools back at idle, the daemon's exit under LeakSanitizer clean"
else
	echo "PASS: verified traffic, pools back at idle (no ASan build: leaks not checked)"
fi
