# isostack bench: the commands of the benchmarks and what they share (the
# kernel's namespace pair, cleanup). The paper's figures (the default) are
# in bench_paper.sh, the unmodified programs (bench programs) in
# bench_programs.sh, idle connections (bench conns) in bench_conns.sh, the
# long run of mixed traffic (bench soak) in bench_soak.sh.
#
# bench programs gives each stack a namespace pair joined by a veth: the
# system under test (SUT) runs the program, the peer namespace runs its
# load generator on the kernel, playing the paper's remote machine. On the
# kernel run both ends are kernel; on the isostack run the SUT program goes
# through libisosock to isostackd (`isostack up` + `isostack run`).
#
# With two cores the layout is fixed: isostackd busy-polls core 1; the
# program and the peer share core 0. The kernel run pins the same way
# (program and peer on core 0, core 1 left to the kernel's softirqs),
# so both stacks get the same two cores.

BENCH_NS_SUT=isob-sut-$$
BENCH_NS_PEER=isob-peer-$$
BENCH_SUT_IP=198.18.1.1
BENCH_PEER_IP=198.18.1.2

summary_bench() { echo "run the paper's benchmarks: kernel stack vs isostack (root)"; }
help_bench() {
	help_bench_paper
	echo
	bench_shm_about
	echo
	bench_programs_about
	cat <<EOF

'isostack bench conns' holds N concurrent idle connections (default
100,000) to isoconns servers in the SUT from clients in the peer namespace,
kernel and isostack in one table: connections established per second,
memory per idle connection, teardown time, failures (DIR/conns.json; its
own --help lists its options).

'isostack bench soak' runs mixed, verified traffic for N seconds (default
600) and samples the daemon's RSS, lwIP's pools, the applications' sockets
and ring memory: each must be back where it was once the traffic stops
(DIR/soak.json; its own --help lists its options).
Figures depend on this machine; they are never checked by the tests.

examples:
  sudo isostack bench --quick
  sudo isostack bench --only fig6,fig7 --seconds 2 --out /tmp/paper
  sudo isostack bench programs --only nginx --quick
EOF
}

bench_shm_about() {
	cat <<EOF
'isostack bench shm' runs bench/shm_bench instead: the shared-memory rings,
ring + doorbell and futex wake round trip against DPDK's rte_ring, a pipe,
an eventfd and an AF_UNIX socketpair (docs/shm.md); DIR/shm_bench.json.
EOF
}

help_bench_shm() {
	cat <<EOF
usage: isostack bench shm [--quick] [--out DIR]

EOF
	bench_shm_about
	cat <<EOF

  --quick          fewer messages, one run per figure
  --out DIR        default ./bench-results

example:
  isostack bench shm --quick --out /tmp/shm
EOF
}

bench_cleanup() {
	# A second INT/TERM (pkill reaches every process of the run) must not
	# cut the cleanup short and leave a polling daemon behind; the
	# subshells below inherit the ignore.
	trap '' INT TERM
	[ -n "${BENCH_SERVER_PID:-}" ] && kill "$BENCH_SERVER_PID" 2>/dev/null
	[ -n "${BENCH_DOWN:-}" ] && (ISOSTACK_NS_PREFIX=$BENCH_DOWN cmd_down >/dev/null 2>&1)
	ip netns del "$BENCH_NS_SUT" 2>/dev/null || true
	ip netns del "$BENCH_NS_PEER" 2>/dev/null || true
}

# bench_kernel_up [MTU]: kernel on both ends, the baseline topology; the
# veth at MTU (default 1500) on both ends.
bench_kernel_up() {
	ip netns add "$BENCH_NS_SUT"
	ip netns add "$BENCH_NS_PEER"
	ip link add isob-s netns "$BENCH_NS_SUT" type veth peer name isob-p netns "$BENCH_NS_PEER"
	ip -n "$BENCH_NS_SUT" addr add "$BENCH_SUT_IP/24" dev isob-s
	ip -n "$BENCH_NS_PEER" addr add "$BENCH_PEER_IP/24" dev isob-p
	ip -n "$BENCH_NS_SUT" link set isob-s mtu "${1:-1500}"
	ip -n "$BENCH_NS_PEER" link set isob-p mtu "${1:-1500}"
	ip -n "$BENCH_NS_SUT" link set isob-s up
	ip -n "$BENCH_NS_PEER" link set isob-p up
	ip -n "$BENCH_NS_SUT" link set lo up
	ip -n "$BENCH_NS_PEER" link set lo up
}

