#!/usr/bin/env bash
# `isostat --prometheus` read by a real parser (issue 16, point 4). With an
# application attached through the shim (a listener, so app and socket
# families exist), two scrapes go to prom_check.py, which parses them with
# python3-prometheus-client's text_string_to_metric_families: every line
# parsed, HELP and TYPE on every family, every family a counter or a
# gauge. Between them the peer echoes 4 MB over one connection and 50
# short ones through the daemon's echo service, bytes checked by
# peer_tool; the port's packet and byte counters and lwIP's TCP counters
# must have grown and no counter may have gone down.
#
# meson passes the shim as $1. Debian's python3 (/usr/bin/python3) runs the
# checker: the python3 on PATH may be another one without Debian's modules.
. "$(dirname "$0")/lib.sh"

SHIM=${1:-${ISOSTACK_SHIM:-}}
ISOSTAT=$(dirname "$ISOSTACK_DAEMON")/isostat
[ -x "$ISOSTAT" ] || skip "no isostat beside $ISOSTACK_DAEMON"
if [ -z "$SHIM" ] || [ ! -f "$SHIM" ]; then
	skip "no libisosock.so (meson passes it as the first argument)"
fi
ISOSTACK_SHIM=$(readlink -f "$SHIM")
export ISOSTACK_SHIM
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3 (Debian's python3)"
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null ||
	skip "python3-prometheus-client is not installed (apt-get install python3-prometheus-client, or isostack setup)"

tmp=$(mktemp -d)
APP_PID=
stop_app() {
	exec 5>&- 6<&- 2>/dev/null || true   # EOF on the app's stdin: it exits
	[ -z "$APP_PID" ] || wait "$APP_PID" 2>/dev/null || true
	rm -rf "$tmp"
}
on_exit stop_app

test_prefix met
stack_up
CONTROL=$S_CONTROL

step "an application attached: a listener on 5555 through the shim"
# Its stdin and stdout are fifos: it says "listening" once it listens and
# exits at EOF on stdin. `isostack run` execs down to python3: $! is its pid.
mkfifo "$tmp/in" "$tmp/out"
"$ISOSTACK_CLI" run --require -- python3 "$here/listen_app.py" 5555 <"$tmp/in" >"$tmp/out" &
APP_PID=$!
exec 5>"$tmp/in" 6<"$tmp/out"
read -r -t 30 -u 6 line || fail "the application did not say it listens within 30 s"
[ "$line" = listening ] || fail "the application said '$line'"

step "scrape 1"
"$ISOSTAT" -c "$CONTROL" --prometheus >"$tmp/before.prom" || fail "isostat --prometheus"
echo "$(grep -vc '^#' "$tmp/before.prom") samples"

step "traffic: 4 MB echoed on one connection, 50 short connections"
peer python3 "$PEER_TOOL" --timeout 60 echo-bulk --bytes 4000000
peer python3 "$PEER_TOOL" --timeout 10 echo-short --count 50 --size 100

step "scrape 2, and both through the Prometheus parser"
"$ISOSTAT" -c "$CONTROL" --prometheus >"$tmp/after.prom" || fail "isostat --prometheus"
/usr/bin/python3 "$here/prom_check.py" "$tmp/before.prom" "$tmp/after.prom" \
	--grew isostack_port_rx_pkts_total --grew isostack_port_rx_bytes_total \
	--grew isostack_port_tx_pkts_total --grew isostack_port_tx_bytes_total \
	--grew isostack_lwip_tcp_recv_total --grew isostack_loop_busy_cycles_total \
	--family isostack_app_sockets --family isostack_sock_state \
	--family isostack_loop_adaptive ||
	fail "the scrapes do not hold (above)"

step "the application's pid and socket count are its labels and value"
grep -q "^isostack_app_sockets{app=\"[0-9]*\",pid=\"$APP_PID\"} 1\$" "$tmp/after.prom" ||
	{ grep '^isostack_app_sockets' "$tmp/after.prom"; fail "no isostack_app_sockets sample with the app's pid and 1 socket"; }
grep -q '^isostack_sock_state{.*local="198.18.0.1:5555"\|^isostack_sock_state{.*local="0.0.0.0:5555"' "$tmp/after.prom" ||
	{ grep '^isostack_sock_state' "$tmp/after.prom"; fail "no socket sample for the listener on 5555"; }
daemon_alive || fail "the daemon exited"
echo "PASS"
