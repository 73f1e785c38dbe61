"""A minimal CIBA provider over real loopback HTTP that approves every request at once: the
cheapest possible approval, so a benchmark measures the client's overhead over the protocol's
two round trips (``/bc-authorize`` then ``/token``). Runs in its own process (it does not share
the load generator's GIL) and prints ``READY <port>``.

    python benchmarks/_instant_ciba.py
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket

_ids = itertools.count(1)
#: answered instantly; 1 ms is the shortest poll interval a client is asked to wait
INTERVAL = 0.001


def _answer(path: str) -> bytes:
    if path == "/bc-authorize":
        body = {"auth_req_id": f"rid-{next(_ids):040d}", "expires_in": 60, "interval": INTERVAL}
    elif path == "/token":
        body = {"access_token": "at-" + "x" * 40, "token_type": "Bearer", "expires_in": 60}
    else:
        return b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
    data = json.dumps(body).encode()
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
            b"content-length: " + str(len(data)).encode() + b"\r\n\r\n" + data)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1].split("?")[0]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            writer.write(_answer(path))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
