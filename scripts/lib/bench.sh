# isostack bench: the paper's experiments (section 5) on this machine, the
# kernel stack and isostack side by side in one run.
#
# Each stack gets a namespace pair joined by a veth: the system under test
# (SUT) runs isoperf as the application, the peer namespace runs the isoperf
# server on the kernel, playing the paper's remote machine. On the kernel
# run both ends are kernel; on the isostack run the SUT application goes
# through libisosock to isostackd (`isostack up` + `isostack run`).
#
# With two cores the layout is fixed: isostackd busy-polls core 1; the
# application and the peer share core 0. The kernel run pins the same way
# (application and peer on core 0, core 1 left to the kernel's softirqs),
# so both stacks get the same two cores.

BENCH_NS_SUT=isob-sut-$$
BENCH_NS_PEER=isob-peer-$$
BENCH_SUT_IP=198.18.1.1
BENCH_PEER_IP=198.18.1.2
BENCH_PORT=5301

summary_bench() { echo "run the paper's benchmarks: kernel stack vs isostack (root)"; }
help_bench() {
	cat <<EOF
usage: isostack bench [--stack kernel|isostack|both] [--quick] [--seconds N]
                      [--out DIR]
       isostack bench shm [--quick] [--out DIR]

Runs isoperf (bench/isoperf.c: TTCP-like streaming and request/response,
one thread per connection) for each stack over a veth between two network
namespaces (198.18.1.0/24), and prints one table:
  send  transmit from the SUT, 64 B .. 16 KB messages  (paper Fig. 5)
  recv  receive at the SUT, 64 B .. 16 KB messages     (paper Fig. 4)
  rr    request/response, 1 and 8 connections, 1 KB    (paper Fig. 6-7)
Each run also writes DIR/<stack>-<mode>-<conns>x<bytes>.json and DIR/summary.json
(DIR defaults to ./bench-results). --quick runs fewer points for 1 s each.
'isostack bench shm' runs bench/shm_bench instead: the shared-memory rings,
ring + doorbell and futex wake round trip against DPDK's rte_ring, a pipe,
an eventfd and an AF_UNIX socketpair (docs/shm.md); DIR/shm_bench.json.
Figures depend on this machine; they are never checked by the tests.
EOF
}

bench_cleanup() {
	[ -n "${BENCH_SERVER_PID:-}" ] && kill "$BENCH_SERVER_PID" 2>/dev/null
	[ -n "${BENCH_DOWN:-}" ] && (ISOSTACK_NS_PREFIX=$BENCH_DOWN cmd_down >/dev/null 2>&1)
	ip netns del "$BENCH_NS_SUT" 2>/dev/null || true
	ip netns del "$BENCH_NS_PEER" 2>/dev/null || true
}

# Kernel on both ends: the baseline topology.
bench_kernel_up() {
	ip netns add "$BENCH_NS_SUT"
	ip netns add "$BENCH_NS_PEER"
	ip link add isob-s netns "$BENCH_NS_SUT" type veth peer name isob-p netns "$BENCH_NS_PEER"
	ip -n "$BENCH_NS_SUT" addr add "$BENCH_SUT_IP/24" dev isob-s
	ip -n "$BENCH_NS_PEER" addr add "$BENCH_PEER_IP/24" dev isob-p
	ip -n "$BENCH_NS_SUT" link set isob-s up
	ip -n "$BENCH_NS_PEER" link set isob-p up
	ip -n "$BENCH_NS_SUT" link set lo up
	ip -n "$BENCH_NS_PEER" link set lo up
}

# bench_point STACK MODE CONNS BYTES SECONDS OUTDIR PREFIX...: one isoperf
# client run in the SUT; PREFIX is the command that puts it on that stack.
bench_point() {
	local stack=$1 mode=$2 conns=$3 bytes=$4 secs=$5 out=$6
	shift 6
	local json=$out/$stack-$mode-${conns}x$bytes.json

	if ! "$@" taskset -c 0 "$BENCH_ISOPERF" client "$BENCH_PEER_IP" -p "$BENCH_PORT" \
		-m "$mode" -c "$conns" -l "$bytes" -d "$secs" --nodelay --json "$json" \
		> "$out/last.txt" 2>&1; then
		warn "bench: $stack $mode ${conns}x$bytes failed: $(tail -1 "$out/last.txt")"
		return 0
	fi
	python3 - "$json" "$stack" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:9} {r['mode']:5} {r['conns']:6} {r['msg_bytes']:7} "
      f"{r['msgs_per_s']:12.0f} {r['gbit_per_s']:8.3f} {r['rtt_p50_us']:8.1f} "
      f"{r['rtt_p99_us']:8.1f} {r['app_cpu_pct']:8.1f} {r['sys_cpu_pct']:8.1f}")
PY
}

bench_matrix() {
	local stack=$1 out=$2 secs=$3 quick=$4
	shift 4
	local sizes="64 1024 16384" conns="1 8" m n l

	[ "$quick" -eq 1 ] && sizes="64 16384" && conns="1"
	for m in send recv; do
		for n in $conns; do
			for l in $sizes; do
				bench_point "$stack" "$m" "$n" "$l" "$secs" "$out" "$@"
			done
		done
	done
	for n in 1 8; do
		bench_point "$stack" rr "$n" 1024 "$secs" "$out" "$@"
	done
}

