"""The OpenTelemetry audit sink: a span per guarded tool call, an event per decision.

Needs the ``otel`` extra (``pip install "langchain-agent-auth[otel]"``); the API is imported
when the sink is built, with an install hint if it is missing. Events emitted outside a
guarded call (a resumer, a CLI) get a short span of their own.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> from langchain_agent_auth.core.audit import audit_call, audit_sink, emit_audit
    >>> exporter, provider = InMemorySpanExporter(), TracerProvider()
    >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
    >>> with audit_sink(OpenTelemetryAuditSink(tracer_provider=provider)):
    ...     with audit_call("send_email", thread_id="t1", user="-|-|ann"):
    ...         emit_audit("fga_decision", relation="can_send", object="mailbox:ann", outcome="allowed")
    >>> [(s.name, [e.name for e in s.events]) for s in exporter.get_finished_spans()]
    [('agent_auth.tool send_email', ['fga_decision'])]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from langchain_agent_auth.core.audit._emit import CallInfo
from langchain_agent_auth.core.audit._event import AuditEvent
from langchain_agent_auth.core.errors import ConfigurationError

__all__ = ["OpenTelemetryAuditSink"]

_HINT = 'OpenTelemetryAuditSink needs OpenTelemetry: pip install "langchain-agent-auth[otel]"'
_PAUSES = ("GraphInterrupt", "GraphBubbleUp", "ParentCommand")


def _trace() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigurationError(_HINT) from exc
    return trace


def _attributes(event: AuditEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in event.to_json_dict().items():
        if name in ("kind", "timestamp"):
            continue
        out[f"agent_auth.{name}"] = list(value) if isinstance(value, list | tuple) else value
    return out


class OpenTelemetryAuditSink:
    """Spans named ``agent_auth.tool <tool>`` for guarded calls, audit events as span events.

    A pause (LangGraph's interrupt passing through) ends the span with
    ``agent_auth.paused = true``, not as an error.
    """

    def __init__(self, *, tracer_provider: Any = None, tracer_name: str = "langchain_agent_auth") -> None:
        trace = _trace()
        self._trace = trace
        self.tracer = trace.get_tracer(tracer_name, tracer_provider=tracer_provider)

    @contextlib.contextmanager
    def call_scope(self, info: CallInfo) -> Iterator[Any]:
        """The span around one guarded tool call."""
        attributes = {k: v for k, v in (("agent_auth.tool", info.tool), ("agent_auth.thread_id", info.thread_id),
                                         ("agent_auth.tool_call_id", info.tool_call_id),
                                         ("agent_auth.user", info.user)) if v is not None}
        with self.tracer.start_as_current_span(
            f"agent_auth.tool {info.tool}", attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                if any(c.__name__ in _PAUSES for c in type(exc).__mro__):
                    span.set_attribute("agent_auth.paused", True)
                else:
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(exc).__name__))
                raise

    def __call__(self, event: AuditEvent) -> None:
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(event.kind, attributes=_attributes(event), timestamp=int(event.timestamp * 1e9))
            return
        with self.tracer.start_as_current_span(f"agent_auth.{event.kind}") as own:
            own.add_event(event.kind, attributes=_attributes(event), timestamp=int(event.timestamp * 1e9))
