#!/usr/bin/env python3
"""A synthetic records.json in the shape `isostack bench` writes, for
testing bench/plot_figures.py without running a benchmark.

    gen_records.py DIR      writes DIR/records.json

The figures are made up (seeded, so every run writes the same file) and
look roughly like a run's: nothing here is a measurement. Besides the full
axes of every figure on the wire at MTU 1500 it holds the cases a real run
can produce: a second MTU and the no-kernel topology with a few points,
a point off the paper's axis (an --only point), failed points (ok false),
points from before the CPU-accounting fields existed, and records the
plotter must leave out (unknown figure or variant).
"""
import json
import math
import os
import random
import sys

# The paper's axes and figures as the bench plans them (one definition).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "scripts", "lib"))
from bench_paper_plan import CONNS, FIGURES, SIZES  # noqa: E402

SPEED = {"native": 1.0, "core": 2.6, "lock": 2.1, "basic": 1.4, "aggregate": 2.4}


def record(rng, fig, variant, topo, mtu, conns, nbytes, seconds=1.0):
    mode = FIGURES[fig][0]
    stack = "kernel" if variant == "native" else "isostack"
    k = SPEED[variant] * rng.uniform(0.9, 1.1)
    if mode == "rr":
        ops = 30000 * k * min(conns, 8) ** 0.6 / (1 + nbytes / 16384)
        if variant in ("basic", "aggregate") and conns > 16:
            ops *= 16 / conns
        gbit = ops * nbytes * 2 * 8 / 1e9
    else:
        gbit = min(9.5, 0.004 * k * nbytes ** 0.9 * min(conns, 16) ** 0.5)
        ops = gbit * 1e9 / 8 / nbytes
    busy = 100.0 * (1 - math.exp(-conns / 4)) * rng.uniform(0.85, 1.0)
    cpu = busy if stack == "kernel" else 50 + busy / 2
    client = "isoperf client 198.18.0.1 -p 5001 -m {} -c {} -l {} -d {:g} --nodelay --json p.json"
    return {
        "figure": fig, "stack": stack, "variant": variant, "topology": topo,
        "mtu": mtu, "mode": mode, "conns": conns, "msg_bytes": nbytes,
        "seconds": seconds, "ok": True, "error": "",
        "gbit_per_s": round(gbit, 4), "msgs_per_s": round(ops, 1),
        "rtt_p50_us": round(1e6 / max(ops, 1) * conns, 2) if mode == "rr" else None,
        "rtt_p99_us": None, "rtt_p999_us": None,
        "cpu_total_pct": round(cpu, 1), "cpu_total_measured_pct": round(cpu, 1),
        "cpu_core_pct": [round(cpu, 1), round(cpu, 1)],
        "app_cycles_per_op": 2000.0, "stack_busy_pct": None if stack == "kernel" else 60.0,
        "stack_cycles_per_op": None if stack == "kernel" else 900.0,
        "stack_dev_cycles_per_op": None if stack == "kernel" else 300.0,
        "commands": [client.format(mode, conns, nbytes, seconds)],
    }


def figure_records(rng, fig, topo, mtu, xs):
    mode, axis, fixed, variants = FIGURES[fig]
    out = []
    for variant in ["native"] + variants:
        for x in xs:
            conns, nbytes = (fixed, x) if axis == "bytes" else (x, fixed)
            out.append(record(rng, fig, variant, topo, mtu, conns, nbytes))
    return out


def failed(rec, error):
    rec.update(ok=False, error=error, gbit_per_s=None, msgs_per_s=None,
               cpu_total_pct=None)
    return rec


def synth_records(seed=12):
    rng = random.Random(seed)
    recs = []
    for fig, (_, axis, _, _) in FIGURES.items():
        recs += figure_records(rng, fig, "wire", 1500, SIZES if axis == "bytes" else CONNS)
    recs += figure_records(rng, "fig5", "wire", 9000, [64, 1024, 16384])
    recs += figure_records(rng, "fig6", "nokernel", 1500, [1024])
    # An --only point off Fig. 4's 64 connections: a plot of its own.
    recs.append(record(rng, "fig4", "core", "wire", 1500, 8, 1024))
    # Failed points, a point without the throughput fields and one without
    # the CPU fields (a record from before the accounting branch).
    for r in recs:
        point = (r["figure"], r["variant"], r["conns"])
        if point == ("fig8", "lock", 128):
            failed(r, "isoperf client exited 1: connect: Connection refused")
        if point == ("fig10", "basic", 128):
            failed(r, "isostack up --set variant=basic: daemon did not come up\nsee log")
        if point == ("fig9", "basic", 2):
            del r["gbit_per_s"], r["msgs_per_s"]
        if point == ("fig7", "native", 1):
            del r["cpu_total_pct"], r["cpu_core_pct"], r["cpu_total_measured_pct"]
    # Records the plotter must leave out.
    recs.append(dict(record(rng, "fig4", "core", "wire", 1500, 64, 64), figure="fig11"))
    recs.append(dict(record(rng, "fig4", "core", "wire", 1500, 64, 64), variant="turbo"))
    return {"meta": {"synthetic": True, "seed": seed, "quick": False}, "records": recs}


# What plot_figures.py must write for synth_records(): one PNG per figure
# and topology/MTU, and the --only point's own.
EXPECTED_PNGS = sorted([f"{f}-wire-1500.png" for f in FIGURES] + [
    "fig5-wire-9000.png", "fig6-nokernel.png", "fig4-wire-1500-8c.png"])
EXPECTED_LEFT_OUT = 2
EXPECTED_NOT_MEASURED = {"fig8-wire-1500.png": 1, "fig9-wire-1500.png": 1,
                         "fig10-wire-1500.png": 1}


def write(outdir):
    path = os.path.join(outdir, "records.json")
    with open(path, "w") as f:
        json.dump(synth_records(), f, indent=1)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_records.py DIR")
    print(write(sys.argv[1]))
