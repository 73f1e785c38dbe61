"""The audit trail: one typed :class:`AuditEvent` stream for every pillar, three sinks.

Pillars emit (:func:`emit_audit`): identity resolved (which channel), token obtained /
refreshed / revoked / refused (connection, scopes), approval requested / decided / executed /
expired / refused (tool, argument digest, decider, channel), fga decisions, thread ownership
refusals. Nothing listens until you add a sink, and then only what you add:

* :class:`LoggingAuditSink`: one JSON line per event on the ``langchain_agent_auth.audit`` logger;
* :class:`OpenTelemetryAuditSink`: a span per guarded tool call with an event per decision
  (the ``otel`` extra);
* :class:`StoreAuditSink`: kept in a LangGraph store; ``agent-auth audit`` and
  :func:`read_audit` show it.

No event carries a token, a secret or tool arguments (only their digest).

Example:
    >>> import langchain_agent_auth.audit as audit
    >>> seen = []
    >>> with audit.audit_sink(seen.append):
    ...     audit.emit_audit("thread_refused", user="-|-|eve", thread_id="t1")
    >>> seen[0].kind, seen[0].thread_id
    ('thread_refused', 't1')
"""

from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AUDIT_KINDS": "langchain_agent_auth.core.audit._event",
    "AuditEvent": "langchain_agent_auth.core.audit._event",
    "AuditKind": "langchain_agent_auth.core.audit._event",
    "AuditSink": "langchain_agent_auth.core.audit._emit",
    "add_audit_sink": "langchain_agent_auth.core.audit._emit",
    "audit_call": "langchain_agent_auth.core.audit._emit",
    "audit_enabled": "langchain_agent_auth.core.audit._emit",
    "audit_sink": "langchain_agent_auth.core.audit._emit",
    "emit_audit": "langchain_agent_auth.core.audit._emit",
    "remove_audit_sink": "langchain_agent_auth.core.audit._emit",
    "OpenTelemetryAuditSink": "langchain_agent_auth.core.audit._otel",
    "AUDIT_NAMESPACE": "langchain_agent_auth.core.audit._sinks",
    "LoggingAuditSink": "langchain_agent_auth.core.audit._sinks",
    "StoreAuditSink": "langchain_agent_auth.core.audit._sinks",
    "aread_audit": "langchain_agent_auth.core.audit._sinks",
    "read_audit": "langchain_agent_auth.core.audit._sinks",
}

__all__ = [
    "AUDIT_KINDS",
    "AUDIT_NAMESPACE",
    "AuditEvent",
    "AuditKind",
    "AuditSink",
    "LoggingAuditSink",
    "OpenTelemetryAuditSink",
    "StoreAuditSink",
    "add_audit_sink",
    "aread_audit",
    "audit_call",
    "audit_enabled",
    "audit_sink",
    "emit_audit",
    "read_audit",
    "remove_audit_sink",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

if TYPE_CHECKING:
    from langchain_agent_auth.core.audit._emit import (
        AuditSink,
        add_audit_sink,
        audit_call,
        audit_enabled,
        audit_sink,
        emit_audit,
        remove_audit_sink,
    )
    from langchain_agent_auth.core.audit._event import AUDIT_KINDS, AuditEvent, AuditKind
    from langchain_agent_auth.core.audit._otel import OpenTelemetryAuditSink
    from langchain_agent_auth.core.audit._sinks import (
        AUDIT_NAMESPACE,
        LoggingAuditSink,
        StoreAuditSink,
        aread_audit,
        read_audit,
    )
