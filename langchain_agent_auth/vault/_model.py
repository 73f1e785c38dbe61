"""Declarations and result types of the vault: connections, tokens, statuses.

Nothing here does I/O. Tokens live in :class:`AccessToken`, whose ``repr()`` and ``str()``
never show the token itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_agent_auth.core.errors import ConfigurationError
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.oauth import AuthMethod, ClientCredentials, OAuthClient, ProviderMetadata

__all__ = [
    "AccessToken",
    "ConnectRequest",
    "ConnectResult",
    "Connection",
    "ConnectionInfo",
    "CredentialStatus",
    "PendingConnect",
    "RevokeResult",
    "SourceKind",
    "Status",
    "normalize_scopes",
]

#: A registered source kind: ``"oauth"``, ``"token_exchange"``, ``"auth0_token_vault"`` or one
#: added with :func:`~langchain_agent_auth.vault.register_source`.
SourceKind = str
#: WorkOS-style result of "can this user use this connection with these scopes?".
Status = Literal["active", "not_connected", "needs_reauthorization", "missing_scopes"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$")
_MAX_SCOPES = 100
_SUBJECT_TYPES = ("access_token", "refresh_token", "id_token", "jwt")


#: Who a vault call is for: the identity, or its key (``issuer|tenant|subject``).
UserLike = UserIdentity | str


def user_key_of(user: UserLike) -> str:
    """The store and cache key of ``user`` (``TypeError`` for anything else)."""
    if isinstance(user, UserIdentity):
        return user.key
    if isinstance(user, str) and user:
        return user
    raise TypeError("user must be a UserIdentity (or a user key string)")


def normalize_scopes(scopes: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate scopes (RFC 6749 §3.3) and return them sorted and de-duplicated.

    A string is split on spaces. Quotes, backslashes, control and non-ASCII characters
    are refused with a :class:`ConfigurationError` naming the bad scope.

    Example:
        >>> normalize_scopes("calendar.write calendar.read calendar.read")
        ('calendar.read', 'calendar.write')
        >>> normalize_scopes(["https://www.googleapis.com/auth/calendar"])
        ('https://www.googleapis.com/auth/calendar',)
        >>> normalize_scopes(['bad"scope'])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langchain_agent_auth.errors.ConfigurationError: invalid scope 'bad"scope': scopes are printable ASCII...
    """
    if scopes is None:
        return ()
    items = scopes.split(" ") if isinstance(scopes, str) else list(scopes)
    out: set[str] = set()
    for scope in items:
        if isinstance(scopes, str) and scope == "":
            continue
        if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
            shown = repr(scope)[:80]
            raise ConfigurationError(
                f"invalid scope {shown}: scopes are printable ASCII without spaces, '\"' or '\\' "
                "(RFC 6749 section 3.3)"
            )
        out.add(scope)
    if len(out) > _MAX_SCOPES:
        raise ConfigurationError(f"too many scopes ({len(out)} > {_MAX_SCOPES})")
    return tuple(sorted(out))


