"""Agents as OAuth clients of remote MCP servers: :class:`MCPAuth`, an ``httpx.Auth``.

Plug one into any httpx-based MCP client (``langchain-mcp-adapters``' connections, the
official SDK's ``streamablehttp_client(url, auth=...)``). On a ``401`` it follows the MCP
authorization spec: the challenge's resource metadata (RFC 9728, checked against the
server's URL), the authorization server's metadata (RFC 8414 / OpenID discovery, with the
2025-03-26 fallbacks), a client identity (pre-registered, a Client ID Metadata Document, or
RFC 7591 dynamic registration, in that order), then authorization code + PKCE with
``resource`` (RFC 8707) — or client credentials for machine-to-machine servers. A
``403 insufficient_scope`` steps up to the union of held and required scopes; a server that
keeps refusing is given up on after ``max_authorizations`` attempts.

Tokens are per user: the key is the current user's identity
(:func:`~langchain_agent_auth.get_current_user`, what the toolkit's guards and middleware
set for each tool call) and the MCP server, so two users of one agent never share an MCP
token. When the user must sign in at the authorization server, :class:`MCPAuth` raises
:class:`~langchain_agent_auth.errors.MCPAuthorizationRequired` carrying the authorization
URL (the vault's ``connect_account`` pause shows it to the user); after the browser comes
back, :meth:`MCPAuth.complete` redeems the code. A ``HeadlessAuthorizer`` completes the
step without a person, for test and development servers that consent automatically.

The auth flow is sans-I/O (a flow of :mod:`langchain_agent_auth.core.effects`): ``httpx``
drives it as an ``httpx.Auth``, and :meth:`MCPAuth.complete` / :meth:`MCPAuth.acomplete` run
it with the core drivers. Token storage is in :mod:`~langchain_agent_auth.mcp._tokens`, RFC 7591
registration in :mod:`~langchain_agent_auth.mcp._registration`, discovery in
:mod:`~langchain_agent_auth.mcp._discovery`.

Example:
    >>> auth = MCPAuth("https://mcp.example.com/mcp", user="alice")
    >>> auth
    MCPAuth(server='https://mcp.example.com/mcp', grant='authorization_code')
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from langchain_agent_auth.core.effects import Blocking, Call, Flow, arun, run
from langchain_agent_auth.core.errors import (
    CallbackStateError,
    ConfigurationError,
    IdentityError,
    InsufficientScopeError,
    InvalidGrantError,
    MCPAuthorizationRequired,
    ProtocolError,
    oauth_error_from_response,
)
from langchain_agent_auth.core.identity import UserIdentity, get_current_user
from langchain_agent_auth.mcp._discovery import (
    BearerChallenge,
    ProtectedResourceMetadata,
    canonical_resource,
    discover_authorization_server,
    discover_resource,
    parse_challenge,
    require_secure,
    scopes_for,
)
from langchain_agent_auth.mcp._registration import pick_auth_method, register_client
from langchain_agent_auth.mcp._tokens import MCPTokenStore, MemoryTokenStore
from langchain_agent_auth.oauth._flow import RetryPolicy
from langchain_agent_auth.oauth._http import USER_AGENT
from langchain_agent_auth.oauth.client import Pkce
from langchain_agent_auth.oauth.client_auth import AuthMethod, ClientCredentials
from langchain_agent_auth.oauth.discovery import ProviderMetadata
from langchain_agent_auth.oauth.flows import FlowSettings, token_request
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = ["Authorizer", "HeadlessAuthorizer", "MCPAuth", "MCPServer"]

Grant = Literal["authorization_code", "client_credentials"]
UserSpec = UserIdentity | str | Callable[[], "UserIdentity | str | None"] | None
Step = Flow[Any]


@dataclass(frozen=True)
class MCPServer:
    """One remote MCP server and how this agent identifies itself to its authorization server.

    Args:
        url: the MCP endpoint (``https://…/mcp``; ``http`` only on a loopback host).
        client_id / client_secret / auth_method / private_key / signing_alg: a pre-registered
            client (``private_key_jwt`` with ``private_key``). Without ``client_id`` the client
            uses ``client_metadata_url`` where the server supports Client ID Metadata
            Documents, else RFC 7591 dynamic registration.
        client_metadata_url: the HTTPS URL of this agent's Client ID Metadata Document.
        redirect_uri: where the authorization server sends the user back (your app's callback).
        grant: ``authorization_code`` (per user) or ``client_credentials`` (the agent itself).
        scopes: scopes to ask for instead of the server's challenge / ``scopes_supported``.
        max_authorizations: authorization attempts per request before giving up.
    """

    url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    auth_method: AuthMethod | None = None
    private_key: Any = field(default=None, repr=False)
    signing_alg: str | None = None
    client_metadata_url: str | None = None
    client_name: str = "langchain-agent-auth"
    redirect_uri: str = "http://127.0.0.1:8976/callback"
    grant: Grant = "authorization_code"
    scopes: tuple[str, ...] | None = None
    max_authorizations: int = 3
    timeout: float = 10.0

    def __post_init__(self) -> None:
        require_secure(self.url, "MCP server")
        if self.grant not in ("authorization_code", "client_credentials"):
            raise ConfigurationError(f"grant must be 'authorization_code' or 'client_credentials', not {self.grant!r}")
        if self.grant == "client_credentials" and not self.client_id:
            raise ConfigurationError("client_credentials needs a pre-registered client_id")
        if self.client_metadata_url is not None:
            parts = urlsplit(self.client_metadata_url)
            if parts.path in ("", "/"):
                raise ConfigurationError("a Client ID Metadata Document URL needs a path")
            require_secure(self.client_metadata_url, "Client ID Metadata Document")
        if not 1 <= int(self.max_authorizations) <= 10:
            raise ConfigurationError("max_authorizations must be 1 to 10")
        if self.scopes is not None:
            object.__setattr__(self, "scopes", tuple(self.scopes))


@runtime_checkable
class Authorizer(Protocol):
    """Takes the user through the authorization URL; a flow returning the redirect URL."""

    def authorize(self, url: str, redirect_uri: str) -> Step: ...


class HeadlessAuthorizer:
    """Follows the authorization URL without a person and returns the redirect back to the
    client. Only for test and development servers that approve automatically (the MCP
    conformance suite's, or a local provider's auto-consent); a real user needs a browser.

    Example:
        >>> HeadlessAuthorizer(max_hops=3).max_hops
        3
    """

    def __init__(self, max_hops: int = 5) -> None:
        self.max_hops = max_hops

    def authorize(self, url: str, redirect_uri: str) -> Step:
        for _ in range(self.max_hops):
            response = yield httpx.Request("GET", url, headers={"user-agent": USER_AGENT})
            location = response.headers.get("location")
            if not 300 <= response.status_code < 400 or not location:
                raise ProtocolError(f"the authorization endpoint answered HTTP {response.status_code} "
                                    "without redirecting back (it needs a person: use a browser)")
            url = str(httpx.URL(url).join(location))
            if url.startswith(redirect_uri):
                return url
        raise ProtocolError("too many redirects at the authorization endpoint")


@dataclass
class _Pending:
    key: str
    verifier: str
    scopes: list[str]
    client: ClientCredentials
    issuer: str
    token_endpoint: str
    resource: str
    created: float
    shared: bool = False  # also saved in the token store (another worker may redeem it)


@dataclass
class _Discovery:
    resource: ProtectedResourceMetadata | None = None
    server: ProviderMetadata | None = None
    challenge: BearerChallenge = field(default_factory=BearerChallenge)


class MCPAuth(httpx.Auth):
    """Per-user OAuth for one MCP server (see the module docstring).

    Args:
        server: an :class:`MCPServer` or just its URL.
        user: whose tokens to use: a ``UserIdentity``, a user key, or a callable returning
            one; by default the user of the current tool call (``get_current_user()``).
            ``client_credentials`` servers need none.
        tokens: an :class:`MCPTokenStore` (default: in memory; :class:`SealedTokenStore` keeps
            them encrypted in a LangGraph store, durable and shared by workers).
        authorizer: completes the user's sign-in inline (``HeadlessAuthorizer`` for test
            servers); without one a sign-in raises :class:`MCPAuthorizationRequired`.
    """

    def __init__(self, server: MCPServer | str, *, user: UserSpec = None, tokens: MCPTokenStore | None = None,
                 authorizer: Authorizer | None = None, clock: Callable[[], float] = time.time) -> None:
        self.server = server if isinstance(server, MCPServer) else MCPServer(server)
        self.tokens: MCPTokenStore = tokens if tokens is not None else MemoryTokenStore()
        self.authorizer = authorizer
        self._user = user
        self._clock = clock
        self._settings = FlowSettings(timeout=self.server.timeout, retry=RetryPolicy(attempts=2), clock=clock)
        self._lock = threading.Lock()
        self._discovery = _Discovery()
        self._clients: dict[str, ClientCredentials] = {}
        self._pending: dict[str, _Pending] = {}

    def __repr__(self) -> str:
        return f"MCPAuth(server={self.server.url!r}, grant={self.server.grant!r})"

    def _store(self, fn: Callable[[], Any]) -> Blocking | Call:
        """A token store call as a flow step: in a worker thread under asyncio, so a database
        behind the store never blocks the event loop; inline for a store that says it does no
        I/O (``blocking = False``)."""
        if getattr(self.tokens, "blocking", True):
            return Blocking(fn)
        return Call(fn, fn)

    # ------------------------------------------------------------------ keys and users

    def _user_key(self) -> str:
        if self.server.grant == "client_credentials":
            return "client:" + (self.server.client_id or "")
        spec = self._user() if callable(self._user) else self._user
        if spec is None:
            spec = get_current_user(required=False)
        if isinstance(spec, UserIdentity):
            return spec.key
        if isinstance(spec, str) and spec:
            return spec
        raise IdentityError("no trusted user for this MCP call: run it as a guarded tool (or pass user=...)",
                            hint="This tool needs the signed-in user; none is known for this call.")

    def token_key(self, user: UserIdentity | str | None = None) -> str:
        """The store key of ``user``'s token for this server (the current user by default)."""
        owner = user.key if isinstance(user, UserIdentity) else (user or self._user_key())
        return f"{owner}|{canonical_resource(self.server.url)}"

    # ------------------------------------------------------------------ httpx.Auth

    requires_response_body = False  # see _wire

    # httpx needs a sync and an async generator. Both only do I/O: the requests go back to httpx
    # (the MCP client's own connection), every other step runs through the core drivers.

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow, reply = self._wire(request), None
        with contextlib.suppress(StopIteration):
            while True:
                step = flow.send(reply)
                reply = (yield step) if isinstance(step, httpx.Request) else run(_local(step))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow, reply = self._wire(request), None
        with contextlib.suppress(StopIteration):
            while True:
                step = flow.send(reply)
                reply = (yield step) if isinstance(step, httpx.Request) else await arun(_local(step))

    def _wire(self, request: httpx.Request) -> Step:
        """:meth:`_flow` with the bodies it looks at read: its own requests' answers and 401/403
        ones. The MCP request's own answer may be a long-lived event stream, left to the caller."""
        flow, reply = self._flow(request), None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration:
                return
            reply = yield step
            if isinstance(step, httpx.Request) and (step is not request or reply.status_code in (401, 403)):
                yield Call(reply.read, reply.aread)

    def _flow(self, request: httpx.Request) -> Step:
        key = self.token_key()
        token = yield self._store(lambda: self.tokens.get(key))
        refreshed = False
        if token is not None and token.is_expired(30.0, now=self._clock()):
            token = yield from self._refresh(key, token)
            refreshed = True
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        attempts = 0
        asked: set[str] = set()
        while response.status_code in (401, 403):
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            if response.status_code == 403 and challenge.error != "insufficient_scope":
                return  # plain forbidden: not an authorization problem the client can fix
            if response.status_code == 401 and token is not None and token.refresh_token and not refreshed:
                token, refreshed = (yield from self._refresh(key, token)), True
            else:
                if attempts >= self.server.max_authorizations:
                    raise InsufficientScopeError(
                        f"the MCP server {self.server.url} kept refusing after {attempts} authorizations",
                        hint="The MCP server refused the user's authorization; try again later.")
                yield from self._discover(challenge)
                held = list(token.scope or ()) if token is not None and response.status_code == 403 else []
                scopes = list(self.server.scopes) if self.server.scopes is not None else scopes_for(
                    challenge, self._discovery.resource, held)
                required = set(challenge.scopes)
                if response.status_code == 403 and (set(scopes) <= set(held) or (required and required <= asked)):
                    raise InsufficientScopeError(
                        f"the MCP server {self.server.url} requires scopes {challenge.scope!r} that the user's "
                        "token already carries or that the authorization server did not grant",
                        hint="The MCP server refused this call for lack of permission.")
                attempts += 1
                asked = set(scopes)
                token = yield from self._obtain(key, scopes)
            if token is None:
                return
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            response = yield request

    # ------------------------------------------------------------------ discovery

    def _discover(self, challenge: BearerChallenge) -> Step:
        if self._discovery.server is not None and not challenge.resource_metadata:
            return
        resource = yield from discover_resource(self.server.url, challenge, timeout=self.server.timeout)
        if resource is not None and resource.authorization_servers:
            issuer = resource.authorization_servers[0]
            server = yield from discover_authorization_server(issuer, timeout=self.server.timeout)
        else:  # a 2025-03-26 server: the authorization server is the MCP server's origin
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.server.url))
            server = yield from discover_authorization_server(origin, legacy_fallback=True,
                                                              timeout=self.server.timeout)
        with self._lock:
            self._discovery = _Discovery(resource=resource, server=server, challenge=challenge)

    def _resource(self) -> str:
        meta = self._discovery.resource
        return canonical_resource(meta.resource if meta is not None else self.server.url)

    # ------------------------------------------------------------------ client identity

    def _client(self, server: ProviderMetadata) -> Step:
        cfg = self.server
        supported = list(server.token_endpoint_auth_methods_supported or ["client_secret_basic"])
        if cfg.client_id:
            method = cfg.auth_method or ("private_key_jwt" if cfg.private_key is not None else
                                         pick_auth_method(supported, bool(cfg.client_secret)))
            return ClientCredentials(cfg.client_id, cfg.client_secret, method, private_key=cfg.private_key,
                                     signing_alg=cfg.signing_alg, assertion_audience=server.issuer)
        with self._lock:
            known = self._clients.get(server.issuer)
        if known is not None:
            return known
        extra = server.model_extra or {}
        if cfg.client_metadata_url and extra.get("client_id_metadata_document_supported") is True:
            creds = ClientCredentials(cfg.client_metadata_url, auth_method="none")
        elif isinstance(extra.get("registration_endpoint"), str):
            creds = yield from register_client(extra["registration_endpoint"], client_name=cfg.client_name,
                                               redirect_uri=cfg.redirect_uri, supported=supported,
                                               policy=self._settings.retry)
        else:
            raise ConfigurationError(
                f"the authorization server {server.issuer} offers no dynamic registration and no Client ID "
                "Metadata Documents: register a client there and pass MCPServer(client_id=...)")
        with self._lock:
            self._clients[server.issuer] = creds
        return creds

    # ------------------------------------------------------------------ tokens

    def _obtain(self, key: str, scopes: list[str]) -> Step:
        server = self._discovery.server
        assert server is not None
        client = yield from self._client(server)
        token_endpoint = server.require("token_endpoint")
        params: dict[str, Any] = {"resource": self._resource(), "scope": " ".join(scopes) or None}
        if self.server.grant == "client_credentials":
            token = yield from token_request(token_endpoint, client, {"grant_type": "client_credentials", **params},
                                             idempotent=True, settings=self._settings, audience=server.issuer)
        else:
            pkce = Pkce.generate()
            state = secrets.token_urlsafe(24)
            query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": self.server.redirect_uri,
                     "code_challenge": pkce.challenge, "code_challenge_method": "S256", "state": state, **params}
            endpoint = server.require("authorization_endpoint")
            url = endpoint + ("&" if "?" in endpoint else "?") + urlencode({k: v for k, v in query.items() if v})
            pending = _Pending(key, pkce.verifier, scopes, client, server.issuer, token_endpoint, self._resource(),
                               self._clock())
            if self.authorizer is None:
                with self._lock:
                    self._pending[state] = pending
                if hasattr(self.tokens, "save_pending") and client.private_key is None:
                    pending.shared = True
                    data = {"key": key, "verifier": pkce.verifier, "scopes": scopes, "client_id": client.client_id,
                            "client_secret": client.client_secret, "auth_method": client.auth_method,
                            "issuer": server.issuer, "token_endpoint": token_endpoint,
                            "resource": self._resource(), "created": pending.created}
                    yield self._store(lambda: self.tokens.save_pending(state, data))  # type: ignore[attr-defined]
                raise MCPAuthorizationRequired(
                    f"the user must authorize access to the MCP server {self.server.url}",
                    connection=self.server.url, status="not_connected", missing_scopes=tuple(scopes),
                    authorize_url=url)
            callback = yield from self.authorizer.authorize(url, self.server.redirect_uri)
            token = yield from self._redeem(pending, callback, state)
        if token.scope is None:
            token = dataclasses.replace(token, scope=tuple(scopes) or None)
        yield self._store(lambda: self.tokens.put(key, token))
        return token

    def _redeem(self, pending: _Pending, callback: str, state: str) -> Step:
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        if query.get("state") != state:
            raise CallbackStateError("the authorization response's state does not match the request")
        if "iss" in query and query["iss"].rstrip("/") != pending.issuer.rstrip("/"):
            raise CallbackStateError("the authorization response comes from another issuer (RFC 9207)")
        if "error" in query:
            raise oauth_error_from_response(query, status_code=400)
        code = query.get("code")
        if not code:
            raise ProtocolError("the authorization response carries no code")
        token = yield from token_request(
            pending.token_endpoint, pending.client,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.server.redirect_uri,
             "code_verifier": pending.verifier, "resource": pending.resource},
            idempotent=False, settings=self._settings, audience=pending.issuer)
        return token

    def _refresh(self, key: str, token: TokenResponse) -> Step:
        if not token.refresh_token:
            yield self._store(lambda: self.tokens.delete(key))
            return None
        if self._discovery.server is None:
            yield from self._discover(BearerChallenge())
        server = self._discovery.server
        assert server is not None
        client = yield from self._client(server)
        try:
            fresh = yield from token_request(
                server.require("token_endpoint"), client,
                {"grant_type": "refresh_token", "refresh_token": token.refresh_token, "resource": self._resource()},
                idempotent=False, settings=self._settings, audience=server.issuer)
        except InvalidGrantError:
            yield self._store(lambda: self.tokens.delete(key))
            return None
        if fresh.refresh_token is None or fresh.scope is None:
            fresh = dataclasses.replace(fresh, refresh_token=fresh.refresh_token or token.refresh_token,
                                        scope=fresh.scope or token.scope)
        yield self._store(lambda: self.tokens.put(key, fresh))
        return fresh

    # ------------------------------------------------------------------ after the browser

    def complete(self, callback_url: str, *, client: httpx.Client | None = None) -> TokenResponse:
        """Redeem the code the authorization server sent to ``redirect_uri`` (the URL the
        browser came back with) and store the user's token. Raises
        :class:`CallbackStateError` for an unknown, replayed or expired ``state``."""
        own = client is None
        http = client or httpx.Client(timeout=self.server.timeout)
        try:
            return run(self._complete(callback_url), http=http)
        finally:
            if own:
                http.close()

    async def acomplete(self, callback_url: str, *, client: httpx.AsyncClient | None = None) -> TokenResponse:
        """Async :meth:`complete`."""
        own = client is None
        http = client or httpx.AsyncClient(timeout=self.server.timeout)
        try:
            return await arun(self._complete(callback_url), http=http)
        finally:
            if own:
                await http.aclose()

    def _complete(self, callback_url: str) -> Step:
        state = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}.get("state", "")
        with self._lock:
            pending = self._pending.pop(state, None)
        if hasattr(self.tokens, "take_pending") and (pending is None or pending.shared):
            # the shared copy decides: once, in any worker
            data = yield self._store(lambda: self.tokens.take_pending(state))  # type: ignore[attr-defined]
            if data is None:
                pending = None
            elif pending is None:
                pending = _Pending(data["key"], data["verifier"], list(data["scopes"]),
                                   ClientCredentials(data["client_id"], data.get("client_secret"), data["auth_method"],
                                                     assertion_audience=data["issuer"]),
                                   data["issuer"], data["token_endpoint"], data["resource"], float(data["created"]))
        if pending is None or self._clock() - pending.created > 600:
            raise CallbackStateError("unknown, replayed or expired authorization state")
        token = yield from self._redeem(pending, callback_url, state)
        if token.scope is None:
            token = dataclasses.replace(token, scope=tuple(pending.scopes) or None)
        yield self._store(lambda: self.tokens.put(pending.key, token))
        return token

    def forget(self, user: UserIdentity | str | None = None) -> None:
        """Drop ``user``'s token for this server (the current user by default)."""
        self.tokens.delete(self.token_key(user))


def _local(step: Any) -> Step:
    """One local step (a sleep, a token store call) as a flow of its own, for the core drivers."""
    return (yield step)
