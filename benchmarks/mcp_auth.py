"""MCP tool call through the per-user auth (token cached) vs the same call with a static bearer
header: same FastMCP server (protected by MCPTokenVerifier), same token, same transport (real
loopback HTTP, streamable HTTP through the official SDK's client), one open session per side,
interleaved rounds. Run: python benchmarks/mcp_auth.py
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time

sys.path.insert(0, __file__.rsplit("/", 2)[0])


from benchmarks._util import Row, ainterleaved, paired, print_table, rounds_for


def _serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread


async def _measure(quick: bool) -> list[Row]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client
    from mcp.server.fastmcp import FastMCP

    from langchain_agent_auth import LocalProvider, UserIdentity
    from langchain_agent_auth.mcp import MCPAuth, MCPServer, MCPTokenVerifier, mcp_auth_settings, mcp_user
    from langchain_agent_auth.oauth import JWTVerifier
    from langchain_agent_auth.oauth.tokens import TokenResponse

    logging.getLogger("mcp.server.streamable_http").setLevel(logging.CRITICAL)
    rounds, round_s = rounds_for(quick)
    with LocalProvider() as idp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        url = f"http://127.0.0.1:{port}/mcp"
        idp.add_resource(url, "notes:read")
        verifier = MCPTokenVerifier(JWTVerifier(idp.issuer, audience=url))
        mcp = FastMCP("bench", token_verifier=verifier, host="127.0.0.1", port=port, log_level="WARNING",
                      auth=mcp_auth_settings(idp.issuer, url, scopes=["notes:read"]))

        @mcp.tool()
        def whoami() -> str:
            """The caller."""
            return mcp_user().subject

        server, thread = _serve(mcp.streamable_http_app(), port)
        try:
            alice = UserIdentity(subject="alice", issuer=idp.issuer)
            token = idp.login("alice", scope="openid notes:read", resource=url)["access_token"]
            auth = MCPAuth(MCPServer(url, client_id=idp.client_id, client_secret=idp.client_secret), user=alice)
            auth.tokens.put(auth.token_key(), TokenResponse(token, expires_at=time.time() + 3600,
                                                            scope=("notes:read",)))
            static = {"Authorization": f"Bearer {token}"}
            async with streamablehttp_client(url, auth=auth) as (r1, w1, _), ClientSession(r1, w1) as ours, \
                    streamablehttp_client(url, headers=static) as (r2, w2, _), ClientSession(r2, w2) as bare:
                await ours.initialize()
                await bare.initialize()

                async def call_ours() -> None:
                    await ours.call_tool("whoami", {})

                async def call_bare() -> None:
                    await bare.call_tool("whoami", {})

                samples = await ainterleaved({"bare": call_bare, "ours": call_ours}, rounds=rounds, round_s=round_s)
        finally:
            server.should_exit = True
            thread.join(10)
    return [paired("mcp: tool call, per-user auth", "µs per MCP tool call (wall), token cached", samples["ours"],
                   samples["bare"], "µs", "same call, static Authorization header",
                   "FastMCP + MCPTokenVerifier over loopback HTTP, one session each")]


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))

