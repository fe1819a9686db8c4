#!/bin/bash
# Isolation between applications (issue 14, point 3), with two users that
# exist on every Debian system, nobody (A) and daemon (B), both given a
# gid no group has with setpriv --groups (the control socket's group, as
# in access/test_ctl_access.sh, which checks who may attach at all):
#   - A: python3 under the shim echoes 200 kB through the Linux peer and
#     keeps its connection open (its rings and extents mapped);
#   - B: iso_probe, as daemon, attaches itself and then tries A's memory:
#     A's memfds through /proc/A/fd/N and /proc/A/map_files/RANGE,
#     /proc/A/mem, process_vm_readv, pidfd_getfd of A's fds; the daemon's
#     memfds through /proc/DAEMON/fd/N; every file of the instance's
#     hugetlbfs mount (DPDK's hugepages: every application's frames pass
#     through them).  Each must fail with EACCES or EPERM;
#   - the segment and every extent the daemon hands B (CTL_EXTENT for ids
#     0..63) are B's own: no inode of A's memfds among them;
#   - the hugetlbfs files are not readable by group or others (mode).
# Processes of one uid can read each other's memory on Linux (ptrace
# rules); that is not tested here (docs/reliability.md).
# $1: libisosock.so, $2: iso_probe.
PROG_TAG=iso
. "$(dirname "$0")/../programs/lib.sh"
PEER_TOOL=$(cd "$(dirname "$0")/.." && pwd)/peer_tool.py
need python3 python3
need setpriv util-linux
PROBE=$2
[ -x "$PROBE" ] || { echo "SKIP: no iso_probe at $PROBE"; exit 77; }
for u in nobody daemon; do
	id "$u" >/dev/null 2>&1 || { echo "SKIP: no user $u"; exit 77; }
done
for f in "$ISOSTACK_SHIM" "$CLI" "$PROBE"; do
	setpriv --reuid daemon --regid daemon --clear-groups test -r "$f" ||
		{ echo "SKIP: $f is not readable by the user daemon"; exit 77; }
done

GID=
for g in $(seq 47000 47100); do
	getent group "$g" >/dev/null || { GID=$g; break; }
done
[ -n "$GID" ] || fail "no free gid in 47000..47100"
PORT=9330
chmod 755 "$tmp"
head -c 200000 /dev/urandom >"$tmp/data"
chmod 644 "$tmp/data"
want=$(sha256sum <"$tmp/data" | cut -d' ' -f1)

stack_up --set control_group=$GID
. <(sed -n 's/^\([A-Z0-9_]*\)=/S_\1=/p' "/run/isostack/$ISOSTACK_NS_PREFIX/state")
CTL=$S_CONTROL
# ISOLATION_USER_B=nobody runs B as A's user: the test must then fail
# (that is how it was checked).
USER_B=${ISOLATION_USER_B:-daemon}
user_b() { setpriv --reuid "$USER_B" --regid "$(id -g "$USER_B")" --groups "$GID" "$@"; }

echo "== the peer echoes"
bg peer "$CLI" peer -- python3 "$PEER_TOOL" echo-server --port $PORT
wait_line "$tmp/peer.out" listening || fail "peer did not listen"

echo "== A (nobody) under the shim: 200 kB echoed, connection held"
mkfifo "$tmp/hold"
chmod 666 "$tmp/hold"
exec 7<>"$tmp/hold"
setpriv --reuid nobody --regid nogroup --groups "$GID" "$CLI" run --require -- python3 -c '
import hashlib, socket, sys, threading
data = open(sys.argv[3], "rb").read()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
t = threading.Thread(target=lambda: s.sendall(data)); t.start()
h = hashlib.sha256(); got = 0
while got < len(data):
    b = s.recv(65536)
    if not b:
        break
    h.update(b); got += len(b)
t.join()
print("echoed", h.hexdigest(), flush=True)
sys.stdin.readline()
s.close()
' $PEER_IP $PORT "$tmp/data" <"$tmp/hold" >"$tmp/a.out" 2>&1 7>&- &
A=$!; PIDS+=($A); LAST_PID=$A
wait_line "$tmp/a.out" "^echoed " 30 "$A" || fail "A: $(cat "$tmp/a.out")"
grep -qx "echoed $want" "$tmp/a.out" || fail "A's bytes differ"
# A's process as the daemon knows it (the pid its ATTACH gave).
"$(dirname "$ISOSTACK_DAEMON")/isostat" -r -c "$CTL" >"$tmp/isostat.log" || fail "isostat"
APID=$(awk '$1 ~ /^app\.[0-9]+\.pid$/ { print $2 }' "$tmp/isostat.log")
[ "$(wc -w <<<"$APID")" -eq 1 ] || fail "applications attached: '$APID' (A alone expected)"
[ "$(stat -c %U "/proc/$APID")" = nobody ] || fail "A runs as $(stat -c %U "/proc/$APID")"

