#!/bin/bash
# iperf3 (unmodified) on isostack in both roles against a Linux iperf3 in
# the peer namespace: server under isostack with a Linux client, then
# client under isostack with a Linux server.  Each side's JSON must show
# bytes moved (> 0) and no error.
PROG_TAG=ipf
. "$(dirname "$0")/lib.sh"
need iperf3 iperf3
need python3 python3

check_json() {  # check_json FILE LABEL: prints Gbit/s
	python3 - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
if "error" in j:
    sys.exit(f"{sys.argv[2]}: iperf3 error: {j['error']}")
e = j["end"]
s, r = e["sum_sent"], e["sum_received"]
if s["bytes"] <= 0 or r["bytes"] <= 0:
    sys.exit(f"{sys.argv[2]}: no bytes moved ({s['bytes']} sent, {r['bytes']} received)")
print(f"{sys.argv[2]}: {r['bytes']} bytes received, {r['bits_per_second']/1e9:.2f} Gbit/s")
PY
}

stack_up
# 1. server on isostack (-B 0.0.0.0: AF_INET; by default iperf3 listens on
# an AF_INET6 socket, which stays on the kernel), Linux client.  Readiness is the server's own
# "Server listening" line (a probe connection would count as a client).
bg srv "$CLI" run --require -- iperf3 -s -p 5201 -B 0.0.0.0 --forceflush
wait_line "$tmp/srv.out" "Server listening" || fail "iperf3 server on isostack does not listen"
"$CLI" peer -- timeout 60 iperf3 -c "$STACK_IP" -p 5201 -t 3 -J >"$tmp/cli1.json" ||
	{ cat "$tmp/cli1.json"; fail "iperf3 client (Linux) against isostack server"; }
check_json "$tmp/cli1.json" "isostack server, Linux client" || exit 1
grep -qi "error" "$tmp/srv.out" && fail "iperf3 server on isostack reported an error"

# 2. client on isostack, Linux server.
bg lsrv "$CLI" peer -- iperf3 -s -p 5202 --forceflush
wait_line "$tmp/lsrv.out" "Server listening" || fail "Linux iperf3 server does not listen"
"$CLI" run --require -- timeout 60 iperf3 -c "$PEER_IP" -p 5202 -t 3 -J >"$tmp/cli2.json" ||
	{ cat "$tmp/cli2.json"; fail "iperf3 client on isostack"; }
check_json "$tmp/cli2.json" "isostack client, Linux server" || exit 1
echo "PASS: iperf3 on isostack, both roles"
