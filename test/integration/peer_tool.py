#!/usr/bin/env python3
"""What the integration tests do from the peer namespace (stdlib only).

  echo-bulk   one TCP connection to the echo service: send N bytes while
              reading them back, compare SHA-256 of both streams
  echo-short  N short connections, each echoing a small payload, then a
              half-close answered by the server's FIN (no reset)
  arp         ICMP echo request from an address the daemon has never seen,
              sent raw: the daemon must ARP for it, then reply
  malformed   broken frames through an AF_PACKET socket, then probes with
              bad checksums that must get no answer

Exit status 0 on success, 1 with a message on failure.
"""
import argparse
import hashlib
import os
import random
import select
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def if_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return mac_bytes(f.read().strip())


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0x1234, bad_csum=False, tot_len=None,
         ihl=5, ttl=64, frag=0x4000):
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0,
                                tot_len if tot_len is not None else 20 + len(payload),
                                ident, frag, ttl, proto, 0,
                                socket.inet_aton(src), socket.inet_aton(dst)))
    c = csum(bytes(hdr))
    hdr[10:12] = struct.pack("!H", c ^ 0x5555 if bad_csum else c)
    return bytes(hdr) + payload


def icmp_echo(ident, seq, data=b"isostack", bad_csum=False):
    body = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data)
    c = csum(bytes(body))
    body[2:4] = struct.pack("!H", c ^ 0x00FF if bad_csum else c)
    return bytes(body)


def tcp_seg(src, dst, sport, dport, seq, flags, payload=b"", bad_csum=False, doff=5):
    hdr = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 0, doff << 4,
                                flags, 65535, 0, 0))
    pseudo = (socket.inet_aton(src) + socket.inet_aton(dst) +
              struct.pack("!BBH", 0, 6, len(hdr) + len(payload)))
    c = csum(pseudo + bytes(hdr) + payload)
    hdr[16:18] = struct.pack("!H", c ^ 0x0F0F if bad_csum else c)
    return bytes(hdr) + payload


def udp_dgram(sport, dport, payload, length=None):
    return struct.pack("!HHHH", sport, dport,
                       length if length is not None else 8 + len(payload), 0) + payload


def raw_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def frames_until(sock, deadline, want):
    """Read incoming frames until want(frame) is true or the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            return False
        frame, addr = sock.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if want(frame):
            return True


# --- echo-bulk -------------------------------------------------------------

def stream_chunks(total, seed, chunk=1 << 16):
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield rng.randbytes(n)
        sent += n


def cmd_echo_bulk(a):
    sock = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    sock.settimeout(a.timeout)
    sent_hash = hashlib.sha256()
    errors = []

    def sender():
        try:
            for chunk in stream_chunks(a.bytes, a.seed):
                sent_hash.update(chunk)
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(f"send: {e}")

    start = time.monotonic()
    t = threading.Thread(target=sender)
    t.start()
    got_hash = hashlib.sha256()
    got = 0
    try:
        while True:
            data = sock.recv(1 << 18)
            if not data:
                break
            got_hash.update(data)
            got += len(data)
    except OSError as e:
        errors.append(f"recv after {got} bytes: {e}")
    t.join()
    sock.close()
    secs = time.monotonic() - start
    if errors:
        die("; ".join(errors))
    print(f"echo-bulk: sent {a.bytes} bytes, got {got} back in {secs:.1f} s "
          f"({got * 8 / secs / 1e6:.0f} Mbit/s each way)")
    print(f"  sha256 sent {sent_hash.hexdigest()}")
    print(f"  sha256 got  {got_hash.hexdigest()}")
    if got != a.bytes or got_hash.digest() != sent_hash.digest():
        die("the echoed stream differs from what was sent")


# --- echo-short ------------------------------------------------------------

def cmd_echo_short(a):
    rng = random.Random(a.seed)
    start = time.monotonic()
    for i in range(a.count):
        payload = rng.randbytes(a.size)
        try:
            s = socket.create_connection((a.addr, a.port), timeout=a.timeout)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            back = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break           # the server's FIN: a clean close
                back += data
            s.close()
        except OSError as e:
            die(f"connection {i + 1} of {a.count}: {e}")
        if back != payload:
            die(f"connection {i + 1}: echoed {len(back)} bytes that differ from the {a.size} sent")
    secs = time.monotonic() - start
    print(f"echo-short: {a.count} connections of {a.size} bytes each, all echoed "
          f"and closed cleanly ({a.count / secs:.0f} connections/s)")


# --- echo-server -----------------------------------------------------------

def cmd_echo_server(a):
    """Echo every connection on a.port (a thread each) until killed; says
    "listening" once it does. Used by tests on either side: in the peer,
    or as an unmodified program under the shim."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", a.port))
    lsock.listen(a.backlog)
    print("listening", flush=True)

    def echo(c):
        while True:
            data = c.recv(1 << 18)
            if not data:
                break
            c.sendall(data)
        c.close()

    while True:
        c, _ = lsock.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


