#!/bin/bash
# A stopped daemon makes calls fail, not hang (issue 14, "hangs the shim
# can still reach"). python3 under the shim holds a connection to the
# Linux peer's echo service, then isostackd is SIGSTOPped and the program
# execs itself: the new image has none of the socket's ring mappings, so
# its first send must ask the daemon for the ring's extent. That request
# is bounded like attach (5 s): the send must fail with ENOBUFS within
# FAULTS_STOP_BOUND (10) s. Then SIGCONT: the same socket echoes 100,000
# bytes verified by SHA-256 (the extent is asked for again and mapped).
PROG_TAG=fsd
. "$(dirname "$0")/lib.sh"
[ "$CONNS_STACK" = isostack ] || { echo "SKIP: a daemon test (CONNS_STACK=$CONNS_STACK)"; exit 77; }
BOUND=${FAULTS_STOP_BOUND:-10}
HOLD=9421
ECHO=9422

conns_up
load_state
# a stopped daemon would not take isostack down's SIGTERM: continue it first
trap '_rc=$?; kill -CONT "$S_DAEMON_PID" 2>/dev/null; set +e; (exit $_rc); cleanup' EXIT
bg peer "$CLI" peer -- python3 -u "$TOOL" serve $HOLD $ECHO
wait_line "$tmp/peer.out" listening || fail "the peer did not listen"

mkfifo "$tmp/app.in"
exec 9<>"$tmp/app.in"
# Not with bg: a background command's stdin is /dev/null unless the
# command itself redirects it.
"${SUT[@]}" python3 -u "$TOOL" stopped "$PEER_IP" $ECHO <&9 >"$tmp/app.out" 2>&1 &
PIDS+=($!)
APP=$!
wait_line "$tmp/app.out" "^ready" 30 "$APP" || fail "no echoed connection: $(tail -3 "$tmp/app.out")"

kill -STOP "$S_DAEMON_PID"
echo "isostackd (pid $S_DAEMON_PID) SIGSTOPped; the application execs itself"
echo exec >&9
wait_line "$tmp/app.out" "^first send" "$BOUND" "$APP" ||
	fail "the new image's first send is still blocked $BOUND s after the stop (HANG): $(tail -3 "$tmp/app.out")"
line=$(grep "^first send" "$tmp/app.out")
echo "$line"
kill -CONT "$S_DAEMON_PID"
echo "isostackd SIGCONTed"
case $line in
*"errno=ENOBUFS after"*) ;;
*) fail "expected ENOBUFS from the send that needed the stopped daemon, got: $line" ;;
esac
echo cont >&9
wait_line "$tmp/app.out" "^echo ok" 30 "$APP" || fail "no echo after SIGCONT: $(tail -3 "$tmp/app.out")"
grep -q "^echo ok True" "$tmp/app.out" || fail "the echo after SIGCONT differs"
echo "PASS: the send that needed the stopped daemon failed with ENOBUFS in time; after SIGCONT the same socket echoes 100,000 bytes verified"
