#!/usr/bin/env bash
# Two isostack stacks joined by net_memif (DPDK's shared-memory interface):
# isostackd A (memif server, echo service on 198.18.5.1) and isostackd B
# (memif client, 198.18.5.2, adaptive mode). An unmodified python3 client
# under libisosock, attached to B, sends 20 MB to A's echo service: every
# byte must come back (SHA-256 of both streams). No namespaces or veths: the
# wire is memif's unix socket and shared memory. Both daemons run without
# hugepages (-m 512), A pinned to core 1, B and the client to core 0.
. "$(dirname "$0")/lib.sh"
SHIM=${ISOSTACK_BUILD:-$here/../../build}/libisosock/libisosock.so
[ -f "$SHIM" ] || skip "no libisosock.so at $SHIM"

dir=$(mktemp -d /run/isomemif.XXXXXX)
pid_a= pid_b=
memif_cleanup() {
	local rc=$?
	[ -z "$pid_a" ] || { kill "$pid_a" 2>/dev/null; wait "$pid_a" 2>/dev/null; }
	[ -z "$pid_b" ] || { kill "$pid_b" 2>/dev/null; wait "$pid_b" 2>/dev/null; }
	[ $rc -eq 0 ] || { echo "---- daemon A"; tail -20 "$dir/a.log"; echo "---- daemon B"; tail -20 "$dir/b.log"; }
	rm -rf "$dir" "/var/run/dpdk/memA$$" "/var/run/dpdk/memB$$"
	exit $rc
}
trap memif_cleanup EXIT

# wait_for PATH: the daemon creates its control socket once it serves.
wait_for() {
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	fail "no $1 after 10 s"
}

step "isostackd A: memif server, echo on 198.18.5.1 (core 1)"
taskset -c 1 "$ISOSTACK_DAEMON" --config /dev/null --lcore 1 \
	--port "vdev=net_memif0,role=server,socket=$dir/memif.sock ip=198.18.5.1/24" \
	--echo 198.18.5.1 --control "$dir/a.ctl" \
	-- --file-prefix "memA$$" --no-huge -m 512 >"$dir/a.log" 2>&1 &
pid_a=$!
wait_for "$dir/a.ctl"

step "isostackd B: memif client, 198.18.5.2 (core 0, adaptive)"
taskset -c 0 "$ISOSTACK_DAEMON" --config /dev/null --lcore 0 --mode adaptive \
	--port "vdev=net_memif1,role=client,socket=$dir/memif.sock ip=198.18.5.2/24" \
	--control "$dir/b.ctl" \
	-- --file-prefix "memB$$" --no-huge -m 512 >"$dir/b.log" 2>&1 &
pid_b=$!
wait_for "$dir/b.ctl"

client() {
	LD_PRELOAD=$SHIM ISOSTACK_CONTROL=$dir/b.ctl ISOSTACK_REQUIRE=1 \
		taskset -c 0 python3 "$PEER_TOOL" --addr 198.18.5.1 "$@"
}

step "memif link and ARP: a 1 KB echo succeeds (bounded: 20 tries)"
for i in $(seq 20); do
	client --timeout 2 echo-bulk --bytes 1000 >/dev/null 2>&1 && break
	[ "$i" -lt 20 ] || fail "no echo across memif"
done

step "20 MB from a shimmed python3 on B to A's echo service"
client --timeout 60 echo-bulk --bytes 20000000
kill -0 "$pid_a" && kill -0 "$pid_b" || fail "a daemon exited"
echo "PASS"
