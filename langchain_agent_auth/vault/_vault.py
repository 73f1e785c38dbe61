"""``TokenVault``: "an access token for this user, for this connection, with these scopes".

This module is the token side of the vault: retrieval (cache, store, refresh, exchange,
through the connection's source), status, listing, import, revoke and key rotation. The
connect flow (authorize URL, callback, pending connect records) is in ``_connect``; the
credential sources in ``_sources``. Every operation is written once as a flow of the effect
runtime (:mod:`langchain_agent_auth.core.effects`) and run by ``run`` or ``arun``: the public
``x`` / ``ax`` pairs are one-line wrappers.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from langgraph.store.base import BaseStore, ListNamespacesOp, MatchCondition

from langchain_agent_auth.core._http import HTTPClients
from langchain_agent_auth.core.audit._emit import audit_enabled, emit_audit
from langchain_agent_auth.core.crypto import DATA_DIR_ENV, Keyring, default_data_dir, default_keyring
from langchain_agent_auth.core.effects import (
    Call,
    Flow,
    StoreOps,
    arun,
    run,
    store_get,
    store_put,
    store_search,
)
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    ConfigurationError,
    ConnectionNotFoundError,
    VaultDecryptionError,
    VaultRecordError,
)
from langchain_agent_auth.vault._cache import CacheKey, SingleFlight, TokenCache
from langchain_agent_auth.vault._connect import ConnectFlows, previous_record
from langchain_agent_auth.vault._lease import Lease, default_lease
from langchain_agent_auth.vault._model import Connection, ConnectionInfo, UserLike, normalize_scopes, user_key_of
from langchain_agent_auth.vault._records import USERS_NS, TokenRecord, decode_user, stored_token, user_ns
from langchain_agent_auth.vault._sources import CredentialSource, SourceEnv, TokenQuery, source_factory

if TYPE_CHECKING:  # only in signatures: the results the vault's operations return
    from langchain_agent_auth.vault._model import (
        AccessToken,
        ConnectRequest,
        ConnectResult,
        CredentialStatus,
        PendingConnect,
        RevokeResult,
    )

__all__ = ["DATA_DIR_ENV", "TokenVault", "default_data_dir", "open_default_store"]

T = TypeVar("T")
log = logging.getLogger("langchain_agent_auth.vault")

# A stored credential nobody can use until the user connects again.
_UNREADABLE = (VaultDecryptionError, VaultRecordError)


def open_default_store(path: str | os.PathLike[str]) -> BaseStore:
    """A ``SqliteStore`` on ``path`` (WAL mode, usable from threads and other processes).

    Example:
        >>> import tempfile, pathlib
        >>> store = open_default_store(pathlib.Path(tempfile.mkdtemp()) / "agent_auth.sqlite")
        >>> type(store).__name__
        'SqliteStore'
    """
    from langgraph.store.sqlite import SqliteStore

    from langchain_agent_auth.core.crypto import private_dir, private_file

    file = pathlib.Path(path)
    if not file.parent.exists():
        private_dir(file.parent)  # created 0700; an existing directory is the caller's choice
    private_file(file)  # 0600, and so are SQLite's -wal/-shm files
    conn = sqlite3.connect(str(file), check_same_thread=False, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    store = SqliteStore(conn)
    store.setup()
    return store


class TokenVault:
    """Upstream API credentials for users, from the sources their connections declare.

    Args:
        connections: the :class:`Connection` declarations (names must be unique).
        store: a LangGraph ``BaseStore`` (default: ``SqliteStore`` at
            ``<data dir>/agent_auth.sqlite``; ``InMemoryStore``, ``PostgresStore``... work).
        keyring: encryption keys (default: ``$AGENT_AUTH_ENCRYPTION_KEYS``, else
            ``<data dir>/keys``, created on first use with mode 0600).
        data_dir: the embedded defaults' directory (default ``$AGENT_AUTH_DATA_DIR`` or
            ``./.agent-auth``).
        leeway: seconds before expiry at which a token counts as expired.
        lease: cross-process refresh lease (default: compare-and-set on ``SqliteStore``,
            best effort on other stores; ``False`` disables it).
        connect_ttl: seconds a connect-account link stays valid.
        http_client / async_http_client: ``httpx`` clients to use (else owned ones).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> from langchain_agent_auth.identity import UserIdentity
        >>> vault = TokenVault(
        ...     [Connection("calendar", issuer="https://upstream.example", client_id="agent",
        ...                 client_secret="s3cret-value", redirect_uri="http://127.0.0.1:8765/callback")],
        ...     store=InMemoryStore(), keyring=Keyring.generate())
        >>> alice = UserIdentity(subject="alice", issuer="https://idp.example")
        >>> vault.status(alice, "calendar", ["calendar.read"]).status
        'not_connected'
        >>> vault.get_token(alice, "calendar", ["calendar.read"])
        Traceback (most recent call last):
        ...
        langchain_agent_auth.errors.CredentialUnavailableError: no calendar account is connected for this user
    """

    def __init__(
        self,
        connections: Iterable[Connection] | Mapping[str, Connection] = (),
        *,
        store: BaseStore | None = None,
        keyring: Keyring | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        leeway: float = 60.0,
        lease: Lease | bool | None = None,
        lease_ttl: float = 15.0,
        connect_ttl: float = 600.0,
        cache_size: int = 10_000,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        items = list(connections.values()) if isinstance(connections, Mapping) else list(connections)
        self._connections: dict[str, Connection] = {}
        for conn in items:
            if not isinstance(conn, Connection):
                raise ConfigurationError(f"not a Connection: {conn!r}")
            if conn.name in self._connections:
                raise ConfigurationError(f"connection {conn.name!r} is declared twice")
            self._connections[conn.name] = conn
        base = pathlib.Path(data_dir) if data_dir is not None else None
        if store is None:
            store = open_default_store((base or default_data_dir()) / "agent_auth.sqlite")
        if keyring is None:
            keyring = default_keyring(base)
        if not isinstance(keyring, Keyring):
            raise ConfigurationError("keyring must be a langchain_agent_auth.crypto.Keyring")
        self.store = store
        self.keyring = keyring
        self.clock = clock
        self.connect_ttl = float(connect_ttl)
        if lease is None or lease is True:
            lease_obj: Lease | None = default_lease(store, clock)
        elif lease is False:
            lease_obj = None
        else:
            lease_obj = lease
        self._env = SourceEnv(keyring=keyring, lease=lease_obj, clock=clock, leeway=float(leeway),
                              lease_ttl=float(lease_ttl))
        self._sources: dict[str, CredentialSource] = {
            name: source_factory(conn.source)(conn, self._env) for name, conn in self._connections.items()
        }
        self._connects = ConnectFlows(self)
        self._cache = TokenCache(leeway=float(leeway), max_entries=cache_size, clock=clock)
        self._flights = SingleFlight()
        self._http = HTTPClients(http_client, async_http_client)
        self._scope_cache: dict[Any, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"TokenVault(connections={list(self._connections)!r}, store={type(self.store).__name__})"

    # ------------------------------------------------------------------ plumbing

    @property
    def connection_names(self) -> list[str]:
        return list(self._connections)

    @property
    def lease(self) -> Lease | None:
        """The cross-process lease (refresh, code redemption), ``None`` when disabled."""
        return self._env.lease

    @property
    def lease_ttl(self) -> float:
        return self._env.lease_ttl

    def connection(self, name: str) -> Connection:
        """The declaration of ``name``; :class:`ConnectionNotFoundError` if there is none."""
        try:
            return self._connections[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._connections)) or "none"
            raise ConnectionNotFoundError(
                f"unknown connection {str(name)[:64]!r} (declared: {known})"
            ) from None

    def source(self, name: str) -> CredentialSource:
        self.connection(name)
        return self._sources[name]

    def connect_source(self, name: str) -> CredentialSource:
        """The source of ``name`` if it keeps credentials here (it has a connect flow)."""
        source = self.source(name)
        if not source.stores_credentials:
            raise ConfigurationError(
                f"connection {name!r} gets its credentials by {source.kind}; it has no connect flow of its own"
            )
        return source

    def _scopes(self, scopes: Any, default: tuple[str, ...]) -> tuple[str, ...]:
        if scopes is None:
            return default
        key = scopes if isinstance(scopes, (str, tuple)) else tuple(scopes)
        hit = self._scope_cache.get(key)
        if hit is None:
            hit = normalize_scopes(key)
            if len(self._scope_cache) < 1024:
                self._scope_cache[key] = hit
        return hit

    def _run(self, op: Flow[T]) -> T:
        return run(op, http=self._http.sync, store=self.store)

    async def _arun(self, op: Flow[T]) -> T:
        return await arun(op, http=self._http.async_, store=self.store)

    def close(self) -> None:
        """Close owned HTTP clients."""
        self._http.close()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ tokens

    def _query(self, user: UserLike, connection: str, scopes: Any, context: Any, subject_token: str | None,
               rejected: str | None) -> tuple[CredentialSource, TokenQuery, CacheKey]:
        source = self.source(connection)
        wanted = self._scopes(scopes, source.connection.scopes)
        hint = source.login_hint(user, context)
        query = TokenQuery(user=user, scopes=wanted, context=context, subject_token=subject_token,
                           login_hint=hint, rejected=rejected)
        key: CacheKey = (user_key_of(user), connection, wanted, source.variant(query))
        return source, query, key

    def cached_token(self, user: UserLike, connection: str, scopes: Any = None, *, context: Any = None) -> \
            AccessToken | None:
        """The cached token, if one is fresh; never does I/O (the tools' hot path)."""
        _, _, key = self._query(user, connection, scopes, context, None, None)
        return self._cache.get(key)

    def _token_op(self, user: UserLike, connection: str, scopes: Any, context: Any, subject_token: str | None,
                  rejected: str | None) -> Flow[AccessToken]:
        source, query, key = self._query(user, connection, scopes, context, subject_token, rejected)
        if rejected is None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        else:
            self._cache.invalidate(key[0], connection, rejected)
        token = yield self._one_fetch(source, query, key)
        if rejected is not None and token.token == rejected:
            token = yield self._one_fetch(source, query, key)
        return token

    def _one_fetch(self, source: CredentialSource, query: TokenQuery, key: CacheKey) -> Call:
        """The fetch of ``key``, shared by every caller asking at once (threads and tasks alike)."""
        return Call(lambda: self._flights.run(key, lambda: self._run(self._fetch_op(source, query, key))),
                    lambda: self._flights.arun(key, lambda: self._arun(self._fetch_op(source, query, key))))

    def _fetch_op(self, source: CredentialSource, query: TokenQuery, key: CacheKey) -> Flow[AccessToken]:
        if query.rejected is None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        try:
            token = yield from source.token_op(query)
        except AgentAuthError as exc:
            _audit_refused(query, source, exc)
            raise
        self._cache.put(key, token)
        _audit_obtained(query, token)
        return token

    def get_token(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None, *,
                  context: Any = None, subject_token: str | None = None, rejected: str | None = None) -> AccessToken:
        """An access token for ``user`` at ``connection`` with ``scopes``.

        Served from the cache while fresh; otherwise read from the store (refreshing it if
        expired) or obtained by exchange, with one fetch per key however many callers ask at
        once. ``rejected`` is a token the upstream just refused (HTTP 401): it is dropped and
        a new one obtained. Raises :class:`CredentialUnavailableError` (``status``
        ``not_connected`` / ``needs_reauthorization`` / ``missing_scopes``),
        :class:`ConnectionNotFoundError`, :class:`VaultDecryptionError`, or the provider's
        error (:class:`ProviderUnavailableError` on 5xx / timeouts).

        Example:
            >>> from langchain_agent_auth.vault._examples import example_vault
            >>> vault = example_vault()
            >>> from langchain_agent_auth.identity import UserIdentity
            >>> bob = UserIdentity(subject="bob")
            >>> vault.import_token(bob, "calendar", access_token="opaque-1", scopes=["calendar.read"])
            >>> vault.get_token(bob, "calendar", "calendar.read").scopes
            ('calendar.read',)
            >>> vault.get_token(bob, "calendar", "calendar.write")
            Traceback (most recent call last):
            ...
            langchain_agent_auth.errors.CredentialUnavailableError: the calendar connection lacks scopes: calendar.write
        """
        return self._run(self._token_op(user, connection, scopes, context, subject_token, rejected))

    async def aget_token(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None, *,
                         context: Any = None, subject_token: str | None = None,
                         rejected: str | None = None) -> AccessToken:
        """Async :meth:`get_token`; never blocks the event loop."""
        return await self._arun(self._token_op(user, connection, scopes, context, subject_token, rejected))

    def invalidate(self, user: UserLike, connection: str, token: str | None = None) -> None:
        """Forget cached tokens of ``user`` for ``connection`` (only ``token`` if given)."""
        self.connection(connection)
        self._cache.invalidate(user_key_of(user), connection, token)

    def _reject_op(self, user: UserLike, connection: str, token: str) -> Flow[None]:
        self.invalidate(user, connection, token)
        yield from self._sources[connection].reject_op(user_key_of(user), token)

    def reject(self, user: UserLike, connection: str, token: str) -> None:
        """The upstream refused ``token`` even after a refresh: the user must reconnect."""
        self._run(self._reject_op(user, connection, token))

    async def areject(self, user: UserLike, connection: str, token: str) -> None:
        """Async :meth:`reject`."""
        await self._arun(self._reject_op(user, connection, token))

    # ------------------------------------------------------------------ status / listing

    def _status_op(self, user: UserLike, connection: str, scopes: Any) -> Flow[CredentialStatus]:
        source = self.source(connection)
        wanted = self._scopes(scopes, source.connection.scopes)
        return (yield from source.status_op(user_key_of(user), wanted))

    def status(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None) -> CredentialStatus:
        """Whether ``user`` can use ``connection`` with ``scopes``, without fetching a token.

        Exchange-based connections report ``active`` (only an exchange can tell).
        """
        return self._run(self._status_op(user, connection, scopes))

    async def astatus(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None) -> \
            CredentialStatus:
        """Async :meth:`status`."""
        return await self._arun(self._status_op(user, connection, scopes))

    def _connections_op(self, user: UserLike) -> Flow[list[ConnectionInfo]]:
        user_key = user_key_of(user)
        items = yield from store_search(user_ns(user_key))
        seen: dict[str, ConnectionInfo] = {}
        for item in items:
            seen[item.key] = record_info(item.value, item.key, user_key, self.keyring, self.clock())
        out = list(seen.values())
        for name, source in self._sources.items():
            if name not in seen:
                status = "not_connected" if source.stores_credentials else "external"
                out.append(ConnectionInfo(name=name, source=source.kind, status=status, user=user_key))
        return sorted(out, key=lambda i: i.name)

    def connections(self, user: UserLike) -> list[ConnectionInfo]:
        """The user's connections: name, source, scopes, expiry, status. Never a secret."""
        return self._run(self._connections_op(user))

    async def aconnections(self, user: UserLike) -> list[ConnectionInfo]:
        """Async :meth:`connections`."""
        return await self._arun(self._connections_op(user))

    # ------------------------------------------------------------------ import / revoke

    def _import_op(self, user: UserLike, connection: str, access_token: str, refresh_token: str | None,
                   scopes: Any, expires_at: float | None, token_type: str) -> Flow[None]:
        if not access_token:
            raise ConfigurationError("import_token() needs an access token")
        user_key, granted = user_key_of(user), normalize_scopes(scopes)
        source = self.connect_source(connection)
        now = self.clock()
        old_rev, connected_at = 0, now
        item = yield from store_get(user_ns(user_key), connection)
        if item is not None:
            old_rev, connected_at = previous_record(item.value, connection, now)
        record = TokenRecord(
            user=user_key, connection=connection, source=source.kind, issuer=source.connection.issuer,
            scopes=granted, access_token=access_token, refresh_token=refresh_token, token_type=token_type,
            expires_at=expires_at, status="active", rev=old_rev + 1, connected_at=connected_at, updated_at=now,
        )
        yield from source.write(record)
        self._cache.invalidate(user_key, connection)

    def import_token(self, user: UserLike, connection: str, *, access_token: str, refresh_token: str | None = None,
                     scopes: str | Iterable[str] = (), expires_at: float | None = None,
                     token_type: str = "Bearer") -> None:
        """Store tokens obtained elsewhere (a migration, an app's own OAuth flow, tests)."""
        self._run(self._import_op(user, connection, access_token, refresh_token, scopes, expires_at, token_type))

    async def aimport_token(self, user: UserLike, connection: str, *, access_token: str,
                            refresh_token: str | None = None, scopes: str | Iterable[str] = (),
                            expires_at: float | None = None, token_type: str = "Bearer") -> None:
        """Async :meth:`import_token`."""
        await self._arun(self._import_op(user, connection, access_token, refresh_token, scopes, expires_at,
                                         token_type))

    def _revoke_op(self, user: UserLike, connection: str) -> Flow[RevokeResult]:
        user_key, source = user_key_of(user), self.source(connection)
        self._cache.invalidate(user_key, connection)
        result = yield from source.revoke_op(user_key)
        if result.deleted:
            self._cache.invalidate(user_key, connection)
            log.info("vault: revoked connection=%s user=%s upstream=%s", connection, user_key,
                     result.upstream_revoked)
            emit_audit("token_revoked", user=user_key, connection=connection,
                       outcome="revoked_upstream" if result.upstream_revoked else "deleted")
        return result

    def revoke(self, user: UserLike, connection: str) -> RevokeResult:
        """Revoke at the upstream (RFC 7009, when it has an endpoint) and delete the record."""
        return self._run(self._revoke_op(user, connection))

    async def arevoke(self, user: UserLike, connection: str) -> RevokeResult:
        """Async :meth:`revoke`."""
        return await self._arun(self._revoke_op(user, connection))

    # ------------------------------------------------------------------ connect (see _connect)

    def start_connect(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None, *,
                      thread_id: str | None = None, checkpoint_ns: str | None = None,
                      tool_call_id: str | None = None) -> ConnectRequest:
        """Begin connecting ``user``'s account: authorization code + PKCE.

        Returns the authorize URL to send the user to. The ``state`` in it is random and
        bound in the store to (user, thread, connection, scopes, expiry); the PKCE verifier
        stays in the store, never in the graph. Scopes already granted are asked for again
        (incremental authorization) and the old grant keeps working until the new one
        arrives. The same pending call (thread, namespace, tool call) gets the same link.
        """
        return self._run(self._connects.start(user, connection, normalize_scopes(scopes), thread_id,
                                              checkpoint_ns, tool_call_id))

    async def astart_connect(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None, *,
                             thread_id: str | None = None, checkpoint_ns: str | None = None,
                             tool_call_id: str | None = None) -> ConnectRequest:
        """Async :meth:`start_connect`."""
        return await self._arun(self._connects.start(user, connection, normalize_scopes(scopes), thread_id,
                                                     checkpoint_ns, tool_call_id))

    def complete_connect(self, state: str | None, code: str | None = None, *, user: UserLike | None = None,
                         error: str | None = None, error_description: str | None = None,
                         iss: str | None = None) -> ConnectResult:
        """Finish connecting: check ``state``, redeem ``code`` with the PKCE verifier, store the tokens.

        ``user`` is who finished the flow (the signed-in user of the web app): it must be
        the user who started it. Unknown, replayed, expired or another user's state raises
        :class:`CallbackStateError`; an ``error`` from the provider raises its
        :class:`OAuthError` (``access_denied``...) and ends the flow.
        """
        key = user_key_of(user) if user is not None else None
        return self._run(self._connects.complete(state, code, key, error, error_description, iss))

    async def acomplete_connect(self, state: str | None, code: str | None = None, *, user: UserLike | None = None,
                                error: str | None = None, error_description: str | None = None,
                                iss: str | None = None) -> ConnectResult:
        """Async :meth:`complete_connect`."""
        key = user_key_of(user) if user is not None else None
        return await self._arun(self._connects.complete(state, code, key, error, error_description, iss))

    def pending_connects(self, user: UserLike | None = None, *, status: str | None = None) -> list[PendingConnect]:
        """Connect flows in the store (``status``: pending, completed, failed, expired)."""
        return self._run(self._connects.pending(user_key_of(user) if user is not None else None, status))

    async def apending_connects(self, user: UserLike | None = None, *, status: str | None = None) -> \
            list[PendingConnect]:
        """Async :meth:`pending_connects`."""
        return await self._arun(self._connects.pending(user_key_of(user) if user is not None else None, status))

    def mark_resumed(self, pending_id: str, *, resumed: bool = True, retry_at: float | None = None) -> bool:
        """Record a resumer's outcome for a finished flow: resumed (``False`` if it already
        was), to retry at ``retry_at``, or abandoned (``resumed=False``, no ``retry_at``)."""
        return self._run(self._connects.settle(pending_id, resumed, retry_at))

    async def amark_resumed(self, pending_id: str, *, resumed: bool = True, retry_at: float | None = None) -> bool:
        """Async :meth:`mark_resumed`."""
        return await self._arun(self._connects.settle(pending_id, resumed, retry_at))

    def purge_pending(self, older_than: float = 86_400.0) -> int:
        """Delete connect flows that expired more than ``older_than`` seconds ago."""
        return self._run(self._connects.purge(older_than))

    # ------------------------------------------------------------------ key rotation

    def _reencrypt_op(self) -> Flow[int]:
        results = yield StoreOps((ListNamespacesOp(
            match_conditions=(MatchCondition(match_type="prefix", path=USERS_NS),), max_depth=None,
            limit=100_000, offset=0),))
        count = 0
        for ns in results[0]:
            user_key = decode_user(ns[-1]) if len(ns) == len(USERS_NS) + 1 else None
            if user_key is None:
                continue
            items = yield from store_search(tuple(ns), limit=10_000)
            for item in items:
                value = item.value
                if not isinstance(value, dict) or not self.keyring.needs_rotation(value.get("secret") or {}):
                    continue
                try:
                    record = TokenRecord.from_value(self.keyring, value, user=user_key, connection=item.key)
                except _UNREADABLE:
                    continue
                yield from store_put(tuple(ns), item.key, {**record.to_value(self.keyring)})
                count += 1
        return count

    def reencrypt(self) -> int:
        """Re-seal every readable record with the keyring's active key; returns how many."""
        return self._run(self._reencrypt_op())


def _audit_obtained(query: TokenQuery, token: AccessToken) -> None:
    if audit_enabled():
        emit_audit("token_obtained", user=query.user_key, connection=token.connection, scopes=token.scopes)


def _audit_refused(query: TokenQuery, source: CredentialSource, exc: AgentAuthError) -> None:
    if audit_enabled():
        emit_audit("token_refused", user=query.user_key, connection=source.connection.name, scopes=query.scopes,
                   outcome=getattr(exc, "status", None) or getattr(exc, "error", None) or type(exc).__name__,
                   detail=str(exc))


def record_info(value: Any, name: str, user_key: str, keyring: Keyring | None, now: float) -> ConnectionInfo:
    """A stored record as a :class:`ConnectionInfo` (decrypting it only to check it opens).

    A damaged or undecryptable record is listed as ``unreadable`` (connecting again fixes it).
    """
    try:
        clear = stored_token(value, name)
    except _UNREADABLE:
        return ConnectionInfo(name=name, source="?", status="unreadable", user=user_key)
    status: str = clear.status
    if keyring is not None:
        try:
            TokenRecord.from_value(keyring, value, user=user_key, connection=name)
        except _UNREADABLE:
            status = "unreadable"
    expires = clear.expires_at
    if status == "active" and expires is not None and expires <= now:
        status = "expired" if clear.has_refresh_token else "needs_reauthorization"
    kid = clear.secret.get("kid")
    return ConnectionInfo(
        name=name, source=clear.source, status=status, scopes=tuple(clear.scopes), expires_at=expires,
        connected_at=clear.connected_at, updated_at=clear.updated_at, has_refresh_token=clear.has_refresh_token,
        key_id=kid if isinstance(kid, str) else None, user=user_key,
    )
