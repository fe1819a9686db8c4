#!/usr/bin/env bash
# Zero-copy TX carries the right bytes: an application through the shim
# sends a 16 KB-message stream for ZC_SECONDS (3) to a Linux isoperf server,
# which checks every byte against the pseudo-random pattern and returns the
# byte count (isoperf --verify: exit 1 on any mismatch or short count). The
# daemon's counters must show the payload went out attached, not copied.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib.sh"
. "$(dirname "$0")/zc_lib.sh"
test_prefix zcs
zc_stack_up
zc_server_start

f0=$(stat_get port.0.tx_zc_frames); b0=$(stat_get port.0.tx_zc_bytes)
c0=$(stat_get port.0.tx_copied_frames); a0=$(stat_get backend.tx_bytes)
step "verified 16 KB send stream for ${ZC_SECONDS:=3} s"
zc_stream "$ZC_SECONDS" 16384 || fail "isoperf stream failed (payload mismatch or short count)"
f1=$(stat_get port.0.tx_zc_frames); b1=$(stat_get port.0.tx_zc_bytes)
c1=$(stat_get port.0.tx_copied_frames); a1=$(stat_get backend.tx_bytes)
echo "zero-copy frames $((f1 - f0)), bytes attached $((b1 - b0)), copied frames $((c1 - c0)), application bytes acked $((a1 - a0))"
[ $((a1 - a0)) -gt 1000000 ] || fail "only $((a1 - a0)) bytes moved"
[ $((f1 - f0)) -gt 0 ] || fail "no frame went out zero-copy"
# Nearly all payload is attached: only sub-128-byte spans are copied.
[ $(( (b1 - b0) * 10 )) -ge $(( (a1 - a0) * 9 )) ] ||
	fail "only $((b1 - b0)) of $((a1 - a0)) payload bytes attached"

step "a second stream with 1000-byte messages (spans split across frames)"
zc_stream 1 1000 || fail "isoperf stream (1000-byte messages) failed"

zc_wait_settled
[ "$(stat_get txzc.segs_destroyed)" = "$(stat_get txzc.segs_registered)" ] ||
	fail "segments registered $(stat_get txzc.segs_registered), destroyed $(stat_get txzc.segs_destroyed)"
daemon_alive || fail "the daemon exited"
zc_stop_and_check_log
echo "PASS"
