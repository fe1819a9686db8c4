#!/bin/bash
# Passing isostack sockets between unrelated processes with SCM_RIGHTS
# (issue 15, point 5; docs/sockets.md, "Passing sockets (SCM_RIGHTS)").
# Every process under the shim is started on its own (`isostack run
# --require`, each its own application); they meet on an AF_UNIX path.
#  a) socket activation: one process binds and listens on 198.18.0.1,
#     passes the listener and exits; the other echoes 40 connections from
#     the peer (SHA-256 of each equal at both ends); the same programs in
#     the peer's Linux print the same lines;
#  b) a connection accepted by one process, with 16 KiB+ of the peer's
#     data unread (a new socket's RX ring holds 16 KiB), passed to another and closed: 16 MiB each way, digests
#     equal at both ends (what arrived before the hand-off included);
#     again equal to Linux's output;
#  c) reload: an old server with 10 connections queued and not accepted
#     passes its listener to a new one and keeps accepting, then exits:
#     the queued 10 are echoed, and so is every one of 3 x 60 connections
#     made before, during and after;
#  d) a receiver not under the shim gets the plain stand-in files: accept()
#     says EINVAL, and a connection's fd is no socket (ENOTSOCK);
#  e) a receiver killed before it takes the connection: the daemon closes
#     it (the peer sees the RST within ISOSTACK_CTL_HANDOFF_TTL_MS) and the
#     daemon's socket count is back to none.
PROG_TAG=scmr
. "$(dirname "$0")/../programs/lib.sh"
here=$(dirname "$(readlink -f "$0")")
app=$here/fdpass_app.py
client=$here/../reuseport/rp_app.py
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -x "$isostat" ] || { echo "SKIP: no isostat next to $ISOSTACK_DAEMON"; exit 77; }
python3 -c 'import socket; socket.send_fds' 2>/dev/null ||
	{ echo "SKIP: python3 without socket.send_fds (3.9+)"; exit 77; }
stack_up
control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock
stat_key() { "$isostat" -r -c "$control" | awk -v k="$1" '$1 == k { print $2 }'; }
RUN=("$CLI" run --require --)
PEER=("$CLI" peer --)
digests() { grep -o "conn sha256 [0-9a-f]*" "$1" | awk '{ print $3 }' | sort; }
client_digests() { awk '/^conn [0-9]+ sha256/ { print $4 }' "$1" | sort; }

echo "== a) socket activation: a listener passed, its sender gone"
bg ra "${RUN[@]}" python3 "$app" take ra "$tmp/ua" echo 40
wait_line "$tmp/ra.out" "ra: ready" || fail "ra did not start"
"${RUN[@]}" python3 "$app" give-listener ga "$STACK_IP" 7600 "$tmp/ua" >"$tmp/ga.out" 2>&1 ||
	{ cat "$tmp/ga.out"; fail "give-listener under the shim"; }
"${PEER[@]}" python3 "$client" client "$STACK_IP" 7600 40 1 >"$tmp/pa.out" 2>&1 ||
	{ tail -5 "$tmp/pa.out"; fail "40 connections to the passed listener"; }
wait_line "$tmp/ra.out" "ra: closed" 20 || fail "ra did not echo 40 connections"
client_digests "$tmp/pa.out" >"$tmp/pa.client"
digests "$tmp/ra.out" | cmp -s - "$tmp/pa.client" || fail "a) the receiver's digests are not the client's"
echo "a) 40 connections echoed by the receiver, digests equal"
# The same on Linux, all in the peer namespace.
"${PEER[@]}" python3 "$app" take ra "$tmp/ka" echo 40 >"$tmp/ka.out" 2>&1 &
PIDS+=($!); LAST_PID=$!
wait_line "$tmp/ka.out" "ra: ready" || fail "Linux: ra did not start"
"${PEER[@]}" python3 "$app" give-listener ga "$PEER_IP" 7600 "$tmp/ka" >"$tmp/kga.out" 2>&1
"${PEER[@]}" python3 "$client" client "$PEER_IP" 7600 40 1 >"$tmp/kpa.out" 2>&1 || fail "Linux: client"
wait_line "$tmp/ka.out" "ra: closed" 20 || fail "Linux: ra did not echo 40"
diff <(sort "$tmp/ka.out") <(sort "$tmp/ra.out") || fail "a) output differs from Linux's"
diff "$tmp/kga.out" "$tmp/ga.out" || fail "a) the sender's output differs from Linux's"
echo "a) output equal to Linux's"

