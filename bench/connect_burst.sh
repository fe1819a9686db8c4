#!/usr/bin/env bash
# Connection setup in a burst: N nonblocking connects from the Linux peer
# at once to an isoconns server under the shim, and the same N one after
# the other (connect + close), against isostack only.  What it shows is
# whether SYNs are lost in a burst (each loss costs the peer a 1 s SYN
# retransmission): the burst's time against N times one connect's.
#
#   sudo flock -o /tmp/isostack-daemon.lock bench/connect_burst.sh [N]
#
# Prints both figures and the drop counters that tell where SYNs went: the
# veth's XDP queue (ethtool -S rx_queue_0_drops) and the device's missed
# frames (isostat port.0.dev_imissed).  Needs root and a build (build/).
set -euo pipefail

N=${1:-3000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
CLI=$SRC/scripts/isostack
export ISOSTACK_NS_PREFIX=cb$$
PORT=5400
SERVE=

cleanup() {
	[ -z "$SERVE" ] || kill "$SERVE" 2>/dev/null || true
	[ -z "$SERVE" ] || wait "$SERVE" 2>/dev/null || true
	"$CLI" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$CLI" up >/dev/null
"$CLI" run -- "$SRC/build/bench/isoconns" serve -B 198.18.0.1 -p $PORT >"/tmp/$ISOSTACK_NS_PREFIX.serve" 2>&1 &
SERVE=$!
for _ in $(seq 100); do
	grep -q ready "/tmp/$ISOSTACK_NS_PREFIX.serve" 2>/dev/null && break
	sleep 0.1
done
grep -q ready "/tmp/$ISOSTACK_NS_PREFIX.serve" || { echo "server did not start"; exit 1; }
rm -f "/tmp/$ISOSTACK_NS_PREFIX.serve"

"$CLI" peer -- python3 - "$N" $PORT <<'EOF'
import select, socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
for i in range(n):
    s = socket.socket(); s.connect(("198.18.0.1", port)); s.close()
one = (time.perf_counter() - t) / n
t = time.perf_counter()
socks, ep, failed = [], select.epoll(), 0
for i in range(n):
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect(("198.18.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s); ep.register(s.fileno(), select.EPOLLOUT)
left = n
while left:
    for fd, ev in ep.poll(10):
        ep.unregister(fd); left -= 1
burst = time.perf_counter() - t
failed = sum(1 for s in socks if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
print("one at a time: %.1f us per connect+close" % (one * 1e6))
print("burst of %d: %.3f s, %.0f connects/s, %d failed" % (n, burst, n / burst, failed))
EOF
drops=$(ip netns exec "$ISOSTACK_NS_PREFIX-stack" ethtool -S "${ISOSTACK_NS_PREFIX}s0" 2>/dev/null |
	awk '$1 == "rx_queue_0_drops:" { print $2 }')
missed=$("$SRC/build/daemon/isostat" -r -c "/run/isostack/$ISOSTACK_NS_PREFIX/control.sock" 2>/dev/null |
	awk '$1 == "port.0.dev_imissed" { print $2 }')
echo "veth rx_queue_0_drops ${drops:-?}, port.0.dev_imissed ${missed:-?}"
