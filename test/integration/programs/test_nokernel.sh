#!/bin/bash
# The no-kernel topology (issue 12): both ends of a connection on isostack.
# A server and a client, both unmodified programs under `isostack run`,
# meet at the daemon's own address; their traffic is looped inside the
# daemon (lwIP's netif loopback, docs/daemon.md) and never reaches the veth
# or the Linux peer.  Checked:
#   1. a server listening on INADDR_ANY accepts a client that connects to
#      198.18.0.1; 8 MiB each way, sha256 equal at both ends;
#   2. the daemon counted those packets as looped (isostat port.0.lo_pkts)
#      and the wire carried next to none of them (port.0.tx_bytes);
#   3. isoperf (bench/isoperf) server bound to 198.18.0.1 and client, both
#      under the shim: a 1 s rr and a 1 s send run complete with --verify
#      and report messages (no speed is asserted).
# The daemon runs with cut_through=off: with it on (the default) such a
# connection is paired on the stack core and no packet is looped (test
# local_cut covers that path).
PROG_TAG=nok
. "$(dirname "$0")/lib.sh"
need python3 python3

PORT=9450
N=$((8 << 20))
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
isoperf=$(dirname "$ISOSTACK_DAEMON")/../bench/isoperf
[ -x "$isoperf" ] || { echo "SKIP: no isoperf next to the daemon ($isoperf)"; exit 77; }
stack_up --set cut_through=off
control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock

# stat NAME: one of the daemon's raw counters.
stat() {
	"$isostat" -r -c "$control" >"$tmp/isostat.log" 2>&1 || fail "isostat"
	awk -v k="$1" '$1 == k { print $2 }' "$tmp/isostat.log"
}

cp "$(dirname "$0")/ringio.py" "$tmp/"
cat >"$tmp/xfer.py" <<'EOF'
import socket, sys
from ringio import recv_n, send_n

role, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if role == "server":
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port)); l.listen(1); l.settimeout(60)
    print("listening", flush=True)
    s, peer = l.accept()
    print("accepted", peer[0], flush=True)
else:
    s = socket.create_connection((addr, port), timeout=60)
s.settimeout(60)
# The client sends first, then reads; the server reads, then sends.
if role == "client":
    print("sent", send_n(s, n), flush=True)
    print("read", *recv_n(s, n), flush=True)
else:
    print("read", *recv_n(s, n), flush=True)
    print("sent", send_n(s, n), flush=True)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)                                   # until the client closes
s.close()
EOF

lo0=$(stat port.0.lo_pkts)
[ -n "$lo0" ] || fail "isostat has no port.0.lo_pkts"
tx0=$(stat port.0.tx_bytes)

bg server "$CLI" run --require -- python3 "$tmp/xfer.py" server 0.0.0.0 $PORT $N
srv_pid=$LAST_PID
wait_line "$tmp/server.out" "^listening" 20 "$srv_pid" || fail "server did not listen"
bg client "$CLI" run --require -- python3 "$tmp/xfer.py" client "$STACK_IP" $PORT $N
cli_pid=$LAST_PID
wait "$cli_pid" || fail "the client failed"
wait "$srv_pid" || fail "the server failed"
grep -q "^accepted $STACK_IP\$" "$tmp/server.out" ||
	fail "server: no connection from $STACK_IP ($(grep accepted "$tmp/server.out"))"
c_sent=$(awk '$1 == "sent" { print $2 }' "$tmp/client.out")
s_read=$(awk '$1 == "read" { print $2, $3 }' "$tmp/server.out")
s_sent=$(awk '$1 == "sent" { print $2 }' "$tmp/server.out")
c_read=$(awk '$1 == "read" { print $2, $3 }' "$tmp/client.out")
[ "$s_read" = "$N $c_sent" ] || fail "client->server: sent $c_sent, server read $s_read"
[ "$c_read" = "$N $s_sent" ] || fail "server->client: sent $s_sent, client read $c_read"
echo "1. INADDR_ANY listener, client to $STACK_IP: $N bytes each way, sha256 equal"

lo1=$(stat port.0.lo_pkts)
tx1=$(stat port.0.tx_bytes)
echo "2. looped packets: $((lo1 - lo0)); wire TX meanwhile: $((tx1 - tx0)) bytes"
[ $((lo1 - lo0)) -gt 0 ] || fail "no looped packets counted"
[ $((tx1 - tx0)) -lt $((N / 8)) ] || fail "$((tx1 - tx0)) bytes left on the wire"

bg isoperf_srv "$CLI" run --require -- "$isoperf" server -B "$STACK_IP" -p $((PORT + 1)) --nodelay
wait_line "$tmp/isoperf_srv.out" "listening" 20 || fail "isoperf server did not listen"
for mode in rr send; do
	"$CLI" run --require -- "$isoperf" client "$STACK_IP" -p $((PORT + 1)) -m $mode \
		-c 2 -l 1024 -d 1 --nodelay --verify --json "$tmp/$mode.json" \
		>"$tmp/isoperf_$mode.out" 2>&1 || fail "isoperf $mode failed"
	python3 - "$tmp/$mode.json" <<'EOF' || fail "isoperf $mode: bad result"
import json, sys
r = json.load(open(sys.argv[1]))
assert r.get("failures", 0) == 0, r
assert r["msgs"] > 0, r
print("   isoperf %s: %d messages in %.2f s (%.0f/s, %.3f Gbit/s, p50 %.1f us)" %
      (r["mode"], r["msgs"], r["seconds"], r["msgs_per_s"], r["gbit_per_s"], r["rtt_p50_us"]))
EOF
done
echo "3. isoperf rr and send through $STACK_IP complete, verified"
echo "PASS: no-kernel topology: both ends on isostack through the daemon's address"
