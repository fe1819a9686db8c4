#!/bin/bash
# The first request/response after an idle period, kernel and isostack in
# one run: one connection, 64-byte echoes (bench/idle_rr.py); a warm median
# over 2,000, then per gap REPS times: idle GAP seconds, time one.
#
#   sudo flock -o /tmp/isostack-daemon.lock bench/idle_rr.sh OUT.json
#   GAPS=3,5 REPS=5 by default.
#
# The kernel runs over a veth pair of its own (namespaces irr-s, irr-p,
# 198.18.77.0/24); isostack over `isostack up` (the client under the
# shim, the echo server in the peer namespace).  Everything on core 0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cli=$here/../scripts/isostack
out=${1:?usage: idle_rr.sh OUT.json}
gaps=${GAPS:-3,5}; reps=${REPS:-5}
tmp=$(mktemp -d)
cleanup() {
	[ -n "${sp:-}" ] && kill "$sp" 2>/dev/null
	ip netns del irr-s 2>/dev/null; ip netns del irr-p 2>/dev/null
	ISOSTACK_NS_PREFIX=irr "$cli" down >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

wait_listening() {
	for _ in $(seq 50); do grep -q listening "$1" && return 0; sleep 0.1; done
	echo "idle_rr: the echo server did not start" >&2; exit 1
}

# kernel
ip netns add irr-s && ip netns add irr-p || exit 1
ip link add irr-a netns irr-s type veth peer name irr-b netns irr-p || exit 1
ip -n irr-s addr add 198.18.77.1/24 dev irr-a; ip -n irr-p addr add 198.18.77.2/24 dev irr-b
for n in irr-s irr-p; do ip -n $n link set lo up; done
ip -n irr-s link set irr-a up; ip -n irr-p link set irr-b up
ip netns exec irr-p taskset -c 0 python3 "$here/idle_rr.py" server 7711 >"$tmp/ks" 2>&1 &
sp=$!
wait_listening "$tmp/ks"
ip netns exec irr-s taskset -c 0 python3 "$here/idle_rr.py" client 198.18.77.2 7711 "$gaps" "$reps" kernel \
	| tee "$tmp/k" || exit 1
wait "$sp"; sp=
ip netns del irr-s; ip netns del irr-p

# isostack
export ISOSTACK_NS_PREFIX=irr
"$cli" up >"$tmp/up" 2>&1 || { cat "$tmp/up"; exit 1; }
"$cli" peer -- python3 "$here/idle_rr.py" server 7712 >"$tmp/is" 2>&1 &
sp=$!
wait_listening "$tmp/is"
"$cli" run --require -- python3 "$here/idle_rr.py" client 198.18.0.2 7712 "$gaps" "$reps" isostack \
	| tee "$tmp/i" || exit 1
wait "$sp"; sp=
python3 - "$tmp/k" "$tmp/i" "$out" <<'PY'
import json, sys
k, i = (json.loads(open(p).read().split("JSON ", 1)[1]) for p in sys.argv[1:3])
json.dump({"kernel": k, "isostack": i}, open(sys.argv[3], "w"), indent=1)
print("idle_rr: wrote", sys.argv[3])
PY
