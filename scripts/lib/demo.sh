# isostack demo: the main job, end to end, saying what it does at each step.

summary_demo() { echo "set up, build, and show isostack working end to end"; }
help_demo() {
	cat <<EOF2
usage: isostack demo

Runs setup (as root) and build when needed, then shows the stack working:
lwIP, compiled from Debian's source with isostack's lock-free options,
moves 1 MB between two TCP endpoints over a virtual link and proves every
byte by checksum and every pool returned.
EOF2
}

cmd_demo() {
	need_source demo
	if [ "$(id -u)" -eq 0 ]; then
		cmd_setup
	else
		warn "demo: not root: skipping setup"
	fi
	build_tree "$ISOSTACK_BUILD"
	log "demo: lwIP (NO_SYS, no locks) moving 1 MB over an in-process link"
	"$ISOSTACK_BUILD/test/unit/tcpip/test_tcpip"
	log "demo: done"
}
