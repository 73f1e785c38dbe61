"""Provider profiles are data the protocol code reads: Auth0's endpoints, hint and exchange."""

from __future__ import annotations

import pytest

from langchain_agent_auth.core.errors import ConfigurationError, IdentityError
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.oauth import AUTH0_FEDERATED_GRANT, AUTH0_FEDERATED_TOKEN_TYPE, OAuthClient
from langchain_agent_auth.oauth.profiles import (
    AUTH0,
    AUTH0_TOKEN_VAULT,
    GENERIC_OIDC,
    LOCAL,
    OKTA,
    login_hint_for,
    profile,
)


def test_every_profile_is_found_by_name():
    assert [profile(n) for n in ("auth0", "okta", "local", "oidc")] == [AUTH0, OKTA, LOCAL, GENERIC_OIDC]
    with pytest.raises(ConfigurationError, match="unknown provider profile"):
        profile("keycloak-ish")


def test_auth0_profile_drives_the_client():
    client = OAuthClient.for_auth0("https://tenant.auth0.test/", "id", "secret")
    assert client.issuer == AUTH0.issuer_for("tenant.auth0.test") == "https://tenant.auth0.test/"
    assert client._overrides == AUTH0.metadata_overrides(client.issuer)
    assert OKTA.issuer_for("acme.okta.com") == "https://acme.okta.com/oauth2/default"
    assert GENERIC_OIDC.metadata_overrides("https://idp.example") == {}


def test_token_vault_exchange_parameters_come_from_the_profile():
    assert AUTH0_TOKEN_VAULT.grant_type == AUTH0_FEDERATED_GRANT
    assert AUTH0_TOKEN_VAULT.requested_token_type == AUTH0_FEDERATED_TOKEN_TYPE
    params = AUTH0_TOKEN_VAULT.params("at", "access_token", "github", login_hint="me")
    assert params["subject_token_type"].endswith(":access_token") and params["connection"] == "github"
    assert LOCAL.federated_exchange is AUTH0.federated_exchange
    with pytest.raises(ConfigurationError):
        AUTH0_TOKEN_VAULT.params("t", "id_token", "github")


@pytest.mark.parametrize(("fmt", "expected"), [
    ("subject", "alice"),
    ("email", "alice@example.com"),
    ("iss_sub", '{"format":"iss_sub","iss":"https://t.auth0.com/","sub":"alice"}'),
])
def test_login_hint_formats(fmt, expected):
    user = UserIdentity(subject="alice", email="alice@example.com")
    assert login_hint_for(fmt, user, "https://t.auth0.com/") == expected


def test_email_hint_needs_an_email():
    with pytest.raises(IdentityError):
        login_hint_for("email", UserIdentity(subject="alice"), "https://idp.example/")
