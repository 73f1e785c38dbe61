"""The toolkit's `langgraph_sdk.Auth` handler under a real `langgraph dev` server.

Tokens come from the independent node-oidc-provider (CIBA, approved through its admin hook);
the server verifies them with our JWTVerifier and the graph's tools see that user only.
"""

from __future__ import annotations

import pathlib
import threading
import time

import httpx
import pytest
from langgraph_sdk import get_client

from langchain_agent_auth.oauth import OAuthClient
from tests.conftest import unavailable
from tests.support.node_idp import AGENT, API

pytestmark = [pytest.mark.langgraph_server, pytest.mark.interop]
SERVER_DIR = pathlib.Path(__file__).parent / "server"


def user_token(node_idp, user: str) -> str:
    client = OAuthClient(node_idp.issuer, *AGENT)
    req = client.ciba_authorize(login_hint=user, scope="openid api:read", resource=API)

    def phone():
        for _ in range(100):
            pending = node_idp.pending(user)
            if pending:
                node_idp.approve(pending[-1]["auth_req_id"])
                return
            time.sleep(0.05)

    threading.Thread(target=phone, daemon=True).start()
    return client.ciba_wait(req).access_token


@pytest.fixture(scope="module")
def server(node_idp):
    from tests.support.langgraph_server import LangGraphDevServer, langgraph_cli

    if langgraph_cli() is None:
        unavailable("langgraph-cli[inmem] is not installed", "AGENT_AUTH_REQUIRE_INTEROP")
    srv = LangGraphDevServer(SERVER_DIR / "langgraph.json",
                             env={"TEST_ISSUER": node_idp.issuer, "TEST_AUDIENCE": API})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tokens(node_idp):
    return {"alice": user_token(node_idp, "alice"), "bob": user_token(node_idp, "bob")}


def sdk(server, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return get_client(url=server.url, headers=headers)


async def run_whoami(client, content: str) -> tuple[str, dict]:
    thread = await client.threads.create()
    state = await client.runs.wait(thread["thread_id"], "whoami",
                                   input={"messages": [{"role": "human", "content": content}]})
    return thread["thread_id"], state


async def test_the_graph_acts_for_the_authenticated_user(server, tokens):
    _, state = await run_whoami(sdk(server, tokens["alice"]), "")
    assert state["user"]["subject"] == "alice" and state["user"]["source"] == "langgraph_server"
    assert state["messages"][-1]["content"] == "acting for alice"
    assert tokens["alice"] not in str(state)


async def test_a_model_claiming_another_user_is_refused(server, tokens):
    _, state = await run_whoami(sdk(server, tokens["alice"]), "bob")
    last = state["messages"][-1]
    assert last["status"] == "error" and "cannot act for another user" in last["content"]


async def test_threads_are_scoped_to_their_owner(server, tokens):
    thread_id, _ = await run_whoami(sdk(server, tokens["alice"]), "")
    with pytest.raises(httpx.HTTPStatusError) as info:
        await sdk(server, tokens["bob"]).threads.get(thread_id)
    assert info.value.response.status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer garbage", "Basic YWxpY2U6cGFzcw==", "Bearer " + "a" * 100_000])
def test_requests_without_a_valid_token_get_401(server, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.post(f"{server.url}/threads", json={}, headers=headers, timeout=10)
    assert response.status_code in (401, 431) and "Traceback" not in response.text


async def test_another_users_token_cannot_read_resume_or_continue_a_paused_thread(server, tokens):
    alice, bob = sdk(server, tokens["alice"]), sdk(server, tokens["bob"])
    thread = await alice.threads.create()
    thread_id = thread["thread_id"]
    await alice.runs.wait(thread_id, "pay", input={"messages": [{"role": "human", "content": "pay eve"}]})
    before = await alice.threads.get_state(thread_id)
    (pause,) = before["interrupts"]
    assert pause["value"]["type"] == "tool_approval" and before["values"]["user"]["subject"] == "alice"
    approve = {pause["id"]: {"approval_id": pause["value"]["approval_id"], "decision": "approve"}}
    attempts = [
        bob.threads.get_state(thread_id),
        bob.runs.wait(thread_id, "pay", command={"resume": approve}),
        bob.runs.wait(thread_id, "pay", input={"messages": [{"role": "human", "content": "pay me"}]}),
        bob.runs.wait(thread_id, "pay", input=None),
    ]
    for attempt in attempts:
        with pytest.raises(httpx.HTTPStatusError) as info:
            await attempt
        assert info.value.response.status_code == 404
    after = await alice.threads.get_state(thread_id)
    assert after["interrupts"] == before["interrupts"] and after["values"] == before["values"]
    state = await alice.runs.wait(thread_id, "pay", command={"resume": approve})
    sent = [m["content"] for m in state["messages"] if m["type"] == "tool"]
    assert sent == ["alice sent 30 to Eve"] and state["messages"][-1]["content"] == "all done"
