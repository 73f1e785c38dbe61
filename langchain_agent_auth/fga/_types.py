"""The authorizer interface shared by the embedded engine and the OpenFGA backend.

:class:`Authorizer` is a small Protocol (sync and async): ``check``, ``batch_check``,
``list_objects``, ``list_users``, ``write`` and ``delete``. The tool guard and the
retriever only use this interface, so they work the same over the embedded engine and
over an OpenFGA server (or Okta FGA).

Every check produces a :class:`AuthorizationDecision` (user, relation, object, allowed, latency,
backend, error) handed to the ``on_decision`` sinks callers pass; decisions carry no
context values and no secrets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from langchain_agent_auth.core.audit._emit import audit_enabled, emit_audit
from langchain_agent_auth.core.errors import AuthorizationError, TupleError, redact
from langchain_agent_auth.fga._tuple import TupleKey

__all__ = [
    "AuthorizationDecision",
    "Authorizer",
    "CheckRequest",
    "DecisionSink",
    "UserFilter",
    "coerce_check",
    "coerce_user_filter",
    "decisions_wanted",
    "emit",
]

logger = logging.getLogger("langchain_agent_auth.fga")


@dataclass(frozen=True, slots=True)
class AuthorizationDecision:
    """The record of one authorization check, for audit.

    ``error`` names what went wrong when the check could not be answered (the decision is
    then a denial: fail closed); ``latency_ms`` is the time the check took.

    Example:
        >>> d = AuthorizationDecision("user:anne", "viewer", "document:1", True, latency_ms=0.1)
        >>> d.to_dict()["allowed"], d.error
        (True, None)
    """

    user: str
    relation: str
    object: str
    allowed: bool
    latency_ms: float = 0.0
    backend: str = "embedded"
    error: str | None = None
    error_code: int | None = None
    correlation_id: str | None = None
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-serializable)."""
        return asdict(self)


DecisionSink = Callable[[AuthorizationDecision], Any]


def emit(sinks: Iterable[DecisionSink | None], decision: AuthorizationDecision) -> None:
    """Hand a decision to every sink; a failing sink is logged, never propagated."""
    for sink in sinks:
        if sink is None:
            continue
        try:
            sink(decision)
        except Exception:  # a broken audit sink must not break authorization
            logger.exception("an fga decision sink failed")


def decisions_wanted(sinks: Iterable[DecisionSink | None]) -> bool:
    """Whether a decision record has a reader: a sink, or the audit trail.

    Callers that only need the answers (the retriever over the embedded engine) skip building
    records nobody reads; anything listening still gets every record.

    Example:
        >>> decisions_wanted((None, None)), decisions_wanted((None, print))
        (False, True)
    """
    return audit_enabled() or any(sink is not None for sink in sinks)


def make_decision(backend: str, user: str, relation: str, obj: str, allowed: bool, latency_ms: float,
                  exc: BaseException | None, correlation_id: str | None, stamp: float) -> AuthorizationDecision:
    """The record of one check: fields bounded, the error (if any) redacted."""
    return AuthorizationDecision(
        _bounded(user, 512),
        _bounded(relation, 64),
        _bounded(obj, 512),
        allowed,
        latency_ms,
        backend,
        error_text(exc) if exc is not None else None,
        getattr(exc, "code", None) if exc is not None else None,
        correlation_id,
        stamp,
    )


def deliver(decision: AuthorizationDecision, sinks: Sequence[DecisionSink], audit: bool) -> AuthorizationDecision:
    """Hand ``decision`` to the live ``sinks`` and, when ``audit``, to the audit trail."""
    if sinks:
        emit(sinks, decision)
    if audit:
        audit_decision(decision)
    return decision


def record_decision(backend: str, user: str, relation: str, obj: str, allowed: bool, started: float,
                    exc: BaseException | None, correlation_id: str | None,
                    sinks: Iterable[DecisionSink | None]) -> AuthorizationDecision:
    """Build the audit record of one check (timed from ``started``) and hand it to ``sinks``."""
    decision = make_decision(backend, user, relation, obj, allowed, (time.perf_counter() - started) * 1000,
                             exc, correlation_id, time.time())
    return deliver(decision, [s for s in sinks if s is not None], audit_enabled())


def audit_decision(decision: AuthorizationDecision) -> None:
    """Report ``decision`` to the audit trail (an ``fga_decision`` event)."""
    emit_audit("fga_decision", subject=decision.user, relation=decision.relation, object=decision.object,
               outcome="allowed" if decision.allowed else ("error" if decision.error else "denied"),
               channel=decision.backend, detail=decision.error, latency_ms=round(decision.latency_ms, 3))


def batch_decisions(
    backend: str,
    items: Iterable[tuple[str, str, str, bool, BaseException | None, str | None]],
    started: float,
    sinks: Iterable[DecisionSink | None],
) -> list[AuthorizationDecision]:
    """The audit records of a batch answered together: ``(user, relation, object, allowed,
    error, correlation_id)`` each, all timed from ``started`` to now, handed to ``sinks``."""
    latency = (time.perf_counter() - started) * 1000
    stamp = time.time()
    live = [s for s in sinks if s is not None]
    audit = audit_enabled()
    return [
        deliver(make_decision(backend, user, relation, obj, allowed, latency, exc, correlation_id, stamp), live, audit)
        for user, relation, obj, allowed, exc, correlation_id in items
    ]


