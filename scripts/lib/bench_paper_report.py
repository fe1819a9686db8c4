# Records, tables and the report of `isostack bench` (bench_paper.py).
#
# One record per (figure, point): what isoperf measured in its window, and
# what the window snapshots (bench_window.py) say about the cores and the
# daemon over the same window. isoperf fields that a newer isoperf adds
# (ops, window_s, cpu_core_pct, app_cpu_s, tsc_hz, ...) are used when
# present and derived from the snapshots when not.
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import bench_paper_plan as plan_mod

STACK_CORE = 1
WRAP32 = 1 << 32


def clear_old(out):
    """Old results never mix into a new summary: remove this runner's own
    files (other benchmarks' files in OUT stay)."""
    for f in ["records.json", "report.md"] + glob.glob(os.path.join(out, "fig*.png")):
        path = os.path.join(out, f)
        if os.path.exists(path):
            os.unlink(path)
    shutil.rmtree(os.path.join(out, "paper-logs"), ignore_errors=True)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_hz():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * 1e6
    return None


def meta(env, args, secs, stacks, topos):
    git = ["git", "-C", env.src or ".", "describe", "--always", "--dirty", "--abbrev=40"]
    p = subprocess.run(git, capture_output=True, text=True)
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": platform.release(),
            "cpu_model": cpu_model(), "cores": os.cpu_count(),
            "git_commit": p.stdout.strip() if p.returncode == 0 else None,
            "command": args.command or " ".join(sys.argv), "quick": args.quick,
            "seconds_per_point": secs, "stacks": stacks,
            "topologies": topos, "only": args.only or None,
            "isoperf_window_cmd": env.has_window, "stack_core": STACK_CORE,
            "rounds": getattr(args, "rounds", 1)}


def delta(snaps, key, wrap=False):
    a, b = snaps[0].get(key), snaps[1].get(key)
    if a is None or b is None:
        return None
    return (b - a) % WRAP32 if wrap else b - a


def core_pcts(snaps):
    out, n = [], 0
    while f"cpu.{n}.total" in snaps[0]:
        t = delta(snaps, f"cpu.{n}.total")
        out.append(round(100.0 * delta(snaps, f"cpu.{n}.busy") / t, 2) if t else 0.0)
        n += 1
    return out


def empty_record(fig, g, m, secs):
    return {"figure": fig, "stack": g.stack, "variant": g.variant, "topology": g.topology,
            "mtu": g.mtu, "family": m.get("family", 4), "mode": m["mode"],
            "conns": m["conns"], "msg_bytes": m["bytes"],
            "seconds": secs, "ok": False, "error": "", "gbit_per_s": None,
            "msgs_per_s": None, "rtt_p50_us": None, "rtt_p99_us": None, "rtt_p999_us": None,
            "cpu_total_pct": None, "cpu_total_measured_pct": None, "cpu_core_pct": [],
            "app_cycles_per_op": None, "stack_cycles_per_op": None,
            "stack_dev_cycles_per_op": None, "stack_busy_pct": None, "commands": []}


