#!/usr/bin/env bash
# L2 path benchmark: isostackd against dpdk-testpmd on the same vdev, the
# same veth, the same core and the same traffic, in one run.
#
#   bench/l2_testpmd.sh [--duration S] [--json PATH] [--pmd af_xdp|af_packet]
#                       [--streams N] [--modes io,macswap,udp,tcp]
#
# Topology: `isostack up --no-daemon` (namespaces, veth, hugepages); the
# device under test (DUT) runs on the stack end pinned to core 1, the
# traffic source in the peer namespace on core 0.
#
# Packet rate. The source is testpmd txonly (64-byte UDP frames to
# 198.18.0.1 port 4242, sent as fast as it can) on the peer's veth through
# the same vdev type. Each DUT receives the same offered load:
#   testpmd io       sends every frame back unchanged
#   testpmd macswap  swaps the MAC addresses and sends it back
#   isostackd        parses Ethernet, IPv4 and UDP, finds no socket on the
#                    port and answers with an ICMP port unreachable: one
#                    frame in, one new frame out, through the whole stack
# The rate of each DUT is what it sends, counted by the kernel on the
# stack's veth (tx_packets), the same counter for all three; frames the
# DUT did not take in time are rx_dropped there (the XDP redirect to a
# full AF_XDP ring).
# TCP. isostackd's echo service with --streams Linux clients in the peer
# namespace (core 0): TCP segments per second through the stack, both
# directions (veth rx+tx), and goodput.
# Cycles per packet: the stack core's busy share (from /proc/stat, which
# includes the kernel's veth/XDP work done there) times its clock, divided
# by the DUT's packet rate. With busy polling the core is always busy, so
# this is an upper bound unless the DUT is saturated (rx_dropped > 0).
# --modes picks the rows (default all four): io, macswap (testpmd), udp
# (isostackd udp->icmp), tcp (isostackd echo); `isostack bench` runs io only,
# beside its own isostackd rates.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ISOSTACK_CLI=${ISOSTACK_CLI:-$here/../scripts/isostack}
ISOSTACK_DAEMON=${ISOSTACK_DAEMON:-${ISOSTACK_BUILD:-$here/../build}/daemon/isostackd}
PEER_TOOL=$here/../test/integration/peer_tool.py
duration=5 json= pmd=af_xdp streams=4 modes=io,macswap,udp,tcp

while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift ;;
	--json)     json=$2; shift ;;
	--pmd)      pmd=$2; shift ;;
	--streams)  streams=$2; shift ;;
	--modes)    modes=$2; shift ;;
	-h|--help)  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*)          echo "l2_testpmd: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" -eq 0 ] || { echo "l2_testpmd: needs root"; exit 77; }
command -v dpdk-testpmd >/dev/null || { echo "l2_testpmd: needs dpdk-testpmd"; exit 77; }
want() { case ",$modes," in *",$1,"*) return 0 ;; esac; return 1; }
have_daemon=1
want udp || want tcp || have_daemon=0
[ $have_daemon = 0 ] || [ -x "$ISOSTACK_DAEMON" ] || { have_daemon=0; echo "l2_testpmd: no isostackd at $ISOSTACK_DAEMON: testpmd rows only"; }

export ISOSTACK_NS_PREFIX=l2b$$
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$ISOSTACK_CLI" down >/dev/null || true
	rm -rf "/var/run/dpdk/${ISOSTACK_NS_PREFIX}g" "/var/run/dpdk/${ISOSTACK_NS_PREFIX}t"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ISOSTACK_CLI" up --no-daemon
state=/run/isostack/$ISOSTACK_NS_PREFIX
eval "$(sed -n 's/^\([A-Z0-9_]*\)=/S_\1=/p' "$state/state")"
if [ "$S_MEM" = huge ]; then mem=(--huge-dir "$S_HUGE_DIR"); else mem=(--no-huge -m 512); fi
case $pmd in
af_xdp)    vdev() { echo "net_af_xdp0,iface=$1,start_queue=0,queue_count=1"; } ;;
af_packet) vdev() { echo "net_af_packet0,iface=$1,qpairs=1"; } ;;
*)         echo "l2_testpmd: --pmd af_xdp or af_packet" >&2; exit 2 ;;
esac
mhz=$(awk -F': ' '/^cpu MHz/ { if (n++ == 1) { print int($2) } }' /proc/cpuinfo)
[ -n "$mhz" ] || mhz=$(awk -F': ' '/^cpu MHz/ { print int($2); exit }' /proc/cpuinfo)

