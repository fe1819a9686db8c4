#!/bin/bash
# SO_REUSEPORT on UDP (issue 15, point 3): python3 processes under the shim
# (`isostack run --require`, each its own application) bind one UDP port
# with SO_REUSEPORT and share its datagrams the way Linux spreads them (a
# hash of the 4-tuple over the members), each flow on one member:
#  - 198.18.0.1:7700, four servers and a fifth connected to the peer's
#    source port of flow 0: the peer sends 5 datagrams on each of 400 flows
#    (source ports 21000-21399), each carrying its flow, its sequence and
#    the SHA-256 of its payload; each is answered by the server that got it
#    (the digest it computed).  No datagram is sent twice: every one must
#    be answered, every digest equal, every flow answered by one server,
#    flow 0 by the connected one and by nothing else, every other server
#    got flows; the servers' logs say the same (each (flow, seq) once, in
#    one server's log, 2000 in all) and isostat's per-member counts
#    (reuseport_dgrams) equal each server's log;
#  - the same program without SO_REUSEPORT: EADDRINUSE, as on Linux; the
#    bind rules case by case (rpu_app.py bindcheck) give the same output
#    under the shim as on the peer's Linux, on an address, 0.0.0.0, [::]
#    and an IPv6 address; on Linux, another user's SO_REUSEPORT bind is
#    EADDRINUSE (under the shim only if the daemon admits that user);
#  - one server exits: the same 400 flows are served by the other three
#    (each some), the connected one keeps flow 0;
#  - a dual-stack group on [::]:7800 (AF_INET6): 400 flows to 2001:2::1
#    and 400 to 198.18.0.1, shared the same way.
# A datagram the stack dropped would show in backend.udp_rx_dropped, one
# lost on the wire as a lost answer with that counter still 0: both are
# printed when a flow loses one.
PROG_TAG=rpudp
. "$(dirname "$0")/../programs/lib.sh"
. "$(dirname "$0")/rp_lib.sh"
app=$(dirname "$(readlink -f "$0")")/rpu_app.py
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -x "$isostat" ] || { echo "SKIP: no isostat next to $ISOSTACK_DAEMON"; exit 77; }
[ -r /proc/net/if_inet6 ] || { echo "SKIP: this kernel has no IPv6"; exit 77; }
STACK_IP6=2001:2::1
PEER_IP6=2001:2::2
GID=
for g in $(seq 47000 47100); do
	getent group "$g" >/dev/null || { GID=$g; break; }
done
[ -n "$GID" ] || fail "no free gid in 47000..47100"
# the group may attach: another user's bind is tried under the shim too
stack_up --set control_group="$GID"
control=/run/isostack/$ISOSTACK_NS_PREFIX/control.sock
stat_key() { "$isostat" -r -c "$control" | awk -v k="$1" '$1 == k { print $2 }'; }

# members: the group sizes isostat shows, one per member socket, sorted
# ("4 4 4 4": four sockets each in a group of four).
members() {
	"$isostat" -r -c "$control" | awk -F'[ .]' '$4 == "reuseport" { print $5 }' |
		sort -n | tr '\n' ' '
}
# wait_members "WANT": until members says WANT (5 s at most).
wait_members() {
	local i
	for i in $(seq 50); do
		[ "$(members)" = "$1" ] && return 0
		sleep 0.1
	done
	echo "isostat's group sizes: '$(members)', wanted '$1'"
	return 1
}

dgrams_of() { grep -c ": dgram " "$tmp/$1.out" || true; }

# client PHASE ADDR PORT FLOWS ROUNDS SEED BASE: the peer's client; on a
# lost or bad answer, prints what the stack counted as dropped.
client() {
	local phase=$1
	shift
	"$CLI" peer -- python3 "$app" client "$@" >"$tmp/$phase.out" 2>&1 || {
		grep -E "lost|bad|^client" "$tmp/$phase.out" | tail -8
		echo "backend.udp_rx_dropped $(stat_key backend.udp_rx_dropped)"
		fail "$phase: not every datagram answered once by one server"
	}
	grep "^client:" "$tmp/$phase.out"
}

