"""The protocol core against two providers: the independent node-oidc-provider and this
project's LocalProvider, the same tests for both, each in sync and async mode.

Discovery, the three client auth methods, JWT validation of their tokens, refresh, CIBA poll and ping
(approve with RAR, deny, slow_down, expiry, unknown user, invalid binding message), RFC 8693
token exchange with `act`, introspection and revocation.
"""

from __future__ import annotations

import asyncio

import pytest

from langchain_agent_auth import errors as E
from langchain_agent_auth.oauth import TOKEN_TYPE_ACCESS, JWTVerifier, OAuthClient
from tests.support.providers import ProviderUnderTest, local_provider, node_provider

pytestmark = pytest.mark.interop

RAR = [{"type": "payment_initiation", "instructedAmount": {"amount": "250.00", "currency": "EUR"},
        "creditorName": "Bob"}]


@pytest.fixture(scope="module")
def local_idp():
    from langchain_agent_auth.devserver import LocalProvider

    with LocalProvider(ciba_interval=1) as idp:
        yield idp


@pytest.fixture(params=["node", "local"])
def provider(request) -> ProviderUnderTest:
    if request.param == "node":
        return node_provider(request.getfixturevalue("node_idp"))
    return _cached_local(request.getfixturevalue("local_idp"))


_LOCAL: dict[int, ProviderUnderTest] = {}


def _cached_local(idp) -> ProviderUnderTest:
    if id(idp) not in _LOCAL:
        _LOCAL[id(idp)] = local_provider(idp)
    return _LOCAL[id(idp)]


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


async def call(client, mode, name, *args, **kwargs):
    if mode == "sync":
        return await asyncio.to_thread(getattr(client, name), *args, **kwargs)
    return await getattr(client, "a" + name)(*args, **kwargs)


def agent(p: ProviderUnderTest, **kw) -> OAuthClient:
    return OAuthClient(p.issuer, *p.basic, **kw)


async def verify(v: JWTVerifier, token: str, mode: str) -> dict:
    return v.verify(token) if mode == "sync" else await v.averify(token)


async def test_discovery(provider, mode):
    meta = await call(agent(provider), mode, "metadata")
    assert meta.issuer == provider.issuer
    assert meta.backchannel_authentication_endpoint and "poll" in meta.backchannel_token_delivery_modes_supported
    assert "urn:openid:params:grant-type:ciba" in meta.grant_types_supported
    assert meta.jwks_uri and meta.revocation_endpoint and meta.introspection_endpoint


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
async def test_client_credentials_each_auth_method_and_jwt_validation(provider, mode, method):
    if method == "client_secret_basic":
        client = agent(provider)
    elif method == "client_secret_post":
        client = OAuthClient(provider.issuer, *provider.post, auth_method="client_secret_post")
    else:
        client = OAuthClient(provider.issuer, provider.pkjwt[0], auth_method="private_key_jwt",
                             private_key=provider.pkjwt[1])
    token = await call(client, mode, "client_credentials", scope="api:read", resource=provider.api)
    claims = await verify(JWTVerifier(provider.issuer, audience=provider.api), token.access_token, mode)
    assert claims["scope"] == "api:read" and claims["client_id"] == client.client_id


async def test_es256_access_tokens_validate(provider, mode):
    token = await call(agent(provider), mode, "client_credentials", scope="downstream:read",
                       resource=provider.downstream)
    v = JWTVerifier(provider.issuer, audience=provider.downstream, algorithms=["ES256"])
    assert (await verify(v, token.access_token, mode))["aud"] in (provider.downstream, [provider.downstream])
    with pytest.raises(E.InvalidClaimError):
        JWTVerifier(provider.issuer, audience=provider.api).verify(token.access_token)


async def test_wrong_secret_is_invalid_client(provider, mode):
    with pytest.raises(E.InvalidClientError):
        await call(OAuthClient(provider.issuer, provider.basic[0], "wrong-secret"), mode, "client_credentials")


async def test_ciba_approved_with_rar_then_refresh_and_id_token(provider, mode):
    client = agent(provider)
    req = await call(client, mode, "ciba_authorize", login_hint="alice", binding_message="Pay 250 EUR to Bob",
                     scope="openid offline_access api:write", resource=provider.api, authorization_details=RAR,
                     requested_expiry=60)
    assert req.interval == provider.poll_interval and req.interval_given
    with pytest.raises(E.AuthorizationPendingError):
        await call(client, mode, "ciba_poll", req.auth_req_id)
    pending = provider.pending("alice")
    assert pending[-1]["binding_message"] == "Pay 250 EUR to Bob"
    assert pending[-1]["authorization_details"] == RAR
    provider.answer_next("alice")
    token = await call(client, mode, "ciba_wait", req)
    assert token.authorization_details == RAR and token.id_token
    id_claims = JWTVerifier(provider.issuer, audience=provider.basic[0], token_type="id").verify(token.id_token)
    assert id_claims["sub"] == "alice"
    access = JWTVerifier(provider.issuer, audience=provider.api).verify(token.access_token)
    assert access["authorization_details"] == RAR
    if provider.name == "local":
        # A payment is a one-time authorization: the local provider issues no refresh token that
        # could mint new payment tokens (node-oidc-provider's reference setup does not restrict it).
        assert token.refresh_token is None
        return
    refreshed = await call(client, mode, "refresh", token.refresh_token)
    assert refreshed.access_token and refreshed.access_token != token.access_token


