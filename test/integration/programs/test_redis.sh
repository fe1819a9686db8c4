#!/bin/bash
# redis-server (Debian, unmodified) on isostack, driven from the Linux peer:
# redis-benchmark without and with pipelining (-P 16), every request
# answered (no errors, ops/s > 0), then a 1 MiB value SET and read back
# with redis-cli and compared byte for byte.
PROG_TAG=rds
. "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-benchmark redis-tools
need redis-cli redis-tools

stack_up
bg redis "$CLI" run --require -- redis-server --port 6380 --bind 0.0.0.0 --protected-mode no \
	--save '' --appendonly no --dir "$tmp" --loglevel warning
wait_port peer 6380 || fail "redis-server does not accept connections on $STACK_IP:6380"

bench() {  # bench LABEL ARGS...
	local label=$1; shift
	"$CLI" peer -- timeout 120 redis-benchmark -h "$STACK_IP" -p 6380 -q -c 16 -n 50000 \
		-t set,get "$@" >"$tmp/bench-$label.log" 2>&1 || fail "redis-benchmark $label"
	tr '\r' '\n' <"$tmp/bench-$label.log" | grep -E "requests per second" >"$tmp/bench-$label.res" || true
	cat "$tmp/bench-$label.res"
	[ "$(grep -c "requests per second" "$tmp/bench-$label.res")" -eq 2 ] ||
		fail "redis-benchmark $label: expected SET and GET results"
	grep -qi "error" "$tmp/bench-$label.log" && fail "redis-benchmark $label: errors"
	awk '{ for (i = 1; i < NF; i++) if ($(i+1) == "requests") if ($i + 0 <= 0) bad = 1 }
	     END { exit bad }' "$tmp/bench-$label.res" || fail "redis-benchmark $label: 0 ops/s"
}
bench plain
bench pipelined -P 16

# A large value, byte for byte (redis-cli -x reads the value from stdin).
head -c 1048576 /dev/urandom | base64 -w0 >"$tmp/value"
"$CLI" peer -- redis-cli -h "$STACK_IP" -p 6380 -x SET bigkey <"$tmp/value" >"$tmp/set.out" ||
	fail "redis-cli SET"
[ "$(cat "$tmp/set.out")" = OK ] || fail "SET answered '$(cat "$tmp/set.out")'"
"$CLI" peer -- redis-cli -h "$STACK_IP" -p 6380 --no-raw GET bigkey >/dev/null || fail "redis-cli GET"
"$CLI" peer -- redis-cli -h "$STACK_IP" -p 6380 --raw GET bigkey | head -c "$(stat -c %s "$tmp/value")" \
	>"$tmp/got"
cmp "$tmp/value" "$tmp/got" || fail "GET bigkey differs from what was SET"
echo "redis-cli: $(stat -c %s "$tmp/value")-byte value, SET/GET identical"
kill -0 "$LAST_PID" || fail "redis-server died"
echo "PASS: redis on isostack"
