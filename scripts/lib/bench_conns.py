#!/usr/bin/env python3
"""The figures of `isostack bench conns` (scripts/lib/bench_conns.sh).

    bench_conns.py stack LOGDIR STACK WANTED OUT.json [KEY=VALUE...]
        one stack's run: the isoconns lines in LOGDIR/{serve,connect}-*.out
        and the memory snapshots LOGDIR/snap-{base,held,closed}/ into
        OUT.json (KEY=VALUE pairs are copied in: commands, settings)
    bench_conns.py table DIR
        DIR/conns-*.json into DIR/conns.json, and the table on stdout

Memory per connection is the growth between two snapshots, divided by the
connections held (verified by echo):
  base: topology up (and isostackd, on the isostack run); no server yet
  held: every server and client up, all connections established, echoed
        and idle
Counted:
  kernel     /proc/meminfo Slab + KernelStack + PageTables + Percpu: the
             socket, inode, dentry, file, epoll item... of every kernel
             socket (the peer's on both runs; on the kernel run the SUT's
             sockets, on the isostack run the shim's shadows).  Left out:
             the growth of slab cache proc_inode_cache and one dentry per
             /proc inode in it, /proc/PID/fd entries that something
             reading /proc made (a monitor on this machine scans every
             process's fds within seconds), not a cost of the connections;
             both are in the JSON (proc_inode_cache_excluded,
             proc_dentries_excluded).  The monitor may scan one run and not
             the other (the isostack run waits for its rings to settle):
             with its dentries counted, isostack looked ~190 B/conn dearer.
  hugepages  isostack run only: HugePages_Total - Free + Rsvd, in bytes:
             isostackd's DPDK heap and the applications' shared-memory
             segments (reserved at mmap time, so a segment sized for N
             sockets counts in full). Machine-wide, so it needs no other
             daemon starting or stopping meanwhile (the daemon lock).
  shmem      isostack run only: /proc/meminfo Shmem (segments that fell
             back to small pages)
  sut_anon   RssAnon of the SUT's processes: the servers (all of it: they
             did not exist at base) and isostackd (its growth)
The kernel SUT has no hugepages or shared segments: on the kernel run
those two are not counted (other developers' daemons come and go on this
machine and would show up in them).
The peer's kernel sockets are in both runs, so the two totals differ by
what each SUT costs; `sut_bytes_per_conn` estimates the SUT's share alone
by taking off half of the kernel run's kernel bytes (the kernel run's two
ends are alike: a connected and an accepted socket, each in an epoll set).
"""
import glob
import json
import os
import re
import sys
import time


def kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def num(v):
    for t in (int, float):
        try:
            return t(v)
        except (TypeError, ValueError):
            pass
    return v


def lines(path, role, stage):
    """The key=value dicts of every 'isoconns ROLE STAGE' line of PATH."""
    out = []
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(f"isoconns {role} {stage} "):
            out.append({k: num(v) for k, v in kv(line).items()})
    return out


def meminfo(snap):
    m = {}
    try:
        for line in open(os.path.join(snap, "meminfo")):
            k, v = line.split(":", 1)
            f = v.split()
            m[k] = int(f[0]) * (1024 if len(f) > 1 else 1)
    except OSError:
        pass
    return m


def slabinfo(snap, field=None):
    """{cache: bytes} (num_objs x objsize) of a snapshot's slabinfo;
    field="objs": {cache: num_objs}, field="size": {cache: objsize}."""
    s = {}
    try:
        for line in open(os.path.join(snap, "slabinfo")):
            f = line.split()
            if len(f) > 4 and not line.startswith(("slabinfo", "#")):
                n, size = int(f[2]), int(f[3])
                s[f[0]] = n if field == "objs" else size if field == "size" else n * size
    except OSError:
        pass
    return s


