"""Where upstream credentials come from: one interface, three built-in sources, a registry.

* :class:`LocalOAuthSource`: tokens the user granted through the connect flow (authorization
  code + PKCE), stored encrypted, refreshed at the upstream's token endpoint (rotating
  refresh tokens handled under a lease).
* :class:`TokenExchangeSource`: RFC 8693 at any authorization server, the user's token at
  the main issuer as ``subject_token``; nothing is stored.
* :class:`Auth0TokenVaultSource`: Auth0's federated-connection exchange with exactly
  Auth0's parameters (``login_hint`` picks one of several linked accounts).

Each source turns a :class:`TokenQuery` into an :class:`AccessToken`, or raises
:class:`~langchain_agent_auth.errors.CredentialUnavailableError` with the status the
integrations turn into a ``connect_account`` pause. Sources are flows of the effect
runtime (:mod:`langchain_agent_auth.core.effects`): the same code serves sync and async
callers. What differs between sources (status, reject, revoke, whether they store anything)
is a method of the source, so the vault never asks which kind it holds; new kinds plug in
with :func:`register_source`.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_agent_auth.core.audit._emit import emit_audit
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.effects import Flow, store_get, store_put
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    ConfigurationError,
    CredentialUnavailableError,
    IdentityError,
    InvalidGrantError,
    InvalidScopeError,
    OAuthError,
    VaultDecryptionError,
    VaultRecordError,
)
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.oauth import (
    TOKEN_TYPE_ACCESS,
    TOKEN_TYPE_ID,
    TOKEN_TYPE_JWT,
    TOKEN_TYPE_REFRESH,
    OAuthClient,
    Sleep,
    TokenResponse,
)
from langchain_agent_auth.oauth.profiles import AUTH0_TOKEN_VAULT
from langchain_agent_auth.vault._lease import Lease
from langchain_agent_auth.vault._model import AccessToken, Connection, CredentialStatus, RevokeResult
from langchain_agent_auth.vault._records import TokenRecord, user_ns

__all__ = [
    "Auth0TokenVaultSource",
    "CredentialSource",
    "LocalOAuthSource",
    "SourceFactory",
    "TokenExchangeSource",
    "TokenQuery",
    "context_value",
    "register_source",
    "source_factory",
    "source_kinds",
]

log = logging.getLogger("langchain_agent_auth.vault")

# A stored credential nobody can use until the user connects again.
_UNREADABLE = (VaultDecryptionError, VaultRecordError)

_TOKEN_TYPES = {
    "access_token": TOKEN_TYPE_ACCESS,
    "refresh_token": TOKEN_TYPE_REFRESH,
    "id_token": TOKEN_TYPE_ID,
    "jwt": TOKEN_TYPE_JWT,
}


@dataclass(frozen=True, repr=False)
class TokenQuery:
    """One request for a token: who, which scopes, and what the caller knows."""

    user: UserIdentity | str
    scopes: tuple[str, ...]
    context: Any = None
    subject_token: str | None = None
    login_hint: str | None = None
    #: An access token the upstream just refused (HTTP 401): never return it again.
    rejected: str | None = None

    @property
    def user_key(self) -> str:
        return self.user if isinstance(self.user, str) else self.user.key

    def __repr__(self) -> str:
        return f"TokenQuery(user={self.user_key!r}, scopes={self.scopes!r})"


@dataclass
class SourceEnv:
    """What sources share with the vault: encryption, leases, time, policy."""

    keyring: Keyring
    lease: Lease | None
    clock: Callable[[], float]
    leeway: float = 60.0
    lease_ttl: float = 15.0


def context_value(context: Any, name: str) -> Any:
    """``context[name]`` or ``context.name`` (runtime contexts are dicts or dataclasses)."""
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None)


def unavailable(connection: str, status: str, scopes: tuple[str, ...] = (),
                detail: str = "") -> CredentialUnavailableError:
    """The typed "no usable credential" error, with a short message for the model."""
    if status == "not_connected":
        message = f"no {connection} account is connected for this user"
        hint = f"The user has not connected their {connection} account yet."
    elif status == "missing_scopes":
        message = f"the {connection} connection lacks scopes: {' '.join(scopes)}"
        hint = f"The user's {connection} account does not grant: {', '.join(scopes)}."
    else:
        message = f"the {connection} connection needs reauthorization" + (f" ({detail})" if detail else "")
        hint = f"The user's {connection} account must be reconnected."
    return CredentialUnavailableError(message, connection=connection, status=status, missing_scopes=scopes, hint=hint)


class CredentialSource(ABC):
    """Produces access tokens for one connection."""

    kind: ClassVar[str]
    #: Whether this source keeps records in the store (and so has connect / revoke / list).
    stores_credentials: ClassVar[bool] = False

    def __init__(self, connection: Connection, env: SourceEnv, client: OAuthClient | None = None) -> None:
        self.connection = connection
        self.env = env
        self.client = client or connection.oauth_client()

    @classmethod
    def check_connection(cls, connection: Connection) -> str | None:
        """What is wrong with ``connection`` for this source (``None``: nothing); checked
        when the :class:`Connection` is declared."""
        return None

    def variant(self, query: TokenQuery) -> str:
        """Extra cache-key part when one user may hold several tokens for these scopes."""
        return ""

    def login_hint(self, user: Any, context: Any) -> str | None:
        return None

    @abstractmethod
    def token_op(self, query: TokenQuery) -> Flow[AccessToken]:
        """A vault operation producing the token, or raising ``CredentialUnavailableError``."""

    # What a source that keeps nothing answers; a source with ``stores_credentials`` overrides these.

    def status_op(self, user_key: str, scopes: tuple[str, ...]) -> Flow[CredentialStatus]:
        """Whether the user can use the connection, without fetching a token (here: only an
        exchange can tell, so ``active``)."""
        return CredentialStatus(self.connection.name, "active", scopes)
        yield  # pragma: no cover - makes this a generator

    def reject_op(self, user_key: str, token: str) -> Flow[None]:
        """The upstream refused ``token`` even after a refresh (nothing stored to mark here)."""
        return None
        yield  # pragma: no cover - makes this a generator

    def revoke_op(self, user_key: str) -> Flow[RevokeResult]:
        """Revoke and delete the user's stored credential (here: there is none)."""
        name = self.connection.name
        return RevokeResult(name, deleted=False, upstream_revoked=False,
                            error=f"credentials of {name!r} are not stored here ({self.kind})")
        yield  # pragma: no cover - makes this a generator

    def _check_scopes(self, granted: tuple[str, ...] | None, query: TokenQuery) -> None:
        if granted is None:
            return
        missing = tuple(s for s in query.scopes if s not in granted)
        if missing:
            raise unavailable(self.connection.name, "missing_scopes", missing)

    def _token(self, response: TokenResponse, query: TokenQuery) -> AccessToken:
        return AccessToken(
            response.access_token, connection=self.connection.name,
            scopes=response.scope if response.scope is not None else query.scopes,
            expires_at=response.expires_at, token_type=response.token_type,
        )


