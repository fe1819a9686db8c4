#!/usr/bin/env bash
# The peer pings the daemon, and ARP resolves both ways: the peer's kernel
# learns the daemon's MAC (its neighbour table shows the vdev's address),
# and the daemon resolves a peer address it has never seen before it
# replies to it (a raw echo request from 198.18.0.3; lwIP does not learn
# MACs from IP packets, so the reply needs an ARP request first).
. "$(dirname "$0")/lib.sh"
test_prefix arp
stack_up

step "ping from the peer"
peer ping -c 5 -i 0.2 -W 2 "$DADDR" || fail "the daemon did not answer ping"

step "the peer's neighbour table holds the daemon's MAC"
neigh=$(peer ip neigh show "$DADDR" dev "$S_IF_PEER")
echo "$neigh"
grep -qi "lladdr $S_STACK_MAC" <<<"$neigh" ||
	fail "peer resolved $DADDR to something else than the daemon's $S_STACK_MAC"

step "the daemon resolves a new peer address by ARP before replying"
peer ip addr add 198.18.0.3/24 dev "$S_IF_PEER"
peer python3 "$PEER_TOOL" --timeout 5 arp --iface "$S_IF_PEER" \
	--dmac "$S_STACK_MAC" --src 198.18.0.3
peer_mac=$(peer cat "/sys/class/net/$S_IF_PEER/address")
echo "(peer MAC $peer_mac)"
daemon_alive || fail "the daemon exited"
echo "PASS"
