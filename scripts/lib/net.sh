# isostack up | down | peer: the default topology without a NIC.
#
#   [ns PREFIX-stack]                               [ns PREFIX-peer]
#   isostackd (core 1) --DPDK vdev-- PREFIXs0 <==veth==> PREFIXp0 198.18.0.2/24
#   198.18.0.1/24 lives in the daemon only: the      2001:2::2/64
#   kernel's end of the veth has no address.         Linux, programs run by
#   (IPv6: 2001:2::1/64 and a link-local address)    `isostack peer` (core 0)
#
# `up` writes everything it creates into a state directory as it goes
# (STATE_DIR/PREFIX/state), so that `down`, and `up` itself when it fails
# half-way, remove exactly that and nothing else. Another area (e.g. `run`)
# finds the namespaces with net_state_load.
#
# Environment (all optional):
#   ISOSTACK_NS_PREFIX   names of namespaces, links and the DPDK file prefix
#                        (default "iso"; tests use one with their pid in it)
#   ISOSTACK_STATE_DIR   where state lives (default /run/isostack)
#   ISOSTACK_DAEMON      the isostackd binary (default $ISOSTACK_BINDIR/isostackd)
#   ISOSTACK_UP_HUGEPAGES  2 MiB pages `up` wants free (default 256); if it
#                        cannot get them it runs the daemon with --no-huge
#   ISOSTACK_NOHUGE_MB   EAL memory with --no-huge (default 512)
#   ISOSTACK_STACK_CORE / ISOSTACK_PEER_CORE   cores (default 1 / 0)
#   ISOSTACK_EAL_ARGS    extra EAL arguments for the daemon

NET_ADDR=198.18.0.1
NET_PEER_ADDR=198.18.0.2
NET_PLEN=24
# IPv6, from the benchmarking range 2001:2::/48 (always /64: lwIP's only
# prefix length for a configured address).
NET_ADDR6=2001:2::1
NET_PEER_ADDR6=2001:2::2

# Names for the instance selected by ISOSTACK_NS_PREFIX. Interface names
# must fit IFNAMSIZ (15 characters), hence the 13-character limit.
net_names() {
	NET_PREFIX=${ISOSTACK_NS_PREFIX:-iso}
	case $NET_PREFIX in
	*[!A-Za-z0-9_-]*|"")
		die "ISOSTACK_NS_PREFIX='$NET_PREFIX': use letters, digits, '-' and '_' only" ;;
	esac
	[ ${#NET_PREFIX} -le 13 ] ||
		die "ISOSTACK_NS_PREFIX='$NET_PREFIX' is longer than 13 characters (interface names are limited to 15)"
	NET_NS_STACK=$NET_PREFIX-stack
	NET_NS_PEER=$NET_PREFIX-peer
	NET_IF_STACK=${NET_PREFIX}s0
	NET_IF_PEER=${NET_PREFIX}p0
	NET_STATE=${ISOSTACK_STATE_DIR:-/run/isostack}/$NET_PREFIX
	NET_STACK_CORE=${ISOSTACK_STACK_CORE:-1}
	NET_PEER_CORE=${ISOSTACK_PEER_CORE:-0}
}

# Append KEY=VALUE to the state file (shell-quoted; later lines win).
net_record() {
	printf '%s=%q\n' "$1" "$2" >>"$NET_STATE/state"
}

# Load the state of a running instance into S_* variables. Returns 1 when
# the instance is not up. Usable by other areas after net_names.
net_state_load() {
	local line key val
	S_NS_STACK= S_NS_PEER= S_IF_STACK= S_IF_PEER= S_DAEMON_PID= S_DAEMON_START=
	S_DAEMON_LOG= S_CONTROL= S_FILE_PREFIX= S_PMD= S_MEM= S_HUGE_ADDED=
	S_HUGE_DIR= S_STACK_MAC= S_ADDR= S_PEER_ADDR= S_MODE= S_RUNTIME_DIR= S_MTU=
	S_PEER_RPS= S_ADDR6= S_PEER_ADDR6=
	[ -r "$NET_STATE/state" ] || return 1
	while IFS= read -r line; do
		key=${line%%=*}
		case $key in
		*[!A-Z0-9_]*|"") continue ;;   # only our own keys, never code
		esac
		eval "val=${line#*=}"
		printf -v "S_$key" '%s' "$val"
	done <"$NET_STATE/state"
	return 0
}

