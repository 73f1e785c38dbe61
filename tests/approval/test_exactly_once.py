"""Exactly once under concurrent delivery (invariant 8).

The same "approve" delivered by 8 threads, 8 asyncio tasks and 3 processes to a graph on
SqliteStore + SqliteSaver files: the tool runs once and every other delivery stops with
``ApprovalAlreadyHandledError``. A barrier in the store (``GateStore``) makes every delivery
read the pending record (both reads before the decision) before any acts: the race happens
every time, not by luck; with a read and a plain ``put`` the tool ran once per delivery.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.sqlite import SqliteStore
from langgraph.types import Command

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.errors import ApprovalAlreadyHandledError
from tests.approval.exactly_once_app import CALL, GateStore, build, runs, sqlite_conn
from tests.approval.helpers import ALICE

ROOT = pathlib.Path(__file__).resolve().parents[2]
CFG = {"configurable": {"thread_id": "t1"}}
CTX = {"user": ALICE}


def pause(tmp_path: pathlib.Path, keyring: Keyring) -> dict[str, Any]:
    """Run the graph to its approval pause (on plain SqliteStore/SqliteSaver files); the
    resume value that approves it."""
    store = SqliteStore(sqlite_conn(tmp_path / "store.db"))
    graph = build(store, SqliteSaver(sqlite_conn(tmp_path / "checkpoints.db")), keyring, tmp_path / "runs.txt")
    out = graph.invoke({"messages": [CALL]}, CFG, context=CTX)
    (interrupt,) = out["__interrupt__"]
    assert runs(tmp_path / "runs.txt") == 0
    return {"approval_id": interrupt.value["approval_id"], "decision": "approve"}


def outcome(fn: Any) -> str:
    try:
        out = fn()
    except ApprovalAlreadyHandledError:
        return "already_handled"
    tool = [m for m in out["messages"] if m.type == "tool"]
    return f"ran: {tool[-1].content}" if tool else "nothing"


def test_eight_threads_deliver_the_same_approve(tmp_path, keyring):
    answer = pause(tmp_path, keyring)
    store = GateStore(SqliteStore(sqlite_conn(tmp_path / "store.db")), 8, rounds=2)
    graph = build(store, SqliteSaver(sqlite_conn(tmp_path / "checkpoints.db")), keyring, tmp_path / "runs.txt")
    start = threading.Barrier(8)

    def deliver(_: int) -> str:
        start.wait(timeout=60)
        return outcome(lambda: graph.invoke(Command(resume=answer), CFG, context=CTX))

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(deliver, range(8)))

    assert runs(tmp_path / "runs.txt") == 1
    assert sorted(outcomes) == ["already_handled"] * 7 + ["ran: paid 250 to Bob"]
    # The thread shows the one real result.
    final = graph.get_state(CFG).values["messages"][-1]
    assert final.content == "paid 250 to Bob"


async def test_eight_asyncio_tasks_deliver_the_same_approve(tmp_path, keyring):
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    answer = pause(tmp_path, keyring)
    store = GateStore(SqliteStore(sqlite_conn(tmp_path / "store.db")), 8, mode="async", rounds=2)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.db")) as saver:
        graph = build(store, saver, keyring, tmp_path / "runs.txt")

        async def deliver() -> str:
            try:
                out = await graph.ainvoke(Command(resume=answer), CFG, context=CTX)
            except ApprovalAlreadyHandledError:
                return "already_handled"
            return "ran: " + [m for m in out["messages"] if m.type == "tool"][-1].content

        outcomes = await asyncio.gather(*(deliver() for _ in range(8)))

    assert runs(tmp_path / "runs.txt") == 1
    assert sorted(outcomes) == ["already_handled"] * 7 + ["ran: paid 250 to Bob"]


def test_three_processes_deliver_the_same_approve(tmp_path):
    keyring = Keyring.from_file(tmp_path / "keys.json", create=True)
    answer = pause(tmp_path, keyring)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.approval.exactly_once_app", str(tmp_path), "3",
                               json.dumps(answer)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]
        outs.append(next(line for line in stdout.splitlines() if line.startswith("OUTCOME")))

    assert runs(tmp_path / "runs.txt") == 1
    assert sorted(outs) == ["OUTCOME ApprovalAlreadyHandledError already_handled"] * 2 + [
        "OUTCOME ok paid 250 to Bob"]


def test_a_later_duplicate_gets_the_recorded_result(tmp_path, keyring):
    """A delivery that arrives after the winner finished does not run the tool either."""
    answer = pause(tmp_path, keyring)
    graph = build(SqliteStore(sqlite_conn(tmp_path / "store.db")),
                  SqliteSaver(sqlite_conn(tmp_path / "checkpoints.db")), keyring, tmp_path / "runs.txt")
    first = graph.invoke(Command(resume=answer), CFG, context=CTX)
    assert first["messages"][-1].content == "paid 250 to Bob"
    graph.invoke(Command(resume=answer), CFG, context=CTX)
    assert runs(tmp_path / "runs.txt") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tool_that_pauses_can_claim_again(tmp_path, keyring, mode):
    """The run claim is given back when the approved tool itself pauses (an inner guard's
    interrupt), so the next run of the node runs it: exactly once, not never."""
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.store.memory import InMemoryStore
    from langgraph.types import interrupt

    from langchain_agent_auth.approval import ApprovalGuard, InAppApprover
    from langchain_agent_auth.core.guards import guarded_tool_node
    from tests.approval.helpers import State

    ran: list[str] = []

    @tool
    def pay(amount: int, to: str) -> str:
        """Pay someone."""
        pin = interrupt({"type": "pin"})
        ran.append(pin)
        return f"paid with {pin}"

    graph = (StateGraph(State).add_node("tools", guarded_tool_node([pay], ApprovalGuard(InAppApprover(
        keyring=keyring)))).add_edge(START, "tools").add_edge("tools", END)
             .compile(checkpointer=InMemorySaver(), store=InMemoryStore()))

    async def go(inp: Any) -> Any:
        if mode == "sync":
            return graph.invoke(inp, CFG, context=CTX)
        return await graph.ainvoke(inp, CFG, context=CTX)

    out = await go({"messages": [CALL]})
    approval = out["__interrupt__"][0]
    out = await go(Command(resume={approval.id: {"approval_id": approval.value["approval_id"],
                                                 "decision": "approve"}}))
    pin = [i for i in out["__interrupt__"] if i.value.get("type") == "pin"]
    assert pin and ran == []
    out = await go(Command(resume={pin[0].id: "1234"}))
    assert ran == ["1234"] and out["messages"][-1].content == "paid with 1234"


# --------------------------------------------------------------------------- two resumers


class _GatedSource:
    """An ApprovalSource whose ``due`` waits until both resumers have read their due items."""

    def __new__(cls, approvers: Any, store: Any, barrier: Any) -> Any:
        from langchain_agent_auth.approval import ApprovalSource

        class Gated(ApprovalSource):
            def due(self, now: float, limit: int) -> Any:
                items = super().due(now, limit)
                barrier.wait(timeout=60)
                return items

            async def adue(self, now: float, limit: int) -> Any:
                items = await super().adue(now, limit)
                await asyncio.wait_for(barrier.wait(), 60)
                return items

        return Gated(approvers, store)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_two_resumers_resume_each_thread_once(keyring, mode):
    from collections import Counter

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.prebuilt import tools_condition
    from langgraph.store.memory import InMemoryStore

    from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, approval_guards
    from langchain_agent_auth.core.guards import guarded_tool_node
    from tests.approval.fake_ciba import Clock, FakeCiba
    from tests.approval.helpers import SIDE_EFFECTS, State, calls, transfer_money

    clock = Clock()
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    model_runs: Counter[str] = Counter()

    def model(state: State, config: RunnableConfig) -> dict:
        model_runs[config["configurable"]["thread_id"]] += 1
        done = any(m.type == "tool" for m in state["messages"])
        return {"messages": [AIMessage("done") if done else calls(("transfer_money", {"amount": 5, "to": "Bob"},
                                                                     "c1"))]}

    store = InMemoryStore()
    graph = (StateGraph(State).add_node("model", model)
             .add_node("tools", guarded_tool_node([transfer_money], *approval_guards({"transfer_money": ciba})))
             .add_edge(START, "model").add_conditional_edges("model", tools_condition, ["tools", END])
             .add_edge("tools", "model").compile(checkpointer=InMemorySaver(), store=store))
    threads = [f"t{i}" for i in range(4)]
    for t in threads:
        graph.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": t}}, context=CTX)
    for rid in list(idp.reqs):
        idp.approve(rid)
    clock.advance(1)
    before = dict(model_runs)

    barrier: Any = threading.Barrier(2) if mode == "sync" else asyncio.Barrier(2)
    resumers = [ApprovalResumer(graph, sources=[_GatedSource([ciba], store, barrier)], clock=clock)
                for _ in range(2)]
    if mode == "sync":
        with ThreadPoolExecutor(2) as pool:
            reports = list(pool.map(lambda r: r.run_once(), resumers))
    else:
        reports = await asyncio.gather(*(r.arun_once() for r in resumers))

    resumed = sorted(t for rep in reports for t in rep.resumed_threads)
    assert resumed == threads  # each thread once, by one resumer or the other
    assert sum(rep.claimed_elsewhere for rep in reports) == len(threads)
    assert all(model_runs[t] == before[t] + 1 for t in threads)
    assert len(SIDE_EFFECTS) == len(threads)


# --------------------------------------------------------------------------- a rewritten call


def test_a_stale_approved_record_is_set_aside_once(keyring, caplog):
    """The call was rewritten (a new tool call id) after its CIBA request went out; the old
    request is then approved. Its thread no longer pauses on it: the resumer looks once more
    (the pause may not have been saved yet), then sets it aside: not resumed, retried or
    logged on every pass."""
    import logging

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.prebuilt import tools_condition
    from langgraph.store.memory import InMemoryStore

    from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, approval_guards
    from langchain_agent_auth.core.guards import guarded_tool_node
    from tests.approval.fake_ciba import Clock, FakeCiba
    from tests.approval.helpers import SIDE_EFFECTS, State, calls, transfer_money

    clock = Clock()
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    first = calls(("transfer_money", {"amount": 5, "to": "Bob"}, "c1"))

    def model(state: State) -> dict:
        done = any(m.type == "tool" for m in state["messages"])
        return {"messages": [AIMessage("done") if done else first]}

    graph = (StateGraph(State).add_node("model", model)
             .add_node("tools", guarded_tool_node([transfer_money], *approval_guards({"transfer_money": ciba})))
             .add_edge(START, "model").add_conditional_edges("model", tools_condition, ["tools", END])
             .add_edge("tools", "model").compile(checkpointer=InMemorySaver(), store=InMemoryStore()))
    cfg = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"messages": [("user", "pay")]}, cfg, context=CTX)
    [old_rid] = list(idp.reqs)
    # Rewrite the call: same message, a new call id and amount; the thread pauses on it instead.
    ai = graph.get_state(cfg).values["messages"][-1]
    rewritten = AIMessage("", id=ai.id, tool_calls=[{"name": "transfer_money", "args": {"amount": 7, "to": "Bob"},
                                                     "id": "c2", "type": "tool_call"}])
    graph.update_state(cfg, {"messages": [rewritten]}, as_node="model")
    graph.invoke(None, cfg, context=CTX)
    assert len(idp.reqs) == 2
    idp.approve(old_rid)  # the stale request is approved; the new one is still pending

    resumer = ApprovalResumer(graph, approvers=[ciba], clock=clock)
    caplog.set_level(logging.INFO, logger="langchain_agent_auth")
    reports = []
    for _ in range(5):
        clock.advance(3)
        reports.append(resumer.run_once())

    # Pass 1: its thread does not pause on it (maybe not yet): looked at again once.
    assert reports[0].deferred == 1 and reports[0].set_aside == 0
    # Pass 2: still not: set aside, once; never resumed with it, never due again.
    assert sum(r.set_aside for r in reports) == 1 and reports[1].set_aside == 1
    assert all(not r.resumed_threads for r in reports)
    assert all(r.due == 1 for r in reports[2:])  # only the rewritten call's own request
    assert sum("set aside" in m for m in caplog.messages) == 1
    assert SIDE_EFFECTS == []  # neither call ran: the new one is still pending
    idp.approve()  # now the rewritten call's own request
    clock.advance(3)
    assert resumer.run_once().resumed_threads == ["t1"]
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 7, "to": "Bob"})]


# --------------------------------------------------------------------------- PostgreSQL


def test_eight_threads_on_postgres(postgres, keyring, tmp_path):
    """The same race on PostgresStore + PostgresSaver: the compare-and-set is one conditional
    statement in PostgreSQL, strict across connections."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    dsn = postgres.database(f"approve_{os.getpid()}")
    with PostgresStore.from_conn_string(dsn) as pg_store, PostgresSaver.from_conn_string(dsn) as saver:
        pg_store.setup()
        saver.setup()
        graph = build(pg_store, saver, keyring, tmp_path / "runs.txt")
        out = graph.invoke({"messages": [CALL]}, CFG, context=CTX)
        answer = {"approval_id": out["__interrupt__"][0].value["approval_id"], "decision": "approve"}
        graph = build(GateStore(pg_store, 8, rounds=2), saver, keyring, tmp_path / "runs.txt")
        start = threading.Barrier(8)

        def deliver(_: int) -> str:
            start.wait(timeout=60)
            return outcome(lambda: graph.invoke(Command(resume=answer), CFG, context=CTX))

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(deliver, range(8)))

    assert runs(tmp_path / "runs.txt") == 1
    assert sorted(outcomes) == ["already_handled"] * 7 + ["ran: paid 250 to Bob"]


