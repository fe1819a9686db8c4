#!/bin/bash
# Shared by the fault and load tests (sourced), on top of ../conns/lib.sh
# (instance per test, temp dir, cleanup, bg, wait_line, SUT, figures,
# wait_released; CONNS_STACK=kernel runs the program under test on Linux
# where a test supports it).
# shellcheck source=../conns/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../conns/lib.sh" "$@"

FAULTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOL=$FAULTS_DIR/faults_tool.py
PEER_TOOL=$FAULTS_DIR/../peer_tool.py
IMPAIR=$FAULTS_DIR/../../../scripts/lib/impair.py

# load_state: S_NS_PEER, S_IF_PEER, S_DAEMON_PID... of the instance.
load_state() {
	eval "$(sed -n 's/^\([A-Z_]*\)=/S_\1=/p' "/run/isostack/$ISOSTACK_NS_PREFIX/state")"
}

# stats: isostat -r into $tmp/stats.txt; sv KEY [FILE]: one value (0 if
# the daemon does not print it).
stats() {
	"$ISOSTAT" -r -c "$CONTROL" >"$tmp/stats.txt" 2>&1 ||
		fail "isostat -r: $(head -3 "$tmp/stats.txt")"
}
sv() {
	awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' "${2:-$tmp/stats.txt}"
}
# need_key KEY: skip when this daemon's isostat lacks KEY.
need_key() {
	stats
	grep -q "^$1 " "$tmp/stats.txt" ||
		{ echo "SKIP: isostat -r has no '$1' (a daemon without lwIP pool counters)"; exit 77; }
}

now() { date +%s.%N; }
# elapsed T0 T1: T1 - T0 in seconds, 3 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# le A B: A <= B (floats).
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# proc_state PID: R, S, D... (field 3 of /proc/PID/stat).
proc_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo gone; return; }
	s=${s##*) }
	echo "${s%% *}"
}

# wait_sleeping PID SECONDS: until every thread of PID sleeps (blocked in
# a call), polled ten times a second.
wait_sleeping() {
	local i t all
	for i in $(seq $(($2 * 10))); do
		all=1
		for t in /proc/"$1"/task/*; do
			[ "$(proc_state "${t##*/}")" = S ] || all=0
		done
		[ $all = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_stat KEY OP VALUE SECONDS: until isostat's KEY OP VALUE (awk
# comparison), polled ten times a second.
wait_stat() {
	local i
	for i in $(seq $(($4 * 10))); do
		stats
		awk -v v="$(sv "$1")" -v w="$3" "BEGIN { exit !(v $2 w) }" && return 0
		sleep 0.1
	done
	return 1
}