# Process start time (clock ticks after boot) of PID, to tell our daemon
# from a later process that reused its pid.
net_pid_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }              # fields after "(comm) "
	# shellcheck disable=SC2086
	set -- $stat                   # $1 is field 3 (state)
	[ "$1" != Z ] || return 1      # a zombie has already stopped
	echo "${20}"                   # field 22: starttime
}

net_daemon_alive() {
	local start
	[ -n "$S_DAEMON_PID" ] || return 1
	start=$(net_pid_start "$S_DAEMON_PID") || return 1
	[ "$start" = "$S_DAEMON_START" ]
}

# Stop the daemon of the loaded state: SIGTERM, up to ISOSTACK_DOWN_TIMEOUT
# seconds for it to exit (it releases its queues and XDP socket), then
# SIGKILL.
net_stop_daemon() {
	local deadline

	net_daemon_alive || return 0
	kill -TERM "$S_DAEMON_PID" 2>/dev/null || return 0
	deadline=$((SECONDS + ${ISOSTACK_DOWN_TIMEOUT:-10}))
	while net_daemon_alive && [ $SECONDS -lt $deadline ]; do
		sleep 0.1
	done
	if net_daemon_alive; then
		warn "isostackd (pid $S_DAEMON_PID) ignored SIGTERM for ${ISOSTACK_DOWN_TIMEOUT:-10}s; killing it"
		kill -KILL "$S_DAEMON_PID" 2>/dev/null || true
		while net_daemon_alive; do sleep 0.1; done
		echo "killed isostackd (pid $S_DAEMON_PID)"
	else
		echo "stopped isostackd (pid $S_DAEMON_PID)"
	fi
}

# Remove everything the state file lists, newest first in spirit: the
# daemon, then the namespaces (which takes the veth pair with them), then
# hugepage memory, then the state itself. Safe to run on partial state.
net_teardown() {
	local nr now

	net_state_load || return 0
	net_stop_daemon
	if [ -n "$S_NS_STACK" ] && ip netns del "$S_NS_STACK" 2>/dev/null; then
		echo "removed namespace $S_NS_STACK (with veth $S_IF_STACK)"
	fi
	if [ -n "$S_NS_PEER" ] && ip netns del "$S_NS_PEER" 2>/dev/null; then
		echo "removed namespace $S_NS_PEER (with veth $S_IF_PEER)"
	fi
	if [ -n "$S_HUGE_DIR" ] && umount "$S_HUGE_DIR" 2>/dev/null; then
		echo "unmounted hugetlbfs $S_HUGE_DIR"
	fi
	if [ "${S_HUGE_ADDED:-0}" -gt 0 ]; then
		nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
		now=$(cat "$nr")
		now=$((now > S_HUGE_ADDED ? now - S_HUGE_ADDED : 0))
		if echo "$now" >"$nr" 2>/dev/null; then
			echo "released the $S_HUGE_ADDED hugepages up reserved"
		fi
	fi
	if [ -n "$S_RUNTIME_DIR" ] && [ -d "$S_RUNTIME_DIR" ]; then
		rm -rf -- "$S_RUNTIME_DIR" && echo "removed DPDK runtime dir $S_RUNTIME_DIR"
	fi
	rm -rf -- "$NET_STATE"
}

# Make sure ISOSTACK_UP_HUGEPAGES 2 MiB pages are free, raising
# nr_hugepages by what is missing. Sets NET_MEM to huge or nohuge and
# records what it changed.
net_hugepages() {
	local dir=/sys/kernel/mm/hugepages/hugepages-2048kB
	local need=${ISOSTACK_UP_HUGEPAGES:-256} nr free want got

	NET_MEM=nohuge
	[ "$need" -gt 0 ] && [ -w "$dir/nr_hugepages" ] || return 0
	nr=$(cat "$dir/nr_hugepages")
	free=$(cat "$dir/free_hugepages")
	if [ "$free" -lt "$need" ]; then
		want=$((nr + need - free))
		echo "$want" >"$dir/nr_hugepages" 2>/dev/null || true
		got=$(cat "$dir/nr_hugepages")
		if [ "$got" -gt "$nr" ]; then
			net_record HUGE_ADDED $((got - nr))
		fi
		free=$(cat "$dir/free_hugepages")
		if [ "$free" -lt "$need" ]; then
			echo "$nr" >"$dir/nr_hugepages" 2>/dev/null || true
			net_record HUGE_ADDED 0
			return 0
		fi
	fi
	# A private hugetlbfs mount: no dependence on /dev/hugepages, and our
	# page files cannot mix with anyone else's.
	mkdir -p "$NET_STATE/huge"
	mount -t hugetlbfs -o pagesize=2M nodev "$NET_STATE/huge" || return 0
	net_record HUGE_DIR "$NET_STATE/huge"
	NET_MEM=huge
}

