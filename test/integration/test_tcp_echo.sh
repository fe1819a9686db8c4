#!/usr/bin/env bash
# A Linux TCP client in the peer namespace sends 100 MB (ECHO_BYTES) to the
# daemon's echo service (port 7) and must get every byte back, compared by
# SHA-256 of both streams; then 1,000 (ECHO_CONNS) short connections each
# echo a small payload and end with the server's FIN, not a reset.
. "$(dirname "$0")/lib.sh"
test_prefix tcp
stack_up

step "bulk echo: ${ECHO_BYTES:=100000000} bytes over one connection"
peer python3 "$PEER_TOOL" --timeout 60 echo-bulk --bytes "$ECHO_BYTES"

step "${ECHO_CONNS:=1000} short connections"
peer python3 "$PEER_TOOL" --timeout 10 echo-short --count "$ECHO_CONNS" --size 100

step "no connection left behind on the peer"
left=$(peer ss -tnH state established "( dport = :7 )" | wc -l)
[ "$left" -eq 0 ] || fail "$left connections to port 7 still established"
daemon_alive || fail "the daemon exited"
echo "PASS"
