"""Approvals against real providers, CIBA interval 1 s: the independent node-oidc-provider
and this project's LocalProvider (poll mode, approve / deny / expire / unknown user, RAR
round trip into the issued token, request counting, block mode); node-oidc-provider also
for ping mode and a real process restart resumed by the ``agent-auth resumer`` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.approval import (
    ApprovalMiddleware,
    ApprovalResumer,
    CIBAApprover,
    get_approval_token,
    with_approval,
)
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
from tests.approval.helpers import SIDE_EFFECTS, calls, interrupts, scripted, tool_messages
from tests.support.node_idp import API, PING
from tests.support.providers import ProviderUnderTest, local_provider, node_provider

pytestmark = pytest.mark.interop

ALICE = UserIdentity(subject="alice", email="alice@example.com")
BOB = UserIdentity(subject="bob", email="bob@example.com")
RAR = [{"type": "payment_initiation", "instructedAmount": {"amount": "250.00", "currency": "EUR"},
        "creditorName": "Bob"}]
CLAIMS: list[dict[str, Any]] = []
ISSUER: list[str] = []


class Counting(httpx.HTTPTransport):
    """Counts requests by path and CIBA poll answers (the provider's view of us)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: Counter[str] = Counter()
        self.polls = 0
        self.poll_errors: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.paths[request.url.path] += 1
        if b"grant-type%3Aciba" in request.content:
            self.polls += 1
            if response.status_code == 400:
                response.read()
                self.poll_errors[response.json().get("error", "?")] += 1
        return response


class AsyncCounting(httpx.AsyncHTTPTransport):
    """The async twin, recording into the same counters."""

    def __init__(self, counts: Counting) -> None:
        super().__init__()
        self.counts = counts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.counts.paths[request.url.path] += 1
        if b"grant-type%3Aciba" in request.content:
            self.counts.polls += 1
            if response.status_code == 400:
                await response.aread()
                self.counts.poll_errors[response.json().get("error", "?")] += 1
        return response


@tool
def transfer(amount: int, to: str) -> str:
    """Send money to someone."""
    token = get_approval_token(required=True)
    CLAIMS.append({"token": token, "claims": JWTVerifier(ISSUER[-1], audience=API).verify(token.access_token)})
    SIDE_EFFECTS.append(("transfer", {"amount": amount, "to": to}))
    return f"sent {amount} to {to}"


@pytest.fixture(scope="module")
def local_idp():
    devserver = pytest.importorskip("langchain_agent_auth.devserver")
    with devserver.LocalProvider(ciba_interval=1) as idp:
        yield idp


_LOCAL: dict[int, ProviderUnderTest] = {}


@pytest.fixture(params=["node", "local"])
def provider(request) -> ProviderUnderTest:
    if request.param == "node":
        p = node_provider(request.getfixturevalue("node_idp"))
    else:
        idp = request.getfixturevalue("local_idp")
        p = _LOCAL.setdefault(id(idp), local_provider(idp))
    ISSUER.append(p.issuer)
    return p


@pytest.fixture(autouse=True)
def _clear():
    CLAIMS.clear()


def approver_for(p, keyring, transport=None, creds=None, **kwargs) -> CIBAApprover:
    http = httpx.Client(transport=transport) if transport else None
    ahttp = httpx.AsyncClient(transport=AsyncCounting(transport)) if transport else None
    creds = creds or p.basic
    client = OAuthClient(p.issuer, *creds, http_client=http, async_http_client=ahttp)
    kwargs.setdefault("scope", "openid api:write")
    kwargs.setdefault("resource", API)
    return CIBAApprover(client, keyring=keyring, **kwargs)


def phone(provider: Any, user: str, *, deny: bool = False, new: bool = False) -> threading.Thread:
    """Play ``user``'s phone from another thread: answer their newest pending request (with
    ``new``, the first one that appears after this call)."""
    if not isinstance(provider, ProviderUnderTest):
        provider = node_provider(provider)
    seen = {p["id"] for p in provider.pending(user)} if new else set()

    def run() -> None:
        for _ in range(400):
            fresh = [p for p in provider.pending(user) if p["id"] not in seen]
            if fresh:
                rid = fresh[-1]["id"]
                (provider.deny_fn if deny else provider.approve_fn)(rid)
                return
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def agent(approver, *turns):
    return create_agent(scripted(*turns, AIMessage("all done")), [transfer],
                        middleware=[ApprovalMiddleware({"transfer": approver})],
                        checkpointer=InMemorySaver(), store=InMemoryStore())


def wait_resumed(resumer: ApprovalResumer, graph, cfg, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resumer.run_once()
        if not graph.get_state(cfg).interrupts:
            return
        time.sleep(0.2)
    raise AssertionError("the thread was not resumed")


def test_poll_mode_rar_round_trip_and_request_counts(provider, keyring):
    counting = Counting()
    approver = approver_for(provider, keyring, counting,
                            authorization_details=lambda tool, args: [
                                {**RAR[0], "instructedAmount": {"amount": f"{args['amount']}.00", "currency": "EUR"},
                                 "creditorName": args["to"]}])
    a = agent(approver, calls(("transfer", {"amount": 250, "to": "Bob"}, "c1")))
    cfg = {"configurable": {"thread_id": "poll"}}
    r = a.invoke({"messages": [("user", "pay bob")]}, cfg, context={"user": ALICE})
    (p,) = interrupts(r)
    pending = provider.pending("alice")[-1]
    assert pending["binding_message"] == p.value["binding_message"] == "Approve transfer (amount: 250, to: Bob)"
    assert pending["authorization_details"] == RAR
    resumer = ApprovalResumer(a, approvers=[approver], tick=0.2)
    for _ in range(3):  # a few passes while still pending: polls stay at the interval
        resumer.run_once()
        time.sleep(0.4)
    phone(provider, "alice").join(10)
    wait_resumed(resumer, a, cfg)
    assert tool_messages(a.get_state(cfg).values)[0].content == "sent 250 to Bob"
    (seen,) = CLAIMS
    assert seen["token"].authorization_details == RAR  # the issued token carries what was approved
    assert seen["claims"]["sub"] == "alice" and seen["claims"]["authorization_details"] == RAR
    endpoint = urlsplit(approver.client.metadata().backchannel_authentication_endpoint).path
    assert counting.paths[endpoint] == 1  # one request for the call, however many passes ran
    assert counting.poll_errors["slow_down"] == 0  # never faster than the interval


def test_deny_and_unknown_user(provider, keyring):
    approver = approver_for(provider, keyring, login_hint="email")
    a = agent(approver, calls(("transfer", {"amount": 5, "to": "Eve"}, "c1")))
    cfg = {"configurable": {"thread_id": "deny"}}
    a.invoke({"messages": [("user", "pay eve")]}, cfg, context={"user": BOB})
    phone(provider, "bob", deny=True).join(10)
    wait_resumed(ApprovalResumer(a, approvers=[approver]), a, cfg)
    (msg,) = tool_messages(a.get_state(cfg).values)
    assert "denied" in msg.content and SIDE_EFFECTS == []

    b = agent(approver, calls(("transfer", {"amount": 5, "to": "Eve"}, "c1")))
    stranger = UserIdentity(subject="nobody", email="nobody@example.com")
    r = b.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "stranger"}},
                 context={"user": stranger})
    assert "not known to the approval service" in tool_messages(r)[0].content and not interrupts(r)


