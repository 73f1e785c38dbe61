"""Two audit sinks that need nothing extra: JSON lines on a logger, and a LangGraph store.

:class:`LoggingAuditSink` logs each event as one JSON object on the
``langchain_agent_auth.audit`` logger (INFO), for any log pipeline.

:class:`StoreAuditSink` keeps events durably in a LangGraph ``BaseStore`` (the SQLite store
``agent-auth audit`` reads): who decided what, when, for which argument digest.
:func:`read_audit` reads them back, newest last, filtered by user, thread and kind.

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from langchain_agent_auth.core.audit import audit_sink, emit_audit
    >>> store = InMemoryStore()
    >>> with audit_sink(StoreAuditSink(store)):
    ...     emit_audit("approval_decided", user="-|-|ann", tool="send", args_digest="sha256:ab",
    ...                outcome="approve", decider="-|-|ann", channel="in_app")
    >>> [(e.kind, e.outcome) for e in read_audit(store, user="-|-|ann")]
    [('approval_decided', 'approve')]
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from langchain_agent_auth.core.audit._event import AuditEvent

__all__ = ["AUDIT_NAMESPACE", "LoggingAuditSink", "StoreAuditSink", "aread_audit", "read_audit"]

#: Where :class:`StoreAuditSink` keeps events in the store.
AUDIT_NAMESPACE: tuple[str, ...] = ("agent_auth", "audit")


class LoggingAuditSink:
    """Log every event as one JSON line (``logger.info``), no ``None`` fields.

    Example:
        >>> import logging
        >>> sink = LoggingAuditSink(logging.getLogger("doctest.audit"))
        >>> sink.format(AuditEvent(kind="thread_refused", user="-|-|eve", thread_id="t1", timestamp=1.0))
        '{"kind": "thread_refused", "timestamp": 1.0, "user": "-|-|eve", "thread_id": "t1"}'
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("langchain_agent_auth.audit")
        self.level = level

    @staticmethod
    def format(event: AuditEvent) -> str:
        """The JSON line for ``event``."""
        return json.dumps(event.to_json_dict())

    def __call__(self, event: AuditEvent) -> None:
        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "%s", self.format(event))


def _key(event: AuditEvent) -> str:
    # Keys sort by time, so the store's own order is the trail's order.
    return f"{event.timestamp:017.6f}-{uuid.uuid4().hex[:12]}"


class StoreAuditSink:
    """Keep events in ``store`` under :data:`AUDIT_NAMESPACE` (all kinds, or only ``kinds``).

    Writes with the store's synchronous ``put`` (a ``SqliteStore``, ``PostgresStore`` or
    ``InMemoryStore``), from sync and async graphs alike.
    """

    def __init__(self, store: Any, *, kinds: Iterable[str] | None = None) -> None:
        self.store = store
        self.kinds = None if kinds is None else frozenset(kinds)

    def __call__(self, event: AuditEvent) -> None:
        if self.kinds is None or event.kind in self.kinds:
            self.store.put(AUDIT_NAMESPACE, _key(event), event.to_json_dict(), index=False)


def _filter(user: str | None, thread_id: str | None, kind: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if user is not None:
        out["user"] = user
    if thread_id is not None:
        out["thread_id"] = thread_id
    if kind is not None:
        out["kind"] = kind
    return out


def _events(items: Iterable[Any]) -> list[AuditEvent]:
    events = []
    for item in items:
        try:
            events.append(AuditEvent.model_validate(item.value))
        except Exception:  # a record written by something else: not part of the trail
            logging.getLogger("langchain_agent_auth.audit").debug("audit: skipped a foreign record %s", item.key)
    events.sort(key=lambda e: e.timestamp)
    return events


def read_audit(store: Any, *, user: str | None = None, thread_id: str | None = None,
               kind: str | None = None, limit: int = 1000) -> list[AuditEvent]:
    """The stored events matching every filter given, oldest first (at most ``limit``, newest kept)."""
    items = store.search(AUDIT_NAMESPACE, filter=_filter(user, thread_id, kind) or None, limit=1_000_000)
    return _events(items)[-limit:] if limit > 0 else []


async def aread_audit(store: Any, *, user: str | None = None, thread_id: str | None = None,
                      kind: str | None = None, limit: int = 1000) -> list[AuditEvent]:
    """Async :func:`read_audit`."""
    items = await store.asearch(AUDIT_NAMESPACE, filter=_filter(user, thread_id, kind) or None, limit=1_000_000)
    return _events(items)[-limit:] if limit > 0 else []
