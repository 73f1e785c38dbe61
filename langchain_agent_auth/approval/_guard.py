"""The approval guard and its integrations: ``with_approval`` (any ``BaseTool``),
``ApprovalMiddleware`` (``create_agent``) and guards for ``guarded_tool_node``.

The decision logic is one generator (:meth:`ApprovalGuard._flow`) that yields what it
needs done (store and provider calls, a pause, running the tool); a sync and an async
driver run it, so ``wrap`` and ``awrap`` cannot drift apart.

On every (re-)run of the node the guard:

1. skips the approval when ``when(args)`` is false;
2. finds the call's record in the store (keyed by thread, checkpoint namespace,
   tool_call_id and approver), or starts one approval (one CIBA request per call however
   often the node re-runs); a record for other arguments or another tool is superseded, a
   record of another user is refused;
3. settles it: approved → runs the tool once (with the edited arguments, the approval's
   token reachable via :func:`get_approval_token`) and caches the result so a re-run
   never repeats the side effect; denied/expired/failed → a short ToolMessage (or raises);
   pending → polls once if due, then pauses (again) with ``interrupt()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import secrets
import threading
import weakref
import zlib
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, Literal, NamedTuple

from langchain_core.messages import ToolMessage, message_to_dict, messages_from_dict
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from langchain_agent_auth.approval._approvers import Approver, CIBAApprover
from langchain_agent_auth.approval._digest import _TooDeep, _TooLarge, args_digest
from langchain_agent_auth.approval._payloads import (
    _EXPECT,
    ApprovalResponse,
    _Expectation,
    approval_progress,
    refuse_resume,
)
from langchain_agent_auth.approval._records import (
    DECIDED,
    FINAL,
    WITHDRAWN,
    ApprovalRecord,
    ApprovalStore,
    audit_record,
    record_key,
    thread_tag,
)
from langchain_agent_auth.approval._text import display_hazard
from langchain_agent_auth.core._scrub import scrub
from langchain_agent_auth.core.audit._emit import emit_audit
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    ApprovalAlreadyHandledError,
    ApprovalDeniedError,
    ApprovalError,
    ApprovalExpiredError,
    ApprovalFailedError,
    ApprovalLimitError,
    ApprovalRecordError,
    ConfigurationError,
    IdentityError,
    UnsafeArgumentsError,
)
from langchain_agent_auth.core.guards import GuardedCall, GuardedTool, ToolGuard, ToolGuardMiddleware, guard_tool
from langchain_agent_auth.core.progress import emit_progress
from langchain_agent_auth.identity import UserIdentity, find_foreign
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = [
    "ApprovalGuard",
    "ApprovalMiddleware",
    "ApprovalPolicy",
    "approval_guards",
    "get_approval_token",
    "route_tool_calls",
    "with_approval",
]

log = logging.getLogger("langchain_agent_auth.approval")

Mode = Literal["interrupt", "block"]
OnDenied = Literal["message", "raise"]
When = Callable[[Mapping[str, Any]], bool]

_TOKEN: contextvars.ContextVar[TokenResponse | None] = contextvars.ContextVar(
    "langchain_agent_auth_approval_token", default=None
)
_MAX_CACHED_RESULT = 256_000
#: Default cap on approvals waiting for one user's answer (across threads and tools).
MAX_PENDING = 20
#: Default bound on a call's arguments (characters of canonical JSON) before any approval.
MAX_ARGS_SIZE = 64_000
_EPHEMERAL: dict[str, Any] = {}
# An in-app answer is claimed for this long: a duplicate delivery meanwhile is "already
# handled"; after a crash between the claim and the write, the answer can be given again.
_DECIDE_TTL = 120.0


def get_approval_token(*, required: bool = False) -> TokenResponse | None:
    """The token the provider issued with the approval, inside the approved tool only.

    CIBA approvals return an access token (carrying the approved
    ``authorization_details``) the tool may send to an API. It is kept out of state,
    checkpoints, payloads and messages, and is only reachable while the approved tool runs.

    Example:
        >>> get_approval_token() is None
        True
    """
    token = _TOKEN.get()
    if token is None and required:
        raise ApprovalError("no approval token: call get_approval_token() inside a tool guarded by a CIBA approval")
    return token


# --------------------------------------------------------------------------- effects


class _Do(NamedTuple):
    sync: Callable[..., Any]
    async_: Callable[..., Any]
    args: tuple[Any, ...]


class _Pause(NamedTuple):
    payload: dict[str, Any]
    expect: _Expectation
    on_pause: Callable[[], None] | None = None  # progress: called only when the run really pauses


class _Proceed(NamedTuple):
    call: GuardedCall
    token: TokenResponse | None
    store: ApprovalStore | None = None
    on_bubble: ApprovalRecord | None = None  # saved if the tool pauses (an inner guard's interrupt)
    owner: str = ""  # of the record's "run" claim, given back if the tool pauses


def _is_bubble(exc: BaseException) -> bool:
    from langgraph.errors import GraphBubbleUp

    return isinstance(exc, GraphBubbleUp)


def _pause(effect: _Pause) -> ApprovalResponse:
    from langgraph.types import interrupt

    token = _EXPECT.set(effect.expect)
    try:
        return interrupt(effect.payload, response_schema=ApprovalResponse)
    except BaseException as exc:
        if effect.on_pause is not None and _is_bubble(exc):
            effect.on_pause()
        raise
    finally:
        _EXPECT.reset(token)


def _drive(flow: Generator[Any, Any, Any], proceed: Callable[[GuardedCall], Any]) -> Any:
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                if isinstance(effect, _Do):
                    value = effect.sync(*effect.args)
                elif isinstance(effect, _Pause):
                    value = _pause(effect)
                else:
                    reset = _TOKEN.set(effect.token)
                    try:
                        value = proceed(effect.call)
                    except BaseException as exc:
                        if _is_bubble(exc) and effect.on_bubble is not None and effect.store is not None:
                            effect.store.put(effect.on_bubble)
                            effect.store.release(effect.on_bubble.approval_id, "run", effect.owner)
                        raise
                    finally:
                        _TOKEN.reset(reset)
            except Exception as exc:
                if _is_bubble(exc):
                    raise  # LangGraph's interrupts are never handled by a guard
                error = exc
    finally:
        flow.close()


async def _adrive(flow: Generator[Any, Any, Any], proceed: Callable[[GuardedCall], Any]) -> Any:
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                if isinstance(effect, _Do):
                    value = await effect.async_(*effect.args)
                elif isinstance(effect, _Pause):
                    value = _pause(effect)
                else:
                    reset = _TOKEN.set(effect.token)
                    try:
                        value = await proceed(effect.call)
                    except BaseException as exc:
                        if _is_bubble(exc) and effect.on_bubble is not None and effect.store is not None:
                            await effect.store.aput(effect.on_bubble)
                            await effect.store.arelease(effect.on_bubble.approval_id, "run", effect.owner)
                        raise
                    finally:
                        _TOKEN.reset(reset)
            except Exception as exc:
                if _is_bubble(exc):
                    raise
                error = exc
    finally:
        flow.close()


# --------------------------------------------------------------------------- the guard


def _arg_checker(tool: BaseTool | None, name: str, user: UserIdentity | None = None,
                 ) -> Callable[[Mapping[str, Any]], None]:
    """Validate edited arguments against the tool's schema (the model-facing part) and the
    identity rule: an identity middleware around the approval never sees edited arguments."""

    def check(args: Mapping[str, Any]) -> None:
        fits(args)
        if user is not None:
            found = find_foreign(args, user, {"user_id": "subject"})
            if found is not None:
                raise refuse_resume(f"edited arguments name another user ({found.path}); refused")

    def fits(args: Mapping[str, Any]) -> None:
        if tool is None:
            return
        schema = tool.tool_call_schema
        if isinstance(schema, dict):
            props = set((schema.get("properties") or {}).keys())
            unknown = set(args) - props if props else set()
            missing = [k for k in schema.get("required") or () if k not in args]
            if unknown or missing:
                raise refuse_resume(f"edited arguments do not fit {name}: unknown {sorted(unknown)}, "
                                    f"missing {sorted(missing)}")
            return
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            unknown = set(args) - set(schema.model_fields)
            if unknown:
                raise refuse_resume(f"edited arguments do not fit {name}: unknown {sorted(unknown)}")
            try:
                schema.model_validate(dict(args))
            except ValidationError as exc:
                fields = ", ".join(".".join(str(p) for p in e["loc"]) or "value" for e in exc.errors())
                raise refuse_resume(f"edited arguments do not fit {name} (check: {fields})") from None

    return check


def _cache_result(store: ApprovalStore, rec: ApprovalRecord, result: Any) -> dict[str, Any] | None:
    """Seal the tool's output so a re-run of the node returns it instead of running again."""
    try:
        if isinstance(result, ToolMessage):
            data: dict[str, Any] = {"kind": "message", "data": message_to_dict(result)}
        elif isinstance(result, str):
            data = {"kind": "text", "data": result}
        else:
            return None
        if len(json.dumps(data)) > _MAX_CACHED_RESULT:
            return None
        return store.seal(rec, "result", data)
    except (TypeError, ValueError):
        return None


