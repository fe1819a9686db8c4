# isostack bench conns: many concurrent idle connections held by the SUT,
# the kernel stack and isostack side by side in one run: connections
# established per second, memory per idle connection, time to tear down.
#
# The SUT runs P isoconns servers (bench/isoconns.c: an epoll echo server,
# one port each); the peer namespace runs P isoconns clients on the kernel,
# client i opening its share of the N connections to server i's port from
# several source addresses of the peer. RLIMIT_NOFILE caps a process at
# 20,000 fds here, hence the processes; the source addresses keep every
# (source, destination, port) well inside the 28,000-odd ephemeral ports.
# Same layout as the other benches: the kernel column is a namespace pair
# of its own (bench_kernel_up), the isostack column is `isostack up` with
# the servers under `isostack run --require`; isostackd polls core 1, every
# server and client runs on core 0.
#
# Stages, each reported by the clients (and checked on the servers):
# established (all connects done), verified (8 bytes echoed on each), held
# (idle; memory snapshot; the servers count what they hold), released (the
# clients close everything; teardown ends when the last server has closed
# its last connection). A stage that falls short is reported with how many
# made it, and the run goes on to the table. scripts/lib/bench_conns.py
# turns the logs and snapshots into DIR/conns-<stack>.json, DIR/conns.json
# and the table; its header says what the memory figure counts.

BC_PORT=5400
BC_PER_PROC=17000     # connections per process: RLIMIT_NOFILE is 20,000 here
BC_QUICK_CONNS=20000

