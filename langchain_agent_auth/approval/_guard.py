"""The approval, as one flow of the core effect runtime (:mod:`langchain_agent_auth.core.effects`).

:class:`ApprovalSteps` holds the decision logic: it yields what it needs done (store and
provider calls as ``Call`` steps, a pause through :func:`~langchain_agent_auth.core.pause.pause`,
``Proceed`` to run the tool), and the runtime's two drivers run it, so the blocking and the
async guard cannot drift apart. The guard itself, ``with_approval``, the middleware and the
node form are in :mod:`._integrations`.

On every (re-)run of the node the guard:

1. skips the approval when ``when(args)`` is false;
2. finds the call's record in the store (keyed by thread, checkpoint namespace,
   tool_call_id and approver), or starts one approval (one CIBA request per call however
   often the node re-runs); a record for other arguments or another tool is superseded, a
   record of another user is refused;
3. settles it: approved → runs the tool once (with the edited arguments, the approval's
   token reachable via :func:`get_approval_token`) and caches the result so a re-run
   never repeats the side effect; denied/expired/failed → a short ToolMessage (or raises);
   pending → polls once if due, then pauses (again).
"""

from __future__ import annotations

import contextvars
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal

from langchain_core.messages import messages_from_dict

from langchain_agent_auth.approval._admit import _aadmit_lock, _acount_pending, _admit_lock, _count_pending
from langchain_agent_auth.approval._approvers import Approver, CIBAApprover
from langchain_agent_auth.approval._checks import (
    _already_handled,
    _arg_checker,
    _cache_result,
    _decide,
    _ran_digest,
    _unsafe,
)
from langchain_agent_auth.approval._digest import _TooDeep, _TooLarge, args_digest
from langchain_agent_auth.approval._payloads import ApprovalResponse, _Expectation, approval_progress, refuse_resume
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
from langchain_agent_auth.core.effects import Call, Flow
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
)
from langchain_agent_auth.core.guards import GuardedCall, OnRefusal, Proceed
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.core.pause import Replay, pause
from langchain_agent_auth.core.progress import emit_progress
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = ["ApprovalSteps", "get_approval_token"]

log = logging.getLogger("langchain_agent_auth.approval")

Mode = Literal["interrupt", "block"]
When = Callable[[Mapping[str, Any]], bool]

_TOKEN: contextvars.ContextVar[TokenResponse | None] = contextvars.ContextVar(
    "langchain_agent_auth_approval_token", default=None
)
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


def _is_bubble(exc: BaseException) -> bool:
    from langgraph.errors import GraphBubbleUp

    return isinstance(exc, GraphBubbleUp)


def _do(sync: Callable[..., Any], async_: Callable[..., Any], *args: Any) -> Call:
    """One store or provider operation of the flow, in its sync and async forms."""
    return Call(lambda: sync(*args), lambda: async_(*args))