# logs PHASE N SERVERS...: the servers' logs past line skip_of[SERVER] hold N
# datagrams, each digest good, each (flow, seq) once and each flow in one
# server's log; every server got some, unless it is named in no_share.
logs() {
	local phase=$1 n=$2 s got
	shift 2
	for s in "$@"; do
		tail -n +$((${skip_of[$s]:-0} + 1)) "$tmp/$s.out" | awk -v s="$s" '$2 == "dgram"'
	done >"$tmp/$phase.logs"
	got=$(wc -l <"$tmp/$phase.logs")
	[ "$got" -eq "$n" ] || fail "$phase: the servers logged $got datagrams, the client sent $n"
	[ "$(awk '$6 != "ok"' "$tmp/$phase.logs" | wc -l)" -eq 0 ] ||
		fail "$phase: a datagram's digest differs"
	[ "$(awk '{ print $3, $4 }' "$tmp/$phase.logs" | sort | uniq -d | wc -l)" -eq 0 ] ||
		fail "$phase: a datagram was delivered twice"
	[ "$(awk '{ print $1, $3 }' "$tmp/$phase.logs" | sort -u | awk '{ print $2 }' |
		sort | uniq -d | wc -l)" -eq 0 ] || fail "$phase: a flow reached two servers"
	printf "%s: datagrams per server" "$phase"
	for s in "$@"; do
		printf " %s %d" "$s" "$(grep -c "^$s: dgram" "$tmp/$phase.logs" || true)"
	done
	echo
	for s in "$@"; do
		grep -q "^$s: dgram" "$tmp/$phase.logs" || fail "$phase: $s got no datagram"
	done
}
declare -A skip_of

