#!/usr/bin/env python3
"""SO_REUSEPORT as a program sees it (test_reuseport.sh). Plain sockets,
stdlib only: the same file runs under libisosock and on Linux.

  rp_app.py server NAME ADDR PORT [--no-reuseport] [--no-accept]
      binds ADDR:PORT (SO_REUSEPORT unless told not), listens, prints
      "NAME: listening" (or "NAME: bind ERRNO" and exits 3), then echoes
      each connection whole (read to EOF, send back, close) and prints
      "NAME: conn sha256 HEX bytes N" for it; --no-accept: accepts none.
      SIGTERM: closes the listener, prints "NAME: closed", exits 0
      (--no-accept: at the next SIGTERM).
  rp_app.py client ADDRS PORT COUNT SEED
      COUNT connections (8 at a time, each from its own source port) to
      ADDR:PORT, ADDRS a comma-separated list taken in turn; each sends a
      random payload (1 B to 32 KiB, from SEED), half-closes and must get
      the same bytes back (SHA-256).  Prints "conn I sha256 HEX bytes N"
      per connection; exits 1 if one failed.
  rp_app.py probe ADDR PORT COUNT SEED
      opens COUNT connections one after the other, each sending 1000
      random bytes and half-closing, prints "probe: COUNT open", then
      reads each one's answer: "probe I echo" (the same bytes) or
      "probe I reset" (ECONNRESET), and "probe: E echoed R reset F failed";
      exits 1 if one failed otherwise.
  rp_app.py bindcheck ADDR PORT
      the bind and listen rules, case by case, on PORT, PORT+1...: what
      each call said, without addresses, so that the output under the shim
      and on Linux can be compared as they are.
"""
import concurrent.futures
import errno
import hashlib
import random
import signal
import socket
import sys


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def say(*args):
    print(*args, flush=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def server(name, addr, port, reuseport, accept=True):
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    if reuseport:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        ls.bind((addr, port))
    except OSError as e:
        say("%s: bind %s" % (name, errno.errorcode.get(e.errno, e.errno)))
        return 3
    ls.listen(128)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    say("%s: listening" % name)
    try:
        while not accept:
            signal.pause()
        while True:
            c, _ = ls.accept()
            with c:
                data = bytearray()
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            say("%s: conn sha256 %s bytes %d" % (name, sha(data), len(data)))
    except SystemExit:
        pass
    ls.close()
    say("%s: closed" % name)
    if not accept:
        # Up until a second SIGTERM: what resets the connections queued
        # on the listener must be its close, not the process's exit.
        try:
            while True:
                signal.pause()
        except SystemExit:
            pass
    return 0


def one(addr, port, i, seed):
    rng = random.Random(seed * 100003 + i)
    payload = rng.randbytes(rng.randint(1, 32768))
    with socket.create_connection((addr, port), timeout=20) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        back = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            back += b
    if sha(back) != sha(payload):
        return i, None, "echo differs: %d bytes sent, %d back" % (len(payload), len(back))
    return i, sha(payload), len(payload)


def client(addrs, port, count, seed):
    addrs = addrs.split(",")
    bad = 0
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, addrs[i % len(addrs)], port, i, seed) for i in range(count)]
        for f in futs:
            try:
                i, h, n = f.result()
            except OSError as e:
                say("conn FAIL %s" % e)
                bad += 1
                continue
            if h is None:
                say("conn %d FAIL %s" % (i, n))
                bad += 1
            else:
                say("conn %d sha256 %s bytes %d" % (i, h, n))
    say("client: %d connections, %d failed" % (count, bad))
    return 1 if bad else 0


def probe(addr, port, count, seed):
    conns = []
    for i in range(count):
        payload = random.Random(seed * 100003 + i).randbytes(1000)
        c = socket.create_connection((addr, port), timeout=30)
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        conns.append((c, payload))
    say("probe: %d open" % count)
    echoed = reset = failed = 0
    for i, (c, payload) in enumerate(conns):
        back = bytearray()
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                back += b
        except ConnectionResetError:
            say("probe %d reset" % i)
            reset += 1
            continue
        except OSError as e:
            say("probe %d FAIL %s" % (i, e))
            failed += 1
            continue
        finally:
            c.close()
        if back == payload:
            say("probe %d echo" % i)
            echoed += 1
        else:
            say("probe %d FAIL %d bytes back" % (i, len(back)))
            failed += 1
    say("probe: %d echoed %d reset %d failed" % (echoed, reset, failed))
    return 1 if failed else 0