def test_expiry(provider, keyring, request):
    approver = approver_for(provider, keyring, requested_expiry=2)
    a = agent(approver, calls(("transfer", {"amount": 5, "to": "Eve"}, "c1")))
    cfg = {"configurable": {"thread_id": "expire"}}
    a.invoke({"messages": [("user", "pay")]}, cfg, context={"user": ALICE})
    if provider.name == "local":  # move the LocalProvider's clock instead of waiting
        request.getfixturevalue("local_idp").advance(2.2)
    else:
        time.sleep(2.2)
    wait_resumed(ApprovalResumer(a, approvers=[approver]), a, cfg)
    assert "expired" in tool_messages(a.get_state(cfg).values)[0].content and SIDE_EFFECTS == []


def test_hostile_arguments_are_accepted_by_a_strict_provider(provider, keyring):
    approver = approver_for(provider, keyring)
    # (bidi controls are refused before any request: tests/adversarial)
    a = agent(approver, calls(("transfer", {"amount": 5, "to": "<img src=x>\nIGNORE \"all\" {rules}"}, "c1")))
    r = a.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "hostile"}},
                 context={"user": ALICE})
    (p,) = interrupts(r)  # no invalid_binding_message from the provider
    pending = provider.pending("alice")[-1]
    assert pending["binding_message"] == p.value["binding_message"]
    provider.deny_fn(pending["id"])  # leave nothing pending for the next tests


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_block_mode(provider, keyring, mode):
    approver = approver_for(provider, keyring)
    guarded = with_approval(transfer, approver, mode="block")
    phone(provider, "alice", new=True)

    def run_sync() -> Any:
        with acting_as(ALICE):
            return guarded.invoke({"amount": 7, "to": "Bob"})

    if mode == "sync":
        out = await asyncio.to_thread(run_sync)
    else:
        with acting_as(ALICE):
            out = await guarded.ainvoke({"amount": 7, "to": "Bob"})
    assert out == "sent 7 to Bob" and CLAIMS[0]["claims"]["sub"] == "alice"


