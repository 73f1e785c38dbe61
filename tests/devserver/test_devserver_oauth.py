"""Discovery, JWKS and key rotation, and the classic grants: client credentials, authorization
code + PKCE (through the login and consent pages), refresh with rotation, introspection,
revocation, userinfo, ID tokens."""

from __future__ import annotations

import time

import httpx
import pytest
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt

from langchain_agent_auth.core.errors import InvalidGrantError, OAuthError
from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import API, CIBA, DOWN, FEDERATED, PAYMENT, TE, ProviderHandle, verify


# ---------------------------------------------------------------------------- discovery & keys
def test_discovery_document(handle: ProviderHandle) -> None:
    meta = handle.metadata
    assert meta["issuer"] == handle.issuer
    OpenIDProviderMetadata(meta).validate()  # authlib's OIDC Discovery validation
    assert {CIBA, TE, FEDERATED, "client_credentials", "refresh_token", "authorization_code"} <= set(
        meta["grant_types_supported"]
    )
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    assert meta["backchannel_user_code_parameter_supported"] is False
    assert set(meta["authorization_details_types_supported"]) == {"agent_action", "payment_initiation"}
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    for name in (
        "token_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "backchannel_authentication_endpoint",
        "authorization_endpoint",
        "userinfo_endpoint",
    ):
        assert meta[name].startswith(handle.issuer + "/")
    # RFC 8414 location serves the same document
    assert httpx.get(handle.issuer + "/.well-known/oauth-authorization-server").json() == meta


def test_upstream_metadata(idp: LocalProvider) -> None:
    base = idp.issuer
    rfc8414 = httpx.get(base + "/.well-known/oauth-authorization-server/upstream").json()
    appended = httpx.get(idp.upstream_issuer + "/.well-known/oauth-authorization-server").json()
    assert rfc8414 == appended
    assert rfc8414["issuer"] == idp.upstream_issuer
    assert rfc8414["token_endpoint"] == idp.upstream_issuer + "/token"
    assert {"calendar.read", "calendar.write"} <= set(rfc8414["scopes_supported"])


def test_jwks_public_only(handle: ProviderHandle) -> None:
    jwks = httpx.get(handle.metadata["jwks_uri"]).json()
    algs = {k["alg"] for k in jwks["keys"]}
    assert {"RS256", "ES256"} <= algs
    for key in jwks["keys"]:
        assert key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_rotate_keys_keeps_old_key_published() -> None:
    with LocalProvider() as idp:
        auth = (idp.client_id, idp.client_secret)
        old = httpx.post(idp.issuer + "/token", auth=auth, data={"grant_type": "client_credentials"}).json()
        old_kid = jwt.decode(old["access_token"], _keys(idp)).header["kid"]
        added = idp.rotate_keys()
        assert len(added) == 2
        kids = {k["kid"] for k in httpx.get(idp.issuer + "/jwks").json()["keys"]}
        assert old_kid in kids and set(added) <= kids
        new = httpx.post(idp.issuer + "/token", auth=auth, data={"grant_type": "client_credentials"}).json()
        new_kid = jwt.decode(new["access_token"], _keys(idp)).header["kid"]
        assert new_kid in added and new_kid != old_kid
        # a token signed with the old key still verifies against the published JWKS
        assert jwt.decode(old["access_token"], _keys(idp)).claims["sub"] == idp.client_id
        # the published set is bounded: the 3 newest keys per algorithm
        for _ in range(3):
            idp.rotate_keys()
        published = httpx.get(idp.issuer + "/jwks").json()["keys"]
        assert sorted(k["alg"] for k in published) == ["ES256"] * 3 + ["RS256"] * 3


def _keys(idp: LocalProvider):
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(httpx.get(idp.issuer + "/jwks").json())


