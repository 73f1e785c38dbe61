"""Damaged approval records: a typed error naming the fields, a new approval pause, never a crash."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.sqlite import SqliteStore
from langgraph.types import Command

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import ApprovalMiddleware, InAppApprover
from langchain_agent_auth.approval._records import NAMESPACE, ApprovalStore, parse_record
from tests.approval.helpers import (
    ALICE,
    SIDE_EFFECTS,
    answer,
    calls,
    interrupts,
    scripted,
    tool_messages,
    transfer_money,
)

CFG = {"configurable": {"thread_id": "t1"}}
MARK = "s3cr3t-marker-value"

DAMAGE: list[tuple[str, Any]] = [
    ("status-junk", lambda v: {**v, "status": MARK}),
    ("created-at-str", lambda v: {**v, "created_at": MARK}),
    ("polls-str", lambda v: {**v, "polls": "seven"}),
    ("sealed-str", lambda v: {**v, "sealed": MARK}),
    ("missing-user-key", lambda v: {k: x for k, x in v.items() if k != "user_key"}),
    ("missing-expires", lambda v: {k: x for k, x in v.items() if k != "expires_at"}),
    ("not-a-dict", lambda v: [MARK]),
]


@pytest.fixture
def store(tmp_path):
    conn = sqlite3.connect(tmp_path / "s.sqlite", check_same_thread=False, isolation_level=None)
    s = SqliteStore(conn)
    s.setup()
    yield s
    conn.close()


def put_raw(store: SqliteStore, key: str, value: Any) -> None:
    """Write any JSON value, the way a damaged database row holds it."""
    cur = store.conn.execute("UPDATE store SET value = ? WHERE prefix = ? AND key = ?",
                             (json.dumps(value), ".".join(NAMESPACE), key))
    assert cur.rowcount == 1


def pause_once(store, keyring):
    model = scripted(calls(("transfer_money", {"amount": 250, "to": "Bob"}, "c1")), AIMessage("done"))
    from langchain.agents import create_agent

    graph = create_agent(model, [transfer_money], checkpointer=InMemorySaver(), store=store,
                         middleware=[ApprovalMiddleware({"transfer_money": InAppApprover(keyring=keyring)})])
    r = graph.invoke({"messages": [("user", "pay bob")]}, CFG, context={"user": ALICE})
    assert len(interrupts(r)) == 1
    [item] = store.search(NAMESPACE)
    return graph, r, item


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name,how", DAMAGE, ids=[d[0] for d in DAMAGE])
async def test_damaged_record_asks_again_never_crashes(store, keyring, name, how, mode):
    graph, r, item = pause_once(store, keyring)
    put_raw(store, item.key, how(item.value))
    approvals = ApprovalStore(store, keyring)
    with pytest.raises(E.ApprovalRecordError) as exc:
        approvals.get(item.key) if mode == "sync" else await approvals.aget(item.key)
    assert MARK not in str(exc.value) and "seven" not in str(exc.value)
    assert isinstance(exc.value, E.ApprovalError)
    # the resumer's listing skips it rather than failing on it
    assert (approvals.due(10**12) if mode == "sync" else await approvals.adue(10**12)) == []
    # the user's answer to the damaged request approves nothing: the guard asks again
    resume = Command(resume=answer(r, transfer_money={"decision": "approve"}))
    r2 = graph.invoke(resume, CFG, context={"user": ALICE}) if mode == "sync" else \
        await graph.ainvoke(resume, CFG, context={"user": ALICE})
    assert SIDE_EFFECTS == []
    [pause] = interrupts(r2)
    assert pause.value["type"] == "tool_approval" and pause.value["approval_id"] != interrupts(r)[0].value[
        "approval_id"]
    assert MARK not in repr(r2)
    # answering the new request runs the call once
    r3 = graph.invoke(Command(resume=answer(r2, transfer_money={"decision": "approve"})), CFG,
                      context={"user": ALICE})
    assert [m.content for m in tool_messages(r3)][-1] == "transferred 250 to Bob"
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]


def test_error_names_the_fields_not_the_values():
    with pytest.raises(E.ApprovalRecordError) as exc:
        parse_record({"approval_id": "k.1", "kind": "ciba", "source": "s", "tool": "t", "user_key": "u",
                      "args_digest": "d", "created_at": MARK, "expires_at": 1, "polls": "seven"}, "k")
    assert str(exc.value) == "approval record 'k' is damaged (created_at, polls)"


def test_a_sealed_box_that_does_not_open_is_typed(store, keyring):
    _graph, _r, item = pause_once(store, keyring)
    approvals = ApprovalStore(store, keyring)
    rec = approvals.get(item.key).update(sealed={"kid": "k1", "n": "AAAA", "ct": "AAAA"})
    with pytest.raises(E.ApprovalRecordError, match="cannot be opened"):
        approvals.open(rec)
