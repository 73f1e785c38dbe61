"""The remote resumer on a LangGraph server *with auth*: it authenticates as a trusted service
(client credentials), reads pending approvals through the store API, and resumes the run on
the user's behalf (act-as header), so the resumed tool still acts for the user who asked."""

from __future__ import annotations

import pathlib
import time

import httpx
import pytest
from langgraph_sdk import get_sync_client

from langchain_agent_auth.approval import CIBAApprover, RemoteResumer
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.identity.langgraph_auth import act_as_header
from langchain_agent_auth.oauth import ClientCredentialsAuth, OAuthClient
from tests.conftest import unavailable

pytestmark = [pytest.mark.langgraph_server]
SERVER_DIR = pathlib.Path(__file__).parent / "server"
KEYS = f"k1:{Keyring.new_key()}"
API = "urn:example:api"


@pytest.fixture(scope="module")
def idp():
    from langchain_agent_auth.devserver import LocalProvider

    with LocalProvider(ciba_interval=1) as provider:
        yield provider


@pytest.fixture(scope="module")
def resumer_client(idp):
    return idp.add_client(grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_basic")


@pytest.fixture(scope="module")
def server(idp, resumer_client):
    from tests.support.langgraph_server import LangGraphDevServer, langgraph_cli

    if langgraph_cli() is None:
        unavailable("langgraph-cli[inmem] is not installed", "AGENT_AUTH_REQUIRE_INTEROP")
    srv = LangGraphDevServer(SERVER_DIR / "langgraph_auth.json", env={
        "IDP_ISSUER": idp.issuer, "CIBA_CLIENT_ID": idp.client_id, "CIBA_CLIENT_SECRET": idp.client_secret,
        "API_RESOURCE": API, "RESUMER_CLIENT_ID": resumer_client["client_id"], "AGENT_AUTH_ENCRYPTION_KEYS": KEYS})
    yield srv
    srv.stop()


def user_client(server, idp, user: str):
    token = idp.login(user, scope="openid api:read", resource=API)["access_token"]
    return get_sync_client(url=server.url, headers={"Authorization": f"Bearer {token}"})


def service_auth(idp, resumer_client) -> ClientCredentialsAuth:
    oauth = OAuthClient(idp.issuer, resumer_client["client_id"], resumer_client["client_secret"])
    return ClientCredentialsAuth(oauth, scope="api:read", resource=API)


def test_resumer_acts_for_the_user_on_a_server_with_auth(server, idp, resumer_client):
    alice = user_client(server, idp, "alice")
    thread = alice.threads.create()
    alice.runs.wait(thread["thread_id"], "approval", input={"messages": [{"role": "user", "content": "pay"}]})
    (pause,) = alice.threads.get_state(thread["thread_id"])["interrupts"]
    assert pause["value"]["type"] == "approval_pending"

    approver = CIBAApprover(OAuthClient(idp.issuer, idp.client_id, idp.client_secret), scope="openid api:write",
                            resource=API, keyring=Keyring.from_string(KEYS))
    resumer = RemoteResumer(server.url, approvers=[approver], auth=service_auth(idp, resumer_client))
    idp.approve(idp.wait_for_pending("alice")[-1]["id"])
    for _ in range(40):
        report = resumer.run_once()
        if report.resumed_items:
            break
        time.sleep(0.25)
    assert report.resumed_threads == [thread["thread_id"]]
    state = alice.threads.get_state(thread["thread_id"])
    tool_messages = [m["content"] for m in state["values"]["messages"] if m["type"] == "tool"]
    assert tool_messages == ["sent 30 to Bob for alice"] and not state["interrupts"]


def test_only_trusted_services_may_act_for_a_user(server, idp, resumer_client):
    bob_token = idp.login("bob", scope="openid api:read", resource=API)["access_token"]
    headers = {"Authorization": f"Bearer {bob_token}", **act_as_header({"subject": "alice"})}
    assert httpx.post(f"{server.url}/threads/search", json={}, headers=headers, timeout=10).status_code == 403
    # the service without act-as sees the store; a user cannot read another user's namespace
    service = service_auth(idp, resumer_client)
    ok = httpx.post(f"{server.url}/store/items/search", json={"namespace_prefix": ["agent_auth"]}, auth=service,
                    timeout=10)
    assert ok.status_code == 200
    bob = httpx.post(f"{server.url}/store/items/search", json={"namespace_prefix": ["agent_auth"]},
                     headers={"Authorization": f"Bearer {bob_token}"}, timeout=10)
    assert bob.status_code == 200 and bob.json()["items"] == []
