#!/usr/bin/env python3
"""Passing TCP sockets between unrelated processes with SCM_RIGHTS, as a
program sees it (test_scm_rights.sh).  Plain sockets, stdlib only: the
same file runs under libisosock and on Linux.  UNIX is the path of an
AF_UNIX stream socket the receiver listens on and the sender connects to.

  fdpass_app.py give-listener NAME ADDR PORT UNIX
      binds ADDR:PORT, listens, passes the listener to UNIX, closes its
      copy and exits ("NAME: passed listener").
  fdpass_app.py give-conn NAME ADDR PORT UNIX WANT
      listens, accepts one connection, waits (20 s at most) until WANT
      bytes of it are unread (FIONREAD), passes it to UNIX without reading
      any, closes its copies and exits ("NAME: passed conn").
  fdpass_app.py take NAME UNIX MODE [ARGS]
      listens on UNIX ("NAME: ready"), takes one passed socket:
        echo COUNT   a listener: echoes COUNT connections whole (read to
                     EOF, send back), "NAME: conn sha256 HEX bytes N" each;
                     COUNT 0: until SIGTERM
        stream BYTES SEED   a connection: receives to EOF while sending
                     BYTES bytes from SEED, then "NAME: recv sha256 HEX
                     bytes N" and "NAME: sent sha256 HEX bytes N"
        hold         takes nothing (never reads UNIX): until killed
        try          whatever came: says what accept() or recv() on it
                     answers ("NAME: accept ERRNO" / "NAME: recv ...")
  fdpass_app.py old NAME ADDR PORT UNIX
      the old process of a reload: listens and echoes connections;
      SIGUSR1: stops accepting ("NAME: paused"); SIGUSR2: passes the
      listener to UNIX ("NAME: passed listener") and goes on accepting as
      long as accept() lets it ("NAME: accept ERRNO" when it does not);
      SIGTERM: closes it, "NAME: closed", exits.
  fdpass_app.py peer-stream ADDR PORT BYTES SEED
      connects, sends BYTES bytes from SEED while receiving to EOF:
      "peer: sent sha256 HEX bytes N", "peer: recv sha256 HEX bytes N".
  fdpass_app.py peer-wait ADDR PORT SECONDS
      connects, sends 10 bytes ("peer: connected"), then waits for the
      end: "peer: EOF", "peer: RST" or "peer: timeout".
"""
import errno
import fcntl
import hashlib
import random
import select
import signal
import socket
import struct
import sys
import termios
import threading
import time


