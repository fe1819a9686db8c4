#!/usr/bin/env python3
"""Both ends of the fault and load tests (stdlib only). Each subcommand is
one program: run under the shim (`isostack run`) or on Linux in the peer
namespace (`isostack peer`); they print one line per event, flushed, and
times as CLOCK_REALTIME seconds (t=...) so that the test can subtract the
moment it sent a signal.

  stream-send HOST PORT         connect; send the seeded stream for ever,
                                printing "sent N" after each chunk
  stream-hold HOST PORT         connect; print "connected"; read nothing
                                (sleep in pause()) while the peer sends
  sink-verify PORT              listen, accept one; read to EOF or error;
                                the bytes must be a prefix of the seeded
                                stream: "end eof|ERRNO bytes=N prefix=ok t=T"
  flood-send PORT               listen, accept one; send until an error:
                                "end ERRNO|eof sent=N t=T"
  block KIND HOST PORT ECHO     (under the shim) one call blocked when the
                                daemon dies: recv, send (TX full), epoll,
                                accept (listens on PORT itself); prints
                                "blocking", then "returned KIND ... t=T";
                                then waits for a line on stdin and opens new
                                connections to ECHO on HOST until one echoes
                                100,000 bytes verified: "new ok"
  stopped HOST ECHO [FD]        (under the shim) an echoed connection,
                                "ready", exec of itself on a stdin line;
                                the new image's first send (its rings not
                                mapped yet) "first send ret=N|errno=E after
                                S s"; on the next stdin line 100,000 bytes
                                echoed on the same socket: "echo ok True"
  serve HOLD ECHO               (peer) HOLD: accept and hold, never read;
                                ECHO: echo every byte back
  rr-server PORT                accept; read one 64-byte request, answer it,
                                close first (server-side active close, as an
                                HTTP/1.0 server does); for ever
  rr-client HOST PORT SECONDS   connect, one 64-byte request, the answer
                                verified, EOF, close; for SECONDS; prints
                                "rr: N connections in S s (R/s)"
  probe HOST PORT SECONDS       one such connection every 0.2 s for SECONDS
                                (each bounded by 5 s): "probes N ok M ..."
  synflood IFACE DMAC DST DPORT SECONDS RATE
                                (peer, raw AF_PACKET) SYNs to DST:DPORT from
                                198.18.1.0/24, every one a new 4-tuple, at
                                RATE a second at most for SECONDS
"""
import errno
import hashlib
import os
import random
import select
import signal
import socket
import sys
import threading
import time

CHUNK = 1 << 16
SEED = 14


def out(*a):
    print(*a, flush=True)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else str(e)


def chunks(seed=SEED):
    rng = random.Random(seed)
    while True:
        yield rng.randbytes(CHUNK)


def listen(port, backlog=16):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(backlog)
    return s


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            break
        b += d
    return b


# --- SIGKILL of an application -------------------------------------------

def stream_send(host, port):
    s = socket.create_connection((host, int(port)), timeout=30)
    s.settimeout(None)
    n = 0
    out("connected")
    for c in chunks():
        s.sendall(c)
        n += len(c)
        out(f"sent {n}")


def stream_hold(host, port):
    s = socket.create_connection((host, int(port)), timeout=30)
    out("connected")
    while True:
        signal.pause()          # until killed


def sink_verify(port):
    l = listen(int(port))
    out("listening")
    c, _ = l.accept()
    out("accepted")
    gen = chunks()
    want = b""
    h_got, h_want = hashlib.sha256(), hashlib.sha256()
    n, end = 0, "eof"
    try:
        while True:
            d = c.recv(1 << 18)
            if not d:
                break
            while len(want) < len(d):
                want += next(gen)
            h_got.update(d)
            h_want.update(want[:len(d)])
            want = want[len(d):]
            n += len(d)
    except OSError as e:
        end = ename(e)
    t = time.time()
    ok = "ok" if h_got.digest() == h_want.digest() else "BAD"
    out(f"end {end} bytes={n} prefix={ok} sha256={h_got.hexdigest()} t={t:.6f}")


def flood_send(port):
    l = listen(int(port))
    out("listening")
    c, _ = l.accept()
    out("accepted")
    n, end = 0, "none"
    buf = os.urandom(CHUNK)
    try:
        while True:
            n += c.send(buf)
    except OSError as e:
        end = ename(e)
    out(f"end {end} sent={n} t={time.time():.6f}")


# --- SIGKILL of the daemon --------------------------------------------------

def echo_check(host, port, size=100000):
    s = socket.create_connection((host, port), timeout=20)
    data = os.urandom(size)
    s.sendall(data)
    back = recv_exact(s, size)
    s.close()
    return hashlib.sha256(back).digest() == hashlib.sha256(data).digest()