def make_record(fig, g, m, secs, res, snaps, err, commands):
    r = empty_record(fig, g, m, secs)
    r["commands"] = [c for c in commands if c]
    r["error"] = err
    if res is None:
        r["error"] = err or "no result"
        return r
    for k in ("gbit_per_s", "msgs_per_s", "rtt_p50_us", "rtt_p99_us", "rtt_p999_us"):
        r[k] = res.get(k)
    ops = res.get("ops", res.get("msgs"))
    window = res.get("window_s", res.get("seconds")) or secs
    r["ops"], r["window_s"] = ops, window
    cores = res.get("cpu_core_pct") or (core_pcts(snaps) if snaps else [])
    r["cpu_core_pct"] = cores
    measured = res.get("cpu_total_pct", res.get("sys_cpu_pct"))
    if measured is None and cores:
        measured = sum(cores) / len(cores)
    r["cpu_total_measured_pct"] = measured
    if g.stack == "isostack" and len(cores) > STACK_CORE:
        # The paper counts the stack core as fully busy: it polls.
        paper = list(cores)
        paper[STACK_CORE] = 100.0
        r["cpu_total_pct"] = round(sum(paper) / len(paper), 2)
    else:
        r["cpu_total_pct"] = measured
    hz = res.get("tsc_hz") or (snaps[1].get("loop.tsc_hz") if snaps else None) or cpu_hz()
    app = res.get("app_cycles_per_op")
    if app is None and ops and hz:
        app_s = res.get("app_cpu_s")
        if app_s is None and res.get("app_cpu_pct") is not None:
            app_s = res["app_cpu_pct"] / 100.0 * res.get("cores", os.cpu_count()) * window
        app = app_s * hz / ops if app_s is not None else None
    r["app_cycles_per_op"] = round(app, 1) if app is not None else None
    if g.stack == "isostack" and snaps:
        stack_fields(r, snaps, ops, window)
    r["ok"] = not err and bool(r["msgs_per_s"])
    if not err and not r["msgs_per_s"]:
        r["error"] = "no messages in the window"
    return r


def stack_fields(r, snaps, ops, window):
    busy = delta(snaps, "loop.busy_cycles")
    idle = delta(snaps, "loop.idle_cycles") or 0
    sleep = delta(snaps, "loop.sleep_cycles") or 0
    dev = delta(snaps, "loop.dev_cycles")
    ns = delta(snaps, "time.ns")
    # The snapshots bracket isoperf's window from just outside it (the
    # hook runs before it opens and after it closes): per operation is
    # the daemon's cycles per second over the snapshots' interval divided
    # by the operations per second over the window.
    span = ns / 1e9 if ns else window
    if busy is not None and ops and span and window:
        per_s = ops / window
        r["stack_cycles_per_op"] = round(busy / span / per_s, 1)
        if dev is not None:
            r["stack_dev_cycles_per_op"] = round(dev / span / per_s, 1)
    if busy is not None and busy + idle + sleep > 0:
        r["stack_busy_pct"] = round(100.0 * busy / (busy + idle + sleep), 2)
    if ns:
        pkts = sum(delta(snaps, k) or 0 for k in snaps[0]
                   if k.startswith("port.") and k.endswith(("rx_pkts", "tx_pkts")))
        segs = [delta(snaps, f"lwip.tcp.{k}", wrap=True) for k in ("recv", "xmit")]
        r["stack_pkts_per_s"] = round(pkts * 1e9 / ns, 1)
        if None not in segs:
            r["stack_tcp_segs_per_s"] = round(sum(segs) * 1e9 / ns, 1)


def l2_records(l2, pmd, secs, testpmd_pps, err, cmd):
    """Three records of figure "l2": testpmd's io forwarding rate on the
    vdev, isostackd's raw packet rate (its ports' rx+tx) and its TCP
    segment rate (lwIP's tcp recv+xmit), both over Fig. 5's 64 B window."""
    class G:
        stack, variant, topology, mtu = "testpmd", "io", "wire", 1500
    m = {"mode": "fwd", "conns": 0, "bytes": 64}
    t = empty_record("l2", G, m, secs)
    t.update(metric="testpmd_io_fwd_pps", pmd=pmd, commands=[cmd], error=err,
             msgs_per_s=testpmd_pps, ok=not err and bool(testpmd_pps))
    out = [t]
    g = l2.get("group")
    for metric, key in (("isostackd_raw_pps", "stack_pkts_per_s"),
                        ("isostackd_tcp_segs_per_s", "stack_tcp_segs_per_s")):
        if g is None:
            class G2:
                stack, variant, topology, mtu = "isostack", "core", "wire", 1500
            r = empty_record("l2", G2, {"mode": "send", "conns": 128, "bytes": 64}, secs)
            r["error"] = "Fig. 5's 64 B point did not run"
        else:
            r = make_record("l2", g, l2["m"], secs, l2["res"], l2["snaps"], l2["err"],
                            l2["commands"])
            rate = r.get(key)
            r["msgs_per_s"] = rate
            if r["ok"] and not rate:
                r["ok"], r["error"] = False, "no daemon counters over the window"
        r.update(metric=metric, pmd=pmd)
        out.append(r)
    return out


