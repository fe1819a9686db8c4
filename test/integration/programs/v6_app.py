#!/usr/bin/env python3
"""AF_INET6 TCP programs for the ipv6 test, run under the shim or on Linux.

  server PORT V6ONLY COUNT   listen on [::]:PORT, echo COUNT connections
                             one after another; print each peer, local
                             name, family and the SHA-256 of what came
  client ADDR PORT BYTES     connect an AF_INET6 socket (ADDR may be an
                             IPv4-mapped ::ffff:a.b.c.d), send BYTES of a
                             seeded stream while reading the echo, check it
                             by SHA-256; print the names it saw
Every line printed is what a test compares; errors exit 1 with errno name.
"""
import errno
import hashlib
import random
import socket
import sys
import threading


def server(port, v6only, count):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    print("server: v6only", s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
          "domain", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN), flush=True)
    s.bind(("::", port))
    s.listen(16)
    print("server: listening", s.getsockname()[:2], flush=True)
    for _ in range(count):
        c, peer = s.accept()
        h = hashlib.sha256()
        n = 0
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            h.update(d)
            n += len(d)
            c.sendall(d)
        print("server: accepted", peer[0], "local", c.getsockname()[:2],
              "family", int(c.family), "bytes", n, "sha256", h.hexdigest()[:16], flush=True)
        c.close()


def client(addr, port, nbytes):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.connect((addr, port))
    except OSError as e:
        print("client: connect", addr, errno.errorcode.get(e.errno, e.errno), flush=True)
        return
    # Names now: after both FINs Linux answers getpeername ENOTCONN.
    peer, local = s.getpeername()[:2], s.getsockname()[0]
    data = random.Random(6).randbytes(nbytes)
    t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
    t.start()
    got = bytearray()
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        got += d
    t.join()
    ok = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    print("client: peer", peer, "family", int(s.family), "local", local, "echo", len(got), "verified" if ok else "DIFFERS",
          flush=True)
    s.close()
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