# --------------------------------------------------------------------------- local OAuth


class LocalOAuthSource(CredentialSource):
    """Upstream OAuth tokens kept encrypted in the store and refreshed when they expire.

    Refresh runs under a store lease named after the user and connection, so workers sharing
    the store spend a rotating refresh token once; the others wait for the new record.
    """

    kind = "oauth"
    stores_credentials = True

    @classmethod
    def check_connection(cls, connection: Connection) -> str | None:
        return None if connection.redirect_uri else "an 'oauth' connection needs redirect_uri (the callback URL)"

    def usable(self, record: TokenRecord, rejected: str | None) -> bool:
        if record.status != "active" or record.access_token == rejected:
            return False
        return record.expires_at is None or record.expires_at - self.env.leeway > self.env.clock()

    def _as_token(self, record: TokenRecord) -> AccessToken:
        return AccessToken(record.access_token, connection=record.connection, scopes=record.scopes,
                           expires_at=record.expires_at, token_type=record.token_type)

    def read(self, user_key: str) -> Flow[TokenRecord | None]:
        item = yield from store_get(user_ns(user_key), self.connection.name)
        if item is None:
            return None
        return TokenRecord.from_value(self.env.keyring, item.value, user=user_key, connection=self.connection.name)

    def _read_for(self, query: TokenQuery) -> Flow[TokenRecord | None]:
        """:meth:`read` for a token request: a damaged record asks the user to reconnect
        (connecting again overwrites it) rather than failing the call."""
        try:
            return (yield from self.read(query.user_key))
        except VaultRecordError as exc:
            log.warning("vault: %s; asking the user to reconnect (user=%s)", exc, query.user_key)
            raise unavailable(self.connection.name, "needs_reauthorization", query.scopes,
                              "the stored credential is damaged") from None

    def write(self, record: TokenRecord) -> Flow[None]:
        yield from store_put(user_ns(record.user), record.connection, record.to_value(self.env.keyring))

    def status_op(self, user_key: str, scopes: tuple[str, ...]) -> Flow[CredentialStatus]:
        name = self.connection.name
        try:
            record = yield from self.read(user_key)
        except _UNREADABLE:
            return CredentialStatus(name, "needs_reauthorization", scopes)
        if record is None:
            return CredentialStatus(name, "not_connected", scopes, scopes)
        missing = tuple(s for s in scopes if s not in record.scopes)
        if record.status != "active":
            return CredentialStatus(name, "needs_reauthorization", record.scopes, missing, record.expires_at)
        if missing:
            return CredentialStatus(name, "missing_scopes", record.scopes, missing, record.expires_at)
        expired = record.expires_at is not None and record.expires_at <= self.env.clock()
        if expired and not record.refresh_token:
            return CredentialStatus(name, "needs_reauthorization", record.scopes, (), record.expires_at)
        return CredentialStatus(name, "active", record.scopes, (), record.expires_at)

    def reject_op(self, user_key: str, token: str) -> Flow[None]:
        try:
            record = yield from self.read(user_key)
        except _UNREADABLE:
            return  # nothing usable to mark; the next read asks the user to reconnect
        if record is not None and record.access_token == token and record.status == "active":
            yield from self._mark(record, "needs_reauthorization")

    def revoke_op(self, user_key: str) -> Flow[RevokeResult]:
        name, ns = self.connection.name, user_ns(user_key)
        item = yield from store_get(ns, name)
        if item is None:
            return RevokeResult(name, deleted=False, upstream_revoked=False)
        upstream, error = False, None
        try:
            record: TokenRecord | None = TokenRecord.from_value(self.env.keyring, item.value, user=user_key,
                                                                connection=name)
        except VaultDecryptionError:
            record, error = None, "the record cannot be decrypted; deleted without revoking upstream"
        except VaultRecordError:
            record, error = None, "the record is damaged; deleted without revoking upstream"
        if record is not None:
            upstream, error = yield from self._revoke_upstream(record)
        yield from store_put(ns, name, None)
        return RevokeResult(name, deleted=True, upstream_revoked=upstream, error=error)

    def _revoke_upstream(self, record: TokenRecord) -> Flow[tuple[bool, str | None]]:
        """RFC 7009 at the provider: (revoked, why not)."""
        try:
            meta = yield from self.client.metadata_flow()
            if not meta.revocation_endpoint:
                return False, "the provider has no revocation endpoint; deleted locally"
            if record.refresh_token:
                yield from self.client.revoke_flow(record.refresh_token, token_type_hint="refresh_token")
            yield from self.client.revoke_flow(record.access_token, token_type_hint="access_token")
            return True, None
        except AgentAuthError as exc:
            return False, f"upstream revocation failed ({exc}); deleted locally"

    def _judge(self, record: TokenRecord | None, query: TokenQuery) -> AccessToken | None:
        """A token from ``record``, ``None`` if it needs a refresh, or the typed error."""
        name = self.connection.name
        if record is None:
            raise unavailable(name, "not_connected", query.scopes)
        missing = tuple(s for s in query.scopes if s not in record.scopes)
        if record.status == "needs_reauthorization":
            raise unavailable(name, "needs_reauthorization", missing)
        if missing:
            raise unavailable(name, "missing_scopes", missing)
        if self.usable(record, query.rejected):
            return self._as_token(record)
        if not record.refresh_token:
            expired = record.expires_at is not None and record.expires_at <= self.env.clock()
            if record.access_token != query.rejected and not expired:
                return self._as_token(record)  # inside the leeway, but still valid and nothing better
            return None
        return None

    def token_op(self, query: TokenQuery) -> Flow[AccessToken]:
        record = yield from self._read_for(query)
        token = self._judge(record, query)
        if token is not None:
            return token
        assert record is not None
        return (yield from self._refresh(record, query))

    def _mark(self, record: TokenRecord, status: str) -> Flow[None]:
        record.status = status
        record.rev += 1
        record.updated_at = self.env.clock()
        yield from self.write(record)

    def _refresh(self, record: TokenRecord, query: TokenQuery) -> Flow[AccessToken]:
        name = self.connection.name
        lease, lease_name, owner = self.env.lease, f"refresh|{query.user_key}|{name}", secrets.token_hex(8)
        delay = 0.02
        while lease is not None:
            got = yield from lease.acquire(lease_name, owner, self.env.lease_ttl)
            if got:
                break
            # Another worker is refreshing: wait for its record instead of spending the token.
            yield Sleep(delay)
            delay = min(delay * 2, 0.25)
            newer = yield from self._read_for(query)
            if newer is not None and newer.rev != record.rev:
                token = self._judge(newer, query)
                if token is not None:
                    return token
                record = newer
        try:
            token = yield from self._refresh_locked(query)
        except Exception:
            if lease is not None:
                yield from lease.release(lease_name, owner)
            raise
        if lease is not None:
            yield from lease.release(lease_name, owner)
        return token

    def _refresh_locked(self, query: TokenQuery) -> Flow[AccessToken]:
        name = self.connection.name
        # Under the lease, read again: someone may have refreshed since our first read.
        current = yield from self._read_for(query)
        token = self._judge(current, query)
        if token is not None:
            return token
        assert current is not None
        if not current.refresh_token:
            yield from self._mark(current, "needs_reauthorization")
            raise unavailable(name, "needs_reauthorization", (),
                              "the access token expired and there is no refresh token")
        try:
            response = yield from self.client.refresh_flow(current.refresh_token)
        except (InvalidGrantError, InvalidScopeError) as exc:
            latest = yield from self._read_for(query)
            if latest is not None and latest.rev != current.rev:
                token = self._judge(latest, query)  # a worker without the lease got there first
                if token is not None:
                    return token
            yield from self._mark(latest or current, "needs_reauthorization")
            log.info("vault: refresh refused (%s) for connection=%s user=%s", exc.error, name, query.user_key)
            raise unavailable(name, "needs_reauthorization", (), f"refresh refused: {exc.error}") from None
        current.access_token = response.access_token
        current.refresh_token = response.refresh_token or current.refresh_token
        current.token_type = response.token_type
        current.expires_at = response.expires_at
        if response.scope is not None:
            current.scopes = tuple(sorted(set(response.scope)))
        current.rev += 1
        current.updated_at = self.env.clock()
        current.status = "active"
        yield from self.write(current)
        log.info("vault: refreshed connection=%s user=%s rotated=%s", name, query.user_key,
                 bool(response.refresh_token))
        emit_audit("token_refreshed", user=query.user_key, connection=name, scopes=current.scopes)
        return self._judge(current, query) or self._as_token(current)


