#!/bin/bash
# write(); close(); exit: the bytes still in flight when the process ends
# must reach the peer, followed by a FIN, as with the kernel (which keeps a
# closed socket sending after its process is gone).  The Linux peer does
# not read until the writer has exited, so at exit most of the data sits
# unacknowledged in the writer's TX ring (SO_SNDBUF makes room for all of
# it, on the kernel as under the shim).  The writer is python3 under the
# shim, the only process of its application: its exit is the daemon's
# hang-up.  Then the peer reads: every byte (sha256) and a clean EOF.
PROG_TAG=exc
. "$(dirname "$0")/lib.sh"
need python3 python3

PORT=9300
SIZE=200000
head -c $SIZE /dev/urandom >"$tmp/data"
mkfifo "$tmp/go"
stack_up

# The peer: accepts, waits for the word on the fifo, then reads to EOF and
# reports "sha256 bytes eof" (or the error it got instead of EOF).
bg peer "$CLI" peer -- python3 -c '
import hashlib, socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
l.bind(("0.0.0.0", int(sys.argv[1]))); l.listen(1)
l.settimeout(30)                           # a failure must not hang
print("listening", flush=True)
h, n, end = hashlib.sha256(), 0, "eof"
try:
    c, _ = l.accept()
    c.settimeout(30)
    open(sys.argv[2]).read()               # until the test says go
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b); n += len(b)
except OSError as e:
    end = e.__class__.__name__
print(h.hexdigest(), n, end, flush=True)
' $PORT "$tmp/go"
wait_line "$tmp/peer.out" listening || fail "peer did not listen"

"$CLI" run --require -- python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 262144)
s.sendall(open(sys.argv[3], "rb").read())
s.close()
' "$PEER_IP" $PORT "$tmp/data" || fail "writer"
echo "writer: $SIZE bytes written, closed, exited"
timeout 30 bash -c 'echo go >"$1"' _ "$tmp/go" || true   # the peer may be gone
wait "$LAST_PID" || fail "peer"
read -r got n end < <(tail -1 "$tmp/peer.out")
want=$(sha256sum <"$tmp/data" | cut -d' ' -f1)
echo "peer: $n bytes, then $end"
[ "$end" = eof ] || fail "the connection ended with $end, not EOF"
[ "$n" = "$SIZE" ] && [ "$got" = "$want" ] || fail "peer got $n bytes, sha256 $got (want $want)"
echo "PASS: data written before exit delivered in full, then FIN"