# AF_XDP sockets exist in this kernel (address family 44)?
net_have_af_xdp() {
	python3 -c 'import socket; socket.socket(44, socket.SOCK_RAW).close()' 2>/dev/null
}

# Start isostackd in the stack namespace with the vdev for PMD ($1), and
# wait until it answers a ping from the peer. Returns 1 when it exited or
# did not answer within the timeout.
net_start_daemon() {
	local pmd=$1 vdev pid start deadline
	local -a eal

	case $pmd in
	af_xdp)    vdev="net_af_xdp0,iface=$NET_IF_STACK,start_queue=0,queue_count=1" ;;
	af_packet) vdev="net_af_packet0,iface=$NET_IF_STACK,qpairs=1"
		# Its ring frames are 2 KB by default: one jumbo frame each, no
		# larger than the daemon's mbufs (MTU + 26 rounded up to 1 KB;
		# a frame also holds 32 bytes of header), four to a block.
		if [ "${NET_MTU:-1500}" -gt 1500 ]; then
			local fs=$(( (NET_MTU + 26 + 1023) / 1024 * 1024 ))
			vdev="$vdev,framesz=$fs,blocksz=$((fs * 4))"
		fi ;;
	*)         die "unknown --pmd '$pmd' (af_xdp or af_packet)" ;;
	esac
	eal=(--file-prefix "$NET_PREFIX")
	if [ "$NET_MEM" = huge ]; then
		eal+=(--huge-dir "$NET_STATE/huge")
	else
		eal+=(--no-huge -m "${ISOSTACK_NOHUGE_MB:-512}")
	fi
	# shellcheck disable=SC2206
	eal+=(${ISOSTACK_EAL_ARGS:-})

	NET_CMD=("$NET_DAEMON")
	[ -r "$ISOSTACK_CONF" ] && NET_CMD+=(--config "$ISOSTACK_CONF")
	NET_CMD+=(--lcore "$NET_STACK_CORE"
		--port "vdev=$vdev ip=$NET_ADDR/$NET_PLEN ip6=$NET_ADDR6/64"
		--control "$NET_STATE/control.sock"
		"${NET_UP_ARGS[@]}" -- "${eal[@]}")

	net_record PMD "$pmd"
	net_record DAEMON_LOG "$NET_STATE/isostackd.log"
	net_record CONTROL "$NET_STATE/control.sock"
	net_record RUNTIME_DIR "/var/run/dpdk/$NET_PREFIX"
	printf '%q ' "${NET_CMD[@]}" >"$NET_STATE/cmdline"
	echo >>"$NET_STATE/cmdline"
	# ip netns exec and taskset both exec, so $! is the daemon itself.
	ip netns exec "$NET_NS_STACK" taskset -c "$NET_STACK_CORE" "${NET_CMD[@]}" \
		</dev/null >>"$NET_STATE/isostackd.log" 2>&1 &
	pid=$!
	start=$(net_pid_start "$pid") || start=gone
	net_record DAEMON_PID "$pid"
	net_record DAEMON_START "$start"
	net_state_load

	# Bounded wait: each ping waits at most one second for its reply.
	deadline=$((SECONDS + NET_TIMEOUT))
	while [ $SECONDS -lt $deadline ]; do
		net_daemon_alive || return 1
		if ip netns exec "$NET_NS_PEER" ping -c 1 -W 1 -q "$NET_ADDR" >/dev/null 2>&1; then
			return 0
		fi
	done
	return 1
}

