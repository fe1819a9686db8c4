#!/bin/bash
# Per-application limits set in the daemon's configuration (app_sockets,
# app_memory, rx_ring) give an application the errors a user expects, and
# nothing else breaks: python3 under the shim opens sockets until socket()
# fails, and must see EMFILE (too many sockets) or ENOBUFS (ring memory),
# exactly at the configured count (the defaults allow 63); after closing
# one, a new socket connects to the Linux peer and moves data (checked by
# sha256), so the failure lost nothing.
PROG_TAG=lim
. "$(dirname "$0")/lib.sh"
need python3 python3

PORT=9310
head -c 300000 /dev/urandom >"$tmp/data"

# The peer echoes one connection's bytes back (sha256 compared below).
start_peer() {
	bg peer "$CLI" peer -- python3 -c '
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", int(sys.argv[1]))); l.listen(4); l.settimeout(60)
print("listening", flush=True)
while True:
    c, _ = l.accept(); c.settimeout(30)
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
' $PORT
	wait_line "$tmp/peer.out" listening || fail "peer did not listen"
}

# fill: opens TCP sockets until one fails; prints "N ERRNO", then closes
# one and pushes the data file through a new one to the echo peer,
# printing "sha256".
fill() {
	"$CLI" run --require -- python3 -c '
import errno, hashlib, socket, sys, threading
socks = []
while True:
    try:
        socks.append(socket.socket())
    except OSError as e:
        print(len(socks), errno.errorcode.get(e.errno, e.errno), flush=True)
        break
    if len(socks) > 10000:
        print(len(socks), "none"); sys.exit(1)
socks.pop().close()
data = open(sys.argv[3], "rb").read()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
t.start()
h = hashlib.sha256()
while True:
    b = s.recv(65536)
    if not b:
        break
    h.update(b)
t.join()
print(h.hexdigest(), flush=True)
' "$PEER_IP" $PORT "$tmp/data"
}

want=$(sha256sum <"$tmp/data" | cut -d' ' -f1)

# check LABEL WANT_N WANT_ERRNO UP-ARGS...: one daemon with these limits.
check() {
	local label=$1 want_n=$2 want_err=$3 out n err sum
	shift 3
	"$CLI" up "$@" >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fail "isostack up $*"; }
	start_peer
	out=$(fill) || fail "$label: the program failed: $out"
	read -r n err <<<"$(sed -n 1p <<<"$out")"
	sum=$(sed -n 2p <<<"$out")
	echo "$label: socket() number $((n + 1)) failed with $err; then one closed and a" \
	     "new connection echoed $( [ "$sum" = "$want" ] && echo "every byte" || echo "WRONG data")"
	[ "$n" = "$want_n" ] && [ "$err" = "$want_err" ] ||
		fail "$label: want $want_n sockets then $want_err, got $n then $err"
	[ "$sum" = "$want" ] || fail "$label: echoed data differ (sha256 $sum, want $want)"
	kill "$LAST_PID" 2>/dev/null || true
	wait "$LAST_PID" 2>/dev/null || true
	"$CLI" down >/dev/null 2>&1
}

check app_sockets 5 EMFILE --set app_sockets=5
# 3 sockets starting on 64 KiB + 64 KiB rings fit in 384 KiB, the fourth
# does not (the rings of a new socket count at once).
check app_memory 3 ENOBUFS --set tx_ring=64k --set rx_ring=64k --set tx_ring_start=64k \
	--set rx_ring_start=64k --set app_memory=384k
echo "PASS: EMFILE and ENOBUFS at the configured limits; nothing lost after them"