def procfs_excluded(base, top):
    """Bytes of /proc entries made between two snapshots by whatever read
    /proc/PID/fd meanwhile: the growth of proc_inode_cache, and as many
    dentries (each /proc inode comes with one), at most dentry's growth."""
    o0, o1 = slabinfo(base, "objs"), slabinfo(top, "objs")
    size = slabinfo(top, "size")
    inodes = max(0, o1.get("proc_inode_cache", 0) - o0.get("proc_inode_cache", 0))
    dentries = min(inodes, max(0, o1.get("dentry", 0) - o0.get("dentry", 0)))
    return (inodes * size.get("proc_inode_cache", 0),
            dentries * size.get("dentry", 0))


def rss_anon(snap):
    """{role: RssAnon bytes} over the status-ROLE-PID files of a snapshot."""
    r = {}
    for path in glob.glob(os.path.join(snap, "status-*")):
        role = os.path.basename(path).split("-")[1]
        for line in open(path):
            if line.startswith("RssAnon:"):
                r[role] = r.get(role, 0) + int(line.split()[1]) * 1024
    return r


def memory(logdir, stack, held):
    base, top = (os.path.join(logdir, f"snap-{s}") for s in ("base", "held"))
    m0, m1 = meminfo(base), meminfo(top)
    if not m0 or not m1:
        return None

    def d(*keys):
        return sum(m1.get(k, 0) - m0.get(k, 0) for k in keys)

    hp = m1.get("Hugepagesize", 2 << 20)
    used = lambda m: (m.get("HugePages_Total", 0) - m.get("HugePages_Free", 0)
                      + m.get("HugePages_Rsvd", 0))
    a0, a1 = rss_anon(base), rss_anon(top)
    s0, s1 = slabinfo(base), slabinfo(top)
    procfs, procfs_dentries = procfs_excluded(base, top)
    comp = {
        "kernel": d("Slab", "KernelStack", "PageTables", "Percpu") - procfs - procfs_dentries,
        "hugepages": (used(m1) - used(m0)) * hp if stack == "isostack" else 0,
        "shmem": d("Shmem") if stack == "isostack" else 0,
        "sut_anon": sum(a1.get(r, 0) - a0.get(r, 0) for r in ("daemon", "serve")),
    }
    growth = sorted(((s1.get(k, 0) - s0.get(k, 0), k) for k in s1), reverse=True)[:10]
    out = {
        "bytes": comp,
        "total_bytes": sum(comp.values()),
        "slab_bytes": d("Slab"),
        "proc_inode_cache_excluded": procfs,
        "proc_dentries_excluded": procfs_dentries,
        "hugepages_machine_bytes": (used(m1) - used(m0)) * hp,
        "slab_top_growth": {k: v for v, k in growth if v > 0},
        "rss_anon_base": a0,
        "rss_anon_held": a1,
    }
    if held > 0:
        out["per_conn"] = {k: v / held for k, v in comp.items()}
        out["bytes_per_conn"] = out["total_bytes"] / held
        out["kernel_bytes_per_conn"] = comp["kernel"] / held
    return out


def isostat(snap):
    """{name: int} of the daemon's raw isostat lines in a snapshot, or {}."""
    out = {}
    try:
        for line in open(os.path.join(snap, "isostat")):
            k, _, v = line.partition(" ")
            try:
                out[k] = int(v)
            except ValueError:
                pass
    except OSError:
        pass
    return out


def idle_loop(logdir):
    """The stack core's loop while the connections sit idle, between the
    held and idle snapshots: passes per second and cycles per pass (all,
    and busy ones: work done), from isostat's loop.* counters."""
    a, b = (isostat(os.path.join(logdir, f"snap-{s}")) for s in ("held", "idle"))
    keys = ("loop.iterations", "loop.busy_cycles", "loop.idle_cycles", "loop.tsc_hz")
    if not all(k in a and k in b for k in keys) or b["loop.iterations"] <= a["loop.iterations"]:
        return None
    n = b["loop.iterations"] - a["loop.iterations"]
    busy = b["loop.busy_cycles"] - a["loop.busy_cycles"]
    idle = b["loop.idle_cycles"] - a["loop.idle_cycles"]
    secs = (busy + idle) / b["loop.tsc_hz"] if b["loop.tsc_hz"] else None
    return {"passes": n, "seconds": secs,
            "passes_per_s": n / secs if secs else None,
            "cycles_per_pass": (busy + idle) / n, "busy_cycles_per_pass": busy / n,
            "busy_share": busy / (busy + idle) if busy + idle else None,
            "mem_backed": b.get("mem.backed"), "mem_budget": b.get("mem.budget")}


