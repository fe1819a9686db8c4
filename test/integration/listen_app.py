"""A minimal application for the status and metrics tests, run under the
shim: one TCP listener on PORT (argv[1], default 5555), "listening" on
stdout once it listens, then it waits for EOF on stdin and exits."""
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 5555
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("0.0.0.0", port))
lsock.listen(16)
print("listening", flush=True)
sys.stdin.read()
lsock.close()
