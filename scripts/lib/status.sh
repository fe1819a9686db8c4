# isostack status: one screen on the instance `isostack up` made.
#
# Up means both: the daemon recorded in the state file is alive (its pid,
# with the start time up recorded, so a reused pid does not count) and its
# control socket answers STATS. What is shown comes from the state file
# (net.sh: port, addresses, MTU, log), two `isostat -r` samples
# --interval apart (the loop's busy share on the stack core, the core's
# interrupt work, the port counters, the mode) and `isostat -a` (the
# applications). Exit status as `systemctl status`: 0 up, 3 not up; 4 when
# it cannot tell (no isostat, or no permission on the control socket).

summary_status() { echo "show whether isostackd is up: port, addresses, core load, applications"; }
help_status() {
	cat <<EOF
usage: isostack status [--interval SEC] [--lines N]

Says whether the instance 'isostack up' made is up (the daemon's process
alive and its control socket answering) and, if so: the daemon's pid and
age, its port (device, interface, MAC), addresses and MTU, the loop's
mode, the stack core with the loop's busy share over --interval seconds
(device I/O and stack work apart), the port's traffic since start, the
applications attached (pid, sockets, command) and where the log is, with
its last --lines lines. Honors ISOSTACK_NS_PREFIX and ISOSTACK_STATE_DIR
(as up does) and ISOSTACK_ISOSTAT (the isostat binary).

Exit status: 0 up, 3 not up (never started, stopped, or the daemon does
not answer), 4 cannot tell (no isostat, or no permission: run as root),
2 a mistake on the command line.

  --interval SEC   how long to measure the busy share (default 1; 0: skip)
  --lines N        lines of the daemon's log to show (default 5; 0: none)

examples:
  sudo isostack status
  sudo ISOSTACK_NS_PREFIX=iso2 isostack status --interval 3 --lines 0
EOF
}

# status_sample VAR: one STATS reply into the associative array VAR
# (STATUS_A or STATUS_B). Returns isostat's status; its stderr in STATUS_ERR.
status_sample() {
	local -n into=$1
	local out k v rc=0

	out=$("$STATUS_ISOSTAT" -r -c "$S_CONTROL" 2>"$STATUS_TMP/err") || rc=$?
	STATUS_ERR=$(cat "$STATUS_TMP/err")
	[ $rc = 0 ] || return $rc
	while read -r k v; do
		[ -n "$k" ] && into[$k]=$v
	done <<<"$out"
	return 0
}

# status_delta KEY: how much KEY grew from STATUS_A to STATUS_B.
status_delta() {
	echo $(( ${STATUS_B[$1]:-0} - ${STATUS_A[$1]:-0} ))
}

# status_pct PART WHOLE: PART as a percentage of WHOLE, one decimal.
status_pct() {
	awk -v p="$1" -v w="$2" 'BEGIN { printf "%.1f%%", (w > 0 ? 100 * p / w : 0) }'
}

# status_age SECONDS: "2 h 5 min", "3 min 12 s", "40 s".
status_age() {
	local s=$1
	if [ "$s" -ge 86400 ]; then echo "$((s / 86400)) d $((s % 86400 / 3600)) h"
	elif [ "$s" -ge 3600 ]; then echo "$((s / 3600)) h $((s % 3600 / 60)) min"
	elif [ "$s" -ge 60 ]; then echo "$((s / 60)) min $((s % 60)) s"
	else echo "$s s"
	fi
}

# One "label: text" line of the screen; without a label, a continuation.
status_line() {
	if [ -n "$1" ]; then printf '%12s: %s\n' "$1" "$2"; else printf '%14s%s\n' "" "$2"; fi
}

# The instance is not up: why, then exit 3.
status_down() {
	echo "isostack instance '$NET_PREFIX': down"
	status_line why "$1"
	[ -z "${S_DAEMON_LOG:-}" ] || [ ! -f "$S_DAEMON_LOG" ] || status_line log "$S_DAEMON_LOG"
	status_log
	exit 3
}

