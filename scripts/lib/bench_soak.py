#!/usr/bin/env python3
"""The traffic, samples and verdict of `isostack bench soak`
(scripts/lib/bench_soak.sh), run in the peer namespace of an instance that
sh brought up:

    bench_soak.py run KEY=VALUE...   traffic for `seconds`, samples every
                                     `interval`, settling, DIR/soak.json
    bench_soak.py finish DIR RC LINES  the daemon's exit status and its
                                     sanitizer lines into the verdict; the table

Traffic, every byte verified (a mismatch, an error or a timeout is a
failure of that worker; nothing is retried but UDP datagrams):
  bulk_up     8 MiB to the application under the shim, its SHA-256 back
  bulk_down   8 MiB of a seeded stream from it, SHA-256 compared
  bulk_echo   4 MiB through isostackd's own echo service (port 7) while
              reading it back, SHA-256 of both directions
  short       connect/request/reply/close, to the application and to the
              echo service in turn, <= 100 a second
  idle        16 connections to the application held the whole run, each
              poked (64 bytes echoed) every 5 s
  udp         datagrams of 1..1400 bytes echoed by the application (a lost
              one is sent again, 3 times at most), <= 100 a second
  restart     isoperf clients under the shim, each a new process (attach,
              2 s of --verify send or recv to an isoperf server here,
              exit); every 4th is SIGKILLed after 1 s
Samples: the daemon's VmRSS, isostat -r's memp.*.used (lwIP's pools),
memp.heap.used, port.*.mbufs_used, the applications' sockets, backend
open sockets and mem.backed. The first sample is taken with the
application up and idle before any traffic; after the traffic, samples go
on each second until every level is back within its tolerance (at most
`settle` seconds: lwIP keeps a connection it closed first in TIME_WAIT
for 2 MSL, 120 s) and the last one is taken.
"""
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

KiB, MiB = 1 << 10, 1 << 20
T0 = time.monotonic()


def say(msg):
    print(f"soak: [{time.monotonic() - T0:6.0f} s] {msg}", flush=True)


