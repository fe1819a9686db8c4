#!/usr/bin/env python3
"""Opens COUNT TCP connections to an echo service and holds them all.

    conns_client.py HOST PORT COUNT [--inflight N] [--stall SEC]
                    [--commands FIFO]

Connects are nonblocking, at most N (default 256) unfinished at a time.
Each connection sends a payload of its own (its number and 37 bytes of a
hash of it: no two alike) and must get exactly that back, compared byte for
byte. A connection stays open once verified; when all COUNT are verified
it prints "holding COUNT" and reads commands, one a line, from FIFO
(default stdin: a shell gives a background job /dev/null as stdin, so a
test passes a FIFO it holds open):

    echo BYTES   send BYTES more of a per-connection pattern on every held
                 connection, all at once, and check each echo byte for
                 byte; prints "echoed COUNT BYTES"
    close        close every connection (FIN), print "closed COUNT", exit 0

An error on any connection, a byte that differs, or no progress for SEC
seconds (default 30) ends it with exit 1 and a line saying what was
expected and what was seen, and how far it got. The soft RLIMIT_NOFILE is
raised to the hard one first.
"""
import argparse
import errno
import hashlib
import resource
import selectors
import socket
import sys
import time


def ename(e):
    return errno.errorcode.get(e, str(e))


def pattern(i, nbytes, round_):
    """nbytes of a pattern for connection i, round round_: distinct per
    connection and per round."""
    seed = hashlib.sha256(f"{i}/{round_}".encode()).digest()
    return (seed * (nbytes // len(seed) + 1))[:nbytes]


class Conn:
    __slots__ = ("i", "sock", "out", "want", "got", "state")

    def __init__(self, i):
        self.i = i
        self.sock = None
        self.out = b""
        self.want = b""
        self.got = 0
        self.state = "connecting"


class Client:
    def __init__(self, args):
        self.a = args
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.verified = 0
        self.last_progress = time.monotonic()

    def fail(self, msg):
        busy = sum(1 for c in self.conns if c.state != "held")
        print(f"client: {msg} [{len(self.conns)} of {self.a.count} connections "
              f"opened, {self.verified} verified, {busy} unfinished]",
              file=sys.stderr, flush=True)
        sys.exit(1)

    def start(self, c):
        c.sock = socket.socket()
        c.sock.setblocking(False)
        e = c.sock.connect_ex((self.a.host, self.a.port))
        if e not in (0, errno.EINPROGRESS):
            self.fail(f"connection {c.i}: connect: {ename(e)}, want EINPROGRESS")
        self.sel.register(c.sock, selectors.EVENT_WRITE, c)

    def arm(self, c, data):
        c.out = data
        c.want = data
        c.got = 0
        c.state = "echo"
        self.sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def step(self, c, mask):
        if c.state == "connecting":
            e = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                self.fail(f"connection {c.i}: connect: {ename(e)}, want success")
            self.sel.unregister(c.sock)
            self.arm(c, f"conn {c.i:05d} ".encode() + pattern(c.i, 37, 0))
            return
        try:
            if mask & selectors.EVENT_WRITE and c.out:
                n = c.sock.send(c.out)
                c.out = c.out[n:]
                if not c.out:
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
            if mask & selectors.EVENT_READ:
                data = c.sock.recv(65536)
                if not data:
                    self.fail(f"connection {c.i}: EOF after {c.got} of {len(c.want)} "
                              f"echoed bytes, want all of them")
                want = c.want[c.got:c.got + len(data)]
                if data != want:
                    at = next(k for k in range(len(data)) if k >= len(want) or data[k] != want[k])
                    self.fail(f"connection {c.i}: echoed byte {c.got + at} is "
                              f"{data[at:at + 16]!r}, want {want[at:at + 16]!r}")
                c.got += len(data)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(f"connection {c.i}: {ename(e.errno)} after {c.got} of "
                      f"{len(c.want)} echoed bytes, want no error")
        self.last_progress = time.monotonic()
        if c.got == len(c.want) and not c.out:
            self.sel.unregister(c.sock)
            c.state = "held"
            self.verified += 1

    def run_until_held(self, budget):
        """Runs the selector until every started connection is held; starts
        new ones while fewer than budget are unfinished."""
        while True:
            while len(self.conns) < self.a.count and \
                    len(self.conns) - self.verified < budget:
                c = Conn(len(self.conns))
                self.conns.append(c)
                self.start(c)
            if self.verified == len(self.conns) == self.a.count:
                return
            for key, mask in self.sel.select(timeout=1.0):
                self.step(key.data, mask)
            if time.monotonic() - self.last_progress > self.a.stall:
                self.fail(f"no progress for {self.a.stall} s (connects and echoes "
                          f"not finishing), want all {self.a.count} verified")

    def echo_round(self, nbytes, round_):
        self.verified = 0
        self.last_progress = time.monotonic()
        for c in self.conns:
            self.arm(c, pattern(c.i, nbytes, round_))
        self.run_until_held(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--stall", type=float, default=30.0)
    p.add_argument("--commands", default="/dev/stdin")
    a = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    cl = Client(a)
    t0 = time.monotonic()
    cl.run_until_held(a.inflight)
    print(f"holding {a.count} (opened and verified in {time.monotonic() - t0:.1f} s)",
          flush=True)
    round_ = 0
    for line in open(a.commands):
        cmd = line.split()
        if cmd[:1] == ["echo"] and len(cmd) == 2:
            round_ += 1
            cl.echo_round(int(cmd[1]), round_)
            print(f"echoed {a.count} {cmd[1]}", flush=True)
        elif cmd == ["close"]:
            for c in cl.conns:
                c.sock.close()
            print(f"closed {a.count}", flush=True)
            return
        else:
            cl.fail(f"unknown command {line.strip()!r}")
    cl.fail(f"{a.commands} ended before 'close'")


if __name__ == "__main__":
    main()
