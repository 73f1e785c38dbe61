"""MCP servers as protected resources: verify the caller's token, know the user, demand scopes.

For servers built with the official ``mcp`` SDK (``FastMCP``, streamable HTTP):

* :class:`MCPTokenVerifier` is the SDK's ``TokenVerifier`` backed by this toolkit's
  :class:`~langchain_agent_auth.oauth.JWTVerifier` (signature through the issuer's JWKS,
  ``iss``, ``aud`` = this server's resource, expiry, RFC 9068 ``typ``). With
  :func:`mcp_auth_settings` the SDK then serves the RFC 9728 protected resource metadata,
  answers ``401`` with ``WWW-Authenticate: Bearer resource_metadata=…`` and ``403
  insufficient_scope`` for the server-wide scopes.
* :func:`mcp_user` gives an MCP tool the verified :class:`~langchain_agent_auth.UserIdentity`
  (claims only, never the token), so tools can check fga relations for that user.
* :class:`DownstreamTokens` gives a tool a token for an API it calls on the user's behalf:
  the caller's token is exchanged (RFC 8693) at the authorization server, which names this
  MCP server in the new token's ``act`` claim (delegation, not impersonation).
* :class:`ToolScopes` (ASGI) demands scopes per tool: a ``tools/call`` of a listed tool
  whose token lacks them gets ``403`` with ``error="insufficient_scope"`` and the scopes to
  ask for, which MCP clients (:class:`~langchain_agent_auth.mcp.MCPAuth` among them) turn
  into a step-up.

Example:
    >>> from langchain_agent_auth.oauth import JWTVerifier
    >>> verifier = MCPTokenVerifier(JWTVerifier("https://idp.example", audience="https://files.example/mcp"))
    >>> settings = mcp_auth_settings("https://idp.example", "https://files.example/mcp", scopes=["files:read"])
    >>> str(settings.resource_server_url), settings.required_scopes
    ('https://files.example/mcp', ['files:read'])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import ConfigurationError, IdentityError, TokenValidationError
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.mcp._discovery import require_secure
from langchain_agent_auth.oauth.jwt import JWTVerifier

__all__ = ["DownstreamTokens", "MCPTokenVerifier", "ToolScopes", "mcp_auth_settings", "mcp_user"]

log = logging.getLogger(__name__)
_MCP_HINT = "install the MCP extra: pip install 'langchain-agent-auth[mcp]'"
MAX_BODY = 4 * 1024 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _sdk() -> Any:
    try:
        from mcp.server.auth import provider
    except ImportError:
        raise ConfigurationError(f"the official MCP SDK is not installed: {_MCP_HINT}") from None
    return provider


class MCPTokenVerifier:
    """The MCP SDK's ``TokenVerifier`` over a :class:`JWTVerifier` whose ``audience`` is this
    server's resource. An invalid token is ``None`` (the SDK answers 401), never an exception.

    Example:
        >>> from langchain_agent_auth.oauth import JWTVerifier
        >>> MCPTokenVerifier(JWTVerifier("https://idp.example", audience="https://files.example/mcp")).resource
        'https://files.example/mcp'
    """

    def __init__(self, verifier: JWTVerifier, *, resource: str | None = None) -> None:
        audience = getattr(verifier, "audience", None)
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if not audiences:
            raise ConfigurationError("the JWTVerifier of an MCP server needs audience= (the server's resource URL)")
        self.verifier = verifier
        self.resource = resource or audiences[0]

    async def verify_token(self, token: str) -> Any:
        provider = _sdk()
        try:
            claims = await self.verifier.averify(token)
        except TokenValidationError as exc:
            log.info("MCP request refused: %s", exc)
            return None
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else list(claims.get("scp") or [])
        client_id = claims.get("client_id") or claims.get("azp") or ""
        return provider.AccessToken(
            token=token, client_id=str(client_id), scopes=[str(s) for s in scopes],
            expires_at=int(claims["exp"]) if isinstance(claims.get("exp"), int | float) else None,
            resource=self.resource, subject=str(claims.get("sub") or "") or None, claims=dict(claims),
        )


def mcp_auth_settings(issuer: str, resource: str, *, scopes: Sequence[str] | None = None) -> Any:
    """``AuthSettings`` for ``FastMCP(auth=..., token_verifier=MCPTokenVerifier(...))``: the
    authorization server, this server's resource URL and the scopes every call needs."""
    require_secure(resource, "MCP server")
    try:
        from mcp.server.auth.settings import AuthSettings
    except ImportError:
        raise ConfigurationError(f"the official MCP SDK is not installed: {_MCP_HINT}") from None
    return AuthSettings(issuer_url=issuer, resource_server_url=resource,
                        required_scopes=list(scopes) if scopes else None, validate_token_resource=True)


def mcp_user(*, required: bool = True) -> UserIdentity | None:
    """The verified user of the current MCP request (inside a tool of a protected server).

    Raises :class:`~langchain_agent_auth.errors.IdentityError` when the request carried no
    verified token and ``required`` is true. The identity holds claims, never the token.

    Example:
        >>> mcp_user(required=False) is None   # outside an MCP request
        True
    """
    try:
        from mcp.server.auth.middleware.auth_context import get_access_token
    except ImportError:
        raise ConfigurationError(f"the official MCP SDK is not installed: {_MCP_HINT}") from None
    access = get_access_token()
    claims = getattr(access, "claims", None) if access is not None else None
    if not claims or not claims.get("sub"):
        if required:
            raise IdentityError("this MCP request carries no verified user (is the server protected?)")
        return None
    return UserIdentity.from_claims(claims)


