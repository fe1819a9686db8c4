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
  iperf3  SUT as server; peer client to it and reverse (-R): Gbit/s
Before any figure, nginx's files are fetched with curl and compared by
sha256 and a redis value is read back; a row that fails that, or whose
program or load generator is not installed, is skipped with a message.
isostackd polls core 1; the program and the load generator share core 0 on
both stacks. 5 s per point (--quick 2 s, or --seconds N). Writes
DIR/programs-<stack>-<program>.json (every figure with the exact server
and load commands), DIR/programs.json (the table) and the tools' raw output
in DIR/programs-logs/<stack>/.
EOF
}

help_bench_programs() {
	cat <<EOF
usage: isostack bench programs [--stack kernel|isostack|both] [--quick]
                               [--seconds N] [--only nginx,redis,iperf3] [--out DIR]

EOF
	bench_programs_about
	cat <<EOF

  --stack S        kernel, isostack or both (default)
  --quick          2 s per point
  --seconds N      seconds per point (default 5)
  --only LIST      programs, comma-separated (default nginx,redis,iperf3)
  --out DIR        default ./bench-results

examples:
  sudo isostack bench programs
  sudo isostack bench programs --stack isostack --only redis --seconds 2
EOF
}

BP_HTTP_PORT=8080
BP_REDIS_PORT=6380
BP_IPERF_PORT=5201

# Parsing and the side-by-side table, in one Python helper:
#   row FILE STACK PROG TOOL OUTPUT KEY=VALUE...   parse a tool's output
#                                   (wrk, redis, iperf3) into rows of FILE
#   table DIR SECONDS                write DIR/programs.json, print the table
BENCH_PROG_PY=$(cat <<'PY'
import glob, json, os, re, sys, time

def num(v):
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v

def add_rows(path, stack, prog, rows):
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        d = {"stack": stack, "program": prog,
             "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": []}
    d["rows"].extend(rows)
    json.dump(d, open(path + ".tmp", "w"), indent=1)
    os.replace(path + ".tmp", path)
    for r in rows:
        lat = ""
        if "latency_p50_us" in r:
            lat = f"  p50 {r['latency_p50_us']:.1f} us  p99 {r['latency_p99_us']:.1f} us"
        err = f"  ERRORS: {r['errors']}" if r.get("errors") else ""
        print(f"  {stack:8} {prog:6} {r['case']:26} {r['value']:12.2f} {r['unit']}{lat}{err}",
              flush=True)

def us(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]

def wrk(text, row):
    size = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    row["requests_per_s"] = float(re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)[1])
    t = re.search(r"^Transfer/sec:\s+([\d.]+)([KMG]?B)", text, re.M)
    row["mb_per_s"] = float(t[1]) * size[t[2]] / 1e6
    for p in ("50", "99"):
        row[f"latency_p{p}_us"] = us(re.search(rf"^\s+{p}%\s+(\S+)", text, re.M)[1])
    m = re.search(r"^\s+(\d+) requests in", text, re.M)
    row["requests"] = int(m[1])
    errs = []
    m = re.search(r"Socket errors: (.*)", text)
    if m:
        errs.append("socket errors: " + m[1])
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errs.append(m[1] + " non-2xx answers")
    row["errors"] = "; ".join(errs)
    if row["bytes"] >= 1 << 20:
        row["unit"], row["value"] = "MB/s", row["mb_per_s"]
    else:
        row["unit"], row["value"] = "req/s", row["requests_per_s"]
    return [row]

def redis(text, row):
    rows = []
    for line in text.splitlines():
        f = [x.strip('"') for x in line.split(",")]
        if len(f) < 8 or f[0] not in ("SET", "GET"):
            continue
        r = dict(row)
        r["case"] = f"{f[0]} {row['case']}"
        r["test"] = f[0]
        r["requests_per_s"] = r["value"] = float(f[1])
        r["unit"] = "req/s"
        r["latency_p50_us"] = float(f[4]) * 1e3
        r["latency_p99_us"] = float(f[6]) * 1e3
        rows.append(r)
    if len(rows) != 2:
        sys.exit("redis-benchmark: no SET and GET results in its output")
    return rows

