# isostack bench programs: unmodified Debian programs as the SUT's server,
# their own load generators in the peer namespace, kernel stack and
# isostack in one run (the options are parsed by cmd_bench in bench.sh).
#
# Same layout as the isoperf bench: the kernel column is a namespace pair
# of its own (bench_kernel_up, kernel addresses on both ends); the isostack
# column is `isostack up` (isostackd busy-polling core 1) with the program
# under `isostack run --require`. The program and the load generator share
# core 0 on both stacks. Every program gets a sanity check (content by
# sha256, a value read back, bytes moved) before any figure is taken, so
# a broken setup reports no figure. Each row's JSON carries the exact
# commands of the server and of the load generator.

bench_programs_about() {
	cat <<EOF
'isostack bench programs' measures unmodified Debian programs served by the
SUT, each driven by its own load generator in the peer namespace, once on
the kernel stack and once under 'isostack run --require', in one table:
  nginx   612 B and 1 MiB static files, 1 and 2 worker processes;
          wrk -t1 -c16 --latency: requests/s (MB/s for 1 MiB), p50/p99
  redis   redis-server; redis-benchmark -c 16 SET and GET, -P 1 and -P 16
          (-n sized by a short first run to about N s per test)
  memcached  memcached -t 1; memcaslap (memaslap) -T 1 -c 16, 64 B values,
          90% get / 10% set, every get's value verified: ops/s
  local   redis-server and redis-benchmark both on the SUT's host (isostack:
          both under the shim, to the stack's own address, once paired on
          the stack core (cut-through on, the default) and once through
          lwIP (cut_through=off); kernel: its loopback 127.0.0.1); the
          redis row's options
  iperf3  SUT as server; peer client to it and reverse (-R): Gbit/s
Before any figure, nginx's files are fetched with curl and compared by
sha256, and a redis and a memcached value are read back; a row that fails
that, or whose program or load generator is not installed, is skipped with
a message. Each row's case names the MTU of the run (--mtu: both stacks'
veth ends and isostackd's port; the kernel's loopback stays 65536).
isostackd polls core 1; the program and the load generator share core 0 on
both stacks. 5 s per point (--quick 2 s, or --seconds N). Writes
DIR/programs-<stack>-<program>.json (every figure with the exact server
and load commands), DIR/programs.json (the table) and the tools' raw output
in DIR/programs-logs/<stack>/mtu<N>/.
EOF
}

help_bench_programs() {
	cat <<EOF
usage: isostack bench programs [--stack kernel|isostack|both] [--quick]
                               [--seconds N] [--mtu 1500,9000]
                               [--only nginx,redis,memcached,local,iperf3] [--out DIR]

EOF
	bench_programs_about
	cat <<EOF

  --stack S        kernel, isostack or both (default)
  --quick          2 s per point
  --seconds N      seconds per point (default 5)
  --mtu LIST       MTUs, comma-separated, each a whole run of both stacks
                   (default 1500; 9000 puts isostackd on af_packet)
  --only LIST      programs, comma-separated (default
                   nginx,redis,memcached,local,iperf3)
  --out DIR        default ./bench-results

examples:
  sudo isostack bench programs
  sudo isostack bench programs --stack isostack --only redis --seconds 2
  sudo isostack bench programs --quick --only memcached,local --mtu 1500,9000
EOF
}

BP_HTTP_PORT=8080
BP_REDIS_PORT=6380
BP_IPERF_PORT=5201
BP_MEMCACHED_PORT=11211

# Parsing and the side-by-side table: scripts/lib/bench_programs.py.

# The words of a command as a shell would take them back; plain words
# stay as they are (printf %q alone writes set,get as set\,get).
bench_prog_quote() {
	local w q=

	for w in "$@"; do
		if [[ $w =~ ^[A-Za-z0-9_./:,=+@%-]+$ ]]; then
			q+="$w "
		else
			q+="$(printf '%q' "$w") "
		fi
	done
	echo "${q% }"
}