def _bounded(value: Any, limit: int) -> str:
    if type(value) is str and len(value) <= limit:
        return value
    return str(value)[:limit]


def error_text(exc: BaseException) -> str:
    """``ClassName: message`` of an error, redacted and bounded."""
    message = str(exc) if isinstance(exc, AuthorizationError) else redact(str(exc))
    return f"{type(exc).__name__}: {message}"[:500]


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """One check in a batch. ``context``/``contextual_tuples`` override the batch's.

    Example:
        >>> CheckRequest("user:anne", "viewer", "document:1").object
        'document:1'
    """

    user: str
    relation: str
    object: str
    context: Mapping[str, Any] | None = None
    contextual_tuples: Sequence[TupleKey] | None = None
    correlation_id: str | None = None


def coerce_check(value: Any) -> CheckRequest:
    """Accept a :class:`CheckRequest`, a ``(user, relation, object)`` sequence or a mapping."""
    kind = type(value)
    if kind is CheckRequest:
        return value
    if kind is tuple and len(value) == 3:  # the common case, before the slower ABC checks below
        return CheckRequest(str(value[0]), str(value[1]), str(value[2]))
    if isinstance(value, CheckRequest):
        return value
    if isinstance(value, Mapping):
        try:
            return CheckRequest(
                str(value["user"]),
                str(value["relation"]),
                str(value["object"]),
                value.get("context"),
                value.get("contextual_tuples"),
                value.get("correlation_id"),
            )
        except KeyError as exc:
            raise TupleError(f"a check needs user, relation and object (missing {exc})", code=2000) from None
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return CheckRequest(str(value[0]), str(value[1]), str(value[2]))
    raise TupleError(f"not a check request: {value!r}"[:200], code=2000)


@dataclass(frozen=True, slots=True)
class UserFilter:
    """A list_users filter: a user type, optionally with a relation (``group#member``).

    Example:
        >>> str(UserFilter("group", "member")), str(UserFilter("user"))
        ('group#member', 'user')
    """

    type: str
    relation: str = ""

    def __str__(self) -> str:
        return f"{self.type}#{self.relation}" if self.relation else self.type


def coerce_user_filter(value: Any) -> UserFilter:
    """``"user"``, ``"group#member"``, ``{"type": ..., "relation": ...}`` or a :class:`UserFilter`.

    Example:
        >>> coerce_user_filter("group#member")
        UserFilter(type='group', relation='member')
    """
    if isinstance(value, UserFilter):
        return value
    if isinstance(value, str):
        t, _, r = value.partition("#")
        if not t or ":" in value or " " in value:
            raise TupleError(f"invalid user filter {value!r}: expected 'type' or 'type#relation'", code=2000)
        return UserFilter(t, r)
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        rel = value.get("relation") or ""
        return UserFilter(value["type"], str(rel))
    if hasattr(value, "type"):
        return UserFilter(str(value.type), str(getattr(value, "relation", "") or ""))
    raise TupleError(f"invalid user filter {value!r}"[:200], code=2000)


# The optional request parameters every query of the interface takes.
Context = Mapping[str, Any] | None
Tuples = Sequence[Any] | None


@runtime_checkable
class Authorizer(Protocol):
    """The fga interface every backend implements (embedded engine, OpenFGA server).

    ``check`` raises a typed :class:`~langchain_agent_auth.errors.AuthorizationError` when a
    check cannot be answered; ``batch_check`` never raises per item: a failed item is a
    denial whose :class:`AuthorizationDecision` carries the error.

    Example:
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\n")
        >>> isinstance(fga, Authorizer), fga.backend
        (True, 'embedded')
    """

    backend: str

    def check(self, user: str, relation: str, object: str, *, context: Context = None,
              contextual_tuples: Tuples = None) -> bool: ...

    async def acheck(self, user: str, relation: str, object: str, *, context: Context = None,
                     contextual_tuples: Tuples = None) -> bool: ...

    def batch_check(self, checks: Sequence[Any], *, context: Context = None,
                    contextual_tuples: Tuples = None) -> list[AuthorizationDecision]: ...

    async def abatch_check(self, checks: Sequence[Any], *, context: Context = None,
                           contextual_tuples: Tuples = None) -> list[AuthorizationDecision]: ...

    def list_objects(self, user: str, relation: str, type: str, *, context: Context = None,
                     contextual_tuples: Tuples = None) -> list[str]: ...

    async def alist_objects(self, user: str, relation: str, type: str, *, context: Context = None,
                            contextual_tuples: Tuples = None) -> list[str]: ...

    def list_users(self, object: str, relation: str, user_filter: Any, *, context: Context = None,
                   contextual_tuples: Tuples = None) -> list[str]: ...

    async def alist_users(self, object: str, relation: str, user_filter: Any, *, context: Context = None,
                          contextual_tuples: Tuples = None) -> list[str]: ...

    def write(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> None: ...

    async def awrite(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> None: ...

    def delete(self, tuples: Iterable[Any]) -> None: ...

    async def adelete(self, tuples: Iterable[Any]) -> None: ...


AsyncSink = Callable[[AuthorizationDecision], Awaitable[Any]]