# --------------------------------------------------------------------------- token exchange


class _ExchangeSource(CredentialSource):
    """Shared by the RFC 8693 and Auth0 sources: the user's credential at the main issuer."""

    def subject(self, query: TokenQuery) -> str:
        token = query.subject_token
        if token is None and self.connection.subject_token is not None:
            token = self.connection.subject_token(query.user, query.context)
        if token is None:
            token = context_value(query.context, "subject_token")
        if not isinstance(token, str) or not token:
            raise IdentityError(
                f"connection {self.connection.name!r} exchanges the user's token, but none was supplied: "
                "pass context={'user': ..., 'subject_token': <the user's token>} on invoke "
                "(the runtime context is never checkpointed)",
                hint="I can't reach this service on the user's behalf right now: their sign-in token is missing.",
            )
        return token


class TokenExchangeSource(_ExchangeSource):
    """RFC 8693 token exchange: the user's token becomes one for ``audience``/``resource``.

    The ``act`` claim (delegation) is the server's: it names the client, or the actor
    whose token ``Connection.actor_token`` supplies.

    Example:
        >>> from langchain_agent_auth.vault import Connection
        >>> Connection("downstream", source="token_exchange", issuer="https://idp.example",
        ...            client_id="agent", client_secret="s3cret-value", audience="https://api.example",
        ...            scopes=["read"]).source
        'token_exchange'
    """

    kind = "token_exchange"

    def token_op(self, query: TokenQuery) -> Flow[AccessToken]:
        c = self.connection
        actor = c.actor_token(query.user, query.context) if c.actor_token is not None else None
        try:
            response = yield from self.client.token_exchange_flow(
                self.subject(query), _TOKEN_TYPES[c.subject_token_type],
                audience=c.audience, resource=c.resource, scope=query.scopes or None,
                actor_token=actor, actor_token_type=(c.actor_token_type or TOKEN_TYPE_ACCESS) if actor else None,
                requested_token_type=c.requested_token_type,
            )
        except InvalidGrantError as exc:
            raise unavailable(c.name, "needs_reauthorization", (), f"the user's token was refused: {exc.error}") \
                from None
        self._check_scopes(response.scope, query)
        return self._token(response, query)