def iperf3(text, row):
    j = json.loads(text)
    if "error" in j:
        sys.exit("iperf3: " + j["error"])
    r = j["end"]["sum_received"]
    if r["bytes"] <= 0:
        sys.exit("iperf3: no bytes received")
    row["bytes_received"] = r["bytes"]
    row["gbit_per_s"] = row["value"] = r["bits_per_second"] / 1e9
    row["unit"] = "Gbit/s"
    row["retransmits"] = j["end"].get("sum_sent", {}).get("retransmits")
    return [row]

def table(out, secs):
    order = ["nginx", "redis", "iperf3"]
    runs = [json.load(open(f)) | {"file": os.path.basename(f)}
            for f in glob.glob(os.path.join(out, "programs-*-*.json"))]
    runs.sort(key=lambda r: order.index(r["program"]) if r["program"] in order else 99)
    rows, seen = {}, []
    for stack in ("kernel", "isostack"):
        for run in runs:
            if run["stack"] != stack:
                continue
            for r in run["rows"]:
                key = (run["program"], r["case"])
                if key not in rows:
                    rows[key] = {"unit": r["unit"]}
                    seen.append(key)
                rows[key][stack] = r
    seen.sort(key=lambda k: order.index(k[0]) if k[0] in order else 99)
    summary = []
    hdr = (f"{'program':7} {'case':26} {'unit':6} {'kernel':>11} {'isostack':>11} "
           f"{'iso/kern':>8}  {'kernel p50/p99 us':>18}  {'isostack p50/p99 us':>19}")
    print(hdr)
    for key in seen:
        e = rows[key]
        k, i = e.get("kernel"), e.get("isostack")
        def v(r):
            if not r:
                return f"{'-':>11}"
            f = f"{r['value']:11,.0f}" if r["unit"] == "req/s" else f"{r['value']:11.2f}"
            return f + ("*" if r.get("errors") else "")
        def lat(r):
            if not r or "latency_p50_us" not in r:
                return "-"
            return f"{r['latency_p50_us']:.0f} / {r['latency_p99_us']:.0f}"
        ratio = i["value"] / k["value"] if k and i and k["value"] > 0 else None
        print(f"{key[0]:7} {key[1]:26} {e['unit']:6} {v(k)} {v(i)} "
              f"{(f'{ratio:.2f}' if ratio is not None else '-'):>8}  {lat(k):>18}  {lat(i):>19}")
        summary.append({"program": key[0], "case": key[1], "unit": e["unit"],
                        "kernel": k["value"] if k else None,
                        "isostack": i["value"] if i else None, "isostack_over_kernel": ratio})
    if any(r.get("errors") for e in rows.values() for s in ("kernel", "isostack")
           for r in [e.get(s)] if r):
        print("* the load generator reported errors: see the row's JSON")
    json.dump({"seconds_per_point": num(secs), "table": summary, "runs": runs},
              open(os.path.join(out, "programs.json"), "w"), indent=1)

if sys.argv[1] == "table":
    table(sys.argv[2], sys.argv[3])
else:
    path, stack, prog, tool, output = sys.argv[2:7]
    row = {"case": ""} | {k: num(v) for k, v in (a.split("=", 1) for a in sys.argv[7:])}
    for k in ("command", "server_command"):
        row[k] = str(row.get(k, ""))
    text = open(output).read()
    row["raw_output"] = os.path.abspath(output)
    add_rows(path, stack, prog, {"wrk": wrk, "redis": redis, "iperf3": iperf3}[tool](text, row))
PY
)

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

