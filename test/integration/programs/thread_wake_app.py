#!/usr/bin/env python3
"""Threads sleeping in epoll_wait at once (test_thread_wake.sh), under the shim.

  main thread   an epoll set with listener A only: accepts, hands each
                connection to the worker (a queue and a pipe the worker's
                epoll set watches), then sleeps again
  worker        an epoll set with the pipe and its connections: echoes
  twins         two threads sleeping on ONE epoll set (listener B and its
                connections): whichever wakes accepts or echoes

Prints "listening PID MAIN_TID WORKER_TID" once both listeners are up;
runs until killed.
"""
import os
import queue
import select
import socket
import sys
import threading

port_a, port_b = int(sys.argv[1]), int(sys.argv[2])


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    s.setblocking(False)
    return s


def echo_ready(c, ep, conns, lock=None):
    """Reads what c has and echoes it; closes at end of file."""
    try:
        if lock:
            with lock:
                data = c.recv(65536)
                if data:
                    c.sendall(data)
        else:
            data = c.recv(65536)
            if data:
                c.sendall(data)
    except BlockingIOError:
        return
    if not data:
        ep.unregister(c.fileno())
        conns.pop(c.fileno(), None)
        c.close()


la, lb = listener(port_a), listener(port_b)
handoff = queue.Queue()
rpipe, wpipe = os.pipe()
tids = {}


def worker():
    tids["worker"] = threading.get_native_id()
    ep = select.epoll()
    ep.register(rpipe, select.EPOLLIN)
    conns = {}
    while True:
        for fd, _ in ep.poll():
            if fd == rpipe:
                os.read(rpipe, 64)
                while not handoff.empty():
                    c = handoff.get()
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
            elif fd in conns:
                echo_ready(conns[fd], ep, conns)


shared = select.epoll()
shared.register(lb.fileno(), select.EPOLLIN)
twin_conns = {}
twin_lock = threading.Lock()


def twin():
    while True:
        for fd, _ in shared.poll():
            if fd == lb.fileno():
                with twin_lock:
                    try:
                        c, _ = lb.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    twin_conns[c.fileno()] = c
                    shared.register(c.fileno(), select.EPOLLIN)
            else:
                c = twin_conns.get(fd)
                if c is not None:
                    echo_ready(c, shared, twin_conns, twin_lock)


for fn in (worker, twin, twin):
    threading.Thread(target=fn, daemon=True).start()
while "worker" not in tids:
    pass
print("listening", os.getpid(), threading.get_native_id(), tids["worker"], flush=True)
ep = select.epoll()
ep.register(la.fileno(), select.EPOLLIN)
while True:
    for _ in ep.poll():
        try:
            c, _ = la.accept()
        except BlockingIOError:
            continue
        handoff.put(c)
        os.write(wpipe, b"x")
