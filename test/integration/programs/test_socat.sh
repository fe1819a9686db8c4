#!/bin/bash
# socat (Debian's, unmodified) as a forking server whose children exec a
# program on the accepted socket: `TCP-LISTEN:...,fork EXEC:cat,nofork`.
# Each connection: socat accepts (isostack listener), forks, the parent
# closes its copy, the child dup2()s the socket to stdin/stdout and
# execvp()s cat, which copies everything back until EOF, then exits.
# (cat calls read/write; a program reading a socket through stdio, like
# sha256sum, bypasses any LD_PRELOAD shim: glibc's stdio calls its
# internal read, docs/shim.md.)
# So fork (the child alone holds the socket after the parent's close),
# exec (the socket inherited as fds 0 and 1 by a new image) and exit (the
# last holder's exit closes the connection after its last byte) all meet
# in one real program.  A Linux socat in the peer namespace sends files
# and must get each file back whole (sha256), one at a time and four at once;
# afterwards no connection may be left open in the stack.
PROG_TAG=sct
. "$(dirname "$0")/lib.sh"
need socat socat

PORT=9000
stack_up
bg socat "$CLI" run --require -- socat TCP-LISTEN:$PORT,fork,reuseaddr EXEC:cat,nofork
wait_port peer $PORT || fail "socat does not accept connections on $STACK_IP:$PORT"

# digest_of FILE OUT: sends FILE through the server, the answer into OUT.
digest_of() {
	"$CLI" peer -- socat -t 30 -T 60 - "TCP:$STACK_IP:$PORT" <"$1" >"$2"
}

check() {  # check FILE OUT
	local want got
	want=$(sha256sum <"$1")
	got=$(sha256sum <"$2")
	[ "$want" = "$got" ] || fail "$(basename "$1"): got '$got', want '$want'"
}

for size in 0 1 65536 1048576 3000001; do
	head -c $size /dev/urandom >"$tmp/f$size"
	digest_of "$tmp/f$size" "$tmp/d$size" || fail "socat client, $size bytes"
	check "$tmp/f$size" "$tmp/d$size"
	echo "$size bytes: echoed whole by the exec'd cat (sha256 ok)"
done

pids=()
for i in 1 2 3 4; do
	head -c 2097152 /dev/urandom >"$tmp/c$i"
	digest_of "$tmp/c$i" "$tmp/e$i" &
	pids+=($!)
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || fail "concurrent client $i"
	check "$tmp/c$i" "$tmp/e$i"
done
echo "4 concurrent 2 MiB connections: every echo whole (sha256 ok)"

kill -0 "$LAST_PID" || fail "socat died"
# Every child has exited and its client got all bytes and EOF, so the
# application is left holding the listener alone: one socket in the stack
# (a closed socket's slot returns once its last ACK is in, so poll for it).
wait_stack_sockets 1 || fail "sockets left: $socks"
echo "sockets the application holds in the stack afterwards: $socks (the listener)"
echo "PASS: socat fork + exec on isostack"
