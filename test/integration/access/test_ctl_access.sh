#!/bin/bash
# Who may attach (docs/daemon.md, "Who may attach"), with the user nobody
# and a group made up for the test (a gid no entry of /etc/group has,
# given to nobody with setpriv --groups: no user or group is created):
#   - the control socket is root:GROUP mode 0660;
#   - root attaches;
#   - nobody outside the group is refused with EACCES: by the socket
#     file (connect), by the daemon's SO_PEERCRED check when the file's
#     mode is widened to 0666, and under the shim through `isostack run`
#     (socket() fails with EACCES, one line on stderr says why);
#   - nobody in the group runs a program under the shim with
#     `isostack run` (bytes echoed by the Linux peer, sha256 compared);
#   - max_apps_per_uid=2: nobody's third application is refused (EMFILE)
#     while its two others work on and root still attaches; four
#     connections of nobody that never attach are the most it may have
#     pending (the fifth: EAGAIN).
# $1: libisosock.so, $2: ctl_probe.
PROG_TAG=acc
. "$(dirname "$0")/../programs/lib.sh"
PEER_TOOL=$(cd "$(dirname "$0")/.." && pwd)/peer_tool.py
need python3 python3
need setpriv util-linux
PROBE=$2
[ -x "$PROBE" ] || { echo "SKIP: no ctl_probe at $PROBE"; exit 77; }
id nobody >/dev/null 2>&1 || { echo "SKIP: no user nobody"; exit 77; }
# The shim, the command and the probe must be readable by nobody.
for f in "$ISOSTACK_SHIM" "$CLI" "$PROBE"; do
	setpriv --reuid nobody --regid nogroup --clear-groups test -r "$f" ||
		{ echo "SKIP: $f is not readable by the user nobody"; exit 77; }
done

GID=
for g in $(seq 47000 47100); do
	getent group "$g" >/dev/null || { GID=$g; break; }
done
[ -n "$GID" ] || fail "no free gid in 47000..47100"
PORT=9320
chmod 755 "$tmp"
head -c 200000 /dev/urandom >"$tmp/data"
chmod 644 "$tmp/data"
want=$(sha256sum <"$tmp/data" | cut -d' ' -f1)

stack_up --set control_group=$GID --set max_apps_per_uid=2
. <(sed -n 's/^\([A-Z0-9_]*\)=/S_\1=/p' "/run/isostack/$ISOSTACK_NS_PREFIX/state")
CTL=$S_CONTROL
member() { setpriv --reuid nobody --regid nogroup --groups "$GID" "$@"; }
outsider() { setpriv --reuid nobody --regid nogroup --clear-groups "$@"; }
probe() { "$@" "$PROBE" "$CTL" attach </dev/null; }

echo "== the socket file: root:$GID 0660"
[ "$(stat -c '%a %u %g' "$CTL")" = "660 0 $GID" ] || fail "control socket is $(stat -c '%a %u %g' "$CTL")"

echo "== root attaches"
out=$(probe env); echo "$out"
[[ $out == "attach 0 "* ]] || fail "root: $out"

echo "== an outsider: connect refused by the file (EACCES)"
out=$(probe outsider); echo "$out"
[ "$out" = "attach EACCES" ] || fail "outsider: $out"

echo "== an outsider under the shim (isostack run as nobody): socket() fails with EACCES"
outsider "$CLI" run -- python3 -c '
import errno, socket
try:
    socket.socket()
    print("created")
except OSError as e:
    print("socket", errno.errorcode.get(e.errno, e.errno))
' >"$tmp/outsider.out" 2>"$tmp/outsider.err" || true
cat "$tmp/outsider.out" "$tmp/outsider.err"
grep -qx "socket EACCES" "$tmp/outsider.out" || fail "outsider's socket(): $(cat "$tmp/outsider.out")"
[ "$(grep -c 'refuses uid 65534' "$tmp/outsider.err")" -eq 1 ] ||
	fail "the shim did not say once why"