net_fail() {
	echo "isostack: error: $1" >&2
	if [ -s "$NET_STATE/isostackd.log" ]; then
		echo "isostack: command: $(cat "$NET_STATE/cmdline")" >&2
		echo "isostack: last lines of the daemon's log ($NET_STATE/isostackd.log):" >&2
		tail -n 25 "$NET_STATE/isostackd.log" | sed 's/^/    /' >&2
	fi
	echo "isostack: cleaning up what up made:" >&2
	net_teardown >&2
}

summary_up() { echo "start isostackd on a veth between two namespaces"; }
help_up() {
	cat <<EOF
usage: isostack up [--pmd auto|af_xdp|af_packet] [--mode busy|adaptive]
                   [--idle-us N] [--mbufs N] [--mtu N] [--set KEY=VALUE]... [--no-echo]
                   [--timeout SEC] [--no-daemon] [--peer-rps CPUS|off]
                   [-- MORE ISOSTACKD OPTIONS]

Builds the default topology without a NIC: namespaces $(ISOSTACK_NS_PREFIX=${ISOSTACK_NS_PREFIX:-iso} net_names; echo "$NET_NS_STACK and $NET_NS_PEER")
joined by a veth pair. isostackd drives its end through DPDK's net_af_xdp
vdev (net_af_packet when AF_XDP is unavailable or fails) with address
$NET_ADDR/$NET_PLEN and $NET_ADDR6/64, pinned to core ${ISOSTACK_STACK_CORE:-1}; that end has no
kernel address, so only the daemon answers. The peer end is
$NET_PEER_ADDR/$NET_PLEN and $NET_PEER_ADDR6/64.

--mtu N (default 1500) sets the MTU of both veth ends and of the daemon's
port (its mbufs hold a whole frame; lwIP announces an MSS of N-40, at most
8960). If af_xdp cannot carry that MTU (DPDK 22.11's frames are 4 KB), --pmd auto
says so and falls back to af_packet.

Hugepages: up wants ${ISOSTACK_UP_HUGEPAGES:-256} free 2 MiB pages, raising nr_hugepages if
needed (down gives back what it added); otherwise it runs with --no-huge.
--set passes a [daemon] key of isostackd.conf (e.g. app_sockets=255,
rx_ring=1m, stack_memory=2g). The diagnostic echo (port 7) and discard (port 9) services are on unless
--no-echo. up returns once the daemon answers a ping from the peer (at
most --timeout seconds, default 30); if it does not, up prints the
daemon's log and removes everything it made. --no-daemon builds the
topology (and hugepages) only, for a benchmark that runs its own DPDK
program on the stack end (state: \$ISOSTACK_STATE_DIR/PREFIX/state).

Environment: ISOSTACK_NS_PREFIX (names; default iso), ISOSTACK_STATE_DIR
(default /run/isostack), ISOSTACK_DAEMON (binary), ISOSTACK_EAL_ARGS,
ISOSTACK_UP_HUGEPAGES, ISOSTACK_NOHUGE_MB, ISOSTACK_STACK_CORE,
ISOSTACK_PEER_CORE, ISOSTACK_PEER_RPS (the default of --peer-rps: what
benchmarks that call up pass on).

  --pmd P          af_xdp, af_packet, or auto (default: af_xdp, falling
                   back to af_packet)
  --mode M         isostackd's loop: busy (polling) or adaptive (sleeps
                   when idle)
  --idle-us N      adaptive: idle time before it sleeps (isostackd: 1000)
  --mbufs N        mbufs in the port's mempool (isostackd: 16383)
  --peer-rps CPUS  the CPUs (a list: 0,2-3) where the peer's kernel
                   receives what the daemon sends (RPS on its veth);
                   default every CPU but the stack core, 'off' for the
                   kernel's default (it then runs on the stack core, in
                   the daemon's transmit calls)
  -- OPTIONS       passed to isostackd as they are (isostackd --help)

examples:
  sudo isostack up
  sudo isostack up --mode adaptive --set stack_memory=2g --set tx_ring=16k
  sudo ISOSTACK_NS_PREFIX=iso2 isostack up --mtu 9000 --pmd af_packet
EOF
}

