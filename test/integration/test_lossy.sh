#!/usr/bin/env bash
# A bulk echo over a bad link: 1% of frames lost, some reordered and
# duplicated, in both directions. Every byte must still come back (SHA-256
# of both streams), and short connections still open and close cleanly.
# 100 MB, as test_tcp_echo.sh: about 30 s here (lwIP recovers from most
# losses by retransmission timeout; with TCP_TMR_INTERVAL 10 ms that is
# tens of ms, see tcpip/lwipopts.h). ECHO_BYTES=N changes the size.
#
# With sch_netem in the kernel, netem on the peer's veth does it (peer to
# daemon only: the daemon's own frames bypass the qdisc). Without it (as
# on kernels built without modules), a userspace relay in the peer
# namespace bridges the daemon's veth to a second veth whose far end, in a
# client namespace, holds the peer address; it loses, reorders and
# duplicates frames both ways (scripts/lib/impair.py).
. "$(dirname "$0")/lib.sh"
command -v tc >/dev/null || skip "needs tc (iproute2)"
test_prefix lossy
stack_up

cli=$ISOSTACK_NS_PREFIX-cli
relay=
lossy_cleanup() {
	[ -z "$relay" ] || { kill "$relay" 2>/dev/null && wait "$relay" || true; }
	ip netns del "$cli" 2>/dev/null || true
}
on_exit lossy_cleanup

if peer tc qdisc add dev "$S_IF_PEER" root netem delay 1ms loss 1% reorder 5% 50% duplicate 1% 2>/dev/null; then
	step "netem on $S_IF_PEER: loss 1%, reorder 5%, duplicate 1%"
	peer tc qdisc show dev "$S_IF_PEER"
	client() { peer "$@"; }
else
	step "no sch_netem here: userspace relay, loss 1%, reorder 5%, duplicate 1%, both ways"
	ip netns add "$cli"
	ip link add "${ISOSTACK_NS_PREFIX}r0" netns "$S_NS_PEER" type veth \
		peer name "${ISOSTACK_NS_PREFIX}c0" netns "$cli"
	peer sh -e -c "
		ip addr del $S_PEER_ADDR/24 dev $S_IF_PEER
		ethtool -K ${ISOSTACK_NS_PREFIX}r0 tx off tso off gso off gro off >/dev/null
		sysctl -qw net.ipv6.conf.${ISOSTACK_NS_PREFIX}r0.disable_ipv6=1
		ip link set ${ISOSTACK_NS_PREFIX}r0 up"
	ip netns exec "$cli" sh -e -c "
		ethtool -K ${ISOSTACK_NS_PREFIX}c0 tx off tso off gso off gro off >/dev/null
		sysctl -qw net.ipv6.conf.${ISOSTACK_NS_PREFIX}c0.disable_ipv6=1
		ip link set lo up
		ip addr add $S_PEER_ADDR/24 dev ${ISOSTACK_NS_PREFIX}c0
		ip link set ${ISOSTACK_NS_PREFIX}c0 up"
	# Started directly (not through a shell function) so $! is the relay.
	ip netns exec "$S_NS_PEER" taskset -c 0 python3 -u "$here/../../scripts/lib/impair.py" \
		"$S_IF_PEER" "${ISOSTACK_NS_PREFIX}r0" \
		--loss "${LOSS:-1}" --reorder "${REORDER:-5}" --dup "${DUP:-1}" &
	relay=$!
	client() { ip netns exec "$cli" taskset -c 0 "$@"; }
	# The relay is ready once a ping crosses it (bounded: 10 tries).
	for _ in $(seq 10); do
		client ping -c 1 -W 1 -q "$DADDR" >/dev/null 2>&1 && break
	done
fi
client ping -c 10 -i 0.05 -W 1 -q "$DADDR" || true

step "bulk echo: ${ECHO_BYTES:=100000000} bytes over the lossy link"
client python3 "$PEER_TOOL" --timeout 300 echo-bulk --bytes "$ECHO_BYTES"

step "short connections over the lossy link"
client python3 "$PEER_TOOL" --timeout 20 echo-short --count "${ECHO_CONNS:-100}" --size 100
daemon_alive || fail "the daemon exited"
echo "PASS"
