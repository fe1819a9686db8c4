#!/bin/bash
# Local connections, both ends isostack applications of one daemon
# (docs/sockets.md, "Local connections: cut-through"): local_cut.py's
# listener and client, two applications, at the stack's own address.
# Their logs must equal the same program's on the kernel's loopback
# (127.0.0.1, in a namespace of our own): 64 MiB each way at once by
# SHA-256, addresses, half-close, RST on close with unread data,
# non-blocking connect with epoll, a reader that stops, SIGKILLed clients,
# 2,000 short connections, ECONNREFUSED.  Twice: paired on the stack core
# (the default; isostat must count every connection as paired, none sent
# through lwIP, none left open), then with cut_through=off (through lwIP;
# no pair counted).
PROG_TAG=lcut
. "$(dirname "$0")/lib.sh"
need python3 python3

PROG=$(readlink -f "$(dirname "$0")/local_cut.py")
PORT=9400
# connections local_cut.py makes that a listener takes: names, bulk,
# half-close, rst, non-blocking, stall (2), close with unsent data (2),
# killed (2), short, quit
PAIRS=$((1 + 1 + 1 + 1 + 1 + 2 + 2 + 2 + 2000 + 1))
NS=${ISOSTACK_NS_PREFIX}n
trap 'rc=$?; ip netns del "$NS" 2>/dev/null || true; set +e; (exit $rc); cleanup' EXIT

# pair TAG HOST [WRAPPER...]: the listener, then the client, to the end;
# logs in $tmp/TAG-server.log and $tmp/TAG-client.log.
pair() {
	local tag=$1 host=$2
	shift 2
	bg "$tag-server" "$@" timeout 300 python3 "$PROG" serve "$host" $PORT
	wait_line "$tmp/$tag-server.out" ready || fail "$tag: the listener did not start"
	"$@" timeout 300 python3 "$PROG" run "$host" $PORT >"$tmp/$tag-client.log" 2>&1 ||
		{ cat "$tmp/$tag-client.log"; fail "$tag: client"; }
	wait "$LAST_PID" || { cat "$tmp/$tag-server.out"; fail "$tag: listener"; }
	grep -v '^ready$' "$tmp/$tag-server.out" >"$tmp/$tag-server.log"
}

# same TAG: its logs equal the kernel's
same() {
	local side
	for side in client server; do
		diff -u "$tmp/kernel-$side.log" "$tmp/$1-$side.log" ||
			fail "$1: the $side's log differs from the kernel's loopback"
	done
	echo "== $1: both logs equal the kernel's ($(cat "$tmp/$1-client.log" "$tmp/$1-server.log" | wc -l) lines)"
}

# counter NAME: backend.NAME from the last isostat output
counter() {
	awk -v k="backend.$1" '$1 == k { print $2 }' "$tmp/isostat.log"
}

ip netns add "$NS"
ip -n "$NS" link set lo up
pair kernel 127.0.0.1 ip netns exec "$NS"
ip netns del "$NS"
echo "== kernel's loopback"
cat "$tmp/kernel-client.log" "$tmp/kernel-server.log"

stack_up
pair cut "$STACK_IP" "$CLI" run --require --
same cut
wait_stack_sockets 0 || fail "cut-through: sockets left open"
echo "cut-through: pairs $(counter cut_pairs), open $(counter cut_open), bytes $(counter cut_bytes)," \
     "refused $(counter cut_refused), through lwIP $(counter cut_fallbacks)"
[ "$(counter cut_through)" = 1 ] || fail "cut_through is not on by default"
[ "$(counter cut_pairs)" -eq $PAIRS ] || fail "$(counter cut_pairs) connections paired, not $PAIRS"
[ "$(counter cut_fallbacks)" -eq 0 ] || fail "connections went through lwIP"
[ "$(counter cut_open)" -eq 0 ] || fail "paired sockets left open"
[ "$(counter cut_refused)" -eq 1 ] || fail "ECONNREFUSED not answered by the pairing"
# 64 MiB each way, 8 MiB stalled, 2,000 x 100 bytes each way at least
[ "$(counter cut_bytes)" -ge $(((128 + 8) << 20)) ] || fail "too few bytes moved by the pairing"
"$CLI" down >/dev/null 2>&1

stack_up --set cut_through=off
pair lwip "$STACK_IP" "$CLI" run --require --
same lwip
wait_stack_sockets 0 || fail "cut_through=off: sockets left open"
[ "$(counter cut_through)" = 0 ] || fail "cut_through=off not applied"
[ "$(counter cut_pairs)" -eq 0 ] || fail "cut_through=off paired connections"
echo "PASS: local connections behave as on the kernel's loopback, paired ($PAIRS pairs) and through lwIP"
