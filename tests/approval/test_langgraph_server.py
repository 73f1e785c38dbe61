"""The remote resumer against a real `langgraph dev` server: a guarded tool pauses on the
server, the user approves on node-oidc-provider, RemoteResumer (langgraph-sdk) finds the
approval in the server's store and completes the run with the thread's assistant."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time

import pytest
from langgraph_sdk import get_client, get_sync_client

from langchain_agent_auth.approval import CIBAApprover, LangGraphServerStore, RemoteResumer
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.oauth import OAuthClient
from tests.conftest import unavailable
from tests.support.node_idp import AGENT, API

pytestmark = [pytest.mark.langgraph_server, pytest.mark.interop]
SERVER_DIR = pathlib.Path(__file__).parent / "server"
KEYS = f"k1:{Keyring.new_key()}"
USER = {"user": {"subject": "alice", "email": "alice@example.com"}}


@pytest.fixture(scope="module")
def server(node_idp):
    from tests.support.langgraph_server import LangGraphDevServer, langgraph_cli

    if langgraph_cli() is None:
        unavailable("langgraph-cli[inmem] is not installed", "AGENT_AUTH_REQUIRE_INTEROP")
    srv = LangGraphDevServer(SERVER_DIR / "langgraph.json", env={
        "NODE_ISSUER": node_idp.issuer, "CIBA_CLIENT_ID": AGENT[0], "CIBA_CLIENT_SECRET": AGENT[1],
        "API_RESOURCE": API, "AGENT_AUTH_ENCRYPTION_KEYS": KEYS})
    yield srv
    srv.stop()


@pytest.fixture
def approver(node_idp):
    """The same approver configuration the server's graph uses, on the resumer's side."""
    return CIBAApprover(OAuthClient(node_idp.issuer, *AGENT), scope="openid api:write", resource=API,
                        keyring=Keyring.from_string(KEYS))


def approve_next(node_idp, user: str = "alice") -> None:
    def run() -> None:
        for _ in range(200):
            pending = node_idp.pending(user)
            if pending:
                node_idp.approve(pending[-1]["auth_req_id"])
                return
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)


def start_run(server) -> str:
    client = get_sync_client(url=server.url)
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], "approval", input={"messages": [{"role": "user", "content": "pay"}]},
                     context=USER)
    state = client.threads.get_state(thread["thread_id"])
    (pause,) = state["interrupts"]
    assert pause["value"]["type"] == "approval_pending" and pause["value"]["tool"] == "transfer"
    assert "auth_req_id" not in str(pause)
    return thread["thread_id"]


def test_remote_resumer_completes_the_run(server, node_idp, approver):
    thread_id = start_run(server)
    resumer = RemoteResumer(server.url, approvers=[approver])
    (item,) = resumer.sources[0].due(time.time() + 5, 10)  # read through the server's store API
    assert item.thread_id == thread_id and item.assistant_id
    assert resumer.run_once().resumed_items == 0  # still pending: nothing resumed
    approve_next(node_idp)
    for _ in range(40):
        report = resumer.run_once()
        if report.resumed_items:
            break
        time.sleep(0.25)
    assert report.resumed_threads == [thread_id]
    state = get_sync_client(url=server.url).threads.get_state(thread_id)
    messages = state["values"]["messages"]
    assert messages[-1]["content"] == "all done" and not state["interrupts"]
    assert [m["content"] for m in messages if m["type"] == "tool"] == ["sent 12 to Bob with the approval token"]


async def test_async_remote_resumer(server, node_idp, approver):
    thread_id = start_run(server)
    resumer = RemoteResumer(client=get_client(url=server.url), sync_client=get_sync_client(url=server.url),
                            approvers=[approver])
    approve_next(node_idp)
    for _ in range(40):
        report = await resumer.arun_once()
        if report.resumed_items:
            break
        await asyncio.sleep(0.25)
    assert report.resumed_threads == [thread_id]
    state = await get_client(url=server.url).threads.get_state(thread_id)
    assert state["values"]["messages"][-1]["content"] == "all done"
    assert isinstance(resumer.sources[0].store, LangGraphServerStore)
