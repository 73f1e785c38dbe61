"""The approval pillar's integrations: :class:`ApprovalGuard` (a guard written once as a flow
of the core runtime, see :mod:`._guard`), :func:`with_approval` (any ``BaseTool``),
:class:`ApprovalMiddleware` (``create_agent``), :func:`approval_guards` (the node form, for
``guarded_tool_node``) and :func:`route_tool_calls` (one task per parallel call).

Refusals follow the policy every pillar shares: ``on_refusal="message"`` (a short error
ToolMessage) or ``"raise"``; ``on_denied=`` is its deprecated alias.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from langchain_core.tools import BaseTool

from langchain_agent_auth.approval._approvers import Approver, CIBAApprover
from langchain_agent_auth.approval._guard import ApprovalSteps, Mode, When
from langchain_agent_auth.core import guards as g
from langchain_agent_auth.core.effects import Flow
from langchain_agent_auth.core.errors import ApprovalRecordError, ConfigurationError

__all__ = [
    "ApprovalGuard",
    "ApprovalMiddleware",
    "ApprovalPolicy",
    "approval_guards",
    "route_tool_calls",
    "with_approval",
]

#: Default cap on approvals waiting for one user's answer (across threads and tools).
MAX_PENDING = 20
#: Default bound on a call's arguments (characters of canonical JSON) before any approval.
MAX_ARGS_SIZE = 64_000


class ApprovalGuard(ApprovalSteps, g.ToolGuard):
    """A :class:`~langchain_agent_auth.guards.ToolGuard` that asks before a tool runs.

    Args:
        approver: a :class:`CIBAApprover` or :class:`InAppApprover`.
        when: ``when(args) -> bool``; calls for which it is false run without approval. An
            exception in it counts as "needs approval" (fail closed).
        mode: ``"interrupt"`` (default: a durable pause; needs a checkpointer) or
            ``"block"`` (CIBA only: wait inline, streaming progress to the custom stream).
        on_refusal: what a "no" (denied, expired, failed, refused) becomes, the same in every
            pillar: ``"message"`` (default: the model gets a short error ToolMessage and the
            agent continues) or ``"raise"`` (the Approval*Error propagates).
        on_denied: deprecated alias of ``on_refusal`` (a ``DeprecationWarning``).
        tools: tool names this guard applies to in a middleware or a tool node (``None``:
            all).
        max_pending: at most this many approvals may wait for one user's answer (counted
            in the store, across threads and tools); past it a new request is refused
            with :class:`~langchain_agent_auth.errors.ApprovalLimitError` and nothing is
            sent. ``None``: no cap.
        max_args_size: arguments longer than this (characters of canonical JSON) are
            refused (:class:`~langchain_agent_auth.errors.UnsafeArgumentsError`) before
            they are digested in full or shown to anyone.

    Arguments an approver could misread (bidi controls, zero-width or other invisible
    characters, a word mixing look-alike scripts; see
    :func:`~langchain_agent_auth.approval.display_hazard`) are refused the same way,
    before any approval is requested.

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def transfer(amount: int, to: str) -> str:
        ...     '''Send money.'''
        ...     return f"sent {amount} to {to}"
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> from langchain_agent_auth.guards import guard_tool
        >>> guard = ApprovalGuard(InAppApprover(), when=lambda a: a["amount"] > 100)
        >>> guard_tool(transfer, guard).invoke({"amount": 5, "to": "Bob"})
        'sent 5 to Bob'
    """

    def __init__(self, approver: Approver, *, when: When | None = None, mode: Mode = "interrupt",
                 on_refusal: g.OnRefusal = "message", tools: Iterable[str] | None = None,
                 max_pending: int | None = MAX_PENDING, max_args_size: int = MAX_ARGS_SIZE,
                 on_denied: g.OnRefusal | None = None) -> None:
        if on_denied is not None:
            on_refusal = _deprecated_on_denied(on_denied)
        _check_settings(approver, when, mode, on_refusal, max_pending, max_args_size)
        super().__init__(approver, when=when, mode=mode, max_pending=max_pending, max_args_size=max_args_size)
        self.on_refusal = on_refusal
        self.tools = frozenset(tools) if tools is not None else None

    @property
    def on_denied(self) -> g.OnRefusal:
        """Deprecated name of :attr:`on_refusal`."""
        return self.on_refusal

    def __repr__(self) -> str:
        return f"ApprovalGuard({self.approver!r}, mode={self.mode!r}, on_refusal={self.on_refusal!r})"

    def flow(self, call: g.GuardedCall) -> Flow[Any]:
        """The approval, written once (``wrap`` and ``awrap`` are the runtime's drivers over
        it); a record damaged mid-call is refused (fail closed), never a crash."""
        if not self.needs_approval(call.args):  # the fast path: no store, no provider
            return (yield g.Proceed(call))
        try:
            return (yield from self._flow(call))
        except ApprovalRecordError as err:
            return self._refuse(call, err)


def _deprecated_on_denied(on_denied: Any) -> Any:
    warnings.warn("on_denied= is deprecated: use on_refusal= (the same values, the same in every pillar)",
                  DeprecationWarning, stacklevel=3)
    return on_denied


def _check_settings(approver: Any, when: Any, mode: Any, on_refusal: Any, max_pending: Any,
                    max_args_size: Any) -> None:
    if not isinstance(approver, Approver):
        raise ConfigurationError("approver must be a CIBAApprover or an InAppApprover")
    if mode not in ("interrupt", "block"):
        raise ConfigurationError("mode must be 'interrupt' or 'block'")
    if mode == "block" and not isinstance(approver, CIBAApprover):
        raise ConfigurationError("mode='block' needs a CIBAApprover (an in-app approval can only pause)")
    if on_refusal not in ("message", "raise"):
        raise ConfigurationError("on_refusal (on_denied) must be 'message' or 'raise'")
    if when is not None and not callable(when):
        raise ConfigurationError("when must be a callable taking the tool arguments")
    if max_pending is not None and (not isinstance(max_pending, int) or isinstance(max_pending, bool)
                                    or max_pending < 1):
        raise ConfigurationError("max_pending must be a positive integer or None")
    if not isinstance(max_args_size, int) or isinstance(max_args_size, bool) or max_args_size < 64:
        raise ConfigurationError("max_args_size must be an integer >= 64")


def with_approval(tool: BaseTool, approver: Approver, *, when: When | None = None, mode: Mode = "interrupt",
                  on_refusal: g.OnRefusal = "message", max_pending: int | None = MAX_PENDING,
                  max_args_size: int = MAX_ARGS_SIZE, on_denied: g.OnRefusal | None = None) -> g.GuardedTool:
    """Wrap any ``BaseTool`` so calls need the user's approval first.

    The wrapped tool keeps its name, description, args schema (pydantic or JSON-schema
    dict, e.g. MCP tools), ``return_direct`` and ``response_format``, supports ``invoke``
    and ``ainvoke``, and composes with the vault and fga wrappers in any order. The keywords
    are :class:`ApprovalGuard`'s (``on_denied=`` is the deprecated alias of ``on_refusal=``).

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def delete_repo(name: str) -> str:
        ...     '''Delete a repository.'''
        ...     return "deleted"
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> guarded = with_approval(delete_repo, InAppApprover())
        >>> guarded.name, guarded.args
        ('delete_repo', {'name': {'title': 'Name', 'type': 'string'}})
    """
    if on_denied is not None:
        on_refusal = _deprecated_on_denied(on_denied)
    return g.guard_tool(tool, ApprovalGuard(approver, when=when, mode=mode, on_refusal=on_refusal,
                                            max_pending=max_pending, max_args_size=max_args_size))


class ApprovalPolicy(NamedTuple):
    """How one tool is approved in :class:`ApprovalMiddleware` / :func:`approval_guards`
    (the fields are :class:`ApprovalGuard`'s keywords; ``on_denied`` is the deprecated alias
    of ``on_refusal``).

    Example:
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> ApprovalPolicy(InAppApprover(), on_refusal="raise").on_refusal
        'raise'
    """

    approver: Approver
    when: When | None = None
    mode: Mode = "interrupt"
    on_denied: g.OnRefusal | None = None
    max_pending: int | None = MAX_PENDING
    max_args_size: int = MAX_ARGS_SIZE
    on_refusal: g.OnRefusal = "message"


def _policy(value: Any) -> ApprovalPolicy:
    if isinstance(value, ApprovalPolicy):
        return value
    if isinstance(value, Approver):
        return ApprovalPolicy(value)
    if isinstance(value, Mapping):
        unknown = set(value) - set(ApprovalPolicy._fields)
        if unknown or "approver" not in value:
            raise ConfigurationError("an approval policy needs 'approver' and may set when/mode/on_refusal/"
                                     f"max_pending/max_args_size (unknown: {sorted(unknown)})")
        return ApprovalPolicy(**value)
    raise ConfigurationError("each tool's approval config must be an Approver, an ApprovalPolicy or a dict")


def approval_guards(config: Mapping[str, Approver | ApprovalPolicy | Mapping[str, Any]]) -> list[ApprovalGuard]:
    """One :class:`ApprovalGuard` per tool name, for ``guarded_tool_node(tools, *guards)``.

    Example:
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> [guard.tools for guard in approval_guards({"transfer": InAppApprover()})]
        [frozenset({'transfer'})]
    """
    guards = []
    for name, value in config.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError("approval config keys must be tool names")
        guards.append(ApprovalGuard(**_policy(value)._asdict(), tools=[name]))
    return guards


class ApprovalMiddleware(g.ToolGuardMiddleware):
    """Agent middleware for ``langchain.agents.create_agent``: approvals per tool name.

    Example::

        agent = create_agent(model, tools, middleware=[ApprovalMiddleware({
            "transfer_money": {"approver": ciba, "when": lambda a: a["amount"] > 100},
            "delete_repo": InAppApprover(allowed_decisions=("approve", "reject")),
        })], checkpointer=saver, store=store)
    """

    def __init__(self, config: Mapping[str, Approver | ApprovalPolicy | Mapping[str, Any]]) -> None:
        super().__init__(approval_guards(config))


def route_tool_calls(state: Any, *, tools: str = "tools", end: str = "__end__",
                     messages_key: str = "messages") -> Any:
    """Conditional edge for hand-built graphs: one ``tools`` task per pending tool call.

    ``tools_condition`` runs every call of a message in one ToolNode task, where LangGraph
    surfaces a single interrupt per task and hands resume values out by call order: fine
    for approval guards (they keep their state in the store and check every resume value)
    but not for other tools that call ``interrupt()`` themselves. Routing each call to its
    own task, as ``create_agent`` does, gives every pause its own interrupt id.

    Example::

        builder.add_conditional_edges("model", route_tool_calls, ["tools", END])
    """
    from langgraph.types import Send

    messages = state.get(messages_key) if isinstance(state, Mapping) else getattr(state, messages_key, None)
    if not messages:
        return end
    last = messages[-1]
    answered = {getattr(m, "tool_call_id", None) for m in messages if getattr(m, "type", None) == "tool"}
    pending = [c for c in getattr(last, "tool_calls", None) or () if c.get("id") not in answered]
    if not pending:
        return end
    return [Send(tools, [{**c, "type": "tool_call"}]) for c in pending]
