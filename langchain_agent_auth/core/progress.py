"""Live progress while an agent waits: typed LangGraph custom stream events.

A guard that waits for the user (a CIBA approval polled inline in ``block`` mode, a paused
approval, a paused ``connect_account`` flow, a device authorization) writes
:class:`WaitProgress` events to the run's custom stream
(``langgraph.config.get_stream_writer``, reached through ``GuardedCall.write``). Clients
that stream with ``stream_mode="custom"`` (and ``langgraph dev`` UIs) receive them as plain
dicts and can show what is awaited and until when.

An event says *what* is awaited (``kind``, ``tool``, ``connection``), *until when*
(``expires_at``, ``seconds_left``) and *when the next check happens* (``next_check_at``).
It never carries a token, a secret, a CIBA ``auth_req_id`` or a device code.

Example:
    >>> event = WaitProgress(kind="approval", state="waiting", tool="pay", expires_at=1000.0,
    ...                      seconds_left=60, message="Waiting for your approval of pay")
    >>> chunk = event.to_chunk()
    >>> chunk["type"], chunk["kind"], chunk["seconds_left"]
    ('agent_auth_progress', 'approval', 60)
    >>> is_progress(chunk)
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["PROGRESS_TYPE", "WaitProgress", "emit_progress", "is_progress"]

log = logging.getLogger("langchain_agent_auth.progress")

#: The ``type`` of every progress chunk on the custom stream.
PROGRESS_TYPE = "agent_auth_progress"

WaitKind = Literal["approval", "connect_account", "device_authorization"]
WaitState = Literal["paused", "waiting", "approved", "denied", "expired", "failed", "done"]


class WaitProgress(BaseModel):
    """One progress event of a wait (dumped to a plain dict on the custom stream)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["agent_auth_progress"] = "agent_auth_progress"
    version: int = 1
    #: What is awaited: an approval, an account connection, a device authorization.
    kind: WaitKind
    #: ``paused``: the run stops and resumes later (interrupt); ``waiting``: the run waits
    #: inline (block mode); the others end the wait.
    state: WaitState
    #: The tool the wait is for (``None`` for a sign-in).
    tool: str | None = None
    tool_call_id: str | None = None
    #: The account being connected (``connect_account``, a device authorization).
    connection: str | None = None
    #: The text shown on the user's device (CIBA), if any.
    binding_message: str | None = None
    #: Where and with which code the user approves a device authorization (shown to the user).
    verification_uri: str | None = None
    user_code: str | None = None
    #: When the wait ends at the latest (epoch seconds), and the seconds left then.
    expires_at: float | None = None
    seconds_left: int | None = None
    #: When the provider is asked next (epoch seconds), for waits that poll.
    next_check_at: float | None = None
    #: A short sentence for people.
    message: str = ""

    def to_chunk(self) -> dict[str, Any]:
        """The event as the plain dict written to the custom stream."""
        return self.model_dump(mode="json")


def is_progress(chunk: Any) -> bool:
    """Whether a custom stream chunk is one of this toolkit's progress events.

    Example:
        >>> is_progress({"type": "agent_auth_progress"}), is_progress("hello")
        (True, False)
    """
    return isinstance(chunk, dict) and chunk.get("type") == PROGRESS_TYPE


def emit_progress(writer: Callable[[Any], None] | None, event: WaitProgress) -> None:
    """Write ``event`` with ``writer`` (a stream writer or ``GuardedCall.write``), if any.

    Progress is best effort: a writer that fails is logged and the wait goes on.

    Example:
        >>> seen = []
        >>> emit_progress(seen.append, WaitProgress(kind="connect_account", state="paused"))
        >>> seen[0]["kind"]
        'connect_account'
    """
    if writer is None:
        return
    try:
        writer(event.to_chunk())
    except Exception as exc:  # a broken UI must not break the wait
        log.warning("progress event not delivered: %s", type(exc).__name__)