def stack(logdir, name, wanted, path, extra):
    r = {"stack": name, "wanted": wanted,
         "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")} | extra
    serves = sorted(glob.glob(os.path.join(logdir, "serve-*.out")))
    conns = sorted(glob.glob(os.path.join(logdir, "connect-*.out")))
    est = [x for f in conns for x in lines(f, "connect", "established")]
    ver = [x for f in conns for x in lines(f, "connect", "verified")]
    held = [x for f in conns for x in lines(f, "connect", "held")]
    closed = [x for f in conns for x in lines(f, "connect", "closed")]
    ready = [x for f in serves for x in lines(f, "serve", "ready")]
    status = [x for f in serves for x in lines(f, "serve", "status")]
    drained = [lines(f, "serve", "drained") for f in serves]
    errors = [x for f in serves for x in lines(f, "serve", "error")]

    r["servers"], r["servers_ready"] = len(serves), len(ready)
    r["clients"], r["clients_reported"] = len(conns), len(est)
    r["established"] = sum(x["n"] for x in est)
    r["establish_failed"] = sum(x["failed"] for x in est)
    r["verified"] = sum(x["ok"] for x in ver)
    r["verify_failed"] = sum(x["failed"] for x in ver)
    r["held_alive"] = sum(x["alive"] for x in held)
    r["held_lost"] = sum(x["lost"] for x in held)
    r["server_open"] = sum(x["open"] for x in status) if status else None
    r["client_errors"] = [e for x in est + ver + held
                          for e in [x.get("errors")] if e and e != "none"]
    r["server_errors"] = errors
    if est and r["established"] > 0:
        t0 = min(x["t_start"] for x in est)
        t1 = max(x["t_end"] for x in est if x["n"] > 0)
        r["establish_seconds"] = t1 - t0
        r["established_per_s"] = r["established"] / (t1 - t0) if t1 > t0 else None
    if closed:
        c0 = min(x["t_start"] for x in closed)
        r["close_loop_seconds"] = max(x["t_end"] for x in closed) - c0
        # Teardown ends when the last server has closed its last connection.
        last = [d[-1]["t"] for d in drained if d and d[-1]["t"] >= c0]
        busy = [x for x in status if x["open"] > 0]
        if busy and len(last) == len(busy):
            r["teardown_seconds"] = max(last) - c0
    r["memory"] = memory(logdir, name, r["verified"])
    r["idle_loop"] = idle_loop(logdir)

    # The first stage that fell short, in words.
    failed = None
    if len(ready) < len(serves):
        failed = f"serve: {len(ready)} of {len(serves)} servers started"
    elif len(est) < len(conns):
        failed = f"connect: {len(conns) - len(est)} of {len(conns)} clients reported nothing"
    elif r["established"] < wanted:
        failed = f"establish: {r['established']} of {wanted} connections established"
    elif r["verified"] < r["established"]:
        failed = f"verify: {r['verified']} of {r['established']} echoed"
    elif r["held_lost"]:
        failed = f"hold: {r['held_lost']} of {r['verified']} closed while held"
    elif r["server_open"] is not None and r["server_open"] < r["verified"]:
        failed = f"hold: servers hold {r['server_open']} of {r['verified']}"
    elif closed and "teardown_seconds" not in r:
        failed = "teardown: not every server saw all its connections close"
    if failed and r["client_errors"]:
        failed += f" (client errors: {'; '.join(r['client_errors'])})"
    if failed and errors:
        e = errors[0]
        failed += (f"; a server's accept() failed with {e.get('errno')} "
                   f"holding {e.get('open')} connections")
    if failed and name == "isostack" and status:
        # Each server has one listener: at the per-application socket
        # limit when it holds app_sockets - 1 connections.
        m = re.search(r"app_sockets=(\d+)", str(extra.get("up_settings", "")))
        limit = int(m[1]) if m else 65535
        if max(x["peak"] for x in status) + 1 >= limit:
            failed += (f"; a server reached isostack's per-application socket limit "
                       f"(app_sockets={limit}, its listener included)")
    r["failed_stage"] = failed
    r["failures"] = (wanted - r["verified"]) + r["held_lost"]
    json.dump(r, open(path + ".tmp", "w"), indent=1)
    os.replace(path + ".tmp", path)
    return r


