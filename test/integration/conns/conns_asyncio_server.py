#!/usr/bin/env python3
"""An echo server as Python programs write one: asyncio.start_server.

    conns_asyncio_server.py ADDR PORT

The default event loop (selectors, epoll on Linux), one coroutine per
connection writing back what it reads until EOF. Prints "listening PORT",
and each time its last open connection closes, "all closed: accepted A
peak P" (P: most connections open at the same moment). A connection that
breaks ends the server with a line on stderr and exit 1. The soft
RLIMIT_NOFILE is raised to the hard one first.
"""
import asyncio
import resource
import sys

accepted = 0
peak = 0
open_now = 0


async def echo(reader, writer):
    global accepted, peak, open_now
    accepted += 1
    open_now += 1
    peak = max(peak, open_now)
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    except OSError as e:
        print(f"asyncio server: connection broke with {open_now} open: {e!r}",
              file=sys.stderr, flush=True)
        sys.exit(1)
    open_now -= 1
    if open_now == 0:
        print(f"all closed: accepted {accepted} peak {peak}", flush=True)


async def main(addr, port):
    server = await asyncio.start_server(echo, addr, port, backlog=4096)
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: conns_asyncio_server.py ADDR PORT")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    except KeyboardInterrupt:
        pass
