# Shared by the integration tests (sourced, not run). Each test gets its
# own isostack instance: ISOSTACK_NS_PREFIX carries the test's pid, and an
# EXIT trap always runs `isostack down` for it.
#
# meson passes ISOSTACK_DAEMON (the isostackd it built) and ISOSTACK_CLI
# (scripts/isostack); run by hand, they default to this checkout's build/.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ISOSTACK_CLI=${ISOSTACK_CLI:-$here/../../scripts/isostack}
ISOSTACK_DAEMON=${ISOSTACK_DAEMON:-$here/../../build/daemon/isostackd}
PEER_TOOL=$here/peer_tool.py
DADDR=198.18.0.1
export ISOSTACK_DAEMON

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, hugepages, DPDK)"
[ -x "$ISOSTACK_DAEMON" ] || skip "no isostackd at $ISOSTACK_DAEMON (build the daemon first)"
command -v python3 >/dev/null || skip "needs python3"
command -v ping >/dev/null || skip "needs ping (iputils-ping)"

# One instance per test process; the name says which test (for a human
# looking at `ip netns`) and its pid (so parallel runs never clash).
test_prefix() {
	local tag=$1
	export ISOSTACK_NS_PREFIX="it${tag:0:3}$$"
	export ISOSTACK_NS_PREFIX=${ISOSTACK_NS_PREFIX:0:13}
}

# Bring the instance up with the given `isostack up` options, and arrange
# for it to go down on every exit path. A start that fails for want of
# AF_XDP/AF_PACKET is a skip, anything else a failure.
stack_up() {
	local out rc=0
	trap stack_down EXIT
	trap 'exit 130' INT TERM
	out=$("$ISOSTACK_CLI" up "$@" 2>&1) || rc=$?
	echo "$out"
	if [ $rc -ne 0 ]; then
		if grep -qiE 'af_xdp|af_packet' <<<"$out" &&
		   grep -qiE 'not supported|no such device|Address family not supported|Operation not permitted' <<<"$out"; then
			skip "the daemon could not open an af_xdp or af_packet vdev here"
		fi
		fail "isostack up $*"
	fi
	STATE_DIR=${ISOSTACK_STATE_DIR:-/run/isostack}/$ISOSTACK_NS_PREFIX
	# shellcheck disable=SC1090
	eval "$(sed -n 's/^\([A-Z0-9_]*\)=/S_\1=/p' "$STATE_DIR/state")"
}

# Functions to run on exit before the instance goes down (e.g. to stop a
# helper process or delete a namespace the test made itself).
EXIT_HOOKS=()
on_exit() { EXIT_HOOKS+=("$1"); }

stack_down() {
	local rc=$? hook
	for hook in "${EXIT_HOOKS[@]}"; do "$hook" || true; done
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -n "${STATE_DIR:-}" ] &&
	   [ -s "$STATE_DIR/isostackd.log" ]; then
		echo "-- last lines of the daemon's log:"
		tail -n 40 "$STATE_DIR/isostackd.log"
	fi
	"$ISOSTACK_CLI" down || true
	exit $rc
}

peer() { "$ISOSTACK_CLI" peer -- "$@"; }

# The daemon is still the process up started.
daemon_alive() {
	[ -d "/proc/$S_DAEMON_PID" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$S_DAEMON_PID/stat"
}

# utime+stime of the daemon, in clock ticks.
daemon_cpu_ticks() {
	local stat
	stat=$(cat "/proc/$S_DAEMON_PID/stat")
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo $(( ${12} + ${13} ))      # fields 14 and 15
}
