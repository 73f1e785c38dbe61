"""OAuthClient through httpx.MockTransport, each test in sync and async mode."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from langchain_agent_auth import errors as E
from langchain_agent_auth.oauth import (
    AUTH0_FEDERATED_GRANT,
    AUTH0_FEDERATED_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    TOKEN_TYPE_ACCESS,
    TOKEN_TYPE_REFRESH,
    OAuthClient,
    Pkce,
)
from tests.support.fake_idp import FakeProvider, error


async def test_discovery_is_cached(make_client, idp: FakeProvider):
    c = make_client()
    await c("client_credentials")
    await c("client_credentials")
    assert idp.hits["/.well-known/openid-configuration"] == 1 and idp.hits["/token"] == 2


async def test_discovery_issuer_mismatch_is_refused(make_client, idp: FakeProvider):
    idp.metadata["issuer"] = "https://evil.test"
    with pytest.raises(E.ConfigurationError, match=r"names issuer .https://evil\.test."):
        await make_client()("metadata")


@pytest.mark.parametrize(
    "answer,exc",
    [
        (httpx.Response(200, text="<html>hello</html>", headers={"content-type": "text/html"}), E.ProtocolError),
        (httpx.Response(200, content=b""), E.ProtocolError),
        (httpx.Response(200, json=["not", "an", "object"]), E.ProtocolError),
        (httpx.Response(200, json={"token_endpoint": "x"}), E.ProtocolError),  # no issuer
        (httpx.Response(500, text="oops"), E.ProviderUnavailableError),
        (httpx.Response(403, text="<html>forbidden</html>"), E.ProtocolError),
    ],
)
async def test_bad_discovery_answers(make_client, idp: FakeProvider, answer, exc):
    idp.script("/.well-known/openid-configuration", *([answer] * 3))
    with pytest.raises(exc):
        await make_client()("metadata")


async def test_timeout_is_retried_then_reported(make_client, idp: FakeProvider):
    idp.script("/.well-known/openid-configuration", *[httpx.ReadTimeout("slow")] * 3)
    with pytest.raises(E.ProviderUnavailableError, match="ReadTimeout"):
        await make_client()("metadata")
    assert idp.hits["/.well-known/openid-configuration"] == 3


async def test_5xx_recovers_on_retry(make_client, idp: FakeProvider):
    idp.script("/token", httpx.Response(503, text="busy"))
    token = await make_client()("client_credentials", scope=["a", "b"])
    assert token.access_token.startswith("at-") and idp.hits["/token"] == 2
    assert FakeProvider.form(idp.last("/token"))["scope"] == "a b"


@pytest.mark.parametrize("description", [None, "the grant was revoked"])
async def test_error_response_with_and_without_description(make_client, idp: FakeProvider, description):
    idp.script("/token", error(400, "invalid_grant", description))
    with pytest.raises(E.InvalidGrantError) as info:
        await make_client()("refresh", "old-refresh-token-value")
    assert info.value.error_description == description and info.value.status_code == 400


async def test_401_without_body_is_invalid_client(make_client, idp: FakeProvider):
    idp.script("/token", httpx.Response(401, headers={"www-authenticate": 'Basic realm="x"'}))
    with pytest.raises(E.InvalidClientError):
        await make_client()("client_credentials")


async def test_client_secret_basic(make_client, idp: FakeProvider):
    await make_client(client_id="agent:1", client_secret="p@ss word")("client_credentials")
    req = idp.last("/token")
    user, _, pw = base64.b64decode(req.headers["authorization"].split()[1]).decode().partition(":")
    assert (user, pw) == ("agent%3A1", "p%40ss+word")  # RFC 6749 2.3.1 form-encoding
    assert "client_secret" not in req.content.decode()


async def test_client_secret_post(make_client, idp: FakeProvider):
    await make_client(auth_method="client_secret_post")("client_credentials")
    req = idp.last("/token")
    assert "authorization" not in req.headers
    form = FakeProvider.form(req)
    assert form["client_id"] == "agent" and form["client_secret"] == "s3cret-value"


async def test_private_key_jwt(idp: FakeProvider, mode):
    key = ECKey.generate_key("P-256", parameters={"kid": "client-1"})
    client = OAuthClient(idp.issuer, "agent", auth_method="private_key_jwt", private_key=key.as_dict(private=True),
                         http_client=idp.client(), async_http_client=idp.async_client())
    if mode == "sync":
        client.client_credentials()
    else:
        await client.aclient_credentials()
    form = FakeProvider.form(idp.last("/token"))
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    claims = jwt.decode(form["client_assertion"], key).claims
    assert claims["iss"] == claims["sub"] == "agent" and claims["aud"] == idp.issuer and "jti" in claims
    assert form["client_id"] == "agent"


async def test_refresh_keeps_rotated_token(make_client, idp: FakeProvider):
    token = await make_client()("refresh", "rt-old")
    assert token.refresh_token and token.refresh_token.startswith("rt-")
    assert FakeProvider.form(idp.last("/token")) == {"grant_type": "refresh_token", "refresh_token": "rt-old"}


async def test_refresh_not_retried_after_timeout(make_client, idp: FakeProvider):
    idp.script("/token", httpx.ReadTimeout("lost"))
    with pytest.raises(E.ProviderUnavailableError):
        await make_client()("refresh", "rt-old")
    assert idp.hits["/token"] == 1


async def test_token_exchange_params(make_client, idp: FakeProvider):
    await make_client()("token_exchange", "subject-token-value", audience="urn:api", scope="read",
                        resource=["https://a", "https://b"], actor_token="actor", actor_token_type=TOKEN_TYPE_ACCESS)
    form = FakeProvider.form_multi(idp.last("/token"))
    assert form["grant_type"] == [TOKEN_EXCHANGE_GRANT]
    assert form["subject_token_type"] == [TOKEN_TYPE_ACCESS]
    assert form["resource"] == ["https://a", "https://b"] and form["audience"] == ["urn:api"]
    assert form["actor_token"] == ["actor"]


async def test_auth0_federated_exchange_uses_exactly_auth0_parameters(make_client, idp: FakeProvider):
    await make_client()("federated_exchange", "user-refresh-token", connection="google-oauth2", login_hint="me@x")
    form = FakeProvider.form(idp.last("/token"))
    assert form == {
        "grant_type": AUTH0_FEDERATED_GRANT,
        "subject_token": "user-refresh-token",
        "subject_token_type": TOKEN_TYPE_REFRESH,
        "requested_token_type": AUTH0_FEDERATED_TOKEN_TYPE,
        "connection": "google-oauth2",
        "login_hint": "me@x",
    }


async def test_ciba_authorize_and_poll(make_client, idp: FakeProvider):
    c = make_client()
    details = [{"type": "payment_initiation", "instructedAmount": {"amount": "10", "currency": "EUR"}}]
    hint = json.dumps({"format": "iss_sub", "iss": idp.issuer, "sub": "alice"})
    req = await c("ciba_authorize", login_hint=hint, binding_message="Pay 10 EUR", authorization_details=details,
                  requested_expiry=120, scope="payments")
    assert req.interval == 2 and req.interval_given
    form = FakeProvider.form(idp.last("/bc-authorize"))
    assert json.loads(form["login_hint"])["sub"] == "alice"
    assert json.loads(form["authorization_details"]) == details
    assert form["scope"] == "openid payments" and "audience" not in form
    idp.script("/token", error(400, "authorization_pending"))
    with pytest.raises(E.AuthorizationPendingError):
        await c("ciba_poll", req.auth_req_id)
    token = await c("ciba_poll", req.auth_req_id)
    assert token.access_token


@pytest.mark.parametrize("code,exc", [
    ("access_denied", E.AccessDeniedError), ("expired_token", E.ExpiredTokenError),
    ("invalid_grant", E.InvalidGrantError), ("transaction_failed", E.TransactionFailedError),
    ("slow_down", E.SlowDownError), ("unknown_user_id", E.UnknownUserIdError),
])
async def test_ciba_poll_errors_map_to_classes(make_client, idp: FakeProvider, code, exc):
    idp.script("/token", error(400, code))
    with pytest.raises(exc):
        await make_client()("ciba_poll", "req")


async def test_ciba_needs_a_backchannel_endpoint(make_client, idp: FakeProvider):
    del idp.metadata["backchannel_authentication_endpoint"]
    with pytest.raises(E.ConfigurationError, match="backchannel_authentication_endpoint"):
        await make_client()("ciba_authorize", login_hint="alice")


async def test_authorization_url_and_code_exchange(make_client, idp: FakeProvider):
    c = make_client()
    pkce = Pkce.generate()
    url = await c("authorization_url", "http://127.0.0.1:9/cb", state="st", pkce=pkce, scope="openid calendar",
                  resource="https://api")
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(idp.issuer + "/authorize?")
    assert q["code_challenge_method"] == "S256" and q["code_challenge"] == pkce.challenge
    assert q["state"] == "st" and q["response_type"] == "code" and q["resource"] == "https://api"
    assert pkce.verifier not in url
    await c("exchange_code", "the-code", redirect_uri="http://127.0.0.1:9/cb", code_verifier=pkce.verifier)
    form = FakeProvider.form(idp.last("/token"))
    assert form["code_verifier"] == pkce.verifier and form["grant_type"] == "authorization_code"


async def test_revoke_and_introspect(make_client, idp: FakeProvider):
    c = make_client()
    assert await c("revoke", "tok", token_type_hint="refresh_token") is None
    assert (await c("introspect", "tok"))["active"] is True
    idp.script("/introspect", httpx.Response(200, json={"sub": "x"}))
    with pytest.raises(E.ProtocolError, match="active"):
        await c("introspect", "tok")


@pytest.mark.parametrize("body", [
    {"token_type": "Bearer"}, {"access_token": 5}, {"access_token": "a", "expires_in": "soon"},
    {"access_token": "a", "authorization_details": "nope"}, {"access_token": "a", "scope": ["x"]},
])
async def test_malformed_token_responses(make_client, idp: FakeProvider, body):
    idp.script("/token", httpx.Response(200, json=body))
    with pytest.raises(E.ProtocolError):
        await make_client()("client_credentials")


def test_tokens_never_in_repr():
    from langchain_agent_auth.oauth import TokenResponse

    t = TokenResponse.from_json({"access_token": "AT-SECRET", "refresh_token": "RT-SECRET", "id_token": "ID-SECRET"})
    assert not any(s in repr(t) + str(t) for s in ("AT-SECRET", "RT-SECRET", "ID-SECRET"))
    assert "verifier" not in repr(Pkce.generate()) or "[redacted]" in repr(Pkce.generate())


def test_auth0_profile_sets_bc_authorize(idp: FakeProvider):
    client = OAuthClient.for_auth0("tenant.auth0.test", "id", "secret")
    assert client.issuer == "https://tenant.auth0.test/"
    assert client._overrides["backchannel_authentication_endpoint"] == "https://tenant.auth0.test/bc-authorize"


def test_configuration_errors():
    with pytest.raises(E.ConfigurationError):
        OAuthClient("not a url", "id", "s")
    with pytest.raises(E.ConfigurationError):
        OAuthClient("https://x", "id")  # basic auth without a secret
    with pytest.raises(E.ConfigurationError):
        OAuthClient("https://x", "id", auth_method="private_key_jwt")
    with pytest.raises(E.ConfigurationError):
        OAuthClient("https://x", "id", "s", auth_method="magic")  # type: ignore[arg-type]
