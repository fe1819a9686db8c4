#!/bin/bash
# The paper's evaluation variants (docs/daemon.md, "Variants"): for each of
# Basic, Aggregate and Lock, `isostack up --set variant=V`, then a program
# under the shim with 4 threads, one connection each, sends 2,000 messages
# of 1,000 bytes to a Linux echo peer and reads them back; every
# connection's echo must equal what it sent (sha256).  isostat must report
# the variant, a doorbell per thread for Basic and Aggregate, for Basic a
# SEND command per send() call (no front-end aggregation), and lock
# acquisitions (loop.lock_takes) for Lock only.
PROG_TAG=var
. "$(dirname "$0")/lib.sh"
need python3 python3

PORT=9500
THREADS=4
MSGS=2000
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock

cat >"$tmp/echo.py" <<'EOF'
import socket, sys, threading
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", int(sys.argv[1]))); l.listen(64)
print("listening", flush=True)
def echo(c):
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
EOF
cat >"$tmp/client.py" <<'EOF'
import hashlib, os, socket, sys, threading
addr, port, threads, msgs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sends, bad = [0], []
def conn(k):
    s = socket.create_connection((addr, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    total, sent, got = msgs * 1000, hashlib.sha256(), hashlib.sha256()
    def reader():
        n = 0
        while n < total:
            b = s.recv(65536)
            if not b:
                break
            got.update(b); n += len(b)
        if n != total:
            bad.append(f"conn {k}: {n} of {total} bytes back")
    r = threading.Thread(target=reader); r.start()
    for _ in range(msgs):
        m = os.urandom(1000); sent.update(m)
        off = 0
        while off < len(m):
            off += s.send(m[off:]); sends[0] += 1
    r.join()
    if sent.digest() != got.digest():
        bad.append(f"conn {k}: echo differs (sha256)")
    s.close()
ts = [threading.Thread(target=conn, args=(k,)) for k in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print("sends", sends[0]); print("\n".join(bad) or "all echoes equal")
sys.exit(1 if bad else 0)
EOF

stat_of() {  # stat_of NAME: a raw isostat value
	"$isostat" -r -c "$control" | awk -v k="$1" '$1 == k { print $2 }'
}

declare -A NUM=([core]=0 [aggregate]=1 [basic]=2 [lock]=3)
for v in basic aggregate lock; do
	stack_up --set variant=$v
	bg peer "$CLI" peer -- python3 "$tmp/echo.py" $PORT
	wait_line "$tmp/peer.out" listening || fail "$v: echo peer did not start"
	"$CLI" run --require -- python3 "$tmp/client.py" $PEER_IP $PORT $THREADS $MSGS \
		>"$tmp/client-$v.out" 2>&1 || { cat "$tmp/client-$v.out"; fail "$v: client"; }
	sends=$(awk '$1 == "sends" { print $2 }' "$tmp/client-$v.out")
	[ "$(stat_of backend.variant)" = "${NUM[$v]}" ] ||
		fail "$v: isostat backend.variant $(stat_of backend.variant), want ${NUM[$v]}"
	dbs=$(stat_of backend.doorbells_per_app)
	case $v in
	basic|aggregate) [ "$dbs" -eq 256 ] || fail "$v: $dbs doorbells per app, want 256 (per thread)" ;;
	lock) [ "$dbs" -eq "$(nproc --all)" ] || fail "$v: $dbs doorbells per app, want one per core" ;;
	esac
	locks=$(stat_of loop.lock_takes)
	if [ $v = lock ]; then
		[ "$locks" -gt "$sends" ] || fail "lock: $locks lock acquisitions for $sends send() calls"
	else
		[ "$locks" -eq 0 ] || fail "$v: $locks lock acquisitions (only variant lock takes locks)"
	fi
	seen=$(stat_of backend.sends_seen)
	if [ $v = basic ] && [ "$seen" -lt "$sends" ]; then
		fail "basic: $seen SEND commands for $sends send() calls (want one each)"
	fi
	echo "ok: $v: $THREADS x $MSGS echoes equal; $sends send() calls, $seen SENDs, $dbs doorbells, $locks lock takes"
	kill "$LAST_PID" 2>/dev/null; wait "$LAST_PID" 2>/dev/null || true
	PIDS=()
	"$CLI" down >/dev/null 2>&1
done
echo "PASS: variants basic, aggregate, lock move bytes intact"
