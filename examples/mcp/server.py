"""A notes MCP server protected by the toolkit: only verified users, each sees their own notes.

Built with the official ``mcp`` SDK (FastMCP, streamable HTTP). The toolkit verifies each
request's bearer token (signature through the provider's JWKS, issuer, audience = this
server's URL), serves the RFC 9728 protected resource metadata, answers ``401`` / ``403
insufficient_scope`` so MCP clients know where and how to sign in, gives each tool the
verified user (``mcp_user()``), and demands ``notes:write`` for ``add_note`` only.

    agent-auth dev --port 9400 &
    python examples/mcp/server.py --issuer http://127.0.0.1:9400 --port 8765

(``agent.py`` next to this file starts both in-process: ``python examples/mcp/agent.py``.)
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from typing import Any

from mcp.server.fastmcp import FastMCP

from langchain_agent_auth.mcp import MCPTokenVerifier, ToolScopes, mcp_auth_settings, mcp_user
from langchain_agent_auth.oauth import JWTVerifier

SCOPES = "notes:read notes:write"


def build_app(issuer: str, port: int) -> Any:
    """The server's ASGI app: FastMCP behind the toolkit's token verifier and per-tool scopes."""
    url = f"http://127.0.0.1:{port}/mcp"
    # The SDK logs a client closing its event stream (the end of every session) as an error.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.CRITICAL)
    verifier = MCPTokenVerifier(JWTVerifier(issuer, audience=url))
    server = FastMCP("notes", token_verifier=verifier, host="127.0.0.1", port=port, log_level="WARNING",
                     auth=mcp_auth_settings(issuer, url, scopes=["notes:read"]))
    notes: dict[str, list[str]] = defaultdict(list)

    @server.tool()
    def list_notes() -> str:
        """The signed-in user's notes."""
        user = mcp_user()
        return f"{user.subject}'s notes: " + (", ".join(notes[user.key]) or "none yet")

    @server.tool()
    def add_note(text: str) -> str:
        """Add a note for the signed-in user (needs notes:write)."""
        user = mcp_user()
        notes[user.key].append(text)
        return f"added {text!r} to {user.subject}'s notes"

    return ToolScopes(server.streamable_http_app(), verifier, {"add_note": ["notes:write"]},
                      resource_metadata_url=f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issuer", required=True, help="the OpenID provider (e.g. agent-auth dev's URL)")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(build_app(args.issuer, args.port), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
