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

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)



