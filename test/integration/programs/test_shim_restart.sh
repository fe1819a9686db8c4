#!/bin/bash
# The shim's private fds and a daemon restart (issue 14), one long-running
# python3 under the shim against an echo peer:
#  1. dup2 (and dup3, os.dup2 inheritable=False) of /dev/null onto each fd
#     the shim's attach opened (control socket, wake eventfds, memfds): the
#     fd now is /dev/null, and a new connection and the old one still echo
#     bytes (verified);
#  2. isostack down + up (the daemon gone, then a new one): a new
#     connection made after the restart echoes bytes (verified); with
#     --require it can only be an isostack one, so the shim re-attached.
#     The old connection fails with ECONNRESET/EPIPE.
PROG_TAG=rst
. "$(dirname "$0")/lib.sh"
PEER_TOOL=$(cd "$(dirname "$0")/.." && pwd)/peer_tool.py
need python3 python3

PORT=9320
start_peer() {
	bg peer "$CLI" peer -- python3 "$PEER_TOOL" echo-server --port $PORT
	wait_line "$tmp/peer.out" listening || fail "peer did not listen"
}

stack_up
start_peer
# Commands to the app through a fifo it opens itself: a background
# command's stdin is /dev/null in a script, whatever the caller redirects.
mkfifo "$tmp/cmd"
exec 9<>"$tmp/cmd"
bg app "$CLI" run --require -- python3 -u -c '
import errno, os, socket, sys
peer = (sys.argv[1], int(sys.argv[2]))
cmd = open(sys.argv[3])                              # the fifo of the test
def echo(s, n):
    data = os.urandom(n); s.sendall(data); got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            raise OSError(errno.ECONNRESET, "EOF")
        got += b
    return got == data
def fds():                                            # not counting the listing fd
    return set(p for p in map(int, os.listdir("/proc/self/fd"))
               if os.path.lexists("/proc/self/fd/%d" % p))
before = fds()
old = socket.create_connection(peer, timeout=20)
private = sorted(fds() - before - {old.fileno()})
print("private", private, [os.readlink("/proc/self/fd/%d" % p) for p in private], flush=True)
print("old echo", echo(old, 100000), flush=True)
null = os.open("/dev/null", os.O_RDWR)
for i, p in enumerate(private):
    os.dup2(null, p, inheritable=(i % 2 == 0))     # dup2, then dup3
    ok = os.readlink("/proc/self/fd/%d" % p) == "/dev/null"
    s = socket.create_connection(peer, timeout=20)
    print("dup2", p, ok, echo(s, 50000), echo(old, 1000), flush=True)
    s.close()
print("dup2 done", flush=True)
cmd.readline()                                       # the daemon restarts
try:
    for _ in range(3):
        old.sendall(b"x" * 1000); old.recv(1000)
    print("old after restart: no error", flush=True)
except OSError as e:
    print("old after restart", errno.errorcode.get(e.errno, e.errno), flush=True)
for t in range(200):                                 # up to the attach bound
    try:
        s = socket.create_connection(peer, timeout=20)
        break
    except OSError as e:
        last = e
        cmd.readline()                               # the test says try again
else:
    print("new after restart failed", last, flush=True); sys.exit(1)
print("new after restart", echo(s, 100000), flush=True)
' "$PEER_IP" $PORT "$tmp/cmd"
wait_line "$tmp/app.out" "dup2 done" 60 || fail "the dup2 part did not finish"
cat "$tmp/app.out"
grep -q "old echo True" "$tmp/app.out" || fail "first echo"
n=$(grep -c "^dup2 [0-9]* True True True$" "$tmp/app.out" || true)
m=$(grep -c "^dup2 [0-9]" "$tmp/app.out" || true)
[ "$m" -ge 3 ] && [ "$n" = "$m" ] || fail "dup2 onto private fds: $n of $m passed"
echo "dup2: $n private fds replaced, both connections kept echoing"

"$CLI" down >/dev/null 2>&1 || fail "isostack down"
stack_up
start_peer
echo go >&9
wait_line "$tmp/app.out" "old after restart" 30 || fail "old socket did not answer"
for i in $(seq 50); do
	grep -q "new after restart" "$tmp/app.out" && break
	echo again >&9
	sleep 0.2      # pacing retries (rate-limited in the shim), not synchronisation
done
wait_line "$tmp/app.out" "new after restart" 30 || fail "no new connection after restart"
tail -2 "$tmp/app.out"
# The old connection died with its daemon: ECONNRESET or EPIPE, as
# docs/sockets.md says, not a send that succeeds into nowhere.
grep -Eq "^old after restart (ECONNRESET|EPIPE)$" "$tmp/app.out" ||
	fail "old connection after the restart: $(grep "old after restart" "$tmp/app.out")"
grep -q "new after restart True" "$tmp/app.out" || fail "new connection after restart"
echo "PASS: private fds survive dup2; after a restart new sockets re-attach and work"