class ApprovalGuard(ToolGuard):
    """A :class:`~langchain_agent_auth.guards.ToolGuard` that asks before a tool runs.

    Args:
        approver: a :class:`CIBAApprover` or :class:`InAppApprover`.
        when: ``when(args) -> bool``; calls for which it is false run without approval. An
            exception in it counts as "needs approval" (fail closed).
        mode: ``"interrupt"`` (default: a durable pause; needs a checkpointer) or
            ``"block"`` (CIBA only: wait inline, streaming progress to the custom stream).
        on_denied: ``"message"`` (default: the model gets a short error ToolMessage and the
            agent continues) or ``"raise"`` (the Approval*Error propagates).
        tools: tool names this guard applies to in a middleware or a tool node (``None``:
            all).
        max_pending: at most this many approvals may wait for one user's answer (counted
            in the store, across threads and tools); past it a new request is refused
            with :class:`~langchain_agent_auth.errors.ApprovalLimitError` and nothing is
            sent. ``None``: no cap.
        max_args_size: arguments longer than this (characters of canonical JSON) are
            refused (:class:`~langchain_agent_auth.errors.UnsafeArgumentsError`) before
            they are digested in full or shown to anyone.

    Arguments an approver could misread (bidi controls, zero-width or other invisible
    characters, a word mixing look-alike scripts; see
    :func:`~langchain_agent_auth.approval.display_hazard`) are refused the same way,
    before any approval is requested.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def transfer(amount: int, to: str) -> str:
        ...     '''Send money.'''
        ...     return f"sent {amount} to {to}"
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> guard = ApprovalGuard(InAppApprover(), when=lambda a: a["amount"] > 100)
        >>> guard_tool(transfer, guard).invoke({"amount": 5, "to": "Bob"})
        'sent 5 to Bob'
    """

    def __init__(self, approver: Approver, *, when: When | None = None, mode: Mode = "interrupt",
                 on_denied: OnDenied = "message", tools: Iterable[str] | None = None,
                 max_pending: int | None = MAX_PENDING, max_args_size: int = MAX_ARGS_SIZE) -> None:
        if not isinstance(approver, Approver):
            raise ConfigurationError("approver must be a CIBAApprover or an InAppApprover")
        if mode not in ("interrupt", "block"):
            raise ConfigurationError("mode must be 'interrupt' or 'block'")
        if mode == "block" and not isinstance(approver, CIBAApprover):
            raise ConfigurationError("mode='block' needs a CIBAApprover (an in-app approval can only pause)")
        if on_denied not in ("message", "raise"):
            raise ConfigurationError("on_denied must be 'message' or 'raise'")
        if when is not None and not callable(when):
            raise ConfigurationError("when must be a callable taking the tool arguments")
        if max_pending is not None and (not isinstance(max_pending, int) or isinstance(max_pending, bool)
                                        or max_pending < 1):
            raise ConfigurationError("max_pending must be a positive integer or None")
        if not isinstance(max_args_size, int) or isinstance(max_args_size, bool) or max_args_size < 64:
            raise ConfigurationError("max_args_size must be an integer >= 64")
        self.max_pending = max_pending
        self.max_args_size = max_args_size
        self.approver = approver
        self.when = when
        self.mode = mode
        self.on_denied = on_denied
        self.tools = frozenset(tools) if tools is not None else None

    def __repr__(self) -> str:
        return f"ApprovalGuard({self.approver!r}, mode={self.mode!r}, on_denied={self.on_denied!r})"

    # -- entry points

    def wrap(self, call: GuardedCall, proceed: Callable[[GuardedCall], Any]) -> Any:
        if not self.needs_approval(call.args):  # the fast path: no store, no provider
            return proceed(call)
        return _drive(self._checked_flow(call), proceed)

    async def awrap(self, call: GuardedCall, proceed: Callable[[GuardedCall], Any]) -> Any:
        if not self.needs_approval(call.args):
            return await proceed(call)
        return await _adrive(self._checked_flow(call), proceed)

    def _checked_flow(self, call: GuardedCall) -> Generator[Any, Any, Any]:
        """:meth:`_flow`, with a record damaged mid-call refused (fail closed), never a crash."""
        try:
            return (yield from self._flow(call))
        except ApprovalRecordError as err:
            return self._refuse(call, err)

    # -- decisions

    def needs_approval(self, args: Mapping[str, Any]) -> bool:
        """Whether a call with ``args`` needs approval (``when``; fail closed)."""
        if self.when is None:
            return True
        try:
            return bool(self.when(args))
        except Exception as exc:
            log.warning("approval 'when' predicate failed (%s); asking for approval", type(exc).__name__)
            return True

    def _store(self, call: GuardedCall, durable: bool) -> ApprovalStore:
        store = self.approver.store if self.approver.store is not None else call.store
        if store is None:
            if durable and self.mode == "interrupt":
                raise ConfigurationError(
                    "approvals need a LangGraph store for pending requests: pass store= to the approver "
                    "or compile the graph with store=... (InMemoryStore, SqliteStore...)"
                )
            from langgraph.store.memory import InMemoryStore

            # Block mode without a store: a call outside a graph needs no memory beyond
            # itself; one inside a graph shares an in-process store so a re-run of the node
            # finds its request.
            store = _EPHEMERAL.setdefault("store", InMemoryStore()) if durable else InMemoryStore()
        return ApprovalStore(store, self.approver.keyring)

    def _refuse(self, call: GuardedCall, error: AgentAuthError) -> Any:
        emit_audit("approval_refused", tool=call.name, outcome=getattr(error, "code", None) or type(error).__name__,
                   detail=str(error))
        if self.on_denied == "raise":
            raise error
        return call.refuse(error.for_model(), error)

    def _refuse_record(self, call: GuardedCall, rec: ApprovalRecord) -> Any:
        tool = rec.tool
        if rec.status == "denied" and rec.error == WITHDRAWN:
            err: ApprovalError = ApprovalDeniedError(
                f"the user withdrew the {tool} request",
                hint=f"The user withdrew this {tool} request, so it was not run. Do not retry it; tell the user.")
        elif rec.status == "denied":
            # In-app: the user's note; CIBA: the provider's error_description (the reason the
            # user gave on their device, where the provider passes it on).
            reason = rec.decision_message or rec.error_description
            note = f" Their note: {reason}" if reason else ""
            err = ApprovalDeniedError(
                f"the user denied {tool}" + (f" ({rec.error})" if rec.error else ""),
                hint=f"The user denied this {tool} call, so it was not run. Do not retry it; tell the user.{note}")
        elif rec.status == "expired":
            err = ApprovalExpiredError(
                f"the approval request for {tool} expired before the user answered",
                hint=f"The approval request for {tool} expired before the user answered, so it was not run. "
                     "Ask the user whether to try again.")
        else:
            err = ApprovalFailedError(
                f"the approval for {tool} failed ({rec.error or rec.status})"
                + (f": {rec.error_description}" if rec.error_description else ""),
                hint=f"The approval for {tool} could not be completed ({rec.error or rec.status}), so it was "
                     "not run. Tell the user; they can try again later.")
        err.approval_id = rec.approval_id  # type: ignore[attr-defined]
        return self._refuse(call, err)

    def _flow(self, call: GuardedCall) -> Generator[Any, Any, Any]:
        approver = self.approver
        if not self.needs_approval(call.args):
            return (yield _Proceed(call, None))
        user = call.user
        if user is None:
            call.warn_no_user("approval")
            return self._refuse(call, IdentityError(
                "no trusted user identity for an approval",
                hint="I can't ask for approval because I don't know who you are."))
        try:
            digest = args_digest(call.args, max_size=self.max_args_size)
        except (_TooLarge, _TooDeep) as exc:
            return self._refuse(call, _unsafe("too_large" if isinstance(exc, _TooLarge) else "too_deep",
                                              call.name, str(exc)))
        except ValueError as exc:
            return self._refuse(call, ApprovalFailedError(
                f"the arguments cannot be bound to an approval: {exc}",
                hint="These arguments cannot be approved (not plain data); call the tool with simple values."))
        durable = call.thread_id is not None and call.tool_call_id is not None
        if self.mode == "interrupt" and not (durable and call.can_pause):
            missing = ("no thread_id in the config" if call.thread_id is None else "the graph has no checkpointer"
                       if not call.can_pause else "no tool call id")
            raise ConfigurationError(
                f"approval mode 'interrupt' pauses the graph before {call.name!r} runs, but {missing}: a pause needs "
                "a checkpointer, a thread_id and a tool call id; compile the graph with a checkpointer "
                "(checkpointer=InMemorySaver() or a SqliteSaver), "
                "invoke it with config={'configurable': {'thread_id': ...}}, or use mode='block'")
        store = self._store(call, durable)
        if durable:
            key = record_key(call.thread_id, call.checkpoint_ns, call.tool_call_id, approver.name)
        else:
            key = thread_tag(call.thread_id, call.checkpoint_ns) + secrets.token_hex(8)
        try:
            rec: ApprovalRecord | None = yield _Do(store.get, store.aget, (key,))
        except ApprovalRecordError as exc:
            log.warning("approval: %s; asking for a new approval", exc)
            rec = None  # a damaged record approves nothing; the new request overwrites it
        if rec is not None:
            if rec.user_key != user.key:
                raise refuse_resume("this tool call's approval belongs to another user; refused")
            if rec.tool != call.name or rec.args_digest != digest:
                # Other arguments (or another tool) under the same call id: the old approval
                # does not cover them (invariant 3).
                if rec.status not in FINAL:
                    yield _Do(store.put, store.aput, (rec.update(status="superseded", watch=False, sealed=None),))
                rec = None
        if rec is None:
            hazard = display_hazard(call.args)
            if hazard is not None:
                reason, where, what = hazard
                return self._refuse(call, _unsafe(reason, call.name, f"{what} in {where or 'the arguments'}"))
            try:
                rec = yield _Do(self._admit, self._aadmit, (key, call, user, digest, store))
            except ApprovalError as err:
                return self._refuse(call, err)
            audit_record("approval_requested", rec)
        return (yield from self._settle(call, rec, store))

    # -- starting an approval under the per-user cap

    def _over_cap(self, waiting: int, tool: str) -> ApprovalLimitError | None:
        if self.max_pending is None or waiting < self.max_pending:
            return None
        return ApprovalLimitError(
            f"{waiting} approvals already wait for this user (max_pending={self.max_pending}); "
            f"no new request for {tool}",
            hint=f"Too many approval requests are already waiting for the user, so {tool} was "
                 "not run and no new request was sent. Tell the user; ask again after they answer.")

    def _admit(self, key: str, call: GuardedCall, user: UserIdentity, digest: str,
               store: ApprovalStore) -> ApprovalRecord:
        """Count the user's pending approvals and start one, as one step in this process
        (parallel calls of one message run at the same time)."""
        approver: Any = self.approver
        if self.max_pending is None:
            return approver.start(key, call, user, digest, store)
        with _admit_lock(user.key):
            error = self._over_cap(_count_pending(store, user.key, approver.clock(), self.max_pending), call.name)
            if error is not None:
                raise error
            return approver.start(key, call, user, digest, store)

    async def _aadmit(self, key: str, call: GuardedCall, user: UserIdentity, digest: str,
                      store: ApprovalStore) -> ApprovalRecord:
        approver: Any = self.approver
        if self.max_pending is None:
            return await approver.astart(key, call, user, digest, store)
        async with _aadmit_lock(user.key):
            waiting = await _acount_pending(store, user.key, approver.clock(), self.max_pending)
            error = self._over_cap(waiting, call.name)
            if error is not None:
                raise error
            return await approver.astart(key, call, user, digest, store)

    def _expectation(self, call: GuardedCall, rec: ApprovalRecord, lenient: bool = False) -> _Expectation:
        return _Expectation(
            thread_tag=thread_tag(call.thread_id, call.checkpoint_ns), approval_id=rec.approval_id,
            kind=rec.kind, tool=rec.tool, digest=rec.args_digest,
            allowed=tuple(getattr(self.approver, "allowed_decisions", ())),
            check_args=_arg_checker(call.tool, call.name, call.user), lenient=lenient,
        )

    def _on_pause(self, call: GuardedCall, rec: ApprovalRecord) -> Callable[[], None]:
        clock = self.approver.clock
        return lambda: emit_progress(call.write, approval_progress(rec, clock(), "paused"))

    def _reenter(self, call: GuardedCall, rec: ApprovalRecord, index: int,
                 store: ApprovalStore) -> Generator[Any, Any, ApprovalRecord]:
        """Re-enter pause ``index`` of an earlier run: LangGraph hands its answer back."""
        value = yield _Pause(self.approver.payload(rec, call).to_interrupt(),
                             self._expectation(call, rec, lenient=index in rec.swallowed),
                             self._on_pause(call, rec))
        if value.foreign:
            return rec
        return (yield from self._apply(call, rec, value, store))

    def _settle(self, call: GuardedCall, rec: ApprovalRecord, store: ApprovalStore) -> Generator[Any, Any, Any]:
        """Settle the call's approval.

        LangGraph hands resume values out by the order of ``interrupt()`` calls in the node.
        So on every run the guard re-enters each pause it made in earlier runs (getting their
        answers back) before it runs the tool or pauses anew; an interrupt after ours (an inner
        guard's, the tool's own) then gets its own answer. A *new* pause that returns at once
        got an answer meant for another guard's earlier pause (one that did not re-enter): the
        value is set aside (``swallowed``) and the guard pauses again.
        """
        approver = self.approver
        replayed = 0  # pauses of earlier runs re-entered in this run
        while True:
            now = approver.clock()
            if rec.status != "pending" and replayed < rec.pauses:
                if replayed == rec.pauses - 1 and rec.kind == "ciba" and rec.status in DECIDED and not rec.watch:
                    # If this last pause turns out unanswered, the resumer must answer it.
                    rec = yield _Do(store.put, store.aput, (rec.update(watch=True, next_check_at=now),))
                rec = yield from self._reenter(call, rec, replayed, store)
                replayed += 1
                continue
            if rec.status == "done":
                return self._replay(call, rec, store)
            if rec.status == "running":
                return self._refuse(call, ApprovalAlreadyHandledError(
                    f"the approved {rec.tool} call already started once (another delivery is running it, or a "
                    "run stopped before it finished); not repeated",
                    hint=f"This {rec.tool} call was already started after approval, so it was not repeated. "
                         "Ask the user before trying again."))
            if rec.status == "approved":
                return (yield from self._run(call, rec, store))
            if rec.status in ("denied", "expired", "failed", "superseded"):
                if rec.watch:
                    rec = yield _Do(store.put, store.aput, (rec.update(watch=False),))
                return self._refuse_record(call, rec)
            # pending
            if now >= rec.expires_at:
                rec = yield _Do(store.put, store.aput, (rec.update(
                    status="expired", decided_at=now, sealed=None, watch=False, error="expired_token"),))
                audit_record("approval_expired", rec)
                continue
            if isinstance(approver, CIBAApprover) and now >= rec.next_check_at:
                rec = yield _Do(approver.poll, approver.apoll, (rec, store))
                if rec.status != "pending":
                    continue
            if self.mode == "block":
                rec = yield _Do(approver.wait, approver.await_, (rec, store, call))  # type: ignore[attr-defined]
                continue
            if replayed < rec.pauses:
                rec = yield from self._reenter(call, rec, replayed, store)
                replayed += 1
                continue
            index = rec.pauses
            rec = yield _Do(store.put, store.aput, (rec.update(pauses=index + 1),))
            value = yield _Pause(approver.payload(rec, call).to_interrupt(), self._expectation(call, rec, True),
                                 self._on_pause(call, rec))
            # Returned at once: this pause was never shown, so the value was another's.
            replayed += 1
            rec = yield _Do(store.put, store.aput, (rec.update(swallowed=[*rec.swallowed, index]),))
            if not value.foreign and value.approval_id != rec.approval_id:
                rec = yield from self._apply(call, rec, value, store)

    def _apply(self, call: GuardedCall, rec: ApprovalRecord, value: ApprovalResponse,
               store: ApprovalStore) -> Generator[Any, Any, ApprovalRecord]:
        """Take a resume value into account. A CIBA decision is only ever read from the store
        (the resumer or a poll wrote it); an in-app decision is recorded against the record
        it names (this call's, or a sibling's in the same ToolNode task)."""
        if value.approval_id == rec.approval_id:
            fresh = yield _Do(store.get, store.aget, (rec.key,))
            fresh = fresh if fresh is not None and fresh.approval_id == rec.approval_id else rec
            if fresh.kind == "in_app" and fresh.status == "pending":
                if not (yield _Do(store.claim, store.aclaim, (fresh.approval_id, "decide", _DECIDE_TTL))):
                    raise _already_handled(fresh, "this answer was already handled by another delivery")
                fresh = yield _Do(store.put, store.aput, (_decide(fresh, value, self.approver.clock()),))
            return fresh
        other = yield _Do(store.get, store.aget, (value.approval_id.split(".", 1)[0],))
        now = self.approver.clock()
        if (other is not None and other.approval_id == value.approval_id and other.kind == "in_app"
                and other.status == "pending" and other.user_key == rec.user_key and now < other.expires_at
                and value.decision in ("approve", "edit", "reject")
                and (value.args_digest is None or value.args_digest == other.args_digest)
                and (value.name is None or value.name == other.tool)
                and (value.decision == "edit") == (value.args is not None)):
            if (yield _Do(store.claim, store.aclaim, (other.approval_id, "decide", _DECIDE_TTL))):
                yield _Do(store.put, store.aput, (_decide(other, value, now),))
        else:
            log.info("resume value for approval %s ignored by approval %s", value.approval_id[:40], rec.approval_id)
        fresh = yield _Do(store.get, store.aget, (rec.key,))
        return fresh if fresh is not None and fresh.approval_id == rec.approval_id else rec

    def _run(self, call: GuardedCall, rec: ApprovalRecord, store: ApprovalStore) -> Generator[Any, Any, Any]:
        run_call = call.with_args(rec.edited_args) if rec.edited_args is not None else call
        token: TokenResponse | None = None
        if rec.kind == "ciba" and rec.sealed:
            data = store.open(rec).get("token")
            if isinstance(data, dict) and data.get("access_token"):
                token = TokenResponse(
                    access_token=data["access_token"], token_type=data.get("token_type") or "Bearer",
                    expires_at=data.get("expires_at"),
                    scope=tuple(data["scope"]) if data.get("scope") else None,
                    authorization_details=data.get("authorization_details"))
        approved = rec.update(watch=False)
        # approved -> running is the step that guards the side effect: one atomic claim, so
        # duplicate deliveries (threads, tasks, processes) run the tool once.
        owner = secrets.token_hex(8)
        if not (yield _Do(store.claim, store.aclaim, (rec.approval_id, "run", None, owner))):
            fresh = yield _Do(store.get, store.aget, (rec.key,))
            if fresh is not None and fresh.approval_id == rec.approval_id and fresh.status == "done":
                return self._replay(call, fresh, store)
            if (yield _Do(store.withdrawn, store.awithdrawn, (rec.approval_id,))):
                # an answer that arrived after the user withdrew the request (a late poll's write)
                return self._refuse_record(call, rec.update(status="denied", error=WITHDRAWN))
            raise _already_handled(rec, f"the approved {rec.tool} call is already being run by another delivery")
        running = yield _Do(store.put, store.aput, (approved.update(status="running"),))
        try:
            result = yield _Proceed(run_call, token, store, approved, owner)
        except Exception:
            yield _Do(store.put, store.aput, (running.update(
                status="done", sealed=None, finished_at=self.approver.clock(), error="tool_error"),))
            audit_record("approval_executed", rec, outcome="tool_error", args_digest=_ran_digest(rec))
            raise
        if token is not None:  # the approval's token never reaches the model through the result
            result = scrub(result, (token.access_token,))
        done = running.update(status="done", sealed=None, finished_at=self.approver.clock())
        yield _Do(store.put, store.aput, (done.update(result=_cache_result(store, done, result)),))
        audit_record("approval_executed", rec, outcome="done", args_digest=_ran_digest(rec))
        return result

    def _replay(self, call: GuardedCall, rec: ApprovalRecord, store: ApprovalStore) -> Any:
        try:
            data = store.open(rec, "result") if rec.result else {}
        except AgentAuthError:
            data = {}
        if data.get("kind") == "message":
            return messages_from_dict([data["data"]])[0]
        if data.get("kind") == "text":
            return data["data"]
        return self._refuse(call, ApprovalFailedError(
            f"the approved {rec.tool} call already ran; not repeated",
            hint=f"This {rec.tool} call already ran after approval; it was not repeated."))