# Running, not a zombie: our own children stay in /proc until waited for.
bench_prog_alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# bench_prog_start NAME CMD...: CMD in the SUT (BP_SUT: the stack's
# namespace, core 0, and for isostack the shim), output in BP_LOGS/NAME.log.
# ip netns exec, taskset, env and `isostack run` all exec, so $! ends up
# being the program itself.
bench_prog_start() {
	local name=$1
	shift
	"${BP_SUT[@]}" "$@" </dev/null >"$BP_LOGS/$name.log" 2>&1 &
	BP_PID=$!
	BP_PIDS+=("$BP_PID")
	BP_SERVER_CMD=$(bench_prog_quote "${BP_SUT[@]}" "$@")
}

# bench_prog_stop PID: SIGTERM (nginx's master passes it on to its
# workers), up to 5 s, then SIGKILL for it and the children it had.
bench_prog_stop() {
	local pid=$1 kids k

	[ -n "$pid" ] || return 0
	kids=$(pgrep -P "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		bench_prog_alive "$pid" || break
		sleep 0.05
	done
	if bench_prog_alive "$pid"; then
		warn "bench: pid $pid ignored SIGTERM for 5 s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	for k in $kids; do
		if bench_prog_alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
	done
	local -a left=()
	for k in "${BP_PIDS[@]}"; do
		[ "$k" = "$pid" ] || left+=("$k")
	done
	BP_PIDS=("${left[@]}")
}

bench_prog_cleanup() {
	local p

	for p in "${BP_PIDS[@]}"; do
		[ -n "$p" ] && bench_prog_stop "$p"
	done
	BP_PIDS=()
	bench_cleanup
	[ -n "${BP_TMP:-}" ] && rm -rf -- "$BP_TMP"
	BP_TMP=
}

# Until a TCP connect from the peer to PORT on the SUT succeeds (bounded,
# 20 s); 1 when the server died or never listened.
bench_prog_wait_port() {
	for _ in $(seq 200); do
		"${BP_PEER[@]}" timeout --foreground 2 bash -c "exec 3<>/dev/tcp/$BP_SUT_IP/$1" 2>/dev/null &&
			return 0
		bench_prog_alive "$BP_PID" || return 1
		sleep 0.1
	done
	return 1
}

# bench_prog_load NAME CMD...: the load generator on core 0, in the peer
# namespace (or where the array named by BP_LOAD_AT says: the local row
# runs it beside the server), output in BP_LOGS/NAME.out; BP_LOAD_CMD is
# the exact command. timeout --foreground keeps it in our process group,
# so that Ctrl-C reaches it at once instead of after the run.
bench_prog_load() {
	local name=$1
	local -n at=${BP_LOAD_AT:-BP_PEER}
	shift
	BP_LOAD_CMD=$(bench_prog_quote "${at[@]}" timeout --foreground $((BP_SECS * 4 + 30)) "$@")
	"${at[@]}" timeout --foreground $((BP_SECS * 4 + 30)) "$@" >"$BP_LOGS/$name.out" 2>"$BP_LOGS/$name.err"
}

# bench_prog_row PROG TOOL OUTPUT CASE KEY=VALUE...: rows into
# programs-STACK-PROG.json; the case gets the run's MTU appended, and
# BP_CASE_TAG if set (a variant of the isostack column, named in its
# case: its row goes beside the kernel's row of the case without it).
bench_prog_row() {
	local prog=$1 tool=$2 output=$3 case=$4
	local -a tag=()
	shift 4
	[ -z "${BP_CASE_TAG:-}" ] || tag=(variant="$BP_CASE_TAG")
	python3 "$ISOSTACK_LIB/bench_programs.py" row "$BP_OUT/programs-$BP_STACK-$prog.json" \
		"$BP_STACK" "$prog" "$tool" "$output" "case=$case mtu$BP_MTU" \
		mtu="$BP_MTU" "${tag[@]}" "$@" ||
		warn "bench: $BP_STACK $prog: no figure (output: $output)"
}

bench_prog_nginx() {
	local w f bytes want got conf

	for w in 1 2; do
		conf=$BP_LOGS/nginx-$w.conf    # kept: the server command names it
		cat >"$conf" <<CONF
user root;
daemon off;
master_process on;
worker_processes $w;
pid $BP_TMP/nginx.pid;
error_log $BP_LOGS/nginx-error.log notice;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	client_body_temp_path $BP_TMP/body;
	proxy_temp_path $BP_TMP/proxy;
	fastcgi_temp_path $BP_TMP/fastcgi;
	uwsgi_temp_path $BP_TMP/uwsgi;
	scgi_temp_path $BP_TMP/scgi;
	types { text/html html; application/octet-stream bin; }
	server {
		listen $BP_HTTP_PORT;
		root $BP_TMP/www;
	}
}
CONF
		bench_prog_start "nginx-w$w" nginx -p "$BP_TMP" -c "$conf"
		if ! bench_prog_wait_port "$BP_HTTP_PORT"; then
			warn "bench: $BP_STACK nginx ($w workers) does not accept connections: rows skipped ($BP_LOGS/nginx-w$w.log)"
			bench_prog_stop "$BP_PID"
			continue
		fi
		# Both files once, by sha256, before any figure.
		for f in index.html big.bin; do
			"${BP_PEER[@]}" curl -sS --max-time 30 -o "$BP_TMP/got" \
				"http://$BP_SUT_IP:$BP_HTTP_PORT/$f" 2>"$BP_LOGS/curl.err" || true
			want=$(sha256sum <"$BP_TMP/www/$f" | cut -d' ' -f1)
			got=$(sha256sum <"$BP_TMP/got" 2>/dev/null | cut -d' ' -f1)
			rm -f "$BP_TMP/got"
			[ "$want" = "$got" ] || break
		done
		if [ "$want" != "$got" ]; then
			warn "bench: $BP_STACK nginx ($w workers): $f fetched with curl differs (sha256 $got, want $want): rows skipped"
			bench_prog_stop "$BP_PID"
			continue
		fi
		for f in index.html big.bin; do
			bytes=$(stat -c %s "$BP_TMP/www/$f")
			if bench_prog_load "nginx-w$w-$f" wrk -t1 -c16 -d"${BP_SECS}s" --latency \
				"http://$BP_SUT_IP:$BP_HTTP_PORT/$f"; then
				bench_prog_row nginx wrk "$BP_LOGS/nginx-w$w-$f.out" \
					"$w worker$([ "$w" = 1 ] || echo s), $([ "$f" = big.bin ] && echo 1 MiB || echo "$bytes B")" \
					workers="$w" file="$f" bytes="$bytes" connections=16 \
					command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
			else
				warn "bench: $BP_STACK nginx: wrk failed: $(tail -1 "$BP_LOGS/nginx-w$w-$f.err")"
			fi
		done
		bench_prog_stop "$BP_PID"
	done
}