@dataclass(frozen=True)
class Connection:
    """An upstream API account the agent may use for a user, declared once.

    Args:
        name: how tools and the store refer to it (letters, digits, ``_ . : -``).
        source: where credentials come from: ``"oauth"`` (the user connects an account with
            authorization code + PKCE; tokens stored encrypted and refreshed),
            ``"token_exchange"`` (RFC 8693 with the user's token at the main issuer),
            ``"auth0_token_vault"`` (Auth0's federated-connection exchange), or a kind added
            with :func:`~langchain_agent_auth.vault.register_source`.
        issuer: the authorization server, found by discovery (or give ``metadata``).
        metadata: explicit authorization server metadata (``token_endpoint``,
            ``authorization_endpoint``, ``revocation_endpoint``...); skips discovery.
        client_id / client_secret / auth_method / private_key: the agent's client there.
        scopes: scopes asked for when connecting (tools may ask for more).
        redirect_uri: where the provider sends the user back (the vault's callback route);
            required for ``"oauth"``.
        authorize_params: extra authorization request parameters (``access_type=offline``,
            ``prompt=consent``...).
        audience / resource: the target of a token exchange (RFC 8693 / RFC 8707).
        subject_token_type: what the user's credential is (``access_token``,
            ``refresh_token``, ``id_token``, ``jwt``).
        subject_token: ``f(user, context) -> str | None`` supplying that credential; by
            default it is read from the LangGraph runtime context (``subject_token`` key or
            attribute), which LangGraph never checkpoints.
        actor_token / actor_token_type: ``f(user, context) -> str | None`` for the RFC 8693
            actor (the agent's own token) when the server wants one for ``act``.
        requested_token_type: RFC 8693 ``requested_token_type``.
        auth0_connection: the Auth0 connection name (``google-oauth2``...); default ``name``.
        login_hint: Auth0's ``login_hint`` to pick one of several linked accounts: a string
            or ``f(user, context) -> str | None``.
        timeout: seconds per HTTP request to this provider.

    Example:
        >>> c = Connection("calendar", issuer="https://upstream.example", client_id="agent",
        ...                client_secret="s3cret-value", scopes=["calendar.read"],
        ...                redirect_uri="http://127.0.0.1:8765/callback")
        >>> c.name, c.scopes, "s3cret" in repr(c)
        ('calendar', ('calendar.read',), False)
    """

    name: str
    source: SourceKind = "oauth"
    issuer: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    auth_method: AuthMethod = "client_secret_basic"
    private_key: Any = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    redirect_uri: str | None = None
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    audience: str | None = None
    resource: str | tuple[str, ...] | None = None
    subject_token_type: Literal["access_token", "refresh_token", "id_token", "jwt"] = "access_token"
    subject_token: Callable[[Any, Any], str | None] | None = field(default=None, repr=False)
    actor_token: Callable[[Any, Any], str | None] | None = field(default=None, repr=False)
    actor_token_type: str | None = None
    requested_token_type: str | None = None
    auth0_connection: str | None = None
    login_hint: str | Callable[[Any, Any], str | None] | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        where = f"connection {self.name!r}"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError(
                f"invalid connection name {self.name!r}: use 1-64 letters, digits, '_', '.', ':' or '-'"
            )
        from langchain_agent_auth.vault._sources import source_factory  # the registry needs this module

        if not isinstance(self.source, str):
            raise ConfigurationError(f"{where}: unknown source {self.source!r}")
        try:
            source_factory(self.source)
        except ConfigurationError:
            raise ConfigurationError(f"{where}: unknown source {self.source!r}") from None
        object.__setattr__(self, "scopes", normalize_scopes(self.scopes))
        meta = dict(self.metadata) if self.metadata is not None else None
        issuer = self.issuer or (meta or {}).get("issuer")
        if not issuer:
            raise ConfigurationError(f"{where}: give issuer= (discovery) or metadata= with an issuer")
        if meta is not None:
            meta.setdefault("issuer", issuer)
            try:
                ProviderMetadata.model_validate(meta)
            except Exception:
                raise ConfigurationError(f"{where}: metadata is not valid provider metadata") from None
            object.__setattr__(self, "metadata", meta)
        object.__setattr__(self, "issuer", issuer)
        if not self.client_id:
            raise ConfigurationError(f"{where}: client_id is required")
        try:
            ClientCredentials(self.client_id, self.client_secret, auth_method=self.auth_method,
                              private_key=self.private_key)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
        if self.subject_token_type not in _SUBJECT_TYPES:
            raise ConfigurationError(f"{where}: subject_token_type must be one of {_SUBJECT_TYPES}")
        problem = getattr(source_factory(self.source), "check_connection", lambda c: None)(self)
        if problem:  # what this connection's source needs of it (a redirect_uri...)
            raise ConfigurationError(f"{where}: {problem}")
        if isinstance(self.resource, list):
            object.__setattr__(self, "resource", tuple(self.resource))
        if not (0 < float(self.timeout) <= 300):
            raise ConfigurationError(f"{where}: timeout must be in (0, 300] seconds")
        object.__setattr__(self, "authorize_params", {str(k): str(v) for k, v in self.authorize_params.items()})

    def oauth_client(self) -> OAuthClient:
        """An :class:`OAuthClient` for this connection's authorization server."""
        return OAuthClient(
            str(self.issuer), self.client_id, self.client_secret, auth_method=self.auth_method,
            private_key=self.private_key, metadata=self.metadata, timeout=self.timeout,
        )


