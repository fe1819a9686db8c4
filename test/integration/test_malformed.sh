#!/usr/bin/env bash
# Malformed frames from the peer (runts, truncated and inconsistent IPv4,
# TCP, UDP, ICMP and ARP headers, bad lengths, bad checksums, random bytes),
# sent through an AF_PACKET socket in the peer namespace, are dropped:
# probes that differ from a valid request only by a checksum get no answer,
# the daemon survives and still serves ping and TCP echo afterwards.
# isostat's drop and error counters (lwIP's and the ports') must have grown.
. "$(dirname "$0")/lib.sh"
test_prefix bad
stack_up

isostat_bin=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -x "$isostat_bin" ] || skip "no isostat beside $ISOSTACK_DAEMON"
counters() { "$isostat_bin" -r -c "$S_CONTROL"; }
before=$(counters) || fail "isostat cannot read the daemon's counters"

step "warm up: ping (so ARP is resolved both ways)"
peer ping -c 1 -W 2 "$DADDR" >/dev/null || fail "no answer to ping before the test"

step "malformed frames"
peer python3 "$PEER_TOOL" malformed --iface "$S_IF_PEER" --dmac "$S_STACK_MAC"
daemon_alive || fail "the daemon died on malformed input"

step "the daemon still serves"
peer ping -c 3 -i 0.2 -W 2 "$DADDR" || fail "no answer to ping after the malformed frames"
peer python3 "$PEER_TOOL" --timeout 30 echo-bulk --bytes 1000000
peer python3 "$PEER_TOOL" --timeout 10 echo-short --count 20

step "drop and error counters (isostat)"
after=$(counters) || fail "isostat cannot read the daemon's counters"
python3 - "$before" "$after" <<'PY' || fail "no drop/error counter grew"
import sys
def drops(text):
    total = {}
    for line in text.splitlines():
        name, value = line.split()
        if name.startswith(("lwip.", "port.")) and name.rsplit(".", 1)[1] in (
                "drop", "chkerr", "lenerr", "proterr", "rx_drop_cksum", "rx_drop_bad"):
            total[name] = int(value)
    return total
b, a = drops(sys.argv[1]), drops(sys.argv[2])
grown = {k: a[k] - b.get(k, 0) for k in a if a[k] > b.get(k, 0)}
for k, v in sorted(grown.items()):
    print(f"  {k:28} +{v}")
sys.exit(0 if grown else 1)
PY
echo "PASS"
