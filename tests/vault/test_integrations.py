"""Isolation between users, composition with other guards, and the peers' shortfalls.

peers.md shortfalls covered here, each by name:
* Token cache key omits the user -> test_two_users_same_thread_*, test_two_users_different_threads
* Wrapped tools are async-only -> test_sync_and_async_invoke_of_wrapped_tool
* Blocking calls stall the event loop -> test_async_refresh_never_blocks_the_event_loop
* InjectedToolCallId clash when stacking wrappers -> test_stacking_with_injected_tool_call_id
* Tools with a JSON-schema args_schema fail -> test_json_schema_tool
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import httpx
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import InjectedToolCallId, StructuredTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

from langchain_agent_auth.core.errors import CredentialUnavailableError
from langchain_agent_auth.core.guards import GuardedCall, ToolGuard, guard_tool
from langchain_agent_auth.identity import acting_as
from langchain_agent_auth.vault import VaultMiddleware, get_access_token, vault_auth, with_vault
from tests.vault.conftest import ALICE, ALICE_ELSEWHERE, BOB, connect
from tests.vault.graphs import agent, ask, calendar_tools, hand_built_graph, interrupts, last_tool_message


def cfg(thread: str) -> dict:
    return {"configurable": {"thread_id": thread}}


def owner(result: dict) -> str:
    return json.loads(last_tool_message(result).content)["owner"]


def test_two_users_same_thread_never_share_tokens(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    connect(vault, upstream, ALICE)
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, cfg("shared"), context={"user": ALICE})
    assert owner(result) == "alice"
    # Bob on the very same thread, right after Alice's token was cached: he must be asked to connect.
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, cfg("shared"), context={"user": BOB})
    [payload] = interrupts(result)
    assert payload["status"] == "not_connected"
    connect(vault, upstream, BOB)
    result = graph.invoke(Command(resume={}), cfg("shared"), context={"user": BOB})
    assert owner(result) == "bob"
    result = graph.invoke({"messages": [ask("list_events", day="tue")]}, cfg("shared"), context={"user": ALICE})
    assert owner(result) == "alice"
    # Same subject at another issuer is another user.
    result = graph.invoke({"messages": [ask("list_events", day="tue")]}, cfg("shared"),
                          context={"user": ALICE_ELSEWHERE})
    assert interrupts(result)[0]["status"] == "not_connected"


def test_two_users_same_thread_concurrently(vault, upstream):
    """One AI message, parallel tool calls, two users interleaved across invocations."""
    connect(vault, upstream, ALICE)
    connect(vault, upstream, BOB)
    tools = calendar_tools(upstream.api_url)

    async def run() -> list[str]:
        graph = agent([tools["alist_events"]], [VaultMiddleware(vault, {"alist_events": "calendar"})],
                      InMemorySaver())

        async def one(user, i):
            res = await graph.ainvoke({"messages": [ask("alist_events", day=str(i))]}, cfg(f"t-{user.subject}-{i}"),
                                      context={"user": user})
            return f"{user.subject}:{owner(res)}"

        return await asyncio.gather(*(one(u, i) for i in range(10) for u in (ALICE, BOB)))

    for line in asyncio.run(run()):
        who, got = line.split(":")
        assert who == got


def test_two_users_different_threads(vault, upstream):
    connect(vault, upstream, ALICE)
    a = vault.get_token(ALICE, "calendar")
    with pytest.raises(CredentialUnavailableError):
        vault.get_token(BOB, "calendar")
    connect(vault, upstream, BOB)
    b = vault.get_token(BOB, "calendar")
    assert a.token != b.token
    for user, token in ((ALICE, a), (BOB, b)):
        r = httpx.get(f"{upstream.api_url}/events", headers={"Authorization": token.authorization})
        assert r.json()["owner"] == user.subject


async def test_sync_and_async_invoke_of_wrapped_tool(vault, upstream):
    connect(vault, upstream, ALICE)
    tools = calendar_tools(upstream.api_url)
    sync_tool = with_vault(tools["list_events"], vault, connection="calendar")
    async_tool = with_vault(tools["alist_events"], vault, connection="calendar")
    with acting_as(ALICE):
        assert json.loads(sync_tool.invoke({"day": "mon"}))["owner"] == "alice"
        assert json.loads(await sync_tool.ainvoke({"day": "mon"}))["owner"] == "alice"
        assert json.loads(await async_tool.ainvoke({"day": "mon"}))["owner"] == "alice"
        call = {"type": "tool_call", "name": "list_events", "args": {"day": "mon"}, "id": "c1"}
        msg = sync_tool.invoke(call)
        assert isinstance(msg, ToolMessage) and json.loads(msg.content)["owner"] == "alice"


async def test_async_refresh_never_blocks_the_event_loop(upstream, sqlite_store, keyring):
    from langchain_agent_auth.vault import TokenVault
    from tests.vault.conftest import calendar_connection

    class NoSync(httpx.BaseTransport):
        def handle_request(self, request):  # pragma: no cover - must not be reached
            raise AssertionError("sync HTTP used from async code")

    vault = TokenVault([calendar_connection(upstream)], store=sqlite_store, keyring=keyring,
                       http_client=httpx.Client(transport=NoSync()))
    from langchain_agent_auth.vault import VaultCallback
    from tests.support.demo_upstream import browse_upstream

    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: ALICE)
    link = await vault.astart_connect(ALICE, "calendar", ["calendar.read"])
    await asyncio.to_thread(browse_upstream, link.authorize_url, "alice")
    upstream.expire("alice")
    stale = (await vault.aget_token(ALICE, "calendar")).token
    upstream.refresh_delay = 0.3
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    fresh = await vault.aget_token(ALICE, "calendar", rejected=stale)
    done.set()
    await task
    assert fresh.token != stale
    assert ticks >= 5, "the event loop was blocked while the token was refreshed"


class ApprovalLike(ToolGuard):
    """Stands in for the approval pillar's guard: pause, then run on approve."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def _ask(self, call: GuardedCall) -> Any:
        self.seen.append(dict(call.args))
        answer = interrupt({"type": "tool_approval", "tool": call.name, "args": dict(call.args)})
        return None if answer == {"approve": True} else call.refuse("denied")

    def wrap(self, call, proceed):
        return self._ask(call) or proceed(call)

    async def awrap(self, call, proceed):
        return self._ask(call) or await proceed(call)


