#!/usr/bin/env python3
# `isostack bench`: the paper's figures (section 5), the kernel stack and
# isostack side by side in one run (scripts/lib/bench_paper.sh starts it).
#
# The plan (bench_paper_plan.py) is a list of groups, one per daemon
# configuration (stack, variant, topology, MTU); each group's topology
# comes up once, its isoperf server starts once, its points run one after
# the other, and everything goes down before the next group. A point is one
# isoperf client run; its window command (bench_window.py) snapshots the
# daemon's counters and /proc/stat at the edges of isoperf's measuring
# window, which gives the stack core's cycles per operation. A point that
# fails becomes a record with ok=false and the reason; the run goes on.
#
# Layout (two cores): isostackd busy-polls core 1; applications and the
# Linux peer run on core 0, on both stacks.
#   wire      kernel: namespaces PREFIX-ks / PREFIX-kp joined by a veth;
#             isostack: `isostack up` (daemon on a veth to the peer ns)
#   nokernel  kernel: both ends on 127.0.0.1 in namespace PREFIX-ks;
#             isostack: server and client both under `isostack run`,
#             the client connecting to the daemon's own address
# A group of family 6 (figure "v6") does the same over IPv6: the kernel
# pair's 2001:2:1::1/::2 (::1 on nokernel), the daemon's 2001:2::1 and
# the peer's 2001:2::2.
import json
import os
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_paper_plan as plan_mod      # noqa: E402
import bench_paper_report as report      # noqa: E402

PORT = 5301
K_SUT_IP, K_PEER_IP = "198.18.1.1", "198.18.1.2"
# The kernel pair's IPv6 addresses (rows of figure "v6"), from the
# benchmarking range 2001:2::/48 as `isostack up`'s 2001:2::1 and ::2.
K_SUT_IP6, K_PEER_IP6 = "2001:2:1::1", "2001:2:1::2"
STACK_CORE = 1


def log(msg):
    print(f"isostack: bench: {msg}", file=sys.stderr, flush=True)


class Env:
    """What bench_paper.sh hands over, and the run's own paths."""

    def __init__(self, args):
        self.args = args
        self.cli = os.environ["ISOSTACK_SELF"]
        self.isoperf = os.environ["BENCH_ISOPERF"]
        self.isostat = os.environ.get("BENCH_ISOSTAT", "")
        self.prefix = os.environ["BENCH_PREFIX"]
        self.src = os.environ.get("ISOSTACK_SRC", "")
        self.lib = os.path.dirname(os.path.abspath(__file__))
        self.out = os.path.abspath(args.out)
        self.logs = os.path.join(self.out, "paper-logs")
        self.window_cmd = os.path.join(self.logs, "window.sh")
        help_text = subprocess.run([self.isoperf, "--help"], capture_output=True,
                                   text=True).stdout
        self.has_window = "--window-cmd" in help_text
        self.ns_ks, self.ns_kp = f"{self.prefix}-ks", f"{self.prefix}-kp"