def say(*args):
    print(*args, flush=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listener(addr, port):
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(128)
    return ls


def pass_fd(path, fd, tag):
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect(path)
    socket.send_fds(u, [tag], [fd])
    u.close()


def give_listener(name, addr, port, path):
    ls = listener(addr, port)
    pass_fd(path, ls.fileno(), b"L")
    ls.close()
    say("%s: passed listener" % name)
    return 0


def unread(s):
    buf = fcntl.ioctl(s.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", buf)[0]


def give_conn(name, addr, port, path, want):
    ls = listener(addr, port)
    say("%s: listening" % name)
    c, _ = ls.accept()
    end = time.monotonic() + 20
    while unread(c) < want:
        if time.monotonic() > end:
            say("%s: only %d bytes unread" % (name, unread(c)))
            return 1
        select.select([c], [], [], 0.05)
        if unread(c) < want:
            time.sleep(0.01)   # readable but short: the rest is on its way
    pass_fd(path, c.fileno(), b"C")
    c.close()
    ls.close()
    say("%s: passed conn" % name)
    return 0


def echo_one(c):
    data = bytearray()
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    c.close()
    return data


def take(name, path, mode, args):
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind(path)
    u.listen(1)
    stop = []
    if mode == "echo":
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    say("%s: ready" % name)
    conn, _ = u.accept()
    if mode == "hold":
        while True:
            signal.pause()
    msg, fds, _, _ = socket.recv_fds(conn, 16, 1)
    if len(fds) != 1:
        say("%s: no fd came" % name)
        return 1
    if mode == "try":
        try:
            s = socket.socket(fileno=fds[0])
        except OSError as e:
            say("%s: socket() on it %s" % (name, ename(e)))
            return 0
        s.settimeout(2)
        try:
            s.accept() if msg == b"L" else s.recv(10)
            say("%s: it worked" % name)
        except OSError as e:
            say("%s: %s %s" % (name, "accept" if msg == b"L" else "recv", ename(e) if e.errno else "timeout"))
        return 0
    s = socket.socket(fileno=fds[0])
    if mode == "echo":
        say("%s: got listener" % name)
        count = int(args[0])
        n = 0
        s.settimeout(0.1)
        while (count == 0 or n < count) and not stop:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            c.settimeout(None)
            say("%s: conn sha256 %s" % (name, sha(echo_one(c))))
            n += 1
        s.close()
        say("%s: closed" % name)
        return 0
    # stream
    say("%s: got conn" % name)
    nbytes, seed = int(args[0]), int(args[1])
    out = random.Random(seed).randbytes(nbytes)
    got = bytearray()

    def reader():
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(out)
    s.shutdown(socket.SHUT_WR)
    t.join()
    s.close()
    say("%s: recv sha256 %s bytes %d" % (name, sha(got), len(got)))
    say("%s: sent sha256 %s bytes %d" % (name, sha(out), len(out)))
    return 0


def old(name, addr, port, path):
    ls = listener(addr, port)
    state = {"accepting": True, "pass": False, "stop": False}

    def usr1(*a):
        state["accepting"] = False

    def usr2(*a):
        state["pass"] = True

    def term(*a):
        state["stop"] = True
    signal.signal(signal.SIGUSR1, usr1)
    signal.signal(signal.SIGUSR2, usr2)
    signal.signal(signal.SIGTERM, term)
    say("%s: listening" % name)
    paused_said = False
    while not state["stop"]:
        if state["pass"]:
            pass_fd(path, ls.fileno(), b"L")
            say("%s: passed listener" % name)
            state["pass"] = False
            state["accepting"] = True
        if not state["accepting"]:
            if not paused_said:
                say("%s: paused" % name)
                paused_said = True
            signal.pause()
            continue
        try:
            r, _, _ = select.select([ls], [], [], 0.1)
        except InterruptedError:
            continue
        if not r:
            continue
        try:
            ls.setblocking(False)
            c, _ = ls.accept()
        except BlockingIOError:
            continue
        except OSError as e:
            say("%s: accept %s" % (name, ename(e)))
            state["accepting"] = False
            paused_said = True
            continue
        c.setblocking(True)
        say("%s: conn sha256 %s" % (name, sha(echo_one(c))))
    ls.close()
    say("%s: closed" % name)
    return 0


def peer_stream(addr, port, nbytes, seed):
    c = socket.create_connection((addr, port), timeout=60)
    out = random.Random(seed).randbytes(nbytes)
    got = bytearray()

    def reader():
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    c.sendall(out)
    c.shutdown(socket.SHUT_WR)
    t.join()
    c.close()
    say("peer: sent sha256 %s bytes %d" % (sha(out), len(out)))
    say("peer: recv sha256 %s bytes %d" % (sha(got), len(got)))
    return 0


def peer_wait(addr, port, seconds):
    c = socket.create_connection((addr, port), timeout=10)
    c.sendall(b"0123456789")
    say("peer: connected")
    c.settimeout(seconds)
    try:
        while c.recv(4096):
            pass
        say("peer: EOF")
    except ConnectionResetError:
        say("peer: RST")
    except socket.timeout:
        say("peer: timeout")
    return 0


def main(a):
    if a[0] == "give-listener":
        return give_listener(a[1], a[2], int(a[3]), a[4])
    if a[0] == "give-conn":
        return give_conn(a[1], a[2], int(a[3]), a[4], int(a[5]))
    if a[0] == "take":
        return take(a[1], a[2], a[3], a[4:])
    if a[0] == "old":
        return old(a[1], a[2], int(a[3]), a[4])
    if a[0] == "peer-stream":
        return peer_stream(a[1], int(a[2]), int(a[3]), int(a[4]))
    if a[0] == "peer-wait":
        return peer_wait(a[1], int(a[2]), float(a[3]))
    say(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
