#!/usr/bin/env bash
# The systemd unit that `meson install` puts in place passes `systemd-analyze
# verify` with nothing to say: the project is installed into a DESTDIR, and
# a copy of the installed unit whose ExecStart (and --config) point into
# that tree is verified, so the check that the binary exists and is
# executable is real; the other units it names (dev-hugepages.mount, the
# targets) come from this machine's systemd. Unknown keys only draw a
# warning from verify (exit status 0): any output fails the test. Also
# checks the unit is Type=notify with NotifyAccess=main and a watchdog,
# and prints `systemd-analyze security` (not asserted: a score).
# Skips (77) without systemd-analyze or meson.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${ISOSTACK_BUILD:-$here/../../build}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null || skip "no systemd-analyze (package systemd)"
command -v meson >/dev/null || skip "no meson"
[ -f "$build/build.ninja" ] || skip "no meson build directory at $build"

tmp=$(mktemp -d /tmp/isostack-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

echo "== meson install --destdir $dest"
out=$(meson install -C "$build" --no-rebuild --destdir "$dest" 2>&1) ||
	fail "meson install: $(tail -5 <<<"$out")"
unit=$(find "$dest" -path '*/systemd/system/isostackd.service' | head -1)
[ -n "$unit" ] || fail "meson install put no systemd/system/isostackd.service in $dest"
echo "installed unit: ${unit#"$dest"}"

exec_line=$(grep -m1 '^ExecStart=' "$unit") || fail "no ExecStart= in the unit"
set -- ${exec_line#ExecStart=}
bin=$1 conf=
while [ $# -gt 0 ]; do
	if [ "$1" = --config ] && [ $# -gt 1 ]; then conf=$2; fi
	shift
done
[ -x "$dest$bin" ] || fail "ExecStart names $bin, not installed (no $dest$bin)"
[ -n "$conf" ] || fail "ExecStart passes no --config"
[ -f "$dest$conf" ] || fail "ExecStart's --config $conf is not installed"
for want in '^Type=notify$' '^NotifyAccess=main$' '^WatchdogSec=' \
	    '^NoNewPrivileges=yes$' '^ProtectSystem=' '^CapabilityBoundingSet='; do
	grep -q "$want" "$unit" || fail "the unit has no line matching $want"
done

# The copy: the same unit with the installed tree's paths.
mkdir "$tmp/unit"
copy=$tmp/unit/isostackd.service
sed "s|^ExecStart=$bin|ExecStart=$dest$bin|; s|--config $conf|--config $dest$conf|" \
	"$unit" >"$copy"
grep -q "^ExecStart=$dest$bin --config $dest$conf" "$copy" ||
	fail "could not point ExecStart into $dest"

echo "== systemd-analyze verify"
rc=0
out=$(systemd-analyze verify "$copy" 2>&1) || rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	echo "$out"
	fail "systemd-analyze verify: exit $rc, $(wc -l <<<"$out") lines of complaints"
fi
echo "no complaints"

echo "== systemd-analyze security (for information)"
systemd-analyze security --offline=yes "$copy" 2>&1 | tail -1 || true
echo "PASS"
