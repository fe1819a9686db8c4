#!/bin/bash
# What a program sees at the two limits left once sockets are allocated
# on demand.
#
# (a) Its own fd limit: conns_fill.py, run with RLIMIT_NOFILE 300
#     (prlimit), calls socket() until it fails, once on the kernel and once
#     through the shim; both must stop after the same number of sockets
#     with EMFILE.
# (b) The stack's memory budget: a daemon with stack_memory=8m. A second
#     application (conns_client.py) opens one connection first; then
#     conns_fill.py opens echoing connections until a call fails, which
#     must be ENOBUFS. While those are held, the second application must
#     still echo 1 MiB whole (byte for byte) on its connection; after the
#     filler closes its sockets (and isostat shows them and their memory
#     released), it must open as many again. On the kernel (CONNS_STACK=
#     kernel) there is no budget: the filler runs with RLIMIT_NOFILE 256
#     and stops at EMFILE instead, so the rest of the sequence is proven.
# CONNS_LIMITS=a or b runs one part only (default: both);
# CONNS_BUDGET_SET=KEY=VALUE replaces stack_memory=8m.
PROG_TAG=cnl
. "$(dirname "$0")/lib.sh"

FILL=$CONNS_DIR/conns_fill.py
PORT=9400
# CONNS_BUDGET_SET replaces the daemon key (e.g. app_memory=8m, today's
# per-application budget, to try the sequence before stack_memory exists).
BUDGET_SET=${CONNS_BUDGET_SET:-stack_memory=8m}

parts=${CONNS_LIMITS:-ab}

# ---- (a) EMFILE at the fd limit -------------------------------------
if [[ $parts == *a* ]]; then
conns_up
run_fill() {   # run_fill kernel|shim: the first two lines of conns_fill.py
	local how=$1
	if [ "$how" = kernel ]; then
		ip netns exec "$NS_STACK" taskset -c 0 \
			prlimit --nofile=300:300 python3 "$FILL" socket </dev/null
	else
		"${SUT[@]}" prlimit --nofile=300:300 python3 "$FILL" socket </dev/null
	fi >"$tmp/fill_$how.out" 2>&1 || fail "conns_fill.py ($how) failed: $(tail -3 "$tmp/fill_$how.out")"
	cat "$tmp/fill_$how.out"
}
run_fill kernel
run_fill shim
k=$(grep -m1 '^full' "$tmp/fill_kernel.out")
s=$(grep -m1 '^full' "$tmp/fill_shim.out")
[ "$(cut -d' ' -f3 <<<"$k")" = EMFILE ] ||
	fail "(a) on the kernel socket() stopped with '$k', want EMFILE (is RLIMIT_NOFILE 300?)"
# The shim keeps fds of its own (control socket, wake eventfds, memfds of
# the shared state: docs/shim.md); they count against the same limit, as a
# library's fds do.  So: the same errno, at the kernel's count less those.
others() { grep -m1 '^others' "$1" | cut -d' ' -f2 | tr -d :; }   # "others K: ..."
extra=$(( $(others "$tmp/fill_shim.out") - $(others "$tmp/fill_kernel.out") ))
kn=$(cut -d' ' -f2 <<<"$k") sn=$(cut -d' ' -f2 <<<"$s")
[ "$(cut -d' ' -f3- <<<"$s")" = "$(cut -d' ' -f3- <<<"$k")" ] && [ $((sn + extra)) -eq "$kn" ] ||
	fail "(a) with RLIMIT_NOFILE 300, $CONNS_STACK: '$s'; kernel: '$k' (want the same" \
	     "errno, at the kernel's count less the $extra fds the shim holds;" \
	     "fds the program did not open, $CONNS_STACK: $(grep '^others' "$tmp/fill_shim.out")" \
	     "kernel: $(grep '^others' "$tmp/fill_kernel.out"))"
echo "(a) PASS: '$s' under $CONNS_STACK, '$k' on the kernel ($extra fds are the shim's own)"
conns_down
fi
[[ $parts == *b* ]] || { echo "PASS: (a)"; exit 0; }

