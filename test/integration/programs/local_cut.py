#!/usr/bin/env python3
"""Local TCP connections, both ends on this host: the checks of
test_local_cut.sh.

    local_cut.py serve HOST PORT      the listening application
    local_cut.py run HOST PORT        the connecting one: runs every check
    local_cut.py victim HOST PORT M   a client that gets SIGKILLed (run's)

`run` drives each check with one command byte at the start of a
connection; both ends print what they saw, one line per fact, with no
address, port or timing in it, so that the logs of the kernel's loopback
and of isostack (paired on the stack core, or through lwIP) can be
compared line for line.  Bulk data is a seeded stream, so its SHA-256 is
the same in every run.
"""
import errno
import fcntl
import hashlib
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading

BULK = 64 << 20          # each way at once
STALL = 8 << 20          # written to a reader that stops reading
SHORT = 2000             # connect, echo, close
CHUNK = 1 << 16
STALL_WAIT_MS = 500      # no POLLOUT for this long: the writer is stuck


def say(*words):
    print(*words, flush=True)


def stream(seed, total):
    """The seeded byte stream, in chunks (the same in every run)."""
    rnd = random.Random(seed)
    left = total
    while left > 0:
        n = min(CHUNK, left)
        yield rnd.randbytes(n)
        left -= n


def send_stream(s, seed, total):
    h = hashlib.sha256()
    for b in stream(seed, total):
        s.sendall(b)
        h.update(b)
    return h.hexdigest()


