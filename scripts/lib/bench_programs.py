#!/usr/bin/env python3
"""The figures of `isostack bench programs` (scripts/lib/bench_programs.sh).

    bench_programs.py row FILE STACK PROG TOOL OUTPUT KEY=VALUE...
        parse a load generator's OUTPUT (TOOL: wrk, redis, memaslap, iperf3) into
        rows appended to FILE; KEY=VALUE pairs are copied into each row
        (case, commands, settings)
    bench_programs.py table DIR SECONDS
        DIR/programs-*-*.json into DIR/programs.json, and the table on
        stdout, kernel and isostack side by side
"""
import glob, json, os, re, sys, time

def num(v):
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v

def add_rows(path, stack, prog, rows):
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        d = {"stack": stack, "program": prog,
             "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": []}
    d["rows"].extend(rows)
    json.dump(d, open(path + ".tmp", "w"), indent=1)
    os.replace(path + ".tmp", path)
    for r in rows:
        lat = ""
        if "latency_p50_us" in r:
            lat = f"  p50 {r['latency_p50_us']:.1f} us  p99 {r['latency_p99_us']:.1f} us"
        err = f"  ERRORS: {r['errors']}" if r.get("errors") else ""
        print(f"  {stack:8} {prog:9} {r['case']:30} {r['value']:12.2f} {r['unit']}{lat}{err}",
              flush=True)

def us(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]

def wrk(text, row):
    size = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    row["requests_per_s"] = float(re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)[1])
    t = re.search(r"^Transfer/sec:\s+([\d.]+)([KMG]?B)", text, re.M)
    row["mb_per_s"] = float(t[1]) * size[t[2]] / 1e6
    for p in ("50", "99"):
        row[f"latency_p{p}_us"] = us(re.search(rf"^\s+{p}%\s+(\S+)", text, re.M)[1])
    m = re.search(r"^\s+(\d+) requests in", text, re.M)
    row["requests"] = int(m[1])
    errs = []
    m = re.search(r"Socket errors: (.*)", text)
    if m:
        errs.append("socket errors: " + m[1])
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errs.append(m[1] + " non-2xx answers")
    row["errors"] = "; ".join(errs)
    if row["bytes"] >= 1 << 20:
        row["unit"], row["value"] = "MB/s", row["mb_per_s"]
    else:
        row["unit"], row["value"] = "req/s", row["requests_per_s"]
    return [row]

def redis(text, row):
    rows = []
    for line in text.splitlines():
        f = [x.strip('"') for x in line.split(",")]
        if len(f) < 8 or f[0] not in ("SET", "GET"):
            continue
        r = dict(row)
        r["case"] = f"{f[0]} {row['case']}"
        r["test"] = f[0]
        r["requests_per_s"] = r["value"] = float(f[1])
        r["unit"] = "req/s"
        r["latency_p50_us"] = float(f[4]) * 1e3
        r["latency_p99_us"] = float(f[6]) * 1e3
        rows.append(r)
    if len(rows) != 2:
        sys.exit("redis-benchmark: no SET and GET results in its output")
    return rows

def memaslap(text, row):
    """memcaslap's summary: total ops and ops/s of the whole run, and its
    verification counts; a value that came back different is an error."""
    m = re.search(r"^Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", text, re.M)
    if not m or int(m[2]) <= 0:
        sys.exit("memaslap: no operations in its output")
    row["seconds"], row["ops"] = float(m[1]), int(m[2])
    row["ops_per_s"] = row["value"] = float(m[3])
    row["unit"] = "ops/s"
    for k in ("cmd_get", "cmd_set", "get_misses", "verify_misses", "verify_failed"):
        c = re.search(rf"^{k}: (\d+)", text, re.M)
        row[k] = int(c[1]) if c else None
    errs = [f"{row[k]} {k}" for k in ("verify_misses", "verify_failed") if row[k]]
    if row["cmd_get"] is None or row["verify_failed"] is None:
        errs.append("no verification counts in memaslap's output")
    row["errors"] = "; ".join(errs)
    return [row]

