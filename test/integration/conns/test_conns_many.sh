#!/bin/bash
# One process under the shim holds 19,000 TCP connections at the same
# moment (this machine's hard RLIMIT_NOFILE is 20,000). The SUT is an epoll
# echo server (conns_echo_server.py); a Linux client in the peer namespace
# (conns_client.py) opens the connections with nonblocking connects, at
# most 256 unfinished at a time, sends each a payload of its own and
# checks its echo byte for byte, and only when all are verified closes
# them all. While they are held the application's socket count in isostat
# (app.<id>.sockets) must be 19,000 above what it was; afterwards it, and
# the memory lines (app.<id>.mem_bytes, mem.backed when the daemon prints
# it), must be back to what they were. CONNS_STACK=kernel runs the server
# on Linux instead (docs/testing.md); CONNS_MANY changes the count.
PROG_TAG=cnm
. "$(dirname "$0")/lib.sh"

count=${CONNS_MANY:-19000}
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -gt $((count + 100)) ] ||
	{ echo "SKIP: hard RLIMIT_NOFILE $hard leaves no room for $count connections"; exit 77; }

# The default configuration: rings start at 16 KiB each way and size
# themselves (docs/shm.md), so 19,000 sockets fit the default budget.
CONNS_UP=()
echo_many conns_echo_server.py "$count" 9500
echo "PASS: $count connections open at once, each echo verified, all closed and released"
