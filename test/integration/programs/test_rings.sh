#!/bin/bash
# Rings that size themselves (docs/shm.md): a TCP socket starts on 16 KiB
# rings, grows them with its traffic, holds no ring at all (0 bytes) each
# way once idle, and SO_RCVBUF/SO_SNDBUF pin the size, reported as the
# kernel does.
# The program under the shim is python3 (plain sockets), its peer python3
# on the kernel.  Checked, in order, on one connection:
#   1. 8 MiB received (sha256 equal to what the peer sent): the RX ring
#      grew past its start (isostat's rx_ring_max);
#   2. 8 MiB sent (sha256 equal to what the peer read): the TX ring grew;
#   3. idle: both rings go to none (isostat: 0 bytes), and the peer's
#      kernel still sees a window of 4096 (ss: snd_wnd), the ring the
#      first bytes get;
#   4. 1 MiB more each way after the idle (rings got back on demand: RX
#      when the bytes arrive, TX when the send asks), bytes intact; the
#      sends nonblocking, waiting in poll() for POLLOUT after EAGAIN;
# and on a second connection: SO_RCVBUF/SO_SNDBUF of 64 KiB give the same
# getsockopt values as the kernel's for the same calls, rings of exactly
# 64 KiB that do not grow with 8 MiB received.
PROG_TAG=rng
. "$(dirname "$0")/lib.sh"
need python3 python3
need ss iproute2

PORT=9400
N=$((8 << 20))
N2=$((1 << 20))
mkfifo "$tmp/ctl"
stack_up
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock

# local_field PORT FIELD: FIELD of the stack sockets on local port PORT
# that are connected (an accepted one; not the listener).
local_field() {
	"$isostat" -r -c "$control" >"$tmp/isostat.log" 2>&1 || fail "isostat"
	awk -v port="$1" -v field="$2" '
		{ split($1, k, "."); if (k[1] != "sock") next; id = k[2] "." k[3] }
		k[4] == "local_port" && $2 == port { hit[id] = 1 }
		k[4] == "remote_port" && $2 != 0 { conn[id] = 1 }
		k[4] == field { val[id] = $2 }
		END { for (id in hit) if (conn[id]) print val[id] }' "$tmp/isostat.log"
}

# sock_field PORT FIELD: FIELD of the stack socket connected to peer port PORT.
sock_field() {
	"$isostat" -r -c "$control" >"$tmp/isostat.log" 2>&1 || fail "isostat"
	awk -v port="$1" -v field="$2" '
		{ split($1, k, "."); if (k[1] != "sock") next; id = k[2] "." k[3] }
		k[4] == "remote_port" && $2 == port { hit[id] = 1 }
		k[4] == field { val[id] = $2 }
		END { for (id in hit) print val[id] }' "$tmp/isostat.log"
}

# The peer: on PORT, sends N random bytes, reads as many, then (on the
# test's word: the connection must be idle in between) the same with N2;
# printing each sha256.  A second listener on PORT+1 sends N.
mkfifo "$tmp/peerctl"
# What both ends do with a stream (read or send N bytes, with its sha256).
cp "$(dirname "$0")/ringio.py" "$tmp/"
cat >"$tmp/peer.py" <<'EOF'
import socket, sys, threading
from ringio import recv_n, send_n
port, n, n2, ctl = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4])

def serve(port, tag, phases):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", port)); l.listen(1); l.settimeout(60)
    print("listening", tag, flush=True)
    c, _ = l.accept(); c.settimeout(60)
    for i, (what, size) in enumerate(phases):
        if what == "wait":
            ctl.readline()
            continue
        if what == "send":
            print(tag, i, "sent", send_n(c, size), flush=True)
        else:
            print(tag, i, "read", *recv_n(c, size), flush=True)
    c.recv(1)                                   # until the other side closes

threading.Thread(target=serve, args=(port + 1, "pin", [("send", n)])).start()
serve(port, "auto", [("send", n), ("read", n), ("wait", 0), ("send", n2), ("read", n2)])
EOF

# The program under the shim, step by step on the test's word (ctl fifo).
cat >"$tmp/sut.py" <<'EOF'
import hashlib, os, select, socket, sys
from ringio import recv_n, send_n
peer, port, n, n2, ctl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), open(sys.argv[5])