cmd_up() {
	local pmd=auto echo=1 mac daemon=1
	NET_TIMEOUT=30
	NET_MTU=1500
	NET_PEER_RPS=${ISOSTACK_PEER_RPS:-}
	NET_UP_ARGS=()

	while [ $# -gt 0 ]; do
		case $1 in      # the options that take a value
		--pmd|--mode|--idle-us|--mbufs|--mtu|--set|--timeout|--peer-rps)
			   need_value up "$@" ;;
		esac
		case $1 in
		--pmd)     pmd=$2; shift
			   case $pmd in
			   auto|af_xdp|af_packet) ;;
			   *) usage_error up "--pmd '$pmd': auto, af_xdp or af_packet" ;;
			   esac ;;
		--mode)    NET_UP_ARGS+=(--mode "$2"); shift ;;
		--idle-us) NET_UP_ARGS+=(--idle-us "$2"); shift ;;
		--mbufs)   NET_UP_ARGS+=(--mbufs "$2"); shift ;;
		--mtu)     NET_MTU=$2; shift
			   case $NET_MTU in
			   *[!0-9]*) usage_error up "--mtu '$NET_MTU': a number of bytes" ;;
			   esac
			   [ "$NET_MTU" -ge 576 ] && [ "$NET_MTU" -le 9216 ] ||
				usage_error up "--mtu $NET_MTU: from 576 to 9216" ;;
		--set)     NET_UP_ARGS+=(--set "$2"); shift ;;
		--peer-rps) NET_PEER_RPS=$2; shift
			   case $NET_PEER_RPS in
			   off) ;;
			   *[!0-9,-]*|"") usage_error up "--peer-rps '$NET_PEER_RPS': a CPU list (0,2-3) or off" ;;
			   esac ;;
		--no-echo) echo=0 ;;
		--no-daemon) daemon=0 ;;
		--timeout) NET_TIMEOUT=$2; shift ;;
		--)        shift; NET_UP_ARGS+=("$@"); break ;;
		-*)        usage_error up "unknown option '$1'" ;;
		*)         usage_error up "unexpected argument '$1'" ;;
		esac
		shift
	done
	[ $echo = 1 ] && NET_UP_ARGS+=(--echo "$NET_ADDR")
	[ "$NET_MTU" = 1500 ] || NET_UP_ARGS+=(--set "mtu=$NET_MTU")

	need_root up
	net_names
	NET_DAEMON=${ISOSTACK_DAEMON:-$ISOSTACK_BINDIR/isostackd}
	[ $daemon = 0 ] || [ -x "$NET_DAEMON" ] ||
		die "no isostackd at $NET_DAEMON: build it first (isostack build), or set ISOSTACK_DAEMON"
	for c in ip taskset ping ethtool; do
		command -v $c >/dev/null || die "up needs '$c' (apt-get install iproute2 util-linux iputils-ping ethtool)"
	done
	if net_state_load; then
		die "instance '$NET_PREFIX' is already up (state in $NET_STATE); run 'isostack down' first"
	fi
	if ip netns list | grep -qE "^($NET_NS_STACK|$NET_NS_PEER)( |\$)"; then
		die "namespace $NET_NS_STACK or $NET_NS_PEER exists but is not ours (no state in $NET_STATE); pick another ISOSTACK_NS_PREFIX"
	fi

	mkdir -p "$NET_STATE"
	: >"$NET_STATE/state"
	net_record ADDR "$NET_ADDR"
	net_record PEER_ADDR "$NET_PEER_ADDR"
	net_record ADDR6 "$NET_ADDR6"
	net_record PEER_ADDR6 "$NET_PEER_ADDR6"
	net_record MTU "$NET_MTU"
	trap 'net_fail "interrupted"; trap - INT TERM; exit 130' INT TERM

	if ! net_build_links; then
		net_fail "could not create namespaces $NET_NS_STACK/$NET_NS_PEER and veth $NET_IF_STACK/$NET_IF_PEER"
		trap - INT TERM
		return 1
	fi
	mac=$(ip netns exec "$NET_NS_STACK" cat "/sys/class/net/$NET_IF_STACK/address")
	net_record STACK_MAC "$mac"

	net_hugepages
	net_record MEM "$NET_MEM"
	if [ "$NET_MEM" = huge ]; then
		echo "memory: ${ISOSTACK_UP_HUGEPAGES:-256} free 2 MiB hugepages, hugetlbfs at $NET_STATE/huge"
	else
		echo "memory: no hugepages available, running with --no-huge -m ${ISOSTACK_NOHUGE_MB:-512}"
	fi

	if [ $daemon = 0 ]; then
		trap - INT TERM
		echo "topology is up without a daemon: $NET_NS_STACK/$NET_IF_STACK ($mac, no address), $NET_NS_PEER/$NET_IF_PEER $NET_PEER_ADDR/$NET_PLEN"
		return 0
	fi
	if [ "$pmd" = auto ]; then
		if net_have_af_xdp; then pmd=af_xdp; else
			echo "AF_XDP sockets are not available in this kernel: using af_packet"
			pmd=af_packet
		fi
		if net_start_daemon $pmd; then
			pmd=done
		elif [ $pmd = af_xdp ] && ! net_daemon_alive; then
			# It exited: most likely the vdev could not open.
			echo "isostackd did not start on net_af_xdp; its log:" >&2
			tail -n 10 "$NET_STATE/isostackd.log" | sed 's/^/    /' >&2
			[ "$NET_MTU" = 1500 ] ||
				echo "(with --mtu $NET_MTU: af_xdp cannot carry frames that large here)" >&2
			echo "retrying with net_af_packet" >&2
			mv "$NET_STATE/isostackd.log" "$NET_STATE/isostackd-af_xdp.log"
			rm -rf "/var/run/dpdk/$NET_PREFIX"
			pmd=af_packet
		else
			pmd=failed
		fi
	fi
	if [ "$pmd" = failed ] || { [ "$pmd" != done ] && ! net_start_daemon "$pmd"; }; then
		if net_daemon_alive; then
			net_fail "isostackd runs (pid $S_DAEMON_PID) but did not answer a ping from the peer within ${NET_TIMEOUT}s"
		else
			net_fail "isostackd exited before answering a ping from the peer"
		fi
		trap - INT TERM
		return 1
	fi
	trap - INT TERM
	net_state_load
	cat <<EOF
