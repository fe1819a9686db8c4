#!/bin/bash
# Shared by the connection-scale tests (sourced), on top of
# ../programs/lib.sh (instance per test, temp dir, cleanup, bg, wait_line).
#
# CONNS_STACK says what serves the program under test (the SUT):
#   isostack (default)  `isostack run --require` in the daemon's namespace
#   kernel              the same namespace without the shim: `isostack up
#                       --no-daemon`, and 198.18.0.1 given to the kernel on
#                       the stack end of the veth
# so each test can be proven right on Linux before isostack can pass it.
# The peer side is Linux either way.
PROG_TAG=${PROG_TAG:-cn}
# shellcheck source=../programs/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../programs/lib.sh" "$@"

CONNS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONNS_STACK=${CONNS_STACK:-isostack}
case $CONNS_STACK in
isostack|kernel) ;;
*) fail "CONNS_STACK='$CONNS_STACK': want isostack or kernel" ;;
esac
ISOSTAT=$(dirname "$ISOSTACK_DAEMON")/isostat
CONTROL=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock
NS_STACK=$ISOSTACK_NS_PREFIX-stack
need python3 python3
need ss iproute2
need prlimit util-linux
[ "$CONNS_STACK" = kernel ] || [ -x "$ISOSTAT" ] ||
	{ echo "SKIP: no isostat at $ISOSTAT (build the daemon first)"; exit 77; }
echo "SUT on: $CONNS_STACK"

