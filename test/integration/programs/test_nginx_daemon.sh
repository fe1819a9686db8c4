#!/bin/bash
# nginx started the way its users start it: `isostack run -- nginx` with
# the stock behaviour of daemonizing (the master forks, its parent exits,
# the child calls setsid) and unprivileged workers (`user www-data`: the
# master forks them, they drop to www-data).  `isostack run` must return
# with nginx left running on isostack; curl from the Linux peer gets a
# 1 MiB file whole (sha256) over 8 connections; the access log has every
# answer, each from one of the workers (by pid), which run as www-data; `nginx -s quit` (a signal by pid file, also through the shim)
# stops master and workers, and the application leaves the daemon.
PROG_TAG=ngd
. "$(dirname "$0")/lib.sh"
need nginx nginx-light
need curl curl
id www-data >/dev/null 2>&1 || { echo "SKIP: no www-data user"; exit 77; }

chmod 755 "$tmp"
mkdir -p "$tmp/www" "$tmp/logs"
head -c 1048576 /dev/urandom >"$tmp/www/big.bin"
chmod -R a+rX "$tmp/www"
cat >"$tmp/nginx.conf" <<CONF
user www-data;
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/error.log notice;
events { worker_connections 256; }
http {
	log_format bypid '\$pid \$status';
	access_log $tmp/logs/access.log bypid;
	sendfile on;
	keepalive_timeout 0;
	client_body_temp_path $tmp/body;
	proxy_temp_path $tmp/proxy;
	fastcgi_temp_path $tmp/fastcgi;
	uwsgi_temp_path $tmp/uwsgi;
	scgi_temp_path $tmp/scgi;
	types { application/octet-stream bin; }
	server {
		listen 8080;
		root $tmp/www;
	}
}
CONF

# nginx stops by itself below; if the test fails first, stop it by pid.
stop_nginx() {
	local pid
	pid=$(cat "$tmp/nginx.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
}
trap 'rc=$?; stop_nginx; (exit $rc); cleanup' EXIT

stack_up
"$CLI" run --require -- nginx -p "$tmp" -c "$tmp/nginx.conf" ||
	fail "isostack run -- nginx (daemonizing) failed"
master=$(cat "$tmp/nginx.pid") || fail "no pid file: nginx did not start"
echo "isostack run returned; nginx master $master runs on (daemonized)"
wait_port peer 8080 || fail "nginx does not accept connections on $STACK_IP:8080"

want=$(sha256sum <"$tmp/www/big.bin" | cut -d' ' -f1)
for i in $(seq 8); do
	got=$("$CLI" peer -- curl -sS --max-time 20 "http://$STACK_IP:8080/big.bin" |
	      sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "transfer $i: sha256 $got, want $want"
done
echo "curl: 8 x 1 MiB, sha256 ok"

workers=$(ps -o pid= --ppid "$master" | tr -d ' ' | sort)
users=$(ps -o user= --ppid "$master" | sort -u | tr -d ' ')
[ "$(wc -w <<<"$workers")" = 2 ] || fail "want 2 workers, got: $workers"
[ "$users" = www-data ] || fail "workers run as '$users', not www-data"
echo "workers $(tr '\n' ' ' <<<"$workers")run as www-data"
# The log is written at the end of each request: all 8 (plus wait_port's
# connect, which is no request) are there.
n200=$(awk '$2 == 200' "$tmp/logs/access.log" | wc -l)
[ "$n200" -ge 8 ] || fail "access log has $n200 answers with status 200, want 8"
for p in $(awk '{ print $1 }' "$tmp/logs/access.log" | sort -u); do
	grep -qx "$p" <<<"$workers" || fail "answer logged by pid $p, not a worker"
done

"$CLI" run -- nginx -p "$tmp" -c "$tmp/nginx.conf" -s quit || fail "nginx -s quit"
for i in $(seq 100); do
	kill -0 "$master" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$master" 2>/dev/null && fail "nginx master $master still runs 10 s after quit"
for w in $workers; do
	kill -0 "$w" 2>/dev/null && fail "worker $w still runs after quit"
done
# Gone from the stack too: no application holds a socket any more.
wait_stack_sockets 0 || fail "sockets left: $socks"
echo "after quit: master and workers gone, no socket left in the stack"
echo "PASS: daemonized nginx with www-data workers served every byte and quit cleanly"
