"""The protocol core against an independent, OpenID-certified provider (node-oidc-provider).

Discovery, the three client auth methods, refresh, CIBA (approve, deny, slow_down, expiry,
RAR), token exchange, introspection, revocation and JWT validation of its tokens; each in
sync and async mode.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from langchain_agent_auth import errors as E
from langchain_agent_auth.oauth import TOKEN_TYPE_ACCESS, JWTVerifier, OAuthClient
from tests.support.node_idp import AGENT, API, DOWNSTREAM, PKJWT_CLIENT, POST

pytestmark = pytest.mark.interop

RAR = [{"type": "payment_initiation", "instructedAmount": {"amount": "250.00", "currency": "EUR"},
        "creditorName": "Bob"}]


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


async def call(client, mode, name, *args, **kwargs):
    if mode == "sync":
        return await asyncio.to_thread(getattr(client, name), *args, **kwargs)
    return await getattr(client, "a" + name)(*args, **kwargs)


def agent(node_idp, creds=AGENT, **kw) -> OAuthClient:
    return OAuthClient(node_idp.issuer, creds[0], creds[1], **kw)


def approve_when_pending(node_idp, account="alice", *, deny=False, **body):
    """Play the user's phone from another thread: answer the next pending request."""
    def run():
        for _ in range(100):
            pending = node_idp.pending(account)
            if pending:
                rid = pending[-1]["auth_req_id"]
                node_idp.deny(rid) if deny else node_idp.approve(rid, **body)
                return
            time.sleep(0.05)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


async def test_discovery(node_idp, mode):
    meta = await call(agent(node_idp), mode, "metadata")
    assert meta.issuer == node_idp.issuer
    assert meta.backchannel_authentication_endpoint and "ping" in meta.backchannel_token_delivery_modes_supported
    assert "urn:openid:params:grant-type:ciba" in meta.grant_types_supported


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
async def test_client_credentials_each_auth_method_and_jwt_validation(node_idp, mode, method):
    if method == "client_secret_basic":
        client = agent(node_idp)
    elif method == "client_secret_post":
        client = agent(node_idp, POST, auth_method="client_secret_post")
    else:
        client = OAuthClient(node_idp.issuer, PKJWT_CLIENT, auth_method="private_key_jwt",
                             private_key=node_idp.pkjwt_key)
    token = await call(client, mode, "client_credentials", scope="api:read", resource=API)
    verifier = JWTVerifier(node_idp.issuer, audience=API)
    claims = verifier.verify(token.access_token) if mode == "sync" else await verifier.averify(token.access_token)
    assert claims["scope"] == "api:read" and claims["client_id"] == client.client_id


async def test_es256_access_tokens_validate(node_idp, mode):
    token = await call(agent(node_idp), mode, "client_credentials", scope="downstream:read", resource=DOWNSTREAM)
    v = JWTVerifier(node_idp.issuer, audience=DOWNSTREAM, algorithms=["ES256"])
    claims = v.verify(token.access_token) if mode == "sync" else await v.averify(token.access_token)
    assert claims["aud"] == DOWNSTREAM
    with pytest.raises(E.InvalidClaimError):
        JWTVerifier(node_idp.issuer, audience=API).verify(token.access_token)


async def test_wrong_secret_is_invalid_client(node_idp, mode):
    with pytest.raises(E.InvalidClientError):
        await call(agent(node_idp, ("agent-client", "wrong")), mode, "client_credentials")


async def test_ciba_approved_with_rar_then_refresh_and_id_token(node_idp, mode):
    client = agent(node_idp)
    req = await call(client, mode, "ciba_authorize", login_hint="alice", binding_message="Pay 250 EUR to Bob",
                     scope="openid offline_access api:write", resource=API, authorization_details=RAR,
                     requested_expiry=60)
    assert req.interval == node_idp.poll_interval and req.interval_given
    with pytest.raises(E.AuthorizationPendingError):
        await call(client, mode, "ciba_poll", req.auth_req_id)
    pending = node_idp.pending("alice")
    assert pending[-1]["binding_message"] == "Pay 250 EUR to Bob"
    assert pending[-1]["authorization_details"] == RAR
    approve_when_pending(node_idp)
    token = await call(client, mode, "ciba_wait", req)
    assert token.authorization_details == RAR and token.refresh_token and token.id_token
    id_claims = JWTVerifier(node_idp.issuer, audience=AGENT[0], token_type="id").verify(token.id_token)
    assert id_claims["sub"] == "alice"
    refreshed = await call(client, mode, "refresh", token.refresh_token)
    assert refreshed.access_token and refreshed.access_token != token.access_token


async def test_ciba_denied(node_idp, mode):
    client = agent(node_idp)
    req = await call(client, mode, "ciba_authorize", login_hint="bob@example.com", binding_message="Delete repo")
    approve_when_pending(node_idp, "bob", deny=True)
    with pytest.raises(E.AccessDeniedError):
        await call(client, mode, "ciba_wait", req)


async def test_ciba_slow_down_and_expiry(node_idp, mode):
    client = agent(node_idp)
    req = await call(client, mode, "ciba_authorize", login_hint="alice", requested_expiry=2)
    await asyncio.sleep(0)
    with pytest.raises(E.AuthorizationPendingError):
        await call(client, mode, "ciba_poll", req.auth_req_id)
    with pytest.raises(E.SlowDownError):  # polled faster than the 1 s interval
        await call(client, mode, "ciba_poll", req.auth_req_id)
    with pytest.raises(E.ExpiredTokenError):
        await call(client, mode, "ciba_wait", req)


async def test_ciba_unknown_user(node_idp, mode):
    with pytest.raises(E.UnknownUserIdError):
        await call(agent(node_idp), mode, "ciba_authorize", login_hint="nobody@example.com")


async def test_ciba_invalid_binding_message(node_idp, mode):
    with pytest.raises(E.InvalidBindingMessageError):
        await call(agent(node_idp), mode, "ciba_authorize", login_hint="alice", binding_message="<script>")


async def test_token_exchange_carries_act(node_idp, mode):
    client = agent(node_idp)
    user_token = await _user_access_token(node_idp, client, mode)
    exchanged = await call(client, mode, "token_exchange", user_token, TOKEN_TYPE_ACCESS, resource=DOWNSTREAM,
                           scope="downstream:read")
    claims = JWTVerifier(node_idp.issuer, audience=DOWNSTREAM).verify(exchanged.access_token)
    assert claims["sub"] == "alice" and claims["act"] == {"sub": AGENT[0]}
    with pytest.raises(E.InvalidScopeError):
        await call(client, mode, "token_exchange", user_token, resource=DOWNSTREAM, scope="api:write")
    with pytest.raises(E.InvalidGrantError):
        await call(client, mode, "token_exchange", "garbage-token", resource=DOWNSTREAM)


async def test_introspect_and_revoke(node_idp, mode):
    client = agent(node_idp)
    opaque = await call(client, mode, "client_credentials")
    assert (await call(client, mode, "introspect", opaque.access_token))["active"] is True
    await call(client, mode, "revoke", opaque.access_token, token_type_hint="access_token")
    assert (await call(client, mode, "introspect", opaque.access_token))["active"] is False


async def _user_access_token(node_idp, client, mode) -> str:
    req = await call(client, mode, "ciba_authorize", login_hint="alice", scope="openid api:read", resource=API)
    approve_when_pending(node_idp)
    return (await call(client, mode, "ciba_wait", req)).access_token
