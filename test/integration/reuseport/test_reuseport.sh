#!/bin/bash
# SO_REUSEPORT for real (issue 15, point 3): four python3 processes under
# the shim (`isostack run --require`, each its own application) bind and
# listen on the same port with SO_REUSEPORT, and share its connections
# the way Linux spreads them (a hash of the 4-tuple across the listening
# members):
#  - 0.0.0.0:7100: 400 connections from the peer (8 at a time, each from
#    its own source port) each echo a random payload (SHA-256 equal at the
#    client); every connection's digest shows up in exactly one server's
#    log, and every server got at least 40 (the split is printed);
#    isostat shows each listener as `reuseport 4`;
#  - the same program without SO_REUSEPORT gets EADDRINUSE from bind, as
#    on Linux; the bind/listen rules case by case (rp_app.py bindcheck)
#    give the same output under the shim as on the peer's Linux, for an
#    address, 0.0.0.0 and [::];
#  - the first server (the one holding the stack's listener) exits: the
#    other three take all of 300 new connections (each at least 30), and
#    the listener passed on (backend.reuseport_handovers one up);
#  - a member that never accepts closes: the connections queued on it are
#    reset (ECONNRESET at the client), the other member's are echoed, as on
#    Linux (the same servers in the peer, the client under the shim);
#  - a dual-stack group on [::]:7200 (AF_INET6): 400 connections, over
#    IPv4 and IPv6 in turn, shared the same way.
PROG_TAG=rport
. "$(dirname "$0")/../programs/lib.sh"
. "$(dirname "$0")/rp_lib.sh"
app=$(dirname "$(readlink -f "$0")")/rp_app.py
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -x "$isostat" ] || { echo "SKIP: no isostat next to $ISOSTACK_DAEMON"; exit 77; }
[ -r /proc/net/if_inet6 ] || { echo "SKIP: this kernel has no IPv6"; exit 77; }
STACK_IP6=2001:2::1
stack_up
control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock
stat_key() { "$isostat" -r -c "$control" | awk -v k="$1" '$1 == k { print $2 }'; }
# wait_key KEY VALUE: until isostat says so (5 s at most).
wait_key() {
	local i
	for i in $(seq 50); do
		[ "$(stat_key "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	echo "isostat: $1 $(stat_key "$1"), wanted $2"
	return 1
}

# members PORT: how many listeners of PORT isostat shows in a group, and
# the group's size each of them reports ("4 4 4 4" -> 4 listeners of 4).
members() {
	"$isostat" -r -c "$control" | awk -v p="$1" -F'[ .]' '
		$4 == "local_port" && $5 == p { port[$2 "." $3] = 1 }
		$4 == "reuseport" { rp[$2 "." $3] = $5 }
		END { for (k in rp) if (k in port) printf "%s ", rp[k] }'
}
# wait_members PORT N: until N listeners of PORT each report a group of N.
wait_members() {
	local i want
	want=$(printf "%${2}s" | sed "s/ /$2 /g")
	for i in $(seq 100); do
		[ "$(members "$1")" = "$want" ] && return 0
		sleep 0.1
	done
	echo "listeners of $1 in a group: '$(members "$1")', wanted '$want'"
	return 1
}

conns_of() { grep -c ": conn sha256" "$tmp/$1.out" || true; }

# share PHASE N MIN SERVERS...: waits until the servers logged N
# connections past the skip_of[SERVER] each had already (a server logs a
# connection after its last byte went back), prints the split, checks that
# each got at least MIN and that every digest the client verified is in
# exactly one server's log.
share() {
	local phase=$1 n=$2 min=$3 s i total
	shift 3
	for i in $(seq 200); do
		total=0
		for s in "$@"; do total=$((total + $(conns_of "$s") - ${skip_of[$s]:-0})); done
		[ "$total" -ge "$n" ] && break
		sleep 0.1
	done
	[ "$total" -eq "$n" ] || fail "$phase: the servers logged $total connections, the client made $n"
	: >"$tmp/$phase.servers"
	printf "%s: split" "$phase"
	for s in "$@"; do
		{ grep ": conn sha256" "$tmp/$s.out" || true; } | tail -n +$((${skip_of[$s]:-0} + 1)) |
			awk '{ print $4 }' >>"$tmp/$phase.servers"
		printf " %s %d" "$s" $(($(conns_of "$s") - ${skip_of[$s]:-0}))
	done
	echo
	for s in "$@"; do
		[ $(($(conns_of "$s") - ${skip_of[$s]:-0})) -ge "$min" ] ||
			fail "$phase: $s got fewer than $min of $n connections"
	done
	awk '/^conn [0-9]+ sha256/ { print $4 }' "$tmp/$phase.out" | sort >"$tmp/$phase.client"
	[ "$(wc -l <"$tmp/$phase.client")" -eq "$n" ] || fail "$phase: the client verified fewer than $n"
	sort "$tmp/$phase.servers" | cmp -s - "$tmp/$phase.client" ||
		fail "$phase: the servers' digests are not the client's, one each"
}
declare -A skip_of

echo "== four processes, SO_REUSEPORT on 0.0.0.0:7100"
for s in s1 s2 s3 s4; do
	bg "$s" "$CLI" run --require -- python3 "$app" server "$s" 0.0.0.0 7100
	eval "pid_$s=$LAST_PID"
	wait_line "$tmp/$s.out" "$s: listening" 20 || fail "$s did not listen"
done
wait_members 7100 4 || fail "isostat does not show four listeners in one group"
wait_key backend.reuseport_groups 1 || fail "backend.reuseport_groups is not 1"
"$isostat" -c "$control" >"$tmp/table.out"
[ "$(grep -cE "LISTEN .*:7100 .* reuseport 4$" "$tmp/table.out")" -eq 4 ] ||
	{ cat "$tmp/table.out"; fail "isostat's table does not show the listeners as reuseport 4"; }
"$CLI" peer -- python3 "$app" client "$STACK_IP" 7100 400 1 >"$tmp/p1.out" 2>&1 ||
	{ tail -5 "$tmp/p1.out"; fail "400 connections to the group"; }
share p1 400 40 s1 s2 s3 s4

echo "== without SO_REUSEPORT: EADDRINUSE, as on Linux"
"$CLI" run --require -- python3 "$app" server s5 0.0.0.0 7100 --no-reuseport >"$tmp/s5.out" 2>&1 &&
	fail "a server without SO_REUSEPORT ran on the group's port"
cat "$tmp/s5.out"
grep -q "^s5: bind EADDRINUSE$" "$tmp/s5.out" || fail "bind without SO_REUSEPORT: not EADDRINUSE"
"$CLI" peer -- python3 "$app" server k1 0.0.0.0 7100 >"$tmp/k1.out" 2>&1 &
PIDS+=($!); LAST_PID=$!
wait_line "$tmp/k1.out" "k1: listening" 20 || fail "the peer's Linux server did not listen"
"$CLI" peer -- python3 "$app" server k2 0.0.0.0 7100 --no-reuseport >"$tmp/k2.out" 2>&1 &&
	fail "Linux let a server without SO_REUSEPORT onto the port"
grep -q "^k2: bind EADDRINUSE$" "$tmp/k2.out" || { cat "$tmp/k2.out"; fail "Linux did not say EADDRINUSE"; }
kill "$LAST_PID"

echo "== bind and listen rules: the shim against Linux"
bindcheck_vs_linux "$app" "$STACK_IP/$PEER_IP 7300" "0.0.0.0/0.0.0.0 7400" "::/:: 7500"

echo "== the first server (it holds the stack's listener) exits"
handovers=$(stat_key backend.reuseport_handovers)
kill -TERM "$pid_s1"
wait_line "$tmp/s1.out" "s1: closed" 20 "$pid_s1" || fail "s1 did not close"
wait_members 7100 3 || fail "the group did not shrink to three"
wait_key backend.reuseport_handovers $((handovers + 1)) || fail "the listener did not pass to another member"
for s in s1 s2 s3 s4; do skip_of[$s]=$(conns_of "$s"); done
"$CLI" peer -- python3 "$app" client "$STACK_IP" 7100 300 2 >"$tmp/p2.out" 2>&1 ||
	{ tail -5 "$tmp/p2.out"; fail "300 connections after s1 left"; }
share p2 300 30 s2 s3 s4
[ "$(conns_of s1)" -eq "${skip_of[s1]}" ] || fail "s1 got connections after it exited"

# queued WHERE PORT NAME PID: connections waiting in the accept queue of
# NAME's listener: under the shim its application's sockets past the
# listener (isostat), on Linux the Recv-Q of the port's listeners (ss; the
# accepting member's queue is empty once it logged its connections).
queued() {
	if [ "$1" = stack ]; then
		"$isostat" -r -c "$control" | awk -v pid="$4" '
			$1 ~ /^app\.[0-9]+\.pid$/ && $2 == pid { split($1, a, "."); id = a[2] }
			{ v[$1] = $2 }
			END { print (id == "" ? 0 : v["app." id ".sockets"] - 1) }'
	else
		"$CLI" peer -- ss -Hltn "sport = :$2" | awk '{ n += $2 } END { print n + 0 }'
	fi
}

# reset_check WHERE ADDR PORT: servers x (accepts) and y (--no-accept) on
# PORT, run on WHERE; 20 connections from the other side; once each is
# echoed by x or queued on y, y closes its listener (and stays up): its
# queued ones must be reset.
reset_check() {
	local where=$1 addr=$2 port=$3 run client i x y xpid
	if [ "$where" = stack ]; then run=("$CLI" run --require); client=("$CLI" peer)
	else run=("$CLI" peer); client=("$CLI" run --require); fi
	bg "x$port" "${run[@]}" python3 "$app" server "x$port" 0.0.0.0 "$port"
	xpid=$LAST_PID
	wait_line "$tmp/x$port.out" "x$port: listening" 20 || fail "x$port did not listen"
	bg "y$port" "${run[@]}" python3 "$app" server "y$port" 0.0.0.0 "$port" --no-accept
	y=$LAST_PID
	wait_line "$tmp/y$port.out" "y$port: listening" 20 || fail "y$port did not listen"
	[ "$where" = peer ] || wait_members "$port" 2 || fail "x$port and y$port are not one group"
	bg "probe$port" "${client[@]}" python3 "$app" probe "$addr" "$port" 20 4
	wait_line "$tmp/probe$port.out" "probe: 20 open" 30 || fail "$where: the probe did not connect"
	for i in $(seq 100); do
		x=$(conns_of "x$port")
		[ $((x + $(queued "$where" "$port" "x$port" "$y"))) -eq 20 ] && break
		sleep 0.1
	done
	[ $((x + $(queued "$where" "$port" "x$port" "$y"))) -eq 20 ] ||
		fail "$where: $x echoed, $(queued "$where" "$port" "x$port" "$y") queued: not the 20 made"
	kill -TERM "$y"
	wait "$LAST_PID" || { cat "$tmp/probe$port.out"; fail "$where: a probe connection failed"; }
	echo "$where: $(tail -1 "$tmp/probe$port.out") (x$port echoed $x)"
	grep -q "^probe: $x echoed $((20 - x)) reset 0 failed$" "$tmp/probe$port.out" ||
		fail "$where: the connections queued on the closed member were not reset"
	[ "$x" -ge 1 ] && [ "$x" -le 19 ] || fail "$where: one member got all 20"
	kill -TERM "$xpid" "$y"
}
echo "== a member that never accepts closes: its queued connections are reset"
reset_check stack "$STACK_IP" 7600
reset_check peer "$PEER_IP" 7601

echo "== a dual-stack group on [::]:7200 (AF_INET6), IPv4 and IPv6 clients"
for s in d1 d2 d3 d4; do
	bg "$s" "$CLI" run --require -- python3 "$app" server "$s" :: 7200
	wait_line "$tmp/$s.out" "$s: listening" 20 || fail "$s did not listen"
done
wait_members 7200 4 || fail "isostat does not show four [::] listeners in one group"
wait_key backend.reuseport_groups 2 || fail "backend.reuseport_groups is not 2"
"$CLI" peer -- python3 "$app" client "$STACK_IP,$STACK_IP6" 7200 400 3 >"$tmp/p3.out" 2>&1 ||
	{ tail -5 "$tmp/p3.out"; fail "400 connections to the dual-stack group"; }
share p3 400 40 d1 d2 d3 d4

echo "== every server exits: no group left"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait_key backend.reuseport_groups 0 || fail "a group outlived its members"
echo "PASS"