echo "== the file widened to 0666: the daemon's SO_PEERCRED check refuses (EACCES)"
chmod 0666 "$CTL"
out=$(probe outsider); echo "$out"
chmod 0660 "$CTL"
[ "$out" = "attach EACCES" ] || fail "outsider past the file: $out"
isostat=$(dirname "$ISOSTACK_DAEMON")/isostat
"$isostat" -r -c "$CTL" >"$tmp/isostat.log"
refused=$(awk '$1 == "backend.ctl_refused" { print $2 }' "$tmp/isostat.log")
[ "${refused:-0}" -ge 1 ] || fail "backend.ctl_refused is '${refused:-}'"

echo "== the peer echoes"
bg peer "$CLI" peer -- python3 "$PEER_TOOL" echo-server --port $PORT
wait_line "$tmp/peer.out" listening || fail "peer did not listen"

# A member's program under the shim: one echo round, then another when a
# line arrives on stdin (after the refusals below).  Started with & here,
# not with bg: a background command's stdin is /dev/null unless its own
# redirection says otherwise.
# Each FIFO is opened read-write here first (no blocking open), and
# closed in the children, so that closing ours is their end of file.
mkfifo "$tmp/go" "$tmp/hold"
chmod 666 "$tmp/go" "$tmp/hold"
exec 8<>"$tmp/go" 7<>"$tmp/hold"
member "$CLI" run --require -- python3 -c '
import hashlib, socket, sys, threading
data = open(sys.argv[3], "rb").read()
def round_trip(tag):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
    t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
    t.start()
    h = hashlib.sha256()
    while True:
        b = s.recv(65536)
        if not b:
            break
        h.update(b)
    t.join(); s.close()
    print(tag, h.hexdigest(), flush=True)
round_trip("one")
sys.stdin.readline()
round_trip("two")
' $PEER_IP $PORT "$tmp/data" <"$tmp/go" >"$tmp/client.out" 2>&1 7>&- 8>&- &
CLIENT=$!; PIDS+=($!)
wait_line "$tmp/client.out" "^one " 30 "$CLIENT" || fail "member's program: $(cat "$tmp/client.out")"
grep -qx "one $want" "$tmp/client.out" || fail "member's bytes differ"

echo "== max_apps_per_uid=2: the member's second attaches, its third is refused (EMFILE)"
member "$PROBE" "$CTL" attach <"$tmp/hold" >"$tmp/held.out" 2>&1 7>&- 8>&- &
HELD=$!; PIDS+=($!)
wait_line "$tmp/held.out" "^attach" 10 "$HELD" || fail "second application"
grep -q "^attach 0 " "$tmp/held.out" || fail "second application: $(cat "$tmp/held.out")"
out=$(probe member); echo "$out"
[ "$out" = "attach EMFILE" ] || fail "third application: $out"
out=$(probe env); echo "$out"
[[ $out == "attach 0 "* ]] || fail "root after the member's refusal: $out"
echo go >&8
exec 8>&-
wait "$CLIENT" || fail "member's program failed: $(cat "$tmp/client.out")"
grep -qx "two $want" "$tmp/client.out" || fail "member's second round: $(cat "$tmp/client.out")"
exec 7>&-
wait "$HELD" || true

echo "== four pending connections per user; the fifth is refused (EAGAIN)"
exec 7<>"$tmp/hold"
IDLE=()
for i in 1 2 3 4; do
	member "$PROBE" "$CTL" idle <"$tmp/hold" >"$tmp/idle$i.out" 2>&1 7>&- &
	PIDS+=($!); IDLE+=($!)
done
for i in 1 2 3 4; do
	wait_line "$tmp/idle$i.out" connected 10 "${IDLE[$((i - 1))]}" || fail "idle connection $i"
done
out=$(member "$PROBE" "$CTL" attach hold </dev/null); echo "$out"
[ "$out" = "attach EAGAIN" ] || fail "fifth pending connection: $out"
exec 7>&-
echo "PASS"
