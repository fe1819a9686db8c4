#!/usr/bin/env bash
# TCP segmentation offload carries the right bytes: isostackd runs on a
# net_tap vdev (DPDK 22.11's tap offers TSO, done in software with DPDK's
# GSO library), whose kernel end, a tap interface in the daemon's own
# namespace (this test's, its veth unused), gets the peer address and runs
# the Linux side; an application through the shim sends a verified 16 KB
# stream (isoperf --verify: the Linux server checks every byte) and then a
# 1000-byte one. The daemon's counters must show large frames went to the
# device (port.0.tx_tso_frames/bytes), and the kernel must have accepted
# every segment's checksum. Skips (77) when net_tap is missing or does not
# offer TSO, or without the shim, isoperf or isostat.
#
# By hand: TSO_SECONDS=N TSO_MODE=off keep the daemon's --tso setting and
# the stream length; TSO_KEEP=1 leaves nothing running either way.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib.sh"
. "$here/txzc/zc_lib.sh"
test_prefix tso
: "${TSO_SECONDS:=3}" "${TSO_MODE:=on}"

[ -c /dev/net/tun ] || skip "no /dev/net/tun: net_tap cannot run"
stack_up --no-daemon
TAP=${ISOSTACK_NS_PREFIX}t0
DAEMON=$ISOSTACK_DAEMON
[ -x "$DAEMON" ] || skip "no isostackd at $DAEMON"
rec() { printf '%s=%q\n' "$1" "$2" >>"$STATE_DIR/state"; }

# The Linux side lives on the tap, in the stack namespace (moving the tap
# to another namespace cuts the PMD off: it drives the link by name).
peer() { ip netns exec "$S_NS_STACK" taskset -c "${ISOSTACK_PEER_CORE:-0}" "$@"; }
eal=(--file-prefix "$ISOSTACK_NS_PREFIX")
if [ "$S_MEM" = huge ]; then eal+=(--huge-dir "$S_HUGE_DIR"); else eal+=(--no-huge -m 512); fi
S_DAEMON_LOG=$STATE_DIR/isostackd.log
S_CONTROL=$STATE_DIR/control.sock
ip netns exec "$S_NS_STACK" taskset -c "${ISOSTACK_STACK_CORE:-1}" "$DAEMON" \
	--lcore "${ISOSTACK_STACK_CORE:-1}" --tso "$TSO_MODE" --control "$S_CONTROL" \
	--port "vdev=net_tap0,iface=$TAP ip=198.18.0.1/24" -- "${eal[@]}" \
	</dev/null >>"$S_DAEMON_LOG" 2>&1 &
S_DAEMON_PID=$!
rec DAEMON_PID "$S_DAEMON_PID"
rec DAEMON_START "$(awk '{ print $22 }' "/proc/$S_DAEMON_PID/stat")"
rec DAEMON_LOG "$S_DAEMON_LOG"
rec CONTROL "$S_CONTROL"
rec RUNTIME_DIR "/var/run/dpdk/$ISOSTACK_NS_PREFIX"
for _ in $(seq 200); do
	ip netns exec "$S_NS_STACK" ip link show "$TAP" >/dev/null 2>&1 && break
	daemon_alive || break
	sleep 0.1
done
if ! ip netns exec "$S_NS_STACK" ip link show "$TAP" >/dev/null 2>&1; then
	tail -5 "$S_DAEMON_LOG"
	grep -qiE 'net_tap|tun' "$S_DAEMON_LOG" && skip "net_tap did not start here"
	fail "no tap interface $TAP"
fi
peer sh -e -c "sysctl -qw net.ipv6.conf.$TAP.disable_ipv6=1
	ip addr add $PEER_ADDR/24 dev $TAP; ip link set $TAP up"
for _ in $(seq 30); do
	peer ping -c 1 -W 1 -q 198.18.0.1 >/dev/null 2>&1 && break
	daemon_alive || fail "the daemon exited: $(tail -3 "$S_DAEMON_LOG")"
done
peer ping -c 1 -W 1 -q 198.18.0.1 >/dev/null || fail "the daemon does not answer ping on the tap"
grep 'TSO' "$S_DAEMON_LOG"
if [ "$TSO_MODE" = on ] && ! grep -q 'TSO on' "$S_DAEMON_LOG"; then
	skip "no vdev here offers TSO: $(grep -m1 'TSO' "$S_DAEMON_LOG")"
fi

PEER_ADDR=$PEER_ADDR zc_server_start
csum0=$(peer nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ { print $2 }')
f0=$(stat_get port.0.tx_tso_frames); b0=$(stat_get port.0.tx_tso_bytes)
a0=$(stat_get backend.tx_bytes); c0=$(stat_get loop.busy_cycles); t0=$(date +%s.%N)
step "verified 16 KB send stream for $TSO_SECONDS s, TSO $TSO_MODE"
zc_stream "$TSO_SECONDS" 16384 || fail "isoperf stream failed (payload mismatch or short count)"
t1=$(date +%s.%N); c1=$(stat_get loop.busy_cycles)
f1=$(stat_get port.0.tx_tso_frames); b1=$(stat_get port.0.tx_tso_bytes)
a1=$(stat_get backend.tx_bytes)
echo "TSO frames $((f1 - f0)), TSO payload bytes $((b1 - b0)), application bytes acked $((a1 - a0))"
awk -v a=$((a1 - a0)) -v c=$((c1 - c0)) -v t0="$t0" -v t1="$t1" 'BEGIN {
	printf "figures: %.2f Gbit/s (incl. setup), %.0f busy cycles per KB\n", a * 8 / (t1 - t0) / 1e9, c / (a / 1024) }'
[ $((a1 - a0)) -gt 1000000 ] || fail "only $((a1 - a0)) bytes moved"
if [ "$TSO_MODE" = on ]; then
	[ $((f1 - f0)) -gt 0 ] || fail "no TSO frame went to the device"
	[ $((b1 - b0)) -gt $(( (f1 - f0) * 1448 )) ] || fail "TSO frames are not larger than one segment"
else
	[ $((f1 - f0)) -eq 0 ] || fail "TSO frames with tso off"
fi

step "a second stream with 1000-byte messages"
zc_stream 1 1000 || fail "isoperf stream (1000-byte messages) failed"
csum1=$(peer nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ { print $2 }')
[ "${csum1:-0}" = "${csum0:-0}" ] || fail "the kernel saw $(( ${csum1:-0} - ${csum0:-0} )) bad TCP checksums"
daemon_alive || fail "the daemon exited"
zc_stop_and_check_log
echo "PASS"
