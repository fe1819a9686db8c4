#!/usr/bin/env python3
"""The long-lived application of `isostack bench soak`, run under the shim
(scripts/lib/bench_soak.sh). Plain BSD sockets, one thread per TCP
connection, stdlib only:

    bench_soak_app.py ADDR TCP_PORT UDP_PORT

TCP: each connection opens with one line that says what it is for
  UP N         the client sends N bytes; the reply is their SHA-256 (hex)
  DOWN N SEED  N bytes of random.Random(SEED) to the client, then close
  ECHO         every byte back until the client's EOF, then close
UDP: every datagram back to its sender.
Prints "ready" once both sockets listen, and a line per error on stderr;
SIGUSR1 writes every thread's stack there.
It runs until SIGTERM (exit 0).
"""
import faulthandler
import hashlib
import random
import signal
import socket
import sys
import threading

CHUNK = 1 << 16


def read_line(conn):
    """The opening line, byte by byte (no read past it: the rest is data)."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 128:
        b = conn.recv(1)
        if not b:
            break
        line += b
    return line.decode("ascii", "replace").split()


def serve_up(conn, n):
    h = hashlib.sha256()
    got = 0
    while got < n:
        data = conn.recv(min(CHUNK * 4, n - got))
        if not data:
            break
        h.update(data)
        got += len(data)
    conn.sendall(f"{got} {h.hexdigest()}\n".encode())


def serve_down(conn, n, seed):
    rng = random.Random(seed)
    sent = 0
    while sent < n:
        chunk = rng.randbytes(min(CHUNK, n - sent))
        conn.sendall(chunk)
        sent += len(chunk)


def serve_echo(conn):
    while True:
        data = conn.recv(CHUNK)
        if not data:
            return
        conn.sendall(data)


def serve(conn):
    try:
        words = read_line(conn)
        if words[:1] == ["UP"] and len(words) == 2:
            serve_up(conn, int(words[1]))
        elif words[:1] == ["DOWN"] and len(words) == 3:
            serve_down(conn, int(words[1]), int(words[2]))
        elif words == ["ECHO"]:
            serve_echo(conn)
        elif words:
            print(f"bench_soak_app: unknown request {words!r}", file=sys.stderr)
    except (OSError, ValueError) as e:
        print(f"bench_soak_app: connection: {e}", file=sys.stderr)
    finally:
        conn.close()


def udp_echo(sock):
    while True:
        try:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)
        except OSError as e:
            print(f"bench_soak_app: udp: {e}", file=sys.stderr)


def main():
    addr, tport, uport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # bench_soak.py asks for every thread's stack when a connection stalls.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind((addr, tport))
    lsn.listen(128)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, uport))
    threading.Thread(target=udp_echo, args=(udp,), daemon=True).start()
    print("ready", flush=True)
    while True:
        conn, _ = lsn.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
