#!/usr/bin/env bash
# Power saving: with no traffic, a daemon in adaptive mode sleeps and uses
# less CPU than one in busy mode (utime+stime from /proc/PID/stat over the
# same window), and the first packet after idling is answered (ping, then a
# TCP echo).
. "$(dirname "$0")/lib.sh"
test_prefix idle
window=${IDLE_WINDOW:-3}

# CPU ticks the daemon spends during $window seconds without traffic. The
# sleep is a measuring window, not synchronisation.
idle_ticks() {
	local t0 t1
	t0=$(daemon_cpu_ticks)
	sleep "$window"
	t1=$(daemon_cpu_ticks)
	echo $((t1 - t0))
}

step "busy mode"
stack_up --mode busy
busy=$(idle_ticks)
echo "busy: $busy ticks in ${window}s (CLK_TCK $(getconf CLK_TCK))"
"$ISOSTACK_CLI" down
STATE_DIR=

step "adaptive mode, idle after 1 ms"
stack_up --mode adaptive --idle-us 1000
adaptive=$(idle_ticks)
echo "adaptive: $adaptive ticks in ${window}s"

step "the first packet after idling is answered"
peer ping -c 1 -W 2 "$DADDR" || fail "the idle daemon did not answer ping"
peer python3 "$PEER_TOOL" --timeout 10 echo-short --count 1

[ "$busy" -gt 0 ] || fail "busy mode used no CPU: cannot compare"
# Sleeping must cut CPU use to well under half of busy polling.
[ $((adaptive * 4)) -lt "$busy" ] ||
	fail "adaptive mode used $adaptive ticks, busy $busy: it does not sleep"
echo "PASS: adaptive $adaptive ticks vs busy $busy over ${window}s"
