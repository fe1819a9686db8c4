# Shared by the zero-copy TX tests (sourced after ../lib.sh).
# Needs isoperf, the shim and isostat from ISOSTACK_BUILD; skips without.
ISOSTACK_BUILD=${ISOSTACK_BUILD:-$here/../../build}
ISOPERF=${ISOPERF:-$ISOSTACK_BUILD/bench/isoperf}
ISOSTAT=${ISOSTAT:-$ISOSTACK_BUILD/daemon/isostat}
export ISOSTACK_SHIM=${ISOSTACK_SHIM:-$ISOSTACK_BUILD/libisosock/libisosock.so}
PEER_ADDR=198.18.0.2
ZC_PORT=5301

[ -x "$ISOPERF" ] || skip "no isoperf at $ISOPERF"
[ -x "$ISOSTAT" ] || skip "no isostat at $ISOSTAT"
[ -f "$ISOSTACK_SHIM" ] || skip "no shim at $ISOSTACK_SHIM"

# One counter of the daemon's STATS reply (isostat -r).
stat_get() {
	"$ISOSTAT" -r -c "$S_CONTROL" | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}

# The stack with a vdev that takes multi-segment TX frames (af_packet; in
# DPDK 22.11 af_xdp takes none), and zero-copy TX on; skip otherwise.
zc_stack_up() {
	stack_up --pmd af_packet --no-echo
	if ! grep -q 'zero-copy TX on' "$S_DAEMON_LOG"; then
		skip "zero-copy TX is not available here: $(grep -m1 'zero-copy TX' "$S_DAEMON_LOG" || echo 'no log line')"
	fi
}

# isoperf server on the Linux peer, stopped on exit; waits (bounded) until
# it listens.
zc_server_start() {
	local pidfile=$STATE_DIR/isoperf-server.pid

	# Through peer() (a test may point it at another namespace); the server
	# writes its own pid (sh execs isoperf in place), because $! here is
	# only a subshell, and killing that would leave isoperf running.
	rm -f "$pidfile"
	peer sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
		"$ISOPERF" server -p "$ZC_PORT" >"$STATE_DIR/isoperf-server.log" 2>&1 &
	ZC_BG=$!
	on_exit zc_server_stop
	for _ in $(seq 100); do
		if [ -s "$pidfile" ] && peer ss -ltnH "( sport = :$ZC_PORT )" | grep -q .; then
			ZC_SERVER=$(cat "$pidfile")
			return 0
		fi
		kill -0 "$ZC_BG" 2>/dev/null || fail "isoperf server exited"
		sleep 0.1
	done
	fail "isoperf server does not listen"
}
zc_server_stop() {
	local pidfile=$STATE_DIR/isoperf-server.pid

	[ -n "${ZC_SERVER:-}" ] || ZC_SERVER=$(cat "$pidfile" 2>/dev/null)
	[ -n "${ZC_SERVER:-}" ] && kill "$ZC_SERVER" 2>/dev/null
	[ -n "${ZC_BG:-}" ] && wait "$ZC_BG" 2>/dev/null
	return 0
}

# A verified send stream through the shim: SECONDS, message size.
zc_stream() {
	"$ISOSTACK_CLI" run --require -- "$ISOPERF" client "$PEER_ADDR" -p "$ZC_PORT" \
		-m send -l "${2:-16384}" -d "$1" --verify
}

# Wait (bounded, 20 s) until every departed application's segment is
# unmapped and no attachment is outstanding.
zc_wait_settled() {
	local i
	for i in $(seq 200); do
		if [ "$(stat_get backend.apps)" = 0 ] && [ "$(stat_get txzc.segs_dying)" = 0 ] &&
		   [ "$(stat_get txzc.refs)" = 0 ]; then
			return 0
		fi
		sleep 0.1
	done
	fail "segments not released: apps $(stat_get backend.apps) dying $(stat_get txzc.segs_dying) refs $(stat_get txzc.refs)"
}

# Stop the daemon with SIGTERM (bounded) and check its log for sanitizer
# reports and a clean stop; `isostack down` (the exit trap) cleans up.
zc_stop_and_check_log() {
	kill -TERM "$S_DAEMON_PID"
	for _ in $(seq 150); do
		daemon_alive || break
		sleep 0.1
	done
	daemon_alive && fail "the daemon ignored SIGTERM"
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$S_DAEMON_LOG"; then
		grep -m5 -A20 -E 'AddressSanitizer|runtime error:' "$S_DAEMON_LOG" >&2
		fail "sanitizer report in the daemon's log"
	fi
	grep -qE '^isostackd\[[0-9]+\]: info: stopped$' "$S_DAEMON_LOG" || fail "the daemon did not stop cleanly"
	if grep -q 'still reference' "$S_DAEMON_LOG"; then
		grep 'still reference' "$S_DAEMON_LOG" >&2
		fail "mbufs still referenced a segment at exit"
	fi
}