sx() { ip netns exec "$S_NS_STACK" cat "/sys/class/net/$S_IF_STACK/statistics/$1"; }
cpu1() { awk '$1 == "cpu1" { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat; }

# Wait (bounded) until FILE contains PATTERN.
wait_log() {
	local i
	for i in $(seq 150); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "l2_testpmd: timed out waiting for '$2' in $1:" >&2; tail -n 20 "$1" >&2
	return 1
}

# One measuring window: counters before and after, to "$1".
measure() {
	local rx0 tx0 dr0 b0 i0 rx1 tx1 dr1 b1 i1
	sleep 1       # let the source reach its rate
	rx0=$(sx rx_packets) tx0=$(sx tx_packets) dr0=$(sx rx_dropped)
	read -r b0 i0 < <(cpu1)
	sleep "$duration"
	rx1=$(sx rx_packets) tx1=$(sx tx_packets) dr1=$(sx rx_dropped)
	read -r b1 i1 < <(cpu1)
	python3 - "$1" "$duration" "$mhz" $((rx1 - rx0)) $((tx1 - tx0)) $((dr1 - dr0)) \
		$((b1 - b0)) $((i1 - i0)) <<'PY' >>"$results"
import json, sys
name, secs, mhz, rx, tx, drop, busy, idle = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), *map(int, sys.argv[4:])
share = busy / max(busy + idle, 1)
pps = tx / secs
print(json.dumps({"dut": name, "offered_pps": round(rx / secs), "out_pps": round(pps),
                  "dropped_pps": round(drop / secs), "core_busy": round(share, 3),
                  "cycles_per_pkt": round(share * mhz * 1e6 / pps) if pps else None}))
PY
}

generator() {
	ip netns exec "$S_NS_PEER" taskset -c 0 dpdk-testpmd --file-prefix "${ISOSTACK_NS_PREFIX}g" \
		"${mem[@]}" --no-pci --vdev "$(vdev "$S_IF_PEER")" --lcores 0@0,1@0 -- \
		--total-num-mbufs 8192 --forward-mode=txonly --txpkts=64 \
		--tx-ip="$S_PEER_ADDR,$S_ADDR" --tx-udp=4242,4242 --eth-peer="0,$S_STACK_MAC" \
		--stats-period 100 </dev/null >"$state/gen.log" 2>&1 &
	gen=$!; pids+=("$gen")
	wait_log "$state/gen.log" "forwards packets on"
}

stop() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

results=$state/results.jsonl
: >"$results"

for mode in io macswap; do
	want $mode || continue
	echo "== testpmd $mode on $pmd (core 1)"
	ip netns exec "$S_NS_STACK" taskset -c 1 dpdk-testpmd --file-prefix "${ISOSTACK_NS_PREFIX}t" \
		"${mem[@]}" --no-pci --vdev "$(vdev "$S_IF_STACK")" --lcores 0@1,1@1 -- \
		--total-num-mbufs 8192 --forward-mode=$mode --stats-period 100 \
		</dev/null >"$state/dut.log" 2>&1 &
	dut=$!; pids+=("$dut")
	wait_log "$state/dut.log" "forwards packets on"
	generator
	measure "testpmd $mode"
	stop "$gen"; stop "$dut"
done

