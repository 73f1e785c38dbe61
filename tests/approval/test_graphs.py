"""Hand-built graphs: StateGraph + ToolNode (parallel calls in one task), subgraphs, and
SqliteSaver + SqliteStore across a restart (new saver/store/graph over the same files)."""

from __future__ import annotations

import sqlite3

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore
from langgraph.types import Command

from langchain_agent_auth.approval import (
    ApprovalResumer,
    CIBAApprover,
    InAppApprover,
    approval_guards,
    route_tool_calls,
)
from langchain_agent_auth.core.guards import guarded_tool_node
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import (
    ALICE,
    SIDE_EFFECTS,
    State,
    answer,
    calls,
    delete_repo,
    interrupts,
    tool_messages,
    transfer_money,
)

CFG = {"configurable": {"thread_id": "t1"}}
CTX = {"user": ALICE}
TOOLS = [transfer_money, delete_repo]


def build(approver, first: AIMessage, *, checkpointer=None, store=None):
    """model -> tools (one ToolNode task for all calls of a message) -> model -> END."""

    def model(state: State) -> dict:  # a scripted model: call the tools once, then answer
        done = any(m.type == "tool" for m in state["messages"])
        return {"messages": [AIMessage("all done") if done else first]}

    guards = approval_guards({"transfer_money": approver, "delete_repo": approver})
    return (
        StateGraph(State)
        .add_node("model", model)
        .add_node("tools", guarded_tool_node(TOOLS, *guards))
        .add_edge(START, "model")
        .add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
        .add_edge("tools", "model")
        .compile(checkpointer=checkpointer or InMemorySaver(), store=store or InMemoryStore())
    )


TWO = calls(("transfer_money", {"amount": 250, "to": "Bob"}, "c1"), ("delete_repo", {"name": "prod"}, "c2"))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def idp(clock):
    return FakeCiba(clock)


def test_parallel_ciba_calls_in_one_toolnode_task(idp, clock, keyring):
    """A ToolNode runs both calls in one task and LangGraph surfaces one interrupt per task
    (the second call may not even start before the first pauses). Whatever the order, each
    call gets one request, its own decision, and runs (or not) exactly once."""
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    g = build(ciba, TWO)
    r = g.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    assert interrupts(r)
    resumer = ApprovalResumer(g, approvers=[ciba], clock=clock)
    for _ in range(6):
        for req in idp.reqs.values():
            if req["status"] == "pending":
                req["status"] = "approved" if "transfer_money" in req["form"]["binding_message"] else "denied"
        clock.advance(1)
        resumer.run_once()
        if not g.get_state(CFG).interrupts:
            break
    state = g.get_state(CFG)
    assert not state.interrupts and state.values["messages"][-1].content == "all done"
    msgs = {m.tool_call_id: m for m in tool_messages(state.values)}
    assert msgs["c1"].content == "transferred 250 to Bob"
    assert msgs["c2"].status == "error" and "denied" in msgs["c2"].content
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]  # once, however often it re-ran
    assert idp.hits["/bc-authorize"] == 2 and idp.slow_downs() == 0


def test_parallel_in_app_calls_in_one_toolnode_task(keyring):
    approver = InAppApprover(keyring=keyring)
    g = build(approver, TWO)
    r = g.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    seen = []
    for _ in range(4):
        pending = interrupts(r)
        if not pending:
            break
        seen.extend(p.value["tool"] for p in pending)
        r = g.invoke(Command(resume=answer(r, transfer_money={"decision": "approve"},
                                           delete_repo={"decision": "reject", "message": "keep it"})),
                     CFG, context=CTX)
    assert sorted(set(seen)) == ["delete_repo", "transfer_money"]
    msgs = {m.tool_call_id: m for m in tool_messages(r)}
    assert msgs["c1"].content == "transferred 250 to Bob" and "keep it" in msgs["c2"].content
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]
    assert r["messages"][-1].content == "all done"


