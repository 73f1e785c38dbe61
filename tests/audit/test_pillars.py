"""Every audit kind, emitted by a real run of each pillar: identity and in-app approvals in an
agent graph, CIBA and the vault against the in-process local provider, fga checks, thread
ownership refusals. Sync and async."""

from __future__ import annotations

import time
from typing import Any

import pytest
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, InAppApprover
from langchain_agent_auth.audit import AUDIT_KINDS
from langchain_agent_auth.core.errors import CredentialUnavailableError, ThreadOwnershipError
from langchain_agent_auth.fga import EmbeddedAuthorizer, with_fga
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.oauth import OAuthClient
from langchain_agent_auth.vault import Connection, TokenVault
from tests.approval.helpers import answer, interrupts, tool_messages
from tests.audit.helpers import SENT, approval_agent

ALICE = UserIdentity(subject="alice", issuer="https://idp.test")
BOB = UserIdentity(subject="bob", issuer="https://idp.test")
CFG = {"configurable": {"thread_id": "t-audit"}}


async def run(graph: Any, mode: str, value: Any, **kw: Any) -> Any:
    if mode == "sync":
        return graph.invoke(value, CFG, **kw)
    return await graph.ainvoke(value, CFG, **kw)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_in_app_approval_emits_requested_decided_executed(events, mode):
    SENT.clear()
    agent = approval_agent()
    # A plain dict in the runtime context: the identity's channel is "runtime_context".
    r = await run(agent, mode, {"messages": [("user", "mail bob")]},
                  context={"user": {"subject": "alice", "issuer": "https://idp.test"}})
    (requested,) = events.of("approval_requested")
    assert (requested.user, requested.thread_id, requested.tool, requested.channel) == (
        ALICE.key, "t-audit", "send_email", "in_app")
    assert requested.args_digest and requested.tool_call_id == "c1"
    resolved = events.of("identity_resolved")
    assert resolved and {e.channel for e in resolved} == {"runtime_context"} and resolved[0].user == ALICE.key
    await run(agent, mode, Command(resume=answer(r, send_email={"decision": "approve"})), context={"user": ALICE})
    (decided,) = events.of("approval_decided")
    assert (decided.outcome, decided.decider, decided.args_digest) == ("approve", ALICE.key, requested.args_digest)
    (executed,) = events.of("approval_executed")
    assert executed.outcome == "done" and executed.args_digest == requested.args_digest
    assert SENT == [{"to": "bob@example.com", "body": "hello"}]
    order = events.kinds()
    assert order.index("approval_requested") < order.index("approval_decided") < order.index("approval_executed")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_in_app_rejection_emits_decided_and_refused(events, mode):
    SENT.clear()
    agent = approval_agent()
    r = await run(agent, mode, {"messages": [("user", "mail bob")]}, context={"user": ALICE})
    await run(agent, mode, Command(resume=answer(r, send_email={"decision": "reject", "message": "no"})),
              context={"user": ALICE})
    (decided,) = events.of("approval_decided")
    (refused,) = events.of("approval_refused")
    assert decided.outcome == "reject" and refused.tool == "send_email" and refused.outcome == "ApprovalDeniedError"
    assert refused.thread_id == "t-audit" and refused.user == ALICE.key  # from the guarded call's scope
    assert not events.of("approval_executed") and SENT == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_unanswered_in_app_request_expires(events, mode):
    now = [1000.0]
    agent = approval_agent(InAppApprover(expires_in=60, clock=lambda: now[0]))
    r = await run(agent, mode, {"messages": [("user", "mail bob")]}, context={"user": ALICE})
    now[0] += 120
    await run(agent, mode, Command(resume=answer(r, send_email={"decision": "approve"})), context={"user": ALICE})
    (expired,) = events.of("approval_expired")
    assert expired.tool == "send_email" and expired.user == ALICE.key
    assert events.of("approval_refused")[-1].outcome == "ApprovalExpiredError"
    assert not events.of("approval_executed")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_another_user_on_the_thread_emits_thread_refused(events, mode):
    agent = approval_agent()
    await run(agent, mode, {"messages": [("user", "mail bob")]}, context={"user": ALICE})
    with pytest.raises(ThreadOwnershipError):
        await run(agent, mode, {"messages": [("user", "mine now")]}, context={"user": BOB})
    (refused,) = events.of("thread_refused")
    assert (refused.user, refused.thread_id) == (BOB.key, "t-audit")


