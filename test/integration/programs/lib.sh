#!/bin/bash
# Shared by the real-program tests (sourced): an isostack instance of our
# own (prefix + pid), a temp dir, cleanup on exit, and small helpers.
# The program under test runs with `isostack run` (namespace of the
# daemon, libisosock preloaded, ISOSTACK_REQUIRE=1 so a missing daemon is
# an error, not a silent kernel fallback); its Linux peer with `isostack peer`.
set -euo pipefail

# meson passes the shim's path as $1 (scripts/isostack reads ISOSTACK_SHIM).
export ISOSTACK_SHIM=${ISOSTACK_SHIM:-${1:-}}
# Absolute: the programs under test may change directory before ld.so
# opens it (a relative path given by hand then fails to preload).
[ -z "$ISOSTACK_SHIM" ] || ISOSTACK_SHIM=$(readlink -f "$ISOSTACK_SHIM")
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
CLI=${ISOSTACK_CLI:-}
if [ -z "$CLI" ] || [ ! -x "${ISOSTACK_DAEMON:-/nonexistent}" ] || [ -z "${ISOSTACK_SHIM:-}" ] ||
   [ ! -f "$ISOSTACK_SHIM" ]; then
	echo "SKIP: needs isostackd, libisosock.so and scripts/isostack"
	exit 77
fi

need() {  # need CMD PACKAGE
	command -v "$1" >/dev/null 2>&1 ||
		{ echo "SKIP: $1 not installed (Debian package $2: isostack setup)"; exit 77; }
}

STACK_IP=198.18.0.1
PEER_IP=198.18.0.2
export ISOSTACK_NS_PREFIX=${PROG_TAG:-prg}$$
tmp=$(mktemp -d)
PIDS=()

cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	"$CLI" down >/dev/null 2>&1 || true
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		for f in "$tmp"/*.log "$tmp"/*.out; do
			[ -f "$f" ] && { echo "---- $f"; tr "\r" "\n" <"$f" | tail -20; }
		done
		echo "---- daemon log"; tail -20 "/run/isostack/$ISOSTACK_NS_PREFIX/isostackd.log" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*"; exit 1; }

# stack_up [UP-OPTIONS]: `isostack up` with these options (e.g. --set KEY=V).
stack_up() {
	"$CLI" up "$@" >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fail "isostack up $*"; }
}

# bg NAME CMD...: starts CMD in the background (output in $tmp/NAME.out).
bg() {
	local name=$1; shift
	"$@" >"$tmp/$name.out" 2>&1 &
	PIDS+=($!)
	LAST_PID=$!
}

# wait_line FILE TEXT [SECONDS [PID]]: until FILE has TEXT, bounded by
# SECONDS (20); fails early if PID (the last started background process)
# died.
wait_line() {
	local i pid=${4:-$LAST_PID}
	for i in $(seq $((${3:-20} * 10))); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { grep -q "$2" "$1" 2>/dev/null; return; }
		sleep 0.1
	done
	return 1
}

# wait_stack_sockets N: until the daemon reports N sockets held by
# applications (isostat; a closed socket's slot returns once its last ACK
# is in), bounded by 5 s.  Sets $socks; isostat's output in
# $tmp/isostat.log.
wait_stack_sockets() {
	local i isostat control
	isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
	control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock
	for i in $(seq 50); do
		"$isostat" -r -c "$control" >"$tmp/isostat.log" 2>&1 || fail "isostat"
		socks=$(awk '$1 ~ /^app\.[0-9]+\.sockets$/ { n += $2 } END { print n + 0 }' \
			"$tmp/isostat.log")
		[ "$socks" -eq "$1" ] && return 0
		sleep 0.1
	done
	grep -E "^(app|sock)\." "$tmp/isostat.log"
	return 1
}

# wait_port WHERE PORT: until a TCP connect to the port succeeds from the
# peer (WHERE=peer, to the stack address) or from the stack side through
# the shim (WHERE=stack, to the peer).  Polls with connects, bounded by 20 s.
wait_port() {
	local where=$1 port=$2 i
	for i in $(seq 200); do
		if [ "$where" = peer ]; then
			"$CLI" peer -- bash -c "exec 3<>/dev/tcp/$STACK_IP/$port" 2>/dev/null && return 0
		else
			# Through isostack: the stack namespace's kernel has no
			# route to the peer (the daemon owns the interface).
			"$CLI" run -- bash -c "exec 3<>/dev/tcp/$PEER_IP/$port" 2>/dev/null && return 0
		fi
		# A server that died will never listen.
		[ -n "${LAST_PID:-}" ] && ! kill -0 "$LAST_PID" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}