def fmt(v, spec=",.0f"):
    return "-" if v is None else format(v, spec)


def median_record(recs):
    """Of one point's records (one per round), the one with the median
    rate among those that have one (the lower middle of an even count), so
    every figure in its row comes from the same run; a failed one if none
    has a rate."""
    ok = sorted((r for r in recs if r["ok"]), key=lambda r: r["msgs_per_s"])
    return ok[(len(ok) - 1) // 2] if ok else recs[-1]


def figure_rows(recs):
    """Rows keyed by (topology, MTU, conns, bytes); columns by variant, the
    median round of each. On nokernel the kernel runs over loopback (its
    own MTU): MTU is the daemon's."""
    rows, variants = {}, []
    for r in recs:
        mtu = r["mtu"] if r["topology"] == "wire" else None
        rows.setdefault((r["topology"], mtu, r["conns"], r["msg_bytes"]), {}).setdefault(
            r["variant"], []).append(r)
        if r["variant"] not in variants:
            variants.append(r["variant"])
    for e in rows.values():
        for v in e:
            e[v] = median_record(e[v])
    return rows, [v for v in plan_mod.VARIANT_ORDER if v in variants]


def figure_table(fig, recs, md):
    """Lines of one figure's table: plain text, or markdown with md."""
    rows, variants = figure_rows(recs)
    mode = recs[0]["mode"]
    iso = [v for v in variants if v != "native"]
    head = ["topology", "MTU", "conns", "bytes"]
    head += ["kernel msgs/s" if v == "native" else f"{v} msgs/s" for v in variants]
    head += [f"{v}/kernel" for v in iso]
    head += ["kernel CPU%" if v == "native" else f"{v} CPU%" for v in variants]
    if mode == "rr":
        head += ["kernel p50 us" if v == "native" else f"{v} p50 us" for v in variants]
    else:
        head += ["kernel Gbit/s" if v == "native" else f"{v} Gbit/s" for v in variants]
    if "core" in variants:
        head += ["core stack cyc/op"]
    lines = []
    for key in sorted(rows, key=lambda k: (k[0] == "nokernel", k[1] or 0, k[2], k[3])):
        e = rows[key]
        cells = [key[0], str(key[1] or "-"), str(key[2]), str(key[3])]
        ok = {v: e[v] for v in variants if v in e}
        for v in variants:
            r = ok.get(v)
            cells.append(fmt(r["msgs_per_s"]) if r and r["ok"] else
                         ("n/a" if r and r["error"].startswith("unavailable") else "fail"
                          if r else "-"))
        k = ok.get("native")
        for v in iso:
            r = ok.get(v)
            good = r and k and r["ok"] and k["ok"] and k["msgs_per_s"]
            cells.append(f"{r['msgs_per_s'] / k['msgs_per_s']:.2f}" if good else "-")
        for v in variants:
            r = ok.get(v)
            cells.append(fmt(r["cpu_total_pct"], ".1f") if r and r["ok"] else "-")
        col = "rtt_p50_us" if mode == "rr" else "gbit_per_s"
        for v in variants:
            r = ok.get(v)
            cells.append(fmt(r[col], ".1f" if mode == "rr" else ".3f")
                         if r and r["ok"] else "-")
        if "core" in variants:
            r = ok.get("core")
            cells.append(fmt(r["stack_cycles_per_op"], ",.0f") if r and r["ok"] else "-")
        lines.append(cells)
    if md:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return out
    width = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, width))]
    out += ["  ".join(c.rjust(w) for c, w in zip(cells, width)) for cells in lines]
    return out


