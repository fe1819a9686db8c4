# isostack run: an unmodified program on isostack, like `onload CMD`.

summary_run() { echo "run a program on isostack through the shim (core 0)"; }
help_run() {
	cat <<EOF2
usage: isostack run [--require] [--] CMD [ARGS...]

Runs CMD in the daemon's namespace (made by 'isostack up') on core 0, with
libisosock.so preloaded: its AF_INET TCP and UDP sockets are served by
isostackd; everything else (files, pipes, AF_UNIX, loopback) stays with
the kernel. Nothing in CMD changes.

  --require   fail socket() with ENETDOWN instead of falling back to the
              kernel when the daemon cannot be reached (ISOSTACK_REQUIRE=1)

As root, CMD runs in the daemon's network namespace. Any other user may
run it if the daemon lets that user attach (root, or a member of its
control_group: docs/daemon.md); CMD then runs in the caller's own network
namespace, which a user cannot leave: its isostack sockets are the same,
its loopback and kernel sockets are that namespace's. A refused user's
socket() fails with EACCES and one line from the shim.

The shim reads ISOSTACK_CONTROL (set here to this instance's control
socket) and logs with the prefix 'isosock[PID]:' on stderr. Options end at
CMD or at --: everything after is CMD's own.

examples:
  sudo isostack run -- curl -s http://198.18.0.2:8080/
  sudo isostack run --require -- iperf3 -c 198.18.0.2
  isostack run -- curl -s http://198.18.0.2:8080/   # a member of control_group
EOF2
}

cmd_run() {
	local require=${ISOSTACK_REQUIRE:-0}
	local env

	while [ $# -gt 0 ]; do
		case $1 in
		--require) require=1 ;;
		--) shift; break ;;
		-*) usage_error run "unknown option '$1'" ;;
		*) break ;;
		esac
		shift
	done
	[ $# -gt 0 ] || usage_error run "which program? (isostack run -- CMD ARGS)"
	net_names
	net_state_load ||
		die "instance '$NET_PREFIX' is not up: run 'isostack up' first"
	[ -f "$ISOSTACK_SHIM" ] ||
		die "run: no shim at $ISOSTACK_SHIM: run 'isostack build'"
	env=(LD_PRELOAD="$ISOSTACK_SHIM${LD_PRELOAD:+:$LD_PRELOAD}"
	     ISOSTACK_CONTROL="$S_CONTROL" ISOSTACK_REQUIRE="$require")
	[ "$(id -u)" -eq 0 ] ||
		exec env "${env[@]}" taskset -c "$NET_PEER_CORE" "$@"
	exec ip netns exec "$S_NS_STACK" env "${env[@]}" \
		taskset -c "$NET_PEER_CORE" "$@"
}