# --- arp ---------------------------------------------------------------------

def cmd_arp(a):
    """The peer's kernel owns a.src (the test adds it); our raw frame uses it
    as source, so the daemon can learn its MAC only by asking."""
    sock = raw_socket(a.iface)
    mine = if_mac(a.iface)
    dmac = mac_bytes(a.dmac)
    ident = os.getpid() & 0xFFFF
    frame = (dmac + mine + struct.pack("!H", ETH_P_IP) +
             ipv4(a.src, a.addr, 1, icmp_echo(ident, 1)))
    seen = {"arp": False}

    def want(f):
        etype = struct.unpack("!H", f[12:14])[0]
        if (etype == ETH_P_ARP and f[6:12] == dmac and
                struct.unpack("!H", f[20:22])[0] == 1 and
                f[38:42] == socket.inet_aton(a.src)):
            seen["arp"] = True
            print(f"arp: the daemon asked who-has {a.src} (from {a.dmac})")
            return False
        if (etype == ETH_P_IP and f[23] == 1 and
                f[30:34] == socket.inet_aton(a.src) and f[34] == 0 and
                struct.unpack("!H", f[38:40])[0] == ident):
            return True
        return False

    sock.send(frame)
    if not frames_until(sock, time.monotonic() + a.timeout, want):
        die(f"no ICMP echo reply to {a.src} within {a.timeout} s "
            f"(ARP request seen: {seen['arp']})")
    print(f"arp: echo reply to {a.src} received")
    if not seen["arp"]:
        die(f"the daemon replied to {a.src} without resolving it by ARP")


# --- malformed ---------------------------------------------------------------

def malformed_frames(dmac, smac, src, dst, rng):
    eth_ip = dmac + smac + struct.pack("!H", ETH_P_IP)
    eth_arp = dmac + smac + struct.pack("!H", ETH_P_ARP)
    good_icmp = icmp_echo(1, 1)
    good_syn = tcp_seg(src, dst, 40000, 7, 1, 0x02)
    yield "runt frame (10 bytes)", (dmac + smac)[:10]
    yield "ethernet header only", eth_ip
    yield "IPv4 header cut at 10 bytes", eth_ip + ipv4(src, dst, 1, good_icmp)[:10]
    yield "IPv4 version 6 in an IPv4 frame", eth_ip + bytes([0x65]) + ipv4(src, dst, 1, good_icmp)[1:]
    yield "IPv4 ihl 3", eth_ip + ipv4(src, dst, 1, good_icmp, ihl=3)
    yield "IPv4 ihl 15, 28 bytes", eth_ip + ipv4(src, dst, 1, good_icmp, ihl=15)[:28]
    yield "IPv4 bad header checksum", eth_ip + ipv4(src, dst, 1, good_icmp, bad_csum=True)
    yield "IPv4 total length > frame", eth_ip + ipv4(src, dst, 1, good_icmp, tot_len=1400)
    yield "IPv4 total length < header", eth_ip + ipv4(src, dst, 1, good_icmp, tot_len=12)
    yield "IPv4 total length 0", eth_ip + ipv4(src, dst, 1, good_icmp, tot_len=0)
    yield "IPv4 TTL 0", eth_ip + ipv4(src, dst, 1, good_icmp, ttl=0)
    yield "IPv4 broadcast source", eth_ip + ipv4("255.255.255.255", dst, 1, good_icmp)
    yield "fragment, offset past 64 KB", eth_ip + ipv4(src, dst, 1, good_icmp, frag=0x2000 | 0x1FFF)
    yield "fragments overlapping", eth_ip + ipv4(src, dst, 17, udp_dgram(1, 9, b"x" * 64), frag=0x2000 | 1, ident=77)
    yield "fragment tail only", eth_ip + ipv4(src, dst, 17, b"y" * 32, frag=4, ident=77)
    yield "ICMP truncated to 3 bytes", eth_ip + ipv4(src, dst, 1, good_icmp[:3])
    yield "TCP header truncated", eth_ip + ipv4(src, dst, 6, good_syn[:12])
    yield "TCP data offset 2", eth_ip + ipv4(src, dst, 6, tcp_seg(src, dst, 40001, 7, 1, 0x02, doff=2))
    yield "TCP data offset 15 > segment", eth_ip + ipv4(src, dst, 6, tcp_seg(src, dst, 40002, 7, 1, 0x02, doff=15))
    yield "TCP SYN+FIN+RST+URG", eth_ip + ipv4(src, dst, 6, tcp_seg(src, dst, 40003, 7, 1, 0x2F))
    yield "UDP length > datagram", eth_ip + ipv4(src, dst, 17, udp_dgram(5000, 9, b"abc", length=900))
    yield "UDP length < 8", eth_ip + ipv4(src, dst, 17, udp_dgram(5000, 9, b"abc", length=3))
    yield "ARP truncated", eth_arp + bytes(10)
    yield "ARP with hlen 9", eth_arp + struct.pack("!HHBBH", 1, ETH_P_IP, 9, 4, 1) + bytes(22)
    yield "unknown ethertype", dmac + smac + b"\x88\xb5" + bytes(46)
    for i in range(200):
        n = rng.randrange(14, 1515)
        yield "random bytes, IPv4 ethertype", eth_ip + rng.randbytes(n - 14)
        yield "random IPv4 header fields", eth_ip + bytes([0x45]) + rng.randbytes(rng.randrange(19, 200))
        yield "random bytes", dmac + rng.randbytes(rng.randrange(8, 1508))