def header_bound(mode, nbytes, mtu):
    """The IPv6/IPv4 rate that the 20 more header bytes alone explain, if
    bytes on the wire were the limit: a message of n bytes in segments of
    the MSS each family leaves (MTU - 40, MTU - 60), each with its IP and
    TCP headers and the Ethernet header. Request/response sends a message
    each way; its bound is the same ratio."""
    def wire(l3):
        mss = mtu - l3 - 20
        segs = max(1, -(-nbytes // mss))
        return nbytes + segs * (l3 + 20 + 14)
    return wire(20) / wire(40)


def v6_ratios(a, b):
    """The v6/v4 ratios of one point, a round's IPv6 rate over the same
    round's IPv4 rate (a and b: that point's records, one per round)."""
    v4 = {r.get("round", 1): r["msgs_per_s"] for r in a if r["ok"] and r["msgs_per_s"]}
    return sorted(r["msgs_per_s"] / v4[r.get("round", 1)] for r in b
                  if r["ok"] and r.get("round", 1) in v4)


def v6_table(recs, md):
    """Figure "v6": each point over IPv4 and over IPv6, kernel and
    isostack, the v6/v4 ratios and the bound the header size explains.
    With several rounds: the median round's rates, the median of the
    rounds' ratios and, for isostack, their range."""
    rows = {}
    for r in recs:
        rows.setdefault((r["mode"], r["conns"], r["msg_bytes"], r["mtu"]), {}).setdefault(
            (r["stack"], r["family"]), []).append(r)
    rounds = max((len(v) for e in rows.values() for v in e.values()), default=1)
    head = ["mode", "conns", "bytes"]
    for st in ("kernel", "isostack"):
        head += [f"{st} v4 msgs/s", f"{st} v6 msgs/s", f"{st} v6/v4"]
    if rounds > 1:
        head += [f"isostack v6/v4 min-max ({rounds} rounds)"]
    head += ["header bound", "isostack v4 p50 us", "isostack v6 p50 us"]
    lines = []
    order = {"recv": 0, "send": 1, "rr": 2}
    for key in sorted(rows, key=lambda k: (order.get(k[0], 3), k[1], k[2])):
        e = rows[key]
        cells = [key[0], str(key[1]), str(key[2])]
        for st in ("kernel", "isostack"):
            a, b = e.get((st, 4), []), e.get((st, 6), [])
            for rs in (a, b):
                r = median_record(rs) if rs else None
                cells.append(fmt(r["msgs_per_s"]) if r and r["ok"] else "fail" if r else "-")
            ratios = v6_ratios(a, b)
            cells.append(f"{ratios[(len(ratios) - 1) // 2]:.3f}" if ratios else "-")
        if rounds > 1:
            ratios = v6_ratios(e.get(("isostack", 4), []), e.get(("isostack", 6), []))
            cells.append(f"{ratios[0]:.3f}-{ratios[-1]:.3f}" if ratios else "-")
        cells.append(f"{header_bound(key[0], key[2], key[3] or 1500):.3f}")
        for fam in (4, 6):
            rs = e.get(("isostack", fam), [])
            r = median_record(rs) if rs else None
            cells.append(fmt(r["rtt_p50_us"], ".1f") if r and r["ok"] and key[0] == "rr" else "-")
        lines.append(cells)
    if md:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return out + ["| " + " | ".join(c) + " |" for c in lines]
    width = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, width))]
    return out + ["  ".join(c.rjust(w) for c, w in zip(cells, width)) for cells in lines]


TITLES = {
    "fig4": "Fig. 4: receive, 64 connections, message size",
    "fig5": "Fig. 5: transmit, 128 connections, message size",
    "fig6": "Fig. 6: request/response, 1 connection, message size",
    "fig7": "Fig. 7: request/response 1 KB, connections",
    "fig8": "Fig. 8: transmit 64 B, connections: Core vs Lock",
    "fig9": "Fig. 9: transmit 64 B, connections: queueing variants",
    "fig10": "Fig. 10: request/response 1 KB, connections: queueing variants",
    "v6": "IPv6 beside IPv4: the same points over both, kernel and isostack (wire)",
}