def run(cmd, env=None, timeout=120):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def kill_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def run_session(cmd, env, timeout):
    """cmd in a session of its own, so that a timeout or Ctrl-C kills all
    of it (isoperf under a wrapper, too); returns (exit code, output)."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        stop_session(proc)
        return -1, f"{cmd[0]}: timed out after {timeout} s"
    except BaseException:
        stop_session(proc)
        raise


def stop_session(proc):
    """SIGTERM first (l2_testpmd.sh cleans up on it), SIGKILL after 30 s."""
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    kill_group(proc)
    proc.wait()


def load_state(prefix):
    s = {}
    path = f"{os.environ.get('ISOSTACK_STATE_DIR', '/run/isostack')}/{prefix}/state"
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            w = shlex.split(v)
            s[k] = w[0] if w else ""
    return s


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Group:
    """One daemon configuration: its topology, its server, its prefixes."""

    def __init__(self, env, stack, variant, topo, family=4):
        self.env, self.stack, self.variant, self.topo = env, stack, variant, topo
        self.family = family
        self.topology, self.mtu = plan_mod.TOPOLOGIES[topo]
        self.error, self.commands, self.server, self.state = "", [], None, {}
        self.iso_env = dict(os.environ, ISOSTACK_NS_PREFIX=env.prefix)

    # --- bring-up and teardown -------------------------------------------
    def up(self):
        try:
            if self.stack == "kernel":
                self.kernel_up()
            else:
                self.isostack_up()
            if not self.error:
                self.start_server()
        except (subprocess.SubprocessError, OSError) as e:
            self.error = self.error or f"setup: {e}"
        return not self.error

    def sh(self, cmd):
        self.commands.append(shlex.join(cmd))
        p = run(cmd)
        if p.returncode != 0:
            raise subprocess.SubprocessError(
                f"{shlex.join(cmd)}: {(p.stderr or p.stdout).strip()[-300:]}")

    def kernel_up(self):
        ks, kp = self.env.ns_ks, self.env.ns_kp
        self.sh(["ip", "netns", "add", ks])
        self.sh(["ip", "-n", ks, "link", "set", "lo", "up"])
        if self.topology == "nokernel":
            self.mtu = int(run(["ip", "netns", "exec", ks, "cat",
                                "/sys/class/net/lo/mtu"]).stdout.strip() or 0)
            self.sut_ns, self.peer_ns = ks, ks
            self.addr = "::1" if self.family == 6 else "127.0.0.1"
            return
        self.sh(["ip", "netns", "add", kp])
        self.sh(["ip", "-n", kp, "link", "set", "lo", "up"])
        self.sh(["ip", "link", "add", "isob-s", "netns", ks, "type", "veth",
                 "peer", "name", "isob-p", "netns", kp])
        for ns, dev, ip, ip6 in ((ks, "isob-s", K_SUT_IP, K_SUT_IP6),
                                 (kp, "isob-p", K_PEER_IP, K_PEER_IP6)):
            self.sh(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev])
            # nodad: usable at once, as `isostack up` adds the peer's
            self.sh(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", dev, "nodad"])
            self.sh(["ip", "-n", ns, "link", "set", dev, "mtu", str(self.mtu), "up"])
        self.sut_ns, self.peer_ns = ks, kp
        self.addr = K_PEER_IP6 if self.family == 6 else K_PEER_IP

    def isostack_up(self):
        cmd = [self.env.cli, "up"]
        if self.mtu != 1500:
            cmd += ["--mtu", str(self.mtu)]
        if self.variant != "core":
            cmd += ["--set", f"variant={self.variant}"]
        self.commands.append(f"ISOSTACK_NS_PREFIX={self.env.prefix} {shlex.join(cmd)}")
        p = run(cmd, env=self.iso_env, timeout=120)
        with open(os.path.join(self.env.logs, f"up-{self.name()}.log"), "w") as f:
            f.write(p.stdout + p.stderr)
        if p.returncode != 0:
            lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
            why = ([ln for ln in lines if "unknown" in ln.lower()] or
                   [ln for ln in lines if "error" in ln.lower()] or lines[-1:] or
                   [f"exit {p.returncode}"])[0]
            # An option today's daemon or `up` does not know is a
            # configuration this tree lacks, not a failure of the stack.
            unknown = any(w in (p.stderr + p.stdout).lower()
                          for w in ("unknown option", "unknown key", "unknown variant",
                                    "not a [daemon] key", "unknown [daemon] key"))
            self.error = (f"unavailable: {shlex.join(cmd[1:])} is not supported here ({why})"
                          if unknown else f"isostack up failed: {why}")
            return
        self.state = load_state(self.env.prefix)
        key = "PEER_ADDR" if self.topology == "wire" else "ADDR"
        self.addr = self.state[key + ("6" if self.family == 6 else "")]

    def name(self):
        v6 = "-v6" if self.family == 6 else ""
        return f"{self.stack}-{self.variant}-{self.topo}{v6}"

    def client_prefix(self):
        if self.stack == "kernel":
            return ["ip", "netns", "exec", self.sut_ns, "taskset", "-c", "0"]
        return [self.env.cli, "run", "--require", "--"]

    def server_prefix(self):
        if self.stack == "kernel":
            return ["ip", "netns", "exec", self.peer_ns, "taskset", "-c", "0"]
        if self.topology == "wire":
            return [self.env.cli, "peer", "--"]
        return [self.env.cli, "run", "--require", "--"]

    def start_server(self):
        cmd = self.server_prefix() + [self.env.isoperf, "server", "-B", self.addr,
                                      "-p", str(PORT), "--nodelay"]
        self.server_cmd = shlex.join(cmd)
        self.commands.append(self.server_cmd)
        path = os.path.join(self.env.logs, f"server-{self.name()}.log")
        logf = open(path, "w")
        self.server = subprocess.Popen(cmd, env=self.iso_env, stdin=subprocess.DEVNULL,
                                       stdout=logf, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        logf.close()
        # Bounded wait for isoperf's own "listening" line (printed after listen()).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(path) as f:
                if "server listening" in f.read():
                    return
            if self.server.poll() is not None:
                break
            time.sleep(0.05)
        with open(path) as f:
            tail = f.read().strip().splitlines()[-1:] or ["no output"]
        self.error = f"isoperf server did not listen: {tail[0]}"

    def alive(self):
        if self.error or self.server is None or self.server.poll() is not None:
            return False
        return self.stack == "kernel" or pid_alive(self.state.get("DAEMON_PID", 0))

    def down(self):
        if self.server is not None:
            # The whole session: the server and anything it left running.
            kill_group(self.server, signal.SIGTERM)
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                pass
            kill_group(self.server)
            self.server.wait()
        self.server = None
        if self.stack == "kernel":
            for ns in (self.env.ns_ks, self.env.ns_kp):
                run(["ip", "netns", "del", ns])
        else:
            run([self.env.cli, "down"], env=self.iso_env, timeout=120)

    # --- one point -------------------------------------------------------
    def measure(self, m, secs):
        """Runs one isoperf client; returns (isoperf JSON or None, window
        snapshots (start, end) or None, error, client command)."""
        tag = f"{self.name()}-{m['mode']}-{m['conns']}x{m['bytes']}"
        js = os.path.join(self.env.logs, f"{tag}.json")
        win = os.path.join(self.env.logs, f"{tag}-win")
        cmd = self.client_prefix() + [
            self.env.isoperf, "client", self.addr, "-p", str(PORT), "-m", m["mode"],
            "-c", str(m["conns"]), "-l", str(m["bytes"]), "-d", str(secs),
            "--nodelay", "--json", js]
        if self.env.has_window:
            cmd += ["--window-cmd", self.env.window_cmd]
        wenv = dict(self.iso_env, ISOB_WIN_PREFIX=win, ISOB_ISOSTAT=self.env.isostat,
                    ISOB_CONTROL=self.state.get("CONTROL", ""))
        for f in (js, win + "-start.txt", win + "-end.txt"):
            if os.path.exists(f):
                os.unlink(f)
        if not self.env.has_window:      # the whole client run, a wider window
            subprocess.run([self.env.window_cmd, "start"], env=wenv)
        rc, out = run_session(cmd, wenv, secs * 3 + 90)
        if not self.env.has_window:
            subprocess.run([self.env.window_cmd, "end"], env=wenv)
        with open(os.path.join(self.env.logs, f"{tag}.log"), "w") as f:
            f.write(shlex.join(cmd) + "\n" + out)
        result = None
        if os.path.exists(js):
            with open(js) as f:
                result = json.load(f)
        err = ""
        if rc != 0 or result is None:
            lines = [ln for ln in out.splitlines() if ln.strip()]
            own = [ln for ln in lines if ln.startswith(("isoperf:", "isostack:"))]
            why = own[0] if own else (lines[-1] if lines else "no output")
            more = f" (and {len(own) - 1} more such lines)" if len(own) > 1 else ""
            err = f"isoperf client exit {rc}: {why}{more}"
        snaps = None
        if os.path.exists(win + "-start.txt") and os.path.exists(win + "-end.txt"):
            snaps = (read_snap(win + "-start.txt"), read_snap(win + "-end.txt"))
        return result, snaps, err, shlex.join(cmd)


def read_snap(path):
    d = {}
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) == 2:
                try:
                    d[w[0]] = int(w[1])
                except ValueError:
                    pass
    return d


class Progress:
    def __init__(self, total, secs):
        self.total, self.done, self.secs = total, 0, secs
        self.t0 = time.monotonic()

    def show(self, what):
        left = self.total - self.done
        if self.done:
            per = (time.monotonic() - self.t0) / self.done
        else:
            per = self.secs + 3
        eta = int(per * left)
        print(f"isostack: bench: [{self.done + 1}/{self.total}] {what}; "
              f"{left} point(s) left, ~{eta // 60}m{eta % 60:02d}s",
              file=sys.stderr, flush=True)


def run_groups(env, groups, secs, records, l2_snap, rounds=1):
    """Every group in turn, the whole list `rounds` times over: a
    comparison whose two sides are groups of their own (IPv4 against IPv6)
    then alternates, so a slow spell of the machine falls on both."""
    prog = Progress(rounds * sum(len(ms) for _, ms in groups), secs)
    for rnd in range(1, rounds + 1):
        for group, ms in groups:
            run_group(env, group, ms, secs, records, l2_snap, prog, rnd, rounds)


def run_group(env, group, ms, secs, records, l2_snap, prog, rnd, rounds):
    stack, variant, topo, family = group
    g = Group(env, stack, variant, topo, family)
    log(f"up: {stack} {variant} on {topo}, IPv{family}" +
        (f" (round {rnd} of {rounds})" if rounds > 1 else ""))
    try:
        g.up()
        for m in ms:
            prog.show(f"{topo} IPv{family} {stack}/{variant} {m['mode']} "
                      f"{m['conns']}x{m['bytes']} "
                      f"({','.join(m['figures']) or 'l2'})")
            if not g.error and not g.alive():
                log("the server or daemon died: bringing the group up again")
                g.down()
                g.commands = []
                g.up()
            if g.error:
                res, snaps, err, ccmd = None, None, g.error, ""
            else:
                res, snaps, err, ccmd = g.measure(m, secs)
            for fig in m["figures"]:
                rec = report.make_record(fig, g, m, secs, res, snaps, err,
                                         g.commands + [ccmd])
                rec["round"] = rnd
                records.append(rec)
            if m.get("l2"):
                l2_snap.update(group=g, m=m, res=res, snaps=snaps, err=err,
                               commands=g.commands + [ccmd], pmd=g.state.get("PMD"))
            prog.done += 1
    finally:
        g.down()


def run_l2(env, secs, l2_snap, records):
    """Issue 12 point 6: testpmd io forwarding on the same vdev beside
    isostackd's raw packet rate and TCP segment rate (Fig. 5, 64 B)."""
    script = os.path.join(env.src, "bench", "l2_testpmd.sh") if env.src else ""
    pmd = l2_snap.get("pmd") or "af_xdp"
    js = os.path.join(env.logs, "l2_testpmd.json")
    cmd = [script, "--duration", str(secs), "--json", js, "--pmd", pmd, "--modes", "io"]
    err, rate = "", None
    if not script or not os.path.exists(script):
        err = "bench/l2_testpmd.sh is not in this copy (source checkout only)"
    else:
        log(f"l2: dpdk-testpmd io forwarding on {pmd}")
        rc, out = run_session(cmd, None, secs * 4 + 120)
        with open(os.path.join(env.logs, "l2_testpmd.log"), "w") as f:
            f.write(shlex.join(cmd) + "\n" + out)
        lines = out.strip().splitlines() or [""]
        if rc == 77:
            err = "skipped: " + lines[-1]
        elif rc != 0 or not os.path.exists(js):
            err = f"l2_testpmd.sh exit {rc}: {lines[-1]}"
        else:
            with open(js) as f:
                rows = [r for r in json.load(f)["results"] if r["dut"] == "testpmd io"]
            rate = rows[0]["out_pps"] if rows else None
            err = "" if rows else "l2_testpmd.sh gave no testpmd io row"
    records.extend(report.l2_records(l2_snap, pmd, secs, rate, err, shlex.join(cmd)))