# ---- bindcheck ---------------------------------------------------------------

def call(fn, *args):
    try:
        fn(*args)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def sock(addr, reuseport=False, reuseaddr=False):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    if reuseaddr:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return s


def case(name, steps):
    """steps: (label, callable) pairs run in order; prints what each said."""
    out = []
    for label, fn in steps:
        out.append("%s %s" % (label, fn()))
    say("%s: %s" % (name, ", ".join(out)))


def bindcheck(addr, port):
    ap = lambda p: (addr, p)  # noqa: E731
    socks = []

    def mk(**kw):
        s = sock(addr, **kw)
        socks.append(s)
        return s

    p = port
    a, b = mk(reuseport=True), mk(reuseport=True)
    case("both SO_REUSEPORT", [
        ("A bind", lambda: call(a.bind, ap(p))), ("A listen", lambda: call(a.listen, 8)),
        ("B bind", lambda: call(b.bind, ap(p))), ("B listen", lambda: call(b.listen, 8))])
    p += 1
    a, b = mk(reuseport=True), mk()
    case("second without SO_REUSEPORT", [
        ("A bind", lambda: call(a.bind, ap(p))), ("A listen", lambda: call(a.listen, 8)),
        ("B bind", lambda: call(b.bind, ap(p)))])
    p += 1
    a, b = mk(), mk(reuseport=True)
    case("first without SO_REUSEPORT", [
        ("A bind", lambda: call(a.bind, ap(p))), ("A listen", lambda: call(a.listen, 8)),
        ("B bind", lambda: call(b.bind, ap(p)))])
    p += 1
    a, b = mk(reuseport=True), mk(reuseport=True)
    case("first only bound", [
        ("A bind", lambda: call(a.bind, ap(p))), ("B bind", lambda: call(b.bind, ap(p))),
        ("B listen", lambda: call(b.listen, 8)), ("A listen", lambda: call(a.listen, 8))])
    p += 1
    a, b = mk(reuseport=True, reuseaddr=True), mk(reuseaddr=True)
    case("SO_REUSEADDR over a listening group", [
        ("A bind", lambda: call(a.bind, ap(p))), ("A listen", lambda: call(a.listen, 8)),
        ("B bind", lambda: call(b.bind, ap(p)))])
    p += 1
    a, b = mk(reuseport=True, reuseaddr=True), mk(reuseaddr=True)
    case("SO_REUSEADDR beside a bound member", [
        ("A bind", lambda: call(a.bind, ap(p))), ("B bind", lambda: call(b.bind, ap(p))),
        ("B listen", lambda: call(b.listen, 8)), ("A listen", lambda: call(a.listen, 8))])
    p += 1
    a, b, c = mk(reuseport=True), mk(reuseport=True), mk(reuseport=True)
    case("a member closes, a third joins", [
        ("A bind", lambda: call(a.bind, ap(p))), ("A listen", lambda: call(a.listen, 8)),
        ("B bind", lambda: call(b.bind, ap(p))), ("B listen", lambda: call(b.listen, 8)),
        ("A close", lambda: call(a.close)),
        ("C bind", lambda: call(c.bind, ap(p))), ("C listen", lambda: call(c.listen, 8))])
    a = mk()
    case("options", [
        ("SO_REUSEPORT", lambda: a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)),
        ("set", lambda: call(a.setsockopt, socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)),
        ("SO_REUSEPORT", lambda: a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)),
        ("SO_REUSEADDR", lambda: a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))])
    for s in socks:
        s.close()
    return 0


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "server":
        return server(a[1], a[2], int(a[3]), "--no-reuseport" not in a[4:],
                      "--no-accept" not in a[4:])
    if len(a) == 5 and a[0] == "probe":
        return probe(a[1], int(a[2]), int(a[3]), int(a[4]))
    if len(a) == 5 and a[0] == "client":
        return client(a[1], int(a[2]), int(a[3]), int(a[4]))
    if len(a) == 3 and a[0] == "bindcheck":
        return bindcheck(a[1], int(a[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