_UNSAFE_HINTS = {
    "hidden_characters": "contain invisible or direction-changing characters",
    "mixed_script": "mix look-alike alphabets in one word",
    "too_large": "are too large to show to the user",
    "too_deep": "are nested too deeply to show to the user",
}


def _unsafe(reason: str, tool: str, detail: str) -> UnsafeArgumentsError:
    why = _UNSAFE_HINTS[reason]
    return UnsafeArgumentsError(
        f"the arguments of {tool} {why} ({detail}); no approval was requested", reason=reason,
        hint=f"The arguments of this {tool} call {why}, so the user could not check them and it was not run. "
             "Call it again with plain text, exactly as the user wrote it.")


def _pending_filter(user_key: str, now: float) -> dict[str, Any]:
    return {"user_key": user_key, "status": "pending", "expires_at": {"$gt": now}}


_STRIPES = 64
_ADMIT_LOCKS = [threading.Lock() for _ in range(_STRIPES)]
_AADMIT_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Lock]] = weakref.WeakKeyDictionary()
_AADMIT_GUARD = threading.Lock()


def _stripe(user_key: str) -> int:
    return zlib.crc32(user_key.encode("utf-8", "surrogatepass")) % _STRIPES


def _admit_lock(user_key: str) -> threading.Lock:
    return _ADMIT_LOCKS[_stripe(user_key)]


