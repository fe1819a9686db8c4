# isostack bench (the default): the paper's figures, section 5, kernel and
# isostack side by side in one run. The loops, the records and the report
# are Python (scripts/lib/bench_paper.py and its _plan/_report modules);
# this file checks the options and the tools, and owns the last-resort
# cleanup: whatever the runner was doing when it died, no daemon, namespace
# or veth of this run stays behind.

# The opening of `isostack bench --help`: the synopsis of every bench, then
# the paper run's part (help_bench prints the rest).
help_bench_paper() {
	cat <<EOF
usage: isostack bench [--quick] [--only LIST] [--seconds N] [--rounds N]
                      [--stack kernel|isostack|both]
                      [--topology wire,wire9000,nokernel] [--out DIR]
       isostack bench shm [--quick] [--out DIR]
       isostack bench programs [--stack kernel|isostack|both] [--quick]
                      [--seconds N] [--only nginx,redis,iperf3] [--out DIR]
       isostack bench conns [--stack kernel|isostack|both] [--conns N]
                      [--quick] [--out DIR] ...  (isostack bench conns --help)
       isostack bench soak [--seconds N] [--interval S] [--settle S] [--out DIR]

Runs the paper's figures with isoperf (bench/isoperf.c), the kernel stack
and isostack in the same run, one record per point:
  fig4   receive, 64 connections, 64 B .. 64 KB messages
  fig5   transmit, 128 connections, 64 B .. 64 KB
  fig6   request/response, 1 connection, 64 B .. 64 KB
  fig7   request/response 1 KB, 1 .. 128 connections
  fig8   transmit 64 B, 1 .. 128 connections: variants core and lock
  fig9   transmit 64 B, 1 .. 128 connections: basic, aggregate, core
  fig10  request/response 1 KB, 1 .. 128 connections: basic, aggregate, core
  v6     IPv6 beside IPv4: send and receive 64 B and 16 KB on 1 and 8
         connections, request/response 64 B and 1 KB on 1 (1 KB on 8),
         each over both families (the kernel pair at 2001:2:1::1/::2, the
         daemon at 2001:2::1, the peer at 2001:2::2), kernel and core
  l2     dpdk-testpmd io forwarding on the same vdev (bench/l2_testpmd.sh)
         beside isostackd's raw packet and TCP segment rates at fig5's 64 B
Every figure also runs the kernel ("native"). Topologies: wire (isostackd
on a veth to a Linux peer namespace; the kernel over a veth pair of its
own), wire9000 (the same at MTU 9000) and nokernel (both ends on isostack,
the client connecting to the daemon's own address; the kernel over
loopback). The full run puts every figure on wire and figs 4-7 also on
wire9000 and nokernel, 5 s per point; --quick runs a few points per figure
on wire and fig6's 1 KB point on nokernel, 1 s each (a few minutes).
isostackd polls core 1; isoperf and the Linux peer run on core 0.

  --only LIST      figures and points, comma-separated: fig4,fig7 (those
                   figures' points), fig4:64x1024 (one point, CONNSxBYTES),
                   v6, l2; a point runs on each chosen topology that runs its
                   figure (on all of them with --topology)
  --seconds N      seconds per point (default 5, --quick 1)
  --rounds N       run the whole plan N times over, group after group in
                   the same order each round (IPv4 and IPv6 alternate for
                   v6); tables show each point's median round and, for
                   v6, the median and range of the rounds' v6/v4 ratios
  --stack S        kernel, isostack or both (default)
  --topology LIST  wire, wire9000, nokernel
  --out DIR        default ./bench-results

Writes DIR/records.json (meta: date, kernel, CPU, cores, git commit, the
command; records: figure, stack, variant, topology, mtu, mode, conns,
msg_bytes, msgs/s, Gbit/s, latency p50/p99/p99.9, CPU% total (stack core
counted busy) and measured, per core, cycles per operation of the
application and of the stack core, the exact commands), a table per figure
on stdout, DIR/report.md (the same tables in markdown), DIR/fig*.png
(bench/plot_figures.py, when it and python3-matplotlib are there) and the
raw outputs in DIR/paper-logs/. Earlier results of this runner in DIR are
removed first. A point that fails is a record with ok=false and its error;
a variant or MTU the daemon does not support gives error "unavailable: ...".
EOF
}

bench_paper_cleanup() {
	trap '' INT TERM
	[ -n "${BENCH_PAPER_PID:-}" ] && kill "$BENCH_PAPER_PID" 2>/dev/null &&
		wait "$BENCH_PAPER_PID" 2>/dev/null
	(ISOSTACK_NS_PREFIX=$BENCH_PREFIX cmd_down >/dev/null 2>&1)
	ip netns del "$BENCH_PREFIX-ks" 2>/dev/null || true
	ip netns del "$BENCH_PREFIX-kp" 2>/dev/null || true
}

# bench_paper QUICK SECONDS STACK OUT ONLY TOPOLOGY ROUNDS WORDS...: WORDS
# is the command line as the user typed it, for the record.
bench_paper() {
	local quick=$1 secs=$2 stack=$3 out=$4 only=$5 topo=$6 rounds=$7 rc=0
	shift 7
	local -a args=(--stack "$stack" --out "$out" --rounds "$rounds"
		       --command "isostack bench $*")

	BENCH_ISOPERF=${ISOSTACK_ISOPERF:-$ISOSTACK_BUILD/bench/isoperf}
	BENCH_ISOSTAT=$ISOSTACK_BINDIR/isostat
	[ "$ISOSTACK_MODE" = installed ] && BENCH_ISOPERF=${ISOSTACK_ISOPERF:-$ISOSTACK_BINDIR/isoperf}
	[ -x "$BENCH_ISOPERF" ] || die "bench: $BENCH_ISOPERF not built: run 'isostack build'"
	if [ "$stack" != kernel ] && [ ! -f "$ISOSTACK_SHIM" ]; then
		die "bench: no shim at $ISOSTACK_SHIM: run 'isostack build' (or --stack kernel)"
	fi
	[ -x "$BENCH_ISOSTAT" ] || warn "bench: no isostat at $BENCH_ISOSTAT: no stack cycles per operation"
	[ "$quick" -eq 1 ] && args+=(--quick)
	[ -n "$secs" ] && args+=(--seconds "$secs")
	[ -n "$only" ] && args+=(--only "$only")
	[ -n "$topo" ] && args+=(--topology "$topo")
	BENCH_PREFIX=isob$$
	export BENCH_ISOPERF BENCH_ISOSTAT BENCH_PREFIX
	mkdir -p "$out"
	trap bench_paper_cleanup EXIT
	# The runner unwinds on INT itself (every group goes down); the shell
	# waits for it and then makes sure.
	trap 'true' INT
	trap 'kill -TERM "$BENCH_PAPER_PID" 2>/dev/null' TERM
	python3 "$ISOSTACK_LIB/bench_paper.py" "${args[@]}" &
	BENCH_PAPER_PID=$!
	while :; do
		wait "$BENCH_PAPER_PID" && rc=0 || rc=$?
		# wait returns > 128 when a trapped signal arrived, not the child.
		bench_prog_alive "$BENCH_PAPER_PID" || break
	done
	BENCH_PAPER_PID=
	return "$rc"
}
