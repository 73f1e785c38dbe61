"""The vault's connect flow: authorize URL, callback, and the pending connect records.

A user connects an account with authorization code + PKCE. :meth:`ConnectFlows.start`
stores a :class:`~langchain_agent_auth.vault._records.PendingRecord` (the state's binding to
user, thread, connection, scopes and expiry, the sealed PKCE verifier) and returns the
authorize URL; :meth:`ConnectFlows.complete` checks the callback's ``state`` against it,
redeems the code once and stores the tokens. Resumers list, settle and purge the records.

Every operation is a flow of the effect runtime (:mod:`langchain_agent_auth.core.effects`):
:class:`~langchain_agent_auth.vault.TokenVault` runs it with ``run`` or ``arun``, so its
public sync and async methods are thin wrappers over the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import TYPE_CHECKING, Any

from langchain_agent_auth.core.audit._emit import emit_audit
from langchain_agent_auth.core.effects import Blocking, Flow, store_get, store_put, store_search
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    CallbackStateError,
    InvalidRequestError,
    VaultDecryptionError,
    VaultRecordError,
    oauth_error_from_response,
)
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.core.store_cas import compare_and_set
from langchain_agent_auth.oauth import Pkce, TokenResponse
from langchain_agent_auth.vault._model import (
    ConnectRequest,
    ConnectResult,
    PendingConnect,
    UserLike,
    normalize_scopes,
    user_key_of,
)
from langchain_agent_auth.vault._records import (
    PENDING_NS,
    PendingRecord,
    StoredIdentity,
    TokenRecord,
    open_json,
    pending_aad,
    seal_json,
    stored_pending,
    stored_token,
    user_ns,
)
from langchain_agent_auth.vault._sources import CredentialSource

if TYPE_CHECKING:
    from langchain_agent_auth.vault._vault import TokenVault

__all__ = ["ConnectFlows", "pending_info", "previous_record"]

log = logging.getLogger("langchain_agent_auth.vault")

_UNREADABLE = (VaultDecryptionError, VaultRecordError)
_INVALID_LINK = "This link is not valid. Start connecting the account again."
_USED_LINK = "This link was already used. Start connecting the account again."


def _state_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ConnectFlows:
    """The connect-account flows of one :class:`TokenVault` (its keyring, store, clock, lease)."""

    def __init__(self, vault: TokenVault) -> None:
        self.vault = vault

    # ------------------------------------------------------------------ start

    def start(self, user: UserLike, connection: str, scopes: tuple[str, ...], thread_id: str | None,
              checkpoint_ns: str | None, tool_call_id: str | None) -> Flow[ConnectRequest]:
        """A pending connect flow and its authorize URL (the same link for the same pending call)."""
        user_key = user_key_of(user)
        source = self.vault.connect_source(connection)
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
        now = self.vault.clock()
        if thread_id or tool_call_id:
            seed = "|".join((user_key, thread_id or "-", checkpoint_ns or "", tool_call_id or "-", connection,
                             " ".join(want)))
            pid = hashlib.sha256(seed.encode()).hexdigest()[:32]
            again = yield from self._same_link(pid, user_key, connection, want, now)
            if again is not None:
                return again
        else:
            pid = secrets.token_hex(16)
        state_secret = secrets.token_urlsafe(32)
        pkce = Pkce.generate()
        assert conn.redirect_uri is not None
        url = yield from source.client.authorization_url_flow(
            conn.redirect_uri, state=f"{pid}.{state_secret}", pkce=pkce, scope=list(want),
            extra=conn.authorize_params or None,
        )
        record = PendingRecord(
            user=user_key, connection=connection, scopes=list(want), thread_id=thread_id,
            checkpoint_ns=checkpoint_ns, tool_call_id=tool_call_id, status="pending", created_at=now,
            expires_at=now + self.vault.connect_ttl, state_hash=_state_hash(state_secret),
            # RFC 6749 4.1.3: the code is redeemed with the redirect_uri the flow started with,
            # even if the connection's setting changed since (a new callback port, a redeploy).
            redirect_uri=conn.redirect_uri,
            # who to resume the thread as (a resumer rebuilds the runtime context from it)
            identity=(StoredIdentity(subject=user.subject, issuer=user.issuer, tenant=user.tenant)
                      if isinstance(user, UserIdentity) else None),
            secret=seal_json(self.vault.keyring, {"verifier": pkce.verifier, "authorize_url": url},
                             pending_aad(pid, user_key, connection)),
        )
        yield from store_put(PENDING_NS, pid, record.to_value())
        log.info("vault: connect started connection=%s user=%s id=%s", connection, user_key, pid)
        return ConnectRequest(pid, connection, want, url, record.expires_at)

    def _same_link(self, pid: str, user_key: str, connection: str, want: tuple[str, ...],
                   now: float) -> Flow[ConnectRequest | None]:
        """The link of a pending flow started for the same call, if it is still good for a minute."""
        item = yield from store_get(PENDING_NS, pid)
        old = stored_pending(item.value, pid) if item is not None else None
        if old is None or old.status != "pending" or old.user != user_key \
                or old.expires_at <= now + 60:
            return None
        try:
            secret = open_json(self.vault.keyring, old.secret, pending_aad(pid, user_key, connection),
                               what="pending connect")
            url = secret["authorize_url"]
        except (VaultDecryptionError, KeyError):
            return None
        return ConnectRequest(pid, connection, want, url, old.expires_at) if isinstance(url, str) else None

    # ------------------------------------------------------------------ callback

    def complete(self, state: Any, code: Any, user_key: str | None, error: Any, error_description: Any,
                 iss: Any) -> Flow[ConnectResult]:
        """Check the callback against its pending record, then redeem the code under a lease."""
        if not isinstance(state, str) or state.count(".") != 1 or len(state) > 200:
            raise CallbackStateError("the callback has no valid state parameter", hint=_INVALID_LINK)
        pid, secret = state.split(".")
        pending = (yield from self._read(pid)) if pid.isalnum() else None
        if pending is None or not hmac.compare_digest(pending.state_hash, _state_hash(secret)):
            raise CallbackStateError("unknown or expired connect state", hint=_INVALID_LINK)
        self._check_open(pid, pending, user_key)
        source = self.vault.connect_source(pending.connection)
        if isinstance(iss, str) and iss and iss.rstrip("/") != str(source.connection.issuer).rstrip("/"):
            raise CallbackStateError("the callback names another issuer (possible mix-up attack)")
        if error is not None:
            yield from self._finish(pid, pending, "failed", str(error)[:64])
            raise oauth_error_from_response({"error": error, "error_description": error_description})
        if not isinstance(code, str) or not code or len(code) > 4096:
            raise InvalidRequestError("the callback has no authorization code")
        lease, owner = self.vault.lease, secrets.token_hex(8)
        if lease is not None:
            got = yield from lease.acquire(f"connect|{pid}", owner, self.vault.lease_ttl)
            if not got:
                raise CallbackStateError("this connect link is being used right now")
        try:
            result = yield from self._redeem(pid, code, source)
        except Exception:
            if lease is not None:
                yield from lease.release(f"connect|{pid}", owner)
            raise
        if lease is not None:
            yield from lease.release(f"connect|{pid}", owner)
        return result

    def _check_open(self, pid: str, pending: PendingRecord, user_key: str | None) -> None:
        """The link is unused, unexpired, and finished by the user who started it."""
        if pending.status != "pending":
            raise CallbackStateError("this connect link was already used", hint=_USED_LINK)
        if pending.expires_at <= self.vault.clock():
            raise CallbackStateError("this connect link expired",
                                     hint="This link expired. Start connecting the account again.")
        if user_key is not None and not hmac.compare_digest(user_key, pending.user):
            log.warning("vault: connect callback by another user refused (id=%s)", pid)
            raise CallbackStateError("this connect link was started by another user",
                                     hint="Sign in as the user who started connecting this account.")

    def _redeem(self, pid: str, code: str, source: CredentialSource) -> Flow[ConnectResult]:
        pending = yield from self._read(pid)  # again, under the lease
        if pending is None or pending.status != "pending":
            raise CallbackStateError("this connect link was already used")
        # pending -> redeeming guards the code redemption: one atomic claim (whatever the
        # lease's length or whether there is one), so the code is redeemed once.
        cas = compare_and_set(self.vault.store)
        if not (yield Blocking(lambda: cas.swap(f"vault|connect|{pid}|redeem", "redeeming"))):
            raise CallbackStateError("this connect link was already used", hint=_USED_LINK)
        connection = source.connection.name
        sealed = open_json(self.vault.keyring, pending.secret, pending_aad(pid, pending.user, connection),
                           what="pending connect")
        if not isinstance(sealed.get("verifier"), str):
            raise CallbackStateError("this connect link's stored state is damaged", hint=_INVALID_LINK)
        # Single use: consumed before the code is redeemed, whatever happens next.
        yield from self._finish(pid, pending, "redeeming", None)
        try:
            response = yield from source.client.grant_flow(
                _code_params(source, code, sealed["verifier"], pending.redirect_uri), idempotent=False)
        except AgentAuthError as exc:
            yield from self._finish(pid, pending, "failed", getattr(exc, "error", type(exc).__name__))
            emit_audit("token_refused", user=pending.user, connection=connection, scopes=tuple(pending.scopes),
                       thread_id=pending.thread_id, tool_call_id=pending.tool_call_id,
                       outcome=getattr(exc, "error", None) or type(exc).__name__, detail=str(exc))
            raise
        granted = yield from self._store_grant(source, pending, response)
        yield from self._finish(pid, pending, "completed", None)
        yield from self._settle_siblings(pid, pending.user, connection, granted)
        log.info("vault: connected connection=%s user=%s id=%s", connection, pending.user, pid)
        emit_audit("token_obtained", user=pending.user, connection=connection, scopes=granted, outcome="connected",
                   thread_id=pending.thread_id, tool_call_id=pending.tool_call_id)
        return ConnectResult(
            id=pid, user=pending.user, connection=connection, scopes=granted,
            missing_scopes=tuple(s for s in pending.scopes if s not in granted), thread_id=pending.thread_id,
            checkpoint_ns=pending.checkpoint_ns, tool_call_id=pending.tool_call_id,
        )

    def _store_grant(self, source: CredentialSource, pending: PendingRecord,
                     response: TokenResponse) -> Flow[tuple[str, ...]]:
        """Store the new grant over the user's old record; returns the granted scopes."""
        owner_key, conn = pending.user, source.connection
        granted = tuple(sorted(set(response.scope))) if response.scope is not None else tuple(pending.scopes)
        now = self.vault.clock()
        old_rev, connected_at, old_refresh = 0, now, None
        try:
            old = yield from source.read(owner_key)
            if old is not None:
                old_rev, connected_at, old_refresh = old.rev, old.connected_at or now, old.refresh_token
        except _UNREADABLE:
            item = yield from store_get(user_ns(owner_key), conn.name)
            old_rev = previous_record(item.value, conn.name, now)[0] if item is not None else 0
        yield from source.write(TokenRecord(
            user=owner_key, connection=conn.name, source=source.kind, issuer=conn.issuer, scopes=granted,
            access_token=response.access_token,
            # An incremental grant may come without a new refresh token: keep the old one.
            refresh_token=response.refresh_token or old_refresh, token_type=response.token_type,
            expires_at=response.expires_at, status="active", rev=old_rev + 1, connected_at=connected_at,
            updated_at=now,
        ))
        self.vault.invalidate(owner_key, conn.name)
        return granted

    def _settle_siblings(self, pid: str, user_key: str, connection: str, granted: tuple[str, ...]) -> Flow[None]:
        """Other calls waiting for the same account (parallel tool calls, other threads) are
        satisfied too when the new grant covers their scopes: complete their flows so a
        resumer wakes every waiting thread, not just the one whose link was used."""
        items = yield from store_search(PENDING_NS, limit=10_000)
        now = self.vault.clock()
        for item in items:
            other = stored_pending(item.value, item.key) if item.key != pid else None
            if (other is None or other.status != "pending" or other.user != user_key
                    or other.connection != connection or other.expires_at <= now
                    or not set(other.scopes) <= set(granted)):
                continue
            done = other.updated(status="completed", error=None, secret=None, completed_at=now, completed_by=pid)
            yield from store_put(PENDING_NS, item.key, done.to_value())

    def _finish(self, pid: str, pending: PendingRecord, status: str, error: str | None) -> Flow[None]:
        changes: dict[str, Any] = {"status": status, "error": error, "secret": None}  # the link is spent
        if status in ("completed", "failed"):
            changes["completed_at"] = self.vault.clock()
        yield from store_put(PENDING_NS, pid, pending.updated(**changes).to_value())

    def _read(self, pid: str) -> Flow[PendingRecord | None]:
        item = yield from store_get(PENDING_NS, pid)
        return stored_pending(item.value, pid) if item is not None else None

    # ------------------------------------------------------------------ resumers

    def pending(self, user_key: str | None, status: str | None) -> Flow[list[PendingConnect]]:
        """The connect flows in the store, oldest first (``status`` as a resumer sees it)."""
        items = yield from store_search(PENDING_NS, limit=10_000)
        now = self.vault.clock()
        out = []
        for item in items:
            p = pending_info(item.key, item.value, now)
            if p is None or (user_key is not None and p.user != user_key):
                continue
            if status is not None and p.status != status:
                continue
            out.append(p)
        return sorted(out, key=lambda p: p.created_at)

    def settle(self, pid: str, resumed: bool, retry_at: float | None) -> Flow[bool]:
        """Record a resumer's outcome for a finished flow (``False`` if there is none to record)."""
        pending = yield from self._read(pid)
        if pending is None or pending.resumed:
            return False
        if pending.status in ("pending", "redeeming"):
            # A new flow was started under the same id (the resumed run asked again after a
            # failure): the outcome belongs to the finished one, not to this one.
            return False
        if resumed:
            update: dict[str, Any] = {"resumed": True}
        elif retry_at is None:
            update = {"abandoned": True}
        else:
            update = {"next_check_at": retry_at}
        yield from store_put(PENDING_NS, pid, pending.updated(**update).to_value())
        return True

    def purge(self, older_than: float) -> Flow[int]:
        """Delete flows that expired more than ``older_than`` seconds ago (and damaged ones)."""
        items = yield from store_search(PENDING_NS, limit=10_000)
        cutoff = self.vault.clock() - older_than
        count = 0
        for item in items:
            pending = stored_pending(item.value, item.key)
            if pending is None or pending.expires_at < cutoff:
                yield from store_put(PENDING_NS, item.key, None)
                count += 1
        return count


def _code_params(source: CredentialSource, code: str, verifier: str, redirect_uri: str | None) -> dict[str, Any]:
    conn = source.connection
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or conn.redirect_uri,
            "code_verifier": verifier, "client_id": conn.client_id if conn.auth_method == "none" else None}


def pending_info(pid: str, value: Any, now: float) -> PendingConnect | None:
    """A stored pending record as the public :class:`PendingConnect` (``None`` if damaged)."""
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


def previous_record(value: Any, connection: str, now: float) -> tuple[int, float]:
    """The revision and connection time of a record about to be overwritten (defaults if damaged)."""
    try:
        clear = stored_token(value, connection)
    except _UNREADABLE:
        return 0, now
    return clear.rev, clear.connected_at or now