# ---------------------------------------------------------------------------- client credentials
def test_client_credentials_jwt(handle: ProviderHandle) -> None:
    r = handle.post(
        "token_endpoint", {"grant_type": "client_credentials", "resource": API, "scope": "api:read"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] > 0 and "refresh_token" not in tok
    header, claims = verify(handle, tok["access_token"], API, typ="at+jwt")
    assert header["alg"] == "RS256"
    assert claims["sub"] == handle.client_id == claims["client_id"]
    assert claims["scope"] == "api:read" and claims["jti"] and claims["iat"] <= time.time()

    class Validator(JWTBearerTokenValidator):  # authlib's RFC 9068 resource-server validator
        def get_jwks(self):
            return handle.keyset()

    validator = Validator(issuer=handle.issuer, resource_server=API)
    validator.validate_token(
        validator.authenticate_token(tok["access_token"]), scopes=["api:read"], request=None
    )


def test_client_credentials_scope_infers_resource_and_alg(handle: ProviderHandle) -> None:
    tok = handle.post(
        "token_endpoint", {"grant_type": "client_credentials", "scope": "downstream:read"}
    ).json()
    header, claims = verify(handle, tok["access_token"], DOWN)
    assert header["alg"] == "ES256" and claims["aud"] == DOWN


def test_client_credentials_audience_param_and_rar(handle: ProviderHandle) -> None:
    import json

    tok = handle.post(
        "token_endpoint",
        {"grant_type": "client_credentials", "audience": API, "authorization_details": json.dumps(PAYMENT)},
    ).json()
    assert tok["authorization_details"] == PAYMENT
    assert verify(handle, tok["access_token"], API)[1]["authorization_details"] == PAYMENT


@pytest.mark.parametrize(
    "data,error",
    [
        ({"scope": "openid"}, "invalid_scope"),  # no end-user in client_credentials
        ({"scope": "nope:read"}, "invalid_scope"),
        ({"resource": "urn:nope"}, "invalid_target"),
        ({"resource": API, "scope": "downstream:read"}, "invalid_scope"),
        ({"scope": "api:read downstream:read"}, "invalid_scope"),  # two resources, none named
        ({"authorization_details": '[{"type":"bogus"}]'}, "invalid_authorization_details"),
        ({"authorization_details": "not json"}, "invalid_authorization_details"),
    ],
)
def test_client_credentials_errors(handle: ProviderHandle, data: dict, error: str) -> None:
    r = handle.post("token_endpoint", {"grant_type": "client_credentials", **data})
    assert r.status_code == 400 and r.json()["error"] == error, r.text


# ---------------------------------------------------------------------------- authorization code
@pytest.fixture(scope="module")
def alice_tokens(idp: LocalProvider) -> dict:
    return idp.login(
        "alice", scope="openid profile email offline_access api:read", resource=API, nonce="n-0S6"
    )


def test_authorization_code_pkce_tokens(handle: ProviderHandle, alice_tokens: dict) -> None:
    tok = alice_tokens
    assert {"access_token", "id_token", "refresh_token", "expires_in", "scope"} <= set(tok)
    _, at = verify(handle, tok["access_token"], API, typ="at+jwt")
    assert at["sub"] == "alice" and "api:read" in at["scope"].split()
    assert at["acr"] == "urn:agent-auth:loa:1" and at["auth_time"] <= handle.idp.now()  # provider time
    _, idt = verify(handle, tok["id_token"], handle.client_id)
    assert idt["email"] == "alice@example.com" and idt["name"] == "Alice Example"
    assert idt["nonce"] == "n-0S6" and idt["at_hash"]
    CodeIDToken(
        idt,
        {"alg": "RS256"},
        {"iss": {"value": handle.issuer}, "nonce": {"value": "n-0S6"}},
        params={"nonce": "n-0S6"},
    ).validate(leeway=5)


def test_userinfo(handle: ProviderHandle, alice_tokens: dict) -> None:
    r = httpx.get(
        handle.metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {alice_tokens['access_token']}"},
    )
    assert r.json() == {
        "sub": "alice",
        "name": "Alice Example",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
    }
    r = httpx.get(handle.metadata["userinfo_endpoint"])
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.get(handle.metadata["userinfo_endpoint"], headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_refresh_rotation_and_reuse_detection(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("bob", scope="openid offline_access downstream:read")
    r1 = handle.post("token_endpoint", {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
    assert r1.status_code == 200, r1.text
    new = r1.json()
    assert new["refresh_token"] != tok["refresh_token"]
    _, claims = verify(handle, new["access_token"], DOWN)
    assert claims["sub"] == "bob" and claims["scope"] == "openid offline_access downstream:read"
    assert verify(handle, new["id_token"], handle.client_id)[1]["sub"] == "bob"
    # narrowing the scope on refresh is allowed, widening is not
    narrow = handle.post(
        "token_endpoint",
        {
            "grant_type": "refresh_token",
            "refresh_token": new["refresh_token"],
            "scope": "openid downstream:read",
        },
    )
    assert narrow.status_code == 200 and narrow.json()["scope"] == "openid downstream:read"
    wide = handle.post(
        "token_endpoint",
        {
            "grant_type": "refresh_token",
            "refresh_token": narrow.json()["refresh_token"],
            "scope": "api:write",
        },
    )
    assert wide.json()["error"] == "invalid_scope"
    # reusing a rotated refresh token revokes the whole grant (RFC 9700 §4.14.2)
    replay = handle.post(
        "token_endpoint", {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    latest = handle.post(
        "token_endpoint", {"grant_type": "refresh_token", "refresh_token": narrow.json()["refresh_token"]}
    )
    assert latest.json()["error"] == "invalid_grant"
    intro = handle.post("introspection_endpoint", {"token": narrow.json()["access_token"]}).json()
    assert intro == {"active": False}


def test_refresh_token_of_another_client_rejected(handle: ProviderHandle, idp: LocalProvider) -> None:
    other = idp.add_client(
        client_id="other-confidential", grant_types=["refresh_token", "client_credentials"]
    )
    tok = idp.login("alice", scope="openid offline_access")
    r = handle.post(
        "token_endpoint",
        {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
        auth=(other["client_id"], other["client_secret"]),
    )
    assert r.json()["error"] == "invalid_grant"


def test_no_refresh_token_without_offline_access(idp: LocalProvider) -> None:
    tok = idp.login("alice", scope="openid email")
    assert "refresh_token" not in tok and "id_token" in tok


def test_consent_denied_redirects_access_denied(idp: LocalProvider) -> None:
    import re
    from urllib.parse import parse_qs, urlencode, urlsplit

    params = {
        "response_type": "code",
        "client_id": idp.client_id,
        "redirect_uri": "http://127.0.0.1:9/cb",
        "scope": "openid",
        "state": "st-1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    with httpx.Client(follow_redirects=False) as browser:
        r = browser.get(
            idp.issuer + "/authorize", params={**params, "redirect_uri": "http://127.0.0.1/callback"}
        )
        assert r.status_code == 303 and "/login?next=" in r.headers["location"]
        login = browser.get(idp.issuer + r.headers["location"])
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        nxt = re.search(r'name="next" value="([^"]+)"', login.text).group(1).replace("&amp;", "&")
        r = browser.post(
            idp.issuer + "/login",
            data={"csrf": csrf, "next": nxt, "username": "alice", "password": idp.users["alice"]},
        )
        consent = browser.get(idp.issuer + r.headers["location"])
        assert "Allow access?" in consent.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
        r = browser.post(
            idp.issuer + "/authorize",
            content=urlencode({**fields, "decision": "deny"}),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-1"] and query["iss"] == [idp.issuer]


# ---------------------------------------------------------------------------- introspection & revocation
def test_introspection_and_revocation(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("alice", scope="openid offline_access api:read", resource=API)
    intro = handle.post("introspection_endpoint", {"token": tok["access_token"]}).json()
    assert intro["active"] is True and intro["sub"] == "alice" and intro["client_id"] == handle.client_id
    assert intro["aud"] == API and intro["iss"] == handle.issuer and intro["token_type"] == "Bearer"
    rt = handle.post(
        "introspection_endpoint", {"token": tok["refresh_token"], "token_type_hint": "refresh_token"}
    ).json()
    assert rt["active"] is True and rt["token_type"] == "refresh_token"
    # unknown hints are ignored (RFC 7662 §2.1)
    assert (
        handle.post(
            "introspection_endpoint", {"token": tok["access_token"], "token_type_hint": "bogus"}
        ).json()["active"]
        is True
    )
    # revoking the access token only
    assert handle.post("revocation_endpoint", {"token": tok["access_token"]}).status_code == 200
    assert handle.post("introspection_endpoint", {"token": tok["access_token"]}).json() == {"active": False}
    assert handle.post("introspection_endpoint", {"token": tok["refresh_token"]}).json()["active"] is True
    # revoking the refresh token revokes its grant
    assert handle.post("revocation_endpoint", {"token": tok["refresh_token"]}).status_code == 200
    assert handle.post("introspection_endpoint", {"token": tok["refresh_token"]}).json() == {"active": False}
    r = handle.post("token_endpoint", {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
    assert r.json()["error"] == "invalid_grant"
    # unknown tokens: revocation says 200, introspection says inactive
    assert handle.post("revocation_endpoint", {"token": "unknown-token"}).status_code == 200
    assert handle.post("introspection_endpoint", {"token": "unknown-token"}).json() == {"active": False}


def test_revoked_token_rejected_by_userinfo(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("bob", scope="openid")
    handle.post("revocation_endpoint", {"token": tok["access_token"]})
    r = httpx.get(
        handle.metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {tok['access_token']}"}
    )
    assert r.status_code == 401


def test_login_helper_wrong_password(idp: LocalProvider) -> None:
    with pytest.raises(OAuthError) as exc:
        idp.login("alice", "wrong-password")
    assert exc.value.error == "access_denied"


def test_replayed_code_revokes_tokens(handle: ProviderHandle, idp: LocalProvider) -> None:
    code, verifier, redirect = _code(idp, "alice", "openid offline_access")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "code_verifier": verifier,
    }
    first = handle.post("token_endpoint", form)
    assert first.status_code == 200
    again = handle.post("token_endpoint", form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    intro = handle.post("introspection_endpoint", {"token": first.json()["access_token"]}).json()
    assert intro == {"active": False}


@pytest.mark.parametrize(
    "change,error",
    [
        ({"code_verifier": "x" * 64}, "invalid_grant"),  # PKCE mismatch
        ({"code_verifier": "short"}, "invalid_request"),  # malformed verifier
        ({"code_verifier": None}, "invalid_request"),  # missing verifier
        ({"redirect_uri": "http://127.0.0.1/other"}, "invalid_grant"),  # redirect_uri mismatch
        ({"code": "not-a-code"}, "invalid_grant"),
        ({"code": None}, "invalid_request"),
    ],
)
def test_code_exchange_errors_leave_code_usable(
    handle: ProviderHandle, idp: LocalProvider, change: dict, error: str
) -> None:
    code, verifier, redirect = _code(idp, "bob", "openid")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "code_verifier": verifier,
    }
    bad = {k: v for k, v in {**form, **change}.items() if v is not None}
    r = handle.post("token_endpoint", bad)
    assert r.status_code == 400 and r.json()["error"] == error, r.text
    assert handle.post("token_endpoint", form).status_code == 200  # state intact: the code still works


def _code(idp: LocalProvider, user: str, scope: str) -> tuple[str, str, str]:
    """Drive the pages up to the redirect and return (code, verifier, redirect_uri)."""
    import re
    from urllib.parse import parse_qs, urlencode, urlsplit

    from authlib.common.security import generate_token
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier, redirect = generate_token(50), "http://127.0.0.1:53682/callback"
    params = {
        "response_type": "code",
        "client_id": idp.client_id,
        "redirect_uri": redirect,
        "scope": scope,
        "state": "s",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(follow_redirects=False) as browser:
        r = browser.get(idp.issuer + "/authorize", params=params)
        login = browser.get(idp.issuer + r.headers["location"])
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        nxt = re.search(r'name="next" value="([^"]+)"', login.text).group(1).replace("&amp;", "&")
        r = browser.post(
            idp.issuer + "/login",
            data={"csrf": csrf, "next": nxt, "username": user, "password": idp.users[user]},
        )
        consent = browser.get(idp.issuer + r.headers["location"])
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
        r = browser.post(
            idp.issuer + "/authorize",
            content=urlencode({**fields, "decision": "allow"}),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0], verifier, redirect


def test_invalid_grant_error_class_maps(handle: ProviderHandle) -> None:
    from langchain_agent_auth.core.errors import oauth_error_from_response

    r = handle.post("token_endpoint", {"grant_type": "refresh_token", "refresh_token": "nope"})
    assert isinstance(oauth_error_from_response(r.json(), status_code=r.status_code), InvalidGrantError)
