#!/usr/bin/env python3
"""Attach is bounded: a control socket that accepts and never answers (a
wedged daemon, or something else bound at the path) must not hang the
application's first socket().  A SOCK_SEQPACKET server of our own accepts
and reads, never replies; a python3 under libisosock.so (argv[1]) with
ISOSTACK_CONTROL at it calls socket():
  - plain: falls back to a kernel socket (it connects to a kernel
    listener on loopback and the bytes come back), one log line;
  - ISOSTACK_REQUIRE=1: ENETDOWN, one log line.
Each child runs under a 30 s subprocess timeout: a hang is a failure.
No root, no daemon."""
import os, socket, subprocess, sys, tempfile, threading

APP = r'''
import errno, socket, sys, time
t0 = time.monotonic()
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
except OSError as e:
    print("socket", errno.errorcode.get(e.errno, e.errno), round(time.monotonic() - t0, 1))
    sys.exit(0)
print("socket ok", round(time.monotonic() - t0, 1))
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
s.connect(l.getsockname()); c, _ = l.accept()
s.sendall(b"fallback bytes"); print("echo", c.recv(100) == b"fallback bytes")
'''


def serve(srv, conns):
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            return
        conns.append(c)        # held open, never answered


def preload(shim):
    """The shim, after the sanitizer runtime it was built with (the
    build-asan and build-clang runs of this suite): an instrumented library
    preloaded into python needs its runtime first in the list."""
    try:
        out = subprocess.run(["ldd", shim], capture_output=True, text=True).stdout
    except OSError:
        return shim
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(("libasan.so", "libclang_rt.asan")):
            return parts[2] + " " + shim
    return shim


def run(shim, path, require):
    env = dict(os.environ, LD_PRELOAD=preload(shim), ISOSTACK_CONTROL=path)
    # python's own allocations are not the shim's to answer for
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    env.pop("ISOSTACK_DISABLE", None)
    env.pop("ISOSTACK_REQUIRE", None)
    if require:
        env["ISOSTACK_REQUIRE"] = "1"
    p = subprocess.run([sys.executable, "-c", APP], env=env, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def main():
    if len(sys.argv) < 2 or not os.path.exists(sys.argv[1]):
        print("SKIP: needs libisosock.so as argv[1]")
        return 77
    shim = os.path.abspath(sys.argv[1])
    d = tempfile.mkdtemp()
    path = os.path.join(d, "ctl.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(16)
    conns = []
    threading.Thread(target=serve, args=(srv, conns), daemon=True).start()
    bad = 0
    for require, want in ((False, "socket ok"), (True, "socket ENETDOWN")):
        try:
            rc, out, err = run(shim, path, require)
        except subprocess.TimeoutExpired:
            print(f"FAIL: require={require}: socket() hung past 30 s")
            bad += 1
            continue
        lines = [l for l in err.splitlines() if "did not answer ATTACH" in l]
        print(f"require={require}: rc {rc} out {out.strip()!r} log {lines}")
        if rc != 0 or not out.startswith(want):
            print(f"FAIL: require={require}: want {want!r}")
            bad += 1
        if not require and "echo True" not in out:
            print("FAIL: the kernel fallback socket did not carry bytes")
            bad += 1
        if len(lines) != 1:
            print(f"FAIL: require={require}: want one log line, got {len(lines)}: {err!r}")
            bad += 1
    srv.close()
    for c in conns:
        c.close()
    os.unlink(path)
    os.rmdir(d)
    print("PASS" if bad == 0 else f"{bad} failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