def table(out):
    runs = {}
    for f in glob.glob(os.path.join(out, "conns-*.json")):
        r = json.load(open(f))
        runs[r["stack"]] = r
    order = [s for s in ("kernel", "isostack") if s in runs]
    k = runs.get("kernel", {}).get("memory") or {}
    peer = k.get("kernel_bytes_per_conn", 0) / 2 if k.get("kernel_bytes_per_conn") else None

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    print(f"{'stack':9} {'conns held':>17} {'established/s':>13} {'bytes/conn':>10} "
          f"{'kernel B/conn':>13} {'SUT B/conn':>10} {'teardown s':>10} {'failures':>8}")
    summary = []
    loops = []
    for s in order:
        r = runs[s]
        m = r.get("memory") or {}
        per = m.get("bytes_per_conn")
        sut = per - peer if per is not None and peer is not None else None
        held = f"{r['verified']:,}/{r['wanted']:,}" + ("*" if r.get("failed_stage") else "")
        print(f"{s:9} {held:>17} {f(r.get('established_per_s'), ',.0f'):>13} "
              f"{f(per, ',.0f'):>10} {f(m.get('kernel_bytes_per_conn'), ',.0f'):>13} "
              f"{f(sut, ',.0f'):>10} {f(r.get('teardown_seconds'), '.2f'):>10} "
              f"{r['failures']:>8,}")
        il = r.get("idle_loop")
        if il:
            loops.append(f"{s}: stack core loop with {r['verified']:,} idle connections: "
                         f"{il['cycles_per_pass']:,.0f} cycles per pass "
                         f"({il['busy_cycles_per_pass']:,.0f} busy), "
                         f"{il['passes_per_s'] or 0:,.0f} passes/s")
        summary.append({"stack": s, "wanted": r["wanted"], "held": r["verified"],
                        "established_per_s": r.get("established_per_s"),
                        "bytes_per_conn": per, "sut_bytes_per_conn": sut,
                        "kernel_bytes_per_conn": m.get("kernel_bytes_per_conn"),
                        "teardown_seconds": r.get("teardown_seconds"),
                        "failures": r["failures"], "failed_stage": r.get("failed_stage"),
                        "idle_loop": r.get("idle_loop")})
    for line in loops:
        print(line)
    for s in order:
        if runs[s].get("failed_stage"):
            print(f"* {s}: failed at {runs[s]['failed_stage']}")
    if peer is not None:
        print(f"SUT B/conn: bytes/conn less half the kernel run's kernel bytes/conn "
              f"({peer:,.0f}: the peer's end of a connection, in both runs)")
    json.dump({"table": summary, "runs": [runs[s] for s in order]},
              open(os.path.join(out, "conns.json"), "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "stack":
        logdir, name, wanted, path = sys.argv[2:6]
        extra = {k: num(v) for k, v in (a.split("=", 1) for a in sys.argv[6:])}
        stack(logdir, name, int(wanted), path, extra)
    elif sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