help_bench_conns() {
	cat <<EOF
usage: isostack bench conns [--stack kernel|isostack|both] [--conns N] [--quick]
                            [--procs P] [--sources S] [--inflight K]
                            [--timeout SEC] [--set KEY=VALUE]... [--out DIR]

N concurrent TCP connections (default 100000; --quick $BC_QUICK_CONNS) to the SUT,
once on the kernel stack and once on isostack, one table:
  established/s   N over the time from the first connect to the last
  bytes/conn      memory growth of the machine from before the servers
                  started to all connections held and verified, per
                  connection: kernel slab etc., hugepages (isostackd's heap,
                  the shim's segments), shmem, RSS of the SUT's processes
                  (docs/benchmarks.md says exactly what is counted)
  teardown s      from the clients' first close() to the last server seeing
                  its last connection closed
  failures        connections that did not make it through every stage
The SUT runs P isoconns servers (default: N / $BC_PER_PROC, rounded up), one port
each from $BC_PORT; the peer runs P isoconns clients on the kernel from S source
addresses (default 4), at most K connects in flight per client (default
128). A stage with no progress for SEC seconds (default 30) gives up on
what is left. --set passes a [daemon] key to 'isostack up' (e.g.
app_sockets=20000, tx_ring=4k, rx_ring=4k). isostackd polls core 1; every
server and client runs on core 0.
Writes DIR/conns-<stack>.json, DIR/conns.json (the table and both runs) and
the raw logs and memory snapshots in DIR/conns-logs/<stack>/ (DIR defaults
to ./bench-results). A failing stage on one stack is reported (which stage,
how many connections made it) and the run goes on.

examples:
  sudo isostack bench conns --quick
  sudo isostack bench conns --stack isostack --conns 50000 --set tx_ring=4k --set rx_ring=4k
EOF
}

# bc_wait_line FILE PATTERN PID SECONDS: until FILE has a line matching
# PATTERN (0), PID has exited without it (1) or SECONDS passed (2).
bc_wait_line() {
	local file=$1 pat=$2 pid=$3 deadline=$((SECONDS + $4))

	while [ $SECONDS -lt $deadline ]; do
		grep -q "$pat" "$file" 2>/dev/null && return 0
		if ! bench_prog_alive "$pid"; then
			grep -q "$pat" "$file" 2>/dev/null && return 0
			return 1
		fi
		sleep 0.1
	done
	return 2
}

# bc_snapshot NAME: /proc/meminfo, /proc/slabinfo and the status of the
# daemon, the servers and the clients into BC_LOGS/snap-NAME/.
bc_snapshot() {
	local dir=$BC_LOGS/snap-$1 i

	mkdir -p "$dir"
	cat /proc/meminfo >"$dir/meminfo"
	cat /proc/slabinfo >"$dir/slabinfo" 2>/dev/null || true
	if [ -n "$BC_DAEMON_PID" ]; then
		cat "/proc/$BC_DAEMON_PID/status" >"$dir/status-daemon-$BC_DAEMON_PID" 2>/dev/null || true
	fi
	for i in "${!BC_SERVE_PIDS[@]}"; do
		cat "/proc/${BC_SERVE_PIDS[$i]}/status" >"$dir/status-serve-${BC_SERVE_PIDS[$i]}" 2>/dev/null || true
	done
	for i in "${!BC_CONNECT_PIDS[@]}"; do
		cat "/proc/${BC_CONNECT_PIDS[$i]}/status" >"$dir/status-connect-${BC_CONNECT_PIDS[$i]}" 2>/dev/null || true
	done
	# isostack: the daemon's counters (loop passes and cycles, mem.*).
	if [ ${#BC_ISOSTAT[@]} -gt 0 ]; then
		"${BC_ISOSTAT[@]}" -r >"$dir/isostat" 2>/dev/null || true
	fi
}

# bc_settle: isostack only: until the stack's ring memory stops moving.
# A connection idle for 2 s holds no ring either way (docs/shm.md,
# "Rings that size themselves"): the memory of an *idle* connection is
# what is measured.  From 15 s on (two idle intervals, 4 s, for the rings
# to go, then the 10 s an extent that emptied is kept as a second spare:
# daemon/backend/mem.c), mem.backed unchanged over 3 reads 1 s apart, at
# most 50 s; prints how long it took.
bc_settle() {
	local last="" same=0 t0=$SECONDS cur

	[ ${#BC_ISOSTAT[@]} -gt 0 ] || return 0
	sleep 15
	while [ $((SECONDS - t0)) -lt 50 ]; do
		cur=$("${BC_ISOSTAT[@]}" -r 2>/dev/null | awk '$1 == "mem.backed" { print $2 }')
		if [ -n "$cur" ] && [ "$cur" = "$last" ]; then
			same=$((same + 1))
			[ $same -ge 2 ] && break
		else
			same=0
		fi
		last=$cur
		sleep 1
	done
	log "bench conns: isostack: ring memory settled after $((SECONDS - t0)) s (mem.backed $last)"
}

# bc_add_sources NS IFACE PREFIX: S-1 more addresses PREFIX.10, PREFIX.11,
# ... on the peer's veth end (in a namespace of our own, gone with it);
# sets BC_SOURCES to the peer's address and these, comma-separated.
bc_add_sources() {
	local ns=$1 dev=$2 prefix=$3 j

	for ((j = 0; j < BC_NSOURCES - 1; j++)); do
		ip -n "$ns" addr add "$prefix.$((10 + j))/24" dev "$dev"
		BC_SOURCES+=",$prefix.$((10 + j))"
	done
}

# One stack's run on the current BC_SUT / BC_PEER / BC_SUT_IP.
bc_run() {
	local stack=$1 i n base extra rc drained_before status=0
	local -a drained0=()

	BC_LOGS=$BC_OUT/conns-logs/$stack
	rm -rf -- "$BC_LOGS"
	mkdir -p "$BC_LOGS"
	BC_SERVE_PIDS=()
	BC_CONNECT_PIDS=()
	BP_PIDS=()
	bc_snapshot base

	log "bench conns: $stack: $BC_PROCS servers on $BC_SUT_IP:$BC_PORT.. ($([ "$stack" = isostack ] && echo "under isostack run" || echo kernel))"
	for ((i = 0; i < BC_PROCS; i++)); do
		"${BC_SUT[@]}" "$BC_BIN" serve -B "$BC_SUT_IP" -p $((BC_PORT + i)) \
			</dev/null >"$BC_LOGS/serve-$i.out" 2>&1 &
		BC_SERVE_PIDS+=("$!")
		BP_PIDS+=("$!")
	done
	BC_SERVE_CMD=$(bench_prog_quote "${BC_SUT[@]}" "$BC_BIN" serve -B "$BC_SUT_IP" -p "$BC_PORT")
	for ((i = 0; i < BC_PROCS; i++)); do
		if ! bc_wait_line "$BC_LOGS/serve-$i.out" '^isoconns serve ready' "${BC_SERVE_PIDS[$i]}" 20; then
			warn "bench conns: $stack: server $i did not start: $(tail -1 "$BC_LOGS/serve-$i.out")"
			status=1
		fi
	done

	if [ $status -eq 0 ]; then
		log "bench conns: $stack: $BC_PROCS clients from $BC_SOURCES, $BC_CONNS connections"
		base=$((BC_CONNS / BC_PROCS))
		extra=$((BC_CONNS % BC_PROCS))
		for ((i = 0; i < BC_PROCS; i++)); do
			n=$((base + (i < extra ? 1 : 0)))
			"${BC_PEER[@]}" "$BC_BIN" connect -n "$n" -t "$BC_SUT_IP:$((BC_PORT + i))" \
				-s "$BC_SOURCES" -i "$BC_INFLIGHT" -T "$BC_TIMEOUT" \
				</dev/null >"$BC_LOGS/connect-$i.out" 2>&1 &
			BC_CONNECT_PIDS+=("$!")
			BP_PIDS+=("$!")
		done
		BC_CONNECT_CMD=$(bench_prog_quote "${BC_PEER[@]}" "$BC_BIN" connect -n "$n" \
			-t "$BC_SUT_IP:$BC_PORT" -s "$BC_SOURCES" -i "$BC_INFLIGHT" -T "$BC_TIMEOUT")
		# Each client bounds its own stages (BC_TIMEOUT without progress);
		# this bound is for a client that hangs anyway.
		for ((i = 0; i < BC_PROCS; i++)); do
			rc=0
			bc_wait_line "$BC_LOGS/connect-$i.out" '^isoconns connect holding' \
				"${BC_CONNECT_PIDS[$i]}" $((BC_TIMEOUT * 3 + 60 + BC_CONNS / 100)) || rc=$?
			[ $rc -eq 0 ] || warn "bench conns: $stack: client $i $([ $rc = 1 ] && echo exited || echo 'timed out') before holding: $(tail -1 "$BC_LOGS/connect-$i.out")"
			grep -h '^isoconns connect \(established\|verified\)' "$BC_LOGS/connect-$i.out" |
				sed "s/^/  $stack client $i: /" >&2 || true
		done

		# Held: the servers count what they hold, then the snapshot.
		for ((i = 0; i < BC_PROCS; i++)); do
			drained0[i]=$(grep -c '^isoconns serve drained' "$BC_LOGS/serve-$i.out" || true)
			kill -USR1 "${BC_SERVE_PIDS[$i]}" 2>/dev/null || true
			bc_wait_line "$BC_LOGS/serve-$i.out" '^isoconns serve status' "${BC_SERVE_PIDS[$i]}" 10 ||
				warn "bench conns: $stack: server $i did not report what it holds: $(tail -1 "$BC_LOGS/serve-$i.out")"
		done
		grep -h '^isoconns serve \(status\|error\)' "$BC_LOGS"/serve-*.out | sed "s/^/  $stack server: /" >&2 || true
		bc_settle
		bc_snapshot held
		# The connections idle for BC_IDLE seconds (a measuring interval):
		# what the stack core spends per loop pass with them open.
		sleep "$BC_IDLE"
		bc_snapshot idle

		# Teardown: every client closes; the servers see it.
		for ((i = 0; i < BC_PROCS; i++)); do
			kill -USR1 "${BC_CONNECT_PIDS[$i]}" 2>/dev/null || true
		done
		for ((i = 0; i < BC_PROCS; i++)); do
			bc_wait_line "$BC_LOGS/connect-$i.out" '^isoconns connect closed' "${BC_CONNECT_PIDS[$i]}" 60 ||
				warn "bench conns: $stack: client $i did not close: $(tail -1 "$BC_LOGS/connect-$i.out")"
		done
		for ((i = 0; i < BC_PROCS; i++)); do
			grep -q '^isoconns serve status open=[1-9]' "$BC_LOGS/serve-$i.out" || continue
			drained_before=${drained0[i]}
			for _ in $(seq 600); do
				[ "$(grep -c '^isoconns serve drained' "$BC_LOGS/serve-$i.out" || true)" -gt "$drained_before" ] && break
				bench_prog_alive "${BC_SERVE_PIDS[$i]}" || break
				sleep 0.1
			done
		done
		bc_snapshot closed
		# What the peer still holds (a connection whose close the SUT
		# never saw shows here, with its timers): for the logs.
		"${BC_PEER[@]}" ss -tanoi state fin-wait-1 state fin-wait-2 state last-ack \
			state closing state established >"$BC_LOGS/peer-ss-closed" 2>&1 || true
		# and its TCP counters (aborts: orphans reset for memory, ...)
		"${BC_PEER[@]}" nstat -az >"$BC_LOGS/peer-nstat-closed" 2>&1 || true
	fi
	for i in "${BP_PIDS[@]}"; do
		bench_prog_stop "$i"
	done
	python3 "$BC_PY" stack "$BC_LOGS" "$stack" "$BC_CONNS" "$BC_OUT/conns-$stack.json" \
		procs="$BC_PROCS" sources="$BC_SOURCES" inflight="$BC_INFLIGHT" \
		timeout="$BC_TIMEOUT" up_settings="${BC_SET[*]}" \
		server_command="${BC_SERVE_CMD:-}" client_command="${BC_CONNECT_CMD:-}" ||
		warn "bench conns: $stack: no figures (logs in $BC_LOGS)"
}

bench_conns_kernel() {
	bench_kernel_up
	# Per-namespace limits: a deep accept queue, as a server would set.
	ip netns exec "$BENCH_NS_SUT" sysctl -qw net.core.somaxconn=65535 \
		net.ipv4.tcp_max_syn_backlog=65535
	BC_SOURCES=$BENCH_PEER_IP
	bc_add_sources "$BENCH_NS_PEER" isob-p "${BENCH_PEER_IP%.*}"
	BC_SUT_IP=$BENCH_SUT_IP
	BC_SUT=(ip netns exec "$BENCH_NS_SUT" taskset -c 0)
	BC_PEER=(ip netns exec "$BENCH_NS_PEER" taskset -c 0)
	BC_DAEMON_PID=
	BC_ISOSTAT=()
	bc_run kernel
	bench_cleanup
}

bench_conns_isostack() {
	local prefix=isoc$$

	if [ ! -f "$ISOSTACK_SHIM" ]; then
		warn "bench conns: no shim at $ISOSTACK_SHIM ('isostack build'): isostack column skipped"
		return 0
	fi
	if ! ISOSTACK_NS_PREFIX=$prefix cmd_up "${BC_SET[@]}" >"$BC_OUT/conns-up.log" 2>&1; then
		cat "$BC_OUT/conns-up.log" >&2
		warn "bench conns: isostack up failed: isostack column skipped"
		return 0
	fi
	# up resets the INT/TERM traps it set for itself.
	trap 'exit 130' INT TERM
	BENCH_DOWN=$prefix
	ISOSTACK_NS_PREFIX=$prefix net_names
	ISOSTACK_NS_PREFIX=$prefix net_state_load
	BC_SOURCES=$S_PEER_ADDR
	bc_add_sources "$S_NS_PEER" "$S_IF_PEER" "${S_PEER_ADDR%.*}"
	BC_SUT_IP=$S_ADDR
	BC_SUT=(env ISOSTACK_NS_PREFIX="$prefix" "$ISOSTACK_SELF" run --require --)
	BC_PEER=(ip netns exec "$S_NS_PEER" taskset -c 0)
	# shellcheck disable=SC2153  # S_DAEMON_PID: set by net_state_load
	BC_DAEMON_PID=$S_DAEMON_PID
	BC_ISOSTAT=("$ISOSTACK_BUILD/daemon/isostat" -c "$S_CONTROL")
	[ "$ISOSTACK_MODE" = installed ] && BC_ISOSTAT=("$ISOSTACK_BINDIR/isostat" -c "$S_CONTROL")
	bc_run isostack
	cp -- "$S_DAEMON_LOG" "$BC_OUT/conns-logs/isostack/isostackd.log" 2>/dev/null || true
	ISOSTACK_NS_PREFIX=$prefix cmd_down >/dev/null 2>&1
	# shellcheck disable=SC2034  # read by bench_cleanup (bench.sh)
	BENCH_DOWN=
}

bench_conns() {
	local stack=both quick=0 conns='' out=$PWD/bench-results v

	BC_PROCS=''
	BC_NSOURCES=4
	BC_INFLIGHT=128
	BC_TIMEOUT=30
	BC_IDLE=3
	BC_ISOSTAT=()
	BC_SET=()
	while [ $# -gt 0 ]; do
		case $1 in      # the options that take a value
		--stack|--conns|--procs|--sources|--inflight|--timeout|--set|--out)
			need_value "bench conns" "$@" ;;
		esac
		case $1 in
		-h|--help) help_bench_conns; return 0 ;;
		--stack)    stack=$2; shift ;;
		--conns)    conns=$2; shift ;;
		--quick)    quick=1 ;;
		--procs)    BC_PROCS=$2; shift ;;
		--sources)  BC_NSOURCES=$2; shift ;;
		--inflight) BC_INFLIGHT=$2; shift ;;
		--timeout)  BC_TIMEOUT=$2; shift ;;
		--set)      BC_SET+=(--set "$2"); shift ;;
		--out)      out=$2; shift ;;
		-*) usage_error "bench conns" "unknown option '$1'" ;;
		*) usage_error "bench conns" "unexpected argument '$1'" ;;
		esac
		shift
	done
	case $stack in
	kernel|isostack|both) ;;
	*) usage_error "bench conns" "--stack '$stack': kernel, isostack or both" ;;
	esac
	[ -n "$conns" ] || conns=$([ $quick -eq 1 ] && echo $BC_QUICK_CONNS || echo 100000)
	for v in "$conns" "${BC_PROCS:-1}" "$BC_NSOURCES" "$BC_INFLIGHT" "$BC_TIMEOUT"; do
		case $v in
		*[!0-9]*|""|0)
			usage_error "bench conns" "counts and seconds are whole numbers > 0 (got '$v')" ;;
		esac
	done
	[ "$BC_NSOURCES" -le 50 ] || usage_error "bench conns" "--sources at most 50"
	BC_CONNS=$conns
	[ -n "$BC_PROCS" ] || BC_PROCS=$(((conns + BC_PER_PROC - 1) / BC_PER_PROC))
	[ $((conns / BC_PROCS + 1 + 16)) -le "$(ulimit -Hn)" ] ||
		die "bench conns: $((conns / BC_PROCS + 1)) connections per process exceed RLIMIT_NOFILE ($(ulimit -Hn)): more --procs"
	[ "$BC_PROCS" -le 64 ] || usage_error "bench conns" "--procs at most 64"
	need_root bench
	BC_BIN=${ISOSTACK_ISOCONNS:-$ISOSTACK_BUILD/bench/isoconns}
	[ "$ISOSTACK_MODE" = installed ] && BC_BIN=${ISOSTACK_ISOCONNS:-$ISOSTACK_BINDIR/isoconns}
	[ -x "$BC_BIN" ] || die "bench: $BC_BIN not built: run 'isostack build'"
	BC_PY=$ISOSTACK_LIB/bench_conns.py
	BC_OUT=$(mkdir -p "$out" && cd "$out" && pwd)
	BP_PIDS=()
	trap bench_prog_cleanup EXIT
	trap 'exit 130' INT TERM

	if [ "$stack" != isostack ]; then
		bench_conns_kernel
	fi
	if [ "$stack" != kernel ]; then
		bench_conns_isostack
	fi
	echo
	python3 "$BC_PY" table "$BC_OUT"
	log "bench: results in $BC_OUT (conns.json, conns-<stack>.json, conns-logs/)"
}
