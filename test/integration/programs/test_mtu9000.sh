#!/bin/bash
# The wire topology at MTU 9000 (issue 12): `isostack up --mtu 9000` sets
# both veth ends and the daemon's port (af_packet when af_xdp cannot carry
# the frames: up says so).  Checked:
#   1. the daemon's port runs at MTU 9000 (its log);
#   2. a Linux peer's connection to the daemon's echo service (port 7) sees
#      pmtu 9000 and the MSS lwIP announced, 8960 (ss shows it less the
#      12-byte timestamp option when that is on: 8948);
#   3. 8 MiB of random bytes echoed back byte-exact (sha256), so full
#      jumbo segments cross both ways.
PROG_TAG=mtu
. "$(dirname "$0")/lib.sh"
need python3 python3
need ss iproute2

N=$((8 << 20))
stack_up --mtu 9000
log=/run/isostack/$ISOSTACK_NS_PREFIX/isostackd.log
grep -q "port 0 .*mtu 9000" "$log" || fail "the daemon's port is not at MTU 9000: $(grep 'port 0' "$log" | head -1)"
echo "1. $(grep -o 'port 0 net_[a-z_]*0' "$log" | head -1) at MTU 9000"
grep -q "af_xdp cannot carry" "$tmp/up.log" && echo "   (up: af_xdp cannot carry 9000-byte frames here, af_packet used)"

"$CLI" peer -- python3 - "$STACK_IP" $N >"$tmp/echo.out" 2>&1 <<'EOF' || fail "echo client: $(cat "$tmp/echo.out")"
import hashlib, os, socket, subprocess, sys, threading
addr, n = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((addr, 7), timeout=60)
ss = subprocess.run(["ss", "-tin", "dport = :7"], capture_output=True, text=True).stdout
print("ss", " ".join(ss.split()), flush=True)
data = os.urandom(n)
t = threading.Thread(target=s.sendall, args=(data,)); t.start()
h, got = hashlib.sha256(), 0
while got < n:
    b = s.recv(65536)
    if not b:
        break
    h.update(b); got += len(b)
t.join()
print("sent", hashlib.sha256(data).hexdigest())
print("back", got, h.hexdigest())
EOF
mss=$(grep -o ' mss:[0-9]*' "$tmp/echo.out" | head -1 | cut -d: -f2)
pmtu=$(grep -o 'pmtu:[0-9]*' "$tmp/echo.out" | head -1 | cut -d: -f2)
echo "2. the peer's kernel: pmtu ${pmtu:-?}, mss ${mss:-?}"
[ "$pmtu" = 9000 ] || fail "peer pmtu ${pmtu:-none}, want 9000"
[ "$mss" = 8960 ] || [ "$mss" = 8948 ] || fail "peer mss ${mss:-none}, want 8960 (8948 with timestamps)"
sent=$(awk '$1 == "sent" { print $2 }' "$tmp/echo.out")
back=$(awk '$1 == "back" { print $2, $3 }' "$tmp/echo.out")
[ "$back" = "$N $sent" ] || fail "echo: sent $sent, got back $back"
echo "3. $N bytes there and back, sha256 equal"
echo "PASS: MTU 9000 on the wire topology"
