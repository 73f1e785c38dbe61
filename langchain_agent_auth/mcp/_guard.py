"""MCP tools as the current user, with the vault's ``connect_account`` pause.

:class:`MCPGuard` runs a tool loaded from a remote MCP server (``langchain-mcp-adapters``)
on behalf of the call's trusted user, so :class:`~langchain_agent_auth.mcp.MCPAuth` presents
that user's token. When the server needs the user's sign-in (no token yet, or a step-up to
more scopes), the graph pauses with the same ``connect_account`` payload the vault uses,
carrying the authorization URL. The app sends the user there; its callback route hands the
URL the browser came back with to :meth:`MCPAuth.complete`; ``Command(resume={})`` runs the
tool again (``{"action": "cancel"}`` gives up, and the model is told so).

The guard is written once, as a :class:`~langchain_agent_auth.core.guards.ToolGuard` flow
(the core runtime drives it for ``invoke`` and ``ainvoke``), refuses under the shared
``on_refusal`` policy, and composes with the approval and fga guards like any other. This is
the MCP integration's entry forms: :class:`MCPGuard`, :func:`with_mcp_auth`,
:class:`MCPAuthMiddleware` and, for hand-built graphs, ``guarded_tool_node(tools, MCPGuard(auth))``.

Example:
    >>> from langchain_agent_auth.mcp import MCPAuth
    >>> guard = MCPGuard(MCPAuth("https://mcp.example.com/mcp"))
    >>> guard
    MCPGuard(server='https://mcp.example.com/mcp')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.tools import BaseTool

from langchain_agent_auth.core import guards as g
from langchain_agent_auth.core.effects import Flow
from langchain_agent_auth.core.errors import (
    ConfigurationError,
    IdentityError,
    MCPAuthorizationRequired,
    ResumeValueError,
)
from langchain_agent_auth.core.identity import _graph_config, acting_as
from langchain_agent_auth.core.pause import pause, validate_resume
from langchain_agent_auth.mcp._client import MCPAuth
from langchain_agent_auth.vault import ConnectAccountPayload, ConnectAccountResume

__all__ = ["MCPAuthMiddleware", "MCPGuard", "authorization_required", "with_mcp_auth"]

_NO_USER = "This tool acts for the signed-in user, and no user is known for this call."


def authorization_required(exc: BaseException, depth: int = 0) -> MCPAuthorizationRequired | None:
    """The :class:`MCPAuthorizationRequired` behind ``exc``, if any: MCP clients run requests in
    task groups and tool wrappers, which nest what the auth flow raised.

    Example:
        >>> need = MCPAuthorizationRequired("sign in", connection="https://m/mcp", authorize_url="https://as/a")
        >>> authorization_required(ExceptionGroup("tasks", [need])) is need
        True
    """
    if isinstance(exc, MCPAuthorizationRequired):
        return exc
    if depth > 8:
        return None
    inner: list[BaseException] = list(getattr(exc, "exceptions", ()) or ())
    inner += [e for e in (exc.__cause__, exc.__context__) if e is not None]
    for item in inner:
        found = authorization_required(item, depth + 1)
        if found is not None:
            return found
    return None


def _bubbles(exc: BaseException) -> bool:
    from langgraph.errors import GraphBubbleUp

    return isinstance(exc, GraphBubbleUp)


class MCPGuard(g.ToolGuard):
    """Runs MCP tools as the call's user; a needed sign-in becomes a ``connect_account`` pause.

    Args:
        auth: the :class:`MCPAuth` of the server whose tools this guards.
        tools: the tool names it applies to from a middleware (``None``: all).
        max_pauses: sign-in pauses per call before the call is refused (a server that keeps
            asking cannot loop the agent).
        on_refusal: ``"message"`` (a short error ToolMessage for the model) or ``"raise"`` (the
            typed error propagates), as in every pillar.
    """

    def __init__(self, auth: MCPAuth, *, tools: Iterable[str] | None = None, max_pauses: int = 3,
                 on_refusal: g.OnRefusal = "message") -> None:
        if on_refusal not in ("message", "raise"):
            raise ConfigurationError("on_refusal must be 'message' or 'raise'")
        self.auth = auth
        self.tools = frozenset(tools) if tools is not None else None
        self.max_pauses = max_pauses
        self.on_refusal = on_refusal

    def __repr__(self) -> str:
        return f"MCPGuard(server={self.auth.server.url!r})"

    def _payload(self, call: g.GuardedCall, need: MCPAuthorizationRequired) -> ConnectAccountPayload:
        return ConnectAccountPayload(
            connection=self.auth.server.url, scopes=list(need.missing_scopes), missing_scopes=list(need.missing_scopes),
            status=need.status if need.status in ("not_connected", "needs_reauthorization", "missing_scopes")
            else "not_connected",
            authorize_url=need.authorize_url, message=need.for_model(), tool_call_id=call.tool_call_id)

    def _after(self, call: g.GuardedCall, need: MCPAuthorizationRequired, attempt: int) -> g.Refusal | None:
        """What to do about a needed sign-in: ``None`` to try again, or the refusal."""
        if _graph_config() is None:
            raise need  # outside a graph there is nothing to pause: the caller gets the typed error
        if attempt >= self.max_pauses:
            return self.refuse(call, "The MCP server kept asking the user to sign in, so this was not done.", need)
        answer = pause(self._payload(call, need), ConnectAccountResume)
        if not isinstance(answer, ConnectAccountResume):
            try:
                answer = validate_resume(answer, ConnectAccountResume)
            except ResumeValueError:
                return None  # the value is never trusted anyway: the call checks the token again
        if answer.action == "cancel":
            return self.refuse(
                call, f"The user did not authorize access to {self.auth.server.url}, so this was not done.", need)
        return None

    def flow(self, call: g.GuardedCall) -> Flow[Any]:
        """Run the tool as ``call.user``; a sign-in the server asks for pauses the graph and the
        tool runs again once the user is back (at most ``max_pauses`` times)."""
        if call.user is None:
            return self.refuse(call, _NO_USER, IdentityError("no trusted user for an MCP tool call"))
        with acting_as(call.user):
            for attempt in range(self.max_pauses + 1):
                try:
                    return (yield g.Proceed(call))
                except Exception as exc:
                    need = None if _bubbles(exc) else authorization_required(exc)
                    if need is None:
                        raise
                refusal = self._after(call, need, attempt)
                if refusal is not None:
                    return refusal
        return None  # pragma: no cover - the loop always returns


class MCPAuthMiddleware(g.ToolGuardMiddleware):
    """``create_agent`` middleware: the MCP server's tools run as the user (see :class:`MCPGuard`).

    Example::

        agent = create_agent(model, await mcp_client.get_tools(),
                             middleware=[IdentityMiddleware(), MCPAuthMiddleware(auth)])
    """

    def __init__(self, auth: MCPAuth, *, tools: Iterable[str] | None = None, max_pauses: int = 3,
                 on_refusal: g.OnRefusal = "message") -> None:
        super().__init__([MCPGuard(auth, tools=tools, max_pauses=max_pauses, on_refusal=on_refusal)])


def with_mcp_auth(tools: Sequence[BaseTool], auth: MCPAuth, *, max_pauses: int = 3,
                  on_refusal: g.OnRefusal = "message") -> list[BaseTool]:
    """Wrap loaded MCP tools so each call runs as the user (see :class:`MCPGuard`).

    Example:
        >>> with_mcp_auth([], MCPAuth("https://mcp.example.com/mcp"))
        []
    """
    guard = MCPGuard(auth, max_pauses=max_pauses, on_refusal=on_refusal)
    return [g.guard_tool(tool, guard) for tool in tools]

