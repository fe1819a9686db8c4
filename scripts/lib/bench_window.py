#!/usr/bin/env python3
# The measuring window's edge for `isostack bench`: isoperf runs this as
# `--window-cmd` (`bench_window.py start`, `bench_window.py end`) right
# before its window opens and right after it closes, so the counters it
# snapshots cover exactly the figures' window. Written to
# $ISOB_WIN_PREFIX-{start,end}.txt, one `name value` per line:
#   time.ns            CLOCK_MONOTONIC
#   cpu.N.busy/.total  /proc/stat ticks of core N (busy = all but idle+iowait)
#   everything `isostat -r` prints (the daemon's loop cycles, ports, lwIP),
#   when ISOB_CONTROL names a daemon's control socket.
# A failure to reach the daemon is written as `isostat.error 1`, never fatal:
# the runner reports the missing stack figures, the point still counts.
import os
import subprocess
import sys
import time


def proc_stat():
    out = []
    with open("/proc/stat") as f:
        for line in f:
            w = line.split()
            if not w[0].startswith("cpu") or w[0] == "cpu":
                continue
            ticks = [int(x) for x in w[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            out.append(f"cpu.{w[0][3:]}.busy {sum(ticks[:8]) - idle}")
            out.append(f"cpu.{w[0][3:]}.total {sum(ticks[:8])}")
    return out


def main():
    edge = sys.argv[1] if len(sys.argv) > 1 else "start"
    prefix = os.environ["ISOB_WIN_PREFIX"]
    lines = [f"time.ns {time.monotonic_ns()}"] + proc_stat()
    ctl, isostat = os.environ.get("ISOB_CONTROL"), os.environ.get("ISOB_ISOSTAT")
    if ctl and isostat:
        p = subprocess.run([isostat, "-c", ctl, "-r"], capture_output=True, text=True)
        if p.returncode == 0:
            lines.append(p.stdout.strip())
        else:
            lines.append("isostat.error 1")
    with open(f"{prefix}-{edge}.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
