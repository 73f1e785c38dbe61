"""Device authorization (RFC 8628) as a durable pause against the local provider: a graph
node signs the user in with ``DeviceAuthorizer``; the run pauses with a typed
``device_authorization`` payload (verification URI and user code, never the device code);
the user approves on the provider's page; the resumer polls and resumes the thread once.
Sync and async; a denial; secrets never in checkpoints, payloads or progress events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from typing_extensions import TypedDict

from langchain_agent_auth.approval import ApprovalResumer
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.errors import AgentAuthError
from langchain_agent_auth.core.progress import WaitProgress
from langchain_agent_auth.devserver import LocalProvider
from langchain_agent_auth.identity import (
    DeviceAuthorizationPayload,
    DeviceAuthorizer,
    DevicePendingSource,
)
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient


class State(TypedDict, total=False):
    signed_in_as: str
    error: str


@pytest.fixture(scope="module")
def idp():
    with LocalProvider(ciba_interval=1) as provider:
        yield provider


def build(idp: LocalProvider, *, asynchronous: bool = False):
    store = InMemoryStore()
    authorizer = DeviceAuthorizer(OAuthClient(idp.issuer, idp.client_id, idp.client_secret),
                                  scope="openid profile email", store=store, keyring=Keyring.generate())
    verifier = JWTVerifier(idp.issuer, audience=idp.client_id, token_type="id", client_id=idp.client_id)

    def sign_in(state: State) -> State:
        try:
            return {"signed_in_as": authorizer.sign_in(verifier).subject}
        except AgentAuthError as exc:  # the typed refusal (never catch LangGraph's interrupt)
            return {"error": type(exc).__name__}

    async def asign_in(state: State) -> State:
        try:
            return {"signed_in_as": (await authorizer.asign_in(verifier)).subject}
        except AgentAuthError as exc:
            return {"error": type(exc).__name__}

    graph = StateGraph(State)
    graph.add_node("sign_in", asign_in if asynchronous else sign_in)
    graph.add_edge(START, "sign_in")
    graph.add_edge("sign_in", END)
    app = graph.compile(checkpointer=InMemorySaver(), store=store)
    return app, authorizer, ApprovalResumer(app, sources=[DevicePendingSource(authorizer)], store=store)


def checkpoint_text(app, cfg) -> str:
    return json.dumps([repr(s) for s in app.get_state_history(cfg)])


def _no_secret(text: str, authorizer: DeviceAuthorizer, rec: Any, token: Any = None) -> None:
    assert authorizer._open(rec)["device_code"] not in text
    if token is not None:
        for secret in (token.access_token, token.id_token, token.refresh_token):
            assert not secret or secret not in text


def test_device_sign_in_pauses_and_the_resumer_resumes(idp: LocalProvider) -> None:
    app, authorizer, resumer = build(idp)
    cfg = {"configurable": {"thread_id": "device-1"}}
    chunks = list(app.stream({}, cfg, stream_mode=["custom", "updates"]))
    [progress] = [WaitProgress.model_validate(c) for kind, c in chunks if kind == "custom"]
    [pause] = app.get_state(cfg).interrupts
    payload = DeviceAuthorizationPayload.model_validate({k: v for k, v in pause.value.items()
                                                        if k != "response_schema"})
    assert payload.verification_uri == idp.issuer + "/device" and payload.purpose == "sign_in"
    assert progress.kind == "device_authorization" and progress.user_code == payload.user_code
    assert progress.expires_at == payload.expires_at
    [rec] = authorizer.pending()
    _no_secret(json.dumps(pause.value) + json.dumps(progress.to_chunk()) + checkpoint_text(app, cfg), authorizer, rec)

    # not approved yet: the resumer polls (when due) and leaves the thread paused
    resumer.run_once()
    assert app.get_state(cfg).interrupts

    idp.approve_device(payload.verification_uri, payload.user_code, "alice")
    for _ in range(100):  # the next poll is due one interval after the last
        resumer.run_once()
        if not app.get_state(cfg).interrupts:
            break
        time.sleep(0.1)
    state = app.get_state(cfg)
    assert state.values == {"signed_in_as": "alice"} and not state.interrupts
    assert idp.stats()["device"]["authorize"] >= 1
    token = authorizer.token(authorizer.get(rec.id))
    _no_secret(checkpoint_text(app, cfg), authorizer, authorizer.get(rec.id), token)
    assert not authorizer.pending()  # nothing left to watch


async def test_async_device_sign_in_and_a_denial(idp: LocalProvider) -> None:
    app, authorizer, resumer = build(idp, asynchronous=True)
    cfg = {"configurable": {"thread_id": "device-2"}}
    out = await app.ainvoke({}, cfg)
    payload = out["__interrupt__"][0].value
    assert payload["type"] == "device_authorization" and "device_code" not in json.dumps(payload)
    await asyncio.to_thread(idp.approve_device, payload["verification_uri"], payload["user_code"], "bob",
                            deny=True)
    for _ in range(100):
        await resumer.arun_once()
        if not (await app.aget_state(cfg)).interrupts:
            break
        await asyncio.sleep(0.1)
    assert (await app.aget_state(cfg)).values == {"error": "AccessDeniedError"}
    assert not await authorizer.apending()  # a denial is final; the next attempt starts afresh


def test_cancel_resume_value_ends_the_wait(idp: LocalProvider) -> None:
    app, authorizer, _ = build(idp)
    cfg = {"configurable": {"thread_id": "device-3"}}
    out = app.invoke({}, cfg)
    device_id = out["__interrupt__"][0].value["device_id"]
    out = app.invoke(Command(resume={"device_id": device_id, "action": "cancel"}), cfg)
    assert out == {"error": "OAuthError"} and not authorizer.pending()


def test_connecting_an_account_hands_the_tokens_to_on_token_once_for_that_user(idp: LocalProvider) -> None:
    from langchain_agent_auth.identity import UserIdentity

    store = InMemoryStore()
    got: list[tuple[str, Any]] = []
    authorizer = DeviceAuthorizer(OAuthClient(idp.issuer, idp.client_id, idp.client_secret), scope="openid",
                                  store=store, keyring=Keyring.generate(), purpose="connect_account",
                                  connection="calendar",
                                  on_token=lambda token, rec: got.append((token.access_token, rec.context)))

    def connect(state: State) -> State:
        authorizer.authorize(tool_call_id="call-1")
        return {"signed_in_as": "connected"}

    graph = StateGraph(State)
    graph.add_node("connect", connect)
    graph.add_edge(START, "connect")
    graph.add_edge("connect", END)
    app = graph.compile(checkpointer=InMemorySaver(), store=store)
    resumer = ApprovalResumer(app, sources=[DevicePendingSource(authorizer)], store=store)
    cfg = {"configurable": {"thread_id": "device-4"}}
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    payload = app.invoke({}, cfg, context={"user": alice})["__interrupt__"][0].value
    assert payload["purpose"] == "connect_account" and payload["connection"] == "calendar"
    assert payload["tool_call_id"] == "call-1" and "connect your calendar account" in payload["message"]
    before = idp.stats()["device"]["authorize"]
    again = app.invoke(Command(resume={"device_id": payload["device_id"], "action": "check"}), cfg,
                       context={"user": alice})  # the node re-runs: same request, same code
    assert again["__interrupt__"][0].value["user_code"] == payload["user_code"]
    assert idp.stats()["device"]["authorize"] == before and len(authorizer.pending()) == 1
    idp.approve_device(payload["verification_uri"], payload["user_code"], "alice")
    for _ in range(100):
        resumer.run_once()
        if not app.get_state(cfg).interrupts:
            break
        time.sleep(0.1)
    assert app.get_state(cfg).values["signed_in_as"] == "connected"
    assert len(got) == 1 and got[0][0] and got[0][1]["user"]["subject"] == "alice"


@pytest.mark.parametrize("bad", ["garbage", {"device_id": 3}, {"device_id": "x", "action": "approve"}, None])
def test_a_malformed_resume_value_leaves_the_pause_in_place(idp: LocalProvider, bad: Any) -> None:
    app, authorizer, _ = build(idp)
    cfg = {"configurable": {"thread_id": f"device-bad-{bad!r}"}}
    first = app.invoke({}, cfg)["__interrupt__"][0].value
    try:
        app.invoke(Command(resume=bad), cfg)
    except Exception as exc:  # refused inside interrupt(): nothing recorded
        assert "resume" in str(exc).lower() or "DeviceAuthorizationResume" in str(exc)
    [pause] = app.get_state(cfg).interrupts
    assert pause.value["user_code"] == first["user_code"] and len(authorizer.pending()) == 1
    # a cancel for another device id is not this pause's answer
    out = app.invoke(Command(resume={"device_id": "someone-else", "action": "cancel"}), cfg)
    assert out["__interrupt__"][0].value["device_id"] == first["device_id"]
