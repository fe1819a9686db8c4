#!/bin/bash
# A SYN flood at a listener under the shim (issue 14, point 5). python3
# under the shim listens on 9500 with backlog 8 (faults_tool.py
# rr-server: one 64-byte request answered, then close). From the peer
# namespace a raw AF_PACKET socket sends FAULTS_SYN_RATE (20,000) SYNs a
# second for FAULTS_SYN_SECONDS (10) s, each from a new spoofed source
# (198.18.1.1-254, ports from 1024 up: nothing answers the SYN-ACKs).
# Meanwhile and 5 s after, a real Linux client opens a connection every
# 0.2 s and checks its answer: every one must get through (the slowest is
# printed). lwIP's tcp_pcb pool (isostat memp.tcp_pcb.used), sampled every
# 0.5 s, must not grow by more than the listener's half-open bound
# (FAULTS_SYN_BOUND: 1024, the daemon's ISOD_SYNQ_MIN, daemon/backend/
# synq.c, for a backlog below it) plus the real client's connections (in
# TIME_WAIT on the server's side), and must be back at its baseline (plus
# those) within 60 s after it.
PROG_TAG=fsy
. "$(dirname "$0")/lib.sh"
[ "$CONNS_STACK" = isostack ] || { echo "SKIP: a daemon test (CONNS_STACK=$CONNS_STACK)"; exit 77; }
SECONDS_=${FAULTS_SYN_SECONDS:-10}
RATE=${FAULTS_SYN_RATE:-20000}
BOUND=${FAULTS_SYN_BOUND:-1024}
PORT=9500

conns_up
load_state
need_key memp.tcp_pcb.used
bg server "${SUT[@]}" python3 -u "$TOOL" rr-server $PORT 8
wait_line "$tmp/server.out" listening 20 || fail "the server did not listen"
"$CLI" peer -- python3 "$TOOL" rr-client "$STACK_IP" $PORT 0.05 || fail "the server does not answer"
wait_stat memp.tcp_pcb.used ">=" 0 1
base=$(sv memp.tcp_pcb.used)
rss0=$(rss_kb "$S_DAEMON_PID")
echo "baseline: tcp_pcb used $base, daemon RSS $rss0 kB"

bg probe "$CLI" peer -- python3 -u "$TOOL" probe "$STACK_IP" $PORT $((SECONDS_ + 5))
probe=$LAST_PID
bg flood "$CLI" peer -- python3 -u "$TOOL" synflood "$S_IF_PEER" "$S_STACK_MAC" "$STACK_IP" $PORT \
	"$SECONDS_" "$RATE"
flood=$LAST_PID
peak=$base
while kill -0 "$flood" 2>/dev/null; do
	stats
	u=$(sv memp.tcp_pcb.used)
	[ "$u" -gt "$peak" ] && peak=$u
	sleep 0.5           # the sampling period
done
wait "$flood" || fail "the flooder failed: $(tail -2 "$tmp/flood.out")"
stats
echo "$(cat "$tmp/flood.out")"
echo "during: tcp_pcb used peak $peak (baseline $base), err $(sv memp.tcp_pcb.err)," \
     "daemon RSS $(rss_kb "$S_DAEMON_PID") kB; lwip.tcp drop $(sv lwip.tcp.drop) memerr $(sv lwip.tcp.memerr);" \
     "half-open dropped for newer SYNs $(sv backend.syn_evicted)"
wait "$probe" || fail "the probe client failed: $(tail -2 "$tmp/probe.out")"
grep -E "FAIL|BAD" "$tmp/probe.out" | head -5 || true
line=$(tail -1 "$tmp/probe.out")
echo "real client: $line"
read -r _ n _ ok _ <<<"$line"
[ "$n" -gt 0 ] && [ "$n" = "$ok" ] || fail "$((n - ok)) of $n connections of the real client failed during the flood"
[ $((peak - base)) -le $((BOUND + n)) ] ||
	fail "lwIP's pcbs in use grew by $((peak - base)) during the flood, more than the half-open" \
	     "bound $BOUND and the client's $n connections"
t0=$(now)
# The half-open ones time out (TCP_SYN_RCVD_TIMEOUT, 20 s); the client's
# own connections stay in TIME_WAIT for 2 MSL (120 s).
wait_stat memp.tcp_pcb.used "<=" $((base + n)) 60 ||
	fail "60 s after the flood lwIP still has $(sv memp.tcp_pcb.used) pcbs in use" \
	     "(baseline $base, the client's $n in TIME_WAIT)"
echo "after: tcp_pcb used $(sv memp.tcp_pcb.used) $(elapsed "$t0" "$(now)") s after the flood" \
     "(baseline $base + the client's $n); daemon RSS $(rss_kb "$S_DAEMON_PID") kB"
"$CLI" peer -- python3 "$TOOL" rr-client "$STACK_IP" $PORT 1 || fail "the server does not answer after the flood"
kill -0 "$S_DAEMON_PID" || fail "the daemon exited"
echo "PASS: the listener served throughout a SYN flood; half-open pcbs stayed within $BOUND and drained"