def _aadmit_lock(user_key: str) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    with _AADMIT_GUARD:
        locks = _AADMIT_LOCKS.get(loop)
        if locks is None:
            locks = _AADMIT_LOCKS[loop] = [asyncio.Lock() for _ in range(_STRIPES)]
    return locks[_stripe(user_key)]


def _count_pending(store: ApprovalStore, user_key: str, now: float, cap: int) -> int:
    """How many approvals wait for ``user_key`` (stops counting at ``cap``)."""
    items = store.store.search(store.namespace, filter=_pending_filter(user_key, now), limit=cap)
    return len(items)


async def _acount_pending(store: ApprovalStore, user_key: str, now: float, cap: int) -> int:
    items = await store._call("asearch", "search", store.namespace, filter=_pending_filter(user_key, now),
                              limit=cap)
    return len(items)
def _already_handled(rec: ApprovalRecord, message: str) -> ApprovalAlreadyHandledError:
    err = ApprovalAlreadyHandledError(message)
    err.approval_id = rec.approval_id  # type: ignore[attr-defined]
    return err


def _ran_digest(rec: ApprovalRecord) -> str:
    """The digest of the arguments that ran: the user's edit, else what they approved."""
    if rec.edited_args is None:
        return rec.args_digest
    try:
        return args_digest(rec.edited_args)
    except Exception:  # edited arguments were checked when decided; keep the request's digest
        return rec.args_digest