def test_guarded_tool_inside_a_subgraph(idp, clock, keyring):
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    inner = build(ciba, calls(("transfer_money", {"amount": 7, "to": "Sub"}, "c1")), checkpointer=True)

    def after(state: State) -> dict:
        return {"messages": [AIMessage("outer done")]}

    outer = (StateGraph(State).add_node("agent", inner).add_node("after", after)
             .add_edge(START, "agent").add_edge("agent", "after").add_edge("after", END)
             .compile(checkpointer=InMemorySaver(), store=InMemoryStore()))
    r = outer.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    (p,) = interrupts(r)
    assert p.value["type"] == "approval_pending"  # surfaced from inside the subgraph
    store = ciba.approval_store(outer.store)
    (rec,) = store.due(clock() + 10)
    assert rec.checkpoint_ns and rec.thread_id == "t1"
    idp.approve()
    clock.advance(1)
    assert ApprovalResumer(outer, approvers=[ciba], clock=clock).run_once().resumed_items == 1
    state = outer.get_state(CFG)
    assert state.values["messages"][-1].content == "outer done"
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 7, "to": "Sub"})]


def _sqlite(path):
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    return conn


def test_sqlite_saver_and_store_survive_a_restart(tmp_path, idp, clock, keyring):
    """Everything the pause needs is in the two SQLite files: a new process (new saver,
    store, graph and resumer objects) resumes the thread, and the request is not re-sent."""
    one = calls(("transfer_money", {"amount": 250, "to": "Bob"}, "c1"))

    def boot():
        saver = SqliteSaver(_sqlite(tmp_path / "checkpoints.sqlite"))
        store = SqliteStore(_sqlite(tmp_path / "store.sqlite"))
        store.setup()
        approver = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
        return build(approver, one, checkpointer=saver, store=store), approver

    g, _ = boot()
    r = g.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    assert interrupts(r) and idp.hits["/bc-authorize"] == 1
    del g  # "process" ends

    g2, approver2 = boot()
    resumer = ApprovalResumer(g2, approvers=[approver2], clock=clock)
    clock.advance(1)
    assert resumer.run_once().due == 1  # found in the store, no thread scan
    idp.approve()
    clock.advance(1)
    del resumer  # the resumer restarts too
    g3, approver3 = boot()
    assert ApprovalResumer(g3, approvers=[approver3], clock=clock).run_once().resumed_items == 1
    state = g3.get_state(CFG)
    assert state.values["messages"][-1].content == "all done"
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]
    assert idp.hits["/bc-authorize"] == 1


async def test_async_resumer_with_a_sync_sqlite_checkpointer(tmp_path, idp, clock, keyring):
    saver = SqliteSaver(_sqlite(tmp_path / "c.sqlite"))
    store = SqliteStore(_sqlite(tmp_path / "s.sqlite"))
    store.setup()
    approver = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    g = build(approver, calls(("transfer_money", {"amount": 3, "to": "X"}, "c1")), checkpointer=saver, store=store)
    g.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    idp.approve()
    clock.advance(1)
    rep = await ApprovalResumer(g, approvers=[approver], clock=clock).arun_once()
    assert rep.resumed_items == 1 and not rep.errors
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 3, "to": "X"})]


def test_route_tool_calls_gives_each_parallel_call_its_own_pause(keyring):
    approver = InAppApprover(keyring=keyring)
    guards = approval_guards({"transfer_money": approver, "delete_repo": approver})

    def model(state: State) -> dict:
        done = any(m.type == "tool" for m in state["messages"])
        return {"messages": [AIMessage("all done") if done else TWO]}

    g = (StateGraph(State).add_node("model", model).add_node("tools", guarded_tool_node(TOOLS, *guards))
         .add_edge(START, "model").add_conditional_edges("model", route_tool_calls, ["tools", END])
         .add_edge("tools", "model").compile(checkpointer=InMemorySaver(), store=InMemoryStore()))
    r = g.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    assert sorted(p.value["tool"] for p in interrupts(r)) == ["delete_repo", "transfer_money"]  # both at once
    r = g.invoke(Command(resume=answer(r, transfer_money={"decision": "approve"}, delete_repo={"decision": "reject"})),
                 CFG, context=CTX)
    assert r["messages"][-1].content == "all done"
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]
    assert route_tool_calls({"messages": [AIMessage("no tools")]}) == END
    assert route_tool_calls({"messages": []}) == END
