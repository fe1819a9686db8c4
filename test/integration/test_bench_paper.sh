#!/usr/bin/env bash
# `isostack bench --quick` end to end, one point per figure for a second
# each, kernel and isostack, every variant, and figure v6's points over
# IPv4 and IPv6: every record well formed and
# run (ok, messages/s > 0), report.md written, every PNG valid when
# plotting is available; l2 (dpdk-testpmd beside isostackd) when
# dpdk-testpmd is installed. Then Fig. 6's 1 KB point on the no-kernel
# topology (both ends on isostack; the kernel on loopback), and v6's 1 KB
# point in 2 rounds (--rounds: IPv4 and IPv6 groups alternate, each round
# recorded, the table gives the rounds' range). Never checks a speed.
. "$(dirname "$0")/lib.sh"
ISOPERF=${ISOSTACK_BUILD:-$here/../../build}/bench/isoperf
[ -x "$ISOPERF" ] || skip "no isoperf at $ISOPERF (build bench/ first)"
[ -f "${ISOSTACK_BUILD:-$here/../../build}/libisosock/libisosock.so" ] || skip "no libisosock.so built"

out=$(mktemp -d /tmp/isob-test.XXXXXX)
out2=$(mktemp -d /tmp/isob-test.XXXXXX)
out3=$(mktemp -d /tmp/isob-test.XXXXXX)
cleanup() { rm -rf -- "$out" "$out2" "$out3"; }
trap cleanup EXIT

figs=(fig4 fig5 fig6 fig7 fig8 fig9 fig10 v6)
# 16 connections, not the paper's 128, where a connection count is free:
# at 128 one send in a few dozen runs ends short (a byte count missing or
# 112 bytes lost: a stack bug, open in issue 14, docs/performance.md), and
# this test is about the runner's output, not that bug.
# v6:1x1024: request/response 1 KB over IPv4 and over IPv6, both stacks.
only=fig4:16x1024,fig5:16x64,fig6:1x1024,fig7:16x1024,fig8:16x64,fig9:16x64,fig10:16x1024,v6:1x1024
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
step "isostack bench --quick --only fig6:1x1024 --seconds 1 --topology nokernel"
"$ISOSTACK_CLI" bench --quick --only fig6:1x1024 --seconds 1 --topology nokernel --out "$out2" ||
	fail "isostack bench (nokernel) exited $?"
python3 "$here/bench_check.py" "$out2" "$(nproc)" "$plots" fig6 || fail "bad output (nokernel)"
python3 -c '
import json, sys
recs = json.load(open(sys.argv[1]))["records"]
got = {(r["stack"], r["topology"]) for r in recs}
want = {("kernel", "nokernel"), ("isostack", "nokernel")}
sys.exit(0 if got == want else "want %s, got %s" % (want, got))
' "$out2/records.json" || fail "nokernel records"
step "isostack bench --only v6:1x1024 --seconds 1 --rounds 2 --stack isostack"
"$ISOSTACK_CLI" bench --only v6:1x1024 --seconds 1 --rounds 2 --stack isostack --topology wire \
	--out "$out3" || fail "isostack bench --rounds 2 exited $?"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1] + "/records.json"))
recs = d["records"]
seq = [(r["round"], r["family"]) for r in recs if r["ok"]]
want = [(1, 4), (1, 6), (2, 4), (2, 6)]
if d["meta"]["rounds"] != 2 or seq != want:
    sys.exit("rounds: want %s in that order, got %s (meta rounds %s)" % (want, seq, d["meta"]["rounds"]))
md = open(sys.argv[1] + "/report.md").read()
if "2 rounds" not in md or "min-max (2 rounds)" not in md:
    sys.exit("report.md does not say the rounds")
' "$out3" || fail "rounds"
step "nothing left behind"
[ "$(leftovers)" = "$before" ] || fail "left behind: $(comm -13 <(echo "$before") <(leftovers) | tr '\n' ' ')"
echo "PASS"
