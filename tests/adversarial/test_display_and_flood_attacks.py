"""LLM01 / LLM10: the model tries to mislead the approver or wear them down.

* approval flooding: a per-user cap on pending approvals (``max_pending``), a typed
  refusal (:class:`ApprovalLimitError`) past it and no request sent;
* binding messages and RAR details with bidi controls, zero-width characters or
  homoglyphs: refused before any request, for CIBA and in-app alike
  (:class:`UnsafeArgumentsError`), while ordinary non-Latin text and emoji pass;
* huge or deeply nested arguments: refused before they are digested in full or shown.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth.approval import ApprovalMiddleware, CIBAApprover, InAppApprover
from langchain_agent_auth.identity import IdentityMiddleware
from tests.adversarial.attacker import ALICE, BOB, Attacker, agent, call, calls, cfg, interrupts, tool_messages
from tests.adversarial.tools import ran, submit_form, transfer
from tests.approval.fake_ciba import Clock, FakeCiba


def graph_for(approver, model, tools, *, store=None, **policy):
    config = {t.name: {"approver": approver, **policy} for t in tools}
    return agent(model, tools, [IdentityMiddleware(), ApprovalMiddleware(config)], store=store)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def idp(clock):
    return FakeCiba(clock)


@pytest.fixture(params=["ciba", "in_app"])
def approver(request, keyring, idp, clock):
    if request.param == "ciba":
        return CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    return InAppApprover(keyring=keyring, clock=clock)


# --------------------------------------------------------------------------- flooding


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield InMemoryStore()
        return
    conn = sqlite3.connect(str(tmp_path / "store.sqlite"), check_same_thread=False, isolation_level=None)
    s = SqliteStore(conn)
    s.setup()
    yield s
    conn.close()


def test_pending_approvals_are_capped_per_user(approver, idp, store):
    model = Attacker(script=[call("transfer", {"amount": 1, "to": "Bob"})])
    graph = graph_for(approver, model, [transfer], store=store, max_pending=3)
    for i in range(3):
        r = graph.invoke({"messages": [("user", "pay")]}, cfg(f"t-flood-{i}"), context={"user": ALICE})
        assert len(interrupts(r)) == 1
    sent = len(idp.reqs)
    r = graph.invoke({"messages": [("user", "pay")]}, cfg("t-flood-3"), context={"user": ALICE})
    (msg,) = tool_messages(r)
    assert not interrupts(r) and msg.status == "error" and "Too many approval requests" in msg.content
    assert len(idp.reqs) == sent  # nothing was sent to the user's device
    # another user is not affected by Alice's queue
    r = graph.invoke({"messages": [("user", "pay")]}, cfg("t-bob"), context={"user": BOB})
    assert len(interrupts(r)) == 1
    assert ran("transfer") == []


def test_expired_approvals_do_not_count_against_the_cap(keyring, clock, store):
    approver = InAppApprover(keyring=keyring, clock=clock, expires_in=60)
    model = Attacker(script=[call("transfer", {"amount": 1, "to": "Bob"})])
    graph = graph_for(approver, model, [transfer], store=store, max_pending=1)
    assert interrupts(graph.invoke({"messages": [("user", "pay")]}, cfg("t-x1"), context={"user": ALICE}))
    assert not interrupts(graph.invoke({"messages": [("user", "pay")]}, cfg("t-x2"), context={"user": ALICE}))
    clock.advance(61)
    assert interrupts(graph.invoke({"messages": [("user", "pay")]}, cfg("t-x3"), context={"user": ALICE}))


async def test_the_cap_holds_with_ainvoke(keyring, clock):
    approver = InAppApprover(keyring=keyring, clock=clock)
    model = Attacker(script=[call("transfer", {"amount": 1, "to": "Bob"})])
    graph = graph_for(approver, model, [transfer], store=InMemoryStore(), max_pending=1, on_refusal="raise")
    r = await graph.ainvoke({"messages": [("user", "pay")]}, cfg("t-a1"), context={"user": ALICE})
    assert interrupts(r)
    from langchain_agent_auth.core.errors import ApprovalLimitError

    with pytest.raises(ApprovalLimitError):
        await graph.ainvoke({"messages": [("user", "pay")]}, cfg("t-a2"), context={"user": ALICE})


# --------------------------------------------------------------------------- misleading text

WHY = {"hidden_characters": "invisible or direction-changing", "mixed_script": "look-alike alphabets"}


@pytest.mark.parametrize("to, reason", [
    ("Bob \u202eyppaM\u202c", "hidden_characters"),           # right-to-left override
    ("Bob\u2066 (refund)\u2069", "hidden_characters"),         # bidi isolate
    ("B\u200bo\u200bb", "hidden_characters"),                   # zero-width space
    ("Bob\ufeff", "hidden_characters"),                         # BOM / zero-width no-break space
    ("Bob\u00ad", "hidden_characters"),                         # soft hyphen (Cf)
    ("Bob\x1b[2K", "hidden_characters"),                        # a terminal escape (Cc)
    ("P\u0430yPal", "mixed_script"),                            # Cyrillic small a in a Latin name
    ("D\u0415 89 3704 0044 0532 0130 00", "mixed_script"),      # Cyrillic capital IE in an IBAN
    ("\uff22ob", "mixed_script"),                               # fullwidth B + Latin
])
def test_text_meant_to_mislead_the_approver_is_refused_before_any_request(approver, idp, to, reason):
    model = Attacker(script=[call("transfer", {"amount": 9000, "to": to})])
    graph = graph_for(approver, model, [transfer], on_refusal="message")
    r = graph.invoke({"messages": [("user", "pay")]}, cfg("t-text"), context={"user": ALICE})
    (msg,) = tool_messages(r)
    assert not interrupts(r) and msg.status == "error" and "could not check them" in msg.content
    assert WHY[reason] in msg.content
    assert idp.reqs == {} and ran("transfer") == []


def test_the_refusal_is_typed(keyring, clock):
    from langchain_agent_auth.core.errors import UnsafeArgumentsError

    model = Attacker(script=[call("transfer", {"amount": 9000, "to": "P\u0430yPal"})])
    graph = graph_for(InAppApprover(keyring=keyring, clock=clock), model, [transfer], on_refusal="raise")
    with pytest.raises(UnsafeArgumentsError) as info:
        graph.invoke({"messages": [("user", "pay")]}, cfg("t-typed"), context={"user": ALICE})
    assert info.value.reason == "mixed_script" and "CYRILLIC+LATIN" in str(info.value)


@pytest.mark.parametrize("to", ["Москва Банк", "Ζωή", "山田太郎", "Tシャツ店", "Zoë Saldaña", "Line one\nline two",
                                "Bob \U0001F468\u200d\U0001F469\u200d\U0001F467"])
def test_ordinary_text_in_any_script_still_asks(approver, to):
    model = Attacker(script=[call("transfer", {"amount": 9000, "to": to})])
    graph = graph_for(approver, model, [transfer])
    (pause,) = interrupts(graph.invoke({"messages": [("user", "pay")]}, cfg("t-ok"), context={"user": ALICE}))
    assert pause.value["tool"] == "transfer"


def test_what_the_provider_receives_is_what_the_model_sent(idp, keyring, clock):
    # RAR details carry the arguments verbatim (JSON), so the text must be safe to show as is.
    approver = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    model = Attacker(script=[call("transfer", {"amount": 9000, "to": "Zoë Saldaña"})])
    graph_for(approver, model, [transfer]).invoke({"messages": [("user", "pay")]}, cfg("t-rar"),
                                                   context={"user": ALICE})
    details = json.loads(idp.latest()["form"]["authorization_details"])
    assert details[0]["arguments"]["to"] == "Zoë Saldaña"
    assert "Zoë Saldaña" in idp.latest()["form"]["binding_message"]


# --------------------------------------------------------------------------- huge arguments


def test_huge_arguments_are_refused_before_any_request(approver, idp):
    model = Attacker(script=[call("transfer", {"amount": 1, "to": "Bob", "reference": "x" * 200_000})])
    graph = graph_for(approver, model, [transfer])
    r = graph.invoke({"messages": [("user", "pay")]}, cfg("t-huge"), context={"user": ALICE})
    (msg,) = tool_messages(r)
    assert not interrupts(r) and "too large" in msg.content and msg.status == "error"
    assert idp.reqs == {} and ran("transfer") == []


def test_deeply_nested_arguments_are_refused(approver, idp):
    payload: dict = {"leaf": 1}
    for _ in range(200):
        payload = {"n": payload}
    model = Attacker(script=[call("submit_form", {"payload": payload})])
    graph = graph_for(approver, model, [submit_form])
    r = graph.invoke({"messages": [("user", "go")]}, cfg("t-deep"), context={"user": ALICE})
    (msg,) = tool_messages(r)
    assert not interrupts(r) and "nested too deeply" in msg.content
    assert idp.reqs == {} and ran("submit_form") == []


def test_the_size_bound_is_configurable(keyring, clock):
    model = Attacker(script=[call("transfer", {"amount": 1, "to": "Bob", "reference": "x" * 200_000})])
    graph = graph_for(InAppApprover(keyring=keyring, clock=clock), model, [transfer], max_args_size=1_000_000)
    (pause,) = interrupts(graph.invoke({"messages": [("user", "pay")]}, cfg("t-big-ok"), context={"user": ALICE}))
    assert pause.value["args_truncated"] is True and len(json.dumps(pause.value)) < 10_000


def test_parallel_calls_in_one_message_cannot_overshoot_the_cap(approver, idp):
    # create_agent runs each call of a message as its own task, in parallel: the count and
    # the new request must be one step for them.
    burst = calls(*[("transfer", {"amount": i + 1, "to": "Bob"}, f"c{i}") for i in range(12)])
    graph = graph_for(approver, Attacker(script=[burst]), [transfer], store=InMemoryStore(), max_pending=3)
    r = graph.invoke({"messages": [("user", "pay")]}, cfg("t-burst"), context={"user": ALICE})
    refused = [m for m in tool_messages(r) if "Too many approval requests" in m.content]
    assert len(interrupts(r)) == 3 and len(refused) == 9
    assert len(idp.reqs) in (0, 3) and ran("transfer") == []


async def test_parallel_calls_cannot_overshoot_the_cap_with_ainvoke(keyring, clock):
    burst = calls(*[("transfer", {"amount": i + 1, "to": "Bob"}, f"c{i}") for i in range(12)])
    graph = graph_for(InAppApprover(keyring=keyring, clock=clock), Attacker(script=[burst]), [transfer],
                      store=InMemoryStore(), max_pending=3)
    r = await graph.ainvoke({"messages": [("user", "pay")]}, cfg("t-aburst"), context={"user": ALICE})
    assert len(interrupts(r)) == 3 and ran("transfer") == []
