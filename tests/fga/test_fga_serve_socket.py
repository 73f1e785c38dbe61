"""``agent-auth fga serve`` (and the dev server, through the one shared ``bind_socket``) answers
without the ~40 ms delayed-ACK stall: its listening socket
says TCP, so asyncio sets TCP_NODELAY on every accepted connection."""

from __future__ import annotations

import asyncio
import socket

from langchain_agent_auth.core._serving import bind_socket as listen_socket


def test_listen_socket_is_tcp() -> None:
    sock = listen_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_accepted_connections_get_tcp_nodelay() -> None:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock = listen_socket("127.0.0.1", 0)
        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            value = await asyncio.wait_for(seen, 10)
            writer.close()
        return value

    assert asyncio.run(main()) != 0
