"""The approval pillar: pause LangGraph runs for a person's approval, and resume them.

A guarded tool asks before it runs:

* :class:`CIBAApprover`: an OpenID CIBA request pushes the action to the user's device
  (binding message and RAR ``authorization_details`` built from the tool call); the graph
  pauses with an ``approval_pending`` payload and a resumer continues it when the user
  answers, or (``mode="block"``) the call waits inline, streaming progress.
* :class:`InAppApprover`: the graph pauses with a ``tool_approval`` payload; the
  application resumes with approve / edit / reject.

Integrations: :func:`with_approval` (any ``BaseTool``), :class:`ApprovalMiddleware`
(``create_agent``), :func:`approval_guards` for ``guarded_tool_node`` (hand-built graphs, with
:func:`route_tool_calls` to give each parallel call its own task).
An approval is bound to the user, the tool, a canonical digest of the arguments
(:func:`args_digest`) and an expiry; one request per tool call however often the node
re-runs; pending state lives in a LangGraph ``BaseStore`` with credentials sealed.

Example:
    >>> from langchain_core.tools import tool
    >>> from langchain_agent_auth.approval import InAppApprover, with_approval
    >>> @tool
    ... def transfer(amount: int, to: str) -> str:
    ...     '''Send money.'''
    ...     return f"sent {amount} to {to}"
    >>> guarded = with_approval(transfer, InAppApprover(), when=lambda args: args["amount"] > 100)
    >>> guarded.invoke({"amount": 20, "to": "Bob"})  # below the threshold: no approval needed
    'sent 20 to Bob'
"""

from langchain_agent_auth.approval._approvers import Approver, CIBAApprover, InAppApprover
from langchain_agent_auth.approval._digest import args_digest, canonical_json
from langchain_agent_auth.approval._guard import (
    ApprovalGuard,
    ApprovalMiddleware,
    ApprovalPolicy,
    approval_guards,
    get_approval_token,
    route_tool_calls,
    with_approval,
)
from langchain_agent_auth.approval._payloads import ApprovalPendingPayload, ApprovalResponse, ToolApprovalPayload
from langchain_agent_auth.approval._records import ApprovalRecord, ApprovalStore
from langchain_agent_auth.approval._resumer import ApprovalResumer, LangGraphServerStore, RemoteResumer, ResumeReport
from langchain_agent_auth.approval._sources import ApprovalSource, PendingItem, PendingSource
from langchain_agent_auth.approval._text import BindingMessage

__all__ = [
    "ApprovalGuard",
    "ApprovalMiddleware",
    "ApprovalPendingPayload",
    "ApprovalPolicy",
    "ApprovalRecord",
    "ApprovalResponse",
    "ApprovalResumer",
    "ApprovalSource",
    "ApprovalStore",
    "Approver",
    "BindingMessage",
    "CIBAApprover",
    "InAppApprover",
    "LangGraphServerStore",
    "PendingItem",
    "PendingSource",
    "RemoteResumer",
    "ResumeReport",
    "ToolApprovalPayload",
    "approval_guards",
    "args_digest",
    "canonical_json",
    "get_approval_token",
    "route_tool_calls",
    "with_approval",
]