# The benchmark's own processes (this shell, isostat snapshots, parsers,
# everything started without a taskset of its own) stay off the stack core:
# the daemon busy-polls it, and a process the scheduler puts there
# preempts it for a time slice (passes of 10-60 ms seen in isostat's
# loop.passes_10ms, frames missed meanwhile).
bench_off_stack_core() {
	local cpus

	net_names
	cpus=$(net_cpus_but_stack)
	[ -n "$cpus" ] && taskset -acp "$cpus" $$ >/dev/null 2>&1 || true
}

cmd_bench() {
	local stack=both secs='' quick=0 out=$PWD/bench-results shm=0 programs=0
	local only='' topo='' words=("$@") name=bench mtus='' m rounds=1

	bench_off_stack_core
	# conns parses its own options (scripts/lib/bench_conns.sh).
	[ "${1:-}" = conns ] && { shift; bench_conns "$@"; return; }
	# soak parses its own options (scripts/lib/bench_soak.sh).
	[ "${1:-}" = soak ] && { shift; bench_soak "$@"; return; }
	while [ $# -gt 0 ]; do
		case $1 in      # the options that take a value
		--stack|--seconds|--out|--only|--topology|--mtu|--rounds) need_value "$name" "$@" ;;
		esac
		case $1 in
		-h|--help) "help_${name// /_}"; return 0 ;;
		--stack) stack=$2; shift ;;
		--quick) quick=1 ;;
		--seconds) secs=$2; shift ;;
		--out) out=$2; shift ;;
		--only) only=$2; shift ;;
		--topology) topo=$2; shift ;;
		--mtu) mtus=$2; shift ;;
		--rounds) rounds=$2; shift ;;
		shm) shm=1; name="bench shm" ;;
		programs) programs=1; name="bench programs" ;;
		-*) usage_error "$name" "unknown option '$1'" ;;
		*) usage_error "$name" "unexpected argument '$1'" ;;
		esac
		shift
	done
	case $stack in
	kernel|isostack|both) ;;
	*) usage_error "$name" "--stack '$stack': kernel, isostack or both" ;;
	esac
	case $secs in
	"") ;;
	*[!0-9]*|0) usage_error "$name" "--seconds takes a whole number of seconds > 0" ;;
	esac
	case $rounds in
	*[!0-9]*|0|"") usage_error "$name" "--rounds takes a whole number > 0" ;;
	esac
	if [ "$rounds" -ne 1 ] && { [ $shm -eq 1 ] || [ $programs -eq 1 ]; }; then
		usage_error "$name" "--rounds is an option of the paper's bench"
	fi
	for m in ${mtus//,/ }; do
		case $m in
		*[!0-9]*) usage_error "$name" "--mtu '$mtus': MTUs in bytes, comma-separated" ;;
		esac
		[ "$m" -ge 576 ] && [ "$m" -le 9216 ] || usage_error "$name" "--mtu $m: from 576 to 9216"
	done
	[ -z "$mtus" ] || [ $programs -eq 1 ] ||
		usage_error "$name" "--mtu is an option of 'bench programs'"
	[ $shm -eq 1 ] && { bench_shm "$out" "$quick"; return; }
	need_root bench
	if [ $programs -eq 1 ]; then
		BP_SECS=${secs:-$([ $quick -eq 1 ] && echo 2 || echo 5)}
		bench_programs "$out" "$stack" "${only:-nginx,redis,memcached,local,iperf3}" "${mtus:-1500}"
		return
	fi
	bench_paper "$quick" "$secs" "$stack" "$out" "$only" "$topo" "$rounds" "${words[@]}"
}

# Waits (bounded) until something listens on PORT in namespace NS (demo.sh).
bench_wait_port() {
	for _ in $(seq 1 100); do
		ip netns exec "$1" ss -ltn "sport = :$2" | grep -q LISTEN && return 0
		sleep 0.05
	done
	die "bench: nothing listens on port $2 in $1"
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