def test_plan_sets_aside_only_items_resumed_before_and_not_named_by_any_pause():
    """A sibling pause of the same task (same thread tag) gets a first-time item; an item
    already resumed once, or found missing once, is set aside instead; a pause naming the
    item by approval id or tool call id always gets it."""
    from langchain_agent_auth.approval import PendingItem
    from langchain_agent_auth.resume._plan import _plan

    tag = "a" * 16
    sibling = [("i1", {"type": "approval_pending", "approval_id": tag + "b" * 16 + ".2", "tool_call_id": "c2"})]

    def item(ref: str, call: str, **extra: Any) -> tuple[Any, PendingItem]:
        return (None, PendingItem(source="approval", key=ref.split(".")[0], ref=ref, thread_id="t1",
                                  tool_call_id=call, extra=extra))

    fresh = item(tag + "c" * 16 + ".1", "c1")
    resume, matched, unmatched, stale = _plan([fresh], sibling)
    assert resume == {"i1": {}} and matched == [fresh] and not stale
    for seen in ({"resumed_at": 5.0}, {"misses": 1}):
        old = item(tag + "c" * 16 + ".1", "c1", **seen)
        resume, matched, unmatched, stale = _plan([old], sibling)
        assert resume == {} and stale == [old] and not matched and not unmatched
        named = item(tag + "b" * 16 + ".2", "c9", **seen)  # the pause names it: resumed as always
        assert _plan([named], sibling)[1] == [named]