@dataclass(frozen=True, repr=False)
class AccessToken:
    """An upstream access token handed to a tool. ``repr()``/``str()`` hide the token.

    Example:
        >>> t = AccessToken("ya29.secret", connection="calendar", scopes=("calendar.read",))
        >>> t.authorization, "ya29" in repr(t)
        ('Bearer ya29.secret', False)
    """

    token: str
    connection: str
    scopes: tuple[str, ...] = ()
    expires_at: float | None = None
    token_type: str = "Bearer"

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        kind = "Bearer" if self.token_type.lower() == "bearer" else self.token_type
        return f"{kind} {self.token}"

    def __repr__(self) -> str:
        return (f"AccessToken(token=[redacted], connection={self.connection!r}, scopes={self.scopes!r}, "
                f"expires_at={self.expires_at!r})")

    __str__ = __repr__


@dataclass(frozen=True)
class CredentialStatus:
    """Whether a user can use a connection with some scopes (WorkOS's result model).

    ``status`` is ``active``, ``not_connected``, ``needs_reauthorization`` or
    ``missing_scopes`` (then ``missing_scopes`` says which).

    Example:
        >>> CredentialStatus("calendar", "missing_scopes", ("calendar.read",), ("calendar.write",)).ok
        False
    """

    connection: str
    status: Status
    scopes: tuple[str, ...] = ()
    missing_scopes: tuple[str, ...] = ()
    expires_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class ConnectionInfo:
    """One of a user's connections as listed by :meth:`TokenVault.connections` (no secrets).

    ``status``: ``active``, ``expired`` (access token expired, refresh token present),
    ``needs_reauthorization``, ``not_connected``, ``unreadable`` (cannot be decrypted) or
    ``external`` (credentials obtained by exchange, nothing stored).
    """

    name: str
    source: str
    status: str
    scopes: tuple[str, ...] = ()
    expires_at: float | None = None
    connected_at: float | None = None
    updated_at: float | None = None
    has_refresh_token: bool = False
    key_id: str | None = None
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "status": self.status, "scopes": list(self.scopes),
            "expires_at": self.expires_at, "connected_at": self.connected_at, "updated_at": self.updated_at,
            "has_refresh_token": self.has_refresh_token, "key_id": self.key_id, "user": self.user,
        }


@dataclass(frozen=True)
class ConnectRequest:
    """A started connect-account flow: send the user to ``authorize_url``."""

    id: str
    connection: str
    scopes: tuple[str, ...]
    authorize_url: str = field(repr=False)
    expires_at: float


@dataclass(frozen=True)
class ConnectResult:
    """A finished connect-account flow (what the callback learned)."""

    id: str
    user: str
    connection: str
    scopes: tuple[str, ...]
    missing_scopes: tuple[str, ...] = ()
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class PendingConnect:
    """A connect-account flow as the store holds it (for resumers and UIs; no secrets).

    ``status``: ``pending``, ``redeeming`` (the code is being redeemed), ``completed``,
    ``failed`` or ``expired``; ``resumed`` / ``abandoned`` / ``next_check_at`` record what a
    resumer did with a finished flow; ``identity`` (subject, issuer, tenant) is who to
    resume the thread as.
    """

    id: str
    user: str
    connection: str
    scopes: tuple[str, ...]
    status: str
    created_at: float
    expires_at: float
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    tool_call_id: str | None = None
    completed_at: float | None = None
    error: str | None = None
    resumed: bool = False
    abandoned: bool = False
    next_check_at: float = 0.0
    identity: dict[str, Any] | None = None


@dataclass(frozen=True)
class RevokeResult:
    """What :meth:`TokenVault.revoke` did."""

    connection: str
    deleted: bool
    upstream_revoked: bool
    error: str | None = None
