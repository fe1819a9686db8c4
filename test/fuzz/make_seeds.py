#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (corpus/<target>/seed-*):
a few well-formed inputs of each kind in the target's input format, so that
the fuzzer starts from the paths that matter.  Regression inputs (crash-*)
are kept beside them by hand.  Run from anywhere; rewrites the seeds only."""
import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SELF_MAC, PEER_MAC = bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])
SELF_IP, PEER_IP = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- netif: [flags u8][len u16 LE][frame]; F_CKSUM 1, F_REL 2, F_CONN2 4, F_GRO 8
def rec(flags, frame):
    return struct.pack("<BH", flags, len(frame)) + frame


def eth(payload, etype=0x0800, dst=SELF_MAC):
    return dst + PEER_MAC + struct.pack("!H", etype) + payload


def ipv4(proto, payload, frag=0, ident=1, ttl=64):
    # checksums left 0: the harness fixes them (F_CKSUM)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl,
                       proto, 0, PEER_IP, SELF_IP) + payload


def tcp(sport, dport, seq, ack, flags, opts=b"", data=b""):
    hl = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, hl << 4, flags, 65535, 0, 0) + opts + data


MSS = b"\x02\x04\x05\xb4"
SACKP = b"\x04\x02"
WS = b"\x01\x03\x03\x07"
TS = b"\x01\x01\x08\x0a\x00\x00\x00\x05\x00\x00\x00\x00"
SACK = b"\x01\x01\x05\x0a\x00\x00\x00\x64\x00\x00\x00\xc8"
ACK, PSH, SYN, FIN, RST = 0x10, 0x08, 0x02, 0x01, 0x04


def netif_seeds():
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, PEER_IP, b"\0" * 6, SELF_IP)
    write("netif", "arp-request", rec(0, eth(arp, 0x0806, b"\xff" * 6)))
    write("netif", "arp-reply", rec(0, eth(arp[:7] + b"\x02" + arp[8:], 0x0806)))
    icmp = b"\x08\x00\x00\x00\x12\x34\x00\x01" + bytes(range(56))
    write("netif", "icmp-echo", rec(1, eth(ipv4(1, icmp))))
    udp = struct.pack("!HHHH", 5555, 7, 8 + 32, 0) + b"u" * 32
    write("netif", "udp-echo", rec(1, eth(ipv4(17, udp))))
    write("netif", "udp-frags",
          rec(1, eth(ipv4(17, udp[:24], frag=0x2000, ident=9))) +
          rec(1, eth(ipv4(17, udp[24:], frag=2, ident=9))))
    syn = tcp(41000, 5001, 777, 0, SYN, MSS + SACKP + WS + TS + b"\x00\x00\x00\x00")
    write("netif", "tcp-syn-options", rec(1, eth(ipv4(6, syn))))
    # relative: seq/ack are offsets from the flow's expected numbers
    data = tcp(0, 0, 0, 0, ACK | PSH, TS, b"d" * 100)
    write("netif", "tcp-data", rec(3, eth(ipv4(6, data))))
    write("netif", "tcp-data-active", rec(7, eth(ipv4(6, data))))
    ooo = tcp(0, 0, 200, 0, ACK, TS, b"o" * 100)
    write("netif", "tcp-ooo-sack", rec(3, eth(ipv4(6, ooo))) +
          rec(3, eth(ipv4(6, tcp(0, 0, 0, 16, ACK, SACK, b"")))) +
          rec(3, eth(ipv4(6, data))))
    gro = b"".join(rec(11, eth(ipv4(6, tcp(0, 0, 100 * i, 0, ACK, b"", bytes([i]) * 100)))) for i in range(4))
    write("netif", "tcp-gro-burst", gro + rec(3, eth(ipv4(6, tcp(0, 0, 400, 0, ACK | FIN)))))
    write("netif", "tcp-fin-rst", rec(7, eth(ipv4(6, tcp(0, 0, 0, 0, ACK | FIN)))) +
          rec(3, eth(ipv4(6, tcp(0, 0, 0, 0, RST)))))
    write("netif", "junk", rec(0, bytes(range(60))))


# ---- backend: ops (see fuzz_backend.c)
OP_CMD, OP_SOCKET, OP_WORD, OP_BYTES, OP_BELL, OP_POLL, OP_TX, OP_RX = range(8)
OPC = dict(NOP=0, SOCKET=1, BIND=2, LISTEN=3, ACCEPT=4, CONNECT=5, SEND=6, RECV=7,
           SHUTDOWN=8, CLOSE=9, SETSOCKOPT=10, GETSOCKOPT=11, GETSOCKNAME=12, GETPEERNAME=13)


def cmd(sock, op, *args, cookie=7):
    args = list(args) + [0] * (5 - len(args))
    return bytes([OP_CMD, sock]) + struct.pack("<HHIQ5Q", OPC[op], 0, sock, cookie, *args)


def sin(port):
    raw = struct.pack("<H", socket.AF_INET) + struct.pack("!H", port) + SELF_IP + b"\0" * 8
    raw += b"\0" * (32 - len(raw))
    return [16] + list(struct.unpack("<4Q", raw))


def poll(n=8):
    return bytes([OP_POLL, n])


def backend_seeds():
    write("backend", "socket-nop", bytes([OP_SOCKET, 1]) + poll() + cmd(1, "NOP") + poll() + bytes([OP_RX, 1]))
    pair = (bytes([OP_SOCKET, 1]) + poll() + bytes([OP_SOCKET, 1]) + poll() + bytes([OP_RX, 0]) +
            cmd(1, "BIND", *sin(9000)) + cmd(1, "LISTEN", 8) + poll() +
            cmd(2, "CONNECT", *sin(9000)) + poll(15) + cmd(1, "ACCEPT") + poll(15) + bytes([OP_RX, 1]))
    write("backend", "tcp-pair", pair)
    data = pair + bytes([OP_TX, 2, 16]) + poll(15) + bytes([OP_RX, 3]) + poll(15) + bytes([OP_RX, 3])
    write("backend", "tcp-data", data)
    write("backend", "tcp-close", data + cmd(3, "SHUTDOWN", 1) + poll() + cmd(2, "CLOSE") +
          cmd(3, "CLOSE") + cmd(1, "CLOSE") + poll(15))
    write("backend", "opts", bytes([OP_SOCKET, 1]) + poll() +
          cmd(1, "SETSOCKOPT", 1, 2, 4, 1) + cmd(1, "GETSOCKOPT", 1, 7, 4) +
          cmd(1, "GETSOCKNAME") + cmd(1, "GETPEERNAME") + poll())
    write("backend", "udp", bytes([OP_SOCKET, 0]) + poll() + cmd(1, "BIND", *sin(9001)) +
          cmd(1, "CONNECT", *sin(9001)) + poll() + bytes([OP_TX, 1, 2]) + poll() + bytes([OP_RX, 1]))
    # ring indices scribbled: cmd_prod of socket 1 (socks_off is computed by
    # the segment layout; these offsets only start the fuzzer near them)
    write("backend", "scribble", pair + bytes([OP_WORD]) + struct.pack("<II", 0x1000, 0xffffffff) +
          bytes([OP_BELL]) + poll() + bytes([OP_BYTES]) + struct.pack("<IB", 0x2000, 16) + b"\xff" * 16 +
          bytes([OP_BELL]) + poll())


# ---- ctl: [flags u8][len u8][bytes]; fd kind flags & 3, F_TWO 4, F_NEWCONN 8, F_HDR 16
def ctl_msg(typ, body, flags=0):
    m = struct.pack("<IHHII", 0x4c544349, 1, typ, 16 + len(body), 0) + body
    return bytes([flags, len(m)]) + m


def ctl_seeds():
    attach = struct.pack("<IIQ16s4Q", 1234, 4, 0xf, b"fuzz", 0, 0, 0, 0)
    write("ctl", "attach", ctl_msg(1, attach, 1))
    write("ctl", "attach-extent-wakefd", ctl_msg(1, attach, 1) + ctl_msg(6, struct.pack("<II", 0, 0)) +
          ctl_msg(5, struct.pack("<II", 1234, 1), 1))
    write("ctl", "stats", ctl_msg(3, struct.pack("<II", 0, 0)))
    write("ctl", "attach-pipe", ctl_msg(1, attach, 2))
    write("ctl", "attach-two-fds", ctl_msg(1, attach, 1 | 4))
    write("ctl", "two-conns", ctl_msg(1, attach, 1) + ctl_msg(1, attach, 1 | 8) +
          ctl_msg(3, struct.pack("<II", 0, 0), 8))
    write("ctl", "garbage", bytes([0, 20]) + bytes(range(20)))


netif_seeds()
backend_seeds()
ctl_seeds()
