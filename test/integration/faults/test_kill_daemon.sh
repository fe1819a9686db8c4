#!/bin/bash
# The daemon SIGKILLed under blocked applications (issue 14, point 4).
# Four python3 processes under the shim, each blocked in one call:
#   recv    on a connection to the Linux peer, which sends nothing
#   send    on a connection whose peer never reads, its TX ring full
#           (nonblocking sends until EAGAIN first), a 1 MiB sendall
#   epoll   epoll_wait(-1) on such a connection, then a recv
#   accept  on a listener of its own
# isostackd is SIGKILLed: every call must return an error within
# FAULTS_DAEMON_BOUND (10) s, printed with its errno and how long it took
# (none may hang or succeed). Then `isostack down` and `up` with the same
# names: each of the same four processes opens new connections until one
# echoes 100,000 bytes verified by SHA-256 (the shim re-attaches to the
# new daemon). test shim_restart does a plain down/up with idle sockets.
PROG_TAG=fkd
. "$(dirname "$0")/lib.sh"
[ "$CONNS_STACK" = isostack ] || { echo "SKIP: a daemon test (CONNS_STACK=$CONNS_STACK)"; exit 77; }
BOUND=${FAULTS_DAEMON_BOUND:-10}
HOLD=9411
ECHO=9412
LPORT=9413
KINDS="recv send epoll accept"

start_peer() {
	bg peer "$CLI" peer -- python3 -u "$TOOL" serve $HOLD $ECHO
	PEER_PID=$LAST_PID
	wait_line "$tmp/peer.out" listening || fail "the peer did not listen"
}

conns_up
load_state
start_peer
declare -A APP FD
fd=10
for k in $KINDS; do
	mkfifo "$tmp/$k.in"
	eval "exec $fd<>\"\$tmp/\$k.in\""
	FD[$k]=$fd
	# Not with bg: a background command's stdin is /dev/null unless the
	# command itself redirects it.
	"${SUT[@]}" python3 -u "$TOOL" block "$k" "$PEER_IP" \
		"$([ "$k" = accept ] && echo $LPORT || echo $HOLD)" $ECHO \
		<&"$fd" >"$tmp/$k.out" 2>&1 &
	PIDS+=($!); LAST_PID=$!
	APP[$k]=$LAST_PID
	fd=$((fd + 1))
done
for k in $KINDS; do
	wait_line "$tmp/$k.out" "^blocking" 30 "${APP[$k]}" || fail "$k: not blocking: $(tail -2 "$tmp/$k.out")"
	wait_sleeping "${APP[$k]}" 10 || fail "$k: pid ${APP[$k]} is not asleep in its call"
done
grep -h "^filled" "$tmp/send.out"
echo "blocked: $(for k in $KINDS; do printf '%s(pid %s) ' "$k" "${APP[$k]}"; done)"

t0=$(now)
kill -KILL "$S_DAEMON_PID"
echo "isostackd (pid $S_DAEMON_PID) SIGKILLed"
bad=0
for k in $KINDS; do
	if ! wait_line "$tmp/$k.out" "^returned" "$BOUND" "${APP[$k]}"; then
		echo "$k: still blocked $BOUND s after the kill (HANG)"; bad=1; continue
	fi
	line=$(grep "^returned" "$tmp/$k.out")
	t1=${line##*t=}
	echo "$k: ${line% t=*}, after $(elapsed "$t0" "$t1") s"
	case $line in
	*"ok ("*|*"ret=1"*|*"ret=0 (EOF) t="*) echo "$k: not an error"; bad=1 ;;
	esac
	le "$(elapsed "$t0" "$t1")" "$BOUND" || bad=1
done
[ $bad = 0 ] || fail "a call blocked when the daemon died did not fail within $BOUND s"

echo "== isostack down + up (same names), the same processes open new connections"
kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true
conns_down
conns_up
start_peer
for k in $KINDS; do echo go >&"${FD[$k]}"; done
for k in $KINDS; do
	wait_line "$tmp/$k.out" "^new " 60 "${APP[$k]}" || fail "$k: no new connection within 60 s: $(tail -2 "$tmp/$k.out")"
	echo "$k (pid ${APP[$k]}): $(grep "^new " "$tmp/$k.out")"
	grep -q "^new ok True" "$tmp/$k.out" || fail "$k: the new connection's echo differs"
done
echo "PASS: every blocked call failed within $BOUND s of the daemon's SIGKILL; after a restart the same processes echo again"
