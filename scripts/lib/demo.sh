# isostack demo: the main job, end to end, saying what it does at each step.

summary_demo() { echo "set up, build, and show isostack working end to end"; }
help_demo() {
	cat <<EOF2
usage: isostack demo

The main job, end to end, as root:
  1. setup and build when needed;
  2. 'isostack up': isostackd on core 1 on a veth between two namespaces
     (daemon 198.18.0.1, Linux peer 198.18.0.2), diagnostic echo on;
  3. the peer pings the daemon;
  4. the peer sends 20 MB to the daemon's TCP echo service and checks every
     byte that comes back (SHA-256);
  5. an unmodified program (curl) fetches a file from an HTTP server in the
     peer namespace through libisosock, checked by SHA-256;
  6. isoperf, unmodified, streams 64-byte messages for 2 s on isostack and
     on the kernel stack (its own namespace pair): the two results side by
     side;
  7. isostat: the daemon's statistics;
  8. 'isostack down'.
Takes about a minute. Nothing is left running. No options.

example:
  sudo isostack demo
EOF2
}

DEMO_PREFIX=isodemo

demo_cleanup() {
	[ -n "${DEMO_HTTP_PID:-}" ] && kill "$DEMO_HTTP_PID" 2>/dev/null
	[ -n "${DEMO_TMP:-}" ] && rm -rf "$DEMO_TMP"
	ISOSTACK_NS_PREFIX=$DEMO_PREFIX cmd_down >/dev/null 2>&1 || true
	bench_cleanup
}

demo_step() { printf '\n== %s\n' "$*"; }

cmd_demo() {
	local peer_tool=$ISOSTACK_SRC/test/integration/peer_tool.py
	local isoperf=$ISOSTACK_BUILD/bench/isoperf
	local want got

	case ${1:-} in
	"") ;;
	-*) usage_error demo "unknown option '$1'" ;;
	*) usage_error demo "unexpected argument '$1'" ;;
	esac
	need_source demo
	need_root demo
	cmd_setup
	build_tree "$ISOSTACK_BUILD"
	export ISOSTACK_NS_PREFIX=$DEMO_PREFIX
	trap demo_cleanup EXIT
	DEMO_TMP=$(mktemp -d)

	demo_step "isostack up: isostackd on core 1, a Linux peer in its own namespace"
	cmd_up
	net_names
	net_state_load

	demo_step "the peer pings the daemon (ARP, ICMP answered by lwIP on the stack core)"
	ip netns exec "$S_NS_PEER" ping -c 3 -i 0.2 "$S_ADDR"

	demo_step "the peer sends 20 MB to the daemon's TCP echo service (port 7)"
	ip netns exec "$S_NS_PEER" taskset -c 0 python3 "$peer_tool" --timeout 60 \
		echo-bulk --bytes 20000000

	demo_step "an unmodified curl, through libisosock, fetches 8 MB from a Linux HTTP server"
	head -c 8000000 /dev/urandom > "$DEMO_TMP/blob"
	ip netns exec "$S_NS_PEER" taskset -c 0 python3 -m http.server 8080 \
		--bind "$S_PEER_ADDR" --directory "$DEMO_TMP" >/dev/null 2>&1 &
	DEMO_HTTP_PID=$!
	bench_wait_port "$S_NS_PEER" 8080
	demo_run --require -- curl -sS -o "$DEMO_TMP/got" "http://$S_PEER_ADDR:8080/blob"
	want=$(sha256sum < "$DEMO_TMP/blob" | cut -c1-16)
	got=$(sha256sum < "$DEMO_TMP/got" | cut -c1-16)
	echo "sha256 sent $want, received $got"
	[ "$want" = "$got" ] || die "demo: curl's file differs from the server's"
	kill "$DEMO_HTTP_PID"; wait "$DEMO_HTTP_PID" 2>/dev/null || true
	DEMO_HTTP_PID=

	demo_step "isoperf, unmodified: 64-byte messages for 2 s, isostack then the kernel"
	demo_isoperf "$isoperf"

	demo_step "isostat: the daemon's view"
	"$ISOSTACK_BINDIR/isostat" -c "$S_CONTROL"

	demo_step "isostack down"
	cmd_down
	trap - EXIT
	demo_cleanup
	log "demo: done"
}

# `isostack run` in a subshell (run execs the program).
demo_run() { (cmd_run "$@"); }

demo_isoperf() {
	local isoperf=$1 port=5401

	ip netns exec "$S_NS_PEER" taskset -c 0 "$isoperf" server -B "$S_PEER_ADDR" \
		-p $port --nodelay 2>/dev/null &
	DEMO_HTTP_PID=$!
	bench_wait_port "$S_NS_PEER" $port
	printf 'isostack: '
	demo_run --require -- "$isoperf" client "$S_PEER_ADDR" -p $port -m send \
		-l 64 -d 2 --nodelay --verify | tail -1
	kill "$DEMO_HTTP_PID"; wait "$DEMO_HTTP_PID" 2>/dev/null || true
	DEMO_HTTP_PID=

	bench_kernel_up
	ip netns exec "$BENCH_NS_PEER" taskset -c 0 "$isoperf" server -B "$BENCH_PEER_IP" \
		-p $port --nodelay 2>/dev/null &
	BENCH_SERVER_PID=$!
	bench_wait_port "$BENCH_NS_PEER" $port
	printf 'kernel:   '
	ip netns exec "$BENCH_NS_SUT" taskset -c 0 "$isoperf" client "$BENCH_PEER_IP" \
		-p $port -m send -l 64 -d 2 --nodelay --verify | tail -1
	bench_cleanup
	BENCH_SERVER_PID=
	echo "(columns: mode conns msg_B msgs/s Gbit/s p50_us p99_us app_cpu% sys_cpu%)"
}
