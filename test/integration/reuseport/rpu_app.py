#!/usr/bin/env python3
"""SO_REUSEPORT on UDP sockets as a program sees it (test_reuseport_udp.sh).
Plain sockets, stdlib only: the same file runs under libisosock and on Linux.

A datagram of the client: FLOW (u32) SEQ (u32) SHA-256 of the payload
(32 bytes) and the payload (random, 1 to 600 bytes).

  rpu_app.py server NAME ADDR PORT [--no-reuseport] [--connect PEER PPORT]
      binds a UDP socket to ADDR:PORT (SO_REUSEPORT unless told not),
      connects it to PEER:PPORT if told, prints "NAME: bound pid PID" (or
      "NAME: bind ERRNO" and exits 3), then for each datagram checks its
      digest, prints "NAME: dgram FLOW SEQ SPORT ok" (or "bad"), and
      answers the sender with "NAME FLOW SEQ HEX" (HEX the digest it
      computed).  SIGTERM: closes the socket, prints "NAME: closed", exits.
  rpu_app.py client ADDR PORT FLOWS ROUNDS SEED BASE
      FLOWS sockets, flow i bound to source port BASE + i, each sends
      ROUNDS datagrams to ADDR:PORT, WINDOW flows at a time, and waits for
      each answer (5 s at most) before the next round.  Prints "flow I
      server NAME" per flow, then "client: D datagrams, L lost, B bad,
      M on several servers" and the split per server; exits 1 unless all
      three are 0.  Nothing is sent again: a datagram lost is counted.
  rpu_app.py bindcheck ADDR PORT
      the bind rules, case by case, on PORT, PORT+1...: what each call
      said, without addresses, so that the output under the shim and on
      Linux can be compared as they are.
  rpu_app.py bind ADDR PORT
      one SO_REUSEPORT bind: prints "bind RESULT" (another user's try).
"""
import errno
import hashlib
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time

HDR = struct.Struct("!II32s")
WINDOW = 50


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def say(*args):
    print(*args, flush=True)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def server(name, addr, port, reuseport, connect):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind((addr, port))
        if connect:
            s.connect(connect)
    except OSError as e:
        say("%s: bind %s" % (name, ename(e)))
        return 3

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    say("%s: bound pid %d" % (name, os.getpid()))
    # Woken twice a second: a SIGTERM that the shim's blocking wait missed
    # (one that lands between its sleeps) is then seen all the same.
    s.settimeout(0.5)
    try:
        while True:
            try:
                data, peer = s.recvfrom(2048)
            except socket.timeout:
                continue
            if len(data) < HDR.size:
                say("%s: dgram short %d" % (name, peer[1]))
                continue
            flow, seq, digest = HDR.unpack_from(data)
            got = hashlib.sha256(data[HDR.size:]).digest()
            say("%s: dgram %d %d %d %s" % (name, flow, seq, peer[1],
                                           "ok" if got == digest else "bad"))
            s.sendto(("%s %d %d %s" % (name, flow, seq, got.hex())).encode(), peer)
    except SystemExit:
        pass
    s.close()
    say("%s: closed" % name)
    return 0


def client(addr, port, flows, rounds, seed, base):
    rng = random.Random(seed)
    fam = family(addr)
    socks = []
    for i in range(flows):
        c = socket.socket(fam, socket.SOCK_DGRAM)
        c.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", base + i))
        c.setblocking(False)
        socks.append(c)
    served = [set() for _ in range(flows)]
    sent = lost = bad = 0
    sel = selectors.DefaultSelector()
    for r in range(rounds):
        for w in range(0, flows, WINDOW):
            want = {}
            for i in range(w, min(w + WINDOW, flows)):
                payload = rng.randbytes(rng.randint(1, 600))
                digest = hashlib.sha256(payload).digest()
                socks[i].sendto(HDR.pack(i, r, digest) + payload, (addr, port))
                sent += 1
                want[i] = digest.hex()
                sel.register(socks[i], selectors.EVENT_READ, i)
            deadline = time.monotonic() + 5
            while want and time.monotonic() < deadline:
                for key, _ in sel.select(deadline - time.monotonic()):
                    i = key.data
                    ans = key.fileobj.recv(2048).decode().split()
                    if i not in want or len(ans) != 4 or ans[1:3] != [str(i), str(r)] or \
                            ans[3] != want[i]:
                        say("flow %d round %d: bad answer %r" % (i, r, ans))
                        bad += 1
                        continue
                    served[i].add(ans[0])
                    del want[i]
                    sel.unregister(key.fileobj)
            for i in want:
                say("flow %d round %d: lost" % (i, r))
                sel.unregister(socks[i])
            lost += len(want)
    split = {}
    several = 0
    for i, names in enumerate(served):
        say("flow %d server %s" % (i, ",".join(sorted(names))))
        several += len(names) > 1
        for n in names:
            split[n] = split.get(n, 0) + 1
    say("client: %d datagrams, %d lost, %d bad, %d on several servers" %
        (sent, lost, bad, several))
    say("client: flows per server %s" %
        " ".join("%s %d" % (n, split[n]) for n in sorted(split)))
    return 1 if lost or bad or several else 0