def block(kind, host, port, echo):
    port, echo = int(port), int(echo)
    res = ""
    if kind == "accept":
        l = listen(port)
        out("blocking")
        try:
            c, _ = l.accept()
            res = "ok (a connection?)"
        except OSError as e:
            res = "errno=" + ename(e)
    else:
        s = socket.create_connection((host, port), timeout=20)
        s.settimeout(None)
        if kind == "recv":
            out("blocking")
            try:
                d = s.recv(1)
                res = f"ret={len(d)}" + (" (EOF)" if not d else "")
            except OSError as e:
                res = "errno=" + ename(e)
        elif kind == "send":
            s.setblocking(False)
            filled = 0
            try:
                while True:
                    filled += s.send(b"\0" * CHUNK)
            except BlockingIOError:
                pass
            s.setblocking(True)
            out(f"filled {filled}")
            out("blocking")
            try:
                s.sendall(b"\1" * (1 << 20))
                res = "ok (sent?)"
            except OSError as e:
                res = "errno=" + ename(e)
        elif kind == "epoll":
            ep = select.epoll()
            ep.register(s.fileno(), select.EPOLLIN)
            out("blocking")
            ev = ep.poll(-1)
            names = []
            for _, m in ev:
                for b, nm in ((select.EPOLLIN, "IN"), (select.EPOLLERR, "ERR"),
                              (select.EPOLLHUP, "HUP"), (select.EPOLLRDHUP, "RDHUP")):
                    if m & b:
                        names.append(nm)
            try:
                d = s.recv(1)
                after = f"ret={len(d)}"
            except OSError as e:
                after = "errno=" + ename(e)
            res = f"events={'|'.join(names) or 'none'} then recv {after}"
        else:
            sys.exit(f"unknown kind {kind}")
    out(f"returned {kind} {res} t={time.time():.6f}")
    sys.stdin.readline()        # the daemon is back
    deadline = time.monotonic() + 60
    tries, last = 0, None
    while time.monotonic() < deadline:
        tries += 1
        try:
            out(f"new ok {echo_check(host, echo)} tries={tries}")
            return
        except OSError as e:
            last = e
        time.sleep(0.1)         # pacing retries (the shim re-attaches at most every 250 ms)
    out(f"new failed {last} tries={tries}")
    sys.exit(1)


def serve(hold, echo):
    def hold_loop(l):
        held = []
        while True:
            c, _ = l.accept()
            held.append(c)      # never read

    def echo_one(c):
        try:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()

    def echo_loop(l):
        while True:
            c, _ = l.accept()
            threading.Thread(target=echo_one, args=(c,), daemon=True).start()

    lh = listen(int(hold))
    lh.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    le = listen(int(echo))
    threading.Thread(target=hold_loop, args=(lh,), daemon=True).start()
    out("listening")
    echo_loop(le)


# --- many short connections --------------------------------------------------

def rr_server(port, backlog=128):
    l = listen(int(port), int(backlog))
    out("listening")
    n = 0
    while True:
        c, _ = l.accept()
        try:
            req = recv_exact(c, 64)
            c.sendall(hashlib.sha256(req).digest() + req[:32])
        except OSError:
            pass
        c.close()
        n += 1


def rr_once(host, port, req, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(req)
    back = recv_exact(s, 65)        # 64 and then EOF
    s.close()
    return back == hashlib.sha256(req).digest() + req[:32]


def probe(host, port, seconds):
    port, seconds = int(port), float(seconds)
    rng = random.Random(SEED + 1)
    start = time.monotonic()
    n = ok = 0
    worst = 0.0
    while time.monotonic() - start < seconds:
        n += 1
        t = time.monotonic()
        try:
            good = rr_once(host, port, rng.randbytes(64), timeout=5)
            ms = (time.monotonic() - t) * 1000
            worst = max(worst, ms)
            ok += good
            out(f"probe {n} {'ok' if good else 'BAD'} {ms:.1f} ms")
        except OSError as e:
            out(f"probe {n} FAIL {e} after {(time.monotonic() - t) * 1000:.0f} ms")
        time.sleep(max(0.0, 0.2 - (time.monotonic() - t)))   # pacing
    out(f"probes {n} ok {ok} slowest {worst:.1f} ms")


def synflood(iface, dmac, dst, dport, seconds, rate):
    import struct

    def fold(x):
        while x >> 16:
            x = (x & 0xFFFF) + (x >> 16)
        return x

    dport, seconds, rate = int(dport), float(seconds), float(rate)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((iface, 0))
    with open(f"/sys/class/net/{iface}/address") as f:
        smac = bytes.fromhex(f.read().strip().replace(":", ""))
    eth = bytes.fromhex(dmac.replace(":", "")) + smac + b"\x08\x00"
    daddr = socket.inet_aton(dst)
    # IPv4 (20) + TCP with an MSS option (24): source address and port,
    # and both checksums, filled in per frame from precomputed sums.
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 44, 0, 0x4000, 64, 6, 0,
                               bytes(4), daddr))
    tcp = bytearray(struct.pack("!HHIIBBHHH", 0, dport, 0x1000, 0, 6 << 4, 0x02,
                                64240, 0, 0) + b"\x02\x04\x05\xb4")
    ip_base = sum(struct.unpack("!10H", bytes(ip)))
    tcp_base = (sum(struct.unpack("!12H", bytes(tcp))) + sum(struct.unpack("!2H", daddr)) +
                6 + len(tcp))
    frame = bytearray(eth + ip + tcp)
    start = time.monotonic()
    n = 0
    host, sport = 0, 1024
    while True:
        el = time.monotonic() - start
        if el >= seconds:
            break
        if n > el * rate:
            time.sleep(0.001)       # the rate cap
            continue
        for _ in range(64):
            host = host % 254 + 1
            if host == 1:
                sport = sport + 1 if sport < 65535 else 1024
            saddr = (198 << 24) | (18 << 16) | (1 << 8) | host
            hi, lo = saddr >> 16, saddr & 0xFFFF
            struct.pack_into("!HH", frame, 26, hi, lo)
            struct.pack_into("!H", frame, 24, ~fold(ip_base + hi + lo) & 0xFFFF)
            struct.pack_into("!H", frame, 34, sport)
            struct.pack_into("!H", frame, 50, ~fold(tcp_base + hi + lo + sport) & 0xFFFF)
            sock.send(frame)
            n += 1
    secs = time.monotonic() - start
    out(f"flood: {n} SYNs in {secs:.1f} s ({n / secs:.0f}/s), sources 198.18.1.1-254, "
        f"ports 1024-{sport}")


