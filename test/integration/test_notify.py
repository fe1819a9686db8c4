#!/usr/bin/env python3
"""isostackd speaks systemd's notification protocol, and logs with levels.

The test plays systemd: it binds a datagram socket, points NOTIFY_SOCKET
at it and runs isostackd on a net_null port (no NIC, no namespace: only
the daemon talks here). Two runs:

1. A socket path, WATCHDOG_USEC set for the daemon, stderr a plain file,
   app_sockets=2. Checks: STATUS= lines before READY=1; READY=1 sent by
   the daemon's own pid (what NotifyAccess=main accepts); a connect() to
   the control socket right after READY=1 succeeds and isostat gets its
   STATS; WATCHDOG=1 pings keep coming; an application under the shim
   changes STATUS= and logs attached/detached with its pid and uid; its
   third socket fails with EMFILE and the limit is logged once, not once
   per refusal; SIGTERM brings STOPPING=1 and a clean exit; log lines read
   "isostackd[PID]: LEVEL: ...".
2. An abstract '@' name, WATCHDOG_PID naming another process, stderr the
   stream that JOURNAL_STREAM names. Checks: READY=1 arrives; no
   WATCHDOG=1 (the ping is not for this pid) though the loop's slow path
   has run; log lines carry journald's "<6>" prefix.

Before READY=1 it records, for each message, whether the control socket
existed yet (printed, for a human: the order is not observable
reliably from outside). Skips (77) without root, two CPUs, the daemon,
the shim, isostat or DPDK's net_null.
Usage: test_notify.py [LIBISOSOCK]  (default: $ISOSTACK_BUILD/libisosock/libisosock.so)
"""
import errno
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

TIMEOUT = 60.0        # seconds for any one expected event
STACK_CORE = os.environ.get("ISOSTACK_STACK_CORE", "1")
OTHER_CORE = os.environ.get("ISOSTACK_PEER_CORE", "0")


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


def fail(why):
    print("FAIL:", why, file=sys.stderr)
    sys.exit(1)


def app_main():
    """Under the shim: 'open' / 'close' / 'exit' lines on stdin."""
    socks = []
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "open":
            try:
                socks.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                print("ok", flush=True)
            except OSError as e:
                print("err", e.errno, flush=True)
        elif cmd == "close":
            socks.pop().close()
            print("ok", flush=True)
        elif cmd == "exit":
            break
    return 0


class Manager:
    """The systemd side: a datagram socket that records what arrives."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.address = address
        self.msgs = []          # (pid, {key: value}) in arrival order

    def recv(self, deadline, daemon):
        """One message, or fail at the deadline or if the daemon exits."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("no notification within %.0f s; got %s" %
                     (TIMEOUT, [m for _, m in self.msgs]))
            if daemon.poll() is not None:
                self.sock.setblocking(False)   # what it sent before exiting
                try:
                    return self._take()
                except BlockingIOError:
                    fail("isostackd exited (status %s)" % daemon.returncode)
                finally:
                    self.sock.setblocking(True)
            self.sock.settimeout(min(left, 0.5))
            try:
                return self._take()
            except socket.timeout:
                continue

    def _take(self):
        size = struct.calcsize("3i")
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(size))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:size])[0]
        fields = {}
        for line in data.decode().split("\n"):
            if line:
                key, _, value = line.partition("=")
                fields.setdefault(key, []).append(value)
        self.msgs.append((pid, fields))
        return pid, fields

    def wait_for(self, pred, what, daemon):
        deadline = time.monotonic() + TIMEOUT
        while True:
            pid, fields = self.recv(deadline, daemon)
            if pred(fields):
                return pid, fields
            if "STOPPING" in fields and what != "STOPPING=1":
                fail("STOPPING=1 while waiting for " + what)

    def close(self):
        self.sock.close()
        if not self.address.startswith("@"):
            os.unlink(self.address)


def start_daemon(tmp, tag, env_extra, stderr, extra_args):
    prefix = "notify%s%d" % (tag, os.getpid())
    control = os.path.join(tmp, "control-%s.sock" % tag)
    cmd = ["taskset", "-c", STACK_CORE, DAEMON, "--lcore", STACK_CORE,
           "--port", "vdev=net_null0,no-rx=1 ip=198.18.0.1/24",
           "--control", control] + extra_args + [
           "--", "--file-prefix", prefix, "--no-huge", "-m", "256"]
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        env.pop(k, None)
    env.update(env_extra)
    d = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                         stdout=stderr, stderr=stderr)
    RUNNING.append((d, prefix))
    return d, control


