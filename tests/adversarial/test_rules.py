"""The rules behind the adversarial suite, on their own: boundary and hostile input."""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage

from langchain_agent_auth.approval import ApprovalGuard, InAppApprover, display_hazard
from langchain_agent_auth.approval._digest import args_digest
from langchain_agent_auth.core._scrub import scrub
from langchain_agent_auth.core._user_fields import replace_at
from langchain_agent_auth.core.errors import ConfigurationError, UnsafeArgumentsError
from langchain_agent_auth.identity import IDENTITY_FIELDS, IdentityGuard, find_foreign
from tests.adversarial.attacker import ALICE

SECRET = "tok-0123456789"


def test_scrub_walks_every_container_and_keeps_untouched_objects():
    data = {"a": [SECRET, ("x", f"Bearer {SECRET}")], SECRET: 1, "n": 5}
    assert scrub(data, [SECRET]) == {"a": ["[redacted]", ("x", "Bearer [redacted]")], "[redacted]": 1, "n": 5}
    clean = {"a": ["x", ("y",)], "b": None}
    assert scrub(clean, [SECRET]) is clean
    msg = ToolMessage(content=[{"type": "text", "text": SECRET}], tool_call_id="c", artifact={"raw": SECRET})
    out = scrub(msg, [SECRET])
    assert out.content == [{"type": "text", "text": "[redacted]"}] and out.artifact == {"raw": "[redacted]"}


def test_scrub_ignores_empty_and_short_secrets():
    assert scrub("a b c", ["", None, "b"]) == "a b c"


def test_scrub_stops_at_depth_without_recursion_errors():
    deep: list = [SECRET]
    for _ in range(5000):
        deep = [deep]
    scrub(deep, [SECRET])  # no RecursionError


@pytest.mark.parametrize("args, expected", [
    ({"k\u202e": "v"}, ("hidden_characters", "k\u202e (name)", "U+202E")),
    ({"a": [1, {"b": "x\u2060y"}]}, ("hidden_characters", "a.1.b", "U+2060")),
    ({"a": "\u200d"}, ("hidden_characters", "a", "U+200D")),  # a lone ZWJ
    ({"a": "x\ue000"}, ("hidden_characters", "a", "U+E000")),  # private use
    ({"a": "\u0391lpha"}, ("mixed_script", "a", "GREEK+LATIN")),
])
def test_display_hazard_finds_keys_nested_values_and_lone_joiners(args, expected):
    assert display_hazard(args) == expected


@pytest.mark.parametrize("args", [{}, {"a": None, "b": 3, "c": 1.5, "d": b"\x00"}, {"t": "tab\tand\nnewline"},
                                  {"e": "\U0001F3F3\ufe0f\u200d\U0001F308"}, {"x": "中文 English"}])
def test_display_hazard_passes_ordinary_values(args):
    assert display_hazard(args) is None


def test_digest_stops_at_the_size_bound():
    with pytest.raises(ValueError, match="larger than 100"):
        args_digest({"a": "x" * 1000}, max_size=100)
    assert args_digest({"a": "x"}, max_size=100) == args_digest({"a": "x"})


@pytest.mark.parametrize("kw", [{"max_pending": 0}, {"max_pending": True}, {"max_pending": "5"},
                                {"max_args_size": 10}, {"max_args_size": 1.5}])
def test_approval_limits_are_validated(kw):
    with pytest.raises(ConfigurationError):
        ApprovalGuard(InAppApprover(), **kw)


def test_unsafe_arguments_error_carries_its_reason():
    err = UnsafeArgumentsError("x", reason="too_large", hint="h")
    assert err.reason == "too_large" and err.for_model() == "h"


def test_find_foreign_rules():
    assert find_foreign({"owner": None}, ALICE, {}) is None
    assert find_foreign({"owner": 42}, ALICE, {}).path == "owner"
    assert find_foreign({"owner": ["alice", "bob"]}, ALICE, {}).path == "owner.1"
    assert find_foreign({"x": {"user": {"name": "Bob", "id": "alice"}}}, ALICE, {}) is None
    assert find_foreign({"on-behalf-of": "alice@EXAMPLE.com"}, ALICE, {}) is None
    assert find_foreign({"on-behalf-of": "bob"}, ALICE, {}, identity_fields=()) is None
    assert find_foreign({"note": "bob"}, ALICE, {}, known_users=lambda s: s == "bob").path == "note"
    assert "account_owner" in IDENTITY_FIELDS


def test_replace_at_leaves_the_input_untouched():
    args = {"a": [{"owner": "bob"}]}
    assert replace_at(args, ("a", "0", "owner"), "alice") == {"a": [{"owner": "alice"}]}
    assert args == {"a": [{"owner": "bob"}]}
    assert replace_at(args, ("a", "9", "owner"), "alice") == args  # a path that is not there


def test_identity_guard_rejects_a_single_string_as_a_collection():
    with pytest.raises(ValueError):
        IdentityGuard(identity_fields="owner")
    with pytest.raises(ValueError):
        IdentityGuard(known_users="bob")
