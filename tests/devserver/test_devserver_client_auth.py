"""Client authentication at the token, CIBA, introspection and revocation endpoints:
client_secret_basic, client_secret_post, private_key_jwt, none (public clients with PKCE)."""

from __future__ import annotations

import time

import httpx
import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey

from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import API, ProviderHandle, verify

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def pkjwt(idp: LocalProvider) -> tuple[str, ECKey]:
    key = ECKey.generate_key("P-256", parameters={"kid": "agent-pkjwt-1", "alg": "ES256", "use": "sig"})
    client = idp.add_client(
        client_id="agent-pkjwt",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials", "urn:openid:params:grant-type:ciba", "refresh_token"],
    )
    assert client["client_secret"] is None
    return client["client_id"], key


def _assertion(client_id: str, key: ECKey, audience: str, **claims: object) -> dict[str, str]:
    return {
        "client_assertion_type": ASSERTION,
        "client_assertion": private_key_jwt_sign(
            key, client_id, audience, alg="ES256", claims=claims or None
        ),
    }


def test_client_secret_basic_and_post(handle: ProviderHandle, idp: LocalProvider) -> None:
    basic = handle.post("token_endpoint", {"grant_type": "client_credentials"})
    assert basic.status_code == 200
    post = httpx.post(
        handle.metadata["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "client_id": handle.client_id,
            "client_secret": handle.client_secret,
        },
    )
    assert post.status_code == 200
    posted = idp.add_client(
        client_id="agent-post-only",
        token_endpoint_auth_method="client_secret_post",
        grant_types=["client_credentials"],
    )
    r = httpx.post(
        handle.metadata["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "resource": API,
            "scope": "api:write",
            "client_id": posted["client_id"],
            "client_secret": posted["client_secret"],
        },
    )
    assert verify(handle, r.json()["access_token"], API)[1]["client_id"] == "agent-post-only"


def test_private_key_jwt(handle: ProviderHandle, pkjwt: tuple[str, ECKey]) -> None:
    client_id, key = pkjwt
    token_endpoint = handle.metadata["token_endpoint"]
    r = httpx.post(
        token_endpoint,
        data={
            "grant_type": "client_credentials",
            "resource": API,
            "scope": "api:read",
            **_assertion(client_id, key, token_endpoint),
        },
    )
    assert r.status_code == 200, r.text
    assert verify(handle, r.json()["access_token"], API)[1]["client_id"] == client_id
    # the issuer is an accepted audience too, and the same method works at the CIBA endpoint
    r = httpx.post(
        handle.metadata["backchannel_authentication_endpoint"],
        data={"login_hint": "bob", "scope": "openid", **_assertion(client_id, key, handle.issuer)},
    )
    assert r.status_code == 200, r.text
    # a replayed assertion (same jti) is refused
    once = _assertion(client_id, key, token_endpoint, jti="fixed-jti-1")
    assert httpx.post(token_endpoint, data={"grant_type": "client_credentials", **once}).status_code == 200
    again = httpx.post(token_endpoint, data={"grant_type": "client_credentials", **once})
    assert again.status_code in (400, 401) and again.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "case", ["wrong_key", "wrong_aud", "expired", "other_sub", "garbage", "hs256", "no_type"]
)
def test_private_key_jwt_rejections(handle: ProviderHandle, pkjwt: tuple[str, ECKey], case: str) -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    client_id, key = pkjwt
    token_endpoint = handle.metadata["token_endpoint"]
    if case == "wrong_key":
        data = _assertion(client_id, ECKey.generate_key("P-256"), token_endpoint)
    elif case == "wrong_aud":
        data = _assertion(client_id, key, "https://elsewhere.example/token")
    elif case == "expired":
        data = _assertion(client_id, key, token_endpoint, exp=int(time.time()) - 3600)
    elif case == "other_sub":
        data = _assertion("agent-client", key, token_endpoint)
    elif case == "garbage":
        data = {"client_assertion_type": ASSERTION, "client_assertion": "not.a.jwt"}
    elif case == "hs256":
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "exp": now + 60,
            "jti": "x" + case,
        }
        data = {
            "client_assertion_type": ASSERTION,
            "client_assertion": jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256)),
        }
    else:
        data = {"client_assertion": _assertion(client_id, key, token_endpoint)["client_assertion"]}
    r = httpx.post(token_endpoint, data={"grant_type": "client_credentials", **data})
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] == "invalid_client"


def test_public_client_with_pkce(handle: ProviderHandle, idp: LocalProvider) -> None:
    public = idp.add_client(
        client_id="spa-public",
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["http://localhost/callback"],
    )
    assert public["client_secret"] is None
    tok = idp.login(
        "alice",
        client_id="spa-public",
        redirect_uri="http://localhost:8080/callback",
        scope="openid offline_access",
    )
    assert verify(handle, tok["id_token"], "spa-public")[1]["sub"] == "alice"
    r = httpx.post(
        handle.metadata["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": tok["refresh_token"],
            "client_id": "spa-public",
        },
    )
    assert r.status_code == 200, r.text
    # a public client cannot use the confidential-only endpoints
    r = httpx.post(
        handle.metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "client_id": "spa-public"},
    )
    assert r.json()["error"] == "invalid_client"
    r = httpx.post(
        handle.metadata["introspection_endpoint"],
        data={"token": tok["access_token"], "client_id": "spa-public"},
    )
    assert r.json()["error"] == "invalid_client"
    # ... but may revoke its own tokens (RFC 7009)
    r = httpx.post(
        handle.metadata["revocation_endpoint"],
        data={"token": tok["refresh_token"], "client_id": "spa-public"},
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "auth,data,status",
    [
        (("agent-client", "wrong-secret"), {}, 401),
        (("nobody", "secret"), {}, 401),
        (None, {"client_id": "agent-client", "client_secret": "wrong"}, (400, 401)),
        (None, {"client_id": "nobody", "client_secret": "x"}, (400, 401)),
        (None, {}, (400, 401)),
        (None, {"client_id": "agent-client"}, (400, 401)),  # a confidential client cannot skip authentication
    ],
)
def test_invalid_client(handle: ProviderHandle, auth: tuple | None, data: dict, status: int | tuple) -> None:
    for endpoint in (
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "backchannel_authentication_endpoint",
    ):
        form = {
            "grant_type": "client_credentials",
            "token": "x",
            "login_hint": "alice",
            "scope": "openid",
            **data,
        }
        r = httpx.post(handle.metadata[endpoint], data=form, auth=auth)
        expected = status if isinstance(status, tuple) else (status,)
        assert r.status_code in expected and r.json()["error"] == "invalid_client", (endpoint, r.text)
        if r.status_code == 401 and auth is not None:
            assert r.headers["www-authenticate"].startswith("Basic")


def test_malformed_basic_header(handle: ProviderHandle) -> None:
    for value in ("Basic !!!", "Basic " + "w6g=", "Basic bm9jb2xvbg==", "Basic"):
        r = httpx.post(
            handle.metadata["token_endpoint"],
            data={"grant_type": "client_credentials"},
            headers={"Authorization": value},
        )
        assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client", value
