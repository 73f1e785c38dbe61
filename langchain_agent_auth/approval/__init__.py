"""The approval pillar: pause LangGraph runs for a person's approval, and resume them.

Who is asked:

* :class:`CIBAApprover`: an OpenID CIBA request pushes the action to the user's device
  (binding message and RAR ``authorization_details`` built from the tool call, sanitized
  and bounded); any provider found by discovery, poll or ping mode, an Auth0 profile.
* :class:`InAppApprover`: the graph pauses with a ``tool_approval`` payload and the
  application answers approve / edit / reject.

How tools are guarded: :func:`with_approval` (any ``BaseTool``), :class:`ApprovalMiddleware`
(``create_agent``, per tool name), :func:`approval_guards` + ``guarded_tool_node`` (hand-built
graphs; :func:`route_tool_calls` gives each parallel call its own task). ``when=`` decides
which calls need approval; ``mode="interrupt"`` (default, a durable pause) or ``"block"``
(CIBA: wait inline, progress on the custom stream); ``on_refusal="message"`` (a short
ToolMessage, the agent continues) or ``"raise"``, as in every pillar (``on_denied=`` is its
deprecated alias).

Binding: an approval is bound to the user, the tool, :func:`args_digest` of the arguments
and an expiry; one request per tool call however often the node re-runs (the record lives
in a LangGraph ``BaseStore`` under ``("agent_auth", "approvals")``, keyed by thread,
checkpoint namespace, tool_call_id and approver; credentials only sealed with a
``Keyring``). The approval's access token is reachable inside the tool with
:func:`get_approval_token`, nowhere else.

Resuming: ``Command(resume={interrupt_id: {"approval_id": ..., "decision": ...}})``
(:class:`ApprovalResponse`). A CIBA decision is only read from the store (``decision:
"check"`` wakes the call; if it is still pending the call polls once when due and pauses
again). :class:`ApprovalResumer` (in-process) and :class:`RemoteResumer` (LangGraph server),
the resumer all pillars share (:mod:`langchain_agent_auth.resume`, re-exported here), do
this for you: they list due records with a store filter, poll respecting ``interval`` /
``slow_down`` (or wake on pings, :meth:`ApprovalResumer.ping_receiver`), and resume exactly
the threads whose approval completed. Other pillars plug into the same resumer with a
:class:`PendingSource` (``due`` / ``check`` / ``settle``, sync and async forms).

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

from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
    from langchain_agent_auth.approval._approvers import Approver, CIBAApprover, InAppApprover
    from langchain_agent_auth.approval._digest import args_digest, canonical_json
    from langchain_agent_auth.approval._guard import get_approval_token
    from langchain_agent_auth.approval._integrations import (
        ApprovalGuard,
        ApprovalMiddleware,
        ApprovalPolicy,
        approval_guards,
        route_tool_calls,
        with_approval,
    )
    from langchain_agent_auth.approval._payloads import (
        ApprovalPendingPayload,
        ApprovalResponse,
        ToolApprovalPayload,
    )
    from langchain_agent_auth.approval._records import ApprovalRecord, ApprovalStore
    from langchain_agent_auth.approval._sources import ApprovalSource
    from langchain_agent_auth.approval._text import BindingMessage, display_hazard
    from langchain_agent_auth.resume._pending import PendingItem, PendingSource
    from langchain_agent_auth.resume._plan import ResumeReport
    from langchain_agent_auth.resume._remote import LangGraphServerStore, RemoteResumer
    from langchain_agent_auth.resume._resumer import ApprovalResumer

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)