def _decide(rec: ApprovalRecord, value: ApprovalResponse, now: float) -> ApprovalRecord:
    if value.decision in ("approve", "edit", "reject"):
        # The answer came in a resume of the thread, whose owner check admitted the caller.
        audit_record("approval_decided", rec, outcome=value.decision, decider=rec.user_key)
    message = " ".join(value.message.split())[:300] if value.message else None
    if value.decision == "reject":
        return rec.update(status="denied", decision="reject", decision_message=message, decided_at=now)
    if value.decision == "edit":
        return rec.update(status="approved", decision="edit", edited_args=dict(value.args or {}),
                          decision_message=message, decided_at=now)
    if value.decision == "approve":
        return rec.update(status="approved", decision="approve", decision_message=message, decided_at=now)
    return rec


# --------------------------------------------------------------------------- integrations


def with_approval(tool: BaseTool, approver: Approver, *, when: When | None = None, mode: Mode = "interrupt",
                  on_denied: OnDenied = "message", max_pending: int | None = MAX_PENDING,
                  max_args_size: int = MAX_ARGS_SIZE) -> GuardedTool:
    """Wrap any ``BaseTool`` so calls need the user's approval first.

    The wrapped tool keeps its name, description, args schema (pydantic or JSON-schema
    dict, e.g. MCP tools), ``return_direct`` and ``response_format``, supports ``invoke``
    and ``ainvoke``, and composes with the vault and fga wrappers in any order.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def delete_repo(name: str) -> str:
        ...     '''Delete a repository.'''
        ...     return "deleted"
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> guarded = with_approval(delete_repo, InAppApprover())
        >>> guarded.name, guarded.args
        ('delete_repo', {'name': {'title': 'Name', 'type': 'string'}})
    """
    return guard_tool(tool, ApprovalGuard(approver, when=when, mode=mode, on_denied=on_denied,
                                          max_pending=max_pending, max_args_size=max_args_size))


