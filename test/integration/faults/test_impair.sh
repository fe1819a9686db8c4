#!/bin/bash
# Checksummed transfers through a bad wire, one impairment at a time
# (issue 14, point 4): scripts/lib/impair.py, the userspace relay of test
# lossy (this kernel has no sch_netem), between the daemon's veth and a
# client namespace that holds the peer address, impairing both ways:
#   loss 5% | duplicate 5% | reorder 10% | delay 20 ms | corrupt 1%
# Each step: a bulk echo of FAULTS_IMPAIR_BYTES (10 MB) through the
# daemon's echo service and 100 short connections (peer_tool.py), SHA-256
# and byte counts equal; the relay's own account of what it did is
# printed. The corrupting step must also show the daemon dropping what it
# received corrupted: the growth of lwIP's ip/tcp/icmp checksum errors and
# the port's rx_drop_cksum and rx_gro_drop_cksum (checked before lwIP)
# must be at least 1 and at most the frames the relay corrupted toward the
# daemon (a flipped version or length byte is dropped for that instead);
# the client's kernel counts its own (TcpInCsumErrors, IP InHdrErrors).
# FAULTS_IMPAIR_STEPS="loss corrupt" runs some steps only.
PROG_TAG=fim
. "$(dirname "$0")/lib.sh"
[ "$CONNS_STACK" = isostack ] || { echo "SKIP: a daemon test (CONNS_STACK=$CONNS_STACK)"; exit 77; }
need ethtool ethtool
BYTES=${FAULTS_IMPAIR_BYTES:-10000000}
STEPS=${FAULTS_IMPAIR_STEPS:-loss dup reorder delay corrupt}

conns_up
load_state
cli=$ISOSTACK_NS_PREFIX-cli
r0=${ISOSTACK_NS_PREFIX}r0
c0=${ISOSTACK_NS_PREFIX}c0
relay=
stop_relay() {
	[ -z "$relay" ] || { kill "$relay" 2>/dev/null && wait "$relay" || true; }
	relay=
}
impair_cleanup() {
	stop_relay
	ip netns del "$cli" 2>/dev/null || true
}
# programs/lib.sh's cleanup runs `isostack down`; the client namespace is
# ours. cleanup reads the exit status from $?: give it back (under set -e
# a bare `(exit 1)` would end the trap before cleanup ran).
trap 'rc=$?; impair_cleanup; if [ $rc -eq 0 ]; then cleanup; else (exit $rc) || cleanup; fi' EXIT

# The wire: the peer address moves to a client namespace behind the relay.
ip netns add "$cli"
ip link add "$r0" netns "$S_NS_PEER" type veth peer name "$c0" netns "$cli"
"$CLI" peer -- sh -e -c "
	ip addr del $PEER_IP/24 dev $S_IF_PEER
	ethtool -K $r0 tx off tso off gso off gro off >/dev/null
	sysctl -qw net.ipv6.conf.$r0.disable_ipv6=1
	ip link set $r0 up"
ip netns exec "$cli" sh -e -c "
	ethtool -K $c0 tx off tso off gso off gro off >/dev/null
	sysctl -qw net.ipv6.conf.$c0.disable_ipv6=1
	ip link set lo up
	ip addr add $PEER_IP/24 dev $c0
	ip link set $c0 up"
client() { ip netns exec "$cli" taskset -c 0 "$@"; }

start_relay() {  # start_relay IMPAIR-OPTIONS
	ip netns exec "$S_NS_PEER" taskset -c 0 python3 -u "$IMPAIR" "$S_IF_PEER" "$r0" \
		--stats "$tmp/relay.json" "$@" 2>"$tmp/relay.err" &
	relay=$!
	# Ready once a ping crosses it (each try waits up to 1 s).
	for _ in $(seq 20); do
		client ping -c 1 -W 1 -q "$STACK_IP" >/dev/null 2>&1 && return 0
		kill -0 "$relay" 2>/dev/null || fail "the relay exited: $(cat "$tmp/relay.err")"
	done
	fail "no ping crosses the relay ($*)"
}

# csum_errors: the daemon's drops for a bad checksum, summed.
csum_errors() {
	stats
	echo $(( $(sv lwip.ip.chkerr) + $(sv lwip.tcp.chkerr) + $(sv lwip.icmp.chkerr) +
		 $(sv lwip.udp.chkerr) + $(sv port.0.rx_drop_cksum) + $(sv port.0.rx_gro_drop_cksum) ))
}
kernel_csum_errors() {
	client nstat -az TcpInCsumErrors IpInHdrErrors 2>/dev/null |
		awk '$1 ~ /Csum|HdrErr/ { n += $2 } END { print n + 0 }'
}

for step in $STEPS; do
	case $step in
	loss)    opts=(--loss 5) ;;
	dup)     opts=(--dup 5) ;;
	reorder) opts=(--reorder 10) ;;
	delay)   opts=(--delay 20) ;;
	corrupt) opts=(--corrupt 1) ;;
	*) fail "unknown step '$step'" ;;
	esac
	echo "== $step: ${opts[*]} both ways"
	start_relay "${opts[@]}" --seed 14
	before=$(csum_errors)
	kbefore=$(kernel_csum_errors)
	t0=$(now)
	client python3 "$PEER_TOOL" --addr "$STACK_IP" --timeout 120 echo-bulk --bytes "$BYTES" ||
		fail "$step: bulk echo"
	client python3 "$PEER_TOOL" --addr "$STACK_IP" --timeout 30 echo-short --count 100 --size 1000 ||
		fail "$step: short connections"
	echo "$step: both transfers verified in $(elapsed "$t0" "$(now)") s"
	stop_relay
	echo "$step: relay: $(cat "$tmp/relay.json")"
	daemon_drops=$(( $(csum_errors) - before ))
	kernel_drops=$(( $(kernel_csum_errors) - kbefore ))
	if [ "$step" = corrupt ]; then
		toward=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["corrupted_to"][sys.argv[2]])' \
			"$tmp/relay.json" "$S_IF_PEER")
		echo "corrupt: $toward frames corrupted toward the daemon; its checksum drops grew by" \
		     "$daemon_drops; the client's kernel counted $kernel_drops"
		[ "$daemon_drops" -ge 1 ] && [ "$daemon_drops" -le "$toward" ] ||
			fail "the daemon's checksum drops grew by $daemon_drops, want 1..$toward"
	else
		echo "$step: daemon checksum drops +$daemon_drops (want 0)"
		[ "$daemon_drops" -eq 0 ] || fail "checksum drops without corruption"
	fi
done
kill -0 "$S_DAEMON_PID" || fail "the daemon exited"
echo "PASS: every step's transfers intact ($STEPS)"
