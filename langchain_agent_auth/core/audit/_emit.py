"""The audit emitter: where pillars report what they decided, and where sinks listen.

Pillars call :func:`emit_audit` (one line each); with no sink configured it returns at
once, without building an event. Guard adapters run each tool call inside
:func:`audit_call`, which remembers the call (user, thread, tool, tool call id) for the
events emitted during it and lets span-capable sinks (OpenTelemetry) open a span.

A sink is any callable taking an :class:`AuditEvent`; it may also offer
``call_scope(info)`` returning a context manager (the OpenTelemetry sink does). A failing
sink is logged and never breaks the call it reports on.

Example:
    >>> seen = []
    >>> with audit_sink(seen.append):
    ...     emit_audit("token_revoked", user="-|-|bob", connection="calendar")
    >>> [(e.kind, e.user) for e in seen]
    [('token_revoked', '-|-|bob')]
    >>> emit_audit("token_revoked", user="-|-|bob")  # no sink: nothing happens
    >>> len(seen)
    1
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = [
    "AuditSink",
    "CallInfo",
    "add_audit_sink",
    "audit_call",
    "audit_enabled",
    "audit_sink",
    "emit_audit",
    "remove_audit_sink",
]

logger = logging.getLogger("langchain_agent_auth.audit")

AuditSink = Callable[[Any], Any]

# A tuple (immutable): readers never see a half-updated list while another thread adds a sink.
_SINKS: tuple[AuditSink, ...] = ()
_CALL: ContextVar[CallInfo | None] = ContextVar("langchain_agent_auth_audit_call", default=None)


class CallInfo:
    """The guarded tool call events are emitted in: fills the fields a pillar leaves out."""

    __slots__ = ("thread_id", "tool", "tool_call_id", "user")

    def __init__(self, tool: str | None, thread_id: str | None, tool_call_id: str | None,
                 user: str | None) -> None:
        self.tool, self.thread_id, self.tool_call_id, self.user = tool, thread_id, tool_call_id, user


def add_audit_sink(sink: AuditSink) -> AuditSink:
    """Send every audit event of this process to ``sink`` (returned, to remove it later)."""
    global _SINKS
    if sink not in _SINKS:
        _SINKS = (*_SINKS, sink)
    return sink


def remove_audit_sink(sink: AuditSink) -> None:
    """Stop sending events to ``sink`` (no error if it was not added)."""
    global _SINKS
    _SINKS = tuple(s for s in _SINKS if s is not sink)


@contextlib.contextmanager
def audit_sink(sink: AuditSink) -> Iterator[AuditSink]:
    """:func:`add_audit_sink` for the duration of a ``with`` block."""
    add_audit_sink(sink)
    try:
        yield sink
    finally:
        remove_audit_sink(sink)


def audit_enabled() -> bool:
    """Whether any sink listens (callers may skip building costly fields when not)."""
    return bool(_SINKS)


def emit_audit(kind: str, **fields: Any) -> None:
    """Build an :class:`AuditEvent` of ``kind`` and hand it to every sink.

    Fields the caller leaves out (user, thread, tool, tool call id) come from the
    surrounding :func:`audit_call`. An invalid event is logged, never raised: auditing
    must not change what the pillar decided.
    """
    sinks = _SINKS
    if not sinks:
        return
    from langchain_agent_auth.core.audit._event import AuditEvent

    call = _CALL.get()
    if call is not None:
        for name in CallInfo.__slots__:
            if fields.get(name) is None:
                fields[name] = getattr(call, name)
    try:
        event = AuditEvent(kind=kind, **fields)  # type: ignore[arg-type]
    except Exception as exc:  # a bad field: report it, without the values
        logger.warning("audit: dropped an invalid %s event (%s)", kind, type(exc).__name__)
        return
    for sink in sinks:
        try:
            sink(event)
        except Exception:
            logger.exception("audit: a sink failed")


@contextlib.contextmanager
def audit_call(tool: str | None, thread_id: str | None = None, tool_call_id: str | None = None,
               user: str | None = None) -> Iterator[CallInfo | None]:
    """Run a guarded tool call as the context of the events emitted inside it.

    With no sink configured this does nothing (no context variable, no span).
    """
    sinks = _SINKS
    if not sinks:
        yield None
        return
    outer = _CALL.get()
    if outer is not None and (outer.tool, outer.tool_call_id) == (tool, tool_call_id):
        # Nested chains (one per middleware) around the same call: one scope, one span.
        if outer.user is None:
            outer.user = user
        yield outer
        return
    info = CallInfo(tool, thread_id, tool_call_id, user)
    token = _CALL.set(info)
    try:
        with contextlib.ExitStack() as stack:
            for sink in sinks:
                scope = getattr(sink, "call_scope", None)
                if scope is not None:
                    try:
                        stack.enter_context(scope(info))
                    except Exception:
                        logger.exception("audit: a sink failed to open a call scope")
            yield info
    finally:
        _CALL.reset(token)
