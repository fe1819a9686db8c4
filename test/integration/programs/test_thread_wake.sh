#!/bin/bash
# Threads of one process asleep in epoll_wait at the same time (issue 13:
# memcached's listener thread spun at a fifth of a core while its worker
# served).  thread_wake_app.py under the shim: the main thread sleeps on
# listener A, a worker echoes A's connections, two twins share one epoll
# set on listener B.  From the peer:
#  1. 20,000 echoes of 64 B, one at a time, over a connection to A, each
#     checked: the main thread, with nothing to do, must stay asleep: its
#     CPU time at most a tenth of the worker's (before the fix it spun
#     in ppoll at about half the worker's);
#  2. 2,000 echoes through B's shared set, each checked, within 60 s
#     (a twin that missed its wake-ups would wait out 100 ms slices).
# Both within 60 s: a lone busy socket's wake-up used to go unseen by
# epoll (shm/app.c, isoshm_app_notes), 100 ms per echo.
PROG_TAG=thw
. "$(dirname "$0")/lib.sh"
need python3 python3
APP=$(cd "$(dirname "$0")" && pwd)/thread_wake_app.py
PA=9331 PB=9332

# cpu PID TID: utime + stime of one thread, in clock ticks
cpu() { awk '{ print $14 + $15 }' "/proc/$1/task/$2/stat"; }

stack_up
bg app "$CLI" run --require -- python3 -u "$APP" $PA $PB
wait_line "$tmp/app.out" "^listening" 30 || fail "app: $(cat "$tmp/app.out")"
read -r _ pid main wtid < <(grep "^listening" "$tmp/app.out")
[ "$pid" = "$main" ] || fail "main thread $main is not the process $pid"

client() {  # client PORT N: N echoes of 64 random bytes, one at a time
	"$CLI" peer -- python3 -c '
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = time.monotonic()
for i in range(int(sys.argv[3])):
    if time.monotonic() - t > 60:
        sys.exit("only %d echoes in 60 s" % i)
    d = os.urandom(64); s.sendall(d); got = b""
    while len(got) < 64:
        b = s.recv(64 - len(got))
        if not b:
            sys.exit("EOF after %d echoes" % i)
        got += b
    if got != d:
        sys.exit("echo %d differs" % i)
print("ok %d echoes %.2f s" % (int(sys.argv[3]), time.monotonic() - t))
' "$STACK_IP" "$1" "$2"
}

m0=$(cpu "$pid" "$main") w0=$(cpu "$pid" "$wtid")
out=$(client $PA 20000) || fail "A: $out"
m1=$(cpu "$pid" "$main") w1=$(cpu "$pid" "$wtid")
echo "A: $out; CPU ticks: main thread $((m1 - m0)), worker $((w1 - w0))"
[ $((w1 - w0)) -gt 0 ] || fail "the worker used no CPU time: not measured"
[ $(((m1 - m0) * 10)) -le $((w1 - w0)) ] ||
	fail "the idle main thread used $((m1 - m0)) ticks against the worker's $((w1 - w0))"

out=$(client $PB 2000) || fail "B: $out"
echo "B: $out"
echo "PASS: an idle thread stays asleep while another serves; a shared epoll set wakes its threads"
