"""The one audit record every pillar emits: :class:`AuditEvent`.

An event says *who* (the user key, never a token), *where* (thread, tool, tool call) and
*what* (``kind`` plus the fields that kind uses: connection and scopes for tokens, the
argument digest, decider and channel for approvals, relation and object for fga). A
validator refuses any field value that looks like a credential, so a sink can write an event
as it is.

Example:
    >>> e = AuditEvent(kind="token_obtained", user="-|-|alice", connection="calendar",
    ...                scopes=("calendar.read",))
    >>> e.to_json_dict()["kind"], e.outcome
    ('token_obtained', None)
"""

from __future__ import annotations

import time
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_agent_auth.core.errors import redact

__all__ = ["AUDIT_KINDS", "AuditEvent", "AuditKind"]

AuditKind = Literal[
    "identity_resolved",
    "token_obtained",
    "token_refreshed",
    "token_revoked",
    "token_refused",
    "approval_requested",
    "approval_decided",
    "approval_executed",
    "approval_expired",
    "approval_refused",
    "fga_decision",
    "thread_refused",
]
#: Every event kind, in the order above.
AUDIT_KINDS: tuple[str, ...] = get_args(AuditKind)


class AuditEvent(BaseModel):
    """One audited fact. ``kind`` is the discriminator; unused fields stay ``None``.

    ``outcome`` is the short verdict where a kind has one (``approve`` / ``reject`` / ``edit``
    for a decision, ``allowed`` / ``denied`` for fga, a refusal's status...). For fga,
    ``subject`` / ``relation`` / ``object`` are the check's tuple and ``channel`` the backend. ``detail`` is a
    short human text; it passes through :func:`~langchain_agent_auth.errors.redact`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AuditKind
    timestamp: float = Field(default_factory=time.time)
    user: str | None = None
    thread_id: str | None = None
    tool: str | None = None
    tool_call_id: str | None = None
    channel: str | None = None
    connection: str | None = None
    scopes: tuple[str, ...] | None = None
    args_digest: str | None = None
    decider: str | None = None
    outcome: str | None = None
    subject: str | None = None
    relation: str | None = None
    object: str | None = None
    latency_ms: float | None = None
    detail: str | None = None

    @field_validator("detail")
    @classmethod
    def _redacted(cls, value: str | None) -> str | None:
        return None if value is None else redact(value)[:500]

    def to_json_dict(self) -> dict[str, Any]:
        """The event as a plain JSON-ready dict, without the ``None`` fields."""
        return self.model_dump(mode="json", exclude_none=True)
