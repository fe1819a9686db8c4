#!/usr/bin/env python3
# Checks an `isostack bench` output folder (test_bench_paper.sh): every
# record of DIR/records.json has every field with the right type, every
# record ran (ok, messages/s > 0; every variant and topology exists, so an
# "unavailable" configuration fails too), and every DIR/fig*.png is a PNG
# (signature, then an IHDR chunk whose CRC matches). No speed is checked.
#
#   bench_check.py DIR NCORES EXPECT_PLOTS(0|1) FIGURE...
import glob
import json
import os
import struct
import sys
import zlib

NUM = (int, float)
OPT_NUM = (int, float, type(None))
FIELDS = {
    "figure": str, "stack": str, "variant": str, "topology": str, "mtu": int,
    "family": int, "mode": str, "conns": int, "msg_bytes": int, "seconds": NUM, "ok": bool,
    "error": str, "gbit_per_s": OPT_NUM, "msgs_per_s": OPT_NUM, "rtt_p50_us": OPT_NUM,
    "rtt_p99_us": OPT_NUM, "rtt_p999_us": OPT_NUM, "cpu_total_pct": OPT_NUM,
    "cpu_total_measured_pct": OPT_NUM, "cpu_core_pct": list, "app_cycles_per_op": OPT_NUM,
    "stack_cycles_per_op": OPT_NUM, "stack_dev_cycles_per_op": OPT_NUM,
    "stack_busy_pct": OPT_NUM, "commands": list,
}
ENUMS = {
    "figure": {"fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "v6", "l2"},
    "family": {4, 6},
    "stack": {"kernel", "isostack", "testpmd"},
    "variant": {"native", "core", "basic", "aggregate", "lock", "io"},
    "topology": {"wire", "nokernel"},
    "mode": {"send", "recv", "rr", "fwd"},
}
errors = []


def bad(r, why):
    errors.append(f"{r.get('figure')} {r.get('stack')}/{r.get('variant')} {r.get('topology')} "
                  f"{r.get('mode')} {r.get('conns')}x{r.get('msg_bytes')}: {why}")


def check_record(r, ncores):
    for k, t in FIELDS.items():
        if k not in r:
            return bad(r, f"no field {k}")
        if not isinstance(r[k], t) or (t is int and isinstance(r[k], bool)):
            return bad(r, f"{k} is {type(r[k]).__name__}: {r[k]!r}")
    for k, allowed in ENUMS.items():
        if r[k] not in allowed:
            bad(r, f"{k} {r[k]!r} is not one of {sorted(allowed)}")
    if r["mtu"] <= 0 or r["msg_bytes"] <= 0 or r["seconds"] <= 0:
        bad(r, "mtu, msg_bytes and seconds must be > 0")
    if not r["commands"] or not all(isinstance(c, str) and c for c in r["commands"]):
        bad(r, "commands must be a non-empty list of command lines")
    if not r["ok"]:
        return bad(r, f"ok is false: {r['error']}")
    if r["error"]:
        bad(r, f"ok but error {r['error']!r}")
    if not r["msgs_per_s"] or r["msgs_per_s"] <= 0:
        bad(r, "msgs_per_s must be > 0")
    if r["figure"] == "l2":
        return
    for k in ("gbit_per_s", "cpu_total_pct", "cpu_total_measured_pct"):
        if not isinstance(r[k], NUM) or r[k] < 0:
            bad(r, f"{k} must be a number >= 0, is {r[k]!r}")
    if len(r["cpu_core_pct"]) != ncores or not all(isinstance(v, NUM) for v in r["cpu_core_pct"]):
        bad(r, f"cpu_core_pct must have {ncores} numbers: {r['cpu_core_pct']!r}")
    if r["mode"] == "rr" and not (isinstance(r["rtt_p50_us"], NUM) and r["rtt_p50_us"] > 0):
        bad(r, "request/response without a p50 latency")
    if r["stack"] == "isostack":
        if not (isinstance(r["stack_cycles_per_op"], NUM) and r["stack_cycles_per_op"] > 0):
            bad(r, "isostack point without the stack's cycles per operation")
    elif r["stack_cycles_per_op"] is not None:
        bad(r, "a kernel point with stack cycles per operation")


def check_png(path):
    with open(path, "rb") as f:
        data = f.read(8 + 8 + 13 + 4)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return errors.append(f"{path}: no PNG signature")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        return errors.append(f"{path}: the first chunk is not a 13-byte IHDR")
    w, h = struct.unpack(">II", data[16:24])
    crc = struct.unpack(">I", data[29:33])[0]
    if w == 0 or h == 0 or zlib.crc32(data[12:29]) != crc:
        errors.append(f"{path}: IHDR {w}x{h}, CRC {'ok' if zlib.crc32(data[12:29]) == crc else 'bad'}")


def main():
    out, ncores, want_plots, figures = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
    with open(os.path.join(out, "records.json")) as f:
        d = json.load(f)
    for k in ("date", "kernel", "cpu_model", "cores", "git_commit", "command"):
        if k not in d["meta"]:
            errors.append(f"meta has no {k}")
    recs = d["records"]
    for r in recs:
        check_record(r, ncores)
    for fig in figures:
        if not any(r["figure"] == fig and r["ok"] for r in recs):
            errors.append(f"no record of {fig} ran")
        for stack in ("kernel", "isostack"):
            if fig != "l2" and not any(r["figure"] == fig and r["stack"] == stack for r in recs):
                errors.append(f"{fig} has no {stack} record")
            # IPv6 beside IPv4: every point of figure v6 over both
            for fam in (4, 6) if fig == "v6" else ():
                if not any(r["figure"] == fig and r["stack"] == stack and r["family"] == fam
                           for r in recs):
                    errors.append(f"v6 has no {stack} record over IPv{fam}")
    if any(r["figure"] != "v6" and r["family"] != 4 for r in recs):
        errors.append("a record over IPv6 outside figure v6")
    pngs = sorted(glob.glob(os.path.join(out, "fig*.png")))
    for p in pngs:
        check_png(p)
    if want_plots:
        for fig in figures:
            if fig not in ("l2", "v6") and not any(os.path.basename(p).startswith(fig + "-")
                                                   for p in pngs):
                errors.append(f"plotting is available but {fig} has no {fig}-*.png")
    if not os.path.getsize(os.path.join(out, "report.md")):
        errors.append("report.md is empty")
    print(f"{len(recs)} records, {len(pngs)} PNG files checked")
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
