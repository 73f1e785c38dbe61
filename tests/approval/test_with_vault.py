"""The approval pillar with the vault pillar: one tool needs both an approval (CIBA) and a
connected account; one resumer (approvers + the vault's ConnectPendingSource) resumes the
thread after each, and the tool runs once with both credentials."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth.approval import ApprovalMiddleware, ApprovalResumer, CIBAApprover, get_approval_token
from langchain_agent_auth.vault import (
    Connection,
    ConnectPendingSource,
    TokenVault,
    VaultCallback,
    VaultMiddleware,
    vault_auth,
)
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import ALICE, SIDE_EFFECTS
from tests.support.demo_upstream import CLIENT_ID, CLIENT_SECRET, browse_upstream
from tests.vault.graphs import agent

CFG = {"configurable": {"thread_id": "both"}}


@pytest.fixture
def upstream(demo_upstream):
    demo_upstream.reset()
    return demo_upstream


@pytest.fixture
def store(tmp_path) -> Iterator[SqliteStore]:
    conn = sqlite3.connect(str(tmp_path / "s.sqlite"), check_same_thread=False, isolation_level=None)
    s = SqliteStore(conn)
    s.setup()
    yield s
    conn.close()


@pytest.mark.parametrize("order", ["approval-first", "vault-first"])
def test_one_resumer_for_approvals_and_connected_accounts(upstream, store, keyring, order):
    conn = Connection("calendar", issuer=upstream.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                      redirect_uri=upstream.redirect_uri, scopes=["calendar.write"], timeout=1.0)
    vault = TokenVault([conn], store=store, keyring=keyring)
    clock = Clock(time.time())
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)

    @tool
    def create_event(title: str) -> str:
        """Create an event in the user's calendar (needs approval and the calendar account)."""
        assert get_approval_token(required=True).access_token in idp.tokens
        with httpx.Client(auth=vault_auth(), timeout=5) as http:
            r = http.post(f"{upstream.api_url}/events", json={"title": title, "start": "09:00"})
            r.raise_for_status()
        SIDE_EFFECTS.append(("create_event", {"title": title}))
        return json.dumps(r.json())

    approval = ApprovalMiddleware({"create_event": ciba})
    vault_mw = VaultMiddleware(vault, {"create_event": "calendar"})
    middleware = [approval, vault_mw] if order == "approval-first" else [vault_mw, approval]
    graph = agent([create_event], middleware, InMemorySaver())
    graph = graph.with_config({})  # same compiled graph; the store comes from the approver/vault
    ciba.store = store
    r = graph.invoke({"messages": [HumanMessage(json.dumps({"tool": "create_event", "args": {"title": "standup"}}))]},
                     CFG, context={"user": ALICE})
    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: ALICE)
    resumer = ApprovalResumer(graph, approvers=[ciba], sources=[ConnectPendingSource(vault)], clock=clock,
                              store=store)
    seen = []
    for _ in range(6):
        state = graph.get_state(CFG)
        if not state.interrupts:
            break
        (pause,) = state.interrupts
        seen.append(pause.value["type"])
        if pause.value["type"] == "connect_account":
            browse_upstream(pause.value["authorize_url"], "alice")
        else:
            idp.approve()
            clock.advance(1)
        resumer.run_once()
    assert not graph.get_state(CFG).interrupts
    expected = ["approval_pending", "connect_account"] if order == "approval-first" else \
        ["connect_account", "approval_pending"]
    assert seen == expected
    assert SIDE_EFFECTS == [("create_event", {"title": "standup"})]  # once, with both credentials
    assert idp.hits["/bc-authorize"] == 1
    assert r  # the first run paused