# counted SERVERS...: isostat's reuseport_dgrams of each server's socket
# equal the datagrams in its log (each server its own application).
counted() {
	local s pid n
	"$isostat" -r -c "$control" >"$tmp/isostat.raw"
	for s in "$@"; do
		pid=$(sed -n "s/^$s: bound pid //p" "$tmp/$s.out")
		n=$(awk -v pid="$pid" '
			$1 ~ /^app\.[0-9]+\.pid$/ && $2 == pid { split($1, a, "."); id = a[2] }
			{ v[$1] = $2; k[NR] = $1 }
			END { for (i in k) { split(k[i], b, ".")
				if (b[1] == "sock" && b[2] == id && b[4] == "reuseport_dgrams") print v[k[i]] } }' \
			"$tmp/isostat.raw")
		[ "$n" = "$(dgrams_of "$s")" ] ||
			fail "isostat counts '$n' datagrams for $s, its log $(dgrams_of "$s")"
	done
}

echo "== four servers and a connected fifth, SO_REUSEPORT on $STACK_IP:7700"
for s in s1 s2 s3 s4; do
	bg "$s" "$CLI" run --require -- python3 "$app" server "$s" "$STACK_IP" 7700
	eval "pid_$s=$LAST_PID"
	wait_line "$tmp/$s.out" "$s: bound" 20 || fail "$s did not bind"
done
bg c1 "$CLI" run --require -- python3 "$app" server c1 "$STACK_IP" 7700 --connect "$PEER_IP" 21000
wait_line "$tmp/c1.out" "c1: bound" 20 || fail "c1 did not bind and connect"
client p1 "$STACK_IP" 7700 400 5 1 21000
grep -q "^flow 0 server c1$" "$tmp/p1.out" || fail "flow 0 did not go to the member connected to it"
grep -q "^client: flows per server.* c1 1\b" "$tmp/p1.out" || fail "c1 got another flow than its peer's"
logs p1 2000 s1 s2 s3 s4 c1
wait_members "5 5 5 5 5 " || fail "isostat does not show five sockets in one group"
[ "$(stat_key backend.reuseport_udp_groups)" = 1 ] || fail "backend.reuseport_udp_groups is not 1"
counted s1 s2 s3 s4 c1
"$isostat" -c "$control" | grep -E " reuseport 5 dgrams [0-9]+$" | head -5

echo "== without SO_REUSEPORT: EADDRINUSE, as on Linux"
"$CLI" run --require -- python3 "$app" server x1 "$STACK_IP" 7700 --no-reuseport >"$tmp/x1.out" 2>&1 &&
	fail "a server without SO_REUSEPORT ran on the group's port"
grep -q "^x1: bind EADDRINUSE$" "$tmp/x1.out" || { cat "$tmp/x1.out"; fail "not EADDRINUSE"; }
bg k1 "$CLI" peer -- python3 "$app" server k1 "$PEER_IP" 7700
wait_line "$tmp/k1.out" "k1: bound" 20 || fail "the peer's Linux server did not bind"
"$CLI" peer -- python3 "$app" server k2 "$PEER_IP" 7700 --no-reuseport >"$tmp/k2.out" 2>&1 &&
	fail "Linux let a server without SO_REUSEPORT onto the port"
grep -q "^k2: bind EADDRINUSE$" "$tmp/k2.out" || { cat "$tmp/k2.out"; fail "Linux did not say EADDRINUSE"; }

echo "== another user's SO_REUSEPORT bind: EADDRINUSE"
# As nobody: the daemon admits the control group ($GID, given to nobody
# by setpriv), and python3 must be one nobody may run.
py=$(command -v /usr/bin/python3 || true)
nobody() { setpriv --reuid nobody --regid nogroup "$@"; }
if [ -n "$py" ] && command -v setpriv >/dev/null &&
	nobody --clear-groups test -r "$app" -a -r "$ISOSTACK_SHIM" -a -r "$CLI" -a -x "$py"; then
	nobody --groups "$GID" "$CLI" run --require -- \
		"$py" "$app" bind "$STACK_IP" 7700 >"$tmp/uid_iso.out" 2>&1 || true
	"$CLI" peer -- setpriv --reuid nobody --regid nogroup --clear-groups \
		"$py" "$app" bind "$PEER_IP" 7700 >"$tmp/uid_lnx.out" 2>&1 || true
	echo "shim: $(cat "$tmp/uid_iso.out"); Linux: $(cat "$tmp/uid_lnx.out")"
	grep -qx "bind EADDRINUSE" "$tmp/uid_lnx.out" || fail "Linux let another user into the group"
	cmp -s "$tmp/uid_lnx.out" "$tmp/uid_iso.out" || fail "another user's bind: not as on Linux"
else
	echo "skipped: nobody cannot run $py on $app (and the shim)"
fi
kill "$LAST_PID"

echo "== bind rules: the shim against Linux"
bindcheck_vs_linux "$app" "$STACK_IP/$PEER_IP 7300" "0.0.0.0/0.0.0.0 7330" "::/:: 7360" \
	"$STACK_IP6/$PEER_IP6 7390"

echo "== s1 exits: the same flows go on to the others"
kill -TERM "$pid_s1"
wait_line "$tmp/s1.out" "s1: closed" 20 "$pid_s1" || fail "s1 did not close"
wait_members "4 4 4 4 " || fail "the group did not shrink to four"
for s in s1 s2 s3 s4 c1; do skip_of[$s]=$(wc -l <"$tmp/$s.out"); done
client p2 "$STACK_IP" 7700 400 3 2 21000
grep -q "^flow 0 server c1$" "$tmp/p2.out" || fail "flow 0 left the member connected to it"
logs p2 1200 s2 s3 s4 c1
[ "$(wc -l <"$tmp/s1.out")" -eq "${skip_of[s1]}" ] || fail "s1 got datagrams after it closed"
counted s2 s3 s4 c1

echo "== a dual-stack group on [::]:7800: flows over IPv6 and IPv4"
for s in d1 d2 d3 d4; do
	bg "$s" "$CLI" run --require -- python3 "$app" server "$s" :: 7800
	wait_line "$tmp/$s.out" "$s: bound" 20 || fail "$s did not bind"
done
wait_members "4 4 4 4 4 4 4 4 " || fail "isostat does not show the second group of four"
[ "$(stat_key backend.reuseport_udp_groups)" = 2 ] || fail "backend.reuseport_udp_groups is not 2"
client p3 "$STACK_IP6" 7800 400 3 3 22000
logs p3 1200 d1 d2 d3 d4
for s in d1 d2 d3 d4; do skip_of[$s]=$(wc -l <"$tmp/$s.out"); done
client p4 "$STACK_IP" 7800 400 3 4 23000
logs p4 1200 d1 d2 d3 d4
counted d1 d2 d3 d4

echo "== every server exits: no group left"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for i in $(seq 50); do
	[ "$(stat_key backend.reuseport_udp_groups)" = 0 ] && break
	sleep 0.1
done
[ "$(stat_key backend.reuseport_udp_groups)" = 0 ] || fail "a group outlived its members"
echo "PASS"