def rr_client(host, port, seconds):
    port, seconds = int(port), float(seconds)
    rng = random.Random(SEED)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        req = rng.randbytes(64)
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(req)
            back = recv_exact(s, 65)        # 64 and then EOF
            s.close()
        except OSError as e:
            out(f"FAIL: connection {n + 1}: {e}")
            sys.exit(1)
        if back != hashlib.sha256(req).digest() + req[:32]:
            out(f"FAIL: connection {n + 1}: answer of {len(back)} bytes differs")
            sys.exit(1)
        n += 1
    secs = time.monotonic() - start
    out(f"rr: {n} connections in {secs:.1f} s ({n / secs:.0f}/s), each answer verified")


# --- a stopped daemon -------------------------------------------------------

def stopped(host, echo, fd=None):
    """Before the exec (fd None): a connection to the peer's echo service,
    100 bytes echoed, "ready", then exec of this same command with the
    socket's fd once stdin says so.  After (fd given): a new image whose
    mappings of the socket's rings are gone; its first send must map them
    again, and with the daemon stopped that must fail (ENOBUFS), not
    hang.  Then, once stdin says the daemon runs again, the same socket
    echoes 100,000 bytes verified."""
    if fd is None:
        s = socket.create_connection((host, int(echo)), timeout=20)
        s.sendall(b"x" * 100)
        if recv_exact(s, 100) != b"x" * 100:
            sys.exit("FAIL: first echo differs")
        os.set_inheritable(s.fileno(), True)
        out("ready")
        sys.stdin.readline()        # the daemon is stopped
        os.execv(sys.executable, [sys.executable, "-u", __file__, "stopped", host, echo,
                                  str(s.fileno())])
    # os.write/os.read on the fd: the shim's write()/read(); a socket
    # object would first ask getsockname() etc. of the stopped daemon
    fd = int(fd)
    out("image")
    t0 = time.monotonic()
    try:
        n = os.write(fd, b"y" * 100)
        res = f"ret={n}"
    except OSError as e:
        res = "errno=" + ename(e)
    out(f"first send {res} after {time.monotonic() - t0:.1f} s")
    sys.stdin.readline()            # the daemon runs again
    # ENOBUFS is transient: retried, as a program would, until the daemon
    # has caught up with what queued while it was stopped
    deadline = time.monotonic() + 10
    while True:
        try:
            s = socket.socket(fileno=fd)
            break
        except OSError as e:
            if e.errno != errno.ENOBUFS or time.monotonic() > deadline:
                raise
            time.sleep(0.05)        # pacing the retries
    s.settimeout(None)
    data = os.urandom(100000)
    if res.startswith("ret="):
        want = b"y" * int(res[4:])
        if recv_exact(s, len(want)) != want:
            sys.exit("FAIL: the first send's bytes did not come back")
    s.sendall(data)
    back = recv_exact(s, len(data))
    out(f"echo ok {hashlib.sha256(back).digest() == hashlib.sha256(data).digest()}")


def main():
    cmds = {"stream-send": stream_send, "stream-hold": stream_hold,
            "sink-verify": sink_verify, "flood-send": flood_send, "block": block,
            "serve": serve, "rr-server": rr_server, "rr-client": rr_client,
            "probe": probe, "synflood": synflood,
            "stopped": stopped}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
