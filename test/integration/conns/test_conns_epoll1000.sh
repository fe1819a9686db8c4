#!/bin/bash
# A Python asyncio echo server (plain asyncio.start_server: the selectors
# event loop, epoll) under the shim serves 1,000 concurrent clients from
# the Linux peer (conns_client.py), each echoing a payload of its own,
# checked byte for byte, all held at once, then all closed; the server
# must have held all 1,000 at the same moment, and isostat must show the
# application's sockets and memory back to what they were
# (test_conns_many.sh has the same checks at 19,000 with a plain epoll
# loop). CONNS_STACK=kernel runs the server on Linux instead.
PROG_TAG=cne
. "$(dirname "$0")/lib.sh"

count=${CONNS_EPOLL:-1000}
CONNS_UP=()
echo_many conns_asyncio_server.py "$count" 9501
echo "PASS: asyncio served $count concurrent connections, each echo verified"