def send_nonblock(s, size):
    """send_n on a nonblocking socket: poll() for POLLOUT after EAGAIN."""
    data, done, waits = os.urandom(size), 0, 0
    s.setblocking(False)
    p = select.poll(); p.register(s, select.POLLOUT)
    while done < size:
        try:
            done += s.send(data[done:])
        except BlockingIOError:
            if done == 0:
                # the kernel takes the first bytes on an idle socket
                sys.exit("the first send after the idle said EAGAIN")
            waits += 1
            if not p.poll(10000):
                sys.exit("no POLLOUT within 10 s after EAGAIN")
    s.setblocking(True)
    print("eagain", waits, flush=True)
    return hashlib.sha256(data).hexdigest()

# A listener whose connection waits in the backlog while it idles.
lsn = socket.socket(); lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsn.bind(("0.0.0.0", port + 10)); lsn.listen(1)
print("listening", flush=True)
s = socket.create_connection((peer, port))
print("step 0 read", *recv_n(s, n), flush=True)
ctl.readline()
print("step 1 sent", send_n(s, n), flush=True)
ctl.readline()                                  # idle, checked by the test
c2, _ = lsn.accept()
print("idlebuf", c2.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
      c2.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), flush=True)
print("step 2 read", *recv_n(s, n2), flush=True)
print("step 3 sent", send_nonblock(s, n2), flush=True)
ctl.readline()
p = socket.socket()
p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
p.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
print("pin", p.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
      p.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), flush=True)
p.connect((peer, port + 1))
print("pin read", *recv_n(p, n), flush=True)
ctl.readline()
EOF

exec 3<>"$tmp/ctl"          # keep the fifos open both ways: writes never block
exec 4<>"$tmp/peerctl"
bg peer "$CLI" peer -- python3 "$tmp/peer.py" $PORT $N $N2 "$tmp/peerctl"
wait_line "$tmp/peer.out" "listening auto" || fail "peer did not listen"
bg sut "$CLI" run --require -- python3 "$tmp/sut.py" "$PEER_IP" $PORT $N $N2 "$tmp/ctl"
sut_pid=$LAST_PID
wait_line "$tmp/sut.out" "^listening" 30 "$sut_pid" || fail "the program did not listen"
# A client that connects and waits (its connection idles in the backlog).
bg waiter "$CLI" peer -- python3 -c '
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); time.sleep(60)' \
	"$STACK_IP" $((PORT + 10))

# expect_same STEP: the SUT's and the peer's sha256 of one transfer agree
# (the SUT's step; the peer's numbering has its wait as step 2).
expect_same() {
	local step=$1 pstep=$1 mine theirs
	[ "$step" -lt 2 ] || pstep=$((step + 1))
	wait_line "$tmp/sut.out" "^step $step " 60 "$sut_pid" || fail "step $step did not finish"
	mine=$(awk -v s="$step" '$1 == "step" && $2 == s { print $NF }' "$tmp/sut.out")
	wait_line "$tmp/peer.out" "^auto $pstep " 60 "$sut_pid" || fail "peer: no step $pstep"
	theirs=$(awk -v s="$pstep" '$1 == "auto" && $2 == s { print $NF }' "$tmp/peer.out")
	[ -n "$mine" ] && [ "$mine" = "$theirs" ] ||
		fail "step $step: sha256 $mine here, $theirs at the peer"
}

expect_same 0
rx_max=$(sock_field $PORT rx_ring_max)
echo "1. received $N bytes intact; RX ring grew from 16384 to $rx_max"
[ "${rx_max:-0}" -gt 16384 ] || fail "the RX ring did not grow (rx_ring_max ${rx_max:-none})"

echo >&3
expect_same 1
tx_max=$(sock_field $PORT tx_ring_max)
echo "2. sent $N bytes intact; TX ring grew from 16384 to $tx_max"
[ "${tx_max:-0}" -gt 16384 ] || fail "the TX ring did not grow (tx_ring_max ${tx_max:-none})"

