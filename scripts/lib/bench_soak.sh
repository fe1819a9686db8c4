# isostack bench soak: mixed traffic for a long time, every byte of it
# verified, while the daemon's memory and lwIP's pools are sampled; at the
# end each level must be back where it was before the traffic (docs/
# reliability.md, "Soak").
#
# `isostack up` under a prefix of its own; bench_soak.py runs in its peer
# namespace (core 0): it starts the application under the shim
# (bench_soak_app.py: TCP UP/DOWN/ECHO and UDP echo), the traffic
# threads, an isoperf server for the isoperf clients it starts under the
# shim again and again, and samples every --interval seconds. Then this
# file stops the daemon itself (SIGTERM), so that its exit status and
# what a sanitizer wrote at exit (an ASan build: LeakSanitizer runs then)
# are in the verdict, and takes the instance down.

BS_APP_PORT=5600
BS_UDP_PORT=5601
BS_PERF_PORT=5610

help_bench_soak() {
	cat <<EOF
usage: isostack bench soak [--seconds N] [--interval S] [--settle S] [--out DIR]

Brings up an instance (isostack up) and runs mixed traffic against it for
N seconds (default 600), every transfer verified: 8 MiB streams to and from
an application under the shim (SHA-256), 4 MiB streams through isostackd's
echo service, short connections (connect, request, reply, close) to both,
16 idle connections poked every 5 s, UDP datagrams echoed by the
application, and isoperf clients under the shim that start, move verified
bytes for 2 s and exit (every 4th SIGKILLed), over and over.
Every S seconds (default 10) it samples the daemon's VmRSS and, from
isostat -r, lwIP's pools (memp.*.used, memp.heap.used), the port's mbufs
in use, the applications' sockets and mem.backed. After the traffic it
samples each second until every level is back (at most --settle seconds,
default 150: lwIP holds a connection it closed first in TIME_WAIT 120 s),
then stops the daemon (SIGTERM) and checks its exit status and log.
Prints a line per sample and at the end a table: first, min, max, last and
growth of each series, each judged against its tolerance (RSS within 5%,
not judged under ASan; pools and sockets back to their first value;
mbufs within 64; mem.backed at most 4 MiB above: spare extents).
Verdict "flat" when every series is within its tolerance, every transfer
was verified, the daemon exited 0 and its log has no sanitizer report.
Exit status 0 flat, 1 a verification failed, 4 growth, 5 a sanitizer
report or a failed daemon exit.
Writes DIR/soak.json (every sample, the table, each traffic's counts and
first errors), DIR/isostackd.log and DIR/soak-logs/ (DIR defaults to
./bench-results). Environment: ISOSTACK_DAEMON, ISOSTACK_SHIM,
ISOSTACK_ISOPERF, ISOSTACK_ISOSTAT pick the binaries (an ASan build's:
see test/integration/soak/); ASAN_OPTIONS reaches the daemon.

  --seconds N      seconds of traffic (default 600)
  --interval S     seconds between samples (default 10)
  --settle S       at most this long for the levels to come back (150)
  --out DIR        default ./bench-results

examples:
  sudo isostack bench soak
  sudo isostack bench soak --seconds 60 --interval 5 --out /tmp/soak
EOF
}

# The daemon we started: SIGTERM, at most 60 s (an ASan build's leak check
# runs at exit), then SIGKILL; its exit status in BS_DAEMON_RC. Not in a
# subshell: only this shell, up's caller, can wait for it.
bs_stop_daemon() {
	local pid=$1

	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 600); do
		bench_prog_alive "$pid" || break
		sleep 0.1
	done
	if bench_prog_alive "$pid"; then
		warn "bench soak: isostackd ignored SIGTERM for 60 s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	BS_DAEMON_RC=0
	wait "$pid" 2>/dev/null || BS_DAEMON_RC=$?
}

# The sanitizer runtime an instrumented FILE links (preloaded before the
# shim, or ASan refuses to start), or nothing.
bs_sanitizer_runtime() {
	ldd "$1" 2>/dev/null | awk '$1 ~ /^(libasan\.so|libclang_rt\.asan)/ { print $3; exit }'
}