# conns_up [UP-OPTIONS]: the instance. On the kernel there is no daemon
# and the options (daemon keys) mean nothing: they are shown and dropped.
conns_up() {
	local i
	if [ "$CONNS_STACK" = isostack ]; then
		stack_up "$@"
		return
	fi
	[ $# -eq 0 ] || echo "kernel: no daemon, so no '$*'"
	# No daemon, so no hugepages to take from the instances that need them.
	ISOSTACK_UP_HUGEPAGES=0 "$CLI" up --no-daemon >"$tmp/up.log" 2>&1 ||
		{ cat "$tmp/up.log"; fail "isostack up --no-daemon"; }
	ip netns exec "$NS_STACK" ip addr add "$STACK_IP/24" dev "${ISOSTACK_NS_PREFIX}s0"
	for i in $(seq 50); do   # each try waits up to 1 s for the reply
		"$CLI" peer -- ping -c 1 -W 1 "$STACK_IP" >/dev/null 2>&1 && return 0
	done
	fail "the peer gets no ping reply from the kernel at $STACK_IP after 50 tries"
}

conns_down() {
	"$CLI" down >/dev/null 2>&1
}

# "${SUT[@]}" CMD...: CMD as the program under test, on core 0. An array,
# not a function: a function run in the background is a subshell, and
# the pid that bg records must be the program's own (isostat's app.<id>.pid).
if [ "$CONNS_STACK" = isostack ]; then
	SUT=("$CLI" run --require --)
else
	SUT=(ip netns exec "$NS_STACK" taskset -c 0)
fi

# established PORT: how many TCP connections the stack namespace's kernel
# has established on local port PORT (the kernel SUT's view; the daemon's
# sockets are not the kernel's).
established() {
	ip netns exec "$NS_STACK" ss -Htn state established "( sport = :$1 )" | wc -l
}

# figures PID: one line "sockets=S app_mem=M mem.backed=U mem.budget=B" from
# isostat -r: S and M summed over the daemon's applications with that pid
# (app.<id>.pid, app.<id>.sockets, app.<id>.mem_bytes; 0 when none is
# attached), U and B the stack-wide mem.backed / mem.budget lines. A line
# the daemon does not print shows as "-".
figures() {
	"$ISOSTAT" -r -c "$CONTROL" >"$tmp/isostat.log" 2>&1 ||
		fail "isostat -r -c $CONTROL: $(head -3 "$tmp/isostat.log")"
	awk -v pid="$1" '
		{ v[$1] = $2 }
		$1 ~ /^app\.[0-9]+\.pid$/ && $2 == pid { split($1, f, "."); ids[f[2]] = 1 }
		END {
			s = m = 0; seen_m = 0
			for (id in ids) {
				s += v["app." id ".sockets"]
				if (("app." id ".mem_bytes") in v) { m += v["app." id ".mem_bytes"]; seen_m = 1 }
			}
			printf "sockets=%d app_mem=%s mem.backed=%s mem.budget=%s\n", s,
				seen_m ? m : "-",
				("mem.backed" in v) ? v["mem.backed"] : "-",
				("mem.budget" in v) ? v["mem.budget"] : "-"
		}' "$tmp/isostat.log"
}

# field NAME LINE: the value of NAME=... in a figures line.
field() {
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"
}

# wait_figures PID WANT SECONDS: until figures PID prints WANT (a glob
# pattern), polling
# isostat ten times a second (a closed socket's slot and memory come back
# once its last ACK is in); otherwise fail showing both.
wait_figures() {
	local i seen
	for i in $(seq $(($3 * 10))); do
		seen=$(figures "$1")
		# shellcheck disable=SC2053
		[[ $seen == $2 ]] && return 0
		sleep 0.1
	done
	grep -E '^(app|mem|backend\.open_sockets)' "$tmp/isostat.log" | head -20
	fail "after $3 s isostat shows '$seen', want '$2' (as before)"
}

# wait_released PID BASE SECONDS: until PID holds no socket and no ring
# memory, and the stack's mem.backed is at most BASE's (a figures line from
# before PID opened anything). At most, not equal: another application's
# idle socket may let go of its ring meanwhile (docs/shm.md, idle), so the
# stack may end below the baseline, never above it.
wait_released() {
	local i seen backed base_backed
	base_backed=$(field mem.backed "$2")
	for i in $(seq $(($3 * 10))); do
		seen=$(figures "$1")
		backed=$(field mem.backed "$seen")
		if [[ $seen == "sockets=0 app_mem="[0-]" "* ]] &&
		   { [ "$base_backed" = - ] || [ "$backed" -le "$base_backed" ]; }; then
			return 0
		fi
		sleep 0.1
	done
	grep -E '^(app|mem|backend\.open_sockets)' "$tmp/isostat.log" | head -20
	fail "after $3 s isostat shows '$seen', want no socket, no ring memory and" \
	     "mem.backed at most the baseline's $base_backed"
}

# echo_many SERVER COUNT PORT: the SUT runs SERVER (a python3 echo server
# in this folder that prints "listening" and "all closed: accepted A peak
# P"); conns_client.py in the peer opens COUNT connections to it, each
# echoing a payload of its own checked byte for byte, and holds them all.
# While they are held, the SUT side must show COUNT connections more than
# before (isostack: the application's socket count in isostat; kernel: ss);
# then the client closes them all, the server must report COUNT accepted
# and COUNT open at once, and (isostack) the application's socket count
# and the memory lines must return to what they were before.
echo_many() {
	local server=$1 count=$2 port=$3 spid cpid before held want line
	conns_up "${CONNS_UP[@]}"
	bg server "${SUT[@]}" python3 "$CONNS_DIR/$server" 0.0.0.0 "$port"
	spid=$LAST_PID
	wait_line "$tmp/server.out" "^listening" 20 ||
		fail "$server: no 'listening' line within 20 s"
	if [ "$CONNS_STACK" = isostack ]; then
		before=$(figures "$spid")
		echo "before: $before"
	fi

	# The client's commands: a FIFO held open here (read-write, so opening
	# it never blocks and the client never sees EOF before "close").
	mkfifo "$tmp/client.in"
	exec 5<>"$tmp/client.in"
	bg client "$CLI" peer -- python3 "$CONNS_DIR/conns_client.py" "$STACK_IP" "$port" \
		"$count" --commands "$tmp/client.in"
	cpid=$LAST_PID
	wait_line "$tmp/client.out" "^holding $count" 900 "$cpid" ||
		fail "the client did not get $count verified connections: $(tail -2 "$tmp/client.out")"
	grep "^holding" "$tmp/client.out"

	if [ "$CONNS_STACK" = isostack ]; then
		held=$(figures "$spid")
		echo "holding: $held"
		want=$(( $(field sockets "$before") + count ))
		[ "$(field sockets "$held")" = "$want" ] ||
			fail "while the client holds $count connections the application has" \
			     "$(field sockets "$held") sockets in isostack, want $want"
	else
		held=$(established "$port")
		echo "holding: the kernel has $held connections established on port $port"
		[ "$held" -eq "$count" ] ||
			fail "ss shows $held established on port $port, want $count"
	fi

	echo close >&5
	wait_line "$tmp/client.out" "^closed $count" 120 "$cpid" ||
		fail "the client did not close its connections: $(tail -2 "$tmp/client.out")"
	wait "$cpid" || fail "the client exited with status $?: $(tail -2 "$tmp/client.out")"
	exec 5>&-
	wait_line "$tmp/server.out" "^all closed" 120 "$spid" ||
		fail "$server never had all connections closed: $(tail -2 "$tmp/server.out")"
	line=$(grep -m1 "^all closed" "$tmp/server.out")
	echo "server: $line"
	[ "$line" = "all closed: accepted $count peak $count" ] ||
		fail "server says '$line', want 'all closed: accepted $count peak $count'"
	if [ "$CONNS_STACK" = isostack ]; then
		wait_figures "$spid" "$before" 60
		echo "after: $(figures "$spid") (as before)"
	fi
	kill -0 "$spid" 2>/dev/null || fail "$server exited: $(tail -2 "$tmp/server.out")"
}
