"""One resumer, 100 / 1,000 / 10,000 pending CIBA approvals across as many threads (scripted
provider on httpx.MockTransport): provider requests per interval (poll and ping), time of a
pass (the growth curve), memory per pending approval, and time from approval to resumed run.
Run: python benchmarks/approval_resumer.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import httpx
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from benchmarks._util import Row, print_table, single
from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, approval_guards, route_tool_calls
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import UserIdentity
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import State

ALICE = UserIdentity(subject="alice")
DONE: dict[str, float] = {}


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    DONE[to] = time.perf_counter()
    return "sent"


def build(approver: CIBAApprover, checkpointer: InMemorySaver, store: InMemoryStore):
    def model(state: State) -> dict:
        if any(m.type == "tool" for m in state["messages"]):
            return {"messages": [AIMessage("done")]}
        to = state["messages"][0].content
        return {"messages": [AIMessage("", tool_calls=[{"name": "transfer", "args": {"amount": 5, "to": to},
                                                        "id": "c1"}])]}

    return (StateGraph(State).add_node("model", model)
            .add_node("tools", guarded_tool_node([transfer], *approval_guards({"transfer": approver})))
            .add_edge(START, "model").add_conditional_edges("model", route_tool_calls, ["tools", END])
            .add_edge("tools", "model").compile(checkpointer=checkpointer, store=store))


def setup(n: int, *, clock=time.time, interval: float = 1, ping: bool = False):
    idp = FakeCiba(clock, interval=interval, expires_in=3600)
    idp.users.update(f"user{i}" for i in range(n))
    if ping:
        idp.metadata["backchannel_token_delivery_modes_supported"] = ["poll", "ping"]
    approver = CIBAApprover(idp.oauth_client(), keyring=Keyring.generate(), clock=clock,
                            delivery_mode="ping" if ping else "poll")
    store = InMemoryStore()
    graph = build(approver, InMemorySaver(), store)
    for i in range(n):
        graph.invoke({"messages": [("user", f"t{i}")]}, {"configurable": {"thread_id": f"t{i}"}},
                     context={"user": ALICE})
    return idp, approver, store, graph


def requests_per_interval(n: int, with_ping: bool = True) -> tuple[float, float, list[float]]:
    clock = Clock()
    idp, approver, _, graph = setup(n, clock=clock)
    resumer = ApprovalResumer(graph, approvers=[approver], clock=clock)
    polls = []
    pass_seconds = []
    for _ in range(5):  # five intervals, the resumer ticking every 0.25 s
        before = idp.polls()
        for _ in range(4):
            clock.advance(0.25)
            t = time.process_time()  # CPU: the provider is in-process (MockTransport), no real I/O
            rep = resumer.run_once()
            if rep.due:
                pass_seconds.append(time.process_time() - t)
        polls.append(idp.polls() - before)
    assert idp.slow_downs() == 0
    if not with_ping:
        return statistics.mean(polls), 0.0, pass_seconds
    # ping mode: nothing is polled until a ping arrives
    pclock = Clock()
    pidp, papprover, _, pgraph = setup(min(n, 200), clock=pclock, ping=True)
    presumer = ApprovalResumer(pgraph, approvers=[papprover], clock=pclock)
    before = pidp.polls()
    for _ in range(4):
        pclock.advance(0.25)
        presumer.run_once()
    return statistics.mean(polls), float(pidp.polls() - before), pass_seconds


def memory_per_pending(n: int) -> float:
    """Bytes the store holds per pending approval: memory freed when the store is dropped."""
    from langchain_agent_auth.approval import args_digest
    from langchain_agent_auth.approval._records import record_key

    idp = FakeCiba(expires_in=3600)
    approver = CIBAApprover(idp.oauth_client(), keyring=Keyring.generate())

    class Call:  # what the guard passes to start()
        def __init__(self, i: int) -> None:
            self.name, self.args, self.tool_call_id = "transfer", {"amount": 5, "to": f"t{i}"}, "c1"
            self.thread_id, self.checkpoint_ns, self.config = f"t{i}", "tools:x", {}

    gc.collect()
    tracemalloc.start()
    store = InMemoryStore()
    astore = approver.approval_store(store)
    for i in range(n):
        call = Call(i)
        approver.start(record_key(call.thread_id, "tools:x", "c1", approver.name), call, ALICE,
                       args_digest(call.args), astore)
    idp.requests.clear()
    idp.reqs.clear()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    del store, astore
    gc.collect()
    freed = held - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return freed / n


async def approval_to_resume(n: int, samples: int) -> tuple[float, float, float]:
    """Median ms from the user's approval to the tool having run: poll mode (interval 1 s)
    and ping mode, with ``n`` other approvals pending; baseline: resuming the graph directly."""
    out = []
    for ping in (False, True):
        DONE.clear()
        idp, approver, _, graph = setup(n, ping=ping)
        resumer = ApprovalResumer(graph, approvers=[approver], tick=0.05 if not ping else 3600)
        receiver = resumer.ping_receiver()
        stop = asyncio.Event()
        task = asyncio.create_task(resumer.serve(stop=stop))
        waits = []
        rids = list(idp.reqs)
        for k in range(samples):
            await asyncio.sleep(0.3)
            rid = rids[k]
            to = idp.reqs[rid]["form"]["binding_message"].split("to: ")[1].rstrip(")")
            started = time.perf_counter()
            idp.approve(rid)
            if ping:
                token = idp.reqs[rid]["form"]["client_notification_token"]
                transport = httpx.ASGITransport(app=receiver)
                async with httpx.AsyncClient(transport=transport, base_url="https://a") as c:
                    await c.post("/ciba/notify", json={"auth_req_id": rid},
                                 headers={"Authorization": f"Bearer {token}"})
            while to not in DONE:
                await asyncio.sleep(0.002)
            waits.append((DONE[to] - started) * 1000)
        stop.set()
        resumer.wake()
        await task
        out.append(statistics.median(waits))
    # baseline: the graph resumed directly with the answer (no provider, no resumer)
    DONE.clear()
    idp, approver, _, graph = setup(samples)
    base = []
    for k, rid in enumerate(list(idp.reqs)[:samples]):
        idp.approve(rid)
        cfg = {"configurable": {"thread_id": f"t{k}"}}
        (p,) = graph.get_state(cfg).interrupts
        time.sleep(1.0 if k == 0 else 0)
        started = time.perf_counter()
        graph.invoke(Command(resume={p.id: {"approval_id": p.value["approval_id"]}}), cfg, context={"user": ALICE})
        base.append((DONE[f"t{k}"] - started) * 1000)
    return out[0], out[1], statistics.median(base)


SIZES_FULL = (100, 1_000, 10_000)
SIZES_QUICK = (100,)


def run(quick: bool = False) -> list[Row]:
    """Rows for run.py: the growth curve of a resumer pass and of provider requests at 100,
    1,000 and 10,000 pending approvals (100 only with ``--quick``), then memory and latency."""
    rows = []
    for i, n in enumerate(SIZES_QUICK if quick else SIZES_FULL):
        per_interval, ping_polls, passes = requests_per_interval(n, with_ping=i == 0)
        rows.append(Row("approval: resumer", f"provider requests per 1 s interval, {n:,} pending (poll)",
                        per_interval, float(n), "", f"{n:,} pending approvals",
                        "one poll per approval per interval; 0 slow_down"))
        rows.append(single("approval: resumer", f"CPU ms per resumer pass with {n:,} due (sync)",
                           [p * 1000 for p in passes], "ms"))
        if i == 0:
            rows.append(Row("approval: resumer", f"provider requests per interval, {min(n, 200)} pending (ping)",
                            ping_polls, None, "", "", "ping mode polls only after a ping"))
    n = 200 if quick else 1000
    mem = memory_per_pending(n)
    poll_ms, ping_ms, base_ms = asyncio.run(approval_to_resume(n, 3 if quick else 5))
    rows.extend([
        Row("approval: resumer", "bytes per pending approval (store record)", mem, None, "B"),
        Row("approval: resumer", f"ms approval -> resumed run (poll, interval 1 s), {n:,} pending", poll_ms,
            base_ms, "ms", "graph.invoke(Command(resume)) directly"),
        Row("approval: resumer", f"ms approval -> resumed run (ping), {n:,} pending", ping_ms, base_ms, "ms",
            "graph.invoke(Command(resume)) directly"),
    ])
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
