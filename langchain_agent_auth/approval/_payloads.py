"""Interrupt payloads of the approval pillar and the resume value they accept.

Two payloads, both :class:`~langchain_agent_auth.pause.PausePayload` subclasses:

* ``approval_pending`` (:class:`ApprovalPendingPayload`): a CIBA request is on the user's
  device; the run waits for the provider's answer. No ``auth_req_id`` in it: the request
  is named by ``approval_id``, which is not a credential.
* ``tool_approval`` (:class:`ToolApprovalPayload`): the application asks the user in its
  own UI (approve / edit / reject), per tool call. Also carries LangChain
  ``HumanInTheLoopMiddleware``-style ``action_requests`` / ``review_configs``.

Both are resumed with an :class:`ApprovalResponse`
(``{"approval_id": ..., "decision": ...}``). The value is checked *inside*
``interrupt()`` (as its ``response_schema``), so a value of the wrong shape, for another
thread, for another call's tool, with switched tool name or stale digest raises
:class:`~langchain_agent_auth.errors.ResumeValueError` before LangGraph records it: the
pause stays in place and can be answered again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from langchain_agent_auth.core.audit._emit import emit_audit
from langchain_agent_auth.core.errors import ResumeValueError
from langchain_agent_auth.core.pause import PausePayload, ResumeModel, pause_expectation, stop_run
from langchain_agent_auth.core.progress import WaitProgress

__all__ = [
    "ApprovalPendingPayload",
    "ApprovalResponse",
    "Decision",
    "ToolApprovalPayload",
]

Decision = Literal["approve", "edit", "reject", "check"]


@dataclass(frozen=True)
class _Expectation:
    """What the guard that is about to pause accepts (set around ``interrupt()``)."""

    thread_tag: str
    approval_id: str
    kind: Literal["ciba", "in_app"]
    tool: str
    digest: str
    allowed: tuple[str, ...] = ()
    check_args: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)
    #: This pause was never shown (a new one, or one that got another pause's answer): any
    #: value here was meant for another interrupt of the node, so it is set aside, not refused.
    lenient: bool = False


def refuse_resume(message: str) -> ResumeValueError:
    """A :class:`ResumeValueError` LangGraph treats as a bad resume value (the run stops and
    the pause stays in place, see :func:`~langchain_agent_auth.core.pause.stop_run`)."""
    emit_audit("approval_refused", outcome="invalid_resume", detail=message)
    return stop_run(ResumeValueError(message))


def _expectation() -> _Expectation | None:
    expect = pause_expectation()
    return expect if isinstance(expect, _Expectation) else None


class ApprovalResponse(ResumeModel):
    """The resume value of both approval payloads.

    * ``approval_id``: the ``approval_id`` of the payload being answered (required).
    * ``decision``: ``approve`` / ``edit`` / ``reject`` for ``tool_approval``; ``check`` for
      ``approval_pending`` (a CIBA decision is only ever read from the provider).
    * ``args``: the edited arguments (``edit`` only); ``name``, if given, must be the tool.
    * ``message``: why the user rejected (shown to the model, clipped).
    * ``args_digest``: optional echo of the payload's digest; a stale one is refused.

    Example:
        >>> ApprovalResponse(approval_id="a1.b2", decision="approve").decision
        'approve'
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "description": "Answer to an approval_pending or tool_approval pause: approval_id of the payload; "
                       "decision approve/edit/reject (tool_approval) or check (approval_pending); args "
                       "(edit only); message (reject); args_digest (optional echo)."})

    approval_id: str = Field(min_length=1, max_length=128)
    decision: Decision = "check"
    args: dict[str, Any] | None = None
    name: str | None = Field(default=None, max_length=256)
    message: str | None = Field(default=None, max_length=2000)
    args_digest: str | None = Field(default=None, max_length=128)

    _foreign: bool = PrivateAttr(default=False)

    @property
    def foreign(self) -> bool:
        """Whether this value was meant for another interrupt of the node (set aside)."""
        return self._foreign

    @classmethod
    def _set_aside(cls) -> ApprovalResponse:
        value = cls.model_construct(approval_id="-", decision="check")
        value._foreign = True
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _checked(cls, data: Any, handler: Any) -> ApprovalResponse:
        expect = _expectation()
        try:
            value: ApprovalResponse = handler(data)
        except ValidationError as exc:
            if expect is not None and expect.lenient:
                return cls._set_aside()
            fields = ", ".join(".".join(str(p) for p in e["loc"]) or "value" for e in exc.errors())
            raise refuse_resume(_shape_message(data, fields, expect)) from None
        if expect is not None:
            if expect.lenient:
                return value if value.approval_id.startswith(expect.thread_tag) else cls._set_aside()
            value._check_against(expect)
        return value

    def _check_against(self, expect: _Expectation) -> None:
        if not self.approval_id.startswith(expect.thread_tag):
            raise refuse_resume("resume value names an approval of another thread or graph task; refused")
        if self.approval_id != expect.approval_id:
            return  # another call of this task: applied (or ignored) against its own record
        if expect.kind == "ciba" and self.decision != "check":
            raise refuse_resume(
                "a CIBA approval is decided on the user's device, not by the resume value; "
                "resume with decision 'check'"
            )
        if expect.kind == "in_app" and self.decision not in expect.allowed:
            allowed = ", ".join(expect.allowed)
            raise refuse_resume(f"decision {self.decision!r} is not allowed here (allowed: {allowed})")
        if self.args_digest is not None and self.args_digest != expect.digest:
            raise refuse_resume("resume value was made for other arguments (args_digest differs); refused")
        if self.name is not None and self.name != expect.tool:
            raise refuse_resume("an approval cannot switch the tool; edit the arguments only")
        if self.decision == "edit":
            if self.args is None:
                raise refuse_resume("an 'edit' decision needs 'args'")
            if expect.check_args is not None:
                expect.check_args(self.args)
        elif self.args is not None:
            raise refuse_resume("'args' is only allowed with decision 'edit'")


