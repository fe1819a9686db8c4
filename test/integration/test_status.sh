#!/usr/bin/env bash
# `isostack status` (issue 16, point 3) through an instance's life: before
# `up` it says down and exits 3; once up it exits 0 and shows the daemon's
# pid, port, address, MTU, mode, the stack core's busy share and the log;
# an application attached through the shim appears with its pid, socket
# count and command; a stopped (SIGSTOP) daemon whose control socket does
# not answer is down (3), and so is one that was killed; after `down`, 3.
#
# meson passes the shim as $1.
. "$(dirname "$0")/lib.sh"

SHIM=${1:-${ISOSTACK_SHIM:-}}
[ -x "$(dirname "$ISOSTACK_DAEMON")/isostat" ] || skip "no isostat beside $ISOSTACK_DAEMON"
if [ -z "$SHIM" ] || [ ! -f "$SHIM" ]; then
	skip "no libisosock.so (meson passes it as the first argument)"
fi
ISOSTACK_SHIM=$(readlink -f "$SHIM")
export ISOSTACK_SHIM

tmp=$(mktemp -d)
APP_PID=
STOPPED=
cleanup_status() {
	[ -z "$STOPPED" ] || kill -CONT "$STOPPED" 2>/dev/null || true
	exec 5>&- 6<&- 2>/dev/null || true   # EOF on the app's stdin: it exits
	[ -z "$APP_PID" ] || wait "$APP_PID" 2>/dev/null || true
	rm -rf "$tmp"
}
on_exit cleanup_status
test_prefix sta

# status_is RC [ARGS]: isostack status exits RC; its output in $tmp/st.
status_is() {
	local want=$1 rc=0
	shift
	"$ISOSTACK_CLI" status "$@" >"$tmp/st" 2>&1 || rc=$?
	cat "$tmp/st"
	[ "$rc" -eq "$want" ] || fail "isostack status $*: exit $rc, not $want"
}
shows() { grep -qE -- "$1" "$tmp/st" || fail "isostack status does not show: $1"; }

step "before up: down, exit 3"
status_is 3 --lines 0
shows "^isostack instance '$ISOSTACK_NS_PREFIX': down$"

step "up: exit 0, the daemon, its port, address, MTU, mode, core, log"
stack_up
status_is 0
shows "^isostack instance '$ISOSTACK_NS_PREFIX': up$"
shows "daemon: isostackd pid $S_DAEMON_PID, running for "
shows "port 0: (af_xdp|af_packet) on $S_IF_STACK \\($S_STACK_MAC\\) in namespace $S_NS_STACK$"
shows "address: $DADDR/24, MTU 1500$"
shows "mode: busy \\(polls without sleeping\\)"
shows "stack core: 1: loop busy [0-9.]+% over [0-9.]+ s"
shows "traffic: port 0: rx [0-9]+ packets"
shows "applications: none attached$"
shows "log: $S_DAEMON_LOG$"

step "an application attached through the shim: pid, sockets, command"
mkfifo "$tmp/in" "$tmp/out"
"$ISOSTACK_CLI" run --require -- python3 "$here/listen_app.py" 5555 <"$tmp/in" >"$tmp/out" &
APP_PID=$!                          # isostack run execs down to python3
exec 5>"$tmp/in" 6<"$tmp/out"
read -r -t 30 -u 6 line || fail "the application did not say it listens within 30 s"
[ "$line" = listening ] || fail "the application said '$line'"
comm=$(cat "/proc/$APP_PID/comm")
status_is 0 --interval 0 --lines 0
shows "applications: 1 attached, sockets open: 1$"
shows "^ +$APP_PID +1  $comm$"
shows "stack core: 1 \\(busy share not measured: --interval 0\\)"

step "the daemon stopped (SIGSTOP): its control socket does not answer, exit 3"
STOPPED=$S_DAEMON_PID
kill -STOP "$S_DAEMON_PID"
status_is 3 --lines 0
shows "does not answer"
kill -CONT "$S_DAEMON_PID"
STOPPED=
status_is 0 --interval 0 --lines 0

step "the application gone, the daemon killed: exit 3, and says so"
exec 5>&-
wait "$APP_PID" || fail "the application exited with an error"
APP_PID=
kill -KILL "$S_DAEMON_PID"
for _ in $(seq 100); do daemon_alive || break; sleep 0.1; done
daemon_alive && fail "the daemon outlived SIGKILL for 10 s"
status_is 3 --lines 0
shows "isostackd \\(pid $S_DAEMON_PID\\) has exited"

step "after down: exit 3"
"$ISOSTACK_CLI" down
status_is 3 --lines 0
shows "no state in "
echo "PASS"