# ---- (b) ENOBUFS at the stack's memory budget -----------------------
if [ "$CONNS_STACK" = isostack ]; then
	want_err=ENOBUFS
	fill_cmd=("${SUT[@]}" python3 "$FILL" --commands "$tmp/fill.in" connect "$PEER_IP" "$PORT")
else
	want_err=EMFILE
	fill_cmd=("${SUT[@]}" prlimit --nofile=256:256 python3 "$FILL" --commands "$tmp/fill.in" \
		connect "$PEER_IP" "$PORT")
fi
conns_up --set "$BUDGET_SET"
bg peer "$CLI" peer -- python3 "$CONNS_DIR/conns_echo_server.py" 0.0.0.0 "$PORT"
wait_line "$tmp/peer.out" "^listening" 20 || fail "the peer's echo server did not listen"

mkfifo "$tmp/second.in" "$tmp/fill.in"
exec 6<>"$tmp/second.in" 7<>"$tmp/fill.in"
bg second "${SUT[@]}" python3 "$CONNS_DIR/conns_client.py" "$PEER_IP" "$PORT" 1 \
	--commands "$tmp/second.in"
second=$LAST_PID
wait_line "$tmp/second.out" "^holding 1" 60 "$second" ||
	fail "(b) the second application did not connect: $(tail -2 "$tmp/second.out")"

# The stack before the filler: no application has pid 0.
[ "$CONNS_STACK" = isostack ] && base=$(figures 0)
bg fill "${fill_cmd[@]}"
fill=$LAST_PID
wait_line "$tmp/fill.out" "^others" 300 "$fill" ||
	fail "(b) the filler did not report: $(tail -3 "$tmp/fill.out")"
read -r _ n err call <<<"$(grep -m1 '^full' "$tmp/fill.out")"
echo "(b) the filler opened $n connections, then $call failed with $err"
[ "$err" = "$want_err" ] ||
	fail "(b) $call failed with $err after $n connections, want $want_err"
[ "$n" -ge 1 ] || fail "(b) not one connection opened before $want_err, want at least one"
if [ "$CONNS_STACK" = isostack ]; then
	full=$(figures "$fill")
	echo "(b) while full: $full"
	used=$(field mem.backed "$full") budget=$(field mem.budget "$full")
	if [ "$used" != - ] && [ "$budget" != - ]; then
		[ "$used" -le "$budget" ] || fail "(b) mem.backed $used is above mem.budget $budget"
	fi
fi

echo "echo 1048576" >&6
wait_line "$tmp/second.out" "^echoed 1 1048576" 120 "$second" ||
	fail "(b) with the budget used up, the second application's 1 MiB echo:" \
	     "$(tail -2 "$tmp/second.out"), want 'echoed 1 1048576'"
echo "(b) the second application echoed 1 MiB whole while the filler held the budget"

echo close >&7
wait_line "$tmp/fill.out" "^closed $n" 60 "$fill" || fail "(b) the filler did not close"
if [ "$CONNS_STACK" = isostack ]; then
	# Its sockets and their memory given back (app_mem 0, or no line).
	wait_released "$fill" "$base" 60
	echo "(b) after close: $(figures "$fill") (before the filler: $base)"
fi
echo reopen >&7
wait_line "$tmp/fill.out" "^reopened $n" 300 "$fill" ||
	fail "(b) after the filler closed its $n sockets, opening $n again:" \
	     "$(tail -2 "$tmp/fill.out"), want 'reopened $n'"
echo "(b) $n connections opened again after the close"
echo quit >&7
echo close >&6
wait "$fill" || fail "(b) the filler exited with status $?"
wait "$second" || fail "(b) the second application exited with status $?"
exec 6>&- 7>&-
[[ $parts == *a* ]] && a_done="(a) EMFILE at the fd limit as on Linux; " || a_done=
echo "PASS: $a_done(b) $want_err for the filler ($CONNS_STACK), the other application" \
     "unharmed, as many sockets again after the close"
