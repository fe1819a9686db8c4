#!/bin/bash
# rx_ring above the largest receive window (regression): with `rx_ring =
# 1m` a bulk receive stalled for good. lwIP's window is at most TCP_WND
# (256 KiB), the RX ring grew to 1 MiB, and the reader reports what it
# consumed only per half ring, so it never reported and the window stayed
# shut (the peer's ss: rwnd_limited 99%). The back-end now never grows a
# TCP RX ring past the window (daemon/backend/sock_ring.c, rx_ring_max).
# Checked: with rx_ring = 1m and tx_ring = 1m, 32 MiB from the peer to a
# python3 reader under the shim, and 32 MiB back, each within 60 s and
# equal by SHA-256; a second connection with SO_RCVBUF of 2 MiB (a pin
# past the window) receives 8 MiB the same way.
PROG_TAG=rgm
. "$(dirname "$0")/lib.sh"
need python3 python3

PORT=9410
N=$((32 << 20))
N2=$((8 << 20))
stack_up --set rx_ring=1m --set tx_ring=1m

cat >"$tmp/sut.py" <<'PY'
import hashlib, socket, sys
n, n2, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def recv_n(s, n):
    h, got = hashlib.sha256(), 0
    while got < n:
        b = s.recv(min(1 << 20, n - got))
        if not b:
            break
        h.update(b)
        got += len(b)
    return got, h.hexdigest()

def send_n(s, n):
    h, chunk, sent = hashlib.sha256(), bytes(range(256)) * 4096, 0
    while sent < n:
        b = chunk[:min(len(chunk), n - sent)]
        s.sendall(b)
        h.update(b)
        sent += len(b)
    return h.hexdigest()

ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(4)
print("listening", flush=True)
c, _ = ls.accept()
print("read", *recv_n(c, n), flush=True)
print("sent", send_n(c, n), flush=True)
c.close()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 << 20)
c, _ = ls.accept()
print("read2", *recv_n(c, n2), flush=True)
c.close()
PY
cat >"$tmp/peer.py" <<'PY'
import hashlib, socket, sys
host, port, n, n2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
chunk = bytes((i * 7 + 3) & 0xff for i in range(1 << 20))

def send_n(s, n):
    h, sent = hashlib.sha256(), 0
    while sent < n:
        b = chunk[:min(len(chunk), n - sent)]
        s.sendall(b)
        h.update(b)
        sent += len(b)
    return h.hexdigest()

s = socket.create_connection((host, port), timeout=60)
print("sent", send_n(s, n), flush=True)
h, got = hashlib.sha256(), 0
while got < n:
    b = s.recv(1 << 20)
    if not b:
        break
    h.update(b)
    got += len(b)
print("read", got, h.hexdigest(), flush=True)
s.close()
s = socket.create_connection((host, port), timeout=60)
print("sent2", send_n(s, n2), flush=True)
s.close()
PY

bg sut "$CLI" run --require -- python3 "$tmp/sut.py" "$N" "$N2" "$PORT"
sut_pid=$LAST_PID
wait_line "$tmp/sut.out" "^listening" 20 "$sut_pid" || fail "the reader did not listen"
bg peer "$CLI" peer -- timeout 120 python3 "$tmp/peer.py" "$STACK_IP" "$PORT" "$N" "$N2"

wait_line "$tmp/sut.out" "^read " 60 "$sut_pid" || fail "32 MiB to the reader did not arrive within 60 s (stalled window?)"
mine=$(awk '$1 == "read" { print $2, $3 }' "$tmp/sut.out")
theirs=$(awk '$1 == "sent" { print '"$N"', $2 }' "$tmp/peer.out")
echo "reader: $mine; peer sent: $theirs"
[ "$mine" = "$theirs" ] || fail "received bytes differ from what the peer sent"

wait_line "$tmp/peer.out" "^read " 60 "$sut_pid" || fail "32 MiB back did not arrive within 60 s"
mine=$(awk '$1 == "sent" { print '"$N"', $2 }' "$tmp/sut.out")
theirs=$(awk '$1 == "read" { print $2, $3 }' "$tmp/peer.out")
echo "reader sent: $mine; peer read: $theirs"
[ "$mine" = "$theirs" ] || fail "bytes sent back differ from what the peer read"

wait_line "$tmp/sut.out" "^read2 " 60 "$sut_pid" || fail "8 MiB with SO_RCVBUF 2 MiB did not arrive within 60 s"
mine=$(awk '$1 == "read2" { print $2, $3 }' "$tmp/sut.out")
theirs=$(awk '$1 == "sent2" { print '"$N2"', $2 }' "$tmp/peer.out")
echo "SO_RCVBUF 2 MiB: reader: $mine; peer sent: $theirs"
[ "$mine" = "$theirs" ] || fail "SO_RCVBUF connection: bytes differ"
echo "PASS"