bench_soak() {
	local secs=600 interval=10 settle=150 out=$PWD/bench-results v prefix=isok$$
	local daemon shim isoperf isostat rt asan=0 rc=0 drc lines py

	while [ $# -gt 0 ]; do
		case $1 in      # the options that take a value
		--seconds|--interval|--settle|--out) need_value "bench soak" "$@" ;;
		esac
		case $1 in
		-h|--help) help_bench_soak; return 0 ;;
		--seconds)  secs=$2; shift ;;
		--interval) interval=$2; shift ;;
		--settle)   settle=$2; shift ;;
		--out)      out=$2; shift ;;
		-*) usage_error "bench soak" "unknown option '$1'" ;;
		*) usage_error "bench soak" "unexpected argument '$1'" ;;
		esac
		shift
	done
	for v in "$secs" "$interval" "$settle"; do
		case $v in
		*[!0-9]*|""|0) usage_error "bench soak" "seconds are whole numbers > 0 (got '$v')" ;;
		esac
	done
	need_root bench
	daemon=${ISOSTACK_DAEMON:-$ISOSTACK_BINDIR/isostackd}
	shim=$ISOSTACK_SHIM
	isoperf=${ISOSTACK_ISOPERF:-$ISOSTACK_BUILD/bench/isoperf}
	[ "$ISOSTACK_MODE" = installed ] && isoperf=${ISOSTACK_ISOPERF:-$ISOSTACK_BINDIR/isoperf}
	isostat=${ISOSTACK_ISOSTAT:-$ISOSTACK_BINDIR/isostat}
	for v in "$daemon" "$isoperf" "$isostat"; do
		[ -x "$v" ] || die "bench soak: no $v: run 'isostack build'"
	done
	[ -f "$shim" ] || die "bench soak: no shim at $shim: run 'isostack build'"
	command -v python3 >/dev/null || die "bench soak: needs python3"
	rt=$(bs_sanitizer_runtime "$shim")
	[ -n "$(bs_sanitizer_runtime "$daemon")" ] && asan=1
	out=$(mkdir -p "$out" && cd "$out" && pwd)
	rm -rf -- "$out/soak-logs" "$out/soak.json"
	py=$ISOSTACK_LIB/bench_soak.py

	log "bench soak: $secs s of traffic, a sample every $interval s; daemon $daemon$([ $asan = 1 ] && echo ' (ASan)'), shim $shim"
	# shellcheck disable=SC2034  # read by bench_prog_cleanup (bench_programs.sh)
	BP_PIDS=()
	trap bench_prog_cleanup EXIT
	if ! ISOSTACK_NS_PREFIX=$prefix ISOSTACK_DAEMON=$daemon cmd_up >"$out/soak-up.log" 2>&1; then
		cat "$out/soak-up.log" >&2
		die "bench soak: isostack up failed"
	fi
	# up resets the INT/TERM traps it set for itself.
	trap 'exit 130' INT TERM
	BENCH_DOWN=$prefix
	ISOSTACK_NS_PREFIX=$prefix net_names
	ISOSTACK_NS_PREFIX=$prefix net_state_load
	log "bench soak: isostackd pid $S_DAEMON_PID ($S_PMD), application at $S_ADDR, peer $S_PEER_ADDR"

	ip netns exec "$S_NS_PEER" taskset -c "$NET_PEER_CORE" python3 "$py" run \
		out="$out" seconds="$secs" interval="$interval" settle="$settle" \
		daemon_pid="$S_DAEMON_PID" daemon="$daemon" shim="$shim" \
		preload="${rt:+$rt }$shim" asan="$asan" control="$S_CONTROL" \
		isostat="$isostat" isoperf="$isoperf" stack_ns="$S_NS_STACK" \
		addr="$S_ADDR" peer_addr="$S_PEER_ADDR" port=$BS_APP_PORT \
		udp_port=$BS_UDP_PORT perf_port=$BS_PERF_PORT \
		app="$ISOSTACK_LIB/bench_soak_app.py" \
		command="isostack bench soak --seconds $secs --interval $interval --settle $settle" ||
		rc=$?

	log "bench soak: stopping isostackd (SIGTERM)"
	bs_stop_daemon "$S_DAEMON_PID"
	drc=$BS_DAEMON_RC
	cp -- "$S_DAEMON_LOG" "$out/isostackd.log" 2>/dev/null || true
	ISOSTACK_NS_PREFIX=$prefix cmd_down >/dev/null 2>&1
	# shellcheck disable=SC2034  # read by bench_cleanup (bench.sh)
	BENCH_DOWN=
	lines=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out/isostackd.log" || true)
	if [ "$lines" -gt 0 ]; then
		warn "bench soak: the daemon's log has sanitizer reports:"
		grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out/isostackd.log" | head -60 >&2
	fi
	[ "$drc" = 0 ] || warn "bench soak: isostackd exited with status $drc (log: $out/isostackd.log)"
	if [ $rc -ne 0 ] || [ ! -f "$out/soak.json" ]; then
		die "bench soak: the run failed (status $rc; logs in $out/soak-logs)"
	fi
	rc=0
	python3 "$py" finish "$out" "$drc" "$lines" || rc=$?
	log "bench soak: results in $out (soak.json, isostackd.log, soak-logs/)"
	return $rc
}