if [ $have_daemon = 1 ]; then
	echo "== isostackd on $pmd (core 1): UDP in, ICMP port unreachable out"
	ip netns exec "$S_NS_STACK" taskset -c 1 "$ISOSTACK_DAEMON" --lcore 1 \
		--port "vdev=$(vdev "$S_IF_STACK") ip=$S_ADDR/24" --echo "$S_ADDR" \
		--control "$state/control.sock" -- --file-prefix "${ISOSTACK_NS_PREFIX}t" "${mem[@]}" \
		</dev/null >"$state/isostackd.log" 2>&1 &
	dut=$!; pids+=("$dut")
	for _ in $(seq 20); do   # up, and ARP resolved both ways
		ip netns exec "$S_NS_PEER" ping -c 1 -W 1 -q "$S_ADDR" >/dev/null 2>&1 && break
	done
	if want udp; then
		generator
		measure "isostackd udp->icmp"
		stop "$gen"
	fi
fi

if [ $have_daemon = 1 ] && want tcp; then
	echo "== isostackd TCP echo: $streams Linux clients in the peer namespace (core 0)"
	rx0=$(sx rx_packets) tx0=$(sx tx_packets)
	read -r b0 i0 < <(cpu1)
	t0=$(date +%s.%N)
	cpids=()
	for i in $(seq "$streams"); do
		ip netns exec "$S_NS_PEER" taskset -c 0 python3 "$PEER_TOOL" --seed "$i" \
			echo-bulk --bytes 100000000 >"$state/tcp$i.log" 2>&1 &
		cpids+=($!)
	done
	ok=1
	for p in "${cpids[@]}"; do wait "$p" || ok=0; done
	t1=$(date +%s.%N)
	rx1=$(sx rx_packets) tx1=$(sx tx_packets)
	read -r b1 i1 < <(cpu1)
	[ $ok = 1 ] || { cat "$state"/tcp*.log; echo "l2_testpmd: a TCP echo stream failed" >&2; exit 1; }
	python3 - "$t0" "$t1" "$mhz" $((rx1 - rx0)) $((tx1 - tx0)) $((b1 - b0)) $((i1 - i0)) "$streams" <<'PY' >>"$results"
import json, sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2]); mhz = int(sys.argv[3])
rx, tx, busy, idle, streams = map(int, sys.argv[4:])
secs = t1 - t0; share = busy / max(busy + idle, 1); sps = (rx + tx) / secs
print(json.dumps({"dut": "isostackd tcp echo", "streams": streams, "seconds": round(secs, 2),
                  "segments_in_ps": round(rx / secs), "segments_out_ps": round(tx / secs),
                  "out_pps": round(sps), "goodput_mbit_each_way": round(streams * 100e6 * 8 / secs / 1e6),
                  "core_busy": round(share, 3), "cycles_per_pkt": round(share * mhz * 1e6 / sps)}))
PY
fi
[ $have_daemon = 0 ] || stop "$dut"

echo
printf '%-22s %12s %12s %12s %6s %12s\n' DUT offered/s out/s dropped/s core cycles/pkt
python3 - "$results" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["dut"].endswith("tcp echo"):
        print(f'{r["dut"]:22s} {r["segments_in_ps"]:12d} {r["segments_out_ps"]:12d} {"-":>12s} '
              f'{r["core_busy"]*100:5.0f}% {r["cycles_per_pkt"]:12d}   '
              f'(segments in/out; {r["goodput_mbit_each_way"]} Mbit/s echoed, {r["streams"]} streams)')
    else:
        print(f'{r["dut"]:22s} {r["offered_pps"]:12d} {r["out_pps"]:12d} {r["dropped_pps"]:12d} '
              f'{r["core_busy"]*100:5.0f}% {r["cycles_per_pkt"] or 0:12d}')
PY
echo "(vdev $pmd on a veth; 64-byte frames; ${duration}s windows; cpu ${mhz} MHz; stack core 1, source core 0)"
if [ -n "$json" ]; then
	python3 - "$results" "$pmd" "$duration" "$mhz" >"$json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
json.dump({"benchmark": "l2_testpmd", "pmd": sys.argv[2], "window_s": float(sys.argv[3]),
           "cpu_mhz": int(sys.argv[4]), "frame_bytes": 64, "results": rows}, sys.stdout, indent=2)
PY
	echo "wrote $json"
fi