# 3. Idle: lwIP polls every 2 s; a connection idle for a whole interval
# shrinks.  Bounded wait on the condition.
for i in $(seq 100); do
	tx=$(sock_field $PORT tx_ring); rx=$(sock_field $PORT rx_ring)
	[ "$tx" = 0 ] && [ "$rx" = 0 ] && break
	sleep 0.1
done
for i in $(seq 100); do
	ctx=$(local_field $((PORT + 10)) tx_ring); crx=$(local_field $((PORT + 10)) rx_ring)
	[ "$ctx" = 0 ] && [ "$crx" = 0 ] && break
	sleep 0.1
done
echo "3. idle: rings now TX $tx, RX $rx; the connection waiting in the backlog TX $ctx, RX $crx"
[ "$tx" = 0 ] && [ "$rx" = 0 ] || fail "idle rings did not go to none (TX $tx, RX $rx)"
"$CLI" peer -- ss -tin "sport = :$PORT" >"$tmp/ss.out" || fail "ss"
grep -q ESTAB "$tmp/ss.out" || fail "no connection in the peer's ss"
# ss leaves out a zero snd_wnd
wnd=$(grep -o 'snd_wnd:[0-9]*' "$tmp/ss.out" | head -1 | cut -d: -f2)
echo "   the peer's kernel may send us ${wnd:-0} bytes (snd_wnd)"
[ "${wnd:-0}" = 4096 ] || fail "peer's snd_wnd ${wnd:-0}: the idle window should stay 4096"

echo >&3
echo >&4
wait_line "$tmp/sut.out" "^idlebuf" 60 "$sut_pid" || fail "no accept after the idle"
read -r _ isnd ircv < <(grep '^idlebuf' "$tmp/sut.out")
echo "   accepted after the idle: SO_SNDBUF $isnd, SO_RCVBUF $ircv"
if [ "$ctx" = 0 ]; then
	[ "$isnd" = 4096 ] || fail "SO_SNDBUF of a socket without a ring: $isnd, want 4096"
fi
if [ "$crx" = 0 ]; then
	[ "$ircv" = 4096 ] || fail "SO_RCVBUF of a socket without a ring: $ircv, want 4096"
fi
[ "$isnd" -gt 0 ] && [ "$ircv" -gt 0 ] || fail "SO_SNDBUF/SO_RCVBUF 0"
expect_same 2
expect_same 3
echo "4. $N2 bytes each way after the idle, intact" \
	"(nonblocking sends met EAGAIN $(awk '$1 == "eagain" { print $2 }' "$tmp/sut.out") times)"

echo >&3
wait_line "$tmp/sut.out" "^pin read" 60 "$sut_pid" || fail "pinned connection did not finish"
read -r _ rcv snd < <(grep '^pin [0-9]' "$tmp/sut.out")
read -r krcv ksnd < <("$CLI" peer -- python3 -c '
import socket
p = socket.socket()
p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
p.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
print(p.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), p.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))')
echo "5. SO_RCVBUF/SO_SNDBUF 65536: getsockopt $rcv/$snd (kernel $krcv/$ksnd)"
[ "$rcv" = "$krcv" ] && [ "$snd" = "$ksnd" ] || fail "getsockopt differs from the kernel's"
mine=$(awk '$1 == "pin" && $2 == "read" { print $NF }' "$tmp/sut.out")
theirs=$(awk '$1 == "pin" && $3 == "sent" { print $NF }' "$tmp/peer.out")
[ "$mine" = "$theirs" ] || fail "pinned connection: sha256 $mine here, $theirs at the peer"
rx_max=$(sock_field $((PORT + 1)) rx_ring_max); rx=$(sock_field $((PORT + 1)) rx_ring)
tx=$(sock_field $((PORT + 1)) tx_ring)
echo "   pinned rings: RX $rx (largest $rx_max), TX $tx, after $N bytes received intact"
[ "$rx" = 65536 ] && [ "$rx_max" = 65536 ] && [ "$tx" = 65536 ] ||
	fail "pinned rings should stay 65536 (RX $rx, largest $rx_max, TX $tx)"
echo >&3
wait "$sut_pid" || fail "the program under the shim failed"
echo "PASS: rings grow with traffic, idle sockets hold none (window 4096), SO_RCVBUF/SO_SNDBUF pin them"
