"""Invariant 2 for approvals: the CIBA auth_req_id, the notification token and the issued
access token never appear in checkpoints, state, interrupt payloads, messages, stream
output, callbacks (traces), logs or error text. Payloads stay bounded for huge arguments."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import sqlite3
from typing import Any
from uuid import UUID

import httpx
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.sqlite import SqliteStore
from langgraph.types import Command

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, approval_guards, route_tool_calls
from langchain_agent_auth.core.guards import guarded_tool_node
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import ALICE, State, calls, interrupts, transfer_money
from tests.approval.test_ciba import TOKENS_SEEN, pay

CFG = {"configurable": {"thread_id": "t-sec"}}
CTX = {"user": ALICE}


class Recorder(BaseCallbackHandler):
    """Everything a tracer (LangSmith) would be sent."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def _add(self, *parts: Any) -> None:
        self.events.append(repr(parts))

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self._add(inputs, kw.get("metadata"))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self._add(outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self._add(str(error))

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID, **kw: Any) -> None:
        self._add(input_str, kw.get("inputs"))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kw: Any) -> None:
        self._add(output)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kw: Any) -> None:
        self._add(name, data)


def _sqlite(path: pathlib.Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)


def build(approver, store, saver):
    first = calls(("pay", {"amount": 250, "to": "Bob"}, "c1"), ("transfer_money", {"amount": 9, "to": "Eve"}, "c2"))

    def model(state: State) -> dict:
        done = any(m.type == "tool" for m in state["messages"])
        return {"messages": [AIMessage("all done") if done else first]}

    guards = approval_guards({"pay": approver, "transfer_money": approver})
    return (StateGraph(State).add_node("model", model)
            .add_node("tools", guarded_tool_node([pay, transfer_money], *guards))
            .add_edge(START, "model").add_conditional_edges("model", route_tool_calls, ["tools", END])
            .add_edge("tools", "model").compile(checkpointer=saver, store=store))


def test_no_ciba_secret_leaves_the_sealed_store(tmp_path, keyring, caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    idp = FakeCiba(clock)
    idp.metadata["backchannel_token_delivery_modes_supported"] = ["poll", "ping"]
    approver = CIBAApprover(idp.oauth_client(), delivery_mode="ping", keyring=keyring, clock=clock)
    saver = SqliteSaver(_sqlite(tmp_path / "checkpoints.sqlite"))
    store = SqliteStore(_sqlite(tmp_path / "store.sqlite"))
    store.setup()
    g = build(approver, store, saver)
    rec = Recorder()
    cfg = {**CFG, "callbacks": [rec]}
    seen: list[str] = []

    out = list(g.stream({"messages": [("user", "pay")]}, cfg, context=CTX, stream_mode=["values", "updates",
                                                                                        "custom", "debug"]))
    seen.append(repr(out))
    pauses = g.get_state(CFG).interrupts
    assert len(pauses) == 2
    seen.append(json.dumps([p.value for p in pauses], default=str))
    errors = []
    try:  # a resume value claiming a decision: refused, and the error text is clean
        g.invoke(Command(resume={pauses[0].id: {"approval_id": pauses[0].value["approval_id"],
                                                "decision": "approve"}}), cfg, context=CTX)
    except E.ResumeValueError as exc:
        errors.append(str(exc))
    rids = list(idp.reqs)
    for rid, req in idp.reqs.items():  # approve pay, deny transfer_money (whichever was sent first)
        (idp.approve if req["form"]["binding_message"].startswith("Approve pay") else idp.deny)(rid)
    clock.advance(1)
    resumer = ApprovalResumer(g, approvers=[approver], clock=clock)
    assert resumer.run_once().due == 0  # ping mode: nothing is polled before a ping
    receiver = resumer.ping_receiver()

    async def pings() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="https://a") as c:
            return [(await c.post("/ciba/notify", json={"auth_req_id": rid}, headers={
                "Authorization": f"Bearer {idp.reqs[rid]['form']['client_notification_token']}"})).status_code
                for rid in rids]

    assert asyncio.run(pings()) == [204, 204]
    report = resumer.run_once()
    assert report.resumed_items == 2
    seen.append(repr(report))
    state = g.get_state(CFG)
    assert state.values["messages"][-1].content == "all done" and len(TOKENS_SEEN) == 1
    seen += [repr(state), json.dumps([m.model_dump() for m in state.values["messages"]], default=str)]
    seen += [repr(list(g.get_state_history(CFG)))]

    secrets = {*rids, *idp.tokens, "agent-secret-0123456789"}
    secrets |= {req["form"]["client_notification_token"] for req in idp.reqs.values()}
    assert len(secrets) == 6 and all(len(s) >= 20 for s in secrets)
    assert TOKENS_SEEN[0].access_token in secrets  # the tool did get the token

    haystacks = {
        "checkpoint db": b"".join(p.read_bytes() for p in tmp_path.glob("checkpoints.sqlite*")),
        "store db": b"".join(p.read_bytes() for p in tmp_path.glob("store.sqlite*")),
        "graph output and state": "\n".join(seen).encode(),
        "callbacks (traces)": "\n".join(rec.events).encode(),
        "logs": caplog.text.encode(),
        "errors": "\n".join(errors).encode(),
    }
    assert errors and rec.events and len(haystacks["store db"]) > 0
    for where, blob in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in blob, f"a secret leaked into {where}"


def test_payload_size_is_bounded_for_huge_arguments(keyring):
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    clock = Clock()
    idp = FakeCiba(clock)
    approver = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    huge = {"amount": 1, "to": "B" * 2_000_000}

    def model(state: State) -> dict:
        return {"messages": [calls(("pay", huge, "c1"))]}

    g = (StateGraph(State).add_node("model", model)
         # Huge arguments are refused by default (max_args_size); an app that allows them
         # still gets bounded payloads.
         .add_node("tools", guarded_tool_node([pay], *approval_guards(
             {"pay": {"approver": approver, "max_args_size": 4_000_000}})))
         .add_edge(START, "model").add_edge("model", "tools")
         .compile(checkpointer=InMemorySaver(), store=InMemoryStore()))
    r = g.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    (p,) = interrupts(r)
    payload = json.dumps(p.value)
    assert len(payload) < 8000 and len(p.value["binding_message"]) <= 64
    assert len(idp.latest()["form"]["authorization_details"]) < 4000
    assert p.value["authorization_details"][0]["arguments_truncated"] is True