# bench_prog_load NAME CMD...: the load generator in the peer namespace on
# core 0, output in BP_LOGS/NAME.out; BP_LOAD_CMD is the exact command.
# timeout --foreground keeps it in our process group, so that Ctrl-C
# reaches it at once instead of after the run.
bench_prog_load() {
	local name=$1
	shift
	BP_LOAD_CMD=$(bench_prog_quote "${BP_PEER[@]}" timeout --foreground $((BP_SECS * 4 + 30)) "$@")
	"${BP_PEER[@]}" timeout --foreground $((BP_SECS * 4 + 30)) "$@" >"$BP_LOGS/$name.out" 2>"$BP_LOGS/$name.err"
}

# bench_prog_row PROG TOOL OUTPUT KEY=VALUE...: rows into programs-STACK-PROG.json.
bench_prog_row() {
	local prog=$1
	shift
	python3 -c "$BENCH_PROG_PY" row "$BP_OUT/programs-$BP_STACK-$prog.json" \
		"$BP_STACK" "$prog" "$@" || warn "bench: $BP_STACK $prog: no figure (output: $2)"
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
					"case=$w worker$([ "$w" = 1 ] || echo s), $([ "$f" = big.bin ] && echo 1 MiB || echo "$bytes B")" \
					workers="$w" file="$f" bytes="$bytes" connections=16 \
					command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
			else
				warn "bench: $BP_STACK nginx: wrk failed: $(tail -1 "$BP_LOGS/nginx-w$w-$f.err")"
			fi
		done
		bench_prog_stop "$BP_PID"
	done
}