isostackd is up: pid $S_DAEMON_PID on core $NET_STACK_CORE, $S_PMD on $NET_IF_STACK ($S_STACK_MAC), $NET_ADDR/$NET_PLEN, $NET_ADDR6/64
peer: namespace $NET_NS_PEER, $NET_IF_PEER $NET_PEER_ADDR/$NET_PLEN, $NET_PEER_ADDR6/64   (isostack peer -- CMD)
peer receives on CPU ${S_PEER_RPS:-of the sender (no RPS)}
log: $S_DAEMON_LOG   state: $NET_STATE
EOF
}

# Namespaces, the veth pair created directly inside them, offloads off.
# Checksum and segmentation offloads are off on both ends: a veth that
# offloads hands the DPDK vdev frames with partial checksums or 64 KB
# super-frames, which no wire would carry.
net_build_links() {
	ip netns add "$NET_NS_STACK" || return 1
	net_record NS_STACK "$NET_NS_STACK"
	ip netns add "$NET_NS_PEER" || return 1
	net_record NS_PEER "$NET_NS_PEER"
	ip link add "$NET_IF_STACK" netns "$NET_NS_STACK" type veth \
		peer name "$NET_IF_PEER" netns "$NET_NS_PEER" || return 1
	net_record IF_STACK "$NET_IF_STACK"
	net_record IF_PEER "$NET_IF_PEER"
	ip netns exec "$NET_NS_STACK" sh -e -c "
		sysctl -qw net.ipv6.conf.$NET_IF_STACK.disable_ipv6=1
		ethtool -K $NET_IF_STACK tx off tso off gso off gro off >/dev/null 2>&1 || true
		ip link set lo up
		ip link set $NET_IF_STACK mtu ${NET_MTU:-1500}
		ip link set $NET_IF_STACK up" || return 1
	ip netns exec "$NET_NS_PEER" sh -e -c "
		sysctl -qw net.ipv6.conf.$NET_IF_PEER.router_solicitations=0
		sysctl -qw net.ipv6.conf.$NET_IF_PEER.accept_dad=0
		ethtool -K $NET_IF_PEER tx off tso off gso off gro off >/dev/null 2>&1 || true
		ip link set lo up
		ip link set $NET_IF_PEER mtu ${NET_MTU:-1500}
		ip addr add $NET_PEER_ADDR/$NET_PLEN dev $NET_IF_PEER
		ip addr add $NET_PEER_ADDR6/64 dev $NET_IF_PEER nodad
		ip link set $NET_IF_PEER up" || return 1
	net_peer_rps
}