def stop_daemon(d, mgr):
    d.send_signal(signal.SIGTERM)
    mgr.wait_for(lambda f: f.get("STOPPING") == ["1"], "STOPPING=1", d)
    try:
        rc = d.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("isostackd did not exit within %.0f s of SIGTERM" % TIMEOUT)
    if rc != 0:
        fail("isostackd exited with %d after SIGTERM" % rc)


def wait_ready(mgr, d, control, log):
    """STATUS lines, then READY=1; connect() to the control socket at once."""
    existed = []
    while True:
        if d.poll() is not None:
            with open(log) as f:
                text = f.read()
            if re.search(r"net_null0.*(no such ethdev|cannot start)|"
                         r"failed to find net_null|Driver.*net_null.*not found", text):
                skip("DPDK's net_null vdev does not start here: " + text[-300:])
        pid, f = mgr.recv(time.monotonic() + TIMEOUT, d)
        if "READY" in f:
            break
        existed.append((f.get("STATUS", ["?"])[0], os.path.exists(control)))
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        c.connect(control)      # must not be ECONNREFUSED / ENOENT
    except OSError as e:
        fail("connect to the control socket right after READY=1: %s" % e)
    c.close()
    print("before READY=1 (status, control socket existed):", existed)
    if not existed:
        fail("no STATUS= line before READY=1")
    if f["READY"] != ["1"]:
        fail("READY=%s" % f["READY"])
    if pid != d.pid:
        fail("READY=1 came from pid %s, not the daemon's %d (NotifyAccess=main)" %
             (pid, d.pid))
    print("READY=1 from pid %d with STATUS=%s" % (pid, f.get("STATUS")))


def isostat(control):
    r = subprocess.run([ISOSTAT, "-c", control], capture_output=True, text=True,
                       timeout=TIMEOUT)
    if r.returncode != 0:
        fail("isostat: %s" % r.stderr.strip())
    return r.stdout