def iperf3(text, row):
    j = json.loads(text)
    if "error" in j:
        sys.exit("iperf3: " + j["error"])
    r = j["end"]["sum_received"]
    if r["bytes"] <= 0:
        sys.exit("iperf3: no bytes received")
    row["bytes_received"] = r["bytes"]
    row["gbit_per_s"] = row["value"] = r["bits_per_second"] / 1e9
    row["unit"] = "Gbit/s"
    row["retransmits"] = j["end"].get("sum_sent", {}).get("retransmits")
    return [row]

def table(out, secs):
    order = ["nginx", "redis", "memcached", "local", "iperf3"]
    runs = [json.load(open(f)) | {"file": os.path.basename(f)}
            for f in glob.glob(os.path.join(out, "programs-*-*.json"))]
    runs.sort(key=lambda r: order.index(r["program"]) if r["program"] in order else 99)
    rows, seen = {}, []
    for stack in ("kernel", "isostack"):
        for run in runs:
            if run["stack"] != stack:
                continue
            for r in run["rows"]:
                key = (run["program"], r["case"])
                if key not in rows:
                    rows[key] = {"unit": r["unit"]}
                    seen.append(key)
                rows[key][stack] = r
    # Variants of the isostack column (the local rows with cut-through on
    # and off) go beside the kernel's row of their kernel_case.
    for key in list(seen):
        i = rows[key].get("isostack")
        base = (key[0], i.get("kernel_case")) if i else None
        if base and base in rows and "kernel" in rows[base]:
            rows[key]["kernel"] = rows[base]["kernel"]
            rows[base]["shared"] = True
    seen = [k for k in seen if not (rows[k].get("shared") and "isostack" not in rows[k])]
    seen.sort(key=lambda k: order.index(k[0]) if k[0] in order else 99)
    summary = []
    hdr = (f"{'program':9} {'case':36} {'unit':6} {'kernel':>11} {'isostack':>11} "
           f"{'iso/kern':>8}  {'kernel p50/p99 us':>18}  {'isostack p50/p99 us':>19}")
    print(hdr)
    for key in seen:
        e = rows[key]
        k, i = e.get("kernel"), e.get("isostack")
        def v(r):
            if not r:
                return f"{'-':>11}"
            f = (f"{r['value']:11,.0f}" if r["unit"] in ("req/s", "ops/s")
                 else f"{r['value']:11.2f}")
            return f + ("*" if r.get("errors") else "")
        def lat(r):
            if not r or "latency_p50_us" not in r:
                return "-"
            return f"{r['latency_p50_us']:.0f} / {r['latency_p99_us']:.0f}"
        ratio = i["value"] / k["value"] if k and i and k["value"] > 0 else None
        print(f"{key[0]:9} {key[1]:36} {e['unit']:6} {v(k)} {v(i)} "
              f"{(f'{ratio:.2f}' if ratio is not None else '-'):>8}  {lat(k):>18}  {lat(i):>19}")
        summary.append({"program": key[0], "case": key[1], "unit": e["unit"],
                        "kernel": k["value"] if k else None,
                        "isostack": i["value"] if i else None, "isostack_over_kernel": ratio})
    if any(r.get("errors") for e in rows.values() for s in ("kernel", "isostack")
           for r in [e.get(s)] if r):
        print("* the load generator reported errors: see the row's JSON")
    json.dump({"seconds_per_point": num(secs), "table": summary, "runs": runs},
              open(os.path.join(out, "programs.json"), "w"), indent=1)

if sys.argv[1] == "table":
    table(sys.argv[2], sys.argv[3])
else:
    path, stack, prog, tool, output = sys.argv[2:7]
    row = {"case": ""} | {k: num(v) for k, v in (a.split("=", 1) for a in sys.argv[7:])}
    for k in ("command", "server_command"):
        row[k] = str(row.get(k, ""))
    text = open(output).read()
    row["raw_output"] = os.path.abspath(output)
    rows = {"wrk": wrk, "redis": redis, "memaslap": memaslap, "iperf3": iperf3}[tool](text, row)
    for r in rows:
        if r.get("variant"):
            r["kernel_case"], r["case"] = r["case"], f"{r['case']}, {r['variant']}"
    add_rows(path, stack, prog, rows)
