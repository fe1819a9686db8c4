#!/usr/bin/env bash
# An application SIGKILLed while zero-copy frames carrying its TX-ring bytes
# are in flight: the daemon must not unmap its segment under those mbufs
# (deferred until their free callbacks ran), must stay up and keep serving,
# and must release every segment in the end. ZC_KILLS (6) rounds: start a
# 16 KB send stream through the shim, wait until its frames flow, SIGKILL
# it at a random moment. Then a verified stream must still work, and the
# daemon must stop cleanly with no sanitizer report (run it with an ASan
# build: ISOSTACK_DAEMON=build-asan/daemon/isostackd).
#
# af_packet copies a frame and frees its mbufs inside rte_eth_tx_burst, so
# a segment is rarely still referenced when the kill is noticed. The
# daemon's test hook ISOSTACK_TXZC_HOLD_MS keeps every zero-copy frame
# referenced that long, as a NIC completing TX lazily would: each kill then
# must defer the unmap, and the held frames' release must complete it.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib.sh"
. "$(dirname "$0")/zc_lib.sh"
test_prefix zck
export ISOSTACK_TXZC_HOLD_MS=${ISOSTACK_TXZC_HOLD_MS:-300}
zc_stack_up
zc_server_start

ZC_KILLS=${ZC_KILLS:-6}
for round in $(seq "$ZC_KILLS"); do
	f0=$(stat_get port.0.tx_zc_frames)
	"$ISOSTACK_CLI" run --require -- "$ISOPERF" client "$PEER_ADDR" -p "$ZC_PORT" \
		-m send -l 16384 -d 60 --verify >/dev/null 2>&1 &
	app=$!
	flowing=0
	for _ in $(seq 200); do
		kill -0 "$app" 2>/dev/null || fail "round $round: the application exited early"
		if [ $(( $(stat_get port.0.tx_zc_frames) - f0 )) -gt 2000 ]; then
			flowing=1
			break
		fi
		sleep 0.05
	done
	[ $flowing = 1 ] || fail "round $round: no zero-copy frames flowing"
	# a random moment inside the stream (the point is the kill, not a sync)
	sleep "0.$((RANDOM % 10))"
	kill -KILL "$app"
	wait "$app" 2>/dev/null || true
	daemon_alive || fail "round $round: the daemon died"
	echo "round $round: killed after $(( $(stat_get port.0.tx_zc_frames) - f0 )) zero-copy frames"
done

step "every departed application's segment released"
zc_wait_settled
reg=$(stat_get txzc.segs_registered); des=$(stat_get txzc.segs_destroyed)
echo "segments registered $reg, destroyed $des, deferred while referenced $(stat_get txzc.segs_deferred)"
[ "$reg" -ge "$ZC_KILLS" ] || fail "only $reg segments were registered"
[ "$reg" = "$des" ] || fail "registered $reg but destroyed $des"
if [ "$ISOSTACK_TXZC_HOLD_MS" -gt 0 ]; then
	[ "$(stat_get txzc.segs_deferred)" -ge "$ZC_KILLS" ] ||
		fail "only $(stat_get txzc.segs_deferred) of $ZC_KILLS unmaps were deferred"
fi

step "still serving: a verified stream"
zc_stream 2 16384 || fail "isoperf stream after the kills failed"
zc_wait_settled
daemon_alive || fail "the daemon exited"
zc_stop_and_check_log
echo "PASS"