class ToolScopes:
    """ASGI middleware: per-tool scope requirements for ``tools/call`` (RFC 6750 §3.1 step-up).

    Args:
        app: the MCP server's ASGI app (``FastMCP.streamable_http_app()``).
        verifier: the same :class:`MCPTokenVerifier` the server uses.
        scopes: ``{tool name: [scopes]}``.
        resource_metadata_url: this server's RFC 9728 metadata URL, named in the challenge.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], verifier: MCPTokenVerifier,
                 scopes: Mapping[str, Sequence[str]], *, resource_metadata_url: str) -> None:
        self.app, self.verifier = app, verifier
        self.scopes = {name: tuple(values) for name, values in scopes.items()}
        self.resource_metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not self.scopes:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > MAX_BODY:
                await _answer(send, 413, {"error": "invalid_request", "error_description": "body too large"})
                return
        needed = self._needed(body)
        if needed:
            token = _bearer(scope)
            access = await self.verifier.verify_token(token) if token else None
            held = set(access.scopes) if access is not None else set()
            if access is not None and not set(needed) <= held:
                wanted = " ".join(dict.fromkeys([*sorted(held), *needed]))
                challenge = (f'Bearer error="insufficient_scope", scope="{wanted}", '
                             f'resource_metadata="{self.resource_metadata_url}"')
                await _answer(send, 403, {"error": "insufficient_scope",
                                          "error_description": f"this tool needs {' '.join(needed)}"},
                              [(b"www-authenticate", challenge.encode())])
                return
        sent = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _needed(self, body: bytes) -> tuple[str, ...]:
        try:
            data = json.loads(body) if body else None
        except (ValueError, RecursionError):
            return ()
        calls = data if isinstance(data, list) else [data]
        needed: list[str] = []
        for call in calls:
            if isinstance(call, dict) and call.get("method") == "tools/call":
                params = call.get("params")
                name = params.get("name") if isinstance(params, dict) else None
                if isinstance(name, str):
                    needed.extend(self.scopes.get(name, ()))
        return tuple(dict.fromkeys(needed))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
    return None


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


class DownstreamTokens:
    """Tokens for an API an MCP tool calls on the user's behalf, by RFC 8693 token exchange.

    The subject token is the verified bearer token of the current MCP request; the MCP server
    authenticates as its own client (``client``: an :class:`~langchain_agent_auth.oauth.OAuthClient`
    registered at the authorization server with permission to exchange the agent's tokens), and
    the authorization server issues a token for ``audience`` / ``resource`` whose ``act`` claim
    names this server. Tokens are cached per user and scopes until shortly before they expire;
    they never leave the tool (never in a tool result).

    Example:
        >>> from langchain_agent_auth.oauth import OAuthClient
        >>> downstream = DownstreamTokens(OAuthClient("https://idp.example", "notes-mcp", "s3cret-value"),
        ...                               resource="https://files.example", scopes=["files:read"])
        >>> downstream.resource
        'https://files.example'
    """

    def __init__(self, client: Any, *, audience: str | None = None, resource: str | None = None,
                 scopes: Sequence[str] = (), leeway: float = 30.0) -> None:
        if not audience and not resource:
            raise ConfigurationError("DownstreamTokens needs the downstream API's audience= or resource=")
        self.client, self.audience, self.resource = client, audience, resource
        self.scopes = tuple(scopes)
        self.leeway = leeway
        self._cache: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _subject(self) -> tuple[str, str]:
        try:
            from mcp.server.auth.middleware.auth_context import get_access_token
        except ImportError:
            raise ConfigurationError(f"the official MCP SDK is not installed: {_MCP_HINT}") from None
        access = get_access_token()
        user = mcp_user()
        if access is None or user is None:
            raise IdentityError("no verified caller for this MCP request: nothing to exchange")
        return access.token, user.key

    def _cached(self, key: tuple[str, tuple[str, ...]]) -> Any:
        token = self._cache.get(key)
        return token if token is not None and not token.is_expired(self.leeway) else None

    def _kwargs(self, scopes: Sequence[str] | None) -> dict[str, Any]:
        return {"audience": self.audience, "resource": self.resource, "scope": list(scopes or self.scopes) or None}

    def _token(self, scopes: Sequence[str] | None) -> Flow[Any]:
        """The cached token of the current user, else one exchanged for it (one flow for both
        drivers: the exchange is the client's ``token_exchange`` / ``atoken_exchange``)."""
        subject, user = self._subject()
        key = (user, tuple(scopes or self.scopes))
        token = self._cached(key)
        if token is None:
            kwargs = self._kwargs(scopes)
            token = yield Call(lambda: self.client.token_exchange(subject, **kwargs),
                               lambda: self.client.atoken_exchange(subject, **kwargs))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = token
        return token

    def get(self, scopes: Sequence[str] | None = None) -> Any:
        """The downstream token (a ``TokenResponse``) for the current MCP request's user."""
        return run(self._token(scopes))

    async def aget(self, scopes: Sequence[str] | None = None) -> Any:
        """Async :meth:`get`."""
        return await arun(self._token(scopes))