def main():
    import argparse
    ap = argparse.ArgumentParser(prog="isostack bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--stack", default="both", choices=["kernel", "isostack", "both"])
    ap.add_argument("--topology")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--command", default="")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    secs = args.seconds or (1 if args.quick else 5)
    stacks = ["kernel", "isostack"] if args.stack == "both" else [args.stack]
    topos = None
    if args.topology:
        topos = args.topology.split(",")
        bad = [t for t in topos if t not in plan_mod.TOPOLOGIES]
        if bad:
            sys.exit(f"isostack: error: bench: unknown topology {bad[0]} (wire, wire9000, nokernel)")
    try:
        groups, l2 = plan_mod.plan(args.quick, args.only, topos, stacks)
    except ValueError as e:
        sys.exit(f"isostack: error: bench: {e}")
    if not groups and not l2:
        sys.exit("isostack: error: bench: --only/--topology/--stack select no point")
    env = Env(args)
    report.clear_old(env.out)
    os.makedirs(env.logs, exist_ok=True)
    with open(env.window_cmd, "w") as f:
        f.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -S {shlex.quote(os.path.join(env.lib, 'bench_window.py'))} \"$@\"\n")
    os.chmod(env.window_cmd, 0o755)
    if not env.has_window:
        log("isoperf has no --window-cmd yet: the stack's counters cover the whole client run")
    # SIGTERM unwinds like Ctrl-C, through every group's down(); SIGINT is
    # set explicitly: a background job of a script inherits it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    records, l2_snap = [], {}
    meta = report.meta(env, args, secs, stacks, topos)
    npoints = args.rounds * sum(len(ms) for _, ms in groups)
    log(f"{npoints} measurement(s) in {len(groups)} group(s)"
        f"{f' x {args.rounds} rounds' if args.rounds > 1 else ''}, {secs} s each; "
        f"results in {env.out}")
    t0 = time.monotonic()
    try:
        run_groups(env, groups, secs, records, l2_snap, args.rounds)
        if l2:
            run_l2(env, secs, l2_snap, records)
    except KeyboardInterrupt:
        meta["interrupted"] = True
        log("interrupted: writing what was measured")
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)
    report.write_all(env, meta, records)
    return 130 if meta.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
