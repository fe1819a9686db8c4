#!/usr/bin/env bash
# IPv6 in the daemon (issue 15, point 1): `isostack up` gives the daemon
# 2001:2::1/64 (and a link-local address from its MAC) and the peer
# 2001:2::2/64. The peer pings both of the daemon's addresses; neighbour
# discovery works both ways (the peer's kernel learns the daemon's MAC,
# and the daemon resolves a peer address it has never seen before it can
# reply to it); TCP to the built-in echo service over IPv6 moves 20 MB
# and 200 short connections, checked by SHA-256, while IPv4 still echoes
# (the bulk's segments merged on receive, as IPv4's are);
# isostat's IPv6 counters count what came in.
. "$(dirname "$0")/lib.sh"
test_prefix ip6
isostat_bin=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -x "$isostat_bin" ] || skip "no isostat beside $ISOSTACK_DAEMON"
[ -r /proc/net/if_inet6 ] || skip "this kernel has no IPv6"
stack_up
[ -n "${S_ADDR6:-}" ] || fail "isostack up recorded no IPv6 address (ADDR6) in its state"
counter() { "$isostat_bin" -r -c "$S_CONTROL" | awk -v k="$1" '$1 == k { print $2 }'; }

step "ping $S_ADDR6 from the peer"
peer ping -6 -c 5 -i 0.2 -W 2 "$S_ADDR6" || fail "the daemon did not answer ping over IPv6"

step "the peer's neighbour table holds the daemon's MAC for $S_ADDR6"
neigh=$(peer ip -6 neigh show "$S_ADDR6" dev "$S_IF_PEER")
echo "$neigh"
grep -qi "lladdr $S_STACK_MAC" <<<"$neigh" ||
	fail "peer resolved $S_ADDR6 to something else than the daemon's $S_STACK_MAC"

# The daemon's link-local address is the modified EUI-64 of its MAC.
ll=$(python3 -c '
import ipaddress, sys
m = bytes.fromhex(sys.argv[1].replace(":", ""))
iid = bytes([m[0] ^ 2]) + m[1:3] + b"\xff\xfe" + m[3:6]
print(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))' "$S_STACK_MAC")
step "ping the daemon's link-local $ll%$S_IF_PEER"
peer ping -6 -c 3 -i 0.2 -W 2 "$ll%$S_IF_PEER" || fail "no answer from the link-local address"

step "the daemon resolves a new peer address (2001:2::3) before it replies"
peer ip addr add 2001:2::3/64 dev "$S_IF_PEER" nodad
nd_before=$(counter lwip.nd6.xmit)
peer ping -6 -c 2 -W 2 -I 2001:2::3 "$S_ADDR6" || fail "no reply to 2001:2::3"
nd_after=$(counter lwip.nd6.xmit)
echo "lwip.nd6.xmit $nd_before -> $nd_after"
[ "$nd_after" -gt "$nd_before" ] || fail "the daemon sent no neighbour solicitation for 2001:2::3"

step "20 MB echoed over IPv6, coalesced on receive as IPv4 is, and IPv4 beside it"
gro_before=$(counter port.0.rx_gro_merged)
peer python3 "$PEER_TOOL" --addr "$S_ADDR6" echo-bulk --bytes 20000000
gro_after=$(counter port.0.rx_gro_merged)
echo "port.0.rx_gro_merged $gro_before -> $gro_after"
[ "$gro_after" -gt "$gro_before" ] || fail "no IPv6 segment was merged on receive (gro)"
peer python3 "$PEER_TOOL" --addr "$DADDR" echo-bulk --bytes 2000000

step "200 short connections over IPv6"
peer python3 "$PEER_TOOL" --addr "$S_ADDR6" echo-short --count 200 --size 100

step "isostat counts IPv6"
for k in lwip.ip6.recv lwip.ip6.xmit lwip.icmp6.recv lwip.nd6.recv lwip.nd6.xmit; do
	v=$(counter $k)
	echo "$k ${v:-missing}"
	[ "${v:-0}" -gt 0 ] || fail "$k did not count"
done
v=$(counter lwip.ip6.drop); echo "lwip.ip6.drop ${v:-missing}"
daemon_alive || fail "the daemon exited"
echo "PASS"
