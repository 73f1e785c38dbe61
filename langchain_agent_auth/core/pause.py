"""The pause protocol: the only place the toolkit calls LangGraph's ``interrupt()``.

Every pillar pauses through :func:`pause` with a typed payload, and shares its semantics:

* **validation inside** ``interrupt()``: a resume value of the wrong shape (or one an
  ``expect`` check refuses) fails that resume attempt without being recorded, so the same
  pause can be answered again;
* **progress only on a real pause**: ``on_pause`` runs when the run really stops here, not
  when a re-run of the node gets its answer back at once;
* **re-entering earlier pauses in order** (:class:`Replay`): LangGraph hands resume values
  out by the order of ``interrupt()`` calls in a node, so a node that paused N times in
  earlier runs re-enters those N pauses, in order, before it pauses anew;
* **stopping the run on a bad resume** (:func:`stop_run`): an error LangGraph's ``ToolNode``
  re-raises whatever ``handle_tool_errors`` says, so the pause stays in place.

Only LangGraph's public API is used (``interrupt``, ``GraphInterrupt``,
``is_invalid_resume``).

Payloads are pydantic models dumped to plain dicts with a ``type`` discriminator, a schema
``version`` and a ``response_schema`` (JSON schema of the resume value). Resume values are
validated against their model; a value of the wrong shape raises
:class:`~langchain_agent_auth.errors.ResumeValueError` and leaves the pause in place.

Payload types (each defined by its pillar):

* ``connect_account`` (vault): connection, scopes, missing_scopes, authorize_url...
* ``approval_pending`` (approval, CIBA): binding_message, authorization_details...
* ``tool_approval`` (approval, in-app): tool name, args, allowed decisions.
* ``device_authorization`` (identity, RFC 8628): verification URI, user code, expiry.

No payload ever carries a token, secret, CIBA ``auth_req_id`` or device code.

Example:
    >>> from typing import Literal
    >>> class Ping(PausePayload):
    ...     type: Literal["ping"] = "ping"
    >>> Ping(tool_call_id="c1").to_interrupt()["type"]
    'ping'
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_agent_auth.core.errors import ResumeValueError

__all__ = [
    "PausePayload",
    "Replay",
    "ResumeModel",
    "is_pause",
    "pause",
    "pause_expectation",
    "stop_run",
    "validate_resume",
]

R = TypeVar("R", bound=BaseModel)
E = TypeVar("E", bound=BaseException)

_EXPECT: contextvars.ContextVar[Any] = contextvars.ContextVar("langchain_agent_auth_pause_expectation",
                                                              default=None)


class ResumeModel(BaseModel):
    """Base for resume values: strict, no unknown fields."""

    model_config = ConfigDict(extra="forbid")


class PausePayload(BaseModel):
    """Base of every interrupt payload this toolkit raises."""

    model_config = ConfigDict(extra="forbid")

    type: str
    version: int = 1
    tool_call_id: str | None = None
    #: The resume value model for this payload (not serialized).
    resume_model: ClassVar[type[BaseModel] | None] = None

    def to_interrupt(self) -> dict[str, Any]:
        """The payload as the plain dict passed to ``interrupt()``."""
        data = self.model_dump(mode="json")
        if self.resume_model is not None:
            data["response_schema"] = self.resume_model.model_json_schema()
        return data


def validate_resume(value: Any, model: type[R]) -> R:
    """Validate a resume value, raising :class:`ResumeValueError` on a wrong shape.

    Example:
        >>> class Answer(ResumeModel):
        ...     ok: bool
        >>> validate_resume({"ok": True}, Answer).ok
        True
    """
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "value" for e in exc.errors())
        raise ResumeValueError(f"resume value does not match {model.__name__} (check: {fields})") from None


def pause_expectation() -> Any:
    """What the pause being answered expects (the ``expect=`` given to :func:`pause`), for a
    resume model's validator; ``None`` outside a pause.

    Example:
        >>> pause_expectation() is None
        True
    """
    return _EXPECT.get()


def is_pause(exc: BaseException) -> bool:
    """Whether ``exc`` is LangGraph stopping the run at a pause (``GraphInterrupt``).

    Example:
        >>> is_pause(ValueError())
        False
    """
    from langgraph.errors import GraphInterrupt

    return isinstance(exc, GraphInterrupt)


def pause(payload: PausePayload | dict[str, Any], resume_model: type[R] | None = None, *,
          expect: Any = None, on_pause: Callable[[], None] | None = None) -> Any:
    """Pause the graph with ``payload``; return the resume value.

    With a ``resume_model`` (or the payload's ``resume_model``) the value is validated
    *inside* ``interrupt()``: a value of the wrong shape fails that resume attempt without
    being recorded, so the same pause can be answered again (validating after ``interrupt()``
    returned would leave the bad value recorded for every later re-run). ``expect`` is
    what this pause accepts, readable by the model's validators through
    :func:`pause_expectation` while the value is checked. ``on_pause`` runs when the run
    really stops here (e.g. to send progress), never when the pause returns its answer.

    Must run inside a LangGraph node or tool with a checkpointer. The node re-runs from its
    start on resume, so everything before this call must be idempotent.
    """
    from langgraph.types import interrupt

    if isinstance(payload, PausePayload):
        model = resume_model or payload.resume_model
        value = payload.to_interrupt()
    else:
        model, value = resume_model, payload
    token = _EXPECT.set(expect)
    try:
        if model is None:
            return interrupt(value)
        return interrupt(value, response_schema=model)
    except BaseException as exc:
        if on_pause is not None and is_pause(exc):
            on_pause()
        raise
    finally:
        _EXPECT.reset(token)


@dataclass
class Replay:
    """Re-entering, in order, the pauses a node made in its earlier runs.

    LangGraph matches resume values to ``interrupt()`` calls by their order in the node. A
    guard that paused ``made`` times before (a count it keeps in its own record, since the
    node's locals do not survive a re-run) re-enters each of those pauses first, getting
    their answers back, then pauses anew; an interrupt that comes after it (an inner
    guard's, the tool's) thus keeps its own answer. A new pause counts as entered too.

    Example:
        >>> replay, made = Replay(), 2
        >>> [replay.enter() for _ in range(made) if replay.due(made)], replay.due(made)
        ([0, 1], False)
    """

    entered: int = 0

    def due(self, made: int) -> bool:
        """Whether an earlier pause (of the ``made`` so far) is still to be re-entered in this run."""
        return self.entered < made

    def is_last(self, made: int) -> bool:
        """Whether the next pause to re-enter is the last one made before."""
        return self.entered == made - 1

    def enter(self) -> int:
        """The index of the pause entered now (counts it as entered)."""
        index = self.entered
        self.entered += 1
        return index


_MARK: list[str] = []


def _invalid_resume_marker() -> str | None:
    """The attribute LangGraph's public ``is_invalid_resume(err)`` reads, learnt by asking it
    once (``None`` on a LangGraph without it, or one that reads no attribute)."""
    if _MARK:
        return _MARK[0] or None
    try:
        from langgraph.errors import is_invalid_resume
    except ImportError:  # pragma: no cover - older langgraph: ToolNode re-raises no error
        _MARK.append("")
        return None
    asked: list[str] = []

    class _Probe(Exception):
        def __getattr__(self, name: str) -> Any:
            asked.append(name)
            return True

    try:
        found = is_invalid_resume(_Probe()) and asked
    except Exception:  # pragma: no cover - a LangGraph that works otherwise
        found = []
    _MARK.append(asked[-1] if found else "")
    return _MARK[0] or None


def stop_run(err: E) -> E:
    """Mark ``err`` so a ``ToolNode`` re-raises it, whatever ``handle_tool_errors`` says: the
    run stops and the pause stays in place (a bad resume value, another user's thread),
    instead of the model getting it as a tool error.

    Example:
        >>> from langgraph.errors import is_invalid_resume
        >>> is_invalid_resume(stop_run(ValueError("another user's approval")))
        True
    """
    marker = _invalid_resume_marker()
    if marker is not None:
        setattr(err, marker, True)
    return err
