"""The client the MCP project's conformance suite drives:

    npx @modelcontextprotocol/conformance@0.1.13 client --suite auth \\
        --command "python tests/mcp/conformance_client.py"

The suite appends the server URL and sets ``MCP_CONFORMANCE_SCENARIO`` (and, for some
scenarios, ``MCP_CONFORMANCE_CONTEXT``: pre-registered credentials or a private key). Only
the toolkit's public API is used: :class:`MCPAuth` on the official ``mcp`` SDK's streamable
HTTP client. The suite's authorization servers approve without a person, so the headless
authorizer completes the sign-in. The test has it forked from a pre-imported Python
(``tests/support/prefork.py``'s proxy as the command), which runs it as this command would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from langchain_agent_auth.mcp import HeadlessAuthorizer, MCPAuth, MCPServer

CIMD_URL = "https://conformance-test.local/client-metadata.json"


def server_for(url: str, scenario: str, context: dict) -> MCPServer:
    if scenario.startswith("auth/client-credentials"):
        if "private_key_pem" in context:
            return MCPServer(url, client_id=context["client_id"], auth_method="private_key_jwt",
                             private_key=context["private_key_pem"], signing_alg=context.get("signing_algorithm"),
                             grant="client_credentials")
        return MCPServer(url, client_id=context["client_id"], client_secret=context["client_secret"],
                         grant="client_credentials")
    if "client_id" in context:  # pre-registration
        return MCPServer(url, client_id=context["client_id"], client_secret=context.get("client_secret"),
                         client_metadata_url=CIMD_URL)
    return MCPServer(url, client_metadata_url=CIMD_URL)


async def main(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    auth = MCPAuth(server_for(url, scenario, context), user="conformance", authorizer=HeadlessAuthorizer())
    async with streamablehttp_client(url, auth=auth) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        for tool in tools.tools:
            await session.call_tool(tool.name, {})
    return 0


def run(argv: list[str]) -> int:
    """The client's exit status for the server URL the suite appends to ``argv``; the suite
    reads the status, and one line on stderr says why it failed."""
    try:
        return asyncio.run(main(argv[-1]))
    except Exception as exc:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        print(f"conformance client: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run(sys.argv))
