"""bench/idle_rr.sh: the first request/response after an idle gap, client
and server (echo).
client HOST PORT GAPS REPS: warm rr median, then per gap REPS times: sleep
gap, time one 64-byte rr.  Prints figures and one JSON line."""
import json, socket, statistics, sys, time

def rr(s, msg):
    t = time.perf_counter_ns()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(len(msg) - len(got))
        if not b:
            sys.exit("peer closed")
        got += b
    dt = time.perf_counter_ns() - t
    if got != msg:
        sys.exit("echo differs")
    return dt / 1000.0

if sys.argv[1] == "server":
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", int(sys.argv[2]))); l.listen(1)
    print("listening", flush=True)
    c, _ = l.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    sys.exit(0)

host, port, gaps, reps, tag = sys.argv[2], int(sys.argv[3]), [float(g) for g in sys.argv[4].split(",")], int(sys.argv[5]), sys.argv[6]
s = socket.create_connection((host, port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = bytes(range(64))
warm = [rr(s, msg) for _ in range(2000)]
out = {"stack": tag, "warm_rr_us_median": statistics.median(warm), "after_idle": {}}
for g in gaps:
    xs = []
    for _ in range(reps):
        rr(s, msg)
        time.sleep(g)
        xs.append(rr(s, msg))
    out["after_idle"][str(g)] = {"us": xs, "median": statistics.median(xs)}
print(f"{tag}: warm rr median {out['warm_rr_us_median']:.1f} us; " +
      "; ".join(f"first rr after {g} s idle: median {v['median']:.1f} us (all {', '.join(f'{x:.0f}' for x in v['us'])})"
                for g, v in out["after_idle"].items()), flush=True)
print("JSON " + json.dumps(out), flush=True)
