from __future__ import annotations

import pytest

from langchain_agent_auth import errors as E
from langchain_agent_auth.identity import IdentitySource, TokenResolver
from langchain_agent_auth.oauth import JWTVerifier
from tests.support.fake_idp import FakeProvider


@pytest.fixture
def idp() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def resolver(idp):
    v = JWTVerifier(idp.issuer, audience="api", http_client=idp.client(), async_http_client=idp.async_client())
    return TokenResolver(v)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_verifies_and_caches(idp, resolver, mode):
    token = idp.sign(name="Alice", email="alice@example.com")
    src = IdentitySource(context={"access_token": token})
    for _ in range(3):
        user = resolver.resolve(src) if mode == "sync" else await resolver.aresolve(src)
    assert (user.subject, user.name, user.source) == ("alice", "Alice", "token")
    assert idp.hits["/jwks"] == 1
    assert token not in user.model_dump_json()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_bad_tokens_raise_typed_errors(idp, resolver, mode):
    for token, exc in [(idp.sign(aud="other"), E.InvalidClaimError), ("garbage", E.MalformedTokenError),
                       (idp.sign(exp=1), E.TokenExpiredError)]:
        src = IdentitySource(context={"access_token": token})
        with pytest.raises(exc):
            resolver.resolve(src) if mode == "sync" else await resolver.aresolve(src)


def test_no_token_means_no_identity(resolver):
    assert resolver.resolve(IdentitySource(context={"access_token": ""})) is None
    assert resolver.resolve(IdentitySource(context=None)) is None
    with pytest.raises(E.ConfigurationError):
        TokenResolver("not a verifier")  # type: ignore[arg-type]