echo "== c) reload: the old server passes its listener, then exits"
bg old "${RUN[@]}" python3 "$app" old old "$STACK_IP" 7602 "$tmp/uc"
pid_old=$LAST_PID
wait_line "$tmp/old.out" "old: listening" || fail "old did not listen"
"${PEER[@]}" python3 "$client" client "$STACK_IP" 7602 60 11 >"$tmp/c1.out" 2>&1 ||
	{ tail -5 "$tmp/c1.out"; fail "c) 60 connections to the old server"; }
kill -USR1 "$pid_old"
wait_line "$tmp/old.out" "old: paused" 20 "$pid_old" || fail "old did not pause"
"${PEER[@]}" python3 "$client" probe "$STACK_IP" 7602 10 12 >"$tmp/probe.out" 2>&1 &
PIDS+=($!); pid_probe=$!
wait_line "$tmp/probe.out" "probe: 10 open" 20 "$pid_probe" || fail "the probe did not open 10 connections"
bg new "${RUN[@]}" python3 "$app" take new "$tmp/uc" echo 0
pid_new=$LAST_PID
wait_line "$tmp/new.out" "new: ready" || fail "new did not start"
kill -USR2 "$pid_old"
wait_line "$tmp/new.out" "new: got listener" 20 "$pid_new" || fail "new did not get the listener"
wait "$pid_probe" || { cat "$tmp/probe.out"; fail "c) connections queued to the old server were lost"; }
grep -q "probe: 10 echoed 0 reset 0 failed" "$tmp/probe.out" ||
	{ cat "$tmp/probe.out"; fail "c) not all 10 queued connections were echoed"; }
"${PEER[@]}" python3 "$client" client "$STACK_IP" 7602 60 13 >"$tmp/c2.out" 2>&1 ||
	{ tail -5 "$tmp/c2.out"; fail "c) 60 connections while both hold the listener"; }
kill -TERM "$pid_old"
wait_line "$tmp/old.out" "old: closed" 20 "$pid_old" || fail "old did not close"
"${PEER[@]}" python3 "$client" client "$STACK_IP" 7602 60 14 >"$tmp/c3.out" 2>&1 ||
	{ tail -5 "$tmp/c3.out"; fail "c) 60 connections after the old server left"; }
cat "$tmp/c1.out" "$tmp/c2.out" "$tmp/c3.out" | client_digests /dev/stdin >"$tmp/c.client"
for i in $(seq 100); do
	[ "$(cat <(digests "$tmp/old.out") <(digests "$tmp/new.out") | wc -l)" -ge 190 ] && break
	sleep 0.1
done
cat <(digests "$tmp/old.out") <(digests "$tmp/new.out") | sort >"$tmp/c.servers"
awk '/^probe [0-9]+ echo/' "$tmp/probe.out" | wc -l | grep -qx 10 || fail "c) probe"
[ "$(wc -l <"$tmp/c.servers")" -eq 190 ] || fail "c) the servers logged $(wc -l <"$tmp/c.servers") connections, not 190"
grep -vxFf "$tmp/c.servers" "$tmp/c.client" && fail "c) a client digest no server logged"
echo "c) old $(digests "$tmp/old.out" | wc -l), new $(digests "$tmp/new.out" | wc -l): all 190 answered" \
     "($(grep -h "old: accept" "$tmp/old.out" || echo "old accepted to the end"))"
kill -TERM "$pid_new"

echo "== d) a receiver not under the shim"
python3 "$app" take rd "$tmp/ud" try >"$tmp/rd.out" 2>&1 &
PIDS+=($!); LAST_PID=$!
wait_line "$tmp/rd.out" "rd: ready" || fail "rd did not start"
"${RUN[@]}" python3 "$app" give-listener gd "$STACK_IP" 7603 "$tmp/ud" >"$tmp/gd.out" 2>&1 || fail "give-listener"
wait "$LAST_PID" || true
cat "$tmp/rd.out"
grep -q "rd: accept EINVAL" "$tmp/rd.out" || fail "d) accept on the plain listener file: not EINVAL"
python3 "$app" take rd2 "$tmp/ud2" try >"$tmp/rd2.out" 2>&1 &
PIDS+=($!); LAST_PID=$!; pid_rd2=$!
wait_line "$tmp/rd2.out" "rd2: ready" || fail "rd2 did not start"
bg gd2 "${RUN[@]}" python3 "$app" give-conn gd2 "$STACK_IP" 7604 "$tmp/ud2" 10
wait_line "$tmp/gd2.out" "gd2: listening" || fail "gd2 did not listen"
"${PEER[@]}" python3 "$app" peer-wait "$STACK_IP" 7604 30 >"$tmp/pd2.out" 2>&1 &
PIDS+=($!); pid_pd2=$!
wait "$pid_rd2" || true
cat "$tmp/rd2.out"
grep -q "rd2: socket() on it ENOTSOCK" "$tmp/rd2.out" || fail "d) a connection's plain file: not ENOTSOCK"

