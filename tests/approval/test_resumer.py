"""The resumer: only completed threads are resumed, pending sources plug in (a vault-like
``connect_account`` source), pings wake it, failures are retried, nothing is lost."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import replace
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.store.memory import InMemoryStore
from langgraph.types import interrupt

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import (
    ApprovalResumer,
    CIBAApprover,
    PendingItem,
    PendingSource,
    approval_guards,
    route_tool_calls,
)
from langchain_agent_auth.core.guards import guarded_tool_node
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import ALICE, SIDE_EFFECTS, State, calls, transfer_money

CTX = {"user": ALICE}
MODEL_RUNS: Counter[str] = Counter()


@tool
def send_email(to: str) -> str:
    """Send an email (needs a connected mail account: pauses with connect_account)."""
    answer = interrupt({"type": "connect_account", "connection": "mail", "connect_id": f"conn-{to}",
                        "tool_call_id": "m1"})
    SIDE_EFFECTS.append(("send_email", {"to": to, "answer": answer}))
    return f"mailed {to}"


def build(approver, first: AIMessage, tools=(transfer_money,), route=tools_condition):
    def model(state: State, config) -> dict:
        MODEL_RUNS[config["configurable"]["thread_id"]] += 1
        done = any(m.type == "tool" for m in state["messages"])
        return {"messages": [AIMessage("all done") if done else first]}

    guards = approval_guards({"transfer_money": approver})
    return (StateGraph(State).add_node("model", model).add_node("tools", guarded_tool_node(list(tools), *guards))
            .add_edge(START, "model").add_conditional_edges("model", route, ["tools", END])
            .add_edge("tools", "model").compile(checkpointer=InMemorySaver(), store=InMemoryStore()))


@pytest.fixture(autouse=True)
def _clear_runs():
    MODEL_RUNS.clear()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def idp(clock):
    return FakeCiba(clock)


@pytest.fixture
def ciba(idp, clock, keyring):
    return CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)


def pay(n):
    return calls(("transfer_money", {"amount": n, "to": "Bob"}, f"c{n}"))


def test_only_threads_whose_approval_completed_are_resumed(idp, ciba, clock):
    g = build(ciba, pay(1))
    for t in ("t1", "t2", "t3"):
        g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": t}}, context=CTX)
    rids = list(idp.reqs)
    idp.approve(rids[1])  # only t2's
    resumer = ApprovalResumer(g, approvers=[ciba], clock=clock)
    before = dict(MODEL_RUNS)
    clock.advance(1)
    rep = resumer.run_once()
    assert rep.due == 3 and rep.ready == 1 and rep.resumed_threads == ["t2"]
    assert MODEL_RUNS["t1"] == before["t1"] and MODEL_RUNS["t3"] == before["t3"]  # untouched
    assert MODEL_RUNS["t2"] == before["t2"] + 1
    assert idp.polls() == 3  # one poll per pending request per interval
    clock.advance(0.5)
    assert resumer.run_once().due == 0 and idp.polls() == 3


def test_works_without_an_event_loop_and_in_one(idp, ciba, clock):
    g = build(ciba, pay(1))
    g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "t1"}}, context=CTX)
    idp.approve()
    clock.advance(1)
    resumer = ApprovalResumer(g, approvers=[ciba], clock=clock)
    done = threading.Event()
    resumer.run(stop=done, max_passes=1)  # plain thread, no running loop needed
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 1, "to": "Bob"})]


async def test_serve_until_stopped(idp, ciba, clock):
    g = build(ciba, pay(1))
    g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "t1"}}, context=CTX)
    idp.approve()
    clock.advance(1)
    resumer = ApprovalResumer(g, approvers=[ciba], clock=clock, tick=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(resumer.serve(stop=stop))
    for _ in range(500):
        if SIDE_EFFECTS:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 1, "to": "Bob"})]


def test_resume_uses_the_approvals_user_and_a_custom_context(idp, ciba, clock):
    g = build(ciba, pay(1))
    g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "t1"}}, context=CTX)
    idp.approve()
    clock.advance(1)
    seen: list[PendingItem] = []

    def context(item: PendingItem) -> Any:
        seen.append(item)
        return {"user": item.context["user"]}

    assert ApprovalResumer(g, approvers=[ciba], clock=clock, context=context).run_once().resumed_items == 1
    (item,) = seen
    assert item.context["user"]["subject"] == "alice" and item.tool_call_id == "c1" and item.thread_id == "t1"
    assert "access_token" not in str(item) and "rid-" not in str(item)


class MailSource:
    """A vault-like pending source: pauses until the user connected an account."""

    name = "vault"

    def __init__(self) -> None:
        self.items: dict[str, PendingItem] = {}
        self.connected: set[str] = set()
        self.settled: list[tuple[str, bool]] = []

    def add(self, thread_id: str, connect_id: str) -> None:
        self.items[connect_id] = PendingItem(source=self.name, key=connect_id, ref=connect_id, thread_id=thread_id,
                                             interrupt_type="connect_account", ref_field="connect_id",
                                             context=CTX)

    def due(self, now: float, limit: int) -> list[PendingItem]:
        return list(self.items.values())[:limit]

    async def adue(self, now: float, limit: int) -> list[PendingItem]:
        return self.due(now, limit)

    def check(self, item: PendingItem, now: float) -> PendingItem | None:
        return replace(item, resume={"connected": True}) if item.key in self.connected else None

    async def acheck(self, item: PendingItem, now: float) -> PendingItem | None:
        return self.check(item, now)

    def settle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None:
        self.settled.append((item.key, resumed))
        if resumed or retry_in is None:
            self.items.pop(item.key, None)

    async def asettle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None:
        self.settle(item, resumed, now, retry_in)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_other_pillars_plug_in_a_pending_source(idp, ciba, clock, mode):
    """An approval and a connect_account pause in one thread complete together: one resume."""
    both = calls(("transfer_money", {"amount": 5, "to": "Bob"}, "c1"), ("send_email", {"to": "bob"}, "m1"))
    # each call in its own task (create_agent's layout): send_email's own interrupt() must
    # never receive the approval's resume value
    g = build(ciba, both, tools=(transfer_money, send_email), route=route_tool_calls)
    cfg = {"configurable": {"thread_id": "t1"}}
    g.invoke({"messages": [("user", "go")]}, cfg, context=CTX)
    mail = MailSource()
    assert isinstance(mail, PendingSource)
    mail.add("t1", "conn-bob")
    resumer = ApprovalResumer(g, approvers=[ciba], sources=[mail], clock=clock)
    for _ in range(6):
        for rid, req in idp.reqs.items():
            if req["status"] == "pending":
                idp.approve(rid)
        mail.connected.add("conn-bob")
        clock.advance(1)
        if mode == "sync":
            resumer.run_once()
        else:
            await resumer.arun_once()
        if not g.get_state(cfg).interrupts:
            break
    assert not g.get_state(cfg).interrupts
    assert sorted(SIDE_EFFECTS, key=str) == [("send_email", {"to": "bob", "answer": {"connected": True}}),
                                             ("transfer_money", {"amount": 5, "to": "Bob"})]
    assert ("conn-bob", True) in mail.settled


def test_items_whose_thread_has_no_matching_pause_are_deferred_then_abandoned(idp, ciba, clock):
    g = build(ciba, pay(1))
    mail = MailSource()
    mail.add("ghost-thread", "conn-x")
    mail.connected.add("conn-x")
    item = mail.items["conn-x"]
    mail.items["conn-x"] = replace(item, expires_at=clock())
    resumer = ApprovalResumer(g, approvers=[ciba], sources=[mail], clock=clock, give_up_after=10)
    rep = resumer.run_once()
    assert rep.deferred == 1 and mail.settled == [("conn-x", False)]
    clock.advance(11)
    rep = resumer.run_once()
    assert rep.abandoned == 1 and not mail.items


def test_a_failing_resume_is_retried_not_lost(idp, ciba, clock):
    g = build(ciba, pay(1))
    g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "t1"}}, context=CTX)
    idp.approve()
    clock.advance(1)
    calls_made = []

    class Flaky(ApprovalResumer):
        def _resume(self, item, resume):
            calls_made.append(item.thread_id)
            if len(calls_made) == 1:
                raise RuntimeError("database is locked")
            super()._resume(item, resume)

    resumer = Flaky(g, approvers=[ciba], clock=clock, retry_delay=2)
    rep = resumer.run_once()
    assert rep.errors == ["resume t1: RuntimeError"] and rep.deferred == 1 and SIDE_EFFECTS == []
    clock.advance(1)
    assert resumer.run_once().due == 0
    clock.advance(1)
    assert resumer.run_once().resumed_items == 1
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 1, "to": "Bob"})]


async def test_a_ping_wakes_the_resumer_at_once(keyring):
    idp = FakeCiba()
    idp.metadata["backchannel_token_delivery_modes_supported"] = ["poll", "ping"]
    ciba = CIBAApprover(idp.oauth_client(), delivery_mode="ping", keyring=keyring)
    g = build(ciba, pay(1))
    g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "t1"}}, context=CTX)
    form = idp.latest()["form"]
    token, rid = form["client_notification_token"], idp.latest()["rid"]
    resumer = ApprovalResumer(g, approvers=[ciba], tick=3600)  # only a ping can wake it in time
    receiver = resumer.ping_receiver()
    stop = asyncio.Event()
    task = asyncio.create_task(resumer.serve(stop=stop))
    await asyncio.sleep(0.05)
    idp.approve()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="https://agent") as c:
        bad = await c.post("/ciba/notify", json={"auth_req_id": rid}, headers={"Authorization": "Bearer nope"})
        ok = await c.post("/ciba/notify", json={"auth_req_id": rid}, headers={"Authorization": f"Bearer {token}"})
    assert (bad.status_code, ok.status_code) == (401, 204)
    for _ in range(500):
        if SIDE_EFFECTS:
            break
        await asyncio.sleep(0.01)
    stop.set()
    resumer.wake()
    await asyncio.wait_for(task, 5)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 1, "to": "Bob"})]
    assert idp.polls() == 1 and idp.slow_downs() == 0  # the ping replaced interval polling


def test_configuration_errors(ciba):
    g = build(ciba, pay(1))
    with pytest.raises(E.ConfigurationError):
        ApprovalResumer(g)
    with pytest.raises(E.ConfigurationError):
        ApprovalResumer(g, sources=[object()])  # type: ignore[list-item]
    with pytest.raises(E.ConfigurationError):
        ApprovalResumer(object(), approvers=[ciba])
    bare = StateGraph(State).add_node("n", lambda s: s).add_edge(START, "n").compile()
    with pytest.raises(E.ConfigurationError, match="store"):
        ApprovalResumer(bare, approvers=[ciba])


def test_finished_records_are_purged_after_the_retention(idp, ciba, clock):
    g = build(ciba, pay(1))
    for t in ("t1", "t2"):
        g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": t}}, context=CTX)
    idp.approve(next(iter(idp.reqs)))
    clock.advance(1)
    resumer = ApprovalResumer(g, approvers=[ciba], clock=clock, retention=100, purge_every=50)
    assert resumer.run_once().resumed_items == 1
    store = ciba.approval_store(g.store)
    assert len(store.store.search(store.namespace, limit=10)) == 2
    clock.advance(60)
    assert resumer.run_once().purged == 0  # finished less than 100 s ago
    clock.advance(60)
    rep = resumer.run_once()
    assert rep.purged == 1  # the done one; the other one stays
    (left,) = store.store.search(store.namespace, limit=10)
    assert left.value["thread_id"] == "t2"  # still waiting (or only just finished)