# What root sees of A: its memfds (segment, the shim's shared state) by
# fd, and the isostack ones (segment, extents) by mapping, with their
# inodes (the shim closes an extent's fd once it is mapped).
targets=()
a_inodes=()
for fd in /proc/$APID/fd/*; do
	l=$(readlink "$fd" 2>/dev/null) || continue
	[[ $l == /memfd:* ]] || continue
	targets+=("$fd")
	a_inodes+=("$(stat -L -c %i "$fd")")
	echo "A: $fd -> $l inode ${a_inodes[-1]}"
done
[ ${#targets[@]} -ge 2 ] || fail "A holds ${#targets[@]} memfds (segment and extents expected)"
n=0
for m in /proc/$APID/map_files/*; do
	l=$(readlink "$m" 2>/dev/null) || continue
	[[ $l == /memfd:isostack* ]] || continue
	targets+=("$m"); n=$((n + 1))
	a_inodes+=("$(stat -L -c %i "$m")")
done
echo "A: $n mappings of isostack memfds in map_files"
[ $n -ge 2 ] || fail "A maps $n isostack memfds"
d=0
for fd in /proc/$S_DAEMON_PID/fd/*; do
	l=$(readlink "$fd" 2>/dev/null) || continue
	[[ $l == /memfd:isostack* ]] || continue
	targets+=("$fd"); d=$((d + 1))
done
echo "daemon: $d isostack memfds"
huge=$(awk -v p="$ISOSTACK_NS_PREFIX" '$3 == "hugetlbfs" && index($2, p) { print $2 }' /proc/mounts | head -1)
h=0
if [ -n "$huge" ]; then
	while IFS= read -r f; do
		mode=$(stat -c %a "$f")
		echo "hugetlbfs: $f mode $mode owner $(stat -c %U "$f")"
		[ $((8#$mode & 8#044)) -eq 0 ] || fail "$f is readable by group or others (mode $mode)"
		targets+=("$f"); h=$((h + 1))
	done < <(find "$huge" -type f)
fi
echo "hugetlbfs files: $h (mount: ${huge:-none: the daemon runs without hugepages})"

echo "== B ($USER_B) attaches and tries A's memory"
user_b "$PROBE" "$CTL" "$APID" "${targets[@]}" >"$tmp/b.out" 2>&1 || fail "iso_probe: $(cat "$tmp/b.out")"
cat "$tmp/b.out"
grep -q "^attach ok " "$tmp/b.out" || fail "B did not attach"
opened=$(grep -c "^open " "$tmp/b.out")
[ "$opened" -eq $(( ${#targets[@]} + 1 )) ] || fail "B tried $opened paths, not $(( ${#targets[@]} + 1 ))"
bad=$(awk '$1 == "open" && $3 != "EACCES" && $3 != "EPERM"' "$tmp/b.out")
[ -z "$bad" ] || fail "B opened: $bad"
! grep -q "^mmap \|^pread " "$tmp/b.out" || fail "B mapped or read: $(grep '^mmap \|^pread ' "$tmp/b.out")"
grep -Eq "^process_vm_readv $APID (EPERM|EACCES)$" "$tmp/b.out" || fail "process_vm_readv: $(grep process_vm_readv "$tmp/b.out")"
! grep -q "^pidfd_getfd $APID [0-9]* ok" "$tmp/b.out" || fail "pidfd_getfd gave B an fd of A's"
grep -Eq "^pidfd_getfd $APID (EPERM|EACCES)$" "$tmp/b.out" || fail "pidfd_getfd: $(grep pidfd "$tmp/b.out")"

echo "== every fd the daemon gave B is B's own"
b_inodes=$(awk '$1 == "segment" { print $2 } $1 == "extent" && $3 ~ /^[0-9]+$/ { print $3 }' "$tmp/b.out")
[ "$(wc -w <<<"$b_inodes")" -ge 2 ] || fail "B got $(wc -w <<<"$b_inodes") fds (segment and an extent expected)"
for i in $b_inodes; do
	for j in "${a_inodes[@]}"; do
		[ "$i" != "$j" ] || fail "B was given A's memfd (inode $i)"
	done
done
echo "B's inodes: $(echo $b_inodes); A's: ${a_inodes[*]}"

exec 7>&-
wait "$A" || fail "A: status $?"
echo "PASS"
