#!/bin/bash
# nginx (Debian's nginx-light, unmodified) serving files on isostack: a
# master and two workers (fork: both workers accept on the listener they
# inherited, each connection is served by one), sendfile on.  curl from the Linux peer fetches a 4 MiB file (sha256
# checked) and a small one; wrk from the peer must finish with requests
# done, no socket errors and no non-2xx answers.
PROG_TAG=ngx
. "$(dirname "$0")/lib.sh"
need nginx nginx-light
need wrk wrk
need curl curl

mkdir -p "$tmp/www" "$tmp/logs"
head -c 4194304 /dev/urandom >"$tmp/www/big.bin"
echo "hello from nginx on isostack" >"$tmp/www/index.html"
cat >"$tmp/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/error.log notice;
events { worker_connections 256; }
http {
	log_format bypid '\$pid \$status';
	access_log $tmp/logs/access.log bypid;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	client_body_temp_path $tmp/body;
	proxy_temp_path $tmp/proxy;
	fastcgi_temp_path $tmp/fastcgi;
	uwsgi_temp_path $tmp/uwsgi;
	scgi_temp_path $tmp/scgi;
	types { text/html html; application/octet-stream bin; }
	server {
		listen 8080;
		root $tmp/www;
	}
}
CONF

stack_up
bg nginx "$CLI" run --require -- nginx -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;'
wait_port peer 8080 || fail "nginx does not accept connections on $STACK_IP:8080"

"$CLI" peer -- curl -sS --max-time 30 -o "$tmp/got.bin" "http://$STACK_IP:8080/big.bin" ||
	fail "curl big.bin"
want=$(sha256sum <"$tmp/www/big.bin" | cut -d' ' -f1)
got=$(sha256sum <"$tmp/got.bin" | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "big.bin sha256 $got, want $want"
echo "curl: 4 MiB file, sha256 ok"
small=$("$CLI" peer -- curl -sS --max-time 10 "http://$STACK_IP:8080/index.html")
[ "$small" = "hello from nginx on isostack" ] || fail "index.html: '$small'"
echo "curl: index.html ok"

"$CLI" peer -- timeout 60 wrk -t1 -c16 -d5s "http://$STACK_IP:8080/index.html" \
	>"$tmp/wrk.log" 2>&1 || fail "wrk failed"
cat "$tmp/wrk.log"
grep -q "Socket errors" "$tmp/wrk.log" && fail "wrk: socket errors"
grep -q "Non-2xx" "$tmp/wrk.log" && fail "wrk: non-2xx answers"
rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.log")
awk -v r="${rps:-0}" 'BEGIN { exit !(r > 0) }' || fail "wrk: no requests/s"
echo "wrk: $rps requests/s, no socket errors"
# Which worker answered: both may, none may fail.  (How the kernel spreads
# connections between two workers is not ours to assert.)
awk '$2 != 200 { bad++ } { n[$1]++ } END {
	for (p in n) printf "worker %s: %d requests\n", p, n[p]; exit bad > 0 }' \
	"$tmp/logs/access.log" || fail "a request got a non-200 status in the access log"

# The file again after the load: the server is still sane.
"$CLI" peer -- curl -sS --max-time 30 -o "$tmp/got2.bin" "http://$STACK_IP:8080/big.bin" ||
	fail "curl big.bin after wrk"
[ "$(sha256sum <"$tmp/got2.bin" | cut -d' ' -f1)" = "$want" ] || fail "big.bin after wrk differs"
kill -0 "$LAST_PID" || fail "nginx died"
echo "PASS: nginx on isostack"