@tool
def read_doc(doc_id: str) -> str:
    """Read a document."""
    return f"contents of {doc_id}"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fga_decisions_join_the_trail_and_on_decision_still_works(events, mode):
    fga = EmbeddedAuthorizer("model\n  schema 1.1\ntype user\ntype document\n  relations\n    define viewer: [user]\n")
    fga.write([("user:alice", "viewer", "document:1")])
    legacy: list[Any] = []
    guarded = with_fga(read_doc, fga, relation="viewer", object="document:{doc_id}", on_decision=legacy.append)
    cfg = {"configurable": {"thread_id": "t-fga"}}
    with acting_as(UserIdentity(subject="alice")):
        for doc in ("1", "2"):
            if mode == "sync":
                guarded.invoke({"doc_id": doc}, cfg)
            else:
                await guarded.ainvoke({"doc_id": doc}, cfg)
    got = [(e.subject, e.object, e.outcome, e.tool, e.thread_id, e.channel) for e in events.of("fga_decision")]
    assert got == [("user:alice", "document:1", "allowed", "read_doc", "t-fga", "embedded"),
                   ("user:alice", "document:2", "denied", "read_doc", "t-fga", "embedded")]
    assert [(d.object, d.allowed) for d in legacy] == [("document:1", True), ("document:2", False)]
    fga.check("user:bob", "viewer", "document:1")  # outside a guarded call: no tool, still audited
    assert events[-1].kind == "fga_decision" and events[-1].tool is None and events[-1].outcome == "denied"


# ------------------------------------------------------------------ against the local provider


def _vault(idp: Any, keyring: Any, store: Any = None) -> TokenVault:
    conn = Connection(idp.upstream_connection, issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                      client_secret=idp.upstream_client_secret, redirect_uri="http://127.0.0.1:1/callback",
                      scopes=("calendar.read",))
    return TokenVault([conn], store=store or InMemoryStore(), keyring=keyring)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_vault_tokens_obtained_refreshed_revoked_refused(events, idp, keyring, mode):
    vault = _vault(idp, keyring)
    name = idp.upstream_connection
    tokens = idp.login("alice", upstream=True, scope="calendar.read")
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    # Imported as already expired: the first use refreshes at the local provider's upstream.
    vault.import_token(alice, name, access_token=tokens["access_token"], refresh_token=tokens["refresh_token"],
                       scopes=["calendar.read"], expires_at=time.time() - 10)
    get = vault.get_token if mode == "sync" else None
    token = get(alice, name, "calendar.read") if get else await vault.aget_token(alice, name, "calendar.read")
    assert token.token != tokens["access_token"]
    (refreshed,) = events.of("token_refreshed")
    (obtained,) = events.of("token_obtained")
    assert (refreshed.user, refreshed.connection) == (alice.key, name) and obtained.scopes == ("calendar.read",)
    with pytest.raises(CredentialUnavailableError):
        if mode == "sync":
            vault.get_token(alice, name, "calendar.write")
        else:
            await vault.aget_token(alice, name, "calendar.write")
    (refused,) = events.of("token_refused")
    assert refused.outcome == "missing_scopes" and refused.scopes == ("calendar.write",)
    result = vault.revoke(alice, name) if mode == "sync" else await vault.arevoke(alice, name)
    assert result.deleted
    (revoked,) = events.of("token_revoked")
    assert revoked.connection == name and revoked.outcome in ("revoked_upstream", "deleted")
    blob = " ".join(e.model_dump_json() for e in events)
    for secret in (tokens["access_token"], tokens["refresh_token"], token.token, idp.upstream_client_secret):
        assert secret not in blob