async def test_ciba_denied(provider, mode):
    client = agent(provider)
    req = await call(client, mode, "ciba_authorize", login_hint="bob@example.com", binding_message="Delete repo")
    provider.answer_next("bob", deny=True)
    with pytest.raises(E.AccessDeniedError):
        await call(client, mode, "ciba_wait", req)


async def test_ciba_slow_down_and_expiry(provider, mode):
    client = agent(provider)
    req = await call(client, mode, "ciba_authorize", login_hint="alice", requested_expiry=2)
    with pytest.raises(E.AuthorizationPendingError):
        await call(client, mode, "ciba_poll", req.auth_req_id)
    with pytest.raises(E.SlowDownError):  # polled faster than the 1 s interval
        await call(client, mode, "ciba_poll", req.auth_req_id)
    with pytest.raises(E.ExpiredTokenError):
        await call(client, mode, "ciba_wait", req)


async def test_ciba_unknown_user(provider, mode):
    with pytest.raises(E.UnknownUserIdError):
        await call(agent(provider), mode, "ciba_authorize", login_hint="nobody@example.com")


async def test_ciba_invalid_binding_message(provider, mode):
    with pytest.raises(E.InvalidBindingMessageError):
        await call(agent(provider), mode, "ciba_authorize", login_hint="alice", binding_message="Pay\x07now")


async def test_token_exchange_carries_act(provider, mode):
    client = agent(provider)
    user_token = await _user_access_token(provider, client, mode)
    exchanged = await call(client, mode, "token_exchange", user_token, TOKEN_TYPE_ACCESS,
                           resource=provider.downstream, scope="downstream:read")
    claims = JWTVerifier(provider.issuer, audience=provider.downstream).verify(exchanged.access_token)
    assert claims["sub"] == "alice" and claims["act"] == {"sub": provider.basic[0]}
    with pytest.raises(E.InvalidScopeError):
        await call(client, mode, "token_exchange", user_token, resource=provider.downstream, scope="api:write")
    with pytest.raises(E.InvalidGrantError):
        await call(client, mode, "token_exchange", "garbage-token", resource=provider.downstream)


async def test_introspect_and_revoke(provider, mode):
    client = agent(provider)
    token = await call(client, mode, "client_credentials", scope="api:read", resource=provider.api)
    if provider.name == "node":  # node cannot introspect JWT access tokens: use an opaque one
        token = await call(client, mode, "client_credentials")
    assert (await call(client, mode, "introspect", token.access_token))["active"] is True
    await call(client, mode, "revoke", token.access_token, token_type_hint="access_token")
    assert (await call(client, mode, "introspect", token.access_token))["active"] is False


async def _user_access_token(provider, client, mode) -> str:
    req = await call(client, mode, "ciba_authorize", login_hint="alice", scope="openid api:read",
                     resource=provider.api)
    provider.answer_next("alice")
    return (await call(client, mode, "ciba_wait", req)).access_token


class _Receiver:
    """A PingReceiver served by uvicorn in a thread (https for node, which only pings https)."""

    def __init__(self, port: int, cert=None, key=None) -> None:
        import threading
        import time

        import uvicorn

        from langchain_agent_auth.oauth.ping import PingReceiver

        self.app = PingReceiver()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                ssl_certfile=str(cert) if cert else None, ssl_keyfile=str(key) if key else None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(250):
            if self.server.started:
                break
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def ping_client(provider, request):
    """(client, receiver) for CIBA ping mode at the provider under test."""
    from tests.support.node_idp import PING, free_port

    if provider.name == "node":
        node = request.getfixturevalue("node_idp")
        receiver = _Receiver(node.ping_port, node.cert, node.cert_key)
        client = OAuthClient(provider.issuer, *PING)
    else:
        port = free_port()
        receiver = _Receiver(port)
        reg = request.getfixturevalue("local_idp").add_client(
            grant_types=["urn:openid:params:grant-type:ciba"], backchannel_token_delivery_mode="ping",
            backchannel_client_notification_endpoint=f"http://127.0.0.1:{port}/ciba/notify")
        client = OAuthClient(provider.issuer, reg["client_id"], reg["client_secret"])
    yield client, receiver.app
    receiver.stop()


@pytest.mark.parametrize("answer", ["approve", "deny"])
async def test_ciba_ping_mode(provider, ping_client, mode, answer):
    from langchain_agent_auth.oauth.ping import new_notification_token

    client, receiver = ping_client
    token = new_notification_token()
    req = await call(client, mode, "ciba_authorize", login_hint="alice", binding_message="Ping me",
                     client_notification_token=token)
    receiver.expect(req.auth_req_id, token)
    provider.answer_next("alice", deny=answer == "deny")
    assert await receiver.wait_async(req.auth_req_id, 10), "the provider never pinged"
    if answer == "approve":
        assert (await call(client, mode, "ciba_poll", req.auth_req_id)).access_token
    else:
        with pytest.raises(E.AccessDeniedError):
            await call(client, mode, "ciba_poll", req.auth_req_id)