@pytest.mark.parametrize("order", ["vault_inside", "vault_outside"])
def test_stacking_with_injected_tool_call_id(vault, upstream, order):
    @tool
    def tagged_event(title: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Create an event tagged with the call id."""
        with httpx.Client(auth=vault_auth()) as http:
            r = http.post(f"{upstream.api_url}/events", json={"title": f"{title}#{tool_call_id}", "start": "09:00"})
            body = r.json()
            return json.dumps({"created": body["title"], "owner": body["owner"]})

    approval = ApprovalLike()
    if order == "vault_inside":
        wrapped = guard_tool(with_vault(tagged_event, vault, connection="calendar", scopes=["calendar.write"]),
                             approval)
    else:
        wrapped = with_vault(guard_tool(tagged_event, approval), vault, connection="calendar",
                             scopes=["calendar.write"])
    assert "tool_call_id" not in wrapped.tool_call_schema.model_json_schema()["properties"]
    graph = hand_built_graph(ToolNode([wrapped]), InMemorySaver())
    ctx = {"user": ALICE}
    result = graph.invoke({"messages": [ask("tagged_event", title="Demo")]}, cfg("s1"), context=ctx)
    first = interrupts(result)[0]["type"]
    assert first == ("tool_approval" if order == "vault_inside" else "connect_account")
    seen_types = [first]
    for _ in range(3):
        pending = interrupts(result)
        if not pending:
            break
        if pending[0]["type"] == "connect_account":
            connect(vault, upstream, ALICE, ["calendar.write"])
            result = graph.invoke(Command(resume={}), cfg("s1"), context=ctx)
        else:
            result = graph.invoke(Command(resume={"approve": True}), cfg("s1"), context=ctx)
        seen_types += [p["type"] for p in interrupts(result)]
    out = json.loads(last_tool_message(result).content)
    assert out["owner"] == "alice" and out["created"].startswith("Demo#call-")
    assert set(seen_types) == {"tool_approval", "connect_account"}


async def test_json_schema_tool(vault, upstream):
    """MCP tools carry a plain JSON schema as args_schema."""

    def run(**kwargs: Any) -> str:
        return json.dumps({"day": kwargs["day"], "token_len": len(get_access_token())})

    async def arun(**kwargs: Any) -> str:
        return run(**kwargs)

    mcp_tool = StructuredTool(
        name="mcp_list_events", description="List events (MCP tool).", func=run, coroutine=arun,
        args_schema={"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]},
    )
    wrapped = with_vault(mcp_tool, vault, connection="calendar")
    assert wrapped.args_schema == mcp_tool.args_schema
    await asyncio.to_thread(connect, vault, upstream, ALICE)
    graph = hand_built_graph(ToolNode([wrapped]), InMemorySaver())
    result = await graph.ainvoke({"messages": [ask("mcp_list_events", day="mon")]}, cfg("j1"),
                                 context={"user": ALICE})
    assert json.loads(last_tool_message(result).content)["day"] == "mon"
    result = await asyncio.to_thread(graph.invoke, {"messages": [ask("mcp_list_events", day="tue")]}, cfg("j2"),
                                     context={"user": ALICE})
    assert json.loads(last_tool_message(result).content)["token_len"] > 10


def test_token_is_not_a_tool_argument_and_not_in_the_result(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    wrapped = with_vault(tools["list_events"], vault, connection="calendar")
    props = wrapped.tool_call_schema.model_json_schema()["properties"]
    assert list(props) == ["day"]
    connect(vault, upstream, ALICE)
    with acting_as(ALICE):
        out = wrapped.invoke({"day": "mon"})
    assert all(t not in out for t in upstream.issued())


async def test_a_tool_that_returns_its_token_is_scrubbed(vault, upstream):
    @tool
    def leaky(day: str) -> str:
        """Returns the token (a bug): the guard removes it before the model sees it."""
        return f"token for {day}: {get_access_token()}"

    @tool
    async def aleaky(day: str) -> str:
        """Async variant."""
        return f"token: {get_access_token()}"

    connect(vault, upstream, ALICE)
    token = vault.get_token(ALICE, "calendar").token
    graph = agent([leaky, aleaky], [VaultMiddleware(vault, {"leaky": "calendar", "aleaky": "calendar"})],
                  InMemorySaver())
    result = graph.invoke({"messages": [ask("leaky", day="mon")]}, cfg("l1"), context={"user": ALICE})
    assert last_tool_message(result).content == "token for mon: [redacted]"
    result = await graph.ainvoke({"messages": [ask("aleaky", day="mon")]}, cfg("l2"), context={"user": ALICE})
    assert token not in last_tool_message(result).content
    with acting_as(ALICE):
        assert with_vault(leaky, vault, connection="calendar").invoke({"day": "x"}) == "token for x: [redacted]"


def test_with_the_identity_middleware(vault, upstream):
    """The identity pillar resolves the user into state; the vault uses that user."""
    from langchain_agent_auth.identity import IdentityMiddleware

    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]],
                  [IdentityMiddleware(), VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, cfg("i1"), context={"user": BOB})
    [payload] = interrupts(result)
    assert payload["type"] == "connect_account"
    connect(vault, upstream, BOB)
    result = graph.invoke(Command(resume={}), cfg("i1"), context={"user": BOB})
    assert owner(result) == "bob"