def test_ciba_approval_emits_requested_decided_executed(events, idp, keyring):
    from langchain_agent_auth.approval import get_approval_token

    seen_tokens: list[str] = []

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email for the user."""
        seen_tokens.append(get_approval_token(required=True).access_token)
        return "sent"

    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from langchain_agent_auth.approval import ApprovalMiddleware
    from langchain_agent_auth.identity import IdentityMiddleware
    from tests.approval.helpers import calls, scripted

    client = OAuthClient(idp.issuer, idp.client_id, idp.client_secret)
    approver = CIBAApprover(client, scope="openid", keyring=keyring)
    agent = create_agent(scripted(calls(("send_email", {"to": "bob", "body": "hi"}, "c1")), AIMessage("done")),
                         [send_email], middleware=[IdentityMiddleware(), ApprovalMiddleware({"send_email": approver})],
                         checkpointer=InMemorySaver(), store=InMemoryStore())
    alice = UserIdentity(subject="alice")
    cfg = {"configurable": {"thread_id": "t-ciba"}}
    r = agent.invoke({"messages": [("user", "mail bob")]}, cfg, context={"user": alice})
    assert interrupts(r)
    (pending,) = idp.wait_for_pending("alice")
    idp.approve(pending["id"])
    resumer = ApprovalResumer(agent, approvers=[approver])
    for _ in range(60):
        resumer.run_once()
        if not agent.get_state(cfg).interrupts:
            break
        time.sleep(0.25)
    assert tool_messages(agent.get_state(cfg).values)[0].content == "sent"
    (requested,) = events.of("approval_requested")
    decided = events.of("approval_decided")
    executed = events.of("approval_executed")
    assert requested.channel == "ciba" and requested.thread_id == "t-ciba"
    assert decided and decided[0].outcome == "approve" and decided[0].channel == "ciba"
    assert decided[0].args_digest == requested.args_digest == executed[0].args_digest
    assert executed[0].outcome == "done"
    blob = " ".join(e.model_dump_json() for e in events)
    assert seen_tokens and seen_tokens[0] not in blob and idp.client_secret not in blob


def test_every_kind_is_covered_by_these_tests():
    import pathlib

    text = pathlib.Path(__file__).read_text()
    assert all(f'"{kind}"' in text for kind in AUDIT_KINDS)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_refused_resume_value_is_audited(events, mode):
    from langchain_agent_auth.core.errors import ResumeValueError

    agent = approval_agent(InAppApprover(allowed_decisions=("approve", "reject")))
    r = await run(agent, mode, {"messages": [("user", "mail bob")]}, context={"user": ALICE})
    bad = answer(r, send_email={"decision": "edit", "args": {"to": "mallory@example.com", "body": "x"}})
    with pytest.raises(ResumeValueError):
        await run(agent, mode, Command(resume=bad), context={"user": ALICE})
    refused = events.of("approval_refused")
    assert refused and refused[-1].outcome == "invalid_resume" and "not allowed" in refused[-1].detail
    assert refused[-1].tool == "send_email" and refused[-1].thread_id == "t-audit"
    assert not events.of("approval_decided") and not events.of("approval_executed")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_edited_call_is_executed_under_the_digest_of_what_ran(events, mode):
    from langchain_agent_auth.approval import args_digest

    SENT.clear()
    agent = approval_agent()
    r = await run(agent, mode, {"messages": [("user", "mail bob")]}, context={"user": ALICE})
    edited = {"to": "team@example.com", "body": "hello"}
    await run(agent, mode, Command(resume=answer(r, send_email={"decision": "edit", "args": edited})),
              context={"user": ALICE})
    (requested,) = events.of("approval_requested")
    (decided,) = events.of("approval_decided")
    (executed,) = events.of("approval_executed")
    assert decided.outcome == "edit" and decided.args_digest == requested.args_digest
    assert executed.args_digest == args_digest(edited) != requested.args_digest
    assert [edited] == SENT


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retriever_checks_are_audited_once_each(events, mode):
    from langchain_core.documents import Document

    from langchain_agent_auth.fga import FGARetriever
    from tests.fga.test_fga_retriever import ListRetriever

    fga = EmbeddedAuthorizer("model\n  schema 1.1\ntype user\ntype document\n  relations\n    define viewer: [user]\n")
    fga.write([("user:anne", "viewer", "document:a")])
    docs = [Document("a", metadata={"id": "a"}), Document("b", metadata={"id": "b"}), Document("no id")]
    r = FGARetriever(retriever=ListRetriever(docs=docs), authorizer=fga, user=UserIdentity(subject="anne"))
    kept = r.invoke("q") if mode == "sync" else await r.ainvoke("q")
    assert [d.page_content for d in kept] == ["a"]
    got = sorted((e.object, e.outcome) for e in events.of("fga_decision"))
    assert got == [("", "error"), ("document:a", "allowed"), ("document:b", "denied")]


def _consent(url: str, redirect_uri: str, password: str) -> dict[str, str]:
    """alice at the demo upstream: sign in, consent; returns the callback's query (code, state)."""
    from urllib.parse import parse_qsl, urljoin, urlsplit

    import httpx

    from tests.vault.test_local_provider import _Forms

    with httpx.Client(timeout=15, follow_redirects=False) as browser:
        response = browser.get(url)
        for _ in range(12):
            if response.status_code in (301, 302, 303, 307):
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect_uri):
                    return dict(parse_qsl(urlsplit(location).query))
                response = browser.get(location)
                continue
            parser = _Forms()
            parser.feed(response.text)
            form = next(f for f in parser.forms if "password" in f["fields"] or "decision" in f["buttons"])
            data = dict(form["fields"])
            if "password" in data:
                data.update(username="alice", password=password)
            else:
                data["decision"] = "allow"
            response = browser.post(urljoin(str(response.url), form["action"]), data=data)
    raise AssertionError("no redirect to the callback")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_connecting_an_account_is_a_token_obtained_event(events, idp, keyring, mode):
    vault = _vault(idp, keyring)
    name = idp.upstream_connection
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    start = (vault.start_connect(alice, name, "calendar.read", thread_id="t-connect", tool_call_id="c9")
             if mode == "sync" else
             await vault.astart_connect(alice, name, "calendar.read", thread_id="t-connect", tool_call_id="c9"))
    query = _consent(start.authorize_url, "http://127.0.0.1:1/callback", idp.users["alice"])
    if mode == "sync":
        vault.complete_connect(query["state"], query["code"])
    else:
        await vault.acomplete_connect(query["state"], query["code"])
    (obtained,) = events.of("token_obtained")
    assert (obtained.user, obtained.connection, obtained.outcome) == (alice.key, name, "connected")
    assert (obtained.thread_id, obtained.tool_call_id, obtained.scopes) == ("t-connect", "c9", ("calendar.read",))
    assert query["code"] not in " ".join(e.model_dump_json() for e in events)
