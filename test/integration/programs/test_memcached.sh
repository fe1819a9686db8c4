#!/bin/bash
# memcached (Debian, unmodified, one worker thread) on isostack, driven from
# the Linux peer: values of 4 B to 512 KiB copied in with memccp and read
# back with memccat, compared byte for byte; then memcaslap (libmemcached's
# memaslap) over 16 connections, every get's value verified by it, with no
# failed or missing verification and every operation counted.
PROG_TAG=mcd
. "$(dirname "$0")/lib.sh"
need memcached memcached
need memccp libmemcached-tools
need memccat libmemcached-tools
need memcaslap libmemcached-tools

PORT=11211
SERVERS=$STACK_IP:$PORT

stack_up
bg memcached "$CLI" run --require -- memcached -u root -l 0.0.0.0 -p $PORT -U 0 -t 1 -c 1024 -m 64
wait_port peer $PORT || fail "memcached does not accept connections on $SERVERS"

# Values of several sizes, each under its own key (memccp names the key
# after the file), base64 text: memccat prints the value and a newline.
mkdir "$tmp/v"
# N random bytes make 4 * ceil(N / 3) characters: 4 B to 512 KiB.
for n in 1 75 1050 1125 6750 49152 393216; do
	head -c "$n" /dev/urandom | base64 -w0 >"$tmp/v/key$n"
done
"$CLI" peer -- memccp --servers="$SERVERS" "$tmp"/v/key* >"$tmp/memccp.log" 2>&1 ||
	fail "memccp"
nvals=0
for f in "$tmp"/v/key*; do
	nvals=$((nvals + 1))
	"$CLI" peer -- memccat --servers="$SERVERS" "$(basename "$f")" >"$tmp/got" 2>>"$tmp/memccat.log" ||
		fail "memccat $(basename "$f")"
	# memccat ends the value with a newline of its own.
	{ cat "$f"; echo; } | cmp - "$tmp/got" ||
		fail "$(basename "$f"): read back differs from what was set"
done
echo "memccp/memccat: $nvals values from 4 B to 512 KiB identical"

# A load of a fixed number of operations (not of a time): memcaslap
# checks each get's value against what it set.
"$CLI" peer -- timeout 120 memcaslap -s "$SERVERS" -T 1 -c 16 -X 64 --verify=1 -x 20000 \
	>"$tmp/memcaslap.log" 2>&1 || fail "memcaslap"
grep -E "^(cmd_get|cmd_set|verify_misses|verify_failed|Run time)" "$tmp/memcaslap.log"
count() { awk -v k="$1:" '$1 == k { print $2 }' "$tmp/memcaslap.log"; }
gets=$(count cmd_get) sets=$(count cmd_set)
[ -n "$gets" ] && [ -n "$sets" ] || fail "memcaslap printed no get/set counts"
[ $((gets + sets)) -eq 20000 ] || fail "memcaslap: $gets gets + $sets sets, want 20000 operations"
[ "$gets" -gt 0 ] && [ "$sets" -gt 0 ] || fail "memcaslap: no gets or no sets"
[ "$(count verify_failed)" = 0 ] || fail "memcaslap: $(count verify_failed) values differ"
[ "$(count verify_misses)" = 0 ] || fail "memcaslap: $(count verify_misses) values missing"

kill -0 "$LAST_PID" || fail "memcached died"
echo "PASS: memcached on isostack"
