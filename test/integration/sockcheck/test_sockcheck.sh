#!/bin/bash
# The socket-semantics check: sockcheck's log natively (Linux on both
# ends, in a namespace pair of our own) must equal its log under
# libisosock.so (the side under test on isostack, `isostack run`), the peer
# being Linux both times.  The native run is done twice first: the program
# must be deterministic for the comparison to mean anything.
# With FAMILY 6 (test sockcheck_v6) the TCP checks run on AF_INET6 sockets
# twice: to the peer's IPv6 address, followed by the dual-stack checks
# (sockcheck_v6.c), then to its IPv4 address as ::ffff:a.b.c.d (IPv4 on
# the wire); the peer listens on dual-stack [::]; both ends get the
# addresses that `isostack up` gives (2001:2::1 and ::2).
#
# Usage (meson passes these): test_sockcheck.sh SOCKCHECK [LIBISOSOCK [FAMILY]]
set -euo pipefail

SOCKCHECK=${1:?sockcheck binary}
SHIM=${2:-}
FAMILY=${3:-4}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: needs iproute2"; exit 77; }
if [ "$FAMILY" = 6 ]; then
	[ -r /proc/net/if_inet6 ] || { echo "SKIP: this kernel has no IPv6"; exit 77; }
	BASE=17200 PEER_MODE=peer6 VARIANTS="v6 mapped"
	A_IP6=2001:2::1 P_IP6=2001:2::2 S_IP6=2001:2::2   # S_: the peer of `isostack up`
else
	BASE=17100 PEER_MODE=peer VARIANTS=v4
fi
# run_args VARIANT PEER4 PEER6: sockcheck's arguments for the side under test
run_args() {
	case $1 in
	v4) echo run "$2" $BASE ;;
	v6) echo run6 "$3" "$2" $BASE ;;
	mapped) echo run6 "::ffff:$2" "$2" $BASE ;;
	esac
}

P=sck$$
NS_A=${P}a NS_P=${P}p
A_IP=198.18.77.1 P_IP=198.18.77.2
tmp=$(mktemp -d)
PEER_PID=
# cleanup RC: stop the peer, remove the native pair, exit with RC (the
# test's own status, taken before anything else in the trap ran).
cleanup() {
	local rc=$1
	trap '' TERM INT        # finish cleaning up whatever arrives now
	set +e                  # a killed peer's wait status is not ours
	if [ -n "$PEER_PID" ]; then
		kill "$PEER_PID" 2>/dev/null
		wait "$PEER_PID" 2>/dev/null
	fi
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_P" 2>/dev/null || true
	rm -rf "$tmp"
	exit $rc
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT TERM

ip netns add "$NS_A"
ip netns add "$NS_P"
ip link add "${P}a0" netns "$NS_A" type veth peer name "${P}p0" netns "$NS_P"
ip -n "$NS_A" addr add "$A_IP/24" dev "${P}a0"
ip -n "$NS_P" addr add "$P_IP/24" dev "${P}p0"
if [ "$FAMILY" = 6 ]; then
	ip -n "$NS_A" addr add "$A_IP6/64" dev "${P}a0" nodad
	ip -n "$NS_P" addr add "$P_IP6/64" dev "${P}p0" nodad
fi
for ns in "$NS_A" "$NS_P"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set "${P}a0" up
ip -n "$NS_P" link set "${P}p0" up

# The peer prints "peer ready" once it listens: wait for that line, not a time.
ip netns exec "$NS_P" taskset -c 0 "$SOCKCHECK" $PEER_MODE $BASE >"$tmp/peer.out" 2>&1 &
PEER_PID=$!
exec 3< <(tail -F "$tmp/peer.out" 2>/dev/null)
read -r -t 10 line <&3 || { echo "FAIL: peer did not start"; exit 1; }
[ "$line" = "peer ready" ] || { echo "FAIL: peer: $line"; exit 1; }

for v in $VARIANTS; do
	for run in 1 2; do
		ip netns exec "$NS_A" taskset -c 0 timeout 120 "$SOCKCHECK" \
			$(run_args $v "$P_IP" "${P_IP6:-}") >"$tmp/native-$v$run.log"
	done
	echo "== $v"
	cat "$tmp/native-${v}1.log"
	if ! diff -u "$tmp/native-${v}1.log" "$tmp/native-${v}2.log"; then
		echo "FAIL: sockcheck ($v) is not deterministic natively"
		exit 1
	fi
	echo "== native runs agree ($v: $(wc -l <"$tmp/native-${v}1.log") checks)"
done

# Under the shim: needs the daemon and `isostack run` (the integration
# environment meson sets up).  Without them, the native half still counted.
CLI=${ISOSTACK_CLI:-}
if [ -z "$SHIM" ] || [ ! -f "$SHIM" ] || [ -z "$CLI" ] || [ ! -x "${ISOSTACK_DAEMON:-/nonexistent}" ] ||
   ! grep -qw run <<<"$("$CLI" help 2>/dev/null)"; then
	echo "SKIP: shim half needs libisosock.so, isostackd and 'isostack run'"
	exit 77
fi
kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=
# The native pair is done with: remove it now, not at exit.
ip netns del "$NS_A" 2>/dev/null || true
ip netns del "$NS_P" 2>/dev/null || true
export ISOSTACK_NS_PREFIX=sck$$
export ISOSTACK_SHIM=$SHIM
"$CLI" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; echo "FAIL: isostack up failed"; exit 1; }
trap 'rc=$?; "$CLI" down >/dev/null 2>&1; cleanup $rc' EXIT
"$CLI" peer -- "$SOCKCHECK" $PEER_MODE $BASE >"$tmp/peer2.out" 2>&1 &
PEER_PID=$!
exec 4< <(tail -F "$tmp/peer2.out" 2>/dev/null)
read -r -t 10 line <&4 || { echo "FAIL: peer did not start"; exit 1; }
# Options isostack refuses as Linux refuses one it lacks (docs/shim.md,
# libisosock/shim.h isosock_opt_refused): their lines read "refused" in
# both logs, natively whatever the kernel did, under the shim only if
# set and get both failed with ENOPROTOOPT (accepted and ignored fails).
REFUSED='user_timeout|defer_accept'
refused_native() { sed -E "s/^([a-z]+_($REFUSED)[a-z_]*) +.*/\1 refused/"; }
refused_shim() {
	sed -E "s/^([a-z]+_($REFUSED)[a-z_]*) +(set=ENOPROTOOPT get=ENOPROTOOPT|ENOPROTOOPT)\$/\1 refused/"
}
failed=
for v in $VARIANTS; do
	timeout 180 "$CLI" run -- "$SOCKCHECK" $(run_args $v 198.18.0.2 "${S_IP6:-}") \
		>"$tmp/shim-$v.raw" || true
	refused_native <"$tmp/native-${v}1.log" >"$tmp/native-$v.cmp"
	refused_shim <"$tmp/shim-$v.raw" >"$tmp/shim-$v.log"
	if ! diff -u "$tmp/native-$v.cmp" "$tmp/shim-$v.log"; then
		echo "FAIL: the shim's log ($v) differs from the kernel's"
		failed=1
	fi
done
[ -z "$failed" ] || exit 1
echo "== shim log equals the native log ($VARIANTS)"
