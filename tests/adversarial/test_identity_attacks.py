"""LLM01 / LLM06: the model tries to act for another user through tool arguments.

Invariant 1: no argument the model fills can name or change the user. Every test drives a
real ``create_agent`` graph with :class:`IdentityMiddleware`; the expected outcome is the
refusal ``ToolMessage`` and a tool that never ran (or, with ``on_conflict="override"``, a
tool that ran for the signed-in user).
"""

from __future__ import annotations

import pytest

from langchain_agent_auth.identity import IdentityMiddleware
from tests.adversarial.attacker import ALICE, Attacker, agent, call, cfg, tool_messages
from tests.adversarial.tools import account_statement, bulk_share, list_files, post_note, ran, share_document

REFUSAL = "This tool acts only for the signed-in user; it cannot act for another user."


def run(model: Attacker, tools: list, **identity_kw):
    graph = agent(model, tools, [IdentityMiddleware(**identity_kw)])
    return graph.invoke({"messages": [("user", "do it")]}, cfg("t-id"), context={"user": ALICE})


def test_top_level_user_id_naming_another_user_is_refused():
    model = Attacker(script=[call("list_files", {"user_id": "bob", "folder": "/"})])
    (msg,) = tool_messages(run(model, [list_files]))
    assert msg.content == REFUSAL and msg.status == "error"
    assert ran("list_files") == []


@pytest.mark.parametrize("grant", [
    {"user_id": "bob"},                                   # the configured name, nested
    {"owner_id": "bob"},                                  # a renamed identity field
    {"recipient": {"Account-Owner": "bob@example.com"}},  # deeper, other spelling, an email
    {"on_behalf_of": {"email": "bob@example.com"}},       # an object naming the user
])
def test_another_user_in_a_nested_or_renamed_field_is_refused(grant):
    model = Attacker(script=[call("share_document", {"doc": "d1", "grant": grant})])
    (msg,) = tool_messages(run(model, [share_document]))
    assert msg.content == REFUSAL
    assert ran("share_document") == []


def test_another_user_in_a_list_of_objects_is_refused():
    shares = [{"owner_id": "alice", "role": "reader"}, {"owner_id": "bob", "role": "writer"}]
    model = Attacker(script=[call("bulk_share", {"doc": "d1", "shares": shares})])
    (msg,) = tool_messages(run(model, [bulk_share]))
    assert msg.content == REFUSAL and ran("bulk_share") == []


def test_a_renamed_top_level_identity_argument_is_refused():
    model = Attacker(script=[call("account_statement", {"account_owner": "bob", "month": "2026-11"})])
    (msg,) = tool_messages(run(model, [account_statement]))
    assert msg.content == REFUSAL and ran("account_statement") == []


def test_the_signed_in_user_in_identity_fields_is_allowed():
    model = Attacker(script=[
        call("account_statement", {"account_owner": "ALICE@example.com", "month": "2026-11"}),
    ])
    (msg,) = tool_messages(run(model, [account_statement]))
    assert msg.content == "statement of ALICE@example.com for 2026-11"
    assert ran("account_statement") == [{"account_owner": "ALICE@example.com", "month": "2026-11"}]


def test_override_rewrites_a_nested_identity_field_to_the_signed_in_user():
    model = Attacker(script=[call("share_document", {"doc": "d1", "grant": {"owner_id": "bob", "role": "r"}})])
    (msg,) = tool_messages(run(model, [share_document], on_conflict="override"))
    assert msg.content == "shared d1"
    assert ran("share_document") == [{"doc": "d1", "grant": {"owner_id": "alice", "role": "r"}}]


def test_a_configured_dotted_path_is_checked():
    model = Attacker(script=[call("share_document", {"doc": "d1", "grant": {"member": "bob"}})])
    (msg,) = tool_messages(run(model, [share_document], user_args={"grant.member": "subject"}))
    assert msg.content == REFUSAL and ran("share_document") == []


def test_a_known_other_user_under_any_key_is_refused():
    model = Attacker(script=[call("post_note", {"text": "Bob@Example.com"})])
    (msg,) = tool_messages(run(model, [post_note], known_users={"bob", "bob@example.com"}))
    assert msg.content == REFUSAL and ran("post_note") == []


def test_free_text_mentioning_someone_is_not_an_identity_claim():
    # Documented limit: only identity fields, configured paths and known users are checked.
    model = Attacker(script=[call("post_note", {"text": "remind Bob about lunch"})])
    (msg,) = tool_messages(run(model, [post_note], known_users={"bob"}))
    assert msg.content == "posted" and ran("post_note") == [{"text": "remind Bob about lunch"}]


async def test_nested_refusal_holds_with_ainvoke():
    model = Attacker(script=[call("share_document", {"doc": "d1", "grant": {"owner_id": "bob"}})])
    graph = agent(model, [share_document], [IdentityMiddleware()])
    result = await graph.ainvoke({"messages": [("user", "do it")]}, cfg("t-id-a"), context={"user": ALICE})
    (msg,) = tool_messages(result)
    assert msg.content == REFUSAL and ran("share_document") == []
