"""Graphs the audit tests run: an agent with identity, approval and fga guards."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.approval import ApprovalMiddleware, InAppApprover
from langchain_agent_auth.identity import IdentityMiddleware
from tests.approval.helpers import calls, scripted

SENT: list[dict[str, Any]] = []


@tool
def send_email(to: str, body: str) -> str:
    """Send an email for the user."""
    SENT.append({"to": to, "body": body})
    return f"sent to {to}"


def approval_agent(approver: Any = None, *, args: dict[str, Any] | None = None, extra: list[Any] = ()) -> Any:
    args = args or {"to": "bob@example.com", "body": "hello"}
    return create_agent(
        scripted(calls(("send_email", args, "c1")), AIMessage("done")),
        [send_email],
        middleware=[IdentityMiddleware(), *extra,
                    ApprovalMiddleware({"send_email": approver or InAppApprover()})],
        checkpointer=InMemorySaver(), store=InMemoryStore(),
    )
