"""The vault inside real agent graphs with checkpointers: pause, connect, resume, refresh, revoke."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from langchain_agent_auth.vault import VaultMiddleware, vault_tool_node, with_vault
from langchain_agent_auth.vault._integrations import VaultGuard
from tests.support.demo_upstream import CLIENT_SECRET, browse_upstream
from tests.vault.conftest import ALICE, BOB, connect
from tests.vault.graphs import agent, ask, calendar_tools, hand_built_graph, interrupts, last_tool_message


def cfg(thread: str) -> dict:
    return {"configurable": {"thread_id": thread}}


def install_callback(upstream, vault, user):
    from langchain_agent_auth.vault import VaultCallback

    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: user)


@pytest.fixture
def saver(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "checkpoints.sqlite"), check_same_thread=False)
    yield SqliteSaver(conn), tmp_path / "checkpoints.sqlite"
    conn.close()


def test_agent_full_cycle_with_sqlite_checkpointer(vault, upstream, saver, caplog):
    """connect -> call -> expire -> refresh -> revoke -> reconnect, inside create_agent."""
    caplog.set_level(logging.DEBUG)
    checkpointer, db_path = saver
    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]],
                  [VaultMiddleware(vault, {"list_events": ("calendar", ["calendar.read"])})], checkpointer)
    ctx = {"user": ALICE}
    payloads = []

    # 1. not connected: the graph pauses with connect_account
    result = graph.invoke({"messages": [ask("list_events", day="monday")]}, cfg("t1"), context=ctx)
    [payload] = interrupts(result)
    payloads.append(payload)
    assert payload["type"] == "connect_account" and payload["connection"] == "calendar"
    assert payload["status"] == "not_connected" and payload["missing_scopes"] == ["calendar.read"]
    assert payload["authorize_url"].startswith(upstream.issuer + "/authorize?")
    assert payload["tool_call_id"] and payload["expires_at"] and "response_schema" in payload

    # resuming before connecting pauses again (the resume value is never trusted)
    result = graph.invoke(Command(resume={"action": "connected"}), cfg("t1"), context=ctx)
    [again] = interrupts(result)
    payloads.append(again)
    assert again["authorize_url"] == payload["authorize_url"]  # same pending call, same link

    # 2. the user connects in a browser; the run resumes and the tool runs
    install_callback(upstream, vault, ALICE)
    page = browse_upstream(payload["authorize_url"], "alice")
    assert page.status_code == 200 and "connected" in page.text
    result = graph.invoke(Command(resume={"action": "connected"}), cfg("t1"), context=ctx)
    assert not interrupts(result)
    assert json.loads(last_tool_message(result).content)["owner"] == "alice"
    assert upstream.stats()["token:authorization_code"] == 1

    # 3. the upstream expires the token: one 401, one refresh, the call succeeds
    upstream.expire("alice")
    result = graph.invoke({"messages": [ask("list_events", day="tuesday")]}, cfg("t1"), context=ctx)
    assert not interrupts(result) and last_tool_message(result).status != "error"
    assert upstream.stats()["token:refresh_token"] == 1

    # 4. the user revokes the app at the provider: refresh fails -> pause needs_reauthorization
    upstream.revoke_user("alice")
    result = graph.invoke({"messages": [ask("list_events", day="wednesday")]}, cfg("t1"), context=ctx)
    [payload] = interrupts(result)
    payloads.append(payload)
    assert payload["status"] == "needs_reauthorization" and payload["authorize_url"]
    assert [c.status for c in vault.connections(ALICE)] == ["needs_reauthorization"]

    # 5. reconnect and resume
    browse_upstream(payload["authorize_url"], "alice")
    result = graph.invoke(Command(resume={}), cfg("t1"), context=ctx)
    assert json.loads(last_tool_message(result).content)["owner"] == "alice"

    # 6. revoke through the vault: the next call pauses again
    assert vault.revoke(ALICE, "calendar").upstream_revoked
    result = graph.invoke({"messages": [ask("list_events", day="friday")]}, cfg("t1"), context=ctx)
    payloads.append(interrupts(result)[0])
    assert payloads[-1]["status"] == "not_connected"

    # No secret anywhere: checkpoint DB (and WAL), state, payloads, messages, logs.
    state = graph.get_state(cfg("t1"))
    secrets_ = [*upstream.issued(), CLIENT_SECRET]
    assert len(secrets_) > 6
    blobs = {
        "checkpoint db": b"".join(p.read_bytes() for p in db_path.parent.glob("checkpoints.sqlite*")),
        "state": repr(state).encode() + json.dumps(state.values, default=repr).encode(),
        "payloads": json.dumps(payloads).encode(),
        "messages": json.dumps([m.model_dump() for m in state.values["messages"]], default=repr).encode(),
        "logs": caplog.text.encode() + repr([r.__dict__ for r in caplog.records]).encode(),
    }
    for where, blob in blobs.items():
        for secret in secrets_:
            assert secret.encode() not in blob, f"a token leaked into the {where}"
    assert "vault:" in caplog.text  # the vault did log, just nothing secret


async def test_async_agent_and_plain_client_refresh(vault, upstream):
    """ainvoke path; an async httpx tool; and a tool using the accessor + refresh_access_token."""
    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["alist_events"], tools["list_events_plain"]],
                  [VaultMiddleware(vault, {"alist_events": "calendar", "list_events_plain": "calendar"})],
                  InMemorySaver())
    ctx = {"user": ALICE}
    result = await graph.ainvoke({"messages": [ask("alist_events", day="monday")]}, cfg("a1"), context=ctx)
    [payload] = interrupts(result)
    install_callback(upstream, vault, ALICE)
    browse_upstream(payload["authorize_url"], "alice")
    result = await graph.ainvoke(Command(resume={}), cfg("a1"), context=ctx)
    assert json.loads(last_tool_message(result).content)["owner"] == "alice"

    upstream.expire("alice")
    result = await graph.ainvoke({"messages": [ask("list_events_plain", day="monday")]}, cfg("a1"), context=ctx)
    assert json.loads(last_tool_message(result).content)["owner"] == "alice"
    assert upstream.stats()["token:refresh_token"] == 1

    # Refreshing works but the API still refuses: one refresh, then a pause (not a loop).
    upstream.expire("alice")
    upstream.fail("/api/events", "unauthorized", "unauthorized")
    result = await graph.ainvoke({"messages": [ask("alist_events", day="monday")]}, cfg("a1"), context=ctx)
    [payload] = interrupts(result)
    assert payload["status"] == "needs_reauthorization"
    assert upstream.stats()["token:refresh_token"] == 2


@pytest.mark.parametrize("form", ["with_vault", "node"])
def test_hand_built_graph(vault, upstream, form, saver):
    checkpointer, _ = saver
    tools = calendar_tools(upstream.api_url)
    if form == "with_vault":
        node = __import__("langgraph.prebuilt", fromlist=["ToolNode"]).ToolNode(
            [with_vault(tools["create_event"], vault, connection="calendar", scopes=["calendar.write"])])
    else:
        node = vault_tool_node([tools["create_event"]], vault, {"create_event": ("calendar", ["calendar.write"])})
    graph = hand_built_graph(node, checkpointer)
    ctx = {"user": BOB}
    connect(vault, upstream, BOB, ["calendar.read"])  # connected, but without calendar.write
    result = graph.invoke({"messages": [ask("create_event", title="Lunch")]}, cfg("h1"), context=ctx)
    [payload] = interrupts(result)
    assert payload["status"] == "missing_scopes" and payload["missing_scopes"] == ["calendar.write"]
    assert "calendar.read" in payload["authorize_url"] and "calendar.write" in payload["authorize_url"]
    # incremental: until the user consents, the old grant still works
    assert vault.get_token(BOB, "calendar", ["calendar.read"]).scopes == ("calendar.read",)

    install_callback(upstream, vault, BOB)
    browse_upstream(payload["authorize_url"], "bob")
    result = graph.invoke(Command(resume={}), cfg("h1"), context=ctx)
    assert json.loads(last_tool_message(result).content) == {"created": "Lunch", "owner": "bob"}
    assert vault.get_token(BOB, "calendar", ["calendar.read"]).scopes == ("calendar.read", "calendar.write")


def test_cancel_resume_refuses_and_bad_resume_pauses_again(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    ctx = {"user": ALICE}
    result = graph.invoke({"messages": [ask("list_events", day="monday")]}, cfg("c1"), context=ctx)
    assert interrupts(result)
    # refused inside interrupt() (core.pause): nothing is recorded and the pause stays in place
    with pytest.raises(Exception, match="ConnectAccountResume"):
        graph.invoke(Command(resume={"action": "bogus", "token": "x"}), cfg("c1"), context=ctx)
    [still] = graph.get_state(cfg("c1")).interrupts
    assert still.value["type"] == "connect_account"
    result = graph.invoke(Command(resume={"action": "cancel"}), cfg("c1"), context=ctx)
    msg = last_tool_message(result)
    assert msg.status == "error" and "did not connect" in msg.content


def test_no_user_is_refused_not_paused(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    result = graph.invoke({"messages": [ask("list_events", day="monday")]}, cfg("n1"))
    assert not interrupts(result)
    msg = last_tool_message(result)
    assert msg.status == "error" and "don't know who the user is" in msg.content


def test_outside_a_graph_the_caller_gets_the_typed_error(vault, upstream):
    from langchain_agent_auth.core.errors import CredentialUnavailableError
    from langchain_agent_auth.identity import acting_as

    tools = calendar_tools(upstream.api_url)
    wrapped = with_vault(tools["list_events"], vault, connection="calendar")
    with acting_as(ALICE), pytest.raises(CredentialUnavailableError) as exc:
        wrapped.invoke({"day": "monday"})
    assert exc.value.status == "not_connected"
    connect(vault, upstream, ALICE)
    with acting_as(ALICE):  # sync invoke works (peers: wrappers are async-only)
        assert json.loads(wrapped.invoke({"day": "monday"}))["owner"] == "alice"


def test_unknown_connection_fails_at_configuration_time(vault, upstream):
    from langchain_agent_auth.core.errors import ConnectionNotFoundError

    tools = calendar_tools(upstream.api_url)
    with pytest.raises(ConnectionNotFoundError, match=r"'github'.*declared: calendar"):
        with_vault(tools["list_events"], vault, connection="github")
    with pytest.raises(ConnectionNotFoundError):
        VaultMiddleware(vault, {"list_events": "github"})
    with pytest.raises(ConnectionNotFoundError):
        vault_tool_node([tools["list_events"]], vault, {"list_events": ("github", ["repo"])})
    with pytest.raises(ConnectionNotFoundError):
        VaultGuard(vault, "")


def test_a_resumer_driven_by_pending_connects(vault, upstream):
    """What the approval pillar's resumer does with ConnectPendingSource: find finished flows in
    the store, match the pause by connect_id, resume as the stored user, settle."""
    import time

    from langchain_agent_auth.vault import ConnectPendingSource, VaultCallback

    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, cfg("r1"), context={"user": ALICE})
    [payload] = interrupts(result)
    source = ConnectPendingSource(vault)
    assert source.due(time.time(), 10) == []  # nothing finished yet

    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: ALICE)
    browse_upstream(payload["authorize_url"], "alice")  # the app's callback, another request
    [item] = source.due(time.time(), 10)
    assert (item.thread_id, item.ref, item.interrupt_type) == ("r1", payload["connect_id"], "connect_account")
    ready = source.check(item, time.time())
    state = graph.get_state(cfg(item.thread_id))
    [pending] = [i for i in state.interrupts if i.value.get(item.ref_field) == item.ref]
    result = graph.invoke(Command(resume={pending.id: ready.resume}), cfg(item.thread_id), context=item.context)
    assert json.loads(last_tool_message(result).content)["owner"] == "alice"
    source.settle(item, True, time.time(), None)
    assert source.due(time.time(), 10) == []


def test_parallel_calls_waiting_for_one_account_all_resume(vault, upstream):
    """Two tool calls in one AI message both pause; connecting once completes both flows."""
    import time

    from langchain_core.messages import HumanMessage

    from langchain_agent_auth.vault import ConnectPendingSource

    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    calls = [{"tool": "list_events", "args": {"day": d}} for d in ("mon", "tue")]
    result = graph.invoke({"messages": [HumanMessage(json.dumps(calls))]}, cfg("p2"), context={"user": ALICE})
    pauses = interrupts(result)
    assert len(pauses) == 2 and len({p["connect_id"] for p in pauses}) == 2
    install_callback(upstream, vault, ALICE)
    browse_upstream(pauses[0]["authorize_url"], "alice")  # the user follows one link only
    items = ConnectPendingSource(vault).due(time.time(), 10)
    assert {i.ref for i in items} == {p["connect_id"] for p in pauses}
    state = graph.get_state(cfg("p2"))
    resume = {i.id: {"action": "connected"} for i in state.interrupts}
    result = graph.invoke(Command(resume=resume), cfg("p2"), context={"user": ALICE})
    outs = [m for m in result["messages"] if getattr(m, "type", "") == "tool"]
    assert len(outs) == 2 and all(json.loads(m.content)["owner"] == "alice" for m in outs)


def test_pause_survives_a_restart(upstream, tmp_path, monkeypatch):
    """Pending connect state is in the SQLite store and the pause in the SQLite checkpointer:
    a new process (new vault, new graph objects) finishes the flow and resumes the thread."""
    from langchain_agent_auth.vault import TokenVault
    from tests.vault.conftest import calendar_connection

    monkeypatch.delenv("AGENT_AUTH_ENCRYPTION_KEYS", raising=False)
    data = tmp_path / "data"
    tools = calendar_tools(upstream.api_url)

    def boot():
        vault = TokenVault([calendar_connection(upstream)], data_dir=data)
        conn = sqlite3.connect(str(tmp_path / "cp.sqlite"), check_same_thread=False)
        graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})],
                      SqliteSaver(conn))
        return vault, graph, conn

    vault, graph, conn = boot()
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, cfg("r"), context={"user": ALICE})
    [payload] = interrupts(result)
    conn.close()
    del vault, graph

    vault, graph, conn = boot()  # "restart"
    install_callback(upstream, vault, ALICE)
    browse_upstream(payload["authorize_url"], "alice")
    result = graph.invoke(Command(resume={}), cfg("r"), context={"user": ALICE})
    assert json.loads(last_tool_message(result).content)["owner"] == "alice"
    conn.close()