# ---- bindcheck ---------------------------------------------------------------

def call(fn, *args):
    try:
        fn(*args)
        return "ok"
    except OSError as e:
        return ename(e)


def bindcheck(addr, port):
    socks = []

    def mk(reuseport=False, reuseaddr=False, fam=None):
        s = socket.socket(fam or family(addr), socket.SOCK_DGRAM)
        if reuseaddr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        socks.append(s)
        return s

    def case(name, first, second, late=False):
        """first and second: the options of two sockets bound in turn to
        the same port; late: the first sets SO_REUSEPORT after its bind."""
        nonlocal port
        a, b = mk(**first), mk(**second)
        out = ["A bind " + call(a.bind, (addr, port))]
        if late:
            out.append("A set " + call(a.setsockopt, socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
        out.append("B bind " + call(b.bind, (addr, port)))
        say("%s: %s" % (name, ", ".join(out)))
        port += 1

    rp, ra = {"reuseport": True}, {"reuseaddr": True}
    both = {"reuseport": True, "reuseaddr": True}
    case("both SO_REUSEPORT", rp, rp)
    case("second without SO_REUSEPORT", rp, {})
    case("first without SO_REUSEPORT", {}, rp)
    case("both SO_REUSEADDR only", ra, ra)
    case("SO_REUSEPORT, then SO_REUSEADDR only", rp, ra)
    case("SO_REUSEADDR only, then SO_REUSEPORT", ra, rp)
    case("both options, then SO_REUSEADDR only", both, ra)
    case("SO_REUSEADDR only, then both options", ra, both)
    case("neither", {}, {})
    case("SO_REUSEPORT set after the first bind", {}, rp, late=True)
    a, b, c = mk(**rp), mk(**rp), mk(**rp)
    say("a member closes, a third joins: %s" % ", ".join([
        "A bind " + call(a.bind, (addr, port)), "B bind " + call(b.bind, (addr, port)),
        "A close " + call(a.close), "C bind " + call(c.bind, (addr, port))]))
    port += 1
    if family(addr) == socket.AF_INET6:
        # a dual-stack [::] member beside an IPV6_V6ONLY one, and IPv4's any
        a = mk(**rp)
        b = mk(**rp)
        b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        c = mk(fam=socket.AF_INET, **rp)
        say("dual-stack and v6only members: %s" % ", ".join([
            "A bind " + call(a.bind, (addr, port)), "B bind " + call(b.bind, (addr, port)),
            "C bind " + call(c.bind, ("0.0.0.0", port))]))
        port += 1
    a = mk()
    say("options: %s" % ", ".join([
        "SO_REUSEPORT %d" % a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
        "set " + call(a.setsockopt, socket.SOL_SOCKET, socket.SO_REUSEPORT, 1),
        "SO_REUSEPORT %d" % a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
        "SO_REUSEADDR %d" % a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)]))
    for s in socks:
        s.close()
    return 0


def bind_one(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    say("bind %s" % call(s.bind, (addr, port)))
    s.close()
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "server":
        connect = None
        if "--connect" in a:
            k = a.index("--connect")
            connect = (a[k + 1], int(a[k + 2]))
        return server(a[1], a[2], int(a[3]), "--no-reuseport" not in a[4:], connect)
    if len(a) == 7 and a[0] == "client":
        return client(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]))
    if len(a) == 3 and a[0] == "bindcheck":
        return bindcheck(a[1], int(a[2]))
    if len(a) == 3 and a[0] == "bind":
        return bind_one(a[1], int(a[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
