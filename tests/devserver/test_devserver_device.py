"""RFC 8628 device authorization against the local provider, through the toolkit's
OAuthClient (sync and async): metadata, the verification page (sign in, type the code,
approve or deny), authorization_pending / slow_down / access_denied / expired_token,
single-use device codes, and codes that must not work."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from langchain_agent_auth.core.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    SlowDownError,
)
from langchain_agent_auth.devserver import LocalProvider
from langchain_agent_auth.devserver._device import normalize_user_code
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient


def id_claims(idp: LocalProvider, token) -> dict:
    return JWTVerifier(idp.issuer, audience=idp.client_id, token_type="id", client_id=idp.client_id).verify(
        token.id_token)


def client(idp: LocalProvider) -> OAuthClient:
    return OAuthClient(idp.issuer, idp.client_id, idp.client_secret)


def test_metadata_advertises_the_device_grant(idp: LocalProvider) -> None:
    meta = httpx.get(idp.issuer + "/.well-known/openid-configuration").json()
    assert meta["device_authorization_endpoint"] == idp.issuer + "/device_authorization"
    assert "urn:ietf:params:oauth:grant-type:device_code" in meta["grant_types_supported"]


def test_sign_in_on_another_device_sync(idp: LocalProvider, provider_logs) -> None:
    oauth = client(idp)
    started = oauth.device_authorize(scope="openid profile email")
    assert normalize_user_code(started.user_code) == started.user_code
    assert started.verification_uri == idp.issuer + "/device" and started.interval == idp.ciba_interval
    assert started.verification_uri_complete.endswith(started.user_code)
    assert started.device_code not in repr(started)
    with pytest.raises(AuthorizationPendingError):
        oauth.device_poll(started.device_code)
    waits: list[tuple[float, float]] = []

    def user() -> None:  # on their phone: sign in, type the code (lower case, no dash), approve
        idp.approve_device(started.verification_uri, started.user_code.replace("-", "").lower(), "alice")

    threading.Thread(target=user).start()
    token = oauth.device_wait(started, on_wait=lambda left, nxt: waits.append((left, nxt)))
    assert waits and all(0 < left <= 600 and nxt >= idp.ciba_interval for left, nxt in waits)
    claims = id_claims(idp, token)
    assert claims["sub"] == "alice" and claims["email"] == "alice@example.com"
    # single use: the replay is refused (and revokes what the code produced)
    with pytest.raises(InvalidGrantError):
        oauth.device_poll(started.device_code)
    logs = "\n".join(provider_logs.lines)
    assert "tokens issued" in logs and started.device_code not in logs and token.access_token not in logs


async def test_sign_in_on_another_device_async_and_a_denial(idp: LocalProvider) -> None:
    oauth = client(idp)
    started = await oauth.adevice_authorize(scope="openid")
    waiter = asyncio.create_task(oauth.adevice_wait(started))
    await asyncio.to_thread(idp.approve_device, started.verification_uri, started.user_code, "bob")
    token = await waiter
    assert id_claims(idp, token)["sub"] == "bob"

    denied = await oauth.adevice_authorize(scope="openid")
    await asyncio.to_thread(idp.approve_device, denied.verification_uri_complete, denied.user_code, "alice",
                            deny=True)
    with pytest.raises(AccessDeniedError):
        await oauth.adevice_wait(denied)


def test_polling_too_fast_gets_slow_down(idp: LocalProvider) -> None:
    oauth = client(idp)
    started = oauth.device_authorize(scope="openid")
    with pytest.raises(AuthorizationPendingError):
        oauth.device_poll(started.device_code)
    with pytest.raises(SlowDownError):  # at once again: sooner than the interval
        oauth.device_poll(started.device_code)
    assert idp.stats()["device"]["slow_down"] >= 1


def test_expired_codes_are_refused_at_the_page_and_the_token_endpoint(idp: LocalProvider) -> None:
    oauth = client(idp)
    started = oauth.device_authorize(scope="openid")
    # the provider's own store, as if ten minutes had passed
    idp._store.execute("UPDATE device_requests SET expires_at=0 WHERE status='pending'")
    with pytest.raises(ExpiredTokenError):
        oauth.device_poll(started.device_code)
    with pytest.raises(Exception, match="did not accept the code"):
        idp.approve_device(started.verification_uri, started.user_code, "alice")


FULLWIDTH = "\uff22\uff23\uff24\uff26-\uff27\uff28\uff2a\uff2b"


@pytest.mark.parametrize("code", ["", "AAAA-AAAA", "WDJB", "<script>", "BCDF-GHJK-LMNP", FULLWIDTH])
def test_unknown_or_malformed_codes_are_refused_without_approving_anything(idp: LocalProvider, code: str) -> None:
    oauth = client(idp)
    started = oauth.device_authorize(scope="openid")
    with pytest.raises(Exception, match="did not accept the code"):
        idp.approve_device(started.verification_uri, code, "alice")
    with pytest.raises((AuthorizationPendingError, SlowDownError)):
        oauth.device_poll(started.device_code)


def test_a_client_not_registered_for_the_grant_is_refused(idp: LocalProvider) -> None:
    r = httpx.post(idp.issuer + "/device_authorization", auth=(idp.upstream_client_id, idp.upstream_client_secret),
                   data={"scope": "openid"})
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_client", "unauthorized_client")
    r = httpx.post(idp.issuer + "/device_authorization", auth=(idp.client_id, "wrong"), data={"scope": "openid"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_a_session_that_guesses_codes_is_stopped(idp: LocalProvider) -> None:
    from langchain_agent_auth.devserver._browser import forms as _forms

    started = client(idp).device_authorize(scope="openid")
    with httpx.Client(follow_redirects=True, timeout=15) as browser:
        page = browser.get(started.verification_uri)
        [login] = [f for f in _forms(page.text) if f["method"] == "post"]
        data = {n: v for n, v, _ in login["fields"]}
        data.update(username="bob", password=idp.users["bob"])
        page = browser.post(httpx.URL(str(page.url)).join(login["action"]), data=data)
        csrf = next(v for f in _forms(page.text) if f["action"] == "/device" for n, v, _ in f["fields"] if n == "csrf")
        answers = [browser.post(idp.issuer + "/device", data={"csrf": csrf, "user_code": "BBBB-BBBB"}).status_code
                   for _ in range(10)]
        right = browser.post(idp.issuer + "/device", data={"csrf": csrf, "user_code": started.user_code})
    assert answers == [400] * 10 and right.status_code == 429  # even the right code, after 10 wrong ones
    with pytest.raises(AuthorizationPendingError):
        client(idp).device_poll(started.device_code)
