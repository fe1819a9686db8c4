#!/usr/bin/env python3
"""An epoll echo server that counts how many connections it held at once.

    conns_echo_server.py ADDR PORT

Level-triggered epoll on one thread: every byte read is written back on the
same connection (what does not fit is kept and sent on EPOLLOUT); a
connection is closed at its EOF. It prints "listening PORT" once it
listens, and each time its last open connection closes, "all closed:
accepted A peak P" (P: most connections open at the same moment). A failed
accept or a broken connection ends it with a line on stderr and exit 1: a
test server has nobody to retry for it. The soft RLIMIT_NOFILE is raised to
the hard one first.
"""
import errno
import os
import resource
import select
import socket
import sys


def fail(msg):
    print(f"echo server: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        fail("usage: conns_echo_server.py ADDR PORT")
    addr, port = sys.argv[1], int(sys.argv[2])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    lsn = socket.socket()
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind((addr, port))
    lsn.listen(4096)
    lsn.setblocking(False)
    ep = select.epoll()
    ep.register(lsn.fileno(), select.EPOLLIN)
    conns = {}     # fd -> [socket, bytes not yet written back]
    accepted = peak = 0
    print(f"listening {port}", flush=True)

    while True:
        for fd, ev in ep.poll():
            if fd == lsn.fileno():
                while True:
                    try:
                        c, _ = lsn.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        fail(f"accept failed after {accepted} connections "
                             f"({len(conns)} open): "
                             f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
                    c.setblocking(False)
                    conns[c.fileno()] = [c, b""]
                    ep.register(c.fileno(), select.EPOLLIN)
                    accepted += 1
                    peak = max(peak, len(conns))
                continue
            c, pending = conns[fd]
            try:
                if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and not pending:
                    data = c.recv(65536)
                    if not data:
                        ep.unregister(fd)
                        del conns[fd]
                        c.close()
                        if not conns:
                            print(f"all closed: accepted {accepted} peak {peak}", flush=True)
                        continue
                    pending = data
                if pending:
                    n = c.send(pending)
                    pending = pending[n:]
            except BlockingIOError:
                pass
            except OSError as e:
                fail(f"connection {fd}: {errno.errorcode.get(e.errno, e.errno)} "
                     f"({e.strerror}) with {len(conns)} open")
            conns[fd][1] = pending
            # Stop reading while a reply waits: the peer's sending stalls
            # instead of this process buffering without bound.
            ep.modify(fd, select.EPOLLOUT if pending else select.EPOLLIN)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