def l2_lines(recs, md):
    lines = ["| metric | rate/s | pmd | ok | error |", "|---|---|---|---|---|"] if md else []
    for r in recs:
        if md:
            lines.append(f"| {r['metric']} | {fmt(r['msgs_per_s'])} | {r.get('pmd')} | "
                         f"{r['ok']} | {r['error']} |")
        else:
            lines.append(f"  {r['metric']:26} {fmt(r['msgs_per_s']):>14}  "
                         f"{'' if r['ok'] else 'FAILED: ' + r['error']}")
    return lines


def write_all(env, meta, records):
    meta["records"] = len(records)
    meta["failed"] = sum(not r["ok"] for r in records)
    with open(os.path.join(env.out, "records.json"), "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    md = [f"# isostack bench: {meta['date']}", "",
          f"`{meta['command']}` on {meta['cpu_model']}, {meta['cores']} cores, Linux "
          f"{meta['kernel']}, commit {meta['git_commit']}; {meta['seconds_per_point']} s per "
          f"point{'' if meta.get('rounds', 1) == 1 else ', %d rounds (the median round shown)' % meta['rounds']}. msgs/s is round trips/s for request/response; CPU% is all cores "
          "(100 = every core busy), isostack's stack core counted as fully busy.", ""]
    for fig in plan_mod.FIG_ORDER:
        recs = [r for r in records if r["figure"] == fig]
        if not recs:
            continue
        table = v6_table if fig == "v6" else (lambda rs, md: figure_table(fig, rs, md))
        print(f"\n{TITLES[fig]}")
        print("\n".join(table(recs, False)))
        md += [f"## {TITLES[fig]}", ""] + table(recs, True) + [""]
    l2 = [r for r in records if r["figure"] == "l2"]
    if l2:
        print("\nL2: dpdk-testpmd io forwarding vs isostackd (Fig. 5, 64 B) on the same vdev")
        print("\n".join(l2_lines(l2, False)))
        md += ["## L2: dpdk-testpmd io forwarding beside isostackd (Fig. 5, 64 B)", ""]
        md += l2_lines(l2, True) + [""]
    failed = [r for r in records if not r["ok"]]
    if failed:
        md += ["## Points without a figure", ""]
        md += [f"- {r['figure']} {r['stack']}/{r['variant']} {r['topology']} "
               f"IPv{r.get('family', 4)} {r['mode']} "
               f"{r['conns']}x{r['msg_bytes']}: {r['error']}" for r in failed] + [""]
    with open(os.path.join(env.out, "report.md"), "w") as f:
        f.write("\n".join(md))
    plot(env)
    print(f"\nisostack: bench: {len(records)} records ({meta['failed']} without a figure) in "
          f"{env.out}/records.json, tables in report.md; {meta['elapsed_s']} s",
          file=sys.stderr)


def plot(env):
    script = os.path.join(env.src, "bench", "plot_figures.py") if env.src else ""
    if not script or not os.path.exists(script):
        print("isostack: bench: no bench/plot_figures.py here: plots skipped", file=sys.stderr)
        return
    # Debian's python3-matplotlib lives in /usr/bin/python3's path, which
    # need not be the python3 first on PATH.
    py = next((p for p in (sys.executable, "/usr/bin/python3")
               if os.path.exists(p) and subprocess.run(
                   [p, "-c", "import matplotlib"], capture_output=True).returncode == 0), None)
    if py is None:
        print("isostack: bench: python3-matplotlib is not installed (isostack setup): "
              "plots skipped", file=sys.stderr)
        return
    p = subprocess.run([py, script, env.out], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"isostack: bench: plotting failed: {p.stderr.strip()[-300:]}", file=sys.stderr)
