"""``TokenVault``: "an access token for this user, for this connection, with these scopes".

Every operation is written once as a vault operation (``_io``) and run by :func:`drive`
(sync) or :func:`adrive` (async); the public ``x`` / ``ax`` pairs differ only by ``await``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pathlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
from langgraph.store.base import BaseStore

from langchain_agent_auth.core.audit._emit import audit_enabled, emit_audit
from langchain_agent_auth.core.crypto import DATA_DIR_ENV, Keyring, default_data_dir, default_keyring
from langchain_agent_auth.core.effects import (
    HTTP,
    Blocking,
    VaultOp,
    adrive,
    drive,
    store_get,
    store_put,
    store_search,
)
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    CallbackStateError,
    ConfigurationError,
    ConnectionNotFoundError,
    InvalidRequestError,
    VaultDecryptionError,
    VaultRecordError,
    oauth_error_from_response,
)
from langchain_agent_auth.core.store_cas import compare_and_set
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.oauth import Pkce
from langchain_agent_auth.vault._cache import CacheKey, SingleFlight, TokenCache
from langchain_agent_auth.vault._lease import Lease, default_lease
from langchain_agent_auth.vault._model import (
    AccessToken,
    Connection,
    ConnectionInfo,
    ConnectRequest,
    ConnectResult,
    CredentialStatus,
    PendingConnect,
    RevokeResult,
    normalize_scopes,
)
from langchain_agent_auth.vault._records import (
    PENDING_NS,
    USERS_NS,
    VERSION,
    TokenRecord,
    decode_user,
    open_json,
    pending_aad,
    seal_json,
    stored_pending,
    stored_token,
    user_ns,
)
from langchain_agent_auth.vault._sources import (
    SOURCES,
    CredentialSource,
    LocalOAuthSource,
    SourceEnv,
    TokenQuery,
)

__all__ = ["DATA_DIR_ENV", "TokenVault", "default_data_dir", "open_default_store"]

T = TypeVar("T")
log = logging.getLogger("langchain_agent_auth.vault")

UserLike = UserIdentity | str


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


def _user_key(user: UserLike) -> str:
    if isinstance(user, UserIdentity):
        return user.key
    if isinstance(user, str) and user:
        return user
    raise TypeError("user must be a UserIdentity (or a user key string)")


def _state_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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
        >>> from langchain_agent_auth.core.crypto import DATA_DIR_ENV, Keyring, default_data_dir
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
            name: SOURCES[conn.source](conn, self._env) for name, conn in self._connections.items()
        }
        self._cache = TokenCache(leeway=float(leeway), max_entries=cache_size, clock=clock)
        self._flights = SingleFlight()
        self._http = HTTP(http_client, async_http_client)
        self._scope_cache: dict[Any, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"TokenVault(connections={list(self._connections)!r}, store={type(self.store).__name__})"

    # ------------------------------------------------------------------ plumbing

    @property
    def connection_names(self) -> list[str]:
        return list(self._connections)

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

    def _local(self, name: str) -> LocalOAuthSource:
        source = self.source(name)
        if not isinstance(source, LocalOAuthSource):
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

    def _run(self, op: VaultOp[T]) -> T:
        return drive(op, self._http.sync, self.store)

    async def _arun(self, op: VaultOp[T]) -> T:
        return await adrive(op, self._http.async_, self.store)

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
        key: CacheKey = (_user_key(user), connection, wanted, source.variant(query))
        return source, query, key

    def cached_token(self, user: UserLike, connection: str, scopes: Any = None, *, context: Any = None) -> \
            AccessToken | None:
        """The cached token, if one is fresh; never does I/O (the tools' hot path)."""
        _, _, key = self._query(user, connection, scopes, context, None, None)
        return self._cache.get(key)

    def _fetch_sync(self, source: CredentialSource, query: TokenQuery, key: CacheKey) -> AccessToken:
        if query.rejected is None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        try:
            token = self._run(source.token_op(query))
        except AgentAuthError as exc:
            _audit_refused(query, source, exc)
            raise
        self._cache.put(key, token)
        _audit_obtained(query, token)
        return token

    async def _fetch_async(self, source: CredentialSource, query: TokenQuery, key: CacheKey) -> AccessToken:
        if query.rejected is None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        try:
            token = await self._arun(source.token_op(query))
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
            >>> from langgraph.store.memory import InMemoryStore
            >>> vault = TokenVault([Connection("calendar", issuer="https://up.example", client_id="agent",
            ...     client_secret="s3cret-value", redirect_uri="http://127.0.0.1:8765/callback")],
            ...     store=InMemoryStore(), keyring=Keyring.generate())
            >>> bob = UserIdentity(subject="bob")
            >>> vault.import_token(bob, "calendar", access_token="opaque-1", scopes=["calendar.read"])
            >>> vault.get_token(bob, "calendar", "calendar.read").scopes
            ('calendar.read',)
            >>> vault.get_token(bob, "calendar", "calendar.write")
            Traceback (most recent call last):
            ...
            langchain_agent_auth.errors.CredentialUnavailableError: the calendar connection lacks scopes: calendar.write
        """
        source, query, key = self._query(user, connection, scopes, context, subject_token, rejected)
        if rejected is None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        else:
            self._cache.invalidate(key[0], connection, rejected)
        token = self._flights.run(key, lambda: self._fetch_sync(source, query, key))
        if rejected is not None and token.token == rejected:
            token = self._flights.run(key, lambda: self._fetch_sync(source, query, key))
        return token

    async def aget_token(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None, *,
                         context: Any = None, subject_token: str | None = None,
                         rejected: str | None = None) -> AccessToken:
        """Async :meth:`get_token`; never blocks the event loop."""
        source, query, key = self._query(user, connection, scopes, context, subject_token, rejected)
        if rejected is None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        else:
            self._cache.invalidate(key[0], connection, rejected)
        token = await self._flights.arun(key, lambda: self._fetch_async(source, query, key))
        if rejected is not None and token.token == rejected:
            token = await self._flights.arun(key, lambda: self._fetch_async(source, query, key))
        return token

    def invalidate(self, user: UserLike, connection: str, token: str | None = None) -> None:
        """Forget cached tokens of ``user`` for ``connection`` (only ``token`` if given)."""
        self.connection(connection)
        self._cache.invalidate(_user_key(user), connection, token)

    def _reject_op(self, user_key: str, connection: str, token: str) -> VaultOp[None]:
        source = self._sources[connection]
        if not isinstance(source, LocalOAuthSource):
            return
        try:
            record = yield from source.read(user_key)
        except _UNREADABLE:
            return  # nothing usable to mark; the next read asks the user to reconnect
        if record is not None and record.access_token == token and record.status == "active":
            record.status = "needs_reauthorization"
            record.rev += 1
            record.updated_at = self.clock()
            yield from source.write(record)

    def reject(self, user: UserLike, connection: str, token: str) -> None:
        """The upstream refused ``token`` even after a refresh: the user must reconnect."""
        self.invalidate(user, connection, token)
        self._run(self._reject_op(_user_key(user), connection, token))

    async def areject(self, user: UserLike, connection: str, token: str) -> None:
        """Async :meth:`reject`."""
        self.invalidate(user, connection, token)
        await self._arun(self._reject_op(_user_key(user), connection, token))

    # ------------------------------------------------------------------ status / listing

    def _status_op(self, user_key: str, connection: str, scopes: tuple[str, ...]) -> VaultOp[CredentialStatus]:
        source = self._sources[connection]
        if not isinstance(source, LocalOAuthSource):
            return CredentialStatus(connection, "active", scopes)
        try:
            record = yield from source.read(user_key)
        except _UNREADABLE:
            return CredentialStatus(connection, "needs_reauthorization", scopes)
        if record is None:
            return CredentialStatus(connection, "not_connected", scopes, scopes)
        missing = tuple(s for s in scopes if s not in record.scopes)
        if record.status != "active":
            return CredentialStatus(connection, "needs_reauthorization", record.scopes, missing, record.expires_at)
        if missing:
            return CredentialStatus(connection, "missing_scopes", record.scopes, missing, record.expires_at)
        expired = record.expires_at is not None and record.expires_at <= self.clock()
        if expired and not record.refresh_token:
            return CredentialStatus(connection, "needs_reauthorization", record.scopes, (), record.expires_at)
        return CredentialStatus(connection, "active", record.scopes, (), record.expires_at)

    def status(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None) -> CredentialStatus:
        """Whether ``user`` can use ``connection`` with ``scopes``, without fetching a token.

        Exchange-based connections report ``active`` (only an exchange can tell).
        """
        source = self.source(connection)
        return self._run(self._status_op(_user_key(user), connection, self._scopes(scopes, source.connection.scopes)))

    async def astatus(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None) -> \
            CredentialStatus:
        """Async :meth:`status`."""
        source = self.source(connection)
        return await self._arun(self._status_op(_user_key(user), connection,
                                                self._scopes(scopes, source.connection.scopes)))

    def _connections_op(self, user_key: str) -> VaultOp[list[ConnectionInfo]]:
        items = yield from store_search(user_ns(user_key))
        seen: dict[str, ConnectionInfo] = {}
        for item in items:
            seen[item.key] = record_info(item.value, item.key, user_key, self.keyring, self.clock())
        out = list(seen.values())
        for name, source in self._sources.items():
            if name in seen:
                continue
            status = "not_connected" if isinstance(source, LocalOAuthSource) else "external"
            out.append(ConnectionInfo(name=name, source=source.kind, status=status, user=user_key))
        return sorted(out, key=lambda i: i.name)

    def connections(self, user: UserLike) -> list[ConnectionInfo]:
        """The user's connections: name, source, scopes, expiry, status. Never a secret."""
        return self._run(self._connections_op(_user_key(user)))

    async def aconnections(self, user: UserLike) -> list[ConnectionInfo]:
        """Async :meth:`connections`."""
        return await self._arun(self._connections_op(_user_key(user)))

    # ------------------------------------------------------------------ import / revoke

    def _import_op(self, user_key: str, connection: str, access_token: str, refresh_token: str | None,
                   scopes: tuple[str, ...], expires_at: float | None, token_type: str) -> VaultOp[None]:
        source = self._local(connection)
        now = self.clock()
        old_rev, connected_at = 0, now
        item = yield from store_get(user_ns(user_key), connection)
        if item is not None:
            old_rev, connected_at = _previous(item.value, connection, now)
        record = TokenRecord(
            user=user_key, connection=connection, source=source.kind, issuer=source.connection.issuer,
            scopes=scopes, access_token=access_token, refresh_token=refresh_token, token_type=token_type,
            expires_at=expires_at, status="active", rev=old_rev + 1, connected_at=connected_at, updated_at=now,
        )
        yield from source.write(record)
        self._cache.invalidate(user_key, connection)

    def import_token(self, user: UserLike, connection: str, *, access_token: str, refresh_token: str | None = None,
                     scopes: str | Iterable[str] = (), expires_at: float | None = None,
                     token_type: str = "Bearer") -> None:
        """Store tokens obtained elsewhere (a migration, an app's own OAuth flow, tests)."""
        if not access_token:
            raise ConfigurationError("import_token() needs an access token")
        self._run(self._import_op(_user_key(user), connection, access_token, refresh_token,
                                  normalize_scopes(scopes), expires_at, token_type))

    async def aimport_token(self, user: UserLike, connection: str, *, access_token: str,
                            refresh_token: str | None = None, scopes: str | Iterable[str] = (),
                            expires_at: float | None = None, token_type: str = "Bearer") -> None:
        """Async :meth:`import_token`."""
        if not access_token:
            raise ConfigurationError("import_token() needs an access token")
        await self._arun(self._import_op(_user_key(user), connection, access_token, refresh_token,
                                         normalize_scopes(scopes), expires_at, token_type))

    def _revoke_op(self, user_key: str, connection: str) -> VaultOp[RevokeResult]:
        source = self.source(connection)
        self._cache.invalidate(user_key, connection)
        if not isinstance(source, LocalOAuthSource):
            return RevokeResult(connection, deleted=False, upstream_revoked=False,
                                error=f"credentials of {connection!r} are not stored here ({source.kind})")
        ns = user_ns(user_key)
        item = yield from store_get(ns, connection)
        if item is None:
            return RevokeResult(connection, deleted=False, upstream_revoked=False)
        upstream, error = False, None
        try:
            record = TokenRecord.from_value(self.keyring, item.value, user=user_key, connection=connection)
        except VaultDecryptionError:
            record, error = None, "the record cannot be decrypted; deleted without revoking upstream"
        except VaultRecordError:
            record, error = None, "the record is damaged; deleted without revoking upstream"
        if record is not None:
            try:
                meta = yield from source.client.metadata_flow()
                if meta.revocation_endpoint:
                    if record.refresh_token:
                        yield from source.client.revoke_flow(record.refresh_token, token_type_hint="refresh_token")
                    yield from source.client.revoke_flow(record.access_token, token_type_hint="access_token")
                    upstream = True
                else:
                    error = "the provider has no revocation endpoint; deleted locally"
            except AgentAuthError as exc:
                error = f"upstream revocation failed ({exc}); deleted locally"
        yield from store_put(ns, connection, None)
        self._cache.invalidate(user_key, connection)
        log.info("vault: revoked connection=%s user=%s upstream=%s", connection, user_key, upstream)
        emit_audit("token_revoked", user=user_key, connection=connection,
                   outcome="revoked_upstream" if upstream else "deleted")
        return RevokeResult(connection, deleted=True, upstream_revoked=upstream, error=error)

    def revoke(self, user: UserLike, connection: str) -> RevokeResult:
        """Revoke at the upstream (RFC 7009, when it has an endpoint) and delete the record."""
        return self._run(self._revoke_op(_user_key(user), connection))

    async def arevoke(self, user: UserLike, connection: str) -> RevokeResult:
        """Async :meth:`revoke`."""
        return await self._arun(self._revoke_op(_user_key(user), connection))

    # ------------------------------------------------------------------ connect

    def _start_op(self, user: UserLike, connection: str, scopes: tuple[str, ...], thread_id: str | None,
                  checkpoint_ns: str | None, tool_call_id: str | None) -> VaultOp[ConnectRequest]:
        user_key = _user_key(user)
        source = self._local(connection)
        conn = source.connection
        granted: tuple[str, ...] = ()
        try:
            record = yield from source.read(user_key)
            if record is not None:
                granted = record.scopes
        except _UNREADABLE:
            pass  # connecting again overwrites the unreadable record
        # Incremental: ask for everything the user granted before plus what is missing.
        want = normalize_scopes(set(scopes) | set(conn.scopes) | set(granted))
        now = self.clock()
        if thread_id or tool_call_id:
            seed = "|".join((user_key, thread_id or "-", checkpoint_ns or "", tool_call_id or "-", connection,
                             " ".join(want)))
            pid = hashlib.sha256(seed.encode()).hexdigest()[:32]
            item = yield from store_get(PENDING_NS, pid)
            old = stored_pending(item.value, pid) if item is not None else None
            if old is not None and old.status == "pending" and old.user == user_key and old.expires_at > now + 60:
                try:
                    secret = open_json(self.keyring, old.secret, pending_aad(pid, user_key, connection),
                                       what="pending connect")
                    url = secret["authorize_url"]
                    if isinstance(url, str):
                        return ConnectRequest(pid, connection, want, url, old.expires_at)
                except (VaultDecryptionError, KeyError):
                    pass
        else:
            pid = secrets.token_hex(16)
        state_secret = secrets.token_urlsafe(32)
        state = f"{pid}.{state_secret}"
        pkce = Pkce.generate()
        assert conn.redirect_uri is not None
        url = yield from source.client.authorization_url_flow(
            conn.redirect_uri, state=state, pkce=pkce, scope=list(want), extra=conn.authorize_params or None,
        )
        expires_at = now + self.connect_ttl
        value = {
            "v": VERSION, "user": user_key, "connection": connection, "scopes": list(want),
            "thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "tool_call_id": tool_call_id,
            "status": "pending", "created_at": now, "expires_at": expires_at, "completed_at": None,
            "resumed": False, "abandoned": False, "next_check_at": 0.0, "error": None,
            "state_hash": _state_hash(state_secret),
            # RFC 6749 4.1.3: the code is redeemed with the redirect_uri the flow started with,
            # even if the connection's setting changed since (a new callback port, a redeploy).
            "redirect_uri": conn.redirect_uri,
            # who to resume the thread as (a resumer rebuilds the runtime context from it)
            "identity": ({"subject": user.subject, "issuer": user.issuer, "tenant": user.tenant}
                         if isinstance(user, UserIdentity) else None),
            "secret": seal_json(self.keyring, {"verifier": pkce.verifier, "authorize_url": url},
                                pending_aad(pid, user_key, connection)),
        }
        yield from store_put(PENDING_NS, pid, value)
        log.info("vault: connect started connection=%s user=%s id=%s", connection, user_key, pid)
        return ConnectRequest(pid, connection, want, url, expires_at)

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
        return self._run(self._start_op(user, connection, normalize_scopes(scopes), thread_id,
                                        checkpoint_ns, tool_call_id))

    async def astart_connect(self, user: UserLike, connection: str, scopes: str | Iterable[str] | None = None, *,
                             thread_id: str | None = None, checkpoint_ns: str | None = None,
                             tool_call_id: str | None = None) -> ConnectRequest:
        """Async :meth:`start_connect`."""
        return await self._arun(self._start_op(user, connection, normalize_scopes(scopes), thread_id,
                                               checkpoint_ns, tool_call_id))

    def _complete_op(self, state: Any, code: Any, user_key: str | None, error: Any, error_description: Any,
                     iss: Any) -> VaultOp[ConnectResult]:
        if not isinstance(state, str) or state.count(".") != 1 or len(state) > 200:
            raise CallbackStateError("the callback has no valid state parameter",
                                     hint="This link is not valid. Start connecting the account again.")
        pid, secret = state.split(".")
        item = yield from store_get(PENDING_NS, pid) if pid.isalnum() else _none()
        pending = stored_pending(item.value, pid) if item is not None else None
        if pending is None or not hmac.compare_digest(pending.state_hash, _state_hash(secret)):
            raise CallbackStateError("unknown or expired connect state",
                                     hint="This link is not valid. Start connecting the account again.")
        value = item.value
        if pending.status != "pending":
            raise CallbackStateError("this connect link was already used",
                                     hint="This link was already used. Start connecting the account again.")
        now = self.clock()
        if pending.expires_at <= now:
            raise CallbackStateError("this connect link expired",
                                     hint="This link expired. Start connecting the account again.")
        owner_key = pending.user
        if user_key is not None and not hmac.compare_digest(user_key, owner_key):
            log.warning("vault: connect callback by another user refused (id=%s)", pid)
            raise CallbackStateError("this connect link was started by another user",
                                     hint="Sign in as the user who started connecting this account.")
        connection = pending.connection
        source = self._local(connection)
        if isinstance(iss, str) and iss and iss.rstrip("/") != str(source.connection.issuer).rstrip("/"):
            raise CallbackStateError("the callback names another issuer (possible mix-up attack)")
        if error is not None:
            yield from self._finish_pending(pid, value, "failed", str(error)[:64])
            raise oauth_error_from_response({"error": error, "error_description": error_description})
        if not isinstance(code, str) or not code or len(code) > 4096:
            raise InvalidRequestError("the callback has no authorization code")
        lease = self._env.lease
        owner = secrets.token_hex(8)
        if lease is not None:
            got = yield from lease.acquire(f"connect|{pid}", owner, self._env.lease_ttl)
            if not got:
                raise CallbackStateError("this connect link is being used right now")
        try:
            result = yield from self._complete_locked(pid, secret, code, source, user_key)
        except Exception:
            if lease is not None:
                yield from lease.release(f"connect|{pid}", owner)
            raise
        if lease is not None:
            yield from lease.release(f"connect|{pid}", owner)
        return result

    def _complete_locked(self, pid: str, secret: str, code: str, source: LocalOAuthSource,
                         user_key: str | None) -> VaultOp[ConnectResult]:
        item = yield from store_get(PENDING_NS, pid)  # again, under the lease
        pending = stored_pending(item.value, pid) if item is not None else None
        if pending is None or pending.status != "pending":
            raise CallbackStateError("this connect link was already used")
        value = item.value
        # pending -> redeeming guards the code redemption: one atomic claim (whatever the
        # lease's length or whether there is one), so the code is redeemed once.
        cas = compare_and_set(self.store)
        if not (yield Blocking(lambda: cas.swap(f"vault|connect|{pid}|redeem", "redeeming"))):
            raise CallbackStateError("this connect link was already used",
                                     hint="This link was already used. Start connecting the account again.")
        owner_key = pending.user
        connection = source.connection.name
        sealed = open_json(self.keyring, pending.secret, pending_aad(pid, owner_key, connection),
                           what="pending connect")
        if not isinstance(sealed.get("verifier"), str):
            raise CallbackStateError("this connect link's stored state is damaged",
                                     hint="This link is not valid. Start connecting the account again.")
        # Single use: consumed before the code is redeemed, whatever happens next.
        yield from self._finish_pending(pid, value, "redeeming", None)
        conn = source.connection
        assert conn.redirect_uri is not None
        try:
            response = yield from source.client.grant_flow(
                self._code_params(source, code, sealed["verifier"], pending.redirect_uri),
                idempotent=False)
        except AgentAuthError as exc:
            yield from self._finish_pending(pid, value, "failed", getattr(exc, "error", type(exc).__name__))
            emit_audit("token_refused", user=owner_key, connection=connection, scopes=tuple(pending.scopes),
                       thread_id=pending.thread_id, tool_call_id=pending.tool_call_id,
                       outcome=getattr(exc, "error", None) or type(exc).__name__, detail=str(exc))
            raise
        requested = tuple(pending.scopes)
        granted = tuple(sorted(set(response.scope))) if response.scope is not None else requested
        now = self.clock()
        old_rev, connected_at, old_refresh = 0, now, None
        try:
            old = yield from source.read(owner_key)
            if old is not None:
                old_rev, connected_at, old_refresh = old.rev, old.connected_at or now, old.refresh_token
        except _UNREADABLE:
            item = yield from store_get(user_ns(owner_key), connection)
            old_rev = _previous(item.value, connection, now)[0] if item is not None else 0
        record = TokenRecord(
            user=owner_key, connection=connection, source=source.kind, issuer=conn.issuer, scopes=granted,
            access_token=response.access_token,
            # An incremental grant may come without a new refresh token: keep the old one.
            refresh_token=response.refresh_token or old_refresh, token_type=response.token_type,
            expires_at=response.expires_at, status="active", rev=old_rev + 1, connected_at=connected_at,
            updated_at=now,
        )
        yield from source.write(record)
        self._cache.invalidate(owner_key, connection)
        missing = tuple(s for s in requested if s not in granted)
        yield from self._finish_pending(pid, value, "completed", None)
        yield from self._settle_siblings(pid, owner_key, connection, granted)
        log.info("vault: connected connection=%s user=%s id=%s", connection, owner_key, pid)
        emit_audit("token_obtained", user=owner_key, connection=connection, scopes=granted, outcome="connected",
                   thread_id=pending.thread_id, tool_call_id=pending.tool_call_id)
        return ConnectResult(
            id=pid, user=owner_key, connection=connection, scopes=granted, missing_scopes=missing,
            thread_id=pending.thread_id, checkpoint_ns=pending.checkpoint_ns, tool_call_id=pending.tool_call_id,
        )

    def _settle_siblings(self, pid: str, user_key: str, connection: str, granted: tuple[str, ...]) -> VaultOp[None]:
        """Other calls waiting for the same account (parallel tool calls, other threads) are
        satisfied too when the new grant covers their scopes: complete their flows so a
        resumer wakes every waiting thread, not just the one whose link was used."""
        items = yield from store_search(PENDING_NS, limit=10_000)
        now = self.clock()
        for item in items:
            other = stored_pending(item.value, item.key) if item.key != pid else None
            if (other is None or other.status != "pending" or other.user != user_key
                    or other.connection != connection or other.expires_at <= now
                    or not set(other.scopes) <= set(granted)):
                continue
            yield from store_put(PENDING_NS, item.key, {**item.value, "status": "completed", "error": None,
                                                        "secret": None, "completed_at": now, "completed_by": pid})

    @staticmethod
    def _code_params(source: LocalOAuthSource, code: str, verifier: str,
                     redirect_uri: str | None = None) -> dict[str, Any]:
        conn = source.connection
        return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or conn.redirect_uri,
                "code_verifier": verifier,
                "client_id": conn.client_id if conn.auth_method == "none" else None}

    def _finish_pending(self, pid: str, value: dict[str, Any], status: str, error: str | None) -> VaultOp[None]:
        value = {**value, "status": status, "error": error, "secret": None}  # verifier and link are spent
        if status in ("completed", "failed"):
            value["completed_at"] = self.clock()
        yield from store_put(PENDING_NS, pid, value)

    def complete_connect(self, state: str | None, code: str | None = None, *, user: UserLike | None = None,
                         error: str | None = None, error_description: str | None = None,
                         iss: str | None = None) -> ConnectResult:
        """Finish connecting: check ``state``, redeem ``code`` with the PKCE verifier, store the tokens.

        ``user`` is who finished the flow (the signed-in user of the web app): it must be
        the user who started it. Unknown, replayed, expired or another user's state raises
        :class:`CallbackStateError`; an ``error`` from the provider raises its
        :class:`OAuthError` (``access_denied``...) and ends the flow.
        """
        key = _user_key(user) if user is not None else None
        return self._run(self._complete_op(state, code, key, error, error_description, iss))

    async def acomplete_connect(self, state: str | None, code: str | None = None, *, user: UserLike | None = None,
                                error: str | None = None, error_description: str | None = None,
                                iss: str | None = None) -> ConnectResult:
        """Async :meth:`complete_connect`."""
        key = _user_key(user) if user is not None else None
        return await self._arun(self._complete_op(state, code, key, error, error_description, iss))

    # ------------------------------------------------------------------ pending flows (resumers)

    def _pending_op(self, user_key: str | None, status: str | None) -> VaultOp[list[PendingConnect]]:
        items = yield from store_search(PENDING_NS, limit=10_000)
        now = self.clock()
        out = []
        for item in items:
            p = pending_info(item.key, item.value, now)
            if p is None or (user_key is not None and p.user != user_key):
                continue
            if status is not None and p.status != status:
                continue
            out.append(p)
        return sorted(out, key=lambda p: p.created_at)

    def pending_connects(self, user: UserLike | None = None, *, status: str | None = None) -> list[PendingConnect]:
        """Connect flows in the store (``status``: pending, completed, failed, expired)."""
        return self._run(self._pending_op(_user_key(user) if user is not None else None, status))

    async def apending_connects(self, user: UserLike | None = None, *, status: str | None = None) -> \
            list[PendingConnect]:
        """Async :meth:`pending_connects`."""
        return await self._arun(self._pending_op(_user_key(user) if user is not None else None, status))

    def _settle_op(self, pid: str, resumed: bool, retry_at: float | None) -> VaultOp[bool]:
        item = yield from store_get(PENDING_NS, pid)
        pending = stored_pending(item.value, pid) if item is not None else None
        if pending is None or pending.resumed:
            return False
        if pending.status in ("pending", "redeeming"):
            # A new flow was started under the same id (the resumed run asked again after a
            # failure): the outcome belongs to the finished one, not to this one.
            return False
        if resumed:
            update = {"resumed": True}
        elif retry_at is None:
            update = {"abandoned": True}
        else:
            update = {"next_check_at": retry_at}
        yield from store_put(PENDING_NS, pid, {**item.value, **update})
        return True

    def mark_resumed(self, pending_id: str, *, resumed: bool = True, retry_at: float | None = None) -> bool:
        """Record a resumer's outcome for a finished flow: resumed (``False`` if it already
        was), to retry at ``retry_at``, or abandoned (``resumed=False``, no ``retry_at``)."""
        return self._run(self._settle_op(pending_id, resumed, retry_at))

    async def amark_resumed(self, pending_id: str, *, resumed: bool = True, retry_at: float | None = None) -> bool:
        """Async :meth:`mark_resumed`."""
        return await self._arun(self._settle_op(pending_id, resumed, retry_at))

    def _purge_op(self, older_than: float) -> VaultOp[int]:
        items = yield from store_search(PENDING_NS, limit=10_000)
        cutoff = self.clock() - older_than
        count = 0
        for item in items:
            pending = stored_pending(item.value, item.key)
            if pending is None or pending.expires_at < cutoff:  # a damaged record is purged
                yield from store_put(PENDING_NS, item.key, None)
                count += 1
        return count

    def purge_pending(self, older_than: float = 86_400.0) -> int:
        """Delete connect flows that expired more than ``older_than`` seconds ago."""
        return self._run(self._purge_op(older_than))

    # ------------------------------------------------------------------ key rotation

    def _reencrypt_op(self) -> VaultOp[int]:
        from langgraph.store.base import ListNamespacesOp, MatchCondition

        results = yield from _store_ops((ListNamespacesOp(
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


def _none() -> VaultOp[None]:
    return None
    yield  # pragma: no cover - makes this a generator


def _store_ops(ops: tuple[Any, ...]) -> VaultOp[list[Any]]:
    from langchain_agent_auth.core.effects import StoreOps

    return (yield StoreOps(ops))


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


def pending_info(pid: str, value: Any, now: float) -> PendingConnect | None:
    p = stored_pending(value, pid)
    if p is None:
        return None
    status = p.status
    if status == "pending" and p.expires_at <= now:
        status = "expired"
    return PendingConnect(
        id=pid, user=p.user, connection=p.connection, scopes=tuple(p.scopes), status=status,
        created_at=p.created_at, expires_at=p.expires_at, thread_id=p.thread_id, checkpoint_ns=p.checkpoint_ns,
        tool_call_id=p.tool_call_id, completed_at=p.completed_at, error=p.error, resumed=p.resumed,
        abandoned=p.abandoned, next_check_at=p.next_check_at,
        identity=p.identity.model_dump() if p.identity is not None else None,
    )


def _previous(value: Any, connection: str, now: float) -> tuple[int, float]:
    """The revision and connection time of a record about to be overwritten (defaults if damaged)."""
    try:
        clear = stored_token(value, connection)
    except _UNREADABLE:
        return 0, now
    return clear.rev, clear.connected_at or now