status_log() {
	[ "$STATUS_LINES" -gt 0 ] && [ -n "${S_DAEMON_LOG:-}" ] && [ -s "$S_DAEMON_LOG" ] || return 0
	tail -n "$STATUS_LINES" "$S_DAEMON_LOG" | sed 's/^/              /'
}

# The loop's and the core's shares between STATUS_A and STATUS_B.
status_core() {
	local busy idle sleep dev all secs kernel core

	busy=$(status_delta loop.busy_cycles) idle=$(status_delta loop.idle_cycles)
	sleep=$(status_delta loop.sleep_cycles) dev=$(status_delta loop.dev_cycles)
	all=$((busy + idle + sleep))
	secs=$(awk -v c="$all" -v hz="${STATUS_B[loop.tsc_hz]:-0}" \
		'BEGIN { printf "%.1f", (hz > 0 ? c / hz : 0) }')
	status_line "stack core" "${STATUS_B[core.cpu]:-?}: loop busy $(status_pct "$busy" "$all") over $secs s (device I/O $(status_pct "$dev" "$all"), stack $(status_pct $((busy - dev)) "$all")), idle polling $(status_pct "$idle" "$all"), asleep $(status_pct "$sleep" "$all")"
	[ -n "${STATUS_B[core.cpu]:-}" ] || return 0
	# Kernel work on the core that is not the daemon's own: the core's
	# system + softirq + irq less the loop thread's system time.
	core=$(( $(status_delta core.user_ms) + $(status_delta core.system_ms) +
		$(status_delta core.softirq_ms) + $(status_delta core.irq_ms) +
		$(status_delta core.idle_ms) + $(status_delta core.steal_ms) ))
	kernel=$(( $(status_delta core.system_ms) + $(status_delta core.softirq_ms) +
		$(status_delta core.irq_ms) - $(status_delta core.thread_system_ms) ))
	[ "$kernel" -ge 0 ] || kernel=0
	status_line "" "the core: idle $(status_pct "$(status_delta core.idle_ms)" "$core"), kernel work not the daemon's $(status_pct "$kernel" "$core") (softirq, irq, others' system time)"
}

# Each port's counters since the daemon started (in the latest sample).
status_ports() {
	local -n s=$1
	local i=0 drops k

	while [ -n "${s[port.$i.rx_pkts]:-}" ]; do
		drops=0
		for k in rx_drop_cksum rx_drop_bad rx_drop_nomem tx_drop_nomem tx_drop_toolong \
			 tx_drop_stuck dev_imissed dev_rx_nombuf; do
			drops=$((drops + ${s[port.$i.$k]:-0}))
		done
		status_line "traffic" "port $i: rx ${s[port.$i.rx_pkts]} packets ${s[port.$i.rx_bytes]} bytes, tx ${s[port.$i.tx_pkts]} packets ${s[port.$i.tx_bytes]} bytes, $drops dropped, $(( ${s[port.$i.dev_ierrors]:-0} + ${s[port.$i.dev_oerrors]:-0} )) errors (since start)"
		i=$((i + 1))
	done
}

status_apps() {
	local -n s=$1
	local out pid socks cmd n=0

	out=$("$STATUS_ISOSTAT" -a -c "$S_CONTROL" 2>/dev/null) || {
		status_line applications "unknown (isostat -a failed)"
		return 0
	}
	n=$(($(wc -l <<<"$out") - 1))
	if [ "$n" -le 0 ]; then
		status_line applications "none attached"
		return 0
	fi
	status_line applications "$n attached, sockets open: ${s[backend.open_sockets]:-?}"
	printf '%14s%8s %8s  %s\n' "" PID SOCKETS COMMAND
	while read -r _ pid socks _ cmd; do
		printf '%14s%8s %8s  %s\n' "" "$pid" "$socks" "$cmd"
	done < <(tail -n +2 <<<"$out")
}

