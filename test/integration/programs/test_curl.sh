#!/bin/bash
# curl (unmodified) as a client on isostack: fetches a 4 MiB file from a
# Linux HTTP server in the peer namespace (python3 -m http.server);
# checked by sha256.
PROG_TAG=crl
. "$(dirname "$0")/lib.sh"
need curl curl
need python3 python3

mkdir -p "$tmp/www"
head -c 4194304 /dev/urandom >"$tmp/www/big.bin"
stack_up
bg http "$CLI" peer -- python3 -m http.server 8081 --bind "$PEER_IP" --directory "$tmp/www"
wait_port stack 8081 || fail "python3 http.server does not listen on $PEER_IP:8081"
"$CLI" run --require -- curl -sS --max-time 60 -o "$tmp/got.bin" "http://$PEER_IP:8081/big.bin" ||
	fail "curl under isostack"
want=$(sha256sum <"$tmp/www/big.bin" | cut -d' ' -f1)
got=$(sha256sum <"$tmp/got.bin" | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "sha256 $got, want $want"
echo "PASS: curl on isostack fetched 4 MiB, sha256 $got"
