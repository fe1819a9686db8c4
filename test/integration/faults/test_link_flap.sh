#!/bin/bash
# The link goes down and up under a transfer (issue 14, point 4): a long
# bulk echo (peer_tool.py, the daemon's echo service, SHA-256 of both
# streams) while the veth is set down for FAULTS_FLAP_DOWN (1.5) s and up
# again, three times: twice on the peer's end, once on the daemon's end
# (the af_xdp/af_packet vdev's interface), each once the echo has moved
# another 16 MB. The transfer must complete with every byte equal, and
# 20 short connections work afterwards.
PROG_TAG=flf
. "$(dirname "$0")/lib.sh"
[ "$CONNS_STACK" = isostack ] || { echo "SKIP: a daemon test (CONNS_STACK=$CONNS_STACK)"; exit 77; }
BYTES=${FAULTS_FLAP_BYTES:-400000000}
DOWN=${FAULTS_FLAP_DOWN:-1.5}

conns_up
load_state
stats
bg echo "$CLI" peer -- python3 "$PEER_TOOL" --timeout 120 echo-bulk --bytes "$BYTES"
client=$LAST_PID

flap() {  # flap NAMESPACE IFACE
	local rx want
	stats
	want=$(( $(sv port.0.rx_bytes) + 16000000 ))
	wait_stat port.0.rx_bytes ">=" "$want" 60 ||
		fail "the echo did not move 16 MB more within 60 s"
	kill -0 "$client" 2>/dev/null || fail "the echo ended before the flap: make FAULTS_FLAP_BYTES larger"
	rx=$(sv port.0.rx_bytes)
	ip netns exec "$1" ip link set "$2" down
	echo "$(date +%T.%N | cut -c1-12) $2 down (daemon received $rx bytes so far)"
	sleep "$DOWN"     # the fault's length, not a wait for an event
	ip netns exec "$1" ip link set "$2" up
	echo "$(date +%T.%N | cut -c1-12) $2 up after $DOWN s"
}

flap "$S_NS_PEER" "$S_IF_PEER"
flap "$S_NS_PEER" "$S_IF_PEER"
flap "$S_NS_STACK" "$S_IF_STACK"
t0=$(now)
wait "$client" || fail "the bulk echo failed: $(tail -3 "$tmp/echo.out")"
echo "the echo ended $(elapsed "$t0" "$(now)") s after the last flap"
cat "$tmp/echo.out"
"$CLI" peer -- python3 "$PEER_TOOL" --timeout 20 echo-short --count 20 --size 1000 ||
	fail "short connections after the flaps"
stats
echo "port.0: rx_pkts $(sv port.0.rx_pkts) tx_pkts $(sv port.0.tx_pkts)" \
     "lwip.tcp: xmit $(sv lwip.tcp.xmit) recv $(sv lwip.tcp.recv)"
echo "PASS: $BYTES bytes echoed intact across three link flaps of $DOWN s"