class ApprovalSteps:
    """The approval's decision logic, written once as a flow (the base of
    :class:`~langchain_agent_auth.approval.ApprovalGuard`, which validates the options and
    adds the refusal policy)."""

    on_refusal: OnRefusal

    def __init__(self, approver: Approver, *, when: When | None, mode: Mode, max_pending: int | None,
                 max_args_size: int) -> None:
        self.approver = approver
        self.when = when
        self.mode = mode
        self.max_pending = max_pending
        self.max_args_size = max_args_size

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
        return self.refuse(call, error.for_model(), error)  # type: ignore[attr-defined]

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

    def _flow(self, call: GuardedCall) -> Flow[Any]:
        approver = self.approver
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
            rec: ApprovalRecord | None = yield _do(store.get, store.aget, key)
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
                    yield _do(store.put, store.aput, rec.update(status="superseded", watch=False, sealed=None))
                rec = None
        if rec is None:
            hazard = display_hazard(call.args)
            if hazard is not None:
                reason, where, what = hazard
                return self._refuse(call, _unsafe(reason, call.name, f"{what} in {where or 'the arguments'}"))
            try:
                rec = yield _do(self._admit, self._aadmit, key, call, user, digest, store)
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

    def _pause(self, call: GuardedCall, rec: ApprovalRecord, lenient: bool) -> Call:
        """Pause (again) for ``rec``; the resume value is checked inside ``interrupt()``, and
        a progress event is sent only when the run really stops here."""
        clock = self.approver.clock

        def pausing() -> ApprovalResponse:
            return pause(self.approver.payload(rec, call), ApprovalResponse,
                         expect=self._expectation(call, rec, lenient),
                         on_pause=lambda: emit_progress(call.write, approval_progress(rec, clock(), "paused")))

        return Call(pausing, pausing)

    def _reenter(self, call: GuardedCall, rec: ApprovalRecord, index: int,
                 store: ApprovalStore) -> Flow[ApprovalRecord]:
        """Re-enter pause ``index`` of an earlier run: LangGraph hands its answer back."""
        value = yield self._pause(call, rec, lenient=index in rec.swallowed)
        if value.foreign:
            return rec
        return (yield from self._apply(call, rec, value, store))

    def _settle(self, call: GuardedCall, rec: ApprovalRecord, store: ApprovalStore) -> Flow[Any]:
        """Settle the call's approval.

        LangGraph hands resume values out by the order of ``interrupt()`` calls in the node.
        So on every run the guard re-enters each pause it made in earlier runs (getting their
        answers back) before it runs the tool or pauses anew; an interrupt after ours (an inner
        guard's, the tool's own) then gets its own answer. A *new* pause that returns at once
        got an answer meant for another guard's earlier pause (one that did not re-enter): the
        value is set aside (``swallowed``) and the guard pauses again.
        """
        approver = self.approver
        replay = Replay()  # pauses of earlier runs re-entered in this run
        while True:
            now = approver.clock()
            if rec.status != "pending" and replay.due(rec.pauses):
                if replay.is_last(rec.pauses) and rec.kind == "ciba" and rec.status in DECIDED and not rec.watch:
                    # If this last pause turns out unanswered, the resumer must answer it.
                    rec = yield _do(store.put, store.aput, rec.update(watch=True, next_check_at=now))
                rec = yield from self._reenter(call, rec, replay.enter(), store)
                continue
            if rec.status not in ("pending", "approved"):
                return (yield from self._finish(call, rec, store))
            if rec.status == "approved":
                return (yield from self._run(call, rec, store))
            if now >= rec.expires_at:
                rec = yield _do(store.put, store.aput, rec.update(
                    status="expired", decided_at=now, sealed=None, watch=False, error="expired_token"))
                audit_record("approval_expired", rec)
                continue
            if isinstance(approver, CIBAApprover) and now >= rec.next_check_at:
                rec = yield _do(approver.poll, approver.apoll, rec, store)
                if rec.status != "pending":
                    continue
            if self.mode == "block":
                rec = yield _do(approver.wait, approver.await_, rec, store, call)  # type: ignore[attr-defined]
                continue
            if replay.due(rec.pauses):
                rec = yield from self._reenter(call, rec, replay.enter(), store)
                continue
            rec = yield _do(store.put, store.aput, rec.update(pauses=rec.pauses + 1))
            value = yield self._pause(call, rec, lenient=True)
            # Returned at once: this pause was never shown, so the value was another's.
            rec = yield _do(store.put, store.aput, rec.update(swallowed=[*rec.swallowed, replay.enter()]))
            if not value.foreign and value.approval_id != rec.approval_id:
                rec = yield from self._apply(call, rec, value, store)

    def _finish(self, call: GuardedCall, rec: ApprovalRecord, store: ApprovalStore) -> Flow[Any]:
        """A record that is no longer pending nor approved: its cached result, or a refusal."""
        if rec.status == "done":
            return self._replay(call, rec, store)
        if rec.status == "running":
            return self._refuse(call, ApprovalAlreadyHandledError(
                f"the approved {rec.tool} call already started once (another delivery is running it, or a "
                "run stopped before it finished); not repeated",
                hint=f"This {rec.tool} call was already started after approval, so it was not repeated. "
                     "Ask the user before trying again."))
        if rec.watch:
            rec = yield _do(store.put, store.aput, rec.update(watch=False))
        return self._refuse_record(call, rec)

    def _apply(self, call: GuardedCall, rec: ApprovalRecord, value: ApprovalResponse,
               store: ApprovalStore) -> Flow[ApprovalRecord]:
        """Take a resume value into account. A CIBA decision is only ever read from the store
        (the resumer or a poll wrote it); an in-app decision is recorded against the record
        it names (this call's, or a sibling's in the same ToolNode task)."""
        if value.approval_id == rec.approval_id:
            fresh = yield _do(store.get, store.aget, rec.key)
            fresh = fresh if fresh is not None and fresh.approval_id == rec.approval_id else rec
            if fresh.kind == "in_app" and fresh.status == "pending":
                if not (yield _do(store.claim, store.aclaim, fresh.approval_id, "decide", _DECIDE_TTL)):
                    raise _already_handled(fresh, "this answer was already handled by another delivery")
                fresh = yield _do(store.put, store.aput, _decide(fresh, value, self.approver.clock()))
            return fresh
        other = yield _do(store.get, store.aget, value.approval_id.split(".", 1)[0])
        now = self.approver.clock()
        if (other is not None and other.approval_id == value.approval_id and other.kind == "in_app"
                and other.status == "pending" and other.user_key == rec.user_key and now < other.expires_at
                and value.decision in ("approve", "edit", "reject")
                and (value.args_digest is None or value.args_digest == other.args_digest)
                and (value.name is None or value.name == other.tool)
                and (value.decision == "edit") == (value.args is not None)):
            if (yield _do(store.claim, store.aclaim, other.approval_id, "decide", _DECIDE_TTL)):
                yield _do(store.put, store.aput, _decide(other, value, now))
        else:
            log.info("resume value for approval %s ignored by approval %s", value.approval_id[:40], rec.approval_id)
        fresh = yield _do(store.get, store.aget, rec.key)
        return fresh if fresh is not None and fresh.approval_id == rec.approval_id else rec

    def _run(self, call: GuardedCall, rec: ApprovalRecord, store: ApprovalStore) -> Flow[Any]:
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
        if not (yield _do(store.claim, store.aclaim, rec.approval_id, "run", None, owner)):
            fresh = yield _do(store.get, store.aget, rec.key)
            if fresh is not None and fresh.approval_id == rec.approval_id and fresh.status == "done":
                return self._replay(call, fresh, store)
            if (yield _do(store.withdrawn, store.awithdrawn, rec.approval_id)):
                # an answer that arrived after the user withdrew the request (a late poll's write)
                return self._refuse_record(call, rec.update(status="denied", error=WITHDRAWN))
            raise _already_handled(rec, f"the approved {rec.tool} call is already being run by another delivery")
        running = yield _do(store.put, store.aput, approved.update(status="running"))
        reset = _TOKEN.set(token)
        try:
            result = yield Proceed(run_call)
        except Exception as exc:
            if _is_bubble(exc):
                # An inner guard or the tool paused: approved again, and the "run" step given
                # back, so the re-run after the resume runs the tool (the pause propagates).
                yield _do(store.put, store.aput, approved)
                yield _do(store.release, store.arelease, rec.approval_id, "run", owner)
                raise
            yield _do(store.put, store.aput, running.update(
                status="done", sealed=None, finished_at=self.approver.clock(), error="tool_error"))
            audit_record("approval_executed", rec, outcome="tool_error", args_digest=_ran_digest(rec))
            raise
        finally:
            _TOKEN.reset(reset)
        if token is not None:  # the approval's token never reaches the model through the result
            result = scrub(result, (token.access_token,))
        done = running.update(status="done", sealed=None, finished_at=self.approver.clock())
        yield _do(store.put, store.aput, done.update(result=_cache_result(store, done, result)))
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

