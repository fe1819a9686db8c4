#!/usr/bin/env python3
"""A lossy wire: forwards Ethernet frames between two interfaces, losing,
duplicating and reordering some of them, like `tc netem` (which this
kernel may lack: netem is a module, and some kernels ship none).

    impair.py IFACE_A IFACE_B [--loss P] [--dup P] [--reorder P]
              [--corrupt P] [--delay MS] [--seed N] [--stats FILE]

P are probabilities per frame in percent, applied to both directions.
A reordered frame is held back and sent after the next frame going the same
way (or after 2 ms if none comes), so it arrives late. A corrupted IPv4
frame has one byte of its IP packet (header or payload, never the Ethernet
header or padding) XORed with a random non-zero value: its IP or its TCP,
UDP or ICMP checksum no longer matches, so the receiver must drop it
(counted per direction, as corrupted_to). --delay holds every frame MS
milliseconds, in order. The run is repeatable for a given --seed. On
SIGTERM/SIGINT it writes what it did as JSON to --stats (and stderr) and
exits 0.

Run it in a namespace of its own that holds both interfaces, with no
addresses on them: it is the wire, not a host.
"""
import argparse
import collections
import json
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
HOLD_S = 0.002


def open_port(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def corrupt(frame, rng):
    """The frame with one byte of its IPv4 packet flipped, or None when it
    is not IPv4 (ARP has no checksum to catch it)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    end = min(len(frame), 14 + struct.unpack("!H", frame[16:18])[0])
    if end <= 14:
        return None
    b = bytearray(frame)
    b[rng.randrange(14, end)] ^= rng.randrange(1, 256)
    return bytes(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--dup", type=float, default=0.0)
    ap.add_argument("--reorder", type=float, default=0.0)
    ap.add_argument("--corrupt", type=float, default=0.0)
    ap.add_argument("--delay", type=float, default=0.0, help="milliseconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats")
    args = ap.parse_args()
    if args.delay < 0:
        ap.error("--delay is a number of milliseconds, 0 or more")
    for p in (args.loss, args.dup, args.reorder, args.corrupt):
        if not 0.0 <= p <= 100.0:
            ap.error("probabilities are percentages between 0 and 100")

    rng = random.Random(args.seed)
    ports = {args.a: open_port(args.a), args.b: open_port(args.b)}
    other = {args.a: args.b, args.b: args.a}
    held = {args.a: None, args.b: None}        # (frame, since) per direction
    stats = {"frames": 0, "forwarded": 0, "lost": 0, "duplicated": 0,
             "reordered": 0, "corrupted": 0, "send_errors": 0,
             "corrupted_to": {args.a: 0, args.b: 0}}
    delay_s = args.delay / 1000.0
    delayed = {args.a: collections.deque(), args.b: collections.deque()}
    running = True

    def stop(signum, frame):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def send(out, frame):
        if delay_s > 0:
            delayed[out].append((time.monotonic() + delay_s, frame))
        else:
            send_now(out, frame)

    def send_now(out, frame):
        try:
            ports[out].send(frame)
            stats["forwarded"] += 1
        except (BlockingIOError, OSError):
            stats["send_errors"] += 1

    fds = {s.fileno(): name for name, s in ports.items()}
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    print(f"impair: {args.a} <-> {args.b}: loss {args.loss}% dup {args.dup}% "
          f"reorder {args.reorder}% corrupt {args.corrupt}% delay {args.delay} ms "
          f"seed {args.seed}", file=sys.stderr, flush=True)
    while running:
        wait_ms = 1
        for q in delayed.values():
            if q:
                wait_ms = max(0, min(wait_ms, int((q[0][0] - time.monotonic()) * 1000)))
        try:
            events = poller.poll(wait_ms)
        except InterruptedError:
            continue
        for fd, _ in events:
            src = fds[fd]
            out = other[src]
            for _ in range(64):
                try:
                    frame = ports[src].recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                stats["frames"] += 1
                if rng.random() * 100 < args.loss:
                    stats["lost"] += 1
                    continue
                if args.corrupt and rng.random() * 100 < args.corrupt:
                    bad = corrupt(frame, rng)
                    if bad is not None:
                        frame = bad
                        stats["corrupted"] += 1
                        stats["corrupted_to"][out] += 1
                late = held[out]
                if late is None and rng.random() * 100 < args.reorder:
                    held[out] = (frame, time.monotonic())
                    stats["reordered"] += 1
                    continue
                send(out, frame)
                if rng.random() * 100 < args.dup:
                    stats["duplicated"] += 1
                    send(out, frame)
                if late is not None:
                    held[out] = None
                    send(out, late[0])
        now = time.monotonic()
        for out, q in delayed.items():
            while q and q[0][0] <= now:
                send_now(out, q.popleft()[1])
        for out, late in held.items():
            if late is not None and now - late[1] > HOLD_S:
                held[out] = None
                send(out, late[0])
    for out, q in delayed.items():
        while q:
            send_now(out, q.popleft()[1])
    text = json.dumps(stats)
    print(f"impair: {text}", file=sys.stderr, flush=True)
    if args.stats:
        with open(args.stats, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
