"""MCP authorization on both sides: agents as OAuth clients of remote MCP servers, and MCP
servers as protected resources.

:class:`MCPAuth` is an ``httpx.Auth`` that gives every MCP request the current user's token
for that server, obtained the way the MCP authorization spec describes (RFC 9728 resource
metadata, RFC 8414 / OpenID discovery, pre-registration, Client ID Metadata Documents or
RFC 7591 registration, authorization code + PKCE with RFC 8707 ``resource``, step-up on
``insufficient_scope``), or client credentials for machine-to-machine servers. It plugs into
``langchain-mcp-adapters`` connections and the official ``mcp`` SDK's HTTP clients.

On the server side, :class:`MCPTokenVerifier` (the SDK's ``TokenVerifier`` over this toolkit's
``JWTVerifier``), :func:`mcp_auth_settings`, :func:`mcp_user` and :class:`ToolScopes` protect a
``FastMCP`` server: resource metadata, 401/403 challenges, the verified user in tools, and
per-tool scopes.

Modules: ``_client`` (the sans-I/O auth flow, :class:`MCPAuth`), ``_tokens`` (token stores),
``_registration`` (RFC 7591), ``_discovery`` (RFC 9728 / 8414), ``_guard`` (the integration's
entry forms: :class:`MCPGuard`, :func:`with_mcp_auth`, :class:`MCPAuthMiddleware`) and
``_server`` (the resource-server side). Each public name is imported on first use, so an MCP
client that needs only :class:`MCPAuth` loads no LangChain agent machinery.

Example:
    >>> from langchain_agent_auth.mcp import MCPAuth, MCPServer
    >>> auth = MCPAuth(MCPServer("https://mcp.example.com/mcp", client_id="agent", client_secret="s3cret-value"))
    >>> auth.server.client_id
    'agent'
"""

from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
    from langchain_agent_auth.core.errors import MCPAuthorizationRequired
    from langchain_agent_auth.mcp._client import Authorizer, HeadlessAuthorizer, MCPAuth, MCPServer
    from langchain_agent_auth.mcp._discovery import (
        BearerChallenge,
        ProtectedResourceMetadata,
        discover_authorization_server,
        discover_resource,
        parse_challenge,
    )
    from langchain_agent_auth.mcp._guard import MCPAuthMiddleware, MCPGuard, authorization_required, with_mcp_auth
    from langchain_agent_auth.mcp._server import (
        DownstreamTokens,
        MCPTokenVerifier,
        ToolScopes,
        mcp_auth_settings,
        mcp_user,
    )
    from langchain_agent_auth.mcp._tokens import MCPTokenStore, MemoryTokenStore, SealedTokenStore

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
