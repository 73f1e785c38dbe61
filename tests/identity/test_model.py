from __future__ import annotations

import pytest
from pydantic import ValidationError

from langchain_agent_auth.core.errors import IdentityError
from langchain_agent_auth.identity import (
    IdentitySource,
    LangGraphServerUserResolver,
    RuntimeContextResolver,
    StaticResolver,
    UserIdentity,
    acting_as,
    get_current_user,
    identity_from_sources,
    resolve_identity,
)
from langchain_agent_auth.identity.langgraph_auth import server_user


def test_from_claims_keeps_selected_claims_and_never_tokens():
    claims = {"sub": "alice", "iss": "https://i", "email": "a@x", "name": "Alice", "scope": "read write",
              "org_id": "acme", "acr": "mfa", "access_token": "SECRET", "nonce": "n"}
    u = UserIdentity.from_claims(claims)
    assert (u.subject, u.issuer, u.tenant, u.email, u.name) == ("alice", "https://i", "acme", "a@x", "Alice")
    assert u.scopes == ("read", "write") and u.claims == {"acr": "mfa"}
    assert "SECRET" not in u.model_dump_json()
    assert u.key == "https://i|acme|alice"


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 5}, {"sub": None}])
def test_from_claims_needs_a_subject(claims):
    with pytest.raises(IdentityError):
        UserIdentity.from_claims(claims)


@pytest.mark.parametrize("bad", [{"subject": ""}, {"subject": "a\x00b"}, {"subject": "x" * 300},
                                 {"subject": "a", "claims": {"refresh_token": "r"}}, {"subject": "a", "extra": 1}])
def test_model_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        UserIdentity(**bad)


def test_keys_differ_per_user_issuer_and_tenant():
    keys = {UserIdentity(subject=s, issuer=i, tenant=t).key
            for s in ("a", "b") for i in ("x", "y") for t in (None, "t")}
    assert len(keys) == 8


def test_coerce_shapes():
    assert UserIdentity.coerce({"subject": "a", "junk": 1}, source="state").subject == "a"
    assert UserIdentity.coerce({"sub": "b"}, source="state").subject == "b"
    assert UserIdentity.coerce({"identity": "c", "permissions": ["p"]}, source="langgraph_server").scopes == ("p",)
    assert UserIdentity.coerce({"identity": "d", "is_authenticated": False}, source="langgraph_server") is None
    assert UserIdentity.coerce("alice", source="state") is None
    assert UserIdentity.coerce(None, source="state") is None
    stored = server_user(UserIdentity(subject="e", email="e@x", tenant="t"))
    assert UserIdentity.coerce(stored, source="langgraph_server").tenant == "t"


def test_server_user_wins_over_context_and_contextvar():
    cfg = {"configurable": {"langgraph_auth_user": {"identity": "server-user"}}}
    ctx = {"user": UserIdentity(subject="client-claimed")}
    assert identity_from_sources(config=cfg, context=ctx).subject == "server-user"
    with acting_as(UserIdentity(subject="script")):
        assert identity_from_sources(config=cfg).subject == "server-user"
        assert identity_from_sources(context=ctx).subject == "script"
    src = IdentitySource(config=cfg, context=ctx)
    assert resolve_identity([RuntimeContextResolver()], src).subject == "server-user"


def test_resolvers():
    src = IdentitySource(context={"user": {"subject": "bob"}})
    assert RuntimeContextResolver().resolve(src).subject == "bob"
    assert LangGraphServerUserResolver().resolve(src) is None
    assert StaticResolver(UserIdentity(subject="s")).resolve(src).subject == "s"
    with pytest.raises(TypeError):
        StaticResolver("alice")  # type: ignore[arg-type]
    assert resolve_identity([], IdentitySource()) is None


def test_get_current_user_outside_a_graph():
    with pytest.raises(IdentityError, match="no trusted user identity"):
        get_current_user()
    assert get_current_user(required=False) is None
    with pytest.raises(TypeError), acting_as("alice"):  # type: ignore[arg-type]
        pass
