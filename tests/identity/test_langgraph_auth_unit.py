"""The auth handler's decisions, called directly (no server): users, trusted services, act-as."""

from __future__ import annotations

import pytest
from langgraph_sdk import Auth

from langchain_agent_auth.identity.langgraph_auth import ACT_AS_HEADER, SERVICE_PERMISSION, langgraph_auth
from langchain_agent_auth.oauth import JWTVerifier
from tests.support.fake_idp import FakeProvider


@pytest.fixture
def setup():
    idp = FakeProvider()
    verifier = JWTVerifier(idp.issuer, audience="api", jwks=idp.jwks())
    auth = langgraph_auth(verifier, trusted_services=["resumer"])
    return idp, auth._authenticate_handler


async def test_user_token(setup):
    idp, authenticate = setup
    user = await authenticate(authorization=f"Bearer {idp.sign(sub='alice', name='Alice')}", headers={})
    assert user["identity"] == "alice" and user["agent_auth_identity"]["name"] == "Alice"


@pytest.mark.parametrize("sub", ["resumer", "resumer@clients"])
async def test_trusted_service_and_act_as(setup, sub):
    idp, authenticate = setup
    token = idp.sign(sub=sub, client_id="resumer")
    service = await authenticate(authorization=f"Bearer {token}", headers={})
    assert service["permissions"] == [SERVICE_PERMISSION]
    headers = {ACT_AS_HEADER.encode(): b'{"subject":"alice"}'}
    acting = await authenticate(authorization=f"Bearer {token}", headers=headers)
    assert acting["identity"] == "alice" and acting["agent_auth_identity"]["claims"] == {"act": {"sub": "resumer"}}


async def test_act_as_refused_for_users_and_untrusted_clients(setup):
    idp, authenticate = setup
    for token in (idp.sign(sub="bob"), idp.sign(sub="other", client_id="other")):
        with pytest.raises(Auth.exceptions.HTTPException) as info:
            await authenticate(authorization=f"Bearer {token}", headers={ACT_AS_HEADER: '{"subject":"alice"}'})
        assert info.value.status_code == 403


@pytest.mark.parametrize("header", ['not json', '{"no_subject": 1}', '{"subject": ""}'])
async def test_malformed_act_as(setup, header):
    idp, authenticate = setup
    with pytest.raises(Auth.exceptions.HTTPException) as info:
        await authenticate(authorization=f"Bearer {idp.sign(sub='resumer', client_id='resumer')}",
                           headers={ACT_AS_HEADER: header})
    assert info.value.status_code == 400