def _allowed(expect: _Expectation | None) -> str:
    if expect is None:
        return "approve, edit or reject for tool_approval; check for approval_pending"
    if expect.kind == "ciba":
        return "check (a CIBA approval is decided on the user's device)"
    return ", ".join(expect.allowed)


def _shape_message(data: Any, fields: str, expect: _Expectation | None) -> str:
    approval_id = expect.approval_id if expect is not None else "<the payload's approval_id>"
    example = f"{{'approval_id': {approval_id!r}, 'decision': ...}}"
    if isinstance(data, Mapping) and "decisions" in data:
        # HumanInTheLoopMiddleware's resume shape answers a batch by position; an approval
        # is bound to one call, so it is answered by approval_id.
        return (f"resume value has HumanInTheLoopMiddleware's {{'decisions': [...]}} shape; an approval "
                f"is answered per call: resume with {example} (decision: {_allowed(expect)})")
    return (f"resume value does not match ApprovalResponse ({example}; check: {fields}; "
            f"decision: {_allowed(expect)})")


class ApprovalPendingPayload(PausePayload):
    """``approval_pending``: a CIBA request waits on the user's device.

    Example:
        >>> p = ApprovalPendingPayload(approval_id="t.c.1", tool="transfer", args_digest="sha256:0",
        ...     binding_message="Approve transfer", delivery_mode="poll", interval=5, expires_at=0,
        ...     tool_call_id="call_1")
        >>> d = p.to_interrupt()
        >>> d["type"], "auth_req_id" in str(d), "approval_id" in d["response_schema"]["properties"]
        ('approval_pending', False, True)
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["approval_pending"] = "approval_pending"
    approval_id: str
    tool: str
    args_digest: str
    binding_message: str | None = None
    authorization_details: list[dict[str, Any]] | None = None
    delivery_mode: Literal["poll", "ping"] = "poll"
    interval: float = 5.0
    expires_at: float
    message: str = ""
    resume_model = ApprovalResponse


class ActionRequest(BaseModel):
    """One action to review (LangChain HITL shape)."""

    name: str
    args: dict[str, Any]
    description: str | None = None


class ReviewConfig(BaseModel):
    """What the reviewer may do with an action (LangChain HITL shape)."""

    action_name: str
    allowed_decisions: list[str]


class ToolApprovalPayload(PausePayload):
    """``tool_approval``: approve, edit or reject one tool call in the application's UI.

    Example:
        >>> p = ToolApprovalPayload(approval_id="t.c.1", tool="transfer", args={"amount": 5},
        ...     args_digest="sha256:0", description="Move money", allowed_decisions=["approve", "reject"])
        >>> p.to_interrupt()["action_requests"][0]["name"]
        'transfer'
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["tool_approval"] = "tool_approval"
    approval_id: str
    tool: str
    args: dict[str, Any]
    args_truncated: bool = False
    args_digest: str
    description: str = ""
    allowed_decisions: list[Literal["approve", "edit", "reject"]]
    expires_at: float | None = None
    action_requests: list[ActionRequest] = Field(default_factory=list)
    review_configs: list[ReviewConfig] = Field(default_factory=list)
    resume_model = ApprovalResponse

    def model_post_init(self, __context: Any) -> None:
        if not self.action_requests:
            self.action_requests = [ActionRequest(name=self.tool, args=self.args, description=self.description)]
        if not self.review_configs:
            self.review_configs = [ReviewConfig(action_name=self.tool,
                                                allowed_decisions=list(self.allowed_decisions))]


_ENDED = {"approved": "approved", "running": "approved", "done": "done", "denied": "denied",
          "expired": "expired", "failed": "failed"}


def approval_progress(rec: Any, now: float, state: str, seconds_left: float | None = None,
                      next_in: float | None = None) -> WaitProgress:
    """The progress event of an approval record (no ``auth_req_id``, no token)."""
    if state not in ("paused", "waiting"):
        state = _ENDED.get(state, "done")
    left = rec.expires_at - now if seconds_left is None else seconds_left
    device = " on your device" if rec.kind == "ciba" else ""
    texts = {
        "paused": f"Waiting for your approval of {rec.tool}{device}; the run resumes when you answer",
        "waiting": f"Waiting for your approval of {rec.tool}{device}",
        "approved": f"{rec.tool} approved", "denied": f"{rec.tool} denied",
        "expired": f"The approval request for {rec.tool} expired", "failed": f"The approval of {rec.tool} failed",
        "done": f"The approval request for {rec.tool} ended",
    }
    text = texts[state]
    if rec.binding_message and state in ("paused", "waiting"):
        text += f": {rec.binding_message}"
    waiting = state in ("paused", "waiting")
    return WaitProgress(
        kind="approval", state=state, tool=rec.tool, tool_call_id=rec.tool_call_id,  # type: ignore[arg-type]
        binding_message=rec.binding_message, expires_at=rec.expires_at,
        seconds_left=max(0, round(left)) if waiting else 0,
        next_check_at=now + max(0.0, next_in) if waiting and next_in is not None else None, message=text)
