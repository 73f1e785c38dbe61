"""Live progress of approvals on the custom stream: block mode (sync and async) reports each
wait with its expiry and next poll, then the outcome; interrupt mode reports the pause once
it really happens. Every chunk is a typed ``WaitProgress`` and carries no token or auth_req_id."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth.approval import ApprovalMiddleware, CIBAApprover, InAppApprover
from langchain_agent_auth.core.progress import WaitProgress, is_progress
from tests.approval.fake_ciba import FakeCiba
from tests.approval.helpers import ALICE, calls, scripted, tool_messages, transfer_money
from tests.approval.test_ciba import TOKENS_SEEN, pay

CTX = {"user": ALICE}


@pytest.fixture(autouse=True)
def _clear_tokens():
    """``pay`` records the tokens it got in test_ciba's list; other modules count them."""
    TOKENS_SEEN.clear()
    yield
    TOKENS_SEEN.clear()


def _agent(approver, mode, tool=pay, args=None):
    turn = calls((tool.name, args or {"amount": 250, "to": "Bob"}, "c1"))
    return create_agent(scripted(turn, AIMessage("all done")), [tool],
                        middleware=[ApprovalMiddleware({tool.name: {"approver": approver, "mode": mode}})],
                        checkpointer=InMemorySaver(), store=InMemoryStore())


def _secrets(idp):
    return [r["rid"] for r in idp.reqs.values()] + list(idp.tokens)


def _check_block_events(custom, idp):
    events = [WaitProgress.model_validate(c) for c in custom]  # exact typed shape
    assert all(is_progress(c) for c in custom) and len(events) >= 2
    waits, end = events[:-1], events[-1]
    assert {e.state for e in waits} == {"waiting"} and end.state == "approved"
    for e in waits:
        assert e.kind == "approval" and e.tool == "pay" and e.tool_call_id == "c1"
        assert e.expires_at and e.next_check_at and e.next_check_at <= e.expires_at
        assert e.seconds_left is not None and 0 <= e.seconds_left <= idp.expires_in
        assert "on your device" in e.message
    text = json.dumps(custom)
    for secret in _secrets(idp):
        assert secret not in text
    assert "auth_req_id" not in text and "access_token" not in text


def _approve_after(idp, polls):
    def phone():
        while idp.polls() < polls:
            time.sleep(0.01)
        idp.approve()

    threading.Thread(target=phone, daemon=True).start()


def test_block_mode_streams_waiting_then_approved(keyring):
    idp = FakeCiba(interval=0.05)
    graph = _agent(CIBAApprover(idp.oauth_client(), keyring=keyring), "block")
    _approve_after(idp, 2)
    cfg = {"configurable": {"thread_id": "p1"}}
    custom = list(graph.stream({"messages": [("user", "pay")]}, cfg, context=CTX, stream_mode="custom"))
    _check_block_events(custom, idp)
    assert tool_messages(graph.get_state(cfg).values)[0].content == "paid 250 to Bob"


async def test_async_block_mode_streams_waiting_then_approved(keyring):
    idp = FakeCiba(interval=0.05)
    graph = _agent(CIBAApprover(idp.oauth_client(), keyring=keyring), "block")

    async def phone():
        while idp.polls() < 2:
            await asyncio.sleep(0.01)
        idp.approve()

    cfg = {"configurable": {"thread_id": "p2"}}
    task = asyncio.create_task(phone())
    custom = [c async for c in graph.astream({"messages": [("user", "pay")]}, cfg, context=CTX,
                                             stream_mode="custom")]
    await task
    _check_block_events(custom, idp)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_block_mode_denial_ends_with_denied(keyring, mode):
    idp = FakeCiba(interval=0.05)
    graph = _agent(CIBAApprover(idp.oauth_client(), keyring=keyring), "block")
    cfg = {"configurable": {"thread_id": f"deny-{mode}"}}

    def phone():
        while idp.polls() < 1:
            time.sleep(0.01)
        idp.deny()

    threading.Thread(target=phone, daemon=True).start()
    if mode == "sync":
        custom = list(graph.stream({"messages": [("user", "pay")]}, cfg, context=CTX, stream_mode="custom"))
    else:
        custom = [c async for c in graph.astream({"messages": [("user", "pay")]}, cfg, context=CTX,
                                                 stream_mode="custom")]
    assert WaitProgress.model_validate(custom[-1]).state == "denied"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_interrupt_mode_reports_the_pause_once_it_happens(keyring, mode):
    graph = _agent(InAppApprover(keyring=keyring), "interrupt", tool=transfer_money,
                   args={"amount": 10, "to": "Bob"})
    cfg = {"configurable": {"thread_id": f"pause-{mode}"}}

    async def run(value):
        if mode == "sync":
            return list(graph.stream(value, cfg, context=CTX, stream_mode=["custom", "updates"]))
        return [c async for c in graph.astream(value, cfg, context=CTX, stream_mode=["custom", "updates"])]

    chunks = await run({"messages": [("user", "send 10")]})
    custom = [c for kind, c in chunks if kind == "custom"]
    [event] = [WaitProgress.model_validate(c) for c in custom]
    [pause] = graph.get_state(cfg).interrupts
    assert event.kind == "approval" and event.state == "paused" and event.tool == "transfer_money"
    assert event.expires_at == pause.value["expires_at"] and event.next_check_at is None
    assert "on your device" not in event.message  # an in-app approval

    answer = {pause.id: {"approval_id": pause.value["approval_id"], "decision": "approve"}}
    chunks = await run(Command(resume=answer))
    assert not [c for kind, c in chunks if kind == "custom"]  # resumed: no new wait
    assert not graph.get_state(cfg).interrupts
