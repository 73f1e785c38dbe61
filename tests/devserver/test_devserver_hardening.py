"""The local provider as a server you could trust: each test is one finding of a security probe
run as another local user would (loopback only). Grant correctness, token exchange policy,
approvals that only narrow, PKCE, secrets at rest, bad input, a busy database, login throttling.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from langchain_agent_auth.devserver import LocalProvider
from langchain_agent_auth.devserver._app import build_app
from langchain_agent_auth.devserver._core import Provider
from langchain_agent_auth.devserver._store import Store
from tests.devserver.devserver_helpers import AT_TYPE, DOWN, RT_TYPE, TE, ProviderHandle

ID_TYPE = "urn:ietf:params:oauth:token-type:id_token"
BANK = "urn:agent-auth:demo-api"


def _pay(amount: str, creditor: str = "ACME Corp") -> list[dict]:
    return [
        {
            "type": "payment_initiation",
            "instructedAmount": {"amount": amount, "currency": "EUR"},
            "creditorName": creditor,
        }
    ]


def _approved_ciba(handle: ProviderHandle, user: str, details: list[dict], message: str, **approve: object) -> dict:
    rid = handle.bc_authorize(
        login_hint=user,
        scope="openid offline_access bank:transfer",
        resource=BANK,
        binding_message=message,
        authorization_details=json.dumps(details),
    ).json()["auth_req_id"]
    handle.approve(handle.pending_one(user, message)["id"], **approve)
    token, error = handle.poll(rid)
    assert error is None, error
    return token


# ---------------------------------------------------------------------------- grants
def test_an_approved_payment_is_not_refreshable_and_pays_once(handle: ProviderHandle, idp: LocalProvider) -> None:
    token = _approved_ciba(handle, "bob", _pay("10.00"), "Pay ACME 10 once")
    # offline_access was asked for, but a one-time authorization gets no refresh token
    assert "refresh_token" not in token and token["authorization_details"] == _pay("10.00")
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    body = {"amount": "10.00", "currency": "EUR", "creditorName": "ACME Corp"}
    first = httpx.post(idp.api_url + "/bank/transfers", headers=headers, json=body)
    again = httpx.post(idp.api_url + "/bank/transfers", headers=headers, json=body)
    assert first.status_code == 201 and again.status_code == 200 and again.json()["replayed"] is True
    reader = idp.login("bob", scope="openid bank:read", audience=BANK)["access_token"]
    listed = httpx.get(
        idp.api_url + "/bank/transfers", headers={"Authorization": f"Bearer {reader}"}
    ).json()["transfers"]
    assert sum(1 for t in listed if t["creditorName"] == "ACME Corp" and t["amount"] == "10.00") == 1


def test_a_payment_code_grant_gets_no_refresh_token(idp: LocalProvider) -> None:
    tok = idp.login(
        "bob", scope="openid offline_access bank:transfer", audience=BANK, authorization_details=_pay("3.00")
    )
    assert tok["authorization_details"] == _pay("3.00") and "refresh_token" not in tok


def test_refresh_keeps_non_payment_details_unchanged(idp: LocalProvider, handle: ProviderHandle) -> None:
    details = [{"type": "agent_action", "actions": ["read_calendar"]}]
    tok = idp.login("bob", scope="openid offline_access api:read", resource="urn:example:api",
                    authorization_details=details)
    refreshed = handle.post("token_endpoint", {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["authorization_details"] == details


def test_an_approver_may_narrow_but_not_widen(handle: ProviderHandle) -> None:
    rid = handle.bc_authorize(
        login_hint="bob", scope="openid bank:transfer", resource=BANK, binding_message="Pay 1 EUR",
        authorization_details=json.dumps(_pay("1.00")),
    ).json()["auth_req_id"]
    pending = handle.pending_one("bob", "Pay 1 EUR")["id"]
    with pytest.raises(Exception, match="narrow"):
        handle.approve(pending, authorization_details=_pay("900.00"))
    with pytest.raises(Exception, match="narrow"):
        handle.approve(pending, authorization_details=_pay("1.00", creditor="Mallory"))
    handle.approve(pending, authorization_details=_pay("0.50"))
    token, error = handle.poll(rid)
    assert error is None and token["authorization_details"] == _pay("0.50")


# ---------------------------------------------------------------------------- RFC 8693 policy
@pytest.fixture(scope="module")
def other_client(idp: LocalProvider) -> tuple[str, str]:
    created = idp.add_client(client_id="other-exchanger", grant_types=["client_credentials", TE])
    return created["client_id"], created["client_secret"]


@pytest.fixture(scope="module")
def alice_openid(idp: LocalProvider) -> dict:
    return idp.login("alice", scope="openid offline_access")


def _exchange(handle: ProviderHandle, auth: tuple[str, str] | str, **params: str) -> httpx.Response:
    return handle.post("token_endpoint", {"grant_type": TE, **params}, auth=auth)


def test_another_client_cannot_exchange_a_users_token(
    handle: ProviderHandle, alice_openid: dict, other_client: tuple[str, str]
) -> None:
    for value, kind in ((alice_openid["access_token"], AT_TYPE), (alice_openid["id_token"], ID_TYPE)):
        r = _exchange(handle, other_client, subject_token=value, subject_token_type=kind, audience=BANK)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_exchange_cannot_widen_the_users_grant(handle: ProviderHandle, alice_openid: dict) -> None:
    # alice consented to openid only: no bank scope can come out of her token
    for extra in ({"scope": "bank:read bank:transfer"}, {}):
        r = _exchange(handle, "default", subject_token=alice_openid["access_token"], subject_token_type=AT_TYPE,
                      audience=BANK, **extra)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
    r = _exchange(handle, "default", subject_token=alice_openid["access_token"], subject_token_type=AT_TYPE,
                  audience="urn:nowhere")
    assert r.json()["error"] == "invalid_target"


def test_revoking_the_grant_stops_id_token_exchange_and_kills_exchanged_tokens(
    handle: ProviderHandle, idp: LocalProvider
) -> None:
    tok = idp.login("alice", scope="openid offline_access api:read", resource="urn:example:api")
    exchanged = _exchange(handle, "default", subject_token=tok["id_token"], subject_token_type=ID_TYPE,
                          resource=DOWN)
    assert exchanged.status_code == 200, exchanged.text
    value = exchanged.json()["access_token"]
    assert handle.post("introspection_endpoint", {"token": value}).json()["active"] is True
    handle.post("revocation_endpoint", {"token": tok["refresh_token"], "token_type_hint": "refresh_token"})
    assert handle.post("introspection_endpoint", {"token": value}).json() == {"active": False}
    again = _exchange(handle, "default", subject_token=tok["id_token"], subject_token_type=ID_TYPE, resource=DOWN)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refresh = _exchange(handle, "default", subject_token=tok["refresh_token"], subject_token_type=RT_TYPE)
    assert refresh.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------------------- PKCE
def test_pkce_is_required_unless_registered_without_it(idp: LocalProvider) -> None:
    params = {"response_type": "code", "client_id": idp.client_id, "redirect_uri": "http://127.0.0.1/callback",
              "scope": "openid", "state": "s1"}
    r = httpx.get(idp.issuer + "/authorize", params=params)
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "code_challenge" in query["error_description"][0]
    assert query["state"] == ["s1"] and query["iss"] == [idp.issuer]
    legacy = idp.add_client(client_id="legacy-no-pkce", redirect_uris=["http://127.0.0.1/callback"],
                            require_pkce=False)
    r = httpx.get(idp.issuer + "/authorize", params={**params, "client_id": legacy["client_id"]})
    assert r.status_code == 303 and "/login" in r.headers["location"]  # on to sign-in, no error


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "details",
    [
        [{"type": "agent_action", "actions": ["x"], "n": json.loads("[" * 350 + "]" * 350)}],
        [{"type": "agent_action", "actions": ["x"], "note": "a" * 3000}],
    ],
    ids=["nested-350", "huge-string"],
)
def test_oversized_authorization_details_are_refused(handle: ProviderHandle, details: list) -> None:
    r = handle.bc_authorize(login_hint="bob", scope="openid", authorization_details=json.dumps(details))
    assert r.status_code == 400 and r.json()["error"] == "invalid_authorization_details", r.text


def test_bidi_and_control_characters_are_inert_on_the_page_and_in_views(
    handle: ProviderHandle, idp: LocalProvider
) -> None:
    # An agent's arguments may hold anything; the person must see exactly what is signed.
    details = [
        {"type": "payment_initiation", "instructedAmount": {"amount": "1.00", "currency": "EUR"},
         "creditorName": "ACME \u202egro.live\x1b[2J\u200b"},
    ]
    message = "Pay inert"
    r = handle.bc_authorize(login_hint="alice", scope="openid", binding_message=message,
                            authorization_details=json.dumps(details))
    assert r.status_code == 200, r.text
    pending = handle.pending_one("alice", message)
    title = pending["authorization_details_view"][0]["title"]
    assert title == "Pay 1.00 EUR to ACME \\u202egro.live\\u001b[2J\\u200b"
    assert pending["authorization_details"] == details  # the token carries them unchanged
    with httpx.Client(base_url=idp.url) as browser:
        login = browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        browser.post("/login", data={"username": "alice", "password": idp.users["alice"], "csrf": csrf,
                                     "next": "/approvals"})
        page = browser.get("/approvals").text
    assert "\u202e" not in page and "\x1b" not in page and "\u200b" not in page
    assert "ACME \\u202egro.live" in page
    handle.deny(pending["id"])


def test_deep_json_bodies_are_400_not_500(idp: LocalProvider, handle: ProviderHandle) -> None:
    deep = "[" * 1000 + "]" * 1000
    bank = idp.login("bob", scope="openid bank:transfer", audience=BANK)["access_token"]
    targets = [
        (idp.api_url + "/bank/transfers", {"Authorization": f"Bearer {bank}"}),
        (idp.url + "/admin/clients", {"Authorization": f"Bearer {idp.admin_token}"}),
        (idp.url + "/admin/users", {"Authorization": f"Bearer {idp.admin_token}"}),
    ]
    for url, headers in targets:
        r = httpx.post(url, content=deep, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (url, r.text)
    r = handle.bc_authorize(login_hint="bob", scope="openid", authorization_details=deep)
    assert r.status_code == 400 and r.json()["error"] == "invalid_authorization_details"


# ---------------------------------------------------------------------------- secrets at rest
def test_data_dir_and_database_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "dd"
    store = Store(data)
    try:
        store.execute("INSERT OR REPLACE INTO meta VALUES ('probe', '1')")  # the WAL exists now
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE(data.parent.stat().st_mode) == 0o700  # a parent it created, too
        for name in ("provider.sqlite3", "provider.sqlite3-wal", "provider.sqlite3-shm", "secrets.json", "keys"):
            path = data / name
            assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, name
        rows = store.all("SELECT private_jwk FROM keys")
        assert rows and all('"d"' not in row["private_jwk"] and "sealed" in row["private_jwk"] for row in rows)
        assert store.public_jwks()["keys"] and store.signing_keyset("RS256")  # they still open
    finally:
        store.close()


def test_plaintext_keys_of_an_old_data_dir_get_sealed_and_open_dirs_warn(tmp_path: Path) -> None:
    data = tmp_path / "old"
    Store(data).close()
    db = sqlite3.connect(data / "provider.sqlite3")
    kid = db.execute("SELECT kid FROM keys LIMIT 1").fetchone()[0]
    store = Store(data)
    jwk = store._open_key(kid, db.execute("SELECT private_jwk FROM keys WHERE kid=?", (kid,)).fetchone()[0])
    store.close()
    db.execute("UPDATE keys SET private_jwk=? WHERE kid=?", (json.dumps(jwk), kid))  # as an old version wrote it
    db.commit()
    db.close()
    os.chmod(data, 0o755)
    os.chmod(data / "provider.sqlite3", 0o644)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = Store(data)
    try:
        assert any("chmod 700" in str(w.message) for w in caught)
        assert stat.S_IMODE((data / "provider.sqlite3").stat().st_mode) == 0o600
        assert "sealed" in store.one("SELECT private_jwk FROM keys WHERE kid=?", (kid,))["private_jwk"]
    finally:
        store.close()


# ---------------------------------------------------------------------------- in-process server
@pytest.fixture
async def asgi(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Provider]]:
    store = Store(tmp_path / "asgi", busy_timeout=0.05)
    provider = Provider(store, "http://127.0.0.1:9")
    transport = httpx.ASGITransport(app=build_app(provider), client=("127.0.0.1", 4242))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9") as client:
        yield client, provider
    store.close()


async def test_a_busy_database_is_503_with_retry_after(asgi: tuple[httpx.AsyncClient, Provider]) -> None:
    client, provider = asgi
    secret = provider.store.secrets.clients["agent-client"]
    form = {"grant_type": "client_credentials", "scope": "api:read", "resource": "urn:example:api"}
    assert (await client.post("/token", data=form, auth=("agent-client", secret))).status_code == 200
    holder = sqlite3.connect(provider.store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding a write transaction
    try:
        r = await client.post("/token", data=form, auth=("agent-client", secret))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"] == "temporarily_unavailable"
        assert (await client.get("/jwks")).status_code == 200  # readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await client.post("/token", data=form, auth=("agent-client", secret))).status_code == 200


async def _login(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return await client.post("/login", data={"username": user, "password": password, "csrf": csrf, "next": "/"})


async def test_failed_logins_are_throttled_per_user(asgi: tuple[httpx.AsyncClient, Provider]) -> None:
    client, provider = asgi
    for _ in range(5):
        assert (await _login(client, "alice", "wrong")).status_code == 401
    blocked = await _login(client, "alice", provider.store.secrets.users["alice"])
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    ok = await _login(client, "bob", provider.store.secrets.users["bob"])  # another user still signs in
    assert ok.status_code == 303
    assert provider.stats()["logins"]["main_throttled"] == 1


def test_failure_limiter_per_address_and_window() -> None:
    from langchain_agent_auth.devserver._web import FailureLimiter

    clock = [0.0]
    limiter = FailureLimiter(per_user=100, per_address=3, window=10, clock=lambda: clock[0])
    for name in ("a", "b", "c"):
        assert limiter.blocked(name, "10.0.0.1") == 0
        limiter.record(name, "10.0.0.1")
    assert limiter.blocked("d", "10.0.0.1") > 0 and limiter.blocked("d", "10.0.0.2") == 0
    clock[0] = 11.0
    assert limiter.blocked("d", "10.0.0.1") == 0


async def test_pending_ciba_requests_are_capped(asgi: tuple[httpx.AsyncClient, Provider]) -> None:
    from langchain_agent_auth.devserver._ciba import MAX_PENDING_PER_USER

    client, provider = asgi
    auth = ("agent-client", provider.store.secrets.clients["agent-client"])
    for _ in range(MAX_PENDING_PER_USER):
        r = await client.post("/bc-authorize", data={"login_hint": "alice", "scope": "openid"}, auth=auth)
        assert r.status_code == 200
    r = await client.post("/bc-authorize", data={"login_hint": "alice", "scope": "openid"}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request" and "wait" in r.json()["error_description"]
    r = await client.post("/bc-authorize", data={"login_hint": "bob", "scope": "openid"}, auth=auth)
    assert r.status_code == 200


async def test_expired_rows_are_purged(asgi: tuple[httpx.AsyncClient, Provider]) -> None:
    client, provider = asgi
    auth = ("agent-client", provider.store.secrets.clients["agent-client"])
    form = {"grant_type": "client_credentials", "scope": "api:read", "resource": "urn:example:api"}
    for _ in range(3):
        assert (await client.post("/token", data=form, auth=auth)).status_code == 200
    provider.store.execute("UPDATE access_tokens SET expires_at=0")
    assert provider.store.purge_expired()["access_tokens"] == 3
    assert provider.store.one("SELECT COUNT(*) AS n FROM access_tokens")["n"] == 0

