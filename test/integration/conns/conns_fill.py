#!/usr/bin/env python3
"""Opens sockets until the system says no, and reports how it said it.

    conns_fill.py [--commands FIFO] socket
                                socket() until it fails
    conns_fill.py [--commands FIFO] connect HOST PORT
                                socket() + blocking connect() to an echo
                                service, 16 bytes echoed on each, until one
                                of them fails

Prints "full N ERRNO CALL": N sockets opened (and, for connect, echoing)
before CALL failed with ERRNO (its name, e.g. EMFILE), then the fds it
did not open itself ("others K: fd->target ..."), read after closing one of
its sockets (listing /proc/self/fd needs a free fd). Stops with exit 1 if
nothing fails within 100,000 sockets. Then reads commands, one a line,
from FIFO (default stdin; a shell gives a background job /dev/null):

    close     close all N (one freed for the listing included), print
              "closed N"
    reopen    open N again exactly as before, each must succeed (and echo);
              print "reopened N", or exit 1 saying which failed and how
    quit      exit 0
"""
import errno
import os
import socket
import sys


def ename(e):
    return errno.errorcode.get(e, str(e))


def open_one(target):
    """A new socket, connected and verified when target is (host, port).
    Raises OSError with the call that failed in .call."""
    call = "socket"
    s = None
    try:
        s = socket.socket()
        if target is not None:
            call = "connect"
            s.settimeout(30)
            s.connect(target)
            call = "echo"
            msg = b"fill %10d\n" % s.fileno()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                b = s.recv(len(msg) - len(got))
                if not b:
                    break
                got += b
            if got != msg:
                s.close()
                print(f"fill: echo on fd {s.fileno()}: got {got!r}, want {msg!r}",
                      file=sys.stderr, flush=True)
                sys.exit(1)
        return s
    except OSError as e:
        e.call = call
        if s is not None:
            s.close()
        raise


def others(mine):
    out = []
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        if fd in mine:
            continue
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass   # the listing's own fd, gone by now
    return out


def main():
    args = sys.argv[1:]
    commands = "/dev/stdin"
    if args[:1] == ["--commands"] and len(args) >= 2:
        commands, args = args[1], args[2:]
    if args == ["socket"]:
        target = None
    elif args[:1] == ["connect"] and len(args) == 3:
        target = (args[1], int(args[2]))
    else:
        sys.exit("usage: conns_fill.py [--commands FIFO] socket | connect HOST PORT")

    # Opened first: the fd it takes must not be one the reopen needs.
    cmds = open(commands)
    socks = []
    while True:
        try:
            socks.append(open_one(target))
        except OSError as e:
            err, call = e.errno, e.call
            break
        if len(socks) >= 100000:
            print(f"fill: 100000 sockets open and none refused, want a failure",
                  file=sys.stderr, flush=True)
            sys.exit(1)
    n = len(socks)
    print(f"full {n} {ename(err)} {call}", flush=True)
    if socks:
        socks.pop().close()
    o = others({s.fileno() for s in socks} | {cmds.fileno()})
    print(f"others {len(o)}: {' '.join(o)}", flush=True)

    for line in cmds:
        cmd = line.strip()
        if cmd == "close":
            for s in socks:
                s.close()
            socks = []
            print(f"closed {n}", flush=True)
        elif cmd == "reopen":
            for k in range(n):
                try:
                    socks.append(open_one(target))
                except OSError as e:
                    print(f"fill: reopening socket {k + 1} of {n}: {e.call} failed "
                          f"with {ename(e.errno)}, want success", file=sys.stderr, flush=True)
                    sys.exit(1)
            print(f"reopened {n}", flush=True)
        elif cmd == "quit":
            return
        else:
            sys.exit(f"fill: unknown command {cmd!r}")


if __name__ == "__main__":
    main()
