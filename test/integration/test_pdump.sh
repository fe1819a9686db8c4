#!/usr/bin/env bash
# Packet capture the DPDK way: the daemon enables pdump (rte_pdump_init),
# dpdk-dumpcap attaches as a secondary process and writes a pcapng file,
# and tshark finds the ping's ICMP echo request and reply in it.
. "$(dirname "$0")/lib.sh"
command -v dpdk-dumpcap >/dev/null || skip "needs dpdk-dumpcap (package dpdk)"
command -v tshark >/dev/null || skip "needs tshark"
grep -q rte_pdump_init "$ISOSTACK_DAEMON" ||
	skip "isostackd does not call rte_pdump_init: no capture support yet"
test_prefix pcap
stack_up
[ "$S_MEM" = huge ] ||
	skip "the daemon runs with --no-huge: DPDK secondary processes (dumpcap) need hugepages"

pcap=$STATE_DIR/ping.pcapng
step "dpdk-dumpcap lists the daemon's ports"
taskset -c 0 dpdk-dumpcap --file-prefix "$ISOSTACK_NS_PREFIX" -D 2>&1 | tee "$STATE_DIR/dumpcap-D.log"
port=$(sed -n 's/^[0-9]*\. \(net_af_[a-z_]*[0-9]*\).*/\1/p' "$STATE_DIR/dumpcap-D.log" | head -n 1)
[ -n "$port" ] || fail "dumpcap found no net_af_xdp/net_af_packet port in the daemon"
step "dpdk-dumpcap on $port, icmp only, stops after 4 packets"
taskset -c 0 dpdk-dumpcap --file-prefix "$ISOSTACK_NS_PREFIX" -i "$port" -f icmp \
	-c 4 -a duration:30 -w "$pcap" >"$STATE_DIR/dumpcap.log" 2>&1 &
dumpcap=$!
# dumpcap reports "Packets captured" once it is attached: poll its log, bounded.
for _ in $(seq 100); do
	grep -qE "Capturing on|Packets captured" "$STATE_DIR/dumpcap.log" && break
	kill -0 $dumpcap 2>/dev/null || break
	sleep 0.1
done
grep -qE "Capturing on|Packets captured" "$STATE_DIR/dumpcap.log" ||
	{ cat "$STATE_DIR/dumpcap.log"; kill $dumpcap 2>/dev/null; fail "dumpcap did not attach"; }

step "ping while capturing"
peer ping -c 2 -i 0.2 -W 2 "$DADDR" || { kill $dumpcap; fail "no answer to ping"; }
wait $dumpcap || { cat "$STATE_DIR/dumpcap.log"; fail "dumpcap failed"; }
cat "$STATE_DIR/dumpcap.log"

step "tshark reads the capture"
tshark -r "$pcap" -Y icmp
req=$(tshark -r "$pcap" -Y "icmp.type == 8 && ip.dst == $DADDR" 2>/dev/null | wc -l)
rep=$(tshark -r "$pcap" -Y "icmp.type == 0 && ip.src == $DADDR" 2>/dev/null | wc -l)
[ "$req" -ge 1 ] && [ "$rep" -ge 1 ] ||
	fail "capture holds $req echo requests and $rep replies; want both"
echo "PASS: $req requests, $rep replies captured"
