"""What both ends of the byte-exact stream tests do (test_rings.sh,
test_nokernel.sh): read or send N bytes, with their sha256."""
import hashlib, os


def recv_n(s, size):
    h, got = hashlib.sha256(), 0
    while got < size:
        b = s.recv(65536)
        if not b:
            break
        h.update(b); got += len(b)
    return got, h.hexdigest()


def send_n(s, size):
    data = os.urandom(size)
    s.sendall(data)
    return hashlib.sha256(data).hexdigest()