echo "== e) the receiver dies before it takes the connection"
wait "$pid_pd2" || true
cat "$tmp/pd2.out"   # d)'s connection: nobody took it either
grep -qE "peer: (RST|EOF)" "$tmp/pd2.out" || fail "d) the untaken connection was not closed"
bg re "${RUN[@]}" python3 "$app" take re "$tmp/ue" hold
pid_re=$LAST_PID
wait_line "$tmp/re.out" "re: ready" || fail "re did not start"
bg ge "${RUN[@]}" python3 "$app" give-conn ge "$STACK_IP" 7605 "$tmp/ue" 10
wait_line "$tmp/ge.out" "ge: listening" || fail "ge did not listen"
"${PEER[@]}" python3 "$app" peer-wait "$STACK_IP" 7605 30 >"$tmp/pe.out" 2>&1 &
PIDS+=($!); pid_pe=$!
wait_line "$tmp/ge.out" "ge: passed conn" 20 || fail "ge did not pass the connection"
kill -KILL "$pid_re"
wait "$pid_pe" || true
cat "$tmp/pe.out"
grep -qE "peer: (RST|EOF)" "$tmp/pe.out" || fail "e) the peer did not see the connection close"
wait_stack_sockets 0 || fail "e) the daemon still holds sockets"
echo "e) closed for the peer, no socket left; backend.handoffs $(stat_key backend.handoffs)" \
     "claims $(stat_key backend.claims) expired $(stat_key backend.handoffs_expired)"
echo "== b) a connection with unread data passed to another process"
bg rb "${RUN[@]}" python3 "$app" take rb "$tmp/ub" stream 16777216 5
wait_line "$tmp/rb.out" "rb: ready" || fail "rb did not start"
bg gb "${RUN[@]}" python3 "$app" give-conn gb "$STACK_IP" 7601 "$tmp/ub" 16384
wait_line "$tmp/gb.out" "gb: listening" || fail "gb did not listen"
"${PEER[@]}" python3 "$app" peer-stream "$STACK_IP" 7601 16777216 7 >"$tmp/pb.out" 2>&1 ||
	{ cat "$tmp/pb.out"; fail "peer-stream"; }
wait_line "$tmp/rb.out" "rb: sent" 30 || fail "rb did not finish"
grep -q "gb: passed conn" "$tmp/gb.out" || fail "gb did not pass the connection"
cat "$tmp/pb.out" "$tmp/rb.out"
[ "$(awk '/peer: sent/ { print $4 }' "$tmp/pb.out")" = "$(awk '/rb: recv/ { print $4 }' "$tmp/rb.out")" ] ||
	fail "b) the receiver did not get the peer's 16 MiB (with what arrived before the hand-off)"
[ "$(awk '/peer: recv/ { print $4 }' "$tmp/pb.out")" = "$(awk '/rb: sent/ { print $4 }' "$tmp/rb.out")" ] ||
	fail "b) the peer did not get the receiver's 16 MiB"
"${PEER[@]}" python3 "$app" take rb "$tmp/kb" stream 16777216 5 >"$tmp/kb.out" 2>&1 &
PIDS+=($!); LAST_PID=$!
wait_line "$tmp/kb.out" "rb: ready" || fail "Linux: rb did not start"
"${PEER[@]}" python3 "$app" give-conn gb "$PEER_IP" 7601 "$tmp/kb" 16384 >"$tmp/kgb.out" 2>&1 &
PIDS+=($!); LAST_PID=$!
wait_line "$tmp/kgb.out" "gb: listening" || fail "Linux: gb did not listen"
"${PEER[@]}" python3 "$app" peer-stream "$PEER_IP" 7601 16777216 7 >"$tmp/kpb.out" 2>&1 || fail "Linux: peer-stream"
wait_line "$tmp/kb.out" "rb: sent" 30 || fail "Linux: rb did not finish"
diff "$tmp/kb.out" "$tmp/rb.out" || fail "b) the receiver's output differs from Linux's"
diff "$tmp/kpb.out" "$tmp/pb.out" || fail "b) the peer's output differs from Linux's"
echo "b) 16 MiB each way after the hand-off, equal to Linux's"

echo "PASS"
