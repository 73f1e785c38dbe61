"""Approvals against the local identity provider (``agent-auth dev``): a bank transfer the
demo API only executes when the approval's token carries the matching
``payment_initiation``, once; denial with a reason; request counters.

Skipped when the devserver package is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.approval import ApprovalMiddleware, ApprovalResumer, CIBAApprover, get_approval_token
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.oauth import OAuthClient
from tests.approval.helpers import calls, interrupts, scripted, tool_messages

ALICE = UserIdentity(subject="alice")
API_CALLS: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def local_idp() -> Iterator[Any]:
    devserver = pytest.importorskip("langchain_agent_auth.devserver", reason="devserver not merged yet")
    with devserver.LocalProvider(ciba_interval=1) as idp:
        yield idp


def payment(tool_name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    amount = Decimal(str(args["amount"])).quantize(Decimal("0.01"))
    return [{"type": "payment_initiation", "instructedAmount": {"amount": str(amount), "currency": "EUR"},
             "creditorName": args["to"]}]


def bank_tool(local_idp):
    @tool
    def transfer(amount: int, to: str) -> str:
        """Transfer money from the user's bank account."""
        token = get_approval_token(required=True)
        body = {"amount": f"{amount}.00", "currency": "EUR", "creditorName": to}
        r = httpx.post(f"{local_idp.api_url}/bank/transfers", json=body,
                       headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
        # the same approval cannot pay someone else
        other = httpx.post(f"{local_idp.api_url}/bank/transfers", json={**body, "creditorName": "Mallory"},
                           headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
        API_CALLS.append({"status": r.status_code, "other": other.status_code})
        return f"transfer {r.json().get('status', r.status_code)}"

    return transfer


def make(local_idp, keyring, amount=250):
    client = OAuthClient(local_idp.issuer, local_idp.client_id, local_idp.client_secret)
    approver = CIBAApprover(client, scope="openid", audience=local_idp.api_audience, authorization_details=payment,
                            keyring=keyring)
    transfer = bank_tool(local_idp)
    agent = create_agent(scripted(calls(("transfer", {"amount": amount, "to": "Bob"}, "c1")), AIMessage("done")),
                         [transfer], middleware=[ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=InMemoryStore())
    return approver, agent


def wait_done(resumer, agent, cfg) -> None:
    import time

    for _ in range(60):
        resumer.run_once()
        if not agent.get_state(cfg).interrupts:
            return
        time.sleep(0.25)
    raise AssertionError("not resumed")


def test_what_is_approved_is_what_the_api_executes(local_idp, keyring):
    API_CALLS.clear()
    local_idp.reset_stats()
    approver, agent = make(local_idp, keyring)
    cfg = {"configurable": {"thread_id": "bank"}}
    r = agent.invoke({"messages": [("user", "pay Bob 250")]}, cfg, context={"user": ALICE})
    (p,) = interrupts(r)
    (pending,) = local_idp.wait_for_pending("alice")
    assert pending["binding_message"] == p.value["binding_message"]
    local_idp.approve(pending["id"])
    wait_done(ApprovalResumer(agent, approvers=[approver]), agent, cfg)
    assert tool_messages(agent.get_state(cfg).values)[0].content == "transfer executed"
    assert API_CALLS == [{"status": 201, "other": 403}]
    stats = local_idp.stats()
    assert stats["ciba"]["bc_authorize"] == 1 and stats["ciba"].get("slow_down", 0) == 0
    assert json.dumps(stats)  # counters are plain data


def test_denial_with_a_reason(local_idp, keyring):
    API_CALLS.clear()
    approver, agent = make(local_idp, keyring, amount=5)
    cfg = {"configurable": {"thread_id": "bank-deny"}}
    agent.invoke({"messages": [("user", "pay")]}, cfg, context={"user": ALICE})
    (pending,) = local_idp.wait_for_pending("alice")
    local_idp.deny(pending["id"], "not this one")
    wait_done(ApprovalResumer(agent, approvers=[approver]), agent, cfg)
    (msg,) = tool_messages(agent.get_state(cfg).values)
    assert "denied" in msg.content and "not this one" in msg.content and API_CALLS == []
