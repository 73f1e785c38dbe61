"""Device authorization (RFC 8628) as a durable pause, for CLI and headless agents.

An agent without a browser asks the provider for a user code; the graph pauses with a
``device_authorization`` payload (verification URI and user code, never the device code);
the user approves on another device; the resumer (``ApprovalResumer(graph,
sources=[DevicePendingSource(authorizer)])``) polls the provider respecting ``interval`` and
``slow_down`` and resumes the thread; the node gets the tokens (never stored in state).

:class:`DeviceAuthorizer` keeps one record per pending call in the store (keyed by thread,
checkpoint namespace and tool call, so a re-run node never starts a second request), with the
device code and, once approved, the tokens sealed with the keyring. Use it to sign a user in
(:meth:`DeviceAuthorizer.sign_in`, the identity from the verified ID token) or to connect an
account (``on_token`` stores the tokens, e.g. in the vault with ``import_token``).

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from langchain_agent_auth.core.crypto import Keyring
    >>> from langchain_agent_auth.oauth import OAuthClient
    >>> authorizer = DeviceAuthorizer(OAuthClient("https://idp.example", "cli", auth_method="none"),
    ...                               store=InMemoryStore(), keyring=Keyring.generate())
    >>> DevicePendingSource(authorizer).due(0.0, 10)
    []
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from langchain_agent_auth.core.crypto import Keyring, default_keyring
from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import (
    AccessDeniedError,
    AgentAuthError,
    AuthorizationPendingError,
    ExpiredTokenError,
    OAuthError,
    ProtocolError,
    ProviderUnavailableError,
    SlowDownError,
)
from langchain_agent_auth.core.pause import PausePayload, ResumeModel, pause, validate_resume
from langchain_agent_auth.core.progress import WaitProgress, emit_progress
from langchain_agent_auth.oauth.client import OAuthClient
from langchain_agent_auth.oauth.device import DeviceAuthorizationResponse
from langchain_agent_auth.oauth.flows import SLOW_DOWN_STEP
from langchain_agent_auth.oauth.tokens import TokenResponse
from langchain_agent_auth.resume._pending import PendingItem, StoreClaims

__all__ = ["DeviceAuthorizationPayload", "DeviceAuthorizationResume", "DeviceAuthorizer", "DevicePendingSource"]

log = logging.getLogger("langchain_agent_auth.identity")

NAMESPACE = ("agent_auth", "device")
Purpose = Literal["sign_in", "connect_account"]
_TERMINAL = ("denied", "expired", "failed")
_CLAIM_TTL = 86400.0


class DeviceAuthorizationResume(ResumeModel):
    """The resume value of a ``device_authorization`` pause: look again, or give up."""

    device_id: str
    action: Literal["check", "cancel"] = "check"


class DeviceAuthorizationPayload(PausePayload):
    """The ``device_authorization`` interrupt: where the user goes and which code they type.

    Example:
        >>> p = DeviceAuthorizationPayload(device_id="d1", user_code="WDJB-MJHT",
        ...     verification_uri="https://idp.example/device", expires_at=1.0, interval=5.0)
        >>> d = p.to_interrupt()
        >>> d["type"], d["user_code"], "device_code" in d
        ('device_authorization', 'WDJB-MJHT', False)
    """

    type: Literal["device_authorization"] = "device_authorization"
    device_id: str
    purpose: Purpose = "sign_in"
    connection: str | None = None
    verification_uri: str
    verification_uri_complete: str | None = None
    user_code: str
    expires_at: float
    interval: float
    message: str = ""
    resume_model = DeviceAuthorizationResume


@dataclass
class DeviceRecord:
    """One device authorization a paused call waits for (the codes sealed)."""

    id: str
    purpose: str
    connection: str | None
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float
    next_check_at: float
    status: str = "pending"  # pending, approved, denied, expired, failed
    sealed: dict[str, Any] | None = None  # {"device_code": ..., "token": {...}}
    thread_id: str | None = None
    checkpoint_ns: str = ""
    tool_call_id: str | None = None
    watch: bool = True
    error: str | None = None
    context: dict[str, Any] | None = field(default=None)


def _key(thread_id: str | None, checkpoint_ns: str, tool_call_id: str | None, name: str) -> str:
    raw = "\x1f".join([thread_id or "-", checkpoint_ns, tool_call_id or "-", name])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class DeviceAuthorizer:
    """Drive RFC 8628 device authorization as a pause (sync and async).

    Args:
        client: an :class:`OAuthClient` for the provider (its metadata must advertise
            ``device_authorization_endpoint``).
        scope: what to ask for (``openid`` included for a sign-in).
        store: the LangGraph ``BaseStore`` the graph and the resumer share.
        keyring: seals the device code and tokens (default: the data directory's keys).
        purpose: ``sign_in`` or ``connect_account`` (then ``connection`` names the account).
        on_token: called once with ``(token, record)`` when the user approved (e.g. store
            the tokens in the vault); never given to the model.
        name: distinguishes several authorizers in one graph.
    """

    def __init__(self, client: OAuthClient, *, scope: str | Sequence[str] = "openid", store: Any,
                 keyring: Keyring | None = None, purpose: Purpose = "sign_in", connection: str | None = None,
                 on_token: Callable[[TokenResponse, DeviceRecord], None] | None = None, name: str = "device",
                 clock: Callable[[], float] = time.time) -> None:
        if store is None:
            raise ValueError("DeviceAuthorizer needs the store the graph and the resumer share")
        self.client = client
        self.scope = scope if isinstance(scope, str) else " ".join(scope)
        self.store = store
        self.keyring = keyring or default_keyring()
        self.purpose = purpose
        self.connection = connection
        self.on_token = on_token
        self.name = name
        self.clock = clock

    def __repr__(self) -> str:
        return f"DeviceAuthorizer(name={self.name!r}, purpose={self.purpose!r}, connection={self.connection!r})"

    # -- records

    def _seal(self, rec: DeviceRecord, data: dict[str, Any]) -> dict[str, Any]:
        return self.keyring.seal(json.dumps(data).encode(), aad=f"device|{rec.id}".encode())

    def _open(self, rec: DeviceRecord) -> dict[str, Any]:
        if not rec.sealed:
            return {}
        return json.loads(self.keyring.open(rec.sealed, aad=f"device|{rec.id}".encode()))

    @staticmethod
    def _load(value: Any) -> DeviceRecord | None:
        return DeviceRecord(**value) if isinstance(value, dict) else None

    def get(self, device_id: str) -> DeviceRecord | None:
        """The record ``device_id``, if any."""
        return run(self._get(device_id))

    async def aget(self, device_id: str) -> DeviceRecord | None:
        """Async :meth:`get`."""
        return await arun(self._get(device_id))

    def put(self, rec: DeviceRecord) -> DeviceRecord:
        return run(self._put(rec))

    async def aput(self, rec: DeviceRecord) -> DeviceRecord:
        return await arun(self._put(rec))

    def pending(self) -> list[DeviceRecord]:
        """Records a resumer watches (pending, or answered and not resumed yet)."""
        return run(self._pending())

    async def apending(self) -> list[DeviceRecord]:
        """Async :meth:`pending`."""
        return await arun(self._pending())

    # The record flows: each store access is a step the sync or the async driver carries out
    # with the store's own methods.

    def _get(self, device_id: str) -> Flow[DeviceRecord | None]:
        item = yield Call(lambda: self.store.get(NAMESPACE, device_id), lambda: self.store.aget(NAMESPACE, device_id))
        return self._load(item.value) if item else None

    def _put(self, rec: DeviceRecord) -> Flow[DeviceRecord]:
        value = asdict(rec)
        yield Call(lambda: self.store.put(NAMESPACE, rec.id, value), lambda: self.store.aput(NAMESPACE, rec.id, value))
        return rec

    def _delete(self, device_id: str) -> Flow[None]:
        yield Call(lambda: self.store.delete(NAMESPACE, device_id), lambda: self.store.adelete(NAMESPACE, device_id))

    def _pending(self) -> Flow[list[DeviceRecord]]:
        items = yield Call(lambda: self.store.search(NAMESPACE, filter={"watch": True}, limit=1000),
                           lambda: self.store.asearch(NAMESPACE, filter={"watch": True}, limit=1000))
        return [r for r in (self._load(i.value) for i in items) if r is not None]

    # -- the protocol, as plain helpers

    def _new(self, device_id: str, started: DeviceAuthorizationResponse, where: dict[str, Any]) -> DeviceRecord:
        rec = DeviceRecord(
            id=device_id, purpose=self.purpose, connection=self.connection, user_code=started.user_code,
            verification_uri=started.verification_uri, verification_uri_complete=started.verification_uri_complete,
            expires_at=started.expires_at, interval=started.interval,
            next_check_at=self.clock() + started.interval, **where)
        rec.sealed = self._seal(rec, {"device_code": started.device_code})
        return rec

    def _outcome(self, rec: DeviceRecord, result: TokenResponse | BaseException) -> DeviceRecord:
        now = self.clock()
        if isinstance(result, TokenResponse):
            data = self._open(rec)
            data["token"] = {**asdict(result), "scope": list(result.scope) if result.scope else None}
            done = replace(rec, status="approved", next_check_at=now)
            done.sealed = self._seal(done, data)
            if self.on_token is not None:
                self.on_token(result, done)
            return done
        if isinstance(result, AuthorizationPendingError):
            return replace(rec, next_check_at=now + rec.interval)
        if isinstance(result, SlowDownError):
            slower = rec.interval + SLOW_DOWN_STEP
            return replace(rec, interval=slower, next_check_at=now + slower)
        if isinstance(result, AccessDeniedError):
            return replace(rec, status="denied", sealed=None, error="access_denied", next_check_at=now)
        if isinstance(result, ExpiredTokenError):
            return replace(rec, status="expired", sealed=None, error="expired_token", next_check_at=now)
        if isinstance(result, ProviderUnavailableError | ProtocolError) and now < rec.expires_at:
            return replace(rec, next_check_at=now + max(rec.interval, 5.0) * 2)
        if isinstance(result, OAuthError | AgentAuthError):
            return replace(rec, status="failed", sealed=None, error=getattr(result, "error", None) or "failed",
                           next_check_at=now)
        raise result

    def _due(self, rec: DeviceRecord) -> bool:
        return rec.status == "pending" and self.clock() >= rec.next_check_at

    def poll(self, rec: DeviceRecord) -> DeviceRecord:
        """Ask the provider once if due (never sooner than ``interval``); save and return."""
        return run(self._poll(rec))

    async def apoll(self, rec: DeviceRecord) -> DeviceRecord:
        """Async :meth:`poll`."""
        return await arun(self._poll(rec))

    def _poll(self, rec: DeviceRecord) -> Flow[DeviceRecord]:
        if rec.status == "pending" and self.clock() >= rec.expires_at:
            return (yield from self._put(replace(rec, status="expired", sealed=None, error="expired_token")))
        if not self._due(rec):
            return rec
        try:
            result: TokenResponse | BaseException = yield Call(
                lambda: self.client.device_poll(self._open(rec)["device_code"]),
                lambda: self.client.adevice_poll(self._open(rec)["device_code"]))
        except AgentAuthError as exc:
            result = exc
        return (yield from self._put(self._outcome(rec, result)))

    def token(self, rec: DeviceRecord) -> TokenResponse:
        """The approved record's tokens (for the node that paused; never put them in state)."""
        data = dict(self._open(rec).get("token") or {})
        if not data.get("access_token"):
            raise ProtocolError("the device authorization holds no token")
        data["scope"] = tuple(data["scope"]) if data.get("scope") else None
        return TokenResponse(**data)

    def payload(self, rec: DeviceRecord) -> DeviceAuthorizationPayload:
        what = f"connect your {rec.connection} account" if rec.purpose == "connect_account" else "sign in"
        return DeviceAuthorizationPayload(
            device_id=rec.id, purpose=rec.purpose, connection=rec.connection,  # type: ignore[arg-type]
            verification_uri=rec.verification_uri, verification_uri_complete=rec.verification_uri_complete,
            user_code=rec.user_code, expires_at=rec.expires_at, interval=rec.interval,
            tool_call_id=rec.tool_call_id,
            message=f"To {what}, open {rec.verification_uri} and enter the code {rec.user_code}")

    def _progress(self, rec: DeviceRecord) -> WaitProgress:
        return WaitProgress(
            kind="device_authorization", state="paused", connection=rec.connection, tool_call_id=rec.tool_call_id,
            verification_uri=rec.verification_uri, user_code=rec.user_code, expires_at=rec.expires_at,
            seconds_left=max(0, round(rec.expires_at - self.clock())), next_check_at=rec.next_check_at,
            message=self.payload(rec).message)

    @staticmethod
    def _refusal(rec: DeviceRecord) -> AgentAuthError:
        if rec.status == "denied":
            return AccessDeniedError("the user denied the device authorization")
        if rec.status == "expired":
            return ExpiredTokenError("the device code expired before the user approved it")
        return OAuthError(f"the device authorization failed ({rec.error or 'unknown error'})", error=rec.error)

    @staticmethod
    def _where(tool_call_id: str | None) -> tuple[dict[str, Any], Any]:
        from langgraph.config import get_config

        config = get_config()
        configurable = config.get("configurable") or {}
        where = {"thread_id": configurable.get("thread_id"), "checkpoint_ns": configurable.get("checkpoint_ns") or "",
                 "tool_call_id": tool_call_id}
        from langchain_agent_auth.core.identity import get_current_user

        user = get_current_user(required=False)  # connecting an account: resume as that user (a sign-in has none)
        if user is not None:
            where["context"] = {"user": user.model_dump(include={"subject", "issuer", "tenant"})}
        try:
            from langgraph.config import get_stream_writer

            writer = get_stream_writer()
        except Exception:  # outside a streamed run
            writer = None
        return where, writer

    # -- inside a graph node or tool

    def authorize(self, *, tool_call_id: str | None = None) -> TokenResponse:
        """Pause the graph until the user approved on another device; the tokens.

        Must run in a node or tool of a graph with a checkpointer; everything before it must
        be idempotent (the node re-runs on resume). Raises ``AccessDeniedError`` /
        ``ExpiredTokenError`` when the user refused or took too long.
        """
        return run(self._authorizing(tool_call_id))

    async def aauthorize(self, *, tool_call_id: str | None = None) -> TokenResponse:
        """Async :meth:`authorize`."""
        return await arun(self._authorizing(tool_call_id))

    def _authorizing(self, tool_call_id: str | None) -> Flow[TokenResponse]:
        where, writer = self._where(tool_call_id)
        device_id = _key(where["thread_id"], where["checkpoint_ns"], tool_call_id, self.name)
        rec = yield from self._get(device_id)
        if rec is None:
            started = yield Call(lambda: self.client.device_authorize(scope=self.scope),
                                 lambda: self.client.adevice_authorize(scope=self.scope))
            rec = yield from self._put(self._new(device_id, started, where))
        while True:
            rec = yield from self._poll(rec)
            if rec.status == "approved":
                yield from self._put(replace(rec, watch=False))
                return self.token(rec)
            if rec.status in _TERMINAL:
                yield from self._delete(rec.id)  # the next attempt starts afresh
                raise self._refusal(rec)
            raw = pause(self.payload(rec), DeviceAuthorizationResume,
                        on_pause=lambda rec=rec: emit_progress(writer, self._progress(rec)))
            rec = self._resumed(rec, raw) or (yield from self._get(device_id)) or rec

    def _resumed(self, rec: DeviceRecord, raw: Any) -> DeviceRecord | None:
        try:
            value = validate_resume(raw, DeviceAuthorizationResume)
        except AgentAuthError:
            log.warning("device authorization: ignoring a malformed resume value")
            return None
        if value.device_id == rec.id and value.action == "cancel":
            return replace(rec, status="failed", error="cancelled", sealed=None)
        return None

    def sign_in(self, verifier: Any, *, tool_call_id: str | None = None) -> Any:
        """:meth:`authorize`, then the user from the verified ID token (a ``UserIdentity``)."""
        return run(self._signing_in(verifier, tool_call_id))

    async def asign_in(self, verifier: Any, *, tool_call_id: str | None = None) -> Any:
        """Async :meth:`sign_in`."""
        return await arun(self._signing_in(verifier, tool_call_id))

    def _signing_in(self, verifier: Any, tool_call_id: str | None) -> Flow[Any]:
        from langchain_agent_auth.core.identity import UserIdentity

        token = yield from self._authorizing(tool_call_id)
        if not token.id_token:
            raise ProtocolError("the provider returned no ID token (ask for the openid scope)")
        claims = yield Call(lambda: verifier.verify(token.id_token), lambda: verifier.averify(token.id_token))
        return UserIdentity.from_claims(claims, source="token")


class DevicePendingSource(StoreClaims):
    """The resumer's plug-in for device authorizations: polls each due record once
    (respecting ``interval`` and ``slow_down``) and resumes the thread once answered.

    Example:
        >>> DevicePendingSource.name
        'device'
    """

    name = "device"
    claim_ttl = _CLAIM_TTL

    def __init__(self, authorizer: DeviceAuthorizer) -> None:
        self.authorizer = authorizer

    def _item(self, rec: DeviceRecord) -> PendingItem:
        return PendingItem(source=self.name, key=rec.id, ref=rec.id, interrupt_type="device_authorization",
                           ref_field="device_id", thread_id=rec.thread_id or "",
                          checkpoint_ns=rec.checkpoint_ns, tool_call_id=rec.tool_call_id, expires_at=rec.expires_at,
                          context=rec.context, claim=f"{rec.status}|{rec.next_check_at!r}")

    def _select(self, records: list[DeviceRecord], now: float, limit: int) -> list[PendingItem]:
        due = [r for r in records if r.thread_id and (r.status != "pending" or r.next_check_at <= now)]
        return [self._item(r) for r in due[:limit]]

    def due(self, now: float, limit: int) -> list[PendingItem]:
        return self._select(self.authorizer.pending(), now, limit)

    async def adue(self, now: float, limit: int) -> list[PendingItem]:
        return self._select(await self.authorizer.apending(), now, limit)

    def _checked(self, item: PendingItem, rec: DeviceRecord | None) -> PendingItem | None:
        if rec is None or rec.status == "pending":
            return None
        return replace(item, resume={"device_id": rec.id, "action": "check"})

    def check(self, item: Any, now: float) -> Any:
        return run(self._checking(item))

    async def acheck(self, item: Any, now: float) -> Any:
        return await arun(self._checking(item))

    def _checking(self, item: Any) -> Flow[Any]:
        rec = yield from self.authorizer._get(item.key)
        if rec is not None:
            rec = yield from self.authorizer._poll(rec)
        return self._checked(item, rec)

    def _settled(self, rec: DeviceRecord, resumed: bool, now: float, retry_in: float | None) -> DeviceRecord:
        if retry_in is None:  # resumed for good, or given up
            return replace(rec, watch=False)
        return replace(rec, next_check_at=now + (retry_in or 0.0))

    def settle(self, item: Any, resumed: bool, now: float, retry_in: float | None) -> None:
        run(self._settling(item, resumed, now, retry_in))

    async def asettle(self, item: Any, resumed: bool, now: float, retry_in: float | None) -> None:
        await arun(self._settling(item, resumed, now, retry_in))

    def _settling(self, item: Any, resumed: bool, now: float, retry_in: float | None) -> Flow[None]:
        rec = yield from self.authorizer._get(item.key)
        if rec is not None:
            yield from self.authorizer._put(self._settled(rec, resumed, now, retry_in))

    def claims_store(self) -> Any:
        return self.authorizer.store
