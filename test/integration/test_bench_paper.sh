#!/usr/bin/env bash
# `isostack bench --quick` end to end, one point per figure for a second
# each, kernel and isostack: every record well formed and run (ok,
# messages/s > 0; a variant this tree does not have yet is reported as
# "unavailable" and accepted), report.md written, every PNG valid when
# plotting is available; l2 (dpdk-testpmd beside isostackd) when
# dpdk-testpmd is installed. The wire topology only: the no-kernel one
# needs the daemon to accept connections from its own applications to its
# own address, which this tree does not do yet (add nokernel to --topology
# when it does). Never checks a speed.
. "$(dirname "$0")/lib.sh"
ISOPERF=${ISOSTACK_BUILD:-$here/../../build}/bench/isoperf
[ -x "$ISOPERF" ] || skip "no isoperf at $ISOPERF (build bench/ first)"
[ -f "${ISOSTACK_BUILD:-$here/../../build}/libisosock/libisosock.so" ] || skip "no libisosock.so built"

out=$(mktemp -d /tmp/isob-test.XXXXXX)
cleanup() { rm -rf -- "$out"; }
trap cleanup EXIT

figs=(fig4 fig5 fig6 fig7 fig8 fig9 fig10)
only=fig4:64x1024,fig5:128x64,fig6:1x1024,fig7:16x1024,fig8:128x64,fig9:128x64,fig10:16x1024
if command -v dpdk-testpmd >/dev/null; then
	only+=,l2 figs+=(l2)
else
	echo "note: no dpdk-testpmd: the l2 point is left out"
fi
plots=0
if [ -f "$here/../../bench/plot_figures.py" ] &&
   { python3 -c 'import matplotlib' || /usr/bin/python3 -c 'import matplotlib'; } 2>/dev/null; then
	plots=1
else
	echo "note: no bench/plot_figures.py or python3-matplotlib: no PNG to check"
fi

# What this run leaves behind, compared with what was there before it.
leftovers() { { ip netns list; ls /run/isostack 2>/dev/null; } | awk '{print $1}' | { grep '^isob' || true; } | sort; }
before=$(leftovers)

step "isostack bench --quick --only $only --seconds 1 --topology wire"
"$ISOSTACK_CLI" bench --quick --only "$only" --seconds 1 --topology wire --out "$out" ||
	fail "isostack bench exited $?"
step "records, report and plots"
python3 "$here/bench_check.py" "$out" "$(nproc)" "$plots" "${figs[@]}" || fail "bad output"
step "nothing left behind"
[ "$(leftovers)" = "$before" ] || fail "left behind: $(comm -13 <(echo "$before") <(leftovers) | tr '\n' ' ')"
echo "PASS"
