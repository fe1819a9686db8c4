#!/usr/bin/env bash
# A new connection on the 4-tuple of one that isostack holds in TIME-WAIT
# (found by the soak: lwIP patch 0013, docs/testing.md "Soak").
#
# The server is bench_soak_app.py under the shim; it closes first, so its
# end (lwIP) holds the connection in TIME-WAIT for 2 MSL (120 s) while the
# Linux client's end is gone at once (LAST-ACK). The client then connects
# again from the same source port, as Linux may do at any time:
#   A. after a 1000-byte download: the new SYN's seqno is past what the
#      old connection received (Linux's ISN clock): a new connection;
#   B. after a 128 MiB upload: the new ISN is still before the old
#      rcv_nxt; lwIP ACKs the SYN, Linux answers with a RST at rcv_nxt,
#      which must end TIME-WAIT, and the SYN retry (1 s) gets through.
# Each second connection must complete its own verified transfer within
# 10 s (before the fix: A refused or hanging, B hanging until TIME-WAIT
# ends). Before each, isostat must show the TIME-WAIT pcb (memp.tcp_pcb.used
# one more than before the first connection), so the case is real.
soak_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$soak_dir/../lib.sh"

SHIM=${1:-${ISOSTACK_BUILD:-$soak_dir/../../../build}/libisosock/libisosock.so}
ISOSTAT=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -f "$SHIM" ] || skip "no shim at $SHIM"
[ -x "$ISOSTAT" ] || skip "no isostat at $ISOSTAT"
ldd "$SHIM" 2>/dev/null | grep -q libasan && skip "an ASan shim cannot be preloaded into python3 by isostack run"

test_prefix tw
stack_up --no-echo
export ISOSTACK_SHIM=$SHIM
tmp=$(mktemp -d)
app_stop() { [ -n "${APP_PID:-}" ] && kill "$APP_PID" 2>/dev/null; rm -rf "$tmp"; }
on_exit app_stop

step "bench_soak_app.py under the shim on $DADDR:5600"
"$ISOSTACK_CLI" run --require -- python3 "$soak_dir/../../../scripts/lib/bench_soak_app.py" \
	"$DADDR" 5600 5601 >"$tmp/app.out" 2>"$tmp/app.err" &
APP_PID=$!
for _ in $(seq 100); do
	grep -q ready "$tmp/app.out" 2>/dev/null && break
	kill -0 "$APP_PID" 2>/dev/null || { cat "$tmp/app.err"; fail "the application exited"; }
	sleep 0.1
done
grep -q ready "$tmp/app.out" || fail "the application did not start within 10 s"

tw_pcbs() {
	"$ISOSTAT" -c "$S_CONTROL" -r | awk '$1 == "memp.tcp_pcb.used" { print $2 }'
}

# case NAME REQUEST PORT: two connections from PORT (python in the peer).
run_case() {
	local name=$1 req=$2 port=$3 base n
	base=$(tw_pcbs)
	step "$name: first connection from port $port: $req"
	peer python3 - first "$req" "$port" <<'PY' || fail "$name: first connection"
import hashlib, random, socket, sys, time
what, req, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", port))
s.settimeout(10)
t0 = time.monotonic()
try:
    s.connect(("198.18.0.1", 5600))
except OSError as e:
    sys.exit(f"FAIL: {what} connection from port {port}: connect: {e} after "
             f"{time.monotonic() - t0:.1f} s")
print(f"  connected in {time.monotonic() - t0:.2f} s")
w = req.split()
s.sendall((req + "\n").encode())
if w[0] == "DOWN":
    rng, h, want = random.Random(int(w[2])), hashlib.sha256(), hashlib.sha256()
    left = int(w[1])
    while left > 0:
        c = rng.randbytes(min(1 << 16, left)); want.update(c); left -= len(c)
    n = 0
    while d := s.recv(1 << 16):
        h.update(d); n += len(d)
    ok = n == int(w[1]) and h.digest() == want.digest()
else:
    rng, h = random.Random(7), hashlib.sha256()
    left = int(w[1])
    while left > 0:
        c = rng.randbytes(min(1 << 20, left)); h.update(c); s.sendall(c); left -= len(c)
    line = b""
    while not line.endswith(b"\n") and (d := s.recv(128)):
        line += d
    ok = line.decode().split() == [w[1], h.hexdigest()]
    while s.recv(128):      # the server closes first
        pass
s.close()
print(f"  {req}: {'verified (SHA-256)' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
	# The server closed first: its pcb is in TIME-WAIT (the listener is
	# a tcp_pcb_listen, not counted here).
	for _ in $(seq 50); do
		n=$(tw_pcbs)
		[ "$n" = $((base + 1)) ] && break
		sleep 0.1
	done
	[ "$n" = $((base + 1)) ] || fail "$name: isostat shows $n tcp pcbs, not $base + the one in TIME-WAIT"
	echo "  isostack holds the connection in TIME-WAIT (memp.tcp_pcb.used $base -> $n)"
	step "$name: second connection from the same port"
	peer python3 - second "DOWN 1000 $port" "$port" <<'PY' 2>&1 || fail "$name: a new connection on a TIME-WAIT 4-tuple"
import hashlib, random, socket, sys, time
port = int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", port))
s.settimeout(10)
t0 = time.monotonic()
try:
    s.connect(("198.18.0.1", 5600))
except OSError as e:
    sys.exit(f"FAIL: second connection from port {port}: connect: {e} after "
             f"{time.monotonic() - t0:.1f} s")
print(f"  connected in {time.monotonic() - t0:.2f} s")
s.sendall(f"DOWN 1000 {port}\n".encode())
got = b""
while d := s.recv(4096):
    got += d
s.close()
if got != random.Random(port).randbytes(1000):
    sys.exit("FAIL: second connection: the 1000 bytes differ")
print("  DOWN 1000: verified")
PY
}

run_case A "DOWN 1000 1" 40001
run_case B "UP 134217728" 40002
echo "PASS: new connections on TIME-WAIT 4-tuples, both cases"
