#!/bin/bash
# Many short connections (issue 14, point 5), each: connect, one 64-byte
# request, its answer verified (SHA-256 of the request), end of file,
# close (faults_tool.py rr-client/rr-server; the server closes first, as
# an HTTP/1.0 server does, so the side that waits in TIME_WAIT is the
# server's). For FAULTS_CHURN_SECONDS (60) each way:
#   1. the server python3 under the shim, a Linux client in the peer
#      namespace (TIME_WAIT in lwIP: 2 MSL = 120 s there);
#   2. the client python3 under the shim, a Linux server (TIME_WAIT in the
#      peer's kernel; lwIP's ephemeral ports reused at once).
# Connections a second are printed. Afterwards, polled for up to 180 s
# (lwIP's TIME_WAIT must drain): the applications' sockets, lwIP's pcbs,
# segments, pbufs (ref and pool) and heap, the port's mbufs in use and
# mem.backed back at their baseline (taken with the server listening),
# and the daemon's RSS grown by no more than lwIP's static pools account
# for: 512 bytes for each pcb of the pool's high-water growth (its pages
# are touched once and stay resident) plus 4 MiB.
PROG_TAG=fch
. "$(dirname "$0")/lib.sh"
[ "$CONNS_STACK" = isostack ] || { echo "SKIP: a daemon test (CONNS_STACK=$CONNS_STACK)"; exit 77; }
SECS=${FAULTS_CHURN_SECONDS:-60}
SPORT=9600
CPORT=9601
KEYS="memp.tcp_pcb.used memp.tcp_seg.used memp.pbuf.used memp.pbuf_pool.used memp.heap.used port.0.mbufs_used backend.open_sockets mem.backed"

conns_up
load_state
need_key memp.tcp_pcb.used
"$CLI" peer -- sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
bg server "${SUT[@]}" python3 -u "$TOOL" rr-server $SPORT 128
server=$LAST_PID
wait_line "$tmp/server.out" listening 20 || fail "the server under the shim did not listen"
bg peersrv "$CLI" peer -- python3 -u "$TOOL" rr-server $CPORT 128
wait_line "$tmp/peersrv.out" listening 20 "$LAST_PID" || fail "the peer's server did not listen"
stats
cp "$tmp/stats.txt" "$tmp/base.txt"
rss0=$(rss_kb "$S_DAEMON_PID")
pcbmax0=$(sv memp.tcp_pcb.max)
echo "baseline: $(for k in $KEYS; do printf '%s=%s ' "${k#memp.}" "$(sv "$k")"; done)rss=${rss0}kB"

echo "== 1: server under the shim, Linux client, $SECS s"
"$CLI" peer -- python3 "$TOOL" rr-client "$STACK_IP" $SPORT "$SECS" || fail "client (Linux) failed"
stats
echo "after 1: tcp_pcb used $(sv memp.tcp_pcb.used) (TIME_WAIT in lwIP), max $(sv memp.tcp_pcb.max)"
echo "== 2: client under the shim, Linux server, $SECS s"
"${SUT[@]}" python3 "$TOOL" rr-client "$PEER_IP" $CPORT "$SECS" || fail "client (under the shim) failed"
kill -0 "$server" || fail "the server under the shim exited"

t0=$(now)
for i in $(seq 1800); do
	stats
	same=1
	for k in $KEYS; do
		[ "$(sv "$k")" -le "$(sv "$k" "$tmp/base.txt")" ] || same=0
	done
	[ $same = 1 ] && break
	[ $((i % 100)) = 1 ] && echo "draining: tcp_pcb used $(sv memp.tcp_pcb.used)"
	sleep 0.1
done
for k in $KEYS; do
	echo "$k: baseline $(sv "$k" "$tmp/base.txt"), after $(sv "$k")"
done
[ $same = 1 ] || fail "180 s after the churn something is above its baseline (above)"
echo "back to baseline $(elapsed "$t0" "$(now)") s after the churn"
rss1=$(rss_kb "$S_DAEMON_PID")
growth=$(( $(sv memp.tcp_pcb.max) - pcbmax0 ))
allow=$(( growth / 2 + 4096 ))
echo "daemon RSS: $rss0 kB before, $rss1 kB after; tcp_pcb high-water +$growth: allowed +$allow kB"
[ $((rss1 - rss0)) -le "$allow" ] || fail "the daemon's RSS grew by $((rss1 - rss0)) kB"
"$CLI" peer -- python3 "$TOOL" rr-client "$STACK_IP" $SPORT 1 || fail "the server does not answer afterwards"
echo "PASS: $SECS s of short connections each way, nothing left behind"
