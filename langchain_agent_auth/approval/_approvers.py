"""Who is asked, and how: :class:`CIBAApprover` (a push to the user's device through the
OpenID provider) and :class:`InAppApprover` (the application's own UI, via an interrupt).

An approver knows how to start an approval for a tool call, how to check on it once, how
to wait for it inline (``block`` mode) and what payload to pause with. The guard
(:mod:`._guard`) decides when to do which; the resumer uses :meth:`CIBAApprover.poll`.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, Literal

from langchain_agent_auth.approval._digest import preview_args
from langchain_agent_auth.approval._payloads import ApprovalPendingPayload, ToolApprovalPayload, approval_progress
from langchain_agent_auth.approval._recorded import _bounded, _resume_config, _start_error, _str_or_none
from langchain_agent_auth.approval._records import (
    ApprovalRecord,
    ApprovalStore,
    audit_record,
    default_keyring,
    new_approval_id,
    ping_key,
)
from langchain_agent_auth.approval._text import (
    BINDING_MESSAGE_MAX,
    BindingMessage,
    check_authorization_details,
    default_authorization_details,
)
from langchain_agent_auth.core.crypto import Keyring, server_role
from langchain_agent_auth.core.effects import Call, Flow, Sleep, arun, run
from langchain_agent_auth.core.errors import (
    AccessDeniedError,
    AgentAuthError,
    AuthorizationPendingError,
    ConfigurationError,
    ExpiredTokenError,
    InvalidGrantError,
    OAuthError,
    ProtocolError,
    ProviderUnavailableError,
    SlowDownError,
)
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.core.progress import emit_progress
from langchain_agent_auth.oauth import OAuthClient, PingReceiver, new_notification_token
from langchain_agent_auth.oauth.flows import SLOW_DOWN_STEP, BackchannelAuthResponse
from langchain_agent_auth.oauth.profiles import AUTH0, login_hint_for
from langchain_agent_auth.oauth.tokens import TokenResponse
from langchain_agent_auth.resume._pending import register_source

__all__ = ["Approver", "CIBAApprover", "InAppApprover"]

log = logging.getLogger("langchain_agent_auth.approval")

LoginHint = Literal["subject", "email", "iss_sub"] | Callable[[UserIdentity], Mapping[str, str]]
DetailsSpec = None | Literal[False] | Sequence[Mapping[str, Any]] | Callable[[str, Mapping[str, Any]], Any]
_MAX_OUTAGE_BACKOFF = 60.0


class Approver(ABC):
    """Base of approvers. ``store`` / ``keyring``: where pending approvals live (default:
    the graph's store, and the keyring from ``$AGENT_AUTH_ENCRYPTION_KEYS`` or the key file)."""

    kind: ClassVar[Literal["ciba", "in_app"]]
    name: str
    expires_in: float

    def __init__(self, *, store: Any = None, keyring: Keyring | None = None, name: str,
                 clock: Callable[[], float] = time.time) -> None:
        if keyring is not None and not isinstance(keyring, Keyring):
            raise ConfigurationError("keyring must be a langchain_agent_auth.crypto.Keyring")
        if keyring is None and server_role() is not None:
            keyring = default_keyring()  # on a server: fail at start, and no disk I/O later on its event loop
        self.store = store
        self._keyring = keyring
        self._keyring_lock = threading.Lock()
        self.name = name
        self.clock = clock

    @property
    def keyring(self) -> Keyring:
        with self._keyring_lock:
            if self._keyring is None:
                self._keyring = default_keyring()
            return self._keyring

    def approval_store(self, fallback: Any = None) -> ApprovalStore:
        """The :class:`ApprovalStore` for this approver (its store, else ``fallback``)."""
        return ApprovalStore(self.store if self.store is not None else fallback, self.keyring)

    def new_record(self, *, key: str, call: Any, user: UserIdentity, digest: str, **fields: Any) -> ApprovalRecord:
        now = self.clock()
        configurable = dict((call.config or {}).get("configurable") or {})
        metadata = dict((call.config or {}).get("metadata") or {})
        return ApprovalRecord(
            approval_id=new_approval_id(key), kind=self.kind, source=self.name,
            thread_id=call.thread_id, checkpoint_ns=call.checkpoint_ns, tool_call_id=call.tool_call_id,
            assistant_id=_str_or_none(configurable.get("assistant_id") or metadata.get("assistant_id")),
            graph_id=_str_or_none(configurable.get("graph_id") or metadata.get("graph_id")),
            resume_config=_resume_config(configurable),
            user_key=user.key, user=user.model_dump(mode="json"), tool=call.name, args_digest=digest,
            created_at=now, expires_at=now + self.expires_in, **fields,
        )

    @abstractmethod
    def payload(self, record: ApprovalRecord, call: Any) -> ApprovalPendingPayload | ToolApprovalPayload:
        """The interrupt payload for a pending record."""


# --------------------------------------------------------------------------- CIBA


class CIBAApprover(Approver):
    """Ask the user on their device through an OpenID provider's CIBA endpoint.

    Works with any provider found by discovery (``backchannel_authentication_endpoint``);
    :meth:`for_auth0` sets Auth0's ``/bc-authorize`` and its ``iss_sub`` login hint.

    Args:
        client: the agent's :class:`~langchain_agent_auth.oauth.OAuthClient`.
        scope / audience / resource / acr_values / requested_expiry: sent with the request
            (``audience`` only when set).
        login_hint: ``"subject"`` (default), ``"email"``, ``"iss_sub"`` (JSON, Auth0), or a
            callable ``user -> {"login_hint" | "login_hint_token" | "id_token_hint": ...}``.
        binding_message: ``None`` (default text from tool and arguments), a template
            (``"Pay {amount} EUR to {to}"``) or a callable ``(tool, args) -> str``; always
            sanitized and clipped to ``binding_message_max_length``.
        authorization_details: ``None`` (an ``agent_action`` with tool, bounded args and
            digest), ``False`` (none), a list, or a callable ``(tool, args) -> list``.
        delivery_mode: ``"poll"`` or ``"ping"`` (the client must be registered for ping;
            ``ping_receiver`` wakes ``block`` mode, the resumer's receiver the others). In
            ping mode the provider is only polled after a ping, or every ``ping_fallback``
            seconds as a safety net against lost pings.
        expires_in: how long an approval may wait when the provider gives no expiry.
        discover: check the provider's metadata now: a provider without a backchannel
            endpoint (or without the CIBA grant) is a :class:`ConfigurationError` here, not
            at the first tool call.

    Example:
        >>> import httpx
        >>> meta = {"issuer": "https://idp.test", "token_endpoint": "https://idp.test/token"}
        >>> client = OAuthClient("https://idp.test", "agent", "secret", metadata=meta)
        >>> CIBAApprover(client)
        Traceback (most recent call last):
        ...
        langchain_agent_auth.errors.ConfigurationError: no backchannel_authentication_endpoint at https://idp.test
    """

    kind = "ciba"

    def __init__(
        self,
        client: OAuthClient,
        *,
        scope: str | Sequence[str] = "openid",
        audience: str | None = None,
        resource: str | Sequence[str] | None = None,
        acr_values: str | Sequence[str] | None = None,
        requested_expiry: int | None = 300,
        login_hint: LoginHint = "subject",
        login_hint_issuer: str | None = None,
        binding_message: str | Callable[[str, Mapping[str, Any]], str] | None = None,
        binding_message_max_length: int = BINDING_MESSAGE_MAX,
        authorization_details: DetailsSpec = None,
        delivery_mode: Literal["poll", "ping"] = "poll",
        ping_receiver: PingReceiver | None = None,
        ping_fallback: float = 60.0,
        expires_in: float = 300.0,
        store: Any = None,
        keyring: Keyring | None = None,
        name: str | None = None,
        discover: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(client, OAuthClient):
            raise ConfigurationError("CIBAApprover needs an OAuthClient")
        if login_hint not in ("subject", "email", "iss_sub") and not callable(login_hint):
            raise ConfigurationError("login_hint must be 'subject', 'email', 'iss_sub' or a callable")
        if delivery_mode not in ("poll", "ping"):
            raise ConfigurationError("delivery_mode must be 'poll' or 'ping'")
        if requested_expiry is not None and (not isinstance(requested_expiry, int) or requested_expiry <= 0
                                             or isinstance(requested_expiry, bool)):
            raise ConfigurationError("requested_expiry must be a positive number of seconds")
        if authorization_details not in (None, False) and not callable(authorization_details):
            authorization_details = check_authorization_details(authorization_details)
        super().__init__(store=store, keyring=keyring, name=name or f"ciba:{client.issuer}|{client.client_id}",
                         clock=clock)
        self.client = client
        self.scope = scope
        self.audience = audience
        self.resource = resource
        self.acr_values = acr_values
        self.requested_expiry = requested_expiry
        self.login_hint = login_hint
        self.login_hint_issuer = login_hint_issuer
        self.binding_message = BindingMessage(binding_message, max_length=binding_message_max_length)
        self.authorization_details = authorization_details
        self.delivery_mode = delivery_mode
        self.ping_receiver = ping_receiver
        self.ping_fallback = ping_fallback
        self.expires_in = float(requested_expiry or expires_in)
        if discover:
            self._check_metadata(client.metadata())

    def __repr__(self) -> str:
        return f"CIBAApprover(issuer={self.client.issuer!r}, client_id={self.client.client_id!r}, " \
               f"delivery_mode={self.delivery_mode!r})"

    @classmethod
    def for_auth0(cls, domain: str, client_id: str, client_secret: str | None = None, *,
                  client_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> CIBAApprover:
        """An approver for an Auth0 tenant: ``/bc-authorize`` and the ``iss_sub`` login hint.

        Example:
            >>> a = CIBAApprover.for_auth0("t.auth0.com", "id", "secret", audience="urn:api", discover=False)
            >>> a.login_hint, a.audience
            ('iss_sub', 'urn:api')
        """
        client = OAuthClient.for_auth0(domain, client_id, client_secret, **dict(client_kwargs or {}))
        kwargs.setdefault("login_hint", AUTH0.ciba_login_hint)
        kwargs.setdefault("login_hint_issuer", client.issuer)
        return cls(client, **kwargs)

    def _check_metadata(self, meta: Any) -> None:
        endpoint = getattr(meta, "backchannel_authentication_endpoint", None)
        if not endpoint:
            raise ConfigurationError(
                f"no backchannel_authentication_endpoint at {meta.issuer}",
                hint="The identity provider does not offer CIBA (no backchannel_authentication_endpoint in its "
                     "discovery document); use another approver or enable CIBA for the provider.")
        grants = getattr(meta, "grant_types_supported", None)
        if grants and "urn:openid:params:grant-type:ciba" not in grants:
            raise ConfigurationError(f"the provider {meta.issuer} does not support the CIBA grant type")
        modes = getattr(meta, "backchannel_token_delivery_modes_supported", None)
        if modes and self.delivery_mode not in modes:
            raise ConfigurationError(
                f"the provider {meta.issuer} does not support CIBA {self.delivery_mode} mode (it offers {modes})"
            )

    async def acheck_configuration(self) -> None:
        """Async check of the provider's metadata (use with ``discover=False`` in async apps)."""
        self._check_metadata(await self.client.ametadata())

    # -- building the request

    def hint_params(self, user: UserIdentity) -> dict[str, str]:
        """The login hint parameter for ``user``."""
        if callable(self.login_hint):
            given = dict(self.login_hint(user))
            hints = {k: v for k, v in given.items() if k in ("login_hint", "login_hint_token", "id_token_hint") and v}
            if len(hints) != 1 or len(given) != 1:
                raise ConfigurationError("a login_hint callable must return exactly one of login_hint, "
                                         "login_hint_token, id_token_hint")
            return {k: str(v) for k, v in hints.items()}
        issuer = self.login_hint_issuer or user.issuer or self.client.issuer
        return {"login_hint": login_hint_for(self.login_hint, user, issuer)}

    def details_for(self, tool: str, args: Mapping[str, Any], digest: str) -> list[dict[str, Any]] | None:
        spec = self.authorization_details
        if spec is False:
            return None
        if spec is None:
            return default_authorization_details(tool, args, digest)
        if callable(spec):
            return check_authorization_details(spec(tool, args))
        return [dict(d) for d in spec]  # type: ignore[union-attr]

    def _request_kwargs(self, call: Any, user: UserIdentity, digest: str) -> tuple[dict[str, Any], str, Any]:
        message = self.binding_message(call.name, call.args)
        details = self.details_for(call.name, call.args, digest)
        kwargs: dict[str, Any] = {
            **self.hint_params(user), "scope": self.scope, "binding_message": message,
            "requested_expiry": self.requested_expiry, "acr_values": self.acr_values,
            "authorization_details": details, "audience": self.audience, "resource": self.resource,
        }
        return kwargs, message, details

    def _record_from(self, key: str, call: Any, user: UserIdentity, digest: str, store: ApprovalStore,
                     response: BackchannelAuthResponse, message: str, details: Any,
                     cnt: str | None) -> ApprovalRecord:
        rec = self.new_record(key=key, call=call, user=user, digest=digest, status="pending", watch=True,
                              interval=response.interval, delivery_mode=self.delivery_mode,
                              binding_message=message, authorization_details=details)
        rec = rec.update(expires_at=response.expires_at, ping_key=ping_key(response.auth_req_id) if cnt else None)
        rec = rec.update(next_check_at=self._next_check(rec, self.clock()))
        return rec.update(sealed=store.seal(rec, "secrets", {"auth_req_id": response.auth_req_id, "cnt": cnt}))

    def start(self, key: str, call: Any, user: UserIdentity, digest: str, store: ApprovalStore) -> ApprovalRecord:
        """Send the backchannel request and store the pending record (sync)."""
        return run(self._start(key, call, user, digest, store))

    async def astart(self, key: str, call: Any, user: UserIdentity, digest: str,
                     store: ApprovalStore) -> ApprovalRecord:
        """Async :meth:`start`."""
        return await arun(self._start(key, call, user, digest, store))

    def _start(self, key: str, call: Any, user: UserIdentity, digest: str,
               store: ApprovalStore) -> Flow[ApprovalRecord]:
        """:meth:`start` written once: the backchannel request, then the pending record."""
        kwargs, message, details = self._request_kwargs(call, user, digest)
        cnt = new_notification_token() if self.delivery_mode == "ping" else None
        try:
            response = yield Call(lambda: self.client.ciba_authorize(client_notification_token=cnt, **kwargs),
                                  lambda: self.client.aciba_authorize(client_notification_token=cnt, **kwargs))
        except AgentAuthError as exc:
            raise _start_error(exc) from None
        if cnt and self.ping_receiver is not None:
            self.ping_receiver.expect(response.auth_req_id, cnt)
        return (yield _put(store, self._record_from(key, call, user, digest, store, response, message, details,
                                                    cnt)))

    # -- checking once

    def _next_check(self, rec: ApprovalRecord, now: float) -> float:
        """When to ask the provider next: after ``interval`` in poll mode; in ping mode only
        as a slow safety net (``ping_fallback``): the ping makes the record due at once."""
        if rec.delivery_mode == "ping":
            return now + max(rec.interval, self.ping_fallback)
        return now + rec.interval

    def _outcome(self, rec: ApprovalRecord, store: ApprovalStore,
                 result: TokenResponse | BaseException) -> ApprovalRecord:
        """Apply one poll's result to the record (pure: no I/O)."""
        now = self.clock()
        rec = rec.update(polls=rec.polls + 1, last_poll_at=now)
        if isinstance(result, TokenResponse):
            token = {"access_token": result.access_token, "token_type": result.token_type,
                     "expires_at": result.expires_at, "scope": list(result.scope) if result.scope else None,
                     "authorization_details": result.authorization_details}
            rec = rec.update(status="approved", decided_at=now, failures=0, next_check_at=now,
                             granted_authorization_details=result.authorization_details)
            audit_record("approval_decided", rec, outcome="approve", decider=rec.user_key)
            return rec.update(sealed=store.seal(rec, "secrets", {"token": token}))
        if isinstance(result, AuthorizationPendingError):
            return rec.update(failures=0, next_check_at=self._next_check(rec, now))
        if isinstance(result, SlowDownError):
            rec = rec.update(failures=0, interval=rec.interval + SLOW_DOWN_STEP)
            return rec.update(next_check_at=self._next_check(rec, now))
        if isinstance(result, AccessDeniedError):
            return audit_record("approval_decided", rec.update(
                status="denied", decided_at=now, next_check_at=now, sealed=None, error=result.error,
                error_description=_bounded(result.error_description)), outcome="reject", decider=rec.user_key)
        if isinstance(result, ExpiredTokenError):
            return audit_record("approval_expired", rec.update(
                status="expired", decided_at=now, next_check_at=now, sealed=None, error=result.error))
        if isinstance(result, ProviderUnavailableError | ProtocolError) and now < rec.expires_at:
            failures = rec.failures + 1
            wait = min(_MAX_OUTAGE_BACKOFF, rec.interval * (2 ** min(failures, 6)))
            log.warning("CIBA poll for approval %s failed (%s); retrying in %.0fs", rec.approval_id,
                        type(result).__name__, wait)
            return rec.update(failures=failures, next_check_at=now + wait)
        if isinstance(result, OAuthError):  # transaction_failed, invalid_grant, ...
            return rec.update(status="failed", decided_at=now, next_check_at=now, sealed=None, error=result.error,
                              error_description=_bounded(result.error_description))
        if isinstance(result, AgentAuthError):
            return rec.update(status="failed", decided_at=now, next_check_at=now, sealed=None,
                              error=type(result).__name__, error_description=_bounded(str(result)))
        raise result

    def poll(self, rec: ApprovalRecord, store: ApprovalStore) -> ApprovalRecord:
        """Ask the provider once (never before ``next_check_at``); save and return the record."""
        return run(self._poll(rec, store))

    async def apoll(self, rec: ApprovalRecord, store: ApprovalStore) -> ApprovalRecord:
        """Async :meth:`poll`."""
        return await arun(self._poll(rec, store))

    def _poll(self, rec: ApprovalRecord, store: ApprovalStore) -> Flow[ApprovalRecord]:
        """:meth:`poll` written once."""
        if rec.status != "pending" or self.clock() < rec.next_check_at:
            return rec
        if self.clock() >= rec.expires_at:
            expired = rec.update(status="expired", decided_at=self.clock(), sealed=None, error="expired_token")
            return (yield _put(store, expired))
        auth_req_id = store.open(rec)["auth_req_id"]
        try:
            result: TokenResponse | BaseException = yield Call(lambda: self.client.ciba_poll(auth_req_id),
                                                               lambda: self.client.aciba_poll(auth_req_id))
        except AgentAuthError as exc:
            result = exc
        if isinstance(result, InvalidGrantError):  # someone else (resumer / guard) got the token first?
            current = yield Call(lambda: store.get(rec.key), lambda: store.aget(rec.key))
            if current is not None and current.approval_id == rec.approval_id and current.status != "pending":
                return current
        return (yield _put(store, self._outcome(rec, store, result)))

    # -- waiting inline (block mode)

    def _progress(self, call: Any, rec: ApprovalRecord, seconds_left: float,
                  next_in: float | None = None) -> None:
        emit_progress(call.write, approval_progress(rec, self.clock(), "waiting", seconds_left, next_in))

    def _finished(self, call: Any, rec: ApprovalRecord) -> ApprovalRecord:
        if rec.status != "pending":
            emit_progress(call.write, approval_progress(rec, self.clock(), rec.status))
        return rec

    def _backchannel(self, rec: ApprovalRecord, store: ApprovalStore) -> BackchannelAuthResponse:
        rid = store.open(rec)["auth_req_id"]
        return BackchannelAuthResponse(rid, rec.expires_at, max(rec.interval, 0.0), True)

    def wait(self, rec: ApprovalRecord, store: ApprovalStore, call: Any) -> ApprovalRecord:
        """Wait inline until the user answers (``block`` mode), reporting progress."""
        return run(self._wait(rec, store, call))

    async def await_(self, rec: ApprovalRecord, store: ApprovalStore, call: Any) -> ApprovalRecord:
        """Async :meth:`wait` (never blocks the event loop)."""
        return await arun(self._wait(rec, store, call))

    def _wait(self, rec: ApprovalRecord, store: ApprovalStore, call: Any) -> Flow[ApprovalRecord]:
        """:meth:`wait` written once: on pings (polling now and then) or by polling."""
        req = self._backchannel(rec, store)
        if rec.delivery_mode == "ping" and self.ping_receiver is not None:
            return (yield from self._wait_pings(rec, store, call, self.ping_receiver, req.auth_req_id))
        try:
            result: TokenResponse | BaseException = yield Call(
                lambda: self.client.ciba_wait(req, on_wait=lambda left, nxt: self._progress(call, rec, left, nxt),
                                              tolerate_outages=True),
                lambda: self.client.aciba_wait(req, on_wait=lambda left, nxt: self._progress(call, rec, left, nxt),
                                               tolerate_outages=True))
        except AgentAuthError as exc:
            result = exc
        return self._finished(call, (yield _put(store, self._outcome(rec, store, result))))

    def _wait_pings(self, rec: ApprovalRecord, store: ApprovalStore, call: Any, receiver: PingReceiver,
                    auth_req_id: str) -> Flow[ApprovalRecord]:
        """Wait for the provider's pings, polling after each (and every ``ping_fallback`` seconds)."""
        self._progress(call, rec, rec.expires_at - self.clock(), self.ping_fallback)
        while rec.status == "pending":
            timeout = max(0.0, min(rec.expires_at - self.clock(), self.ping_fallback))
            yield Call(partial(receiver.wait, auth_req_id, timeout=timeout),
                       partial(receiver.wait_async, auth_req_id, timeout=timeout))
            rec = yield from self._poll(rec.update(next_check_at=0.0), store)
            if rec.status == "pending":
                self._progress(call, rec, rec.expires_at - self.clock(), rec.next_check_at - self.clock())
                if not receiver.pinged(auth_req_id):
                    yield Sleep(max(0.0, rec.next_check_at - self.clock()))
        receiver.forget(auth_req_id)
        return self._finished(call, rec)

    # -- pause payload

    def payload(self, record: ApprovalRecord, call: Any) -> ApprovalPendingPayload:
        return ApprovalPendingPayload(
            tool_call_id=record.tool_call_id, approval_id=record.approval_id, tool=record.tool,
            args_digest=record.args_digest, binding_message=record.binding_message,
            authorization_details=record.authorization_details,
            delivery_mode="ping" if record.delivery_mode == "ping" else "poll",
            interval=record.interval, expires_at=record.expires_at,
            message=f"Waiting for the user to approve {record.tool} on their device"
                    + (f": {record.binding_message}" if record.binding_message else ""),
        )


# --------------------------------------------------------------------------- in-app


class InAppApprover(Approver):
    """Ask in the application's own UI: the graph pauses with a ``tool_approval`` payload
    and the application resumes with ``{"approval_id": ..., "decision": "approve" | "edit" |
    "reject", "args": ..., "message": ...}``. An edit cannot switch the tool; the edited
    arguments are what runs.

    Args:
        allowed_decisions: any of ``approve``, ``edit``, ``reject`` (default: all three).
        description: text shown with the request (default: the tool's description), or a
            callable ``(tool, args) -> str``.
        expires_in: seconds before an unanswered request expires (default one day).

    Example:
        >>> InAppApprover(allowed_decisions=("approve", "reject")).allowed_decisions
        ('approve', 'reject')
    """

    kind = "in_app"

    def __init__(self, *, allowed_decisions: Sequence[str] = ("approve", "edit", "reject"),
                 description: str | Callable[[str, Mapping[str, Any]], str] | None = None,
                 expires_in: float = 86400.0, store: Any = None, keyring: Keyring | None = None,
                 name: str = "in_app", clock: Callable[[], float] = time.time) -> None:
        decisions = tuple(allowed_decisions)
        if not decisions or any(d not in ("approve", "edit", "reject") for d in decisions):
            raise ConfigurationError("allowed_decisions must be a non-empty subset of approve, edit, reject")
        if "approve" not in decisions and "edit" not in decisions:
            raise ConfigurationError("allowed_decisions must allow approve or edit, or nothing could ever run")
        if expires_in <= 0:
            raise ConfigurationError("expires_in must be positive")
        super().__init__(store=store, keyring=keyring, name=name, clock=clock)
        self.allowed_decisions = decisions
        self.description = description
        self.expires_in = float(expires_in)

    def __repr__(self) -> str:
        return f"InAppApprover(allowed_decisions={self.allowed_decisions!r})"

    def start(self, key: str, call: Any, user: UserIdentity, digest: str, store: ApprovalStore) -> ApprovalRecord:
        return store.put(self.new_record(key=key, call=call, user=user, digest=digest, delivery_mode="in_app"))

    async def astart(self, key: str, call: Any, user: UserIdentity, digest: str,
                     store: ApprovalStore) -> ApprovalRecord:
        return await store.aput(self.new_record(key=key, call=call, user=user, digest=digest,
                                                delivery_mode="in_app"))

    def payload(self, record: ApprovalRecord, call: Any) -> ToolApprovalPayload:
        args, truncated = preview_args(call.args)
        if callable(self.description):
            description = str(self.description(call.name, call.args))
        elif isinstance(self.description, str):
            description = self.description
        else:
            description = getattr(call.tool, "description", "") or ""
        return ToolApprovalPayload(
            tool_call_id=record.tool_call_id, approval_id=record.approval_id, tool=record.tool, args=args,
            args_truncated=truncated, args_digest=record.args_digest, description=_bounded(description, 1000) or "",
            allowed_decisions=list(self.allowed_decisions),  # type: ignore[arg-type]
            expires_at=record.expires_at,
        )


def _approval_source(approvers: Sequence[Approver], store: Any) -> Any:
    from langchain_agent_auth.approval._sources import ApprovalSource

    return ApprovalSource(approvers, store)


# The shared resumer turns ``approvers=[...]`` into this pillar's pending source.
register_source(Approver, _approval_source)


def _put(store: ApprovalStore, record: ApprovalRecord) -> Call:
    """Save ``record`` (the store's sync or async write, whichever driver runs the flow)."""
    return Call(lambda: store.put(record), lambda: store.aput(record))