cmd_status() {
	local rc age mode up_s
	STATUS_INTERVAL=1
	STATUS_LINES=5

	while [ $# -gt 0 ]; do
		case $1 in
		--interval|--lines) need_value status "$@" ;;
		esac
		case $1 in
		--interval) STATUS_INTERVAL=$2; shift
			[[ $STATUS_INTERVAL =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
				usage_error status "--interval '$STATUS_INTERVAL': seconds (1, 0.5, 0)" ;;
		--lines) STATUS_LINES=$2; shift
			[[ $STATUS_LINES =~ ^[0-9]+$ ]] ||
				usage_error status "--lines '$STATUS_LINES': a number of lines" ;;
		-*) usage_error status "unknown option '$1'" ;;
		*) usage_error status "unexpected argument '$1'" ;;
		esac
		shift
	done
	net_names
	STATUS_ISOSTAT=${ISOSTACK_ISOSTAT:-$ISOSTACK_BINDIR/isostat}

	net_state_load || status_down "no state in $NET_STATE: 'isostack up' has not run (or 'isostack down' did)"
	[ -n "$S_DAEMON_PID" ] ||
		status_down "the topology is up without a daemon (isostack up --no-daemon); state in $NET_STATE"
	net_daemon_alive ||
		status_down "isostackd (pid $S_DAEMON_PID) has exited; its state is left in $NET_STATE ('isostack down' removes it)"
	if [ ! -x "$STATUS_ISOSTAT" ]; then
		echo "isostack status: cannot tell: no isostat at $STATUS_ISOSTAT (isostack build, or set ISOSTACK_ISOSTAT)" >&2
		exit 4
	fi

	STATUS_TMP=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$STATUS_TMP'" EXIT
	declare -gA STATUS_A=() STATUS_B=()
	rc=0
	status_sample STATUS_A || rc=$?
	if [ $rc != 0 ]; then
		case $STATUS_ERR in
		*"Permission denied"*)
			echo "isostack status: cannot tell: no permission on $S_CONTROL (run it as root)" >&2
			exit 4 ;;
		esac
		status_down "isostackd (pid $S_DAEMON_PID) runs but its control socket does not answer: ${STATUS_ERR#isostat: }"
	fi
	if ! [[ $STATUS_INTERVAL =~ ^0+(\.0*)?$ ]]; then
		sleep "$STATUS_INTERVAL"     # the measuring interval itself
		status_sample STATUS_B ||
			status_down "isostackd (pid $S_DAEMON_PID) stopped answering: ${STATUS_ERR#isostat: }"
	fi

	up_s=$(awk -v st="$S_DAEMON_START" -v hz="$(getconf CLK_TCK)" \
		'{ printf "%d", $1 - st / hz }' /proc/uptime)
	age=$(status_age "$up_s")
	case ${STATUS_A[loop.adaptive]:-} in
	0) mode="busy (polls without sleeping)" ;;
	1) mode="adaptive (sleeps when idle)" ;;
	*) mode="not reported by this daemon" ;;
	esac

	echo "isostack instance '$NET_PREFIX': up"
	status_line daemon "isostackd pid $S_DAEMON_PID, running for $age, control $S_CONTROL"
	status_line "port 0" "$S_PMD on $S_IF_STACK ($S_STACK_MAC) in namespace $S_NS_STACK"
	status_line address "$S_ADDR/$NET_PLEN, MTU ${S_MTU:-1500}"
	status_line peer "$S_PEER_ADDR/$NET_PLEN on $S_IF_PEER in namespace $S_NS_PEER, receives on CPU ${S_PEER_RPS:-of the sender (no RPS)}"
	case $S_MEM in
	huge) mode="$mode; memory on 2 MiB hugepages" ;;
	*) mode="$mode; memory anonymous (--no-huge)" ;;
	esac
	status_line mode "$mode"
	if [ ${#STATUS_B[@]} -gt 0 ]; then
		status_core
		status_ports STATUS_B
		status_apps STATUS_B
	else
		status_line "stack core" "${STATUS_A[core.cpu]:-?} (busy share not measured: --interval 0)"
		status_ports STATUS_A
		status_apps STATUS_A
	fi
	status_line log "$S_DAEMON_LOG"
	status_log
	return 0
}
