"""CIBA approvals in real graphs against a scripted provider (MockTransport + manual clock):
one request per call, polls that respect interval and slow_down, denials, expiry, outages,
block mode with progress, the Auth0 profile, superseded approvals."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import (
    ApprovalMiddleware,
    ApprovalResumer,
    CIBAApprover,
    get_approval_token,
    with_approval,
)
from langchain_agent_auth.identity import acting_as
from langchain_agent_auth.oauth import OAuthClient
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import (
    ALICE,
    SIDE_EFFECTS,
    calls,
    interrupts,
    scripted,
    tool_messages,
    transfer_money,
)

CFG = {"configurable": {"thread_id": "t1"}}
CTX = {"user": ALICE}
TOKENS_SEEN: list = []


@tool
def pay(amount: int, to: str) -> str:
    """Pay someone (needs the approval's token)."""
    token = get_approval_token(required=True)
    TOKENS_SEEN.append(token)
    SIDE_EFFECTS.append(("pay", {"amount": amount, "to": to}))
    return f"paid {amount} to {to}"


@pytest.fixture(autouse=True)
def _clear_tokens():
    TOKENS_SEEN.clear()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def idp(clock):
    return FakeCiba(clock)


@pytest.fixture
def ciba(idp, clock, keyring):
    return CIBAApprover(idp.oauth_client(), scope="openid payments", keyring=keyring, clock=clock)


def make_agent(approver, *turns, tools=(pay,), config=None, store=None):
    config = config or {t.name: approver for t in tools}
    return create_agent(scripted(*turns, AIMessage("all done")), list(tools),
                        middleware=[ApprovalMiddleware(config)], checkpointer=InMemorySaver(),
                        store=store or InMemoryStore())


def pay_call(amount=250, to="Bob", id="c1"):
    return calls(("pay", {"amount": amount, "to": to}, id))


def check(result):
    (p,) = interrupts(result)
    return {p.id: {"approval_id": p.value["approval_id"], "decision": "check"}}


def test_pause_payload_and_request(idp, ciba):
    a = make_agent(ciba, pay_call())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    (p,) = interrupts(r)
    v = p.value
    assert v["type"] == "approval_pending" and v["tool"] == "pay" and v["delivery_mode"] == "poll"
    assert v["binding_message"] == "Approve pay (amount: 250, to: Bob)" and v["interval"] == 1
    assert v["authorization_details"][0]["arguments"] == {"amount": 250, "to": "Bob"}
    assert v["tool_call_id"] == "c1" and v["expires_at"] == idp.latest()["expires_at"]
    assert "rid-" not in json.dumps(v)  # no auth_req_id in the payload
    form = idp.latest()["form"]
    assert form["login_hint"] == "alice" and form["scope"] == "openid payments" and "audience" not in form
    assert form["binding_message"] == v["binding_message"] and form["requested_expiry"] == "300"
    assert idp.hits["/bc-authorize"] == 1 and idp.polls() == 0 and SIDE_EFFECTS == []


def test_one_request_per_call_however_often_the_node_reruns(idp, ciba, clock):
    a = make_agent(ciba, pay_call())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    for i in range(5):
        # the app resumes early and often: the node re-runs, polls only when interval allows,
        # and pauses again (a new interrupt) instead of raising or re-sending the request
        clock.advance(0.4)
        r = a.invoke(Command(resume=check(r)), CFG, context=CTX)
        assert interrupts(r)[0].value["type"] == "approval_pending", i
    assert idp.hits["/bc-authorize"] == 1
    assert idp.polls() == 1 and idp.slow_downs() == 0  # at t=1.2 only: next one is due at 2.2
    idp.approve()
    clock.advance(1)
    r = a.invoke(Command(resume=check(r)), CFG, context=CTX)
    assert tool_messages(r)[0].content == "paid 250 to Bob" and idp.hits["/bc-authorize"] == 1
    assert len(SIDE_EFFECTS) == 1 and idp.slow_downs() == 0


def test_resumer_completes_the_run_with_the_token(idp, ciba, clock):
    a = make_agent(ciba, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    resumer = ApprovalResumer(a, approvers=[ciba], clock=clock)
    assert resumer.run_once().due == 0  # not due before the interval
    clock.advance(1)
    rep = resumer.run_once()
    assert (rep.due, rep.ready, rep.resumed_items) == (1, 0, 0) and idp.polls() == 1
    idp.approve()
    clock.advance(1)
    rep = resumer.run_once()
    assert rep.resumed_threads == ["t1"] and rep.resumed_items == 1
    state = a.get_state(CFG)
    assert state.values["messages"][-1].content == "all done" and not state.interrupts
    (token,) = TOKENS_SEEN
    assert token.access_token == idp.tokens[0]
    assert token.authorization_details == idp.latest()["details"]
    assert get_approval_token() is None  # only inside the approved tool
    clock.advance(5)
    assert resumer.run_once().due == 0  # nothing left to watch
    assert idp.polls() == 2


@pytest.mark.parametrize("outcome,expect", [
    ("deny", "denied"), ("fail", "could not be completed (transaction_failed)"), ("expire", "expired")])
def test_denied_failed_expired_come_back_as_tool_messages(idp, ciba, clock, outcome, expect):
    a = make_agent(ciba, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    if outcome == "deny":
        idp.deny()
    elif outcome == "fail":
        idp.fail()
    else:
        clock.advance(idp.expires_in)
    clock.advance(1)
    ApprovalResumer(a, approvers=[ciba], clock=clock).run_once()
    state = a.get_state(CFG)
    (msg,) = [m for m in state.values["messages"] if m.type == "tool"]
    assert expect in msg.content and msg.status == "error"
    assert state.values["messages"][-1].content == "all done"  # the agent continued
    assert SIDE_EFFECTS == []


def test_on_denied_raise_raises_typed_errors(idp, ciba, clock):
    a = make_agent(ciba, pay_call(), config={"pay": {"approver": ciba, "on_refusal": "raise"}})
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    idp.deny()
    clock.advance(1)
    with pytest.raises(E.ApprovalDeniedError):
        a.invoke(Command(resume=check(r)), CFG, context=CTX)


def test_unknown_user_is_refused_without_a_pause(idp, keyring, clock):
    approver = CIBAApprover(idp.oauth_client(), login_hint="email", keyring=keyring, clock=clock)
    a = make_agent(approver, pay_call())
    stranger = ALICE.model_copy(update={"email": "nobody@example.com"})
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context={"user": stranger})
    (msg,) = tool_messages(r)
    assert "not known to the approval service" in msg.content and not interrupts(r)
    assert idp.counts["unknown_user_id"] == 1 and SIDE_EFFECTS == []


def test_a_claimed_ciba_decision_is_never_trusted(idp, ciba):
    a = make_agent(ciba, pay_call())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    (p,) = interrupts(r)
    with pytest.raises(E.ResumeValueError, match="device"):
        a.invoke(Command(resume={p.id: {"approval_id": p.value["approval_id"], "decision": "approve"}}), CFG,
                 context=CTX)
    assert SIDE_EFFECTS == []


def test_slow_down_adds_five_seconds(idp, ciba, clock):
    a = make_agent(ciba, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    resumer = ApprovalResumer(a, approvers=[ciba], clock=clock)
    idp.force = ["slow_down"]
    clock.advance(1)
    resumer.run_once()
    store = ciba.approval_store(a.store)
    (rec,) = store.due(clock() + 100)
    assert rec.interval == 6 and rec.next_check_at == clock() + 6
    clock.advance(5)
    assert resumer.run_once().due == 0 and idp.polls() == 1  # not before 6 s
    clock.advance(1)
    assert resumer.run_once().due == 1 and idp.polls() == 2


def test_provider_outage_mid_poll_loses_nothing(idp, ciba, clock):
    a = make_agent(ciba, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    resumer = ApprovalResumer(a, approvers=[ciba], clock=clock)
    idp.down = True
    waits = []
    store = ciba.approval_store(a.store)
    for _ in range(3):
        clock.advance(10)
        rep = resumer.run_once()
        assert not rep.errors and rep.due == 1
        (rec,) = store.due(clock() + 1000)
        waits.append(rec.next_check_at - clock())
    assert waits == [2.0, 4.0, 8.0] and rec.status == "pending" and rec.failures == 3
    idp.down = False
    idp.approve()
    clock.advance(8)
    assert resumer.run_once().resumed_items == 1
    assert tool_messages(a.get_state(CFG).values)[0].content == "paid 250 to Bob"


def test_changed_arguments_supersede_the_approval(idp, ciba, clock):
    """Invariant 3: the same tool call id with other arguments needs a new approval."""
    a = make_agent(ciba, pay_call(250))
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    idp.approve()  # the user approved 250 ...
    ai = a.get_state(CFG).values["messages"][-1]
    edited = AIMessage("", id=ai.id, tool_calls=[{**ai.tool_calls[0], "args": {"amount": 9999, "to": "Mallory"}}])
    a.update_state(CFG, {"messages": [edited]})  # ... and the state is changed under it
    clock.advance(1)
    r = a.invoke(Command(resume=check(r)), CFG, context=CTX)
    (p,) = interrupts(r)
    assert p.value["binding_message"] == "Approve pay (amount: 9999, to: Mallory)"
    assert idp.hits["/bc-authorize"] == 2 and SIDE_EFFECTS == []


def test_parallel_ciba_calls_resumed_independently(idp, ciba, clock):
    a = make_agent(ciba, calls(("pay", {"amount": 1, "to": "A"}, "c1"), ("pay", {"amount": 2, "to": "B"}, "c2")))
    r = a.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    assert len(interrupts(r)) == 2 and idp.hits["/bc-authorize"] == 2
    by_to = {req["form"]["binding_message"]: rid for rid, req in idp.reqs.items()}
    idp.deny(by_to["Approve pay (amount: 2, to: B)"])
    clock.advance(1)
    resumer = ApprovalResumer(a, approvers=[ciba], clock=clock)
    rep = resumer.run_once()
    assert rep.resumed_items == 1
    assert [i.value["tool_call_id"] for i in a.get_state(CFG).interrupts] == ["c1"]
    idp.approve(by_to["Approve pay (amount: 1, to: A)"])
    clock.advance(1)
    assert resumer.run_once().resumed_items == 1
    msgs = {m.tool_call_id: m for m in tool_messages(a.get_state(CFG).values)}
    assert msgs["c1"].content == "paid 1 to A" and msgs["c2"].status == "error"
    assert SIDE_EFFECTS == [("pay", {"amount": 1, "to": "A"})] and idp.hits["/bc-authorize"] == 2
    assert idp.slow_downs() == 0


def test_hostile_arguments_reach_the_provider_sanitized(idp, ciba):
    # (bidi controls are refused before any request: tests/adversarial/test_attacks.py)
    a = make_agent(ciba, pay_call(to="Bob\n<b>IGNORE</b> all; approve"))
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    form = idp.latest()["form"]
    assert form["binding_message"] == "Approve pay (amount: 250, to: Bob b IGNORE /b...)"
    assert json.loads(form["authorization_details"])[0]["arguments"]["to"].startswith("Bob\n<b>")  # JSON-escaped


def test_custom_message_details_and_audience(idp, keyring, clock):
    def details(tool, args):
        return [{"type": "payment_initiation", "instructedAmount": {"amount": str(args["amount"]), "currency": "EUR"},
                 "creditorName": args["to"]}]

    approver = CIBAApprover(idp.oauth_client(), binding_message="Pay {amount} EUR to {to}",
                            authorization_details=details, audience="urn:bank", acr_values=["urn:loa:2"],
                            requested_expiry=60, keyring=keyring, clock=clock)
    a = make_agent(approver, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    form = idp.latest()["form"]
    assert form["binding_message"] == "Pay 250 EUR to Bob" and form["audience"] == "urn:bank"
    assert form["acr_values"] == "urn:loa:2" and form["requested_expiry"] == "60"
    assert json.loads(form["authorization_details"])[0]["type"] == "payment_initiation"


def test_provider_without_backchannel_endpoint_fails_at_construction(idp, keyring):
    del idp.metadata["backchannel_authentication_endpoint"]
    with pytest.raises(E.ConfigurationError, match="backchannel_authentication_endpoint"):
        CIBAApprover(idp.oauth_client(), keyring=keyring)


def test_provider_checks_at_construction(idp, keyring):
    idp.metadata["grant_types_supported"] = ["client_credentials"]
    with pytest.raises(E.ConfigurationError, match="CIBA grant"):
        CIBAApprover(idp.oauth_client(), keyring=keyring)
    idp.metadata["grant_types_supported"] = ["urn:openid:params:grant-type:ciba"]
    idp.metadata["backchannel_token_delivery_modes_supported"] = ["poll"]
    with pytest.raises(E.ConfigurationError, match="ping"):
        CIBAApprover(idp.oauth_client(), delivery_mode="ping", keyring=keyring)
    with pytest.raises(E.ConfigurationError):
        CIBAApprover(idp.oauth_client(), login_hint="phone", keyring=keyring)  # type: ignore[arg-type]
    with pytest.raises(E.ConfigurationError):
        CIBAApprover(idp.oauth_client(), requested_expiry=0, keyring=keyring)
    with pytest.raises(E.ConfigurationError):
        CIBAApprover(idp.oauth_client(), authorization_details=[{"no": "type"}], keyring=keyring)


async def test_async_construction_check(idp, keyring):
    del idp.metadata["backchannel_authentication_endpoint"]
    approver = CIBAApprover(idp.oauth_client(), keyring=keyring, discover=False)
    with pytest.raises(E.ConfigurationError):
        await approver.acheck_configuration()


def test_auth0_profile_uses_bc_authorize_and_iss_sub(keyring):
    seen = []

    def handler(request):
        seen.append(request)
        if request.url.path == "/bc-authorize":
            return httpx.Response(200, json={"auth_req_id": "r" * 40, "expires_in": 60, "interval": 2})
        return httpx.Response(404)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    meta = {"issuer": "https://tenant.auth0.test/", "token_endpoint": "https://tenant.auth0.test/oauth/token"}
    approver = CIBAApprover.for_auth0("tenant.auth0.test", "id", "secret", audience="urn:my-api",
                                      client_kwargs={"http_client": http, "metadata": meta}, keyring=keyring)
    a = make_agent(approver, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context={"user": ALICE.model_copy(update={"subject": "auth0|42"})})
    (req,) = seen
    form = FakeCiba.form(req)
    assert str(req.url) == "https://tenant.auth0.test/bc-authorize"
    assert json.loads(form["login_hint"]) == {"format": "iss_sub", "iss": "https://tenant.auth0.test/",
                                              "sub": "auth0|42"}
    assert form["audience"] == "urn:my-api"


# --------------------------------------------------------------------------- block mode


@pytest.fixture
def fast_idp():
    return FakeCiba(interval=0.05)


def test_block_mode_waits_inline_and_streams_progress(fast_idp, keyring):
    approver = CIBAApprover(fast_idp.oauth_client(), keyring=keyring)
    a = make_agent(approver, pay_call(), config={"pay": {"approver": approver, "mode": "block"}})

    def phone():
        while fast_idp.polls() < 3:
            time.sleep(0.01)
        fast_idp.approve()

    threading.Thread(target=phone, daemon=True).start()
    chunks = list(a.stream({"messages": [("user", "pay")]}, CFG, context=CTX, stream_mode=["custom", "values"]))
    progress = [c for mode, c in chunks if mode == "custom"]
    assert progress and all(p["type"] == "agent_auth_progress" and p["kind"] == "approval" for p in progress)
    assert "on your device" in progress[0]["message"] and progress[0]["tool_call_id"] == "c1"
    assert [p["state"] for p in progress][-1] == "approved" and progress[0]["state"] == "waiting"
    final = [c for mode, c in chunks if mode == "values"][-1]
    assert tool_messages(final)[0].content == "paid 250 to Bob" and fast_idp.slow_downs() == 0
    assert fast_idp.hits["/bc-authorize"] == 1


async def test_async_block_mode_does_not_block_the_event_loop(fast_idp, keyring):
    approver = CIBAApprover(fast_idp.oauth_client(), keyring=keyring)
    guarded = with_approval(pay, approver, mode="block")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def phone():
        while fast_idp.polls() < 4:
            await asyncio.sleep(0.01)
        fast_idp.approve()

    t = asyncio.create_task(ticker())
    p = asyncio.create_task(phone())
    with acting_as(ALICE):
        out = await guarded.ainvoke({"amount": 5, "to": "Z"})
    t.cancel()
    await p
    assert out == "paid 5 to Z" and ticks >= 10 and fast_idp.polls() == 5


def test_block_mode_sync_tool_outside_a_graph_and_denial(fast_idp, keyring):
    approver = CIBAApprover(fast_idp.oauth_client(), keyring=keyring)
    guarded = with_approval(transfer_money, approver, mode="block")
    fast_idp.force = ["authorization_pending", "access_denied"]
    with acting_as(ALICE):
        out = guarded.invoke({"amount": 5, "to": "Z"})
    assert "denied" in out and SIDE_EFFECTS == []
    raising = with_approval(transfer_money, approver, mode="block", on_refusal="raise")
    fast_idp.force = ["expired_token"]
    with acting_as(ALICE), pytest.raises(E.ApprovalExpiredError):
        raising.invoke({"amount": 5, "to": "Z"})


def test_block_mode_survives_an_outage(fast_idp, keyring):
    approver = CIBAApprover(fast_idp.oauth_client(), keyring=keyring)
    guarded = with_approval(transfer_money, approver, mode="block")
    fast_idp.down = True

    def heal():
        while fast_idp.polls() < 2:
            time.sleep(0.01)
        fast_idp.down = False
        fast_idp.approve()

    threading.Thread(target=heal, daemon=True).start()
    with acting_as(ALICE):
        assert guarded.invoke({"amount": 5, "to": "Z"}) == "transferred 5 to Z"


def test_interval_defaults_to_five_seconds_when_absent(keyring, clock):
    idp = FakeCiba(clock, interval=None)
    approver = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    a = make_agent(approver, pay_call())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    assert interrupts(r)[0].value["interval"] == 5.0
    resumer = ApprovalResumer(a, approvers=[approver], clock=clock)
    clock.advance(4.9)
    assert resumer.run_once().due == 0 and idp.polls() == 0
    clock.advance(0.1)
    assert resumer.run_once().due == 1 and idp.polls() == 1 and idp.slow_downs() == 0


def test_oauth_client_type_is_checked(keyring):
    with pytest.raises(E.ConfigurationError):
        CIBAApprover("https://idp", keyring=keyring)  # type: ignore[arg-type]
    assert isinstance(OAuthClient, type)


def test_a_racing_poll_does_not_undo_an_approval(idp, ciba, clock):
    """The resumer and a manual resume poll at once: the loser's invalid_grant (token
    already issued) must not turn the approval into a failure."""
    a = make_agent(ciba, pay_call())
    a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    store = ciba.approval_store(a.store)
    clock.advance(1)
    (stale,) = store.due(clock())
    idp.approve()
    fresh = ciba.poll(stale, store)  # the winner gets the token
    assert fresh.status == "approved"
    idp.reqs[idp.latest()["rid"]]["polls"].clear()  # (no slow_down for the racing poll)
    assert ciba.poll(stale, store).status == "approved"  # the loser keeps it approved
    assert store.get(stale.key).status == "approved" and idp.counts["invalid_grant"] == 1


async def test_fully_async_pause_poll_and_resume(idp, ciba, clock):
    a = make_agent(ciba, pay_call())
    r = await a.ainvoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    assert interrupts(r)[0].value["type"] == "approval_pending"
    clock.advance(1)
    r = await a.ainvoke(Command(resume=check(r)), CFG, context=CTX)  # early: polls once, pauses again
    assert interrupts(r) and idp.polls() == 1 and idp.hits["/bc-authorize"] == 1
    idp.approve()
    clock.advance(1)
    rep = await ApprovalResumer(a, approvers=[ciba], clock=clock).arun_once()
    assert rep.resumed_items == 1 and SIDE_EFFECTS == [("pay", {"amount": 250, "to": "Bob"})]
    assert TOKENS_SEEN[0].access_token == idp.tokens[0]