# bench_prog_redis_up NAME HOST: redis-server in the SUT, and a value set
# and read back with redis-cli from where the load will run (BP_LOAD_AT),
# to HOST. 1 (a warning said why) when it does not serve.
bench_prog_redis_up() {
	local name=$1 host=$2 value got
	local -n at=${BP_LOAD_AT:-BP_PEER}

	bench_prog_start "$name" redis-server --port "$BP_REDIS_PORT" --bind 0.0.0.0 \
		--protected-mode no --save '' --appendonly no --dir "$BP_TMP" --loglevel warning
	if ! bench_prog_wait_port "$BP_REDIS_PORT"; then
		warn "bench: $BP_STACK $name: redis-server does not accept connections: rows skipped ($BP_LOGS/$name.log)"
		bench_prog_stop "$BP_PID"
		return 1
	fi
	value=$(head -c 48 /dev/urandom | base64 -w0)
	got=$("${at[@]}" timeout 20 sh -c "redis-cli -h $host -p $BP_REDIS_PORT SET isob-check '$value' >/dev/null &&
		redis-cli -h $host -p $BP_REDIS_PORT --raw GET isob-check" 2>"$BP_LOGS/$name-cli.err" || true)
	if [ "$got" != "$value" ]; then
		warn "bench: $BP_STACK $name: a value read back with redis-cli from $host differs ('$got'): rows skipped ($BP_LOGS/$name-cli.err)"
		bench_prog_stop "$BP_PID"
		return 1
	fi
}

# bench_prog_redis_load PROG HOST: redis-benchmark SET and GET, -P 1 and
# -P 16, 16 connections, to HOST; rows of PROG.
bench_prog_redis_load() {
	local prog=$1 host=$2 p n rps
	local -a rb

	for p in 1 16; do
		# shellcheck disable=SC2054  # set,get is one argument
		rb=(redis-benchmark -h "$host" -p "$BP_REDIS_PORT" -c 16 -P "$p" -t set,get --csv)
		# redis-benchmark counts requests, not seconds: a short run
		# (which also warms up) sizes -n to about BP_SECS per test.
		n=$((10000 * p))
		if ! bench_prog_load "$prog-P$p-size" "${rb[@]}" -n "$n"; then
			warn "bench: $BP_STACK $prog: redis-benchmark -P $p failed: $(tail -1 "$BP_LOGS/$prog-P$p-size.err")"
			continue
		fi
		rps=$(awk -F'"' '$2 == "SET" || $2 == "GET" { r = $4 + 0; if (!m || r < m) m = r }
			END { printf "%d", m }' "$BP_LOGS/$prog-P$p-size.out")
		n=$((rps * BP_SECS))
		[ "$n" -ge 10000 ] || n=10000
		if bench_prog_load "$prog-P$p" "${rb[@]}" -n "$n"; then
			grep -qi error "$BP_LOGS/$prog-P$p.err" "$BP_LOGS/$prog-P$p.out" &&
				warn "bench: $BP_STACK $prog: redis-benchmark -P $p reported errors ($BP_LOGS/$prog-P$p.err)"
			bench_prog_row "$prog" redis "$BP_LOGS/$prog-P$p.out" "-P $p" pipeline="$p" \
				connections=16 requests="$n" host="$host" \
				command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
		else
			warn "bench: $BP_STACK $prog: redis-benchmark -P $p failed: $(tail -1 "$BP_LOGS/$prog-P$p.err")"
		fi
	done
}

bench_prog_redis() {
	bench_prog_redis_up redis "$BP_SUT_IP" || return 0
	bench_prog_redis_load redis "$BP_SUT_IP"
	bench_prog_stop "$BP_PID"
}

# Both ends on the SUT's host: redis-benchmark beside redis-server (core 0,
# under the shim for isostack), to BP_LOCAL_IP (the kernel's loopback, or
# the stack's own address).  isostack's rows say whether its connections
# were paired on the stack core (BP_LOCAL_TAG: cut-through on or off).
bench_prog_local() {
	local BP_LOAD_AT=BP_SUT BP_CASE_TAG=${BP_LOCAL_TAG:-}

	bench_prog_redis_up local "$BP_LOCAL_IP" || return 0
	bench_prog_redis_load local "$BP_LOCAL_IP"
	bench_prog_stop "$BP_PID"
}

# memcached with one worker thread; memcaslap (Debian's name for
# libmemcached's memaslap) from the peer: 16 connections, one request
# outstanding on each, 64 B values, 90% get / 10% set, every get's value
# compared with what was set (--verify=1). A value copied in with memccp
# and read back with memccat first.
bench_prog_memcached() {
	local value got

	bench_prog_start memcached memcached -u root -l 0.0.0.0 -p "$BP_MEMCACHED_PORT" \
		-U 0 -t 1 -c 1024 -m 256
	if ! bench_prog_wait_port "$BP_MEMCACHED_PORT"; then
		warn "bench: $BP_STACK memcached does not accept connections: rows skipped ($BP_LOGS/memcached.log)"
		bench_prog_stop "$BP_PID"
		return 0
	fi
	value=$(head -c 48 /dev/urandom | base64 -w0)
	printf '%s' "$value" >"$BP_TMP/isob-check"
	got=$("${BP_PEER[@]}" timeout 20 sh -c "memccp --servers=$BP_SUT_IP:$BP_MEMCACHED_PORT $BP_TMP/isob-check &&
		memccat --servers=$BP_SUT_IP:$BP_MEMCACHED_PORT isob-check" 2>"$BP_LOGS/memccat.err" || true)
	if [ "$got" != "$value" ]; then
		warn "bench: $BP_STACK memcached: a value read back with memccat differs ('$got'): rows skipped ($BP_LOGS/memccat.err)"
		bench_prog_stop "$BP_PID"
		return 0
	fi
	if bench_prog_load memcached memcaslap -s "$BP_SUT_IP:$BP_MEMCACHED_PORT" -T 1 -c 16 \
		-X 64 --verify=1 -t "${BP_SECS}s"; then
		bench_prog_row memcached memaslap "$BP_LOGS/memcached.out" "get 90%/set 10% 64 B" \
			connections=16 value_bytes=64 \
			command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
	else
		warn "bench: $BP_STACK memcaslap failed: $(tail -1 "$BP_LOGS/memcached.err")"
	fi
	bench_prog_stop "$BP_PID"
}

bench_prog_iperf3() {
	local dir
	local -a rev

	# -B 0.0.0.0: an AF_INET listener (iperf3's default is AF_INET6, which
	# isostack leaves to the kernel). Readiness is the server's own line:
	# a probe connection would count as a test client.
	bench_prog_start iperf3 iperf3 -s -p "$BP_IPERF_PORT" -B 0.0.0.0 --forceflush
	for _ in $(seq 200); do
		grep -q "Server listening" "$BP_LOGS/iperf3.log" 2>/dev/null && break
		bench_prog_alive "$BP_PID" || break
		sleep 0.1
	done
	if ! grep -q "Server listening" "$BP_LOGS/iperf3.log" 2>/dev/null; then
		warn "bench: $BP_STACK iperf3 server does not listen: rows skipped ($BP_LOGS/iperf3.log)"
		bench_prog_stop "$BP_PID"
		return 0
	fi
	for dir in recv send; do
		# recv: the peer sends, the SUT receives; send: -R, the SUT sends.
		rev=()
		[ $dir = send ] && rev=(-R)
		if bench_prog_load "iperf3-$dir" iperf3 -c "$BP_SUT_IP" -p "$BP_IPERF_PORT" \
			-t "$BP_SECS" -J "${rev[@]}"; then
			bench_prog_row iperf3 iperf3 "$BP_LOGS/iperf3-$dir.out" \
				"$([ $dir = send ] && echo "SUT sends (-R)" || echo "SUT receives")" \
				direction="$dir" command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
		else
			warn "bench: $BP_STACK iperf3 $dir failed: $(tail -1 "$BP_LOGS/iperf3-$dir.out")"
		fi
	done
	bench_prog_stop "$BP_PID"
}

# One stack's rows at one MTU: every program of BP_RUN on the current
# BP_SUT/BP_PEER.
bench_prog_all() {
	local prog

	BP_LOGS=$BP_OUT/programs-logs/$BP_STACK/mtu$BP_MTU
	mkdir -p "$BP_LOGS"
	for prog in $BP_RUN; do
		log "bench programs: $BP_STACK, MTU $BP_MTU: $prog"
		"bench_prog_$prog"
	done
}

# The kernel column: its own namespace pair, the veth at BP_MTU.
bench_prog_kernel() {
	BP_STACK=kernel
	bench_kernel_up "$BP_MTU"
	BP_SUT_IP=$BENCH_SUT_IP
	BP_LOCAL_IP=127.0.0.1
	BP_LOCAL_TAG=
	BP_SUT=(ip netns exec "$BENCH_NS_SUT" taskset -c 0)
	BP_PEER=(ip netns exec "$BENCH_NS_PEER" taskset -c 0)
	bench_prog_all
	bench_cleanup
}

# The isostack column: `isostack up --mtu BP_MTU` (at 9000 its auto
# choice of vdev falls back to af_packet), programs under the shim.
bench_prog_isostack() {
	local prefix=isob$$

	BP_STACK=isostack
	if [ ! -f "$ISOSTACK_SHIM" ]; then
		warn "bench: no shim at $ISOSTACK_SHIM ('isostack build'): isostack column skipped"
		return 0
	fi
	if ! ISOSTACK_NS_PREFIX=$prefix cmd_up --mtu "$BP_MTU" >"$BP_OUT/up.log" 2>&1; then
		cat "$BP_OUT/up.log" >&2
		warn "bench: isostack up --mtu $BP_MTU failed: isostack column skipped"
		return 0
	fi
	# up resets the INT/TERM traps it set for itself.
	trap 'exit 130' INT TERM
	BENCH_DOWN=$prefix
	ISOSTACK_NS_PREFIX=$prefix net_names
	ISOSTACK_NS_PREFIX=$prefix net_state_load
	log "bench programs: isostackd on $S_PMD, MTU $S_MTU"
	BP_SUT_IP=$S_ADDR
	BP_LOCAL_IP=$S_ADDR
	BP_LOCAL_TAG="cut-through on"
	BP_SUT=(env ISOSTACK_NS_PREFIX="$prefix" "$ISOSTACK_SELF" run --require --)
	BP_PEER=(ip netns exec "$S_NS_PEER" taskset -c 0)
	bench_prog_all
	ISOSTACK_NS_PREFIX=$prefix cmd_down >/dev/null 2>&1
	BENCH_DOWN=
	[[ " $BP_RUN " == *" local "* ]] && bench_prog_local_lwip "$prefix"
	return 0
}

# The local rows once more with cut_through=off: isostack's connections
# through lwIP (TCP over the port's own loopback), the A side of the A/B.
bench_prog_local_lwip() {
	local prefix=$1

	if ! ISOSTACK_NS_PREFIX=$prefix cmd_up --mtu "$BP_MTU" --set cut_through=off \
		>"$BP_OUT/up.log" 2>&1; then
		cat "$BP_OUT/up.log" >&2
		warn "bench: isostack up --set cut_through=off failed: its local rows skipped"
		return 0
	fi
	trap 'exit 130' INT TERM
	BENCH_DOWN=$prefix
	BP_LOGS=$BP_OUT/programs-logs/$BP_STACK/mtu$BP_MTU/cut-through-off
	mkdir -p "$BP_LOGS"
	BP_LOCAL_TAG="cut-through off"
	log "bench programs: $BP_STACK, MTU $BP_MTU: local, cut_through=off"
	bench_prog_local
	ISOSTACK_NS_PREFIX=$prefix cmd_down >/dev/null 2>&1
	BENCH_DOWN=
}

# bench_prog_missing PROG: the commands PROG's row needs that are not
# installed, each after a space; unknown PROG dies.
bench_prog_missing() {
	local tool missing=
	local -a tools

	case $1 in
	nginx)     tools=(nginx wrk curl) ;;
	redis|local) tools=(redis-server redis-benchmark redis-cli) ;;
	memcached) tools=(memcached memcaslap memccp memccat) ;;
	iperf3)    tools=(iperf3) ;;
	*) die "bench programs: unknown program '$1' (nginx, redis, memcached, local, iperf3)" ;;
	esac
	for tool in "${tools[@]}"; do
		command -v "$tool" >/dev/null || missing+=" $tool"
	done
	echo "$missing"
}