cmd_bench() {
	local stack=both secs=3 quick=0 out=$PWD/bench-results shm=0

	while [ $# -gt 0 ]; do
		case $1 in
		--stack) stack=$2; shift ;;
		--quick) quick=1; secs=1 ;;
		--seconds) secs=$2; shift ;;
		--out) out=$2; shift ;;
		shm) shm=1 ;;
		*) die "bench: unknown option '$1' (see isostack bench --help)" ;;
		esac
		shift
	done
	case $stack in kernel|isostack|both) ;; *) die "bench: --stack kernel|isostack|both" ;; esac
	[ $shm -eq 1 ] && { bench_shm "$out" "$quick"; return; }
	need_root bench
	BENCH_ISOPERF=${ISOSTACK_ISOPERF:-$ISOSTACK_BUILD/bench/isoperf}
	[ "$ISOSTACK_MODE" = installed ] && BENCH_ISOPERF=${ISOSTACK_ISOPERF:-$ISOSTACK_BINDIR/isoperf}
	[ -x "$BENCH_ISOPERF" ] || die "bench: $BENCH_ISOPERF not built: run 'isostack build'"
	mkdir -p "$out"
	trap bench_cleanup EXIT

	printf '%-9s %-5s %6s %7s %12s %8s %8s %8s %8s %8s\n' stack mode conns msg_B \
		msgs/s Gbit/s p50_us p99_us app_cpu% sys_cpu%
	if [ "$stack" != isostack ]; then
		bench_kernel_up
		ip netns exec "$BENCH_NS_PEER" taskset -c 0 "$BENCH_ISOPERF" server \
			-B "$BENCH_PEER_IP" -p "$BENCH_PORT" --nodelay 2>/dev/null &
		BENCH_SERVER_PID=$!
		bench_wait_port "$BENCH_NS_PEER" "$BENCH_PORT"
		bench_matrix kernel "$out" "$secs" "$quick" ip netns exec "$BENCH_NS_SUT"
		kill "$BENCH_SERVER_PID"; wait "$BENCH_SERVER_PID" 2>/dev/null || true
		BENCH_SERVER_PID=
		bench_cleanup
	fi
	if [ "$stack" != kernel ]; then
		if [ ! -f "$ISOSTACK_SHIM" ] || ! declare -F cmd_run >/dev/null; then
			warn "bench: isostack run not available yet (no shim at $ISOSTACK_SHIM): isostack column skipped"
		else
			bench_isostack "$out" "$secs" "$quick"
		fi
	fi
	python3 - "$out" <<'PY'
import glob, json, os, sys
runs = [json.load(open(f)) | {"file": os.path.basename(f)}
        for f in sorted(glob.glob(os.path.join(sys.argv[1], "*-*.json")))]
json.dump({"runs": runs}, open(os.path.join(sys.argv[1], "summary.json"), "w"), indent=1)
PY
	log "bench: results in $out (summary.json)"
}

# Waits (bounded) until something listens on PORT in namespace NS.
bench_wait_port() {
	local i

	for i in $(seq 1 100); do
		ip netns exec "$1" ss -ltn "sport = :$2" | grep -q LISTEN && return 0
		sleep 0.05
	done
	die "bench: nothing listens on port $2 in $1"
}

# The isostack column: `isostack up` (daemon on core 1, peer namespace), the
# isoperf server in the peer namespace, the client through `isostack run`.
bench_isostack() {
	local out=$1 secs=$2 quick=$3
	local prefix=isob$$

	ISOSTACK_NS_PREFIX=$prefix cmd_up >/dev/null 2>"$out/up.log" ||
		{ cat "$out/up.log" >&2; warn "bench: isostack up failed: column skipped"; return 0; }
	BENCH_DOWN=$prefix
	ISOSTACK_NS_PREFIX=$prefix net_names
	ISOSTACK_NS_PREFIX=$prefix net_state_load
	ip netns exec "$S_NS_PEER" taskset -c 0 "$BENCH_ISOPERF" server \
		-B "$S_PEER_ADDR" -p "$BENCH_PORT" --nodelay 2>/dev/null &
	BENCH_SERVER_PID=$!
	bench_wait_port "$S_NS_PEER" "$BENCH_PORT"
	BENCH_PEER_IP=$S_PEER_ADDR
	bench_matrix isostack "$out" "$secs" "$quick" \
		env ISOSTACK_NS_PREFIX="$prefix" "$ISOSTACK_SELF" run --require --
	kill "$BENCH_SERVER_PID"; wait "$BENCH_SERVER_PID" 2>/dev/null || true
	BENCH_SERVER_PID=
	ISOSTACK_NS_PREFIX=$prefix cmd_down >/dev/null 2>&1
	BENCH_DOWN=
}

# The shared-memory transport's benchmark: producer on core 0, consumer
# (the stack's side) on core 1.
bench_shm() {
	local out=$1 quick=$2 bin

	bin=${ISOSTACK_SHM_BENCH:-$ISOSTACK_BUILD/bench/shm_bench}
	[ -x "$bin" ] || die "bench: $bin not built: run 'isostack build'"
	mkdir -p "$out"
	if [ "$quick" -eq 1 ]; then
		"$bin" --json "$out/shm_bench.json" --quick
	else
		"$bin" --json "$out/shm_bench.json"
	fi
	log "bench: results in $out/shm_bench.json"
}
