"""The tool guard: wrapper, middleware and node forms, real agent graphs, hostile input, fail closed."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_agent_auth.core.errors import AccessDenied, AuthorizationError, ConfigurationError
from langchain_agent_auth.core.guards import GuardedCall, ToolGuard, guard_tool, guarded_tool_node
from langchain_agent_auth.fga import (
    AuthorizationDecision,
    EmbeddedAuthorizer,
    FGAGuard,
    FGAMiddleware,
    fga_user,
    with_fga,
)
from langchain_agent_auth.identity import UserIdentity, acting_as
from tests.fga._fga_support import DOCS_MODEL, FakeChatModel

ANNE = UserIdentity(subject="anne")
CALLS: list[str] = []


@tool
def read_doc(doc_id: str) -> str:
    """Read a document by id."""
    CALLS.append(doc_id)
    return f"contents of {doc_id}"


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def _tool_call(doc_id: Any, call_id: str = "call-1") -> dict:
    return {"type": "tool_call", "name": "read_doc", "args": {"doc_id": doc_id}, "id": call_id}


def test_wrapper_allows_and_refuses(authorizer: Any) -> None:
    sink: list[AuthorizationDecision] = []
    guarded = with_fga(
        read_doc, authorizer, relation="viewer", object="document:{doc_id}", on_decision=sink.append
    )
    with acting_as(ANNE):
        assert guarded.invoke({"doc_id": "spec"}) == "contents of spec"
        assert (
            guarded.invoke({"doc_id": "budget"})
            == "Access denied: you don't have viewer access to document:budget."
        )
        message = guarded.invoke(_tool_call("budget"))
    assert isinstance(message, ToolMessage) and message.status == "error" and message.tool_call_id == "call-1"
    assert message.response_metadata["fga_decision"]["allowed"] is False
    assert message.response_metadata["fga_decision"]["object"] == "document:budget"
    assert CALLS == ["spec"]
    assert [(d.user, d.object, d.allowed) for d in sink] == [
        ("user:anne", "document:spec", True),
        ("user:anne", "document:budget", False),
        ("user:anne", "document:budget", False),
    ]
    assert guarded.name == "read_doc" and guarded.args == read_doc.args


async def test_wrapper_async(authorizer: Any) -> None:
    guarded = with_fga(read_doc, authorizer, relation="viewer", object="document:{doc_id}")
    with acting_as(ANNE):
        assert await guarded.ainvoke({"doc_id": "handbook"}) == "contents of handbook"
        refused = await guarded.ainvoke(_tool_call("budget"))
    assert isinstance(refused, ToolMessage) and refused.status == "error"
    assert CALLS == ["handbook"]


@pytest.mark.parametrize(
    "hostile", ["spec#owner", "a:b", "x y", "*", "spec\n", "x" * 500, {"id": "spec"}, ["spec"], ""]
)
def test_hostile_arguments_cannot_address_other_objects(hostile: Any) -> None:
    fga = EmbeddedAuthorizer(DOCS_MODEL)
    fga.write([("user:anne", "viewer", "document:spec")])
    checked: list[AuthorizationDecision] = []
    fga.on_decision = checked.append
    guarded = with_fga(read_doc, fga, relation="viewer", object="document:{doc_id}")
    with acting_as(ANNE):
        result = guarded.invoke(_tool_call(hostile))
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert result.content.startswith("I can't do this:")
    assert CALLS == [] and checked == []  # refused before any check


def test_quote_mode_escapes_instead_of_refusing() -> None:
    fga = EmbeddedAuthorizer(DOCS_MODEL)
    fga.write([("user:anne", "viewer", "document:a%23b")])
    seen: list[AuthorizationDecision] = []
    guarded = with_fga(
        read_doc, fga, relation="viewer", object="document:{doc_id}", escape="quote", on_decision=seen.append
    )
    with acting_as(ANNE):
        assert guarded.invoke({"doc_id": "a#b"}) == "contents of a#b"
        assert guarded.invoke({"doc_id": "spec#owner"}).startswith("Access denied")
    assert [d.object for d in seen] == ["document:a%23b", "document:spec%23owner"]


def test_no_user_and_failures_fail_closed(authorizer: Any) -> None:
    guarded = with_fga(read_doc, authorizer, relation="viewer", object="document:{doc_id}")
    assert "don't know who you are" in guarded.invoke({"doc_id": "spec"})

    class Broken:
        backend = "broken"

        def check(self, *args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("database on fire")

        async def acheck(self, *args: Any, **kwargs: Any) -> bool:
            raise AuthorizationError("unavailable", hint="Try again later.")

    sink: list[AuthorizationDecision] = []
    broken = with_fga(
        read_doc, Broken(), relation="viewer", object="document:{doc_id}", on_decision=sink.append
    )
    with acting_as(ANNE):
        text = broken.invoke({"doc_id": "spec"})
        assert text.startswith("I couldn't verify your permission") and "fire" not in text
    assert CALLS == [] and sink[-1].error.startswith("RuntimeError") and not sink[-1].allowed


async def test_async_failure_is_a_refusal_with_the_hint() -> None:
    class Broken:
        backend = "broken"

        def check(self, *args: Any, **kwargs: Any) -> bool:
            raise AssertionError

        async def acheck(self, *args: Any, **kwargs: Any) -> bool:
            raise AuthorizationError("unavailable", hint="Try again later.")

    guarded = with_fga(read_doc, Broken(), relation="viewer", object="document:{doc_id}")
    with acting_as(ANNE):
        text = await guarded.ainvoke({"doc_id": "spec"})
    assert text.endswith("Try again later.") and CALLS == []


def test_raise_mode_and_relation_from_arguments(authorizer: Any) -> None:
    @tool
    def open_doc(doc_id: str, mode: str) -> str:
        """Open a document for reading or editing."""
        return f"{mode} {doc_id}"

    guard = FGAGuard(
        authorizer,
        relation=lambda args: {"read": "viewer", "edit": "editor", "admin": "owner"}.get(
            args["mode"], "viewer"
        ),
        allowed_relations={"viewer", "editor"},
        object=lambda args: f"document:{args['doc_id']}",
        object_types={"document"},
        on_refusal="raise",
    )
    guarded = guard_tool(open_doc, guard)
    with acting_as(ANNE):
        assert guarded.invoke({"doc_id": "spec", "mode": "read"}) == "read spec"
        with pytest.raises(AccessDenied) as info:
            guarded.invoke({"doc_id": "spec", "mode": "edit"})
        assert info.value.decision.relation == "editor" and not info.value.decision.allowed
        with pytest.raises(AccessDenied, match="not allowed for this tool"):
            guarded.invoke({"doc_id": "spec", "mode": "admin"})
    with pytest.raises(ConfigurationError):
        FGAGuard(authorizer, relation="viewer", object="{kind}:{doc_id}")
    with pytest.raises(ConfigurationError):
        FGAGuard(authorizer, relation="bad relation", object="document:{doc_id}")


def test_on_deny_is_a_deprecated_alias_of_on_refusal(authorizer: Any) -> None:
    with pytest.warns(DeprecationWarning, match="on_refusal"):
        guard = FGAGuard(authorizer, relation="viewer", object="document:{doc_id}", on_deny="raise")
    assert guard.on_refusal == "raise"
    with pytest.warns(DeprecationWarning):
        assert FGAGuard(authorizer, relation="viewer", object="d:{x}", on_deny="refuse").on_refusal == "message"
    with acting_as(ANNE), pytest.raises(AccessDenied):
        guard_tool(read_doc, guard).invoke({"doc_id": "budget"})
    with pytest.raises(ConfigurationError):
        FGAGuard(authorizer, relation="viewer", object="document:{doc_id}", on_refusal="shout")  # type: ignore[arg-type]


async def test_an_authorizer_without_on_decision_still_reports_decisions() -> None:
    class Plain:  # an older custom Authorizer: no on_decision parameter
        backend = "plain"

        def check(self, user: str, relation: str, object: str) -> bool:
            return object == "document:spec"

        async def acheck(self, user: str, relation: str, object: str) -> bool:
            return object == "document:spec"

    sink: list[AuthorizationDecision] = []
    guarded = with_fga(read_doc, Plain(), relation="viewer", object="document:{doc_id}", on_decision=sink.append)
    with acting_as(ANNE):
        assert guarded.invoke({"doc_id": "spec"}) == "contents of spec"
        assert (await guarded.ainvoke({"doc_id": "budget"})).startswith("Access denied")
    assert [(d.object, d.allowed, d.backend) for d in sink] == [("document:spec", True, "plain"),
                                                               ("document:budget", False, "plain")]


def test_mcp_style_tool_with_json_schema(authorizer: Any) -> None:
    mcp_tool = StructuredTool(
        name="read_doc",
        description="Read a document (an MCP tool).",
        args_schema={"type": "object", "properties": {"doc_id": {"type": "string"}}, "required": ["doc_id"]},
        func=lambda doc_id: CALLS.append(doc_id) or f"mcp {doc_id}",
    )
    guarded = with_fga(mcp_tool, authorizer, relation="viewer", object="document:{doc_id}")
    assert guarded.tool_call_schema == mcp_tool.tool_call_schema
    with acting_as(ANNE):
        assert guarded.invoke(_tool_call("spec")).content == "mcp spec"
        assert guarded.invoke(_tool_call("budget")).status == "error"
    assert CALLS == ["spec"]


def test_composes_with_other_guards_and_refusal_stops_the_chain(authorizer: Any) -> None:
    order: list[str] = []

    class Approval(ToolGuard):  # stands in for the approval pillar's guard
        def wrap(self, call: GuardedCall, proceed: Any) -> Any:
            order.append(f"approval {call.args['doc_id']}")
            return proceed(call)

        async def awrap(self, call: GuardedCall, proceed: Any) -> Any:
            order.append(f"approval {call.args['doc_id']}")
            return await proceed(call)

    fga_first = guard_tool(
        with_fga(read_doc, authorizer, relation="viewer", object="document:{doc_id}"), Approval()
    )
    with acting_as(ANNE):
        assert fga_first.invoke({"doc_id": "spec"}) == "contents of spec"
        assert fga_first.invoke({"doc_id": "budget"}).startswith("Access denied")
    assert order == ["approval spec", "approval budget"]  # approval outermost, FGA inside
    order.clear()
    approval_first = with_fga(
        guard_tool(read_doc, Approval()), authorizer, relation="viewer", object="document:{doc_id}"
    )
    with acting_as(ANNE):
        assert approval_first.invoke({"doc_id": "budget"}).startswith("Access denied")
    assert order == []  # FGA outermost: the refusal never reaches the approval


def _script() -> FakeChatModel:
    return FakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {"name": "read_doc", "args": {"doc_id": "spec"}, "id": "c1"},
                        {"name": "read_doc", "args": {"doc_id": "budget"}, "id": "c2"},
                        {"name": "read_doc", "args": {"doc_id": "spec#owner"}, "id": "c3"},
                    ],
                ),
                AIMessage(content="done"),
            ]
        )
    )


def _tool_messages(state: dict) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}


@pytest.mark.parametrize("form", ["wrapper", "middleware"])
def test_in_a_real_agent_graph(authorizer: Any, form: str) -> None:
    if form == "wrapper":
        agent = create_agent(
            _script(),
            [with_fga(read_doc, authorizer, relation="viewer", object="document:{doc_id}")],
            checkpointer=InMemorySaver(),
        )
    else:
        agent = create_agent(
            _script(),
            [read_doc],
            checkpointer=InMemorySaver(),
            middleware=[
                FGAMiddleware(authorizer, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}})
            ],
        )
    state = agent.invoke(
        {"messages": [HumanMessage("read the docs")]},
        {"configurable": {"thread_id": f"t-{form}"}},
        context={"user": ANNE},
    )
    msgs = _tool_messages(state)
    assert msgs["c1"].content == "contents of spec" and msgs["c1"].status == "success"
    assert msgs["c2"].status == "error" and "Access denied" in msgs["c2"].content
    assert msgs["c3"].status == "error" and msgs["c3"].content.startswith("I can't do this")
    assert CALLS == ["spec"] and state["messages"][-1].content == "done"


async def test_in_a_real_agent_graph_async(authorizer: Any) -> None:
    agent = create_agent(
        _script(),
        [read_doc],
        checkpointer=InMemorySaver(),
        middleware=[
            FGAMiddleware(authorizer, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}})
        ],
    )
    state = await agent.ainvoke(
        {"messages": [HumanMessage("read")]}, {"configurable": {"thread_id": "async"}}, context={"user": ANNE}
    )
    msgs = _tool_messages(state)
    assert msgs["c1"].status == "success" and msgs["c2"].status == "error"
    assert CALLS == ["spec"]


def test_agent_without_a_user_refuses_every_guarded_call(authorizer: Any) -> None:
    agent = create_agent(
        _script(),
        [read_doc],
        checkpointer=InMemorySaver(),
        middleware=[
            FGAMiddleware(authorizer, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}})
        ],
    )
    state = agent.invoke({"messages": [HumanMessage("read")]}, {"configurable": {"thread_id": "anon"}})
    assert all(m.status == "error" for m in _tool_messages(state).values()) and CALLS == []


def test_middleware_unlisted_tools() -> None:
    fga = EmbeddedAuthorizer(DOCS_MODEL)

    @tool
    def other(x: str) -> str:
        """Another tool."""
        return x

    script = FakeChatModel(
        messages=iter(
            [
                AIMessage(content="", tool_calls=[{"name": "other", "args": {"x": "hi"}, "id": "o1"}]),
                AIMessage("ok"),
            ]
        )
    )
    deny = FGAMiddleware(
        fga, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}}, unlisted="deny"
    )
    agent = create_agent(script, [read_doc, other], middleware=[deny], checkpointer=InMemorySaver())
    state = agent.invoke(
        {"messages": [HumanMessage("go")]}, {"configurable": {"thread_id": "u"}}, context={"user": ANNE}
    )
    assert _tool_messages(state)["o1"].status == "error"


def test_node_form_in_a_hand_built_graph() -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    fga = EmbeddedAuthorizer(DOCS_MODEL)
    fga.write([("user:anne", "viewer", "document:spec")])
    node = guarded_tool_node([read_doc], FGAGuard(fga, relation="viewer", object="document:{doc_id}"))
    builder = StateGraph(MessagesState, context_schema=dict)
    builder.add_node("tools", node)
    builder.add_edge(START, "tools")
    graph = builder.compile(checkpointer=InMemorySaver())
    call = AIMessage(
        content="",
        tool_calls=[
            {"name": "read_doc", "args": {"doc_id": "spec"}, "id": "n1"},
            {"name": "read_doc", "args": {"doc_id": "budget"}, "id": "n2"},
        ],
    )
    state = graph.invoke(
        {"messages": [call]}, {"configurable": {"thread_id": "node"}}, context={"user": ANNE}
    )
    msgs = _tool_messages(state)
    assert msgs["n1"].status == "success" and msgs["n2"].status == "error"


def test_fga_user_escapes_unsafe_subjects() -> None:
    assert fga_user(UserIdentity(subject="google-oauth2|123")) == "user:google-oauth2|123"
    assert fga_user(UserIdentity(subject="a:b#c")) == "user:a%3Ab%23c"
    assert fga_user(UserIdentity(subject="50%")) == "user:50%25"


def test_mcp_style_tool_in_an_agent_graph(authorizer: Any) -> None:
    mcp_tool = StructuredTool(
        name="read_doc",
        description="Read a document (an MCP tool).",
        args_schema={"type": "object", "properties": {"doc_id": {"type": "string"}}, "required": ["doc_id"]},
        func=lambda doc_id: CALLS.append(doc_id) or f"mcp {doc_id}",
    )
    agent = create_agent(
        _script(),
        [with_fga(mcp_tool, authorizer, relation="viewer", object="document:{doc_id}")],
        checkpointer=InMemorySaver(),
    )
    state = agent.invoke(
        {"messages": [HumanMessage("read")]}, {"configurable": {"thread_id": "mcp"}}, context={"user": ANNE}
    )
    msgs = _tool_messages(state)
    assert msgs["c1"].content == "mcp spec" and msgs["c2"].status == "error" and msgs["c3"].status == "error"
    assert CALLS == ["spec"]


def test_middleware_on_refusal_applies_to_unlisted_tools(authorizer: Any) -> None:
    @tool
    def other(x: str) -> str:
        """A tool without a rule."""
        return x

    rules = {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}}
    refusing = FGAMiddleware(authorizer, rules, unlisted="deny").guards[-1]
    raising = FGAMiddleware(authorizer, rules, unlisted="deny", on_refusal="raise").guards[-1]
    assert guard_tool(other, refusing).invoke({"x": "1"}).startswith("This tool is not available")
    with pytest.raises(AuthorizationError, match="no authorization rule"):
        guard_tool(other, raising).invoke({"x": "1"})


def test_fga_tool_guard_is_the_former_name_of_fga_guard() -> None:
    import langchain_agent_auth
    from langchain_agent_auth import fga

    assert fga.FGAToolGuard is fga.FGAGuard
    assert langchain_agent_auth.FGAToolGuard is langchain_agent_auth.FGAGuard is fga.FGAGuard