def cmd_malformed(a):
    sock = raw_socket(a.iface)
    smac = if_mac(a.iface)
    dmac = mac_bytes(a.dmac)
    rng = random.Random(a.seed)
    kinds = {}
    refused = 0
    for kind, frame in malformed_frames(dmac, smac, a.src, a.addr, rng):
        try:
            sock.send(frame)
            kinds[kind] = kinds.get(kind, 0) + 1
        except OSError:
            refused += 1            # e.g. a runt the kernel will not send
    sent = sum(kinds.values())
    print(f"malformed: sent {sent} frames of {len(kinds)} kinds"
          f"{f' ({refused} refused by the kernel)' if refused else ''}")

    # Probes that are well-formed except for one checksum: an answer would
    # mean the daemon skipped the check.
    ident = (os.getpid() + 7) & 0xFFFF
    probes = [
        ("ICMP echo with a bad ICMP checksum",
         ipv4(a.src, a.addr, 1, icmp_echo(ident, 9, bad_csum=True)),
         lambda f: f[23] == 1 and f[34] == 0 and struct.unpack("!H", f[38:40])[0] == ident),
        ("ICMP echo with a bad IP checksum",
         ipv4(a.src, a.addr, 1, icmp_echo(ident, 10), bad_csum=True),
         lambda f: f[23] == 1 and f[34] == 0 and struct.unpack("!H", f[38:40])[0] == ident),
        ("TCP SYN to port 7 with a bad TCP checksum",
         ipv4(a.src, a.addr, 6, tcp_seg(a.src, a.addr, 41000, 7, 1000, 0x02, bad_csum=True)),
         lambda f: f[23] == 6 and struct.unpack("!H", f[36:38])[0] == 41000),
    ]
    for name, pkt, answer in probes:
        frame = dmac + smac + struct.pack("!H", ETH_P_IP) + pkt

        def want(f, answer=answer):
            return (struct.unpack("!H", f[12:14])[0] == ETH_P_IP and len(f) >= 40 and
                    f[30:34] == socket.inet_aton(a.src) and answer(f))
        sock.send(frame)
        if frames_until(sock, time.monotonic() + a.probe_wait, want):
            die(f"the daemon answered a {name}")
        print(f"malformed: no answer to a {name} (within {a.probe_wait} s)")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", default="198.18.0.1", help="the daemon's address")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=4)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("echo-bulk")
    b.add_argument("--bytes", type=int, default=100 * 1000 * 1000)
    b.add_argument("--port", type=int, default=7)
    s = sub.add_parser("echo-short")
    s.add_argument("--count", type=int, default=1000)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--port", type=int, default=7)
    e = sub.add_parser("echo-server")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--backlog", type=int, default=16)
    r = sub.add_parser("arp")
    r.add_argument("--iface", required=True)
    r.add_argument("--dmac", required=True)
    r.add_argument("--src", required=True, help="a peer address the daemon has not seen")
    m = sub.add_parser("malformed")
    m.add_argument("--iface", required=True)
    m.add_argument("--dmac", required=True)
    m.add_argument("--src", default="198.18.0.2")
    m.add_argument("--probe-wait", type=float, default=1.0)
    a = p.parse_args()
    {"echo-bulk": cmd_echo_bulk, "echo-short": cmd_echo_short, "echo-server": cmd_echo_server,
     "arp": cmd_arp, "malformed": cmd_malformed}[a.cmd](a)


if __name__ == "__main__":
    main()
