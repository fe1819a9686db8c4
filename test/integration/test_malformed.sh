#!/usr/bin/env bash
# Malformed frames from the peer (runts, truncated and inconsistent IPv4,
# TCP, UDP, ICMP and ARP headers, bad lengths, bad checksums, random bytes),
# sent through an AF_PACKET socket in the peer namespace, are dropped:
# probes that differ from a valid request only by a checksum get no answer,
# the daemon survives and still serves ping and TCP echo afterwards.
# When isostat is available, its drop/error counters must have grown.
. "$(dirname "$0")/lib.sh"
test_prefix bad
stack_up

isostat_bin=$(dirname "$ISOSTACK_DAEMON")/isostat
counters() {
	[ -x "$isostat_bin" ] && [ -S "$S_CONTROL" ] || return 1
	"$isostat_bin" --control "$S_CONTROL" 2>/dev/null
}
before=$(counters) || before=

step "warm up: ping (so ARP is resolved both ways)"
peer ping -c 1 -W 2 "$DADDR" >/dev/null || fail "no answer to ping before the test"

step "malformed frames"
peer python3 "$PEER_TOOL" malformed --iface "$S_IF_PEER" --dmac "$S_STACK_MAC"
daemon_alive || fail "the daemon died on malformed input"

step "the daemon still serves"
peer ping -c 3 -i 0.2 -W 2 "$DADDR" || fail "no answer to ping after the malformed frames"
peer python3 "$PEER_TOOL" --timeout 30 echo-bulk --bytes 1000000
peer python3 "$PEER_TOOL" --timeout 10 echo-short --count 20

if after=$(counters) && [ -n "$before" ]; then
	step "drop and error counters (isostat)"
	echo "$after"
	python3 - "$before" "$after" <<'PY' || fail "no drop/error counter grew"
import re, sys
def drops(text):
    return sum(int(n) for k, n in re.findall(r"(\w*(?:drop|err)\w*)\W+(\d+)", text, re.I))
b, a = drops(sys.argv[1]), drops(sys.argv[2])
print(f"drops+errors: {b} before, {a} after")
sys.exit(0 if a > b else 1)
PY
else
	echo "(no isostat or control socket: drop counters not checked)"
fi
echo "PASS"
