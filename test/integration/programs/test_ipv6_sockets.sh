#!/bin/bash
# AF_INET6 TCP sockets on isostack (issue 15, point 2), with v6_app.py (an
# unmodified python3 program) under the shim and Linux in the peer:
#  - a dual-stack server ([::], IPV6_V6ONLY 0, Linux's default) is reached
#    over IPv4 and over IPv6 from the peer, 3 MB each echoed (SHA-256), and
#    reports what Linux reports: the IPv4 client as ::ffff:198.18.0.2 on
#    local ::ffff:198.18.0.1, the IPv6 one as 2001:2::2 on 2001:2::1, both
#    sockets AF_INET6 (10); a client in the daemon's namespace reaches it
#    at [::1] through the kernel shadow, as loopback stays on the kernel;
#  - with IPV6_V6ONLY 1, IPv4 is refused and IPv6 served;
#  - an AF_INET6 client under the shim reaches a Linux server in the peer
#    at 2001:2::2 and at ::ffff:198.18.0.2 (names as Linux gives them).
# isostat shows the dual-stack listener as [::]:8080.
# The kernel of the daemon's namespace has no IPv6 on its veth and no
# address at all there: only isostack can have carried these connections.
PROG_TAG=ip6s
. "$(dirname "$0")/lib.sh"
app=$(dirname "$(readlink -f "$0")")/v6_app.py
PEER_TOOL=$(dirname "$(readlink -f "$0")")/../peer_tool.py
[ -r /proc/net/if_inet6 ] || { echo "SKIP: this kernel has no IPv6"; exit 77; }
stack_up

sha16() { awk '/sha256 sent/ { print substr($3, 1, 16) }' "$1"; }

echo "== dual-stack server under the shim on [::]:8080"
bg srv "$CLI" run -- python3 "$app" server 8080 0 3
wait_line "$tmp/srv.out" "listening" 20 || fail "the server did not listen"
cat "$tmp/srv.out"
grep -q "server: v6only 0 domain 10" "$tmp/srv.out" || fail "IPV6_V6ONLY/SO_DOMAIN not as on Linux"
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
"$isostat" -c "/run/isostack/$ISOSTACK_NS_PREFIX/control.sock" >"$tmp/stat.out" 2>&1 ||
	{ cat "$tmp/stat.out"; fail "isostat"; }
grep -E "LISTEN +\[::\]:8080 " "$tmp/stat.out" || { cat "$tmp/stat.out"; fail "isostat does not show the listener as [::]:8080"; }
"$CLI" peer -- python3 "$PEER_TOOL" --timeout 10 --addr "$STACK_IP" echo-bulk --bytes 3000000 --port 8080 \
	>"$tmp/c4.out" 2>&1 || { cat "$tmp/c4.out"; fail "IPv4 client"; }
"$CLI" peer -- python3 "$PEER_TOOL" --timeout 10 --addr 2001:2::1 echo-bulk --bytes 3000000 --port 8080 \
	>"$tmp/c6.out" 2>&1 || { cat "$tmp/c6.out"; fail "IPv6 client"; }
"$CLI" run -- python3 "$app" client ::1 8080 100000 >"$tmp/lo.out" 2>&1 ||
	{ cat "$tmp/lo.out"; fail "client to [::1]"; }
wait_line "$tmp/srv.out" "accepted ::1 " 20 || fail "the server did not report the [::1] client"
cat "$tmp/c4.out" "$tmp/c6.out" "$tmp/lo.out" "$tmp/srv.out"
grep -q "server: accepted ::ffff:198.18.0.2 local ('::ffff:198.18.0.1', 8080) family 10 bytes 3000000 sha256 $(sha16 "$tmp/c4.out")" \
	"$tmp/srv.out" || fail "the IPv4 client is not ::ffff:198.18.0.2 on ::ffff:198.18.0.1 with its bytes"
grep -q "server: accepted 2001:2::2 local ('2001:2::1', 8080) family 10 bytes 3000000 sha256 $(sha16 "$tmp/c6.out")" \
	"$tmp/srv.out" || fail "the IPv6 client is not 2001:2::2 on 2001:2::1 with its bytes"
grep -q "client: peer ('::1', 8080) family 10 local ::1 echo 100000 verified" "$tmp/lo.out" ||
	fail "[::1] not served by the kernel shadow"

echo "== IPV6_V6ONLY 1 on [::]:8081: IPv4 refused, IPv6 served"
bg srv1 "$CLI" run -- python3 "$app" server 8081 1 1
wait_line "$tmp/srv1.out" "listening" 20 || fail "the v6only server did not listen"
if "$CLI" peer -- python3 "$PEER_TOOL" --timeout 5 --addr "$STACK_IP" echo-bulk --bytes 1000 --port 8081 \
	>"$tmp/r4.out" 2>&1; then
	fail "IPv4 reached an IPV6_V6ONLY listener"
fi
grep -q "Connection refused" "$tmp/r4.out" || { cat "$tmp/r4.out"; fail "IPv4 to a v6only listener: not refused"; }
"$CLI" peer -- python3 "$PEER_TOOL" --timeout 10 --addr 2001:2::1 echo-bulk --bytes 1000000 --port 8081 \
	>"$tmp/c61.out" 2>&1 || { cat "$tmp/c61.out"; fail "IPv6 client of the v6only server"; }
wait_line "$tmp/srv1.out" "accepted 2001:2::2" 20 || fail "v6only server: no IPv6 client"
cat "$tmp/srv1.out"

echo "== AF_INET6 client under the shim, Linux server in the peer"
"$CLI" peer -- python3 "$app" server 9000 0 2 >"$tmp/psrv.out" 2>&1 &
PIDS+=($!); LAST_PID=$!
wait_line "$tmp/psrv.out" "listening" 20 || fail "the peer's server did not listen"
"$CLI" run -- python3 "$app" client 2001:2::2 9000 2000000 >"$tmp/k6.out" 2>&1 ||
	{ cat "$tmp/k6.out"; fail "client to 2001:2::2"; }
"$CLI" run -- python3 "$app" client ::ffff:198.18.0.2 9000 2000000 >"$tmp/k4.out" 2>&1 ||
	{ cat "$tmp/k4.out"; fail "client to ::ffff:198.18.0.2"; }
wait_line "$tmp/psrv.out" "accepted 198.18.0.1\|accepted ::ffff:198.18.0.1" 20 || fail "the peer saw no IPv4 client"
cat "$tmp/k6.out" "$tmp/k4.out" "$tmp/psrv.out"
grep -q "client: peer ('2001:2::2', 9000) family 10 local 2001:2::1 echo 2000000 verified" "$tmp/k6.out" ||
	fail "IPv6 client: names or bytes not as on Linux"
grep -q "client: peer ('::ffff:198.18.0.2', 9000) family 10 local ::ffff:198.18.0.1 echo 2000000 verified" "$tmp/k4.out" ||
	fail "mapped IPv4 client: names or bytes not as on Linux"
echo "PASS"
