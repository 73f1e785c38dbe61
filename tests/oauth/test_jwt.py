"""JWT validation: every bad input gets its own typed error; keys come from a real JWKS flow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from joserfc.jwk import OctKey, RSAKey

from langchain_agent_auth import errors as E
from langchain_agent_auth.oauth import JWTVerifier
from tests.support.fake_idp import FakeProvider


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def verifier(idp: FakeProvider):
    def make(**kwargs) -> JWTVerifier:
        kwargs.setdefault("audience", "api")
        return JWTVerifier(idp.issuer, http_client=idp.client(), async_http_client=idp.async_client(), **kwargs)
    return make


async def verify(v: JWTVerifier, token, mode: str):
    return v.verify(token) if mode == "sync" else await v.averify(token)


async def test_valid_rs256_and_es256(verifier, idp: FakeProvider, mode):
    v = verifier()
    assert (await verify(v, idp.sign(), mode))["sub"] == "alice"
    assert (await verify(v, idp.sign(key=idp.ec), mode))["sub"] == "alice"
    # discovery once, JWKS once: later tokens use the cache
    assert idp.hits["/.well-known/openid-configuration"] == 1 and idp.hits["/jwks"] == 1


async def test_alg_none_is_refused(verifier, idp: FakeProvider, mode):
    claims = {"iss": idp.issuer, "aud": "api", "sub": "mallory", "exp": int(time.time()) + 60}
    token = f"{b64(json.dumps({'alg': 'none', 'typ': 'at+jwt'}).encode())}.{b64(json.dumps(claims).encode())}."
    with pytest.raises(E.InvalidSignatureError) as info:
        await verify(verifier(), token, mode)
    assert info.value.reason == "alg"


def hs256_with_public_key(idp: FakeProvider, header: dict) -> str:
    """The classic key-confusion forgery: HMAC keyed with the RSA public key's PEM bytes."""
    pem = idp.rsa.as_pem(private=False)
    claims = {"iss": idp.issuer, "aud": "api", "sub": "mallory", "exp": int(time.time()) + 60}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(pem if isinstance(pem, bytes) else pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


async def test_hs256_signed_with_the_public_key_is_refused(verifier, idp: FakeProvider, mode):
    token = hs256_with_public_key(idp, {"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"})
    with pytest.raises(E.InvalidSignatureError):
        await verify(verifier(), token, mode)
    with pytest.raises(E.ConfigurationError):
        verifier(algorithms=["RS256", "HS256"])


@pytest.mark.parametrize(
    "overrides,exc,reason",
    [
        ({"exp": int(time.time()) - 3600}, E.TokenExpiredError, "exp"),
        ({"nbf": int(time.time()) + 3600}, E.TokenNotYetValidError, "nbf"),
        ({"iat": int(time.time()) + 3600}, E.TokenNotYetValidError, "iat"),
        ({"iss": "https://other.test"}, E.InvalidClaimError, "iss"),
        ({"aud": "someone-else"}, E.InvalidClaimError, "aud"),
        ({"sub": None}, E.InvalidClaimError, "sub"),
        ({"sub": ""}, E.InvalidClaimError, "sub"),
        ({"exp": "tomorrow"}, E.InvalidClaimError, "exp"),
    ],
)
async def test_claim_checks(verifier, idp: FakeProvider, mode, overrides, exc, reason):
    with pytest.raises(exc) as info:
        await verify(verifier(), idp.sign(**overrides), mode)
    assert info.value.reason == reason


async def test_leeway(verifier, idp: FakeProvider, mode):
    token = idp.sign(exp=int(time.time()) - 30)
    assert (await verify(verifier(leeway=60), token, mode))["sub"] == "alice"
    with pytest.raises(E.TokenExpiredError):
        await verify(verifier(leeway=0), token, mode)


async def test_typ_checks_for_access_tokens(verifier, idp: FakeProvider, mode):
    plain = idp.sign(header={"typ": "JWT"})
    with pytest.raises(E.InvalidClaimError) as info:
        await verify(verifier(), plain, mode)
    assert info.value.reason == "typ"
    assert (await verify(verifier(token_type="id"), plain, mode))["sub"] == "alice"
    assert (await verify(verifier(), idp.sign(header={"typ": "application/at+jwt"}), mode))["sub"] == "alice"


async def test_unknown_kid_refetches_once_then_fails(verifier, idp: FakeProvider, mode):
    v = verifier(jwks_cache=None)
    await verify(v, idp.sign(), mode)
    assert idp.hits["/jwks"] == 1
    stranger = RSAKey.generate_key(2048, parameters={"kid": "unknown-kid"})
    for _ in range(20):  # an attacker's flood of random kids
        with pytest.raises(E.UnknownKeyError):
            await verify(v, idp.sign(key=stranger), mode)
    assert idp.hits["/jwks"] == 2  # one refetch within the cooldown, not twenty


async def test_rotated_key_is_found_by_one_refetch(verifier, idp: FakeProvider, mode):
    v = verifier()
    await verify(v, idp.sign(), mode)
    new = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "alg": "RS256", "use": "sig"})
    idp.script("/jwks", httpx.Response(200, json={"keys": [new.as_dict(private=False)]}))
    assert (await verify(v, idp.sign(key=new), mode))["sub"] == "alice"


async def test_wrong_signature(verifier, idp: FakeProvider, mode):
    token = idp.sign()
    head, _body, sig = token.split(".")
    tampered = f"{head}.{b64(json.dumps({'sub': 'mallory', 'iss': idp.issuer}).encode())}.{sig}"
    with pytest.raises(E.InvalidSignatureError):
        await verify(verifier(), tampered, mode)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "!!!.@@@.###",
        b64(b"{not json").__add__(".e30.sig"),
        b64(b"[1,2]") + ".e30.sig",
        "a.b.c.d.e",
        "",
        12345,
        None,
    ],
)
async def test_malformed_tokens(verifier, mode, token):
    with pytest.raises(E.MalformedTokenError):
        await verify(verifier(), token, mode)


async def test_huge_token_rejected_before_parsing(verifier, idp: FakeProvider, mode):
    with pytest.raises(E.MalformedTokenError) as info:
        await verify(verifier(), "a" * 1_000_000, mode)
    assert info.value.reason == "size"
    assert idp.hits["/jwks"] == 0


def test_jwks_private_material_and_symmetric_keys_are_ignored(idp: FakeProvider):
    oct_key = OctKey.generate_key(256, parameters={"kid": "shared"})
    jwks = {"keys": [idp.rsa.as_dict(private=True), oct_key.as_dict()]}
    v = JWTVerifier(idp.issuer, audience="api", jwks=jwks)
    with pytest.raises(E.UnknownKeyError):
        v.verify(idp.sign())


def test_errors_never_echo_the_token(verifier, idp: FakeProvider):
    token = idp.sign(exp=1)
    with pytest.raises(E.TokenExpiredError) as info:
        verifier().verify(token)
    assert token not in str(info.value) and token.split(".")[2] not in repr(info.value.args)


def test_pem_public_key_bytes_cannot_be_used_as_hmac_secret_even_without_kid(idp: FakeProvider):
    forged = hs256_with_public_key(idp, {"alg": "HS256"})
    v = JWTVerifier(idp.issuer, audience="api", token_type="any", jwks=idp.jwks())
    with pytest.raises(E.InvalidSignatureError):
        v.verify(forged)
