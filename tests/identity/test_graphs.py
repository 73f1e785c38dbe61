"""Identity in real graphs: create_agent + IdentityMiddleware, and a hand-built StateGraph."""

from __future__ import annotations

import sqlite3

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolRuntime
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.core.errors import IdentityError, ThreadOwnershipError
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import (
    AuthContext,
    IdentityGuard,
    IdentityMiddleware,
    TokenResolver,
    UserIdentity,
    UserState,
    get_current_user,
    identity_node,
    share_thread,
)
from langchain_agent_auth.oauth import JWTVerifier
from tests.support.fake_idp import FakeProvider
from tests.support.fake_model import call, script

ALICE = UserIdentity(subject="alice", name="Alice", email="alice@example.com")
BOB = UserIdentity(subject="bob", name="Bob")


@tool
def my_calendar(day: str) -> str:
    """Read the signed-in user's calendar."""
    return f"{get_current_user().subject}'s calendar on {day}"


@tool
def account_balance(user_id: str) -> str:
    """A badly designed tool that lets the model name a user."""
    return f"balance of {user_id}: 100"


def tool_messages(state) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


async def run(agent, mode, inputs, config, **kw):
    if mode == "sync":
        return agent.invoke(inputs, config, **kw)
    return await agent.ainvoke(inputs, config, **kw)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_user_reaches_state_and_tools(mode):
    agent = create_agent(script(call("my_calendar", {"day": "monday"}), "done"), [my_calendar],
                         middleware=[IdentityMiddleware()], checkpointer=InMemorySaver())
    out = await run(agent, mode, {"messages": [HumanMessage("what's on monday?")]},
                    {"configurable": {"thread_id": "t1"}}, context={"user": ALICE})
    assert out["user"]["subject"] == "alice" and out["user"]["name"] == "Alice"
    assert tool_messages(out)[0].content == "alice's calendar on monday"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_model_claiming_another_user_is_refused(mode):
    agent = create_agent(script(call("account_balance", {"user_id": "bob"}), call("account_balance", {}, "c2"), "ok"),
                         [account_balance], middleware=[IdentityMiddleware()])
    out = await run(agent, mode, {"messages": [HumanMessage("show bob's balance")]}, None, context={"user": ALICE})
    refused, allowed = tool_messages(out)
    assert refused.status == "error" and "cannot act for another user" in refused.content
    assert "bob" not in allowed.content and allowed.content == "balance of alice: 100"


def test_override_mode_replaces_the_claimed_user():
    agent = create_agent(script(call("account_balance", {"user_id": "bob"}), "ok"), [account_balance],
                         middleware=[IdentityMiddleware(on_conflict="override")])
    out = agent.invoke({"messages": [HumanMessage("x")]}, context={"user": ALICE})
    assert tool_messages(out)[0].content == "balance of alice: 100"


def test_tool_schema_shown_to_the_model_has_no_identity_fields():
    from langchain_agent_auth.core.guards import guard_tool

    wrapped = guard_tool(my_calendar, IdentityGuard())
    assert set(wrapped.tool_call_schema.model_json_schema()["properties"]) == {"day"}


def test_no_identity_fails_closed():
    agent = create_agent(script("hi"), [my_calendar], middleware=[IdentityMiddleware()])
    with pytest.raises(IdentityError):
        agent.invoke({"messages": [HumanMessage("x")]})
    optional = create_agent(script(call("my_calendar", {"day": "x"}), "ok"), [my_calendar],
                            middleware=[IdentityMiddleware(required=False)])
    with pytest.raises(IdentityError):  # the tool itself needs a user: get_current_user() fails closed
        optional.invoke({"messages": [HumanMessage("x")]})


def test_input_cannot_set_the_user():
    agent = create_agent(script(call("my_calendar", {"day": "x"}), "ok"), [my_calendar],
                         middleware=[IdentityMiddleware()])
    out = agent.invoke({"messages": [HumanMessage("x")], "user": {"subject": "mallory"}}, context={"user": ALICE})
    assert out["user"]["subject"] == "alice" and tool_messages(out)[0].content.startswith("alice")