AUTH0_NOT_CONNECTED = AUTH0_TOKEN_VAULT.not_connected_errors


class Auth0TokenVaultSource(_ExchangeSource):
    """Auth0 Token Vault: ``grant_type=urn:auth0:params:oauth:grant-type:token-exchange:
    federated-connection-access-token`` with ``subject_token`` (the user's Auth0 refresh or
    access token), ``subject_token_type``, ``requested_token_type=http://auth0.com/oauth/
    token-type/federated-connection-access-token``, ``connection`` and ``login_hint``.

    Example:
        >>> from langchain_agent_auth.vault import Connection
        >>> c = Connection("google", source="auth0_token_vault", issuer="https://tenant.auth0.com/",
        ...                client_id="agent", client_secret="s3cret-value", auth0_connection="google-oauth2",
        ...                subject_token_type="refresh_token", login_hint="alice@example.com")
        >>> c.auth0_connection, c.login_hint
        ('google-oauth2', 'alice@example.com')
    """

    kind = "auth0_token_vault"
    #: The exchange's parameters and error codes (the Auth0 profile's; the local provider's match).
    exchange = AUTH0_TOKEN_VAULT

    @classmethod
    def check_connection(cls, connection: Connection) -> str | None:
        if connection.subject_token_type not in cls.exchange.subject_token_types:
            return "Auth0 Token Vault takes an access_token or refresh_token"
        return None

    def login_hint(self, user: Any, context: Any) -> str | None:
        hint = self.connection.login_hint
        if callable(hint):
            hint = hint(user, context)
        return hint if isinstance(hint, str) and hint else None

    def variant(self, query: TokenQuery) -> str:
        return query.login_hint or ""

    def token_op(self, query: TokenQuery) -> Flow[AccessToken]:
        c = self.connection
        try:
            response = yield from self.client.federated_exchange_flow(
                self.subject(query), connection=c.auth0_connection or c.name,
                subject_token_type=c.subject_token_type,  # type: ignore[arg-type]  # checked by Connection
                login_hint=query.login_hint,
            )
        except OAuthError as exc:
            if exc.error in self.exchange.not_connected_errors:
                raise unavailable(c.name, "not_connected", query.scopes) from None
            if isinstance(exc, InvalidGrantError):
                raise unavailable(c.name, "needs_reauthorization", (), exc.error) from None
            raise
        self._check_scopes(response.scope, query)
        return self._token(response, query)