class ApprovalPolicy(NamedTuple):
    """How one tool is approved in :class:`ApprovalMiddleware` / :func:`approval_guards`."""

    approver: Approver
    when: When | None = None
    mode: Mode = "interrupt"
    on_denied: OnDenied = "message"
    max_pending: int | None = MAX_PENDING
    max_args_size: int = MAX_ARGS_SIZE


def _policy(value: Any) -> ApprovalPolicy:
    if isinstance(value, ApprovalPolicy):
        return value
    if isinstance(value, Approver):
        return ApprovalPolicy(value)
    if isinstance(value, Mapping):
        unknown = set(value) - set(ApprovalPolicy._fields)
        if unknown or "approver" not in value:
            raise ConfigurationError("an approval policy needs 'approver' and may set when/mode/on_denied/"
                                     f"max_pending/max_args_size (unknown: {sorted(unknown)})")
        return ApprovalPolicy(**value)
    raise ConfigurationError("each tool's approval config must be an Approver, an ApprovalPolicy or a dict")


def approval_guards(config: Mapping[str, Approver | ApprovalPolicy | Mapping[str, Any]]) -> list[ApprovalGuard]:
    """One :class:`ApprovalGuard` per tool name, for ``guarded_tool_node(tools, *guards)``.

    Example:
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> [g.tools for g in approval_guards({"transfer": InAppApprover()})]
        [frozenset({'transfer'})]
    """
    guards = []
    for name, value in config.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError("approval config keys must be tool names")
        p = _policy(value)
        guards.append(ApprovalGuard(p.approver, when=p.when, mode=p.mode, on_denied=p.on_denied, tools=[name],
                                    max_pending=p.max_pending, max_args_size=p.max_args_size))
    return guards