def wait_log(path, pattern):
    """The log grows as the daemon writes: look until pattern appears."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(path) as f:
            m = re.search(pattern, f.read(), re.M)
        if m:
            return m
        time.sleep(0.05)        # a condition poll with a deadline, not a wait for time
    fail("no log line matching %r in %s" % (pattern, path))


def app_cmd(app, cmd):
    app.stdin.write(cmd + "\n")
    app.stdin.flush()
    line = app.stdout.readline().strip()
    if not line:
        fail("the application died on %r" % cmd)
    return line


def status_of(f):
    return f.get("STATUS", [None])[0]


def run_path(tmp):
    """Run 1: socket path, watchdog, plain log, an application, a limit."""
    print("== run 1: NOTIFY_SOCKET a path, WATCHDOG_USEC 200 ms")
    mgr = Manager(os.path.join(tmp, "notify.sock"))
    log = os.path.join(tmp, "isostackd-1.log")
    with open(log, "w") as lf:
        d, control = start_daemon(tmp, "a", {
            "NOTIFY_SOCKET": mgr.address, "WATCHDOG_USEC": "200000"},
            lf, ["--set", "app_sockets=2"])
    wait_ready(mgr, d, control, log)
    isostat(control)
    pings = 0
    while pings < 3:
        _, f = mgr.wait_for(lambda f: "WATCHDOG" in f, "WATCHDOG=1", d)
        if f["WATCHDOG"] != ["1"]:
            fail("WATCHDOG=%s" % f["WATCHDOG"])
        pings += 1
    print("3 WATCHDOG=1 pings")

    env = dict(os.environ, LD_PRELOAD=SHIM, ISOSTACK_CONTROL=control,
               ISOSTACK_REQUIRE="1")
    app = subprocess.Popen(["taskset", "-c", OTHER_CORE, sys.executable,
                            os.path.abspath(__file__), "--app"],
                           env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    try:
        for i in range(2):
            if app_cmd(app, "open") != "ok":
                fail("socket %d under the shim failed" % (i + 1))
        for i in range(3):     # beyond app_sockets=2: EMFILE, each time
            r = app_cmd(app, "open")
            if r != "err %d" % errno.EMFILE:
                fail("socket beyond app_sockets: %r, not EMFILE" % r)
        _, f = mgr.wait_for(lambda f: status_of(f) == "serving: 1 application, 2 sockets",
                            "STATUS with the application", d)
        print("STATUS=%s" % status_of(f))
        m = wait_log(log, r"^isostackd\[%d\]: info: app \d+ attached: pid %d uid %d "
                     r"\(python3?[^)]*\)" % (d.pid, app.pid, os.getuid()))
        print(m.group(0))
        m = wait_log(log, r"^isostackd\[%d\]: warn: limit: .*EMFILE.*: \d+ so far.*$" % d.pid)
        print(m.group(0))
        # Two STATUS changes, 2 s apart: a limits check (every second)
        # ran after the three refusals. One line still.
        app_cmd(app, "close")
        mgr.wait_for(lambda f: status_of(f) == "serving: 1 application, 1 socket",
                     "STATUS after a close", d)
        app_cmd(app, "close")
        mgr.wait_for(lambda f: status_of(f) == "serving: 1 application, 0 sockets",
                     "STATUS after the second close", d)
        app.stdin.write("exit\n")
        app.stdin.flush()
        if app.wait(TIMEOUT) != 0:
            fail("the application exited with %d" % app.returncode)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    mgr.wait_for(lambda f: status_of(f) == "serving: 0 applications, 0 sockets",
                 "STATUS after the application left", d)
    m = wait_log(log, r"^isostackd\[%d\]: info: app \d+ detached: pid %d uid %d" %
                 (d.pid, app.pid, os.getuid()))
    print(m.group(0))
    stop_daemon(d, mgr)
    mgr.close()
    with open(log) as f:
        text = f.read()
    n = len(re.findall(r"limit: .*EMFILE", text))
    if n != 1:
        fail("the EMFILE limit was logged %d times, not once" % n)
    for want in (r"^isostackd\[%d\]: info: starting: " % d.pid,
                 r"^isostackd\[%d\]: info: port 0 net_null0 up: " % d.pid,
                 r"^isostackd\[%d\]: info: watchdog: WATCHDOG=1 every 100 ms" % d.pid,
                 r"^isostackd\[%d\]: info: stopped$" % d.pid):
        if not re.search(want, text, re.M):
            fail("no log line matching %r" % want)
    print("run 1: PASS")


def run_abstract(tmp):
    """Run 2: abstract name, a watchdog for another pid, the journal's prefix."""
    print("== run 2: NOTIFY_SOCKET @abstract, WATCHDOG_PID another process, JOURNAL_STREAM")
    mgr = Manager("@isostack-test-notify-%d" % os.getpid())
    log = os.path.join(tmp, "isostackd-2.log")
    with open(log, "w") as lf:
        st = os.fstat(lf.fileno())
        d, control = start_daemon(tmp, "b", {
            "NOTIFY_SOCKET": mgr.address, "WATCHDOG_USEC": "200000",
            "WATCHDOG_PID": "1", "JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)},
            lf, [])
    wait_ready(mgr, d, control, log)
    # The second STATS reply comes from a later loop pass than the first:
    # the health source (which would ping on its first pass) has run.
    isostat(control)
    isostat(control)
    stop_daemon(d, mgr)
    mgr.close()
    if any("WATCHDOG" in f for _, f in mgr.msgs):
        fail("WATCHDOG=1 sent though WATCHDOG_PID names another process")
    with open(log) as f:
        text = f.read()
    for want in (r"^<6>starting: ", r"^<6>running$", r"^<6>stopped$"):
        if not re.search(want, text, re.M):
            fail("no journal-style line matching %r in %s" % (want, log))
    if re.search(r"^isostackd\[", text, re.M):
        fail("plain log lines though stderr is the journal stream")
    print("run 2: PASS")


RUNNING = []


def cleanup():
    for d, prefix in RUNNING:
        if d.poll() is None:
            d.kill()
            d.wait()
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)


def main():
    global DAEMON, ISOSTAT, SHIM
    build = os.environ.get("ISOSTACK_BUILD",
                           os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    DAEMON = os.environ.get("ISOSTACK_DAEMON", os.path.join(build, "daemon", "isostackd"))
    ISOSTAT = os.path.join(build, "daemon", "isostat")
    SHIM = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(build, "libisosock", "libisosock.so")
    if os.getuid() != 0:
        skip("needs root (DPDK's runtime directory, the stack core)")
    if (os.cpu_count() or 1) < 2:
        skip("needs two CPUs (the daemon polls one)")
    for what, path in (("isostackd", DAEMON), ("isostat", ISOSTAT), ("the shim", SHIM)):
        if not os.path.exists(path):
            skip("no %s at %s (build it first)" % (what, path))
    if not shutil.which("taskset"):
        skip("needs taskset (util-linux)")
    tmp = tempfile.mkdtemp(prefix="isostack-notify-")
    try:
        run_path(tmp)
        run_abstract(tmp)
    except SystemExit as e:
        if e.code == 1 or e.code is None:
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log"):
                    print("-- %s (last lines)" % name)
                    with open(os.path.join(tmp, name)) as f:
                        print("".join(f.readlines()[-30:]))
        raise
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--app"]:
        sys.exit(app_main())
    sys.exit(main())