# --------------------------------------------------------------------------- registry

SourceFactory = Callable[[Connection, SourceEnv], CredentialSource]
"""Builds the source of one connection: ``factory(connection, env)`` (a source class fits)."""

_SOURCES: dict[str, SourceFactory] = {
    "oauth": LocalOAuthSource,
    "token_exchange": TokenExchangeSource,
    "auth0_token_vault": Auth0TokenVaultSource,
}


def register_source(kind: str, factory: SourceFactory, *, replace: bool = False) -> None:
    """Make ``Connection(source=kind)`` get its credentials from ``factory(connection, env)``.

    The factory returns a :class:`CredentialSource` (usually: a subclass, whose defaults
    say "stores nothing"). Registering a kind twice needs ``replace=True``.

    Example:
        >>> class Static(CredentialSource):
        ...     kind = "static-doc"
        ...     def token_op(self, query):
        ...         return AccessToken("t", connection=self.connection.name, scopes=query.scopes)
        ...         yield
        >>> register_source("static-doc", Static)
        >>> "static-doc" in source_kinds()
        True
    """
    if not isinstance(kind, str) or not kind:
        raise ConfigurationError("a source kind is a non-empty string")
    if not callable(factory):
        raise ConfigurationError(f"the factory of source {kind!r} is not callable")
    if kind in _SOURCES and not replace and _SOURCES[kind] is not factory:
        raise ConfigurationError(f"source {kind!r} is already registered (pass replace=True)")
    _SOURCES[kind] = factory


def source_kinds() -> tuple[str, ...]:
    """The registered source kinds (``oauth``, ``token_exchange``, ``auth0_token_vault``...)."""
    return tuple(_SOURCES)


def source_factory(kind: str) -> SourceFactory:
    """The factory registered for ``kind`` (:class:`ConfigurationError` if there is none)."""
    try:
        return _SOURCES[kind]
    except (KeyError, TypeError):
        raise ConfigurationError(f"unknown source {kind!r} (registered: {', '.join(_SOURCES)})") from None