def recv_all(s):
    """Until EOF: (bytes, sha256)."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = s.recv(CHUNK)
        if not b:
            return n, h.hexdigest()
        h.update(b)
        n += len(b)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            break
        out += b
    return out


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def nread(s):
    return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def outq(s):
    return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def wait_nread(s, n):
    """Until n bytes are readable (poll, then FIONREAD: no sleep)."""
    p = select.poll()
    p.register(s, select.POLLIN)
    while nread(s) < n:
        p.poll(10000)
    return nread(s)


# ---- the listening side ------------------------------------------------------

def serve(host, port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(128)
    say("ready")
    echoed = 0
    while True:
        c, addr = ls.accept()
        cmd = c.recv(1)
        if cmd == b"A":
            line = recv_exact(c, 256).split(b"\n")[0].decode().split()
            cname, cpeer = (line[0], int(line[1])), (line[2], int(line[3]))
            say("server: names: accept's address is getpeername:", addr == c.getpeername())
            say("server: names: getpeername is the client's getsockname:",
                c.getpeername() == cname)
            say("server: names: getsockname is the client's getpeername:",
                c.getsockname() == cpeer)
            c.sendall(b"ok")
        elif cmd == b"B":
            sent = {}
            t = threading.Thread(target=lambda: sent.update(
                sha=send_stream(c, 2, BULK)) or c.shutdown(socket.SHUT_WR))
            t.start()
            n, h = recv_all(c)
            t.join()
            say("server: bulk: received", n, "sha256", h)
            say("server: bulk: sent", BULK, "sha256", sent["sha"])
        elif cmd == b"H":
            got = b""
            while True:
                b = c.recv(100)
                if not b:
                    break
                got += b
            say("server: half-close: got", got, "then EOF")
            c.sendall(b"pong")
            say("server: half-close: sent after EOF")
        elif cmd == b"R":
            c.sendall(b"x" * 1000)
            try:
                b = c.recv(100)
                say("server: rst: recv returned", len(b), "bytes")
            except OSError as e:
                say("server: rst: recv", err_name(e))
            try:
                c.send(b"y", socket.MSG_NOSIGNAL)
                say("server: rst: send succeeded")
            except OSError as e:
                say("server: rst: send", err_name(e))
        elif cmd == b"N":
            c.sendall(recv_exact(c, 5))
        elif cmd == b"S":
            # conn2 says when to start reading conn1
            g, _ = ls.accept()
            say("server: stall: go", g.recv(3))
            g.close()
            n, h = recv_all(c)
            say("server: stall: received", n, "sha256", h)
            c.sendall(h.encode())
        elif cmd == b"C":
            # conn2 brings the writer's SHA-256 once it has closed
            g, _ = ls.accept()
            want = recv_exact(g, 64).decode()
            g.close()
            n, h = recv_all(c)
            say("server: close with unsent data: every byte, then EOF:", h == want)
        elif cmd == b"K":
            mode = c.recv(1)
            if mode == b"u":
                c.sendall(b"z" * 100)
            try:
                b = c.recv(100)
                say("server: killed peer (%s):" % ("unread data" if mode == b"u" else "nothing unread"),
                    "EOF" if not b else "data")
            except OSError as e:
                say("server: killed peer (%s):" % ("unread data" if mode == b"u" else "nothing unread"),
                    err_name(e))
        elif cmd == b"E":
            c.sendall(recv_exact(c, 100))
            if c.recv(1) == b"":
                echoed += 1
        elif cmd == b"Q":
            say("server: short connections echoed:", echoed)
            c.close()
            ls.close()
            say("server: done")
            return
        c.close()


# ---- the connecting side -----------------------------------------------------

def conn(host, port, cmd):
    s = socket.create_connection((host, port))
    s.sendall(cmd)
    return s


def check_names(host, port):
    s = socket.socket()
    s.connect((host, port))
    name, peer = s.getsockname(), s.getpeername()
    say("client: names: local address is the one connected to:", name[0] == host)
    say("client: names: local port is a real one:", name[1] not in (0, port))
    say("client: names: getpeername is the listener:", peer == (host, port))
    s.sendall(b"A" + ("%s %d %s %d\n" % (name[0], name[1], peer[0], peer[1])).encode().ljust(256))
    say("client: names: reply", recv_exact(s, 2))
    s.close()


def check_bulk(host, port):
    s = conn(host, port, b"B")
    sent = {}
    t = threading.Thread(target=lambda: sent.update(
        sha=send_stream(s, 1, BULK)) or s.shutdown(socket.SHUT_WR))
    t.start()
    n, h = recv_all(s)
    t.join()
    s.close()
    say("client: bulk: received", n, "sha256", h)
    say("client: bulk: sent", BULK, "sha256", sent["sha"])
    want = hashlib.sha256()
    for b in stream(2, BULK):
        want.update(b)
    say("client: bulk: received what the server sent:", h == want.hexdigest())


def check_half_close(host, port):
    s = conn(host, port, b"H")
    s.sendall(b"ping")
    s.shutdown(socket.SHUT_WR)
    n, h = 0, b""
    while True:
        b = s.recv(100)
        if not b:
            break
        h += b
    say("client: half-close: got", h, "then EOF")
    s.close()


def check_rst(host, port):
    s = conn(host, port, b"R")
    say("client: rst: FIONREAD", wait_nread(s, 1000))
    s.close()     # unread data: RST


def check_nonblocking(host, port):
    s = socket.socket()
    s.setblocking(False)
    rc = s.connect_ex((host, port))
    say("client: nonblocking connect: in progress or done:", rc in (0, errno.EINPROGRESS))
    ep = select.epoll()
    ep.register(s, select.EPOLLOUT | select.EPOLLIN | select.EPOLLRDHUP)
    ev = ep.poll(10)
    say("client: nonblocking connect: epoll says writable:",
        bool(ev) and bool(ev[0][1] & select.EPOLLOUT))
    say("client: nonblocking connect: SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    s.send(b"Nhello")
    got = b""
    while len(got) < 5:
        ev = ep.poll(10)
        if not ev:
            break
        try:
            got += s.recv(5 - len(got))
        except BlockingIOError:
            pass
    say("client: nonblocking: echo", got)
    while True:        # the server closes: EPOLLIN, then EOF
        ev = ep.poll(10)
        if not ev:
            say("client: nonblocking: no EOF")
            break
        try:
            if s.recv(10) == b"":
                say("client: nonblocking: EOF after epoll")
                break
        except BlockingIOError:
            pass
    ep.close()
    s.close()


def check_stall(host, port):
    s = conn(host, port, b"S")
    s.setblocking(False)
    chunks = stream(3, STALL)
    h = hashlib.sha256()
    pending, sent = b"", 0
    p = select.poll()
    p.register(s, select.POLLOUT)
    while True:
        if not pending:
            pending = next(chunks)
        try:
            k = s.send(pending)
        except BlockingIOError:
            # Full, as far as this moment goes: the bytes may still be
            # on their way to the reader's buffer (the kernel's loopback
            # is done before send returns; the stack core's move comes
            # after).  Full for good once no room shows for STALL_WAIT.
            if not p.poll(STALL_WAIT_MS):
                break
            continue
        h.update(pending[:k])
        pending = pending[k:]
        sent += k
    say("client: stall: send EAGAIN and no room while the reader waits:", 0 < sent < STALL)
    say("client: stall: SIOCOUTQ shows unsent bytes:", outq(s) > 0)
    g = socket.create_connection((host, port))
    g.sendall(b"go")
    g.close()
    s.setblocking(True)
    if pending:
        s.sendall(pending)
        h.update(pending)
    for b in chunks:
        s.sendall(b)
        h.update(b)
    s.shutdown(socket.SHUT_WR)
    reply = recv_exact(s, 64).decode()
    say("client: stall: every byte arrived in order:", reply == h.hexdigest())
    s.close()


def check_close_unsent(host, port):
    """close() while the reader has no room: the rest still arrives."""
    s = conn(host, port, b"C")
    s.setblocking(False)
    h = hashlib.sha256()
    for b in stream(4, STALL):
        try:
            k = s.send(b)
        except BlockingIOError:
            break
        h.update(b[:k])
        if k < len(b):
            break
    s.close()
    g = socket.create_connection((host, port))
    g.sendall(h.hexdigest().encode())
    g.close()
    say("client: close with unsent data: closed")


def check_killed(host, port, mode):
    v = subprocess.Popen([sys.executable, __file__, "victim", host, str(port), mode],
                         stdout=subprocess.PIPE)
    say("client: victim", v.stdout.readline().decode().strip())
    v.send_signal(signal.SIGKILL)
    v.wait()


def victim(host, port, mode):
    s = conn(host, port, b"K" + mode.encode())
    if mode == "u":
        wait_nread(s, 100)
    say("ready")
    sys.stdin.read()       # until killed


def check_short(host, port):
    ok = 0
    for i in range(SHORT):
        s = socket.create_connection((host, port))
        msg = b"E" + i.to_bytes(4, "big") * 25
        s.sendall(msg)
        if recv_exact(s, 100) == msg[1:]:
            ok += 1
        s.shutdown(socket.SHUT_WR)
        s.close()
    say("client: short connections echoed:", ok)


def check_refused(host, port):
    s = socket.socket()
    try:
        s.connect((host, port + 1))
        say("client: refused: connected")
    except OSError as e:
        say("client: refused:", err_name(e))
    s.close()


def run(host, port):
    check_names(host, port)
    check_bulk(host, port)
    check_half_close(host, port)
    check_rst(host, port)
    check_nonblocking(host, port)
    check_stall(host, port)
    check_close_unsent(host, port)
    check_killed(host, port, "c")
    check_killed(host, port, "u")
    check_short(host, port)
    check_refused(host, port)
    conn(host, port, b"Q").close()
    say("client: done")


def main():
    what, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if what == "serve":
        serve(host, port)
    elif what == "run":
        run(host, port)
    else:
        victim(host, port, sys.argv[4])


if __name__ == "__main__":
    main()