def test_a_second_user_on_a_thread_is_refused_unless_shared(tmp_path):
    with SqliteSaver.from_conn_string(str(tmp_path / "ckpt.sqlite")) as saver:
        store = InMemoryStore()
        agent = create_agent(script(call("my_calendar", {"day": "mon"}), "a", call("my_calendar", {"day": "tue"}, "c2"),
                                    "b"), [my_calendar], middleware=[IdentityMiddleware()], checkpointer=saver,
                             store=store)
        cfg = {"configurable": {"thread_id": "shared"}}
        agent.invoke({"messages": [HumanMessage("1")]}, cfg, context={"user": ALICE})
        with pytest.raises(ThreadOwnershipError):
            agent.invoke({"messages": [HumanMessage("2")]}, cfg, context={"user": BOB})
        share_thread(store, "shared", BOB, owner=ALICE)
        out = agent.invoke({"messages": [HumanMessage("2")]}, cfg, context={"user": BOB})
        assert out["user"]["subject"] == "bob"
        assert [m.content for m in tool_messages(out)] == ["alice's calendar on mon", "bob's calendar on tue"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_verified_token_identity_and_no_token_in_checkpoints(tmp_path, mode):
    idp = FakeProvider()
    verifier = JWTVerifier(idp.issuer, audience="api", http_client=idp.client(), async_http_client=idp.async_client())
    token = idp.sign(name="Alice Token")
    db = tmp_path / "ckpt.sqlite"
    saver_cls = SqliteSaver if mode == "sync" else AsyncSqliteSaver
    ctx = saver_cls.from_conn_string(str(db))
    saver = ctx.__enter__() if mode == "sync" else await ctx.__aenter__()
    try:
        agent = create_agent(script(call("my_calendar", {"day": "fri"}), "done"), [my_calendar],
                             middleware=[IdentityMiddleware([TokenResolver(verifier)])], checkpointer=saver)
        out = await run(agent, mode, {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "t"}},
                        context={"access_token": token})
    finally:
        ctx.__exit__(None, None, None) if mode == "sync" else await ctx.__aexit__(None, None, None)
    assert out["user"]["name"] == "Alice Token" and out["user"]["source"] == "token"
    raw = db.read_bytes()
    assert token.encode() not in raw and token.split(".")[2].encode() not in raw
    rows = sqlite3.connect(db).execute("select count(*) from checkpoints").fetchone()[0]
    assert rows > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_hand_built_state_graph(mode):
    class State(MessagesState, UserState):
        pass

    def model(state):
        return {"messages": [call("my_calendar", {"day": "sun"})]}

    graph = (StateGraph(State).add_node("identity", identity_node()).add_node("model", model)
             .add_node("tools", guarded_tool_node([my_calendar], IdentityGuard()))
             .add_edge(START, "identity").add_edge("identity", "model").add_edge("model", "tools")
             .compile(checkpointer=InMemorySaver()))
    out = await run(graph, mode, {"messages": [HumanMessage("x")]}, {"configurable": {"thread_id": "g"}},
                    context={"user": BOB})
    assert out["user"]["subject"] == "bob" and tool_messages(out)[0].content == "bob's calendar on sun"
    with pytest.raises(IdentityError):
        await run(graph, mode, {"messages": [HumanMessage("x")]}, {"configurable": {"thread_id": "g2"}})


def test_describe_user_adds_a_system_note():
    seen = []

    class Spy(type(script())):
        def _generate(self, messages, *a, **k):
            seen.extend(messages)
            return super()._generate(messages, *a, **k)

    model = Spy(messages=iter([call("my_calendar", {"day": "x"}), "done"]))
    agent = create_agent(model, [my_calendar], middleware=[IdentityMiddleware(describe_user=True)],
                         system_prompt="Be brief.")
    agent.invoke({"messages": [HumanMessage("x")]}, context={"user": ALICE})
    assert "Alice <alice@example.com>" in seen[0].content and "Be brief." in seen[0].content


def test_tool_runtime_accessor_reads_the_middleware_state():
    @tool
    def whoami(runtime: ToolRuntime) -> str:
        """Who am I acting for?"""
        return get_current_user(runtime).subject

    agent = create_agent(script(call("whoami", {}), "ok"), [whoami], middleware=[IdentityMiddleware()],
                         context_schema=AuthContext)
    out = agent.invoke({"messages": [HumanMessage("x")]}, context={"user": BOB})
    assert tool_messages(out)[0].content == "bob"