bench_prog_redis() {
	local p n rps value got

	bench_prog_start redis redis-server --port "$BP_REDIS_PORT" --bind 0.0.0.0 \
		--protected-mode no --save '' --appendonly no --dir "$BP_TMP" --loglevel warning
	if ! bench_prog_wait_port "$BP_REDIS_PORT"; then
		warn "bench: $BP_STACK redis-server does not accept connections: rows skipped ($BP_LOGS/redis.log)"
		bench_prog_stop "$BP_PID"
		return 0
	fi
	# A value written and read back before any figure.
	value=$(head -c 48 /dev/urandom | base64 -w0)
	got=$("${BP_PEER[@]}" sh -c "redis-cli -h $BP_SUT_IP -p $BP_REDIS_PORT SET isob-check '$value' >/dev/null &&
		redis-cli -h $BP_SUT_IP -p $BP_REDIS_PORT --raw GET isob-check" 2>"$BP_LOGS/redis-cli.err" || true)
	if [ "$got" != "$value" ]; then
		warn "bench: $BP_STACK redis: a value read back with redis-cli differs ('$got'): rows skipped"
		bench_prog_stop "$BP_PID"
		return 0
	fi
	for p in 1 16; do
		# redis-benchmark counts requests, not seconds: a short run
		# (which also warms up) sizes -n to about BP_SECS per test.
		n=$((10000 * p))
		if ! bench_prog_load "redis-P$p-size" redis-benchmark -h "$BP_SUT_IP" -p "$BP_REDIS_PORT" \
			-c 16 -n "$n" -P "$p" -t set,get --csv; then
			warn "bench: $BP_STACK redis-benchmark -P $p failed: $(tail -1 "$BP_LOGS/redis-P$p-size.err")"
			continue
		fi
		rps=$(awk -F'"' '$2 == "SET" || $2 == "GET" { r = $4 + 0; if (!m || r < m) m = r }
			END { printf "%d", m }' "$BP_LOGS/redis-P$p-size.out")
		n=$((rps * BP_SECS))
		[ "$n" -ge 10000 ] || n=10000
		if bench_prog_load "redis-P$p" redis-benchmark -h "$BP_SUT_IP" -p "$BP_REDIS_PORT" \
			-c 16 -n "$n" -P "$p" -t set,get --csv; then
			grep -qi error "$BP_LOGS/redis-P$p.err" "$BP_LOGS/redis-P$p.out" &&
				warn "bench: $BP_STACK redis-benchmark -P $p reported errors ($BP_LOGS/redis-P$p.err)"
			bench_prog_row redis redis "$BP_LOGS/redis-P$p.out" "case=-P $p" pipeline="$p" \
				connections=16 requests="$n" command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
		else
			warn "bench: $BP_STACK redis-benchmark -P $p failed: $(tail -1 "$BP_LOGS/redis-P$p.err")"
		fi
	done
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
				"case=$([ $dir = send ] && echo "SUT sends (-R)" || echo "SUT receives")" \
				direction="$dir" command="$BP_LOAD_CMD" server_command="$BP_SERVER_CMD"
		else
			warn "bench: $BP_STACK iperf3 $dir failed: $(tail -1 "$BP_LOGS/iperf3-$dir.out")"
		fi
	done
	bench_prog_stop "$BP_PID"
}

# One stack's rows: every program of BP_RUN on the current BP_SUT/BP_PEER.
bench_prog_all() {
	local prog

	BP_LOGS=$BP_OUT/programs-logs/$BP_STACK
	rm -rf -- "$BP_LOGS"
	mkdir -p "$BP_LOGS"
	rm -f -- "$BP_OUT/programs-$BP_STACK"-*.json
	for prog in $BP_RUN; do
		log "bench programs: $BP_STACK: $prog"
		"bench_prog_$prog"
	done
}

bench_programs() {
	local out=$1 stack=$2 only=$3 prog tool missing prefix

	BP_OUT=$(mkdir -p "$out" && cd "$out" && pwd)
	BP_PIDS=()
	BP_RUN=
	for prog in ${only//,/ }; do
		case $prog in
		nginx) missing= ; for tool in nginx wrk curl; do
				command -v $tool >/dev/null || missing+=" $tool"; done ;;
		redis) missing= ; for tool in redis-server redis-benchmark redis-cli; do
				command -v $tool >/dev/null || missing+=" $tool"; done ;;
		iperf3) missing= ; command -v iperf3 >/dev/null || missing=" iperf3" ;;
		*) die "bench programs: unknown program '$prog' (nginx, redis, iperf3)" ;;
		esac
		if [ -n "$missing" ]; then
			log "bench programs: $prog skipped: not installed:$missing (isostack setup, or apt-get install nginx-light wrk curl redis-server redis-tools iperf3)"
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
	log "bench programs:$BP_RUN, ${BP_SECS} s per point; raw outputs in $BP_OUT/programs-logs"

	if [ "$stack" != isostack ]; then
		BP_STACK=kernel
		bench_kernel_up
		BP_SUT_IP=$BENCH_SUT_IP
		BP_SUT=(ip netns exec "$BENCH_NS_SUT" taskset -c 0)
		BP_PEER=(ip netns exec "$BENCH_NS_PEER" taskset -c 0)
		bench_prog_all
		bench_cleanup
	fi
	if [ "$stack" != kernel ]; then
		BP_STACK=isostack
		prefix=isob$$
		if [ ! -f "$ISOSTACK_SHIM" ]; then
			warn "bench: no shim at $ISOSTACK_SHIM ('isostack build'): isostack column skipped"
		elif ! ISOSTACK_NS_PREFIX=$prefix cmd_up >/dev/null 2>"$BP_OUT/up.log"; then
			cat "$BP_OUT/up.log" >&2
			warn "bench: isostack up failed: isostack column skipped"
		else
			# up resets the INT/TERM traps it set for itself.
			trap 'exit 130' INT TERM
			BENCH_DOWN=$prefix
			ISOSTACK_NS_PREFIX=$prefix net_names
			ISOSTACK_NS_PREFIX=$prefix net_state_load
			BP_SUT_IP=$S_ADDR
			BP_SUT=(env ISOSTACK_NS_PREFIX="$prefix" "$ISOSTACK_SELF" run --require --)
			BP_PEER=(ip netns exec "$S_NS_PEER" taskset -c 0)
			bench_prog_all
			ISOSTACK_NS_PREFIX=$prefix cmd_down >/dev/null 2>&1
			BENCH_DOWN=
		fi
	fi
	echo
	python3 -c "$BENCH_PROG_PY" table "$BP_OUT" "$BP_SECS"
	log "bench: results in $BP_OUT (programs.json, programs-<stack>-<program>.json)"
}