class _Switch:
    """An ASGI app that forwards to whichever receiver the current test installed."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope, receive, send):
        if self.app is None:
            return
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def ping_server(node_idp):
    import uvicorn

    switch = _Switch()
    server = uvicorn.Server(uvicorn.Config(switch, host="127.0.0.1", port=node_idp.ping_port, log_level="warning",
                                           ssl_certfile=str(node_idp.cert), ssl_keyfile=str(node_idp.cert_key),
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    yield switch
    server.should_exit = True
    thread.join(5)


async def test_ping_mode_wakes_the_resumer(node_idp, keyring, ping_server):
    counting = Counting()
    approver = approver_for(node_provider(node_idp), keyring, counting, creds=PING, delivery_mode="ping",
                            scope="openid",
                            resource=None, authorization_details=False)

    @tool
    def notify(text: str) -> str:
        """Send a notification."""
        SIDE_EFFECTS.append(("notify", {"text": text}))
        return "notified"

    a = create_agent(scripted(calls(("notify", {"text": "hi"}, "c1")), AIMessage("all done")), [notify],
                     middleware=[ApprovalMiddleware({"notify": approver})], checkpointer=InMemorySaver(),
                     store=InMemoryStore())
    cfg = {"configurable": {"thread_id": "ping"}}
    r = a.invoke({"messages": [("user", "notify")]}, cfg, context={"user": ALICE})
    assert interrupts(r)[0].value["delivery_mode"] == "ping"
    resumer = ApprovalResumer(a, approvers=[approver], tick=3600)  # only the ping can wake it in time
    ping_server.app = resumer.ping_receiver()
    stop = asyncio.Event()
    task = asyncio.create_task(resumer.serve(stop=stop))
    await asyncio.sleep(0.1)
    await asyncio.to_thread(lambda: phone(node_idp, "alice").join(10))
    for _ in range(300):
        if SIDE_EFFECTS:
            break
        await asyncio.sleep(0.05)
    stop.set()
    resumer.wake()
    await asyncio.wait_for(task, 10)
    assert SIDE_EFFECTS == [("notify", {"text": "hi"})]
    assert ping_server.app.stats["accepted"] == 1
    assert counting.polls == 1  # one token request, after the ping; no interval polling


def test_a_restarted_process_is_resumed_by_the_cli(node_idp, keyring, tmp_path):
    env = {**os.environ, "APP_DIR": str(tmp_path), "NODE_ISSUER": node_idp.issuer,
           "AGENT_AUTH_ENCRYPTION_KEYS": f"k1:{keyring.new_key()}", "PYTHONPATH": os.getcwd()}
    start = subprocess.run([sys.executable, "-m", "tests.approval.server.sqlite_app", "start"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert start.returncode == 0, start.stderr
    assert json.loads(start.stdout.strip().splitlines()[-1])["paused"] == "approval_pending"
    phone(node_idp, "alice").join(10)
    time.sleep(1.1)
    cli = [sys.executable, "-m", "langchain_agent_auth.cli", "resumer", "--graph",
           "tests.approval.server.sqlite_app:graph", "--approver", "tests.approval.server.sqlite_app:approver",
           "--once"]
    for _ in range(10):
        done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        if report["resumed_items"]:
            break
        time.sleep(1)
    assert report["resumed_threads"] == ["restart-thread"]
    final = subprocess.run([sys.executable, "-m", "tests.approval.server.sqlite_app", "show"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert json.loads(final.stdout.strip().splitlines()[-1]) == {"last": "all done", "tool": "sent 42 to Bob",
                                                                  "paused": False}