class ApprovalMiddleware(ToolGuardMiddleware):
    """Agent middleware for ``langchain.agents.create_agent``: approvals per tool name.

    Example::

        agent = create_agent(model, tools, middleware=[ApprovalMiddleware({
            "transfer_money": {"approver": ciba, "when": lambda a: a["amount"] > 100},
            "delete_repo": InAppApprover(allowed_decisions=("approve", "reject")),
        })], checkpointer=saver, store=store)
    """

    def __init__(self, config: Mapping[str, Approver | ApprovalPolicy | Mapping[str, Any]]) -> None:
        super().__init__(approval_guards(config))



def route_tool_calls(state: Any, *, tools: str = "tools", end: str = "__end__",
                     messages_key: str = "messages") -> Any:
    """Conditional edge for hand-built graphs: one ``tools`` task per pending tool call.

    ``tools_condition`` runs every call of a message in one ToolNode task, where LangGraph
    surfaces a single interrupt per task and hands resume values out by call order: fine
    for approval guards (they keep their state in the store and check every resume value)
    but not for other tools that call ``interrupt()`` themselves. Routing each call to its
    own task, as ``create_agent`` does, gives every pause its own interrupt id.

    Example::

        builder.add_conditional_edges("model", route_tool_calls, ["tools", END])
    """
    from langgraph.types import Send

    messages = state.get(messages_key) if isinstance(state, Mapping) else getattr(state, messages_key, None)
    if not messages:
        return end
    last = messages[-1]
    answered = {getattr(m, "tool_call_id", None) for m in messages if getattr(m, "type", None) == "tool"}
    pending = [c for c in getattr(last, "tool_calls", None) or () if c.get("id") not in answered]
    if not pending:
        return end
    return [Send(tools, [{**c, "type": "tool_call"}]) for c in pending]
