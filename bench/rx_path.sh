#!/bin/bash
# The stack core's receive path under a bulk receive: one iperf3 server on
# isostack (under the shim), the peer's iperf3 sending to it for 4 s.
# Prints the daemon's frames received, its GRO counters, the busy cycles
# of the receive path per frame (isostat loop.rx_path_cycles_per_frame,
# device time apart) and iperf3's Gbit/s. CONF: a daemon configuration
# file for `isostack up` (e.g. one with "[daemon]" and "gro = off"), to
# compare settings in one sitting:
#   for g in off on off on; do
#     printf '[daemon]\ngro = %s\n' $g >/tmp/gro-$g.conf
#     sudo flock -o /tmp/isostack-daemon.lock bench/rx_path.sh /tmp/gro-$g.conf
#   done
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export ISOSTACK_NS_PREFIX=rxpath$$ ISOSTACK_CONF=${1:-}
cli=$here/scripts/isostack
isostat=${ISOSTAT:-$here/build/daemon/isostat}
out=$(mktemp)
trap '"$cli" down >/dev/null 2>&1; rm -f "$out"' EXIT
"$cli" up >/dev/null
timeout 20 "$cli" run --require -- iperf3 -s -1 -p 5201 -B 0.0.0.0 --forceflush >"$out" 2>&1 &
for _ in $(seq 100); do grep -q "Server listening" "$out" && break; sleep 0.1; done
gbps=$("$cli" peer -- timeout 20 iperf3 -c 198.18.0.1 -p 5201 -t 4 -J |
	python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))')
"$isostat" -r -c "/run/isostack/$ISOSTACK_NS_PREFIX/control.sock" |
	grep -E '^(port\.0\.rx_pkts|port\.0\.rx_gro_merged|port\.0\.rx_gro_pkts|loop\.rx_path_cycles_per_frame) ' |
	tr '\n' ' '
echo "iperf3 ${gbps} Gbit/s"
wait
