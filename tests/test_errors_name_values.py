"""Errors a newcomer meets first name the values involved and what to do about them."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import ApprovalMiddleware, InAppApprover
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.fga import EmbeddedAuthorizer, with_fga
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
from langchain_agent_auth.oauth._flow import RetryPolicy
from tests.approval.helpers import ALICE, calls, interrupts, scripted, transfer_money
from tests.support.fake_idp import FakeProvider

CFG = {"configurable": {"thread_id": "t1"}}


def _verifier(idp: FakeProvider, issuer: str, **kwargs) -> JWTVerifier:
    return JWTVerifier(issuer, audience="api", http_client=idp.client(), **kwargs)


def test_issuer_mismatch_shows_both_values_and_the_slash_hint():
    idp = FakeProvider()
    token = idp.sign(iss=idp.issuer + "/")
    with pytest.raises(E.InvalidClaimError) as info:
        _verifier(idp, idp.issuer).verify(token)
    message = str(info.value)
    assert repr(idp.issuer + "/") in message and repr(idp.issuer) in message
    assert "trailing slash" in message and info.value.reason == "iss"


def test_issuer_mismatch_without_slash_difference_has_no_slash_hint():
    idp = FakeProvider()
    with pytest.raises(E.InvalidClaimError) as info:
        _verifier(idp, idp.issuer).verify(idp.sign(iss="https://elsewhere.example"))
    assert "'https://elsewhere.example'" in str(info.value) and "slash" not in str(info.value)


def test_typ_mismatch_shows_the_header_and_the_typ_none_option():
    idp = FakeProvider()
    with pytest.raises(E.InvalidClaimError) as info:
        _verifier(idp, idp.issuer).verify(idp.sign(header={"typ": "JWT"}))
    assert "'JWT'" in str(info.value) and "typ=None" in str(info.value)
    # and the option it names works
    assert _verifier(idp, idp.issuer, typ=None).verify(idp.sign(header={"typ": "JWT"}))["sub"] == "alice"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_provider_unavailable_keeps_the_port(mode):
    port = _closed_port()
    client = OAuthClient(f"http://127.0.0.1:{port}", "agent", "secret", retry=RetryPolicy(attempts=1))
    with pytest.raises(E.ProviderUnavailableError) as info:
        if mode == "sync":
            client.metadata()
        else:
            await client.ametadata()
    assert f"127.0.0.1:{port}/.well-known/openid-configuration" in str(info.value)


def test_http_error_description_keeps_the_port():
    from langchain_agent_auth.oauth._http import describe

    response = httpx.Response(503, request=httpx.Request("GET", "http://127.0.0.1:8123/jwks?x=1"))
    assert describe(response) == "GET http://127.0.0.1:8123/jwks -> HTTP 503"


def _paused_agent(keyring):
    middleware = [ApprovalMiddleware({"transfer_money": InAppApprover(keyring=keyring)})]
    a = create_agent(scripted(calls(("transfer_money", {"amount": 5, "to": "Bob"}, "c1")), AIMessage("done")),
                     [transfer_money], middleware=middleware,
                     checkpointer=InMemorySaver(), store=InMemoryStore())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context={"user": ALICE})
    (pause,) = interrupts(r)
    return a, pause


def test_resume_value_error_lists_the_allowed_decisions():
    a, pause = _paused_agent(Keyring.generate())
    with pytest.raises(E.ResumeValueError) as info:
        a.invoke(Command(resume={pause.id: {"approval_id": pause.value["approval_id"], "decision": "approved"}}),
                 CFG, context={"user": ALICE})
    message = str(info.value)
    assert "approve, edit, reject" in message and "decision" in message
    assert pause.value["approval_id"] in message


def test_hitl_shaped_resume_value_says_what_to_send():
    a, pause = _paused_agent(Keyring.generate())
    with pytest.raises(E.ResumeValueError) as info:
        a.invoke(Command(resume={pause.id: {"decisions": [{"type": "approve"}]}}), CFG, context={"user": ALICE})
    message = str(info.value)
    assert "HumanInTheLoopMiddleware" in message and pause.value["approval_id"] in message
    assert "'decision'" in message and "approve, edit, reject" in message
    # the pause stays and the advertised shape works
    r = a.invoke(Command(resume={pause.id: {"approval_id": pause.value["approval_id"], "decision": "approve"}}),
                 CFG, context={"user": ALICE})
    assert r["messages"][-1].content == "done"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_pause_without_a_checkpointer_is_refused_before_it_is_made(mode):
    store = InMemoryStore()
    a = create_agent(scripted(calls(("transfer_money", {"amount": 5, "to": "Bob"}, "c1")), AIMessage("done")),
                     [transfer_money], middleware=[ApprovalMiddleware({"transfer_money": InAppApprover(
                         keyring=Keyring.generate())})], store=store)
    with pytest.raises(E.ConfigurationError) as info:
        if mode == "sync":
            a.invoke({"messages": [("user", "pay")]}, CFG, context={"user": ALICE})
        else:
            await a.ainvoke({"messages": [("user", "pay")]}, CFG, context={"user": ALICE})
    assert "no checkpointer" in str(info.value) and "'transfer_money'" in str(info.value)
    assert store.search(("agent_auth",)) == [] and list(store.list_namespaces()) == []  # no pending record


def test_approval_without_identity_warns_the_developer(caplog):
    a = create_agent(scripted(calls(("transfer_money", {"amount": 5, "to": "Bob"}, "c1")), AIMessage("done")),
                     [transfer_money], middleware=[ApprovalMiddleware({"transfer_money": InAppApprover(
                         keyring=Keyring.generate())})], checkpointer=InMemorySaver(), store=InMemoryStore())
    with caplog.at_level(logging.WARNING, logger="langchain_agent_auth"):
        r = a.invoke({"messages": [("user", "pay")]}, CFG)
    assert "don't know who you are" in r["messages"][2].content
    (record,) = [r for r in caplog.records if r.name == "langchain_agent_auth.approval"]
    assert "'transfer_money'" in record.getMessage() and "IdentityMiddleware" in record.getMessage()


def test_fga_without_identity_warns_the_developer(caplog):
    fga = EmbeddedAuthorizer("model\n  schema 1.1\ntype user\ntype repo\n  relations\n    define admin: [user]\n")

    @tool
    def delete_repo(repo: str) -> str:
        """Delete a repository."""
        return "deleted"

    guarded = with_fga(delete_repo, fga, relation="admin", object="repo:{repo}")
    with caplog.at_level(logging.WARNING, logger="langchain_agent_auth"):
        out = guarded.invoke({"repo": "core"})
    assert "don't know who you are" in out
    (record,) = [r for r in caplog.records if r.name == "langchain_agent_auth.fga"]
    assert "'delete_repo'" in record.getMessage()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_vault_pause_without_a_checkpointer_is_refused_before_a_connect_flow(tmp_path, mode):
    from langchain_agent_auth.vault import Connection, TokenVault, VaultMiddleware

    vault = TokenVault([Connection("calendar", issuer="https://accounts.example", client_id="c", client_secret="s",
                                   scopes=["calendar.read"], redirect_uri="https://app.example/cb",
                                   metadata={"issuer": "https://accounts.example",
                                             "authorization_endpoint": "https://accounts.example/authorize",
                                             "token_endpoint": "https://accounts.example/token"})],
                       data_dir=tmp_path, keyring=Keyring.generate())

    @tool
    def list_events(day: str) -> str:
        """List the user's events."""
        return "events"

    a = create_agent(scripted(calls(("list_events", {"day": "monday"}, "c1")), AIMessage("done")), [list_events],
                     middleware=[VaultMiddleware(vault, {"list_events": "calendar"})])
    with pytest.raises(E.ConfigurationError) as info:
        if mode == "sync":
            a.invoke({"messages": [("user", "events?")]}, CFG, context={"user": ALICE})
        else:
            await a.ainvoke({"messages": [("user", "events?")]}, CFG, context={"user": ALICE})
    assert "no checkpointer" in str(info.value) and "'calendar'" in str(info.value)
    assert vault.store.search(("agent_auth", "vault", "pending")) == []  # no connect flow was started