bench_programs() {
	local out=$1 stack=$2 only=$3 mtus=$4 prog missing s

	BP_OUT=$(mkdir -p "$out" && cd "$out" && pwd)
	BP_PIDS=()
	BP_RUN=
	for prog in ${only//,/ }; do
		missing=$(bench_prog_missing "$prog")
		if [ -n "$missing" ]; then
			log "bench programs: $prog skipped: not installed:$missing (isostack setup, or apt-get install nginx-light wrk curl redis-server redis-tools memcached libmemcached-tools iperf3)"
		else
			BP_RUN+=" $prog"
		fi
	done
	[ -n "$BP_RUN" ] || { warn "bench programs: nothing to run"; return 0; }

	BP_TMP=$(mktemp -d /tmp/isob-prog.XXXXXX)
	trap bench_prog_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$BP_TMP/www"
	python3 -c 'import sys; sys.stdout.write(("isostack bench: a small page served by nginx.\n" * 14)[:612])' \
		>"$BP_TMP/www/index.html"
	head -c 1048576 /dev/urandom >"$BP_TMP/www/big.bin"
	log "bench programs:$BP_RUN, MTU ${mtus//,/ and }, ${BP_SECS} s per point; raw outputs in $BP_OUT/programs-logs"
	# A stack's earlier rows go; the other stack's stay for the table.
	for s in kernel isostack; do
		[ "$stack" = both ] || [ "$stack" = $s ] || continue
		rm -rf -- "$BP_OUT/programs-logs/$s"
		rm -f -- "$BP_OUT/programs-$s"-*.json
	done
	for BP_MTU in ${mtus//,/ }; do
		[ "$stack" = isostack ] || bench_prog_kernel
		[ "$stack" = kernel ] || bench_prog_isostack
	done
	echo
	python3 "$ISOSTACK_LIB/bench_programs.py" table "$BP_OUT" "$BP_SECS"
	log "bench: results in $BP_OUT (programs.json, programs-<stack>-<program>.json)"
}
