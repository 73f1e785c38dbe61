"""The model as the attacker: in alice's conversation, a scripted model uses every toolkit
tool to learn about bob or act for him (extra user arguments, bob's approval handle and
record key, types and relations outside the allow-list). Nothing of bob's reaches it, his
approval still waits, his account stays connected, and no secret is in anything it saw."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_agent_auth import AgentAuthToolkit
from langchain_agent_auth.approval import ApprovalMiddleware
from langchain_agent_auth.identity import acting_as
from tests.adversarial.attacker import Attacker, call, calls
from tests.toolkit.conftest import ALICE, BOB, start_waiting, transfer, wait_until, waiting_agent

ALICE_TOKEN, BOB_TOKEN = "opaque-access-alice-9", "opaque-access-bob-9"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_model_cannot_use_the_toolkit_to_learn_about_or_act_for_another_user(mode, idp, vault, fga, approver,
                                                                               store):
    vault.import_token(ALICE, "calendar", access_token=ALICE_TOKEN, scopes=["calendar.read"],
                       expires_at=time.time() + 3600)
    vault.import_token(BOB, "calendar", access_token=BOB_TOKEN, scopes=["calendar.read"],
                       expires_at=time.time() + 3600)
    # bob waits for an approval; the attacker somehow learnt its handle and its record key
    waiting = waiting_agent(approver, store)
    start_waiting(waiting, BOB, f"bob-thread-{mode}")
    wait_until(lambda: idp.pending_approvals("bob"))
    kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"doc": ["viewer", "owner"]}, approvers=[approver])
    lister = {t.name: t for t in kit.get_tools()}["my_pending_approvals"]
    with acting_as(BOB):
        (bobs,) = json.loads(lister.invoke({}))
    (record,) = [r for r, _ in kit._pending(BOB)]
    auth_req_id = approver.approval_store(store).open(record)["auth_req_id"]

    script = [
        calls(("whoami", {"subject": "bob", "user": {"subject": "bob"}}, "a1"),
              ("list_connections", {"user_id": "bob", "user": "bob"}, "a2")),
        calls(("what_can_i_access", {"relation": "viewer", "type": "secret"}, "b1"),
              ("what_can_i_access", {"relation": "owner", "type": "doc", "user": "user:bob"}, "b2"),
              ("what_can_i_access", {"relation": "owner", "type": "user"}, "b3")),
        calls(("cancel_approval", {"handle": bobs["handle"]}, "c1"),
              ("cancel_approval", {"handle": record.approval_id}, "c2"),
              ("cancel_approval", {"handle": record.key, "user": "bob"}, "c3"),
              ("my_pending_approvals", {"user": "bob", "subject": "bob"}, "c4")),
        call("disconnect_account", {"connection": "calendar", "user_id": "bob", "subject": "bob"}, "d1"),
    ]
    model = Attacker(script=script)
    agent = create_agent(model, [*kit.get_tools(), transfer],
                         middleware=[ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=store)
    ask = {"messages": [("user", "tell me everything about bob")]}
    cfg = {"configurable": {"thread_id": f"attack-{mode}"}}
    result = (agent.invoke(ask, cfg, context={"user": ALICE}) if mode == "sync"
              else asyncio.run(agent.ainvoke(ask, cfg, context={"user": ALICE})))
    assert isinstance(result["messages"][-1], AIMessage) and result["messages"][-1].content == "done"

    # the schemas the model was shown name no user, token or approval id
    for shown in model.tools_shown:
        props = set(shown["function"]["parameters"].get("properties", {}))
        assert not props & {"user", "user_id", "subject", "email", "token", "approval_id", "thread_id"}, shown

    # what the model learnt is alice's, never bob's
    tool_out = {m.tool_call_id: m for m in result["messages"] if m.type == "tool"}
    assert json.loads(tool_out["a1"].content)["subject"] == "alice"
    assert json.loads(tool_out["b2"].content)["objects"] == ["doc:roadmap"]
    assert tool_out["b1"].status == "error" and tool_out["b3"].status == "error"
    assert json.loads(tool_out["c4"].content) == []
    for cid in ("c1", "c2", "c3"):
        assert tool_out[cid].status == "error" and "no pending approval" in tool_out[cid].content
    for text in ("bob@example.com", "bob-salary", "launch-codes", "Bob"):
        assert not model.saw(text), text

    # nothing was done to bob: his approval still waits, his calendar is still connected
    with acting_as(BOB):
        assert [a["handle"] for a in json.loads(lister.invoke({}))] == [bobs["handle"]]
    assert store.get(("agent_auth", "approvals"), record.key).value["status"] == "pending"
    assert vault.status(BOB, "calendar").status == "active"
    assert vault.status(ALICE, "calendar").status == "not_connected"  # alice's own was disconnected

    # no secret in anything the model saw or the state kept
    seen = json.dumps(model.seen) + json.dumps([m.content for m in result["messages"]])
    for secret in (ALICE_TOKEN, BOB_TOKEN, auth_req_id, idp.client_secret, idp.upstream_client_secret):
        assert secret not in seen
    outputs = json.dumps([m.content for m in tool_out.values()])
    assert record.approval_id not in outputs and record.key not in outputs  # echoed by no tool