class Worker:
    """One kind of traffic: what it did and what failed (first errors kept)."""

    def __init__(self, name, c):
        self.name, self.ops, self.bytes, self.failures = name, 0, 0, 0
        self.errors, self.extra, self.c, self.port = [], {}, c, None
        self.phase = None

    def fail(self, msg):
        self.failures += 1
        if self.port:
            msg += f" ({self.phase}, client port {self.port})"
        if len(self.errors) < 5:
            self.errors.append(msg)
        say(f"FAIL {self.name}: {msg}")
        if "timed out" in msg:
            dump(self.c, f"stuck-{self.name}-{self.port}")

    def conn(self, addr, port, timeout=30):
        """A connection whose local port is known before connect(), so that
        a stall in the handshake names it too (Worker.fail)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.bind(("", 0))
        self.port = s.getsockname()[1]
        self.phase = "connect"
        try:
            s.connect((addr, port))
        except OSError:
            s.close()
            raise
        self.phase = "transfer"
        return s

    def json(self):
        return {"ops": self.ops, "bytes": self.bytes, "failures": self.failures,
                "errors": self.errors} | self.extra


def dump(c, name):
    """What both stacks hold now, for a connection that stopped moving:
    the daemon's sockets (isostat -r) and the peer's (ss)."""
    path = os.path.join(c["logs"], name + ".txt")
    with open(path, "w") as f:
        for cmd in ([c["isostat"], "-c", c["control"], "-r"], ["ss", "-tnoiem"]):
            f.write(f"--- {' '.join(cmd)}\n")
            f.flush()
            try:
                subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=15)
            except (OSError, subprocess.TimeoutExpired) as e:
                f.write(f"{e}\n")
    if c.get("app_pid"):
        os.kill(c["app_pid"], signal.SIGUSR1)   # its threads' stacks, into app.log
    say(f"  state of both stacks in {path}")


def connect(addr, port, timeout=30):
    s = socket.create_connection((addr, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise OSError(f"EOF after {len(buf)} of {n} bytes")
        buf += d
    return buf


def seeded(n, seed, chunk=1 << 16):
    rng = random.Random(seed)
    left = n
    while left > 0:
        c = rng.randbytes(min(chunk, left))
        left -= len(c)
        yield c


def bulk_up(c, w, stop):
    n = 8 * MiB
    while not stop.is_set():
        seed = random.getrandbits(32)
        try:
            with w.conn(c["addr"], c["port"]) as s:
                s.sendall(f"UP {n}\n".encode())
                h = hashlib.sha256()
                for chunk in seeded(n, seed):
                    h.update(chunk)
                    s.sendall(chunk)
                line = b""
                while not line.endswith(b"\n"):
                    d = s.recv(128)
                    if not d:
                        break
                    line += d
            got = line.decode().split()
            if got != [str(n), h.hexdigest()]:
                w.fail(f"upload of {n} bytes (seed {seed}): the application counted and hashed {got}")
                continue
            w.ops += 1
            w.bytes += n
        except OSError as e:
            w.fail(f"upload: {e}")


def bulk_down(c, w, stop):
    n = 8 * MiB
    while not stop.is_set():
        seed = random.getrandbits(32)
        try:
            want = hashlib.sha256()
            for chunk in seeded(n, seed):
                want.update(chunk)
            got, size = hashlib.sha256(), 0
            with w.conn(c["addr"], c["port"]) as s:
                s.sendall(f"DOWN {n} {seed}\n".encode())
                while True:
                    d = s.recv(1 << 18)
                    if not d:
                        break
                    got.update(d)
                    size += len(d)
            if size != n or got.digest() != want.digest():
                w.fail(f"download (seed {seed}): {size} of {n} bytes, sha256 "
                       f"{got.hexdigest()[:16]} != {want.hexdigest()[:16]}")
                continue
            w.ops += 1
            w.bytes += n
        except OSError as e:
            w.fail(f"download: {e}")


def bulk_echo(c, w, stop):
    n = 4 * MiB
    while not stop.is_set():
        seed = random.getrandbits(32)
        try:
            s = w.conn(c["addr"], 7)
        except OSError as e:
            w.fail(f"echo service connect: {e}")
            continue
        sent, errs = hashlib.sha256(), []

        def sender():
            try:
                for chunk in seeded(n, seed):
                    sent.update(chunk)
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                errs.append(f"send: {e}")

        t = threading.Thread(target=sender)
        t.start()
        got, size = hashlib.sha256(), 0
        try:
            while True:
                d = s.recv(1 << 18)
                if not d:
                    break
                got.update(d)
                size += len(d)
        except OSError as e:
            errs.append(f"recv after {size} bytes: {e}")
        t.join()
        s.close()
        if errs:
            w.fail("echo service: " + "; ".join(errs))
        elif size != n or got.digest() != sent.digest():
            w.fail(f"echo service: {size} of {n} bytes back, sha256 differs")
        else:
            w.ops += 1
            w.bytes += 2 * n


def paced(rate):
    """Sleeps so that calls come at most `rate` a second (pacing, not
    synchronisation: nothing waits on another party here)."""
    nxt = time.monotonic()

    def wait():
        nonlocal nxt
        nxt += 1.0 / rate
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            nxt = time.monotonic()
    return wait


def short(c, w, stop):
    wait, i = paced(100), 0
    w.extra = {"to_app": 0, "to_echo_service": 0}
    while not stop.is_set():
        i += 1
        app = i % 2 == 0
        payload = random.randbytes(random.randint(1, 1000))
        try:
            with w.conn(c["addr"], c["port"] if app else 7, timeout=10) as s:
                s.sendall((b"ECHO\n" if app else b"") + payload)
                s.shutdown(socket.SHUT_WR)
                back = b""
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    back += d
            if back != payload:
                w.fail(f"{'application' if app else 'echo service'}: {len(back)} bytes back "
                       f"differ from the {len(payload)} sent")
            else:
                w.ops += 1
                w.bytes += len(payload)
                w.extra["to_app" if app else "to_echo_service"] += 1
        except OSError as e:
            w.fail(f"{'application' if app else 'echo service'}: {e}")
        wait()


def idle(c, w, stop):
    conns = []
    try:
        for _ in range(16):
            s = connect(c["addr"], c["port"])
            s.sendall(b"ECHO\n")
            conns.append(s)
    except OSError as e:
        w.fail(f"opening idle connection {len(conns) + 1}: {e}")
    w.extra = {"held": len(conns)}
    while not stop.wait(5):
        for s in conns:
            p = random.randbytes(64)
            try:
                s.sendall(p)
                if recv_exact(s, 64) != p:
                    w.fail("poke: echoed bytes differ")
                else:
                    w.ops += 1
                    w.bytes += 64
            except OSError as e:
                w.fail(f"poke: {e}")
    for s in conns:
        try:
            s.shutdown(socket.SHUT_WR)
            rest = s.recv(64)
            if rest:
                w.fail(f"idle close: {len(rest)} unexpected bytes")
        except OSError as e:
            w.fail(f"idle close: {e}")
        s.close()


def udp(c, w, stop):
    wait, seq = paced(100), 0
    w.extra = {"resent": 0}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.connect((c["addr"], c["udp_port"]))
    while not stop.is_set():
        seq += 1
        p = seq.to_bytes(8, "big") + random.randbytes(random.randint(0, 1392))
        for attempt in range(3):
            try:
                s.send(p)
                while True:     # a late echo of an earlier datagram is skipped
                    d = s.recv(65535)
                    if d[:8] == p[:8]:
                        break
                if d != p:
                    w.fail(f"datagram {seq}: echo differs")
                else:
                    w.ops += 1
                    w.bytes += len(p)
                break
            except socket.timeout:
                w.extra["resent"] += 1
            except OSError as e:
                w.fail(f"datagram {seq}: {e}")
                break
        else:
            w.fail(f"datagram {seq}: no echo in 3 tries")
        wait()
    s.close()


def shim_env(c, leaks):
    """The environment of a program under the shim (isostack run's), with
    the sanitizer runtime first when the shim is instrumented."""
    env = ["LD_PRELOAD=" + c["preload"], "ISOSTACK_CONTROL=" + c["control"],
           "ISOSTACK_REQUIRE=1"]
    if c["asan"]:
        env.append("ASAN_OPTIONS=" + os.environ.get("ASAN_OPTIONS", "") +
                   ("" if leaks else ":detect_leaks=0"))
    return ["ip", "netns", "exec", c["stack_ns"], "env"] + env + ["taskset", "-c", "0"]


def restart(c, w, stop):
    i = 0
    w.extra = {"runs": 0, "killed": 0}
    log = os.path.join(c["logs"], "isoperf-client.log")
    while not stop.is_set():
        i += 1
        mode = "send" if i % 2 else "recv"
        kill = i % 4 == 0
        cmd = shim_env(c, True) + [c["isoperf"], "client", c["peer_addr"], "-p",
                                    str(c["perf_port"]), "-m", mode, "-l", "16384",
                                    "-d", "2", "--verify", "--json",
                                    os.path.join(c["logs"], "isoperf-last.json")]
        out = os.path.join(c["logs"], "isoperf-last.log")
        try:
            os.unlink(os.path.join(c["logs"], "isoperf-last.json"))
        except OSError:
            pass
        with open(out, "w") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        try:
            if kill:
                try:
                    p.wait(1)
                except subprocess.TimeoutExpired:
                    p.kill()
                p.wait(30)
                w.extra["killed"] += 1
                w.extra["runs"] += 1
                continue
            rc = p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "hung for 60 s"
        w.extra["runs"] += 1
        text = open(out, errors="replace").read()
        try:
            res = json.load(open(os.path.join(c["logs"], "isoperf-last.json")))
        except (OSError, ValueError):
            res = {}
        if rc != 0 or res.get("verified") is not True or res.get("failures") != 0:
            w.fail(f"isoperf client {i} ({mode}): exit {rc}: {text.strip()[-300:]}")
            with open(log, "a") as f:
                f.write(f"--- run {i} ({mode}) exit {rc}: {' '.join(cmd)}\n{text}\n")
        else:
            w.ops += 1
            w.bytes += res.get("bytes", 0)


TRAFFIC = [bulk_up, bulk_down, bulk_echo, short, idle, udp, restart]


# ---- samples --------------------------------------------------------------

def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def sample(c, phase):
    s = {"t": round(time.monotonic() - T0, 1), "phase": phase, "rss_kb": rss_kb(c["daemon_pid"])}
    try:
        out = subprocess.run([c["isostat"], "-c", c["control"], "-r"], capture_output=True,
                             text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    app_sockets = 0
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        if not v.strip().isdigit():
            continue
        v = int(v)
        if k.startswith("memp.") and k.endswith(".used") or k == "mem.backed" \
                or k == "backend.open_sockets" or k == "backend.apps" \
                or re.fullmatch(r"port\.\d+\.mbufs_used", k):
            s[k] = v
        elif re.fullmatch(r"app\.\d+\.sockets", k):
            app_sockets += v
    if out:
        s["app_sockets"] = app_sockets
    return s


def judge(name, first, last, asan):
    """(ok, the tolerance in words) of one series, first -> last."""
    if first is None or last is None:
        return False, "not sampled"
    if name == "rss_kb":
        if asan:
            return True, "not judged under ASan (its quarantine holds freed memory)"
        return abs(last - first) <= first * 0.05, "within 5% of first"
    if name == "mem.backed":
        return last <= first + 4 * MiB, "at most first + 4 MiB (two spare extents kept)"
    if re.fullmatch(r"port\.\d+\.mbufs_used", name):
        return abs(last - first) <= 64, "within 64 of first (a burst)"
    return last == first, "back to first"


def series_names(samples):
    names = ["rss_kb"]
    for s in samples:
        for k in s:
            if k not in names and k not in ("t", "phase"):
                names.append(k)
    return names


def settled(c, first, s):
    return all(judge(k, first.get(k), s.get(k), c["asan"])[0]
               for k in series_names([first]) if k != "rss_kb")


def summary(c, samples):
    first, last = samples[0], samples[-1]
    out = {}
    for k in series_names(samples):
        vals = [s[k] for s in samples if s.get(k) is not None]
        ok, tol = judge(k, first.get(k), last.get(k), c["asan"])
        out[k] = {"first": first.get(k), "min": min(vals) if vals else None,
                  "max": max(vals) if vals else None, "last": last.get(k),
                  "growth": (last[k] - first[k]) if k in first and k in last else None,
                  "ok": ok, "tolerance": tol}
    return out


# ---- run ------------------------------------------------------------------

def start_app(c):
    cmd = shim_env(c, False) + ["python3", c["app"], c["addr"], str(c["port"]), str(c["udp_port"])]
    log = open(os.path.join(c["logs"], "app.log"), "w")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()      # bounded: the shim gives up on attach in 5 s
    if line.strip() != "ready":
        p.kill()
        raise SystemExit(f"soak: the application under the shim did not start: {line!r} "
                         f"(log {log.name})")
    return p


def run(c):
    c["asan"] = c["asan"] == "1"
    c["logs"] = os.path.join(c["out"], "soak-logs")
    os.makedirs(c["logs"], exist_ok=True)
    for k in ("daemon_pid", "port", "udp_port", "perf_port", "seconds", "interval", "settle"):
        c[k] = int(c[k])
    say(f"isoperf server on {c['peer_addr']}:{c['perf_port']} (Linux, this namespace)")
    perf = subprocess.Popen([c["isoperf"], "server", "-B", c["peer_addr"], "-p", str(c["perf_port"])],
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(c["logs"], "isoperf-server.log"), "w"))
    say(f"application under the shim: TCP {c['addr']}:{c['port']}, UDP :{c['udp_port']}")
    app = start_app(c)
    c["app_pid"] = app.pid
    samples = [sample(c, "idle")]
    say(f"first sample (idle): rss {samples[0]['rss_kb']} kB, "
        f"tcp_pcb {samples[0].get('memp.tcp_pcb.used')}, app sockets {samples[0].get('app_sockets')}")
    stop = threading.Event()
    workers = [Worker(f.__name__, c) for f in TRAFFIC]
    threads = [threading.Thread(target=f, args=(c, w, stop), daemon=True)
               for f, w in zip(TRAFFIC, workers)]
    say(f"traffic for {c['seconds']} s: {', '.join(w.name for w in workers)}")
    for t in threads:
        t.start()
    end = time.monotonic() + c["seconds"]
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(c["interval"], left))
        s = sample(c, "traffic")
        samples.append(s)
        if app.poll() is not None:
            workers[0].fail(f"the application under the shim exited ({app.returncode})")
        say(f"rss {s['rss_kb']} kB  tcp_pcb {s.get('memp.tcp_pcb.used')}  "
            f"tcp_seg {s.get('memp.tcp_seg.used')}  pbuf_pool {s.get('memp.pbuf_pool.used')}  "
            f"heap {s.get('memp.heap.used')}  app_sockets {s.get('app_sockets')}  "
            f"mem.backed {s.get('mem.backed')}  | "
            + " ".join(f"{w.name} {w.ops}" + (f"/{w.failures}F" if w.failures else "")
                       for w in workers))
    say("traffic stops; waiting for the workers to finish what they started")
    stop.set()
    for t in threads:
        t.join(90)
        if t.is_alive():
            workers[0].fail(f"a worker did not stop within 90 s ({t.name})")
    if app.poll() is not None:
        workers[0].fail(f"the application under the shim exited ({app.returncode})")
    say(f"settling: until every level is back (at most {c['settle']} s; lwIP's TIME_WAIT is 120 s)")
    t_stop, last_print = time.monotonic(), 0
    while True:
        s = sample(c, "settle")
        if settled(c, samples[0], s) or time.monotonic() - t_stop > c["settle"]:
            break
        if time.monotonic() - last_print >= c["interval"]:
            samples.append(s)
            last_print = time.monotonic()
            say(f"settling: tcp_pcb {s.get('memp.tcp_pcb.used')} (idle "
                f"{samples[0].get('memp.tcp_pcb.used')}), app_sockets {s.get('app_sockets')}, "
                f"mem.backed {s.get('mem.backed')}")
        time.sleep(1)
    s["phase"] = "last"
    samples.append(s)
    settle_s = round(time.monotonic() - t_stop, 1)
    say(f"settled after {settle_s} s" if settled(c, samples[0], s) else
        f"not back within {c['settle']} s")
    app.send_signal(signal.SIGTERM)
    try:
        app.wait(10)
    except subprocess.TimeoutExpired:
        app.kill()
    perf.kill()
    perf.wait()
    r = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": c.get("command"),
         "seconds": c["seconds"], "interval": c["interval"], "asan": c["asan"],
         "daemon": c["daemon"], "shim": c["shim"], "settle_seconds": settle_s,
         "workers": {w.name: w.json() for w in workers},
         "failures": sum(w.failures for w in workers),
         "series": summary(c, samples), "samples": samples}
    r["verified"] = r["failures"] == 0
    r["flat"] = all(v["ok"] for v in r["series"].values())
    write(c["out"], r)


def write(out, r):
    path = os.path.join(out, "soak.json")
    with open(path + ".tmp", "w") as f:
        json.dump(r, f, indent=1)
    os.replace(path + ".tmp", path)


# ---- finish: the daemon's exit, the verdict, the table ---------------------

def finish(out, rc, sanitizer_lines):
    path = os.path.join(out, "soak.json")
    r = json.load(open(path))
    r["daemon_exit"] = int(rc)
    r["sanitizer_reports"] = int(sanitizer_lines)
    clean = r["daemon_exit"] == 0 and r["sanitizer_reports"] == 0
    r["verdict"] = ("flat" if r["flat"] and r["verified"] and clean else
                    "verification failed" if not r["verified"] else
                    "sanitizer report" if not clean else "growth")
    write(out, r)
    print(f"\n{'series':28} {'first':>12} {'min':>12} {'max':>12} {'last':>12} "
          f"{'growth':>10}  judged")
    for k, v in r["series"].items():
        def f(x):
            return "-" if x is None else f"{x:,}"
        print(f"{k:28} {f(v['first']):>12} {f(v['min']):>12} {f(v['max']):>12} "
              f"{f(v['last']):>12} {f(v['growth']):>10}  {'ok' if v['ok'] else 'NO'}: "
              f"{v['tolerance']}")
    print(f"\n{'traffic':10} {'ops':>9} {'MiB':>9} {'failures':>8}")
    for k, w in r["workers"].items():
        print(f"{k:10} {w['ops']:>9,} {w['bytes'] / MiB:>9,.1f} {w['failures']:>8}"
              + (f"  {w['errors'][0]}" if w["errors"] else ""))
    ex = r["workers"]["restart"]
    print(f"restart: {ex.get('runs', 0)} isoperf clients under the shim, "
          f"{ex.get('killed', 0)} of them SIGKILLed")
    print(f"\n{r['seconds']} s of traffic, settled in {r['settle_seconds']} s; daemon exit "
          f"{r['daemon_exit']}, sanitizer reports {r['sanitizer_reports']}"
          f"{' (ASan build)' if r['asan'] else ''}")
    print(f"verdict: {r['verdict']}")
    return {"flat": 0, "verification failed": 1, "sanitizer report": 5}.get(r["verdict"], 4)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run(dict(a.split("=", 1) for a in sys.argv[2:]))
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "finish":
        return finish(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