# The CPUs of a CPU list (taskset -c syntax: 0,2-3), one word each.
net_cpus_of() {
	local part c
	for part in ${1//,/ }; do
		for ((c = ${part%-*}; c <= ${part#*-}; c++)); do
			echo $c
		done
	done
}

# CPU list -> hex mask for sysfs; empty if none.
net_cpu_mask() {
	local mask=0 c
	for c in $(net_cpus_of "$1"); do
		mask=$((mask | (1 << c)))
	done
	[ $mask = 0 ] || printf '%x\n' $mask
}

# Every online CPU but the stack core, as a CPU list.
net_cpus_but_stack() {
	local c out=
	for c in $(net_cpus_of "$(cat /sys/devices/system/cpu/online)"); do
		[ "$c" = "$NET_STACK_CORE" ] || out=${out:+$out,}$c
	done
	echo "$out"
}

# Where the peer's kernel receives what the daemon sends (RPS on its veth).
# Without it the peer's whole receive path (its TCP included) runs in
# softirq on the core that sent: the stack core, inside the daemon's
# AF_XDP transmit call, for up to 2 ms at a time, while nobody drains the
# device's RX ring. A real peer is another machine; here it is steered to
# NET_PEER_RPS (a CPU list, default every CPU but the stack core; "off":
# the kernel's default, no RPS).
net_peer_rps() {
	local cpus=${NET_PEER_RPS:-} mask
	[ "$cpus" = off ] && return 0
	[ -n "$cpus" ] || cpus=$(net_cpus_but_stack)
	mask=$(net_cpu_mask "$cpus")
	[ -n "$mask" ] || return 0
	ip netns exec "$NET_NS_PEER" sh -e -c \
		"echo $mask > /sys/class/net/$NET_IF_PEER/queues/rx-0/rps_cpus" || return 1
	net_record PEER_RPS "$cpus"
}

summary_down() { echo "stop isostackd and remove what 'up' made"; }
help_down() {
	cat <<EOF
usage: isostack down

Stops the isostackd that 'isostack up' started (SIGTERM, then SIGKILL after
ISOSTACK_DOWN_TIMEOUT seconds, default 10), deletes its two namespaces (and with
them the veth pair), unmounts its hugetlbfs, gives back the hugepages up
reserved and removes its state. Only what up recorded is touched; running
it again does nothing. Honors ISOSTACK_NS_PREFIX and ISOSTACK_STATE_DIR.
No options.

examples:
  sudo isostack down
  sudo ISOSTACK_NS_PREFIX=iso2 isostack down
EOF
}

cmd_down() {
	case ${1:-} in
	"") ;;
	-*) usage_error down "unknown option '$1'" ;;
	*) usage_error down "unexpected argument '$1'" ;;
	esac
	need_root down
	net_names
	if ! net_state_load; then
		echo "nothing to do: instance '$NET_PREFIX' is not up (no state in $NET_STATE)"
		return 0
	fi
	net_teardown
	echo "instance '$NET_PREFIX' is down"
}

summary_peer() { echo "run a command in the peer namespace (core 0)"; }
help_peer() {
	cat <<EOF
usage: isostack peer [--] [CMD [ARGS...]]

Runs CMD (default: \$SHELL) in the peer namespace of the instance 'isostack
up' made, pinned to core ${ISOSTACK_PEER_CORE:-0}. The daemon is $NET_ADDR there. peer has no
options of its own: everything after -- (or from CMD on) is CMD's.

examples:
  sudo isostack peer -- ping -c 3 $NET_ADDR
  sudo isostack peer -- python3 -m http.server 8080 --bind $NET_PEER_ADDR
  sudo isostack peer
EOF
}

cmd_peer() {
	case ${1:-} in
	--) shift ;;
	-*) usage_error peer "unknown option '$1'" ;;
	esac
	need_root peer
	net_names
	net_state_load ||
		die "instance '$NET_PREFIX' is not up: run 'isostack up' first"
	[ $# -gt 0 ] || set -- "${SHELL:-/bin/sh}"
	exec ip netns exec "$S_NS_PEER" taskset -c "$NET_PEER_CORE" "$@"
}
