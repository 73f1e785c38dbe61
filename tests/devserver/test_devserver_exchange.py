"""Token exchange (RFC 8693), Auth0 Token Vault's federated-connection exchange, the demo
upstream (connect flow, refresh rotation, revocation) and the demo API."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import (
    API,
    AT_TYPE,
    DOWN,
    FEDERATED,
    FEDERATED_TYPE,
    PAYMENT,
    RT_TYPE,
    TE,
    ProviderHandle,
    verify,
)


@pytest.fixture(scope="module")
def alice(idp: LocalProvider) -> dict:
    return idp.login("alice", scope="openid offline_access email api:read", resource=API)


# ---------------------------------------------------------------------------- RFC 8693
def test_exchange_access_token_for_downstream(handle: ProviderHandle, alice: dict) -> None:
    r = handle.post(
        "token_endpoint",
        {
            "grant_type": TE,
            "subject_token": alice["access_token"],
            "subject_token_type": AT_TYPE,
            "resource": DOWN,
            "scope": "downstream:read",
        },
    )
    assert r.status_code == 200, r.text
    tok = r.json()
    assert (
        tok["issued_token_type"] == AT_TYPE and tok["token_type"] == "Bearer" and "refresh_token" not in tok
    )
    header, claims = verify(handle, tok["access_token"], DOWN, typ="at+jwt")
    assert header["alg"] == "ES256" and claims["sub"] == "alice" and claims["scope"] == "downstream:read"
    assert claims["act"] == {"sub": handle.client_id} and claims["client_id"] == handle.client_id


def test_exchange_chain_with_actor_token(handle: ProviderHandle, idp: LocalProvider, alice: dict) -> None:
    first = handle.post(
        "token_endpoint",
        {
            "grant_type": TE,
            "subject_token": alice["access_token"],
            "subject_token_type": AT_TYPE,
            "audience": DOWN,
        },
    ).json()
    # agent-post may act on tokens issued to the agent client (a configured may-act relation).
    second_client = idp.add_client(
        client_id="agent-post",
        token_endpoint_auth_method="client_secret_post",
        grant_types=["client_credentials", TE],
        token_exchange_from_clients=[handle.client_id],
    )
    creds = {"client_id": second_client["client_id"], "client_secret": second_client["client_secret"]}
    actor = httpx.post(
        handle.metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "resource": API, "scope": "api:read", **creds},
    ).json()["access_token"]
    r = httpx.post(
        handle.metadata["token_endpoint"],
        data={
            "grant_type": TE,
            "subject_token": first["access_token"],
            "subject_token_type": AT_TYPE,
            "actor_token": actor,
            "actor_token_type": AT_TYPE,
            "audience": DOWN,
            "scope": "downstream:read",
            **creds,
        },
    )
    assert r.status_code == 200, r.text
    claims = verify(handle, r.json()["access_token"], DOWN)[1]
    assert claims["act"] == {"sub": "agent-post", "act": {"sub": handle.client_id}}
    assert claims["sub"] == "alice" and claims["client_id"] == "agent-post"


def test_exchange_refresh_token_subject_keeps_audience(handle: ProviderHandle, alice: dict) -> None:
    r = handle.post(
        "token_endpoint",
        {
            "grant_type": TE,
            "subject_token": alice["refresh_token"],
            "subject_token_type": RT_TYPE,
            "scope": "api:read",
        },
    )
    assert r.status_code == 200, r.text
    claims = verify(handle, r.json()["access_token"], API)[1]
    assert claims["scope"] == "api:read" and claims["act"] == {"sub": handle.client_id}


def test_exchange_id_token_subject(handle: ProviderHandle, alice: dict) -> None:
    r = handle.post(
        "token_endpoint",
        {
            "grant_type": TE,
            "subject_token": alice["id_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": DOWN,
        },
    )
    assert r.status_code == 200, r.text
    assert verify(handle, r.json()["access_token"], DOWN)[1]["sub"] == "alice"


def test_revoking_subject_grant_revokes_exchanged_token(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("bob", scope="openid offline_access api:read", resource=API)
    exchanged = handle.post(
        "token_endpoint",
        {
            "grant_type": TE,
            "subject_token": tok["access_token"],
            "subject_token_type": AT_TYPE,
            "resource": DOWN,
        },
    ).json()
    assert (
        handle.post("introspection_endpoint", {"token": exchanged["access_token"]}).json()["active"] is True
    )
    handle.post("revocation_endpoint", {"token": tok["refresh_token"]})
    assert handle.post("introspection_endpoint", {"token": exchanged["access_token"]}).json() == {
        "active": False
    }


@pytest.mark.parametrize(
    "extra,error",
    [
        ({"subject_token": "garbage"}, "invalid_grant"),
        (
            {
                "subject_token": "eyJhbGciOiJub25lIn0.e30.",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            },
            "invalid_grant",
        ),
        ({"scope": "api:admin", "resource": API}, "invalid_scope"),
        ({"scope": "downstream:write"}, "invalid_scope"),  # beyond the subject's scope, no target named
        ({"resource": "urn:nope"}, "invalid_target"),
        ({"resource": API, "audience": DOWN}, "invalid_target"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"actor_token": "x"}, "invalid_request"),
        ({"subject_token": None}, "invalid_request"),
        ({"subject_token_type": None}, "invalid_request"),
    ],
)
def test_exchange_errors(handle: ProviderHandle, alice: dict, extra: dict, error: str) -> None:
    params = {
        "grant_type": TE,
        "subject_token": alice["access_token"],
        "subject_token_type": AT_TYPE,
        **extra,
    }
    r = handle.post("token_endpoint", {k: v for k, v in params.items() if v is not None})
    assert r.status_code == 400 and r.json()["error"] == error, r.text


def test_exchange_unauthorized_client(handle: ProviderHandle, idp: LocalProvider, alice: dict) -> None:
    plain = idp.add_client(client_id="cc-only", grant_types=["client_credentials"])
    r = handle.post(
        "token_endpoint",
        {"grant_type": TE, "subject_token": alice["access_token"], "subject_token_type": AT_TYPE},
        auth=(plain["client_id"], plain["client_secret"]),
    )
    assert r.json()["error"] == "unauthorized_client"


# ---------------------------------------------------------------------------- Token Vault (Auth0 shape)
def _vault(handle: ProviderHandle, subject: str, subject_type: str = RT_TYPE, **extra: str) -> httpx.Response:
    return handle.post(
        "token_endpoint",
        {
            "grant_type": FEDERATED,
            "subject_token": subject,
            "subject_token_type": subject_type,
            "requested_token_type": FEDERATED_TYPE,
            "connection": "demo-upstream",
            **extra,
        },
    )


def test_federated_exchange_lifecycle(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("bob", scope="openid offline_access")
    idp.unlink_connection("bob")
    missing = _vault(handle, tok["refresh_token"])
    assert missing.status_code == 401
    assert missing.json()["error"] == "federated_connection_refresh_token_not_found"

    link = idp.link_connection("bob", scope="calendar.read calendar.write")
    assert link["status"] == "active" and link["scope"] == "calendar.read calendar.write"
    r = _vault(handle, tok["refresh_token"], login_hint="bob")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == FEDERATED_TYPE and body["token_type"] == "Bearer"
    assert body["expires_in"] > 0 and body["scope"] == "calendar.read calendar.write"
    events = httpx.get(
        idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert events.status_code == 200 and events.json()["owner"] == "bob"
    # same token while valid; access-token subject works too
    again = _vault(handle, tok["access_token"], AT_TYPE).json()
    assert again["access_token"] == body["access_token"]

    # the upstream access token expires: the provider refreshes it (rotating the upstream refresh token)
    idp.expire_upstream_tokens("bob")
    assert (
        httpx.get(
            idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {body['access_token']}"}
        ).status_code
        == 401
    )
    refreshed = _vault(handle, tok["refresh_token"]).json()
    assert refreshed["access_token"] != body["access_token"]
    assert idp.stats()["grants"].get("federated_refreshed", 0) >= 1

    # the upstream revokes the user's consent: Auth0's 401, and the connection needs reauthorization
    idp.revoke_upstream_tokens("bob")
    gone = _vault(handle, tok["refresh_token"])
    assert gone.status_code == 401 and gone.json()["error"] == "federated_connection_refresh_token_not_found"
    assert idp.connections("bob")[0]["status"] == "needs_reauthorization"
    idp.link_connection("bob")
    assert _vault(handle, tok["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "extra,error,status",
    [
        ({"connection": "google-oauth2"}, "invalid_request", 400),
        ({"connection": None}, "invalid_request", 400),
        ({"requested_token_type": AT_TYPE}, "invalid_request", 400),
        ({"subject_token": "nope"}, "invalid_grant", 400),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request", 400),
        ({"login_hint": "someone-else"}, "federated_connection_refresh_token_not_found", 401),
    ],
)
def test_federated_exchange_errors(
    handle: ProviderHandle, idp: LocalProvider, extra: dict, error: str, status: int
) -> None:
    tok = idp.login("alice", scope="openid offline_access")
    idp.link_connection("alice")
    form = {
        "grant_type": FEDERATED,
        "subject_token": tok["refresh_token"],
        "subject_token_type": RT_TYPE,
        "requested_token_type": FEDERATED_TYPE,
        "connection": "demo-upstream",
        **extra,
    }
    r = handle.post("token_endpoint", {k: v for k, v in form.items() if v is not None})
    assert r.status_code == status and r.json()["error"] == error, r.text


def test_federated_upstream_outage(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("alice", scope="openid offline_access")
    idp.link_connection("alice")
    idp.expire_upstream_tokens("alice")
    idp.upstream_outage(token=1)
    r = _vault(handle, tok["refresh_token"])
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert _vault(handle, tok["refresh_token"]).status_code == 200  # the connection survived the outage


def test_connect_page_flow(idp: LocalProvider) -> None:
    """The user links the upstream account once through the pages."""
    idp.unlink_connection("alice")
    with httpx.Client(follow_redirects=False, base_url=idp.issuer) as browser:
        _sign_in(browser, "/login", "alice", idp.users["alice"])
        r = browser.get("/connections/demo-upstream/connect", params={"scope": "calendar.read"})
        assert r.status_code == 303 and r.headers["location"].startswith(idp.upstream_issuer + "/authorize")
        r = browser.get(r.headers["location"])  # upstream: not signed in there yet
        assert r.headers["location"].startswith("/upstream/login")
        r = _sign_in(browser, "/upstream/login", "alice", idp.users["alice"], next_url=_next(r))
        consent = browser.get(r.headers["location"])
        assert "Allow access?" in consent.text and "See your calendar events" in consent.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
        r = browser.post("/upstream/authorize", data={**fields, "decision": "allow"})
        assert r.headers["location"].startswith(idp.issuer + "/connections/callback")
        r = browser.get(r.headers["location"])
        assert r.headers["location"] == "/connections?done=linked"
        page = browser.get(r.headers["location"])
        assert "Account connected." in page.text and "(active)" in page.text
    assert idp.connections("alice")[0]["scope"] == "calendar.read"


def _next(response: httpx.Response) -> str:
    return parse_qs(urlsplit(response.headers["location"]).query)["next"][0]


def _sign_in(
    browser: httpx.Client, path: str, user: str, password: str, next_url: str | None = None
) -> httpx.Response:
    page = browser.get(path, params={"next": next_url} if next_url else {})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    nxt = re.search(r'name="next" value="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    r = browser.post(path, data={"csrf": csrf, "next": nxt, "username": user, "password": password})
    assert r.status_code == 303, r.text
    return r


# ---------------------------------------------------------------------------- the vault's own connect client
def test_upstream_connect_client_and_calendar_api(idp: LocalProvider) -> None:
    tok = idp.login(
        "alice",
        scope="calendar.read calendar.write",
        upstream=True,
        redirect_uri="http://127.0.0.1:49152/callback",
    )  # any loopback port (RFC 8252)
    assert tok["token_type"] == "Bearer" and tok["refresh_token"] and tok["access_token"].count(".") == 0
    headers = {"Authorization": f"Bearer {tok['access_token']}"}
    created = httpx.post(
        idp.api_url + "/calendar/events",
        headers=headers,
        json={"title": "Standup", "start": "2026-12-01T09:00:00Z", "attendees": ["bob@example.com"]},
    )
    assert created.status_code == 201 and created.json()["title"] == "Standup"
    listed = httpx.get(idp.api_url + "/calendar/events", headers=headers).json()
    assert any(e["id"] == created.json()["id"] for e in listed["events"])
    # upstream refresh rotation
    upstream_token = idp.upstream_issuer + "/token"
    creds = (idp.upstream_client_id, idp.upstream_client_secret)
    new = httpx.post(
        upstream_token,
        auth=creds,
        data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
    ).json()
    assert new["refresh_token"] != tok["refresh_token"]
    reuse = httpx.post(
        upstream_token,
        auth=creds,
        data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
    )
    assert reuse.json()["error"] == "invalid_grant"
    # upstream userinfo and revocation
    revoke = httpx.post(idp.upstream_issuer + "/revoke", auth=creds, data={"token": tok["access_token"]})
    assert revoke.status_code == 200


def test_api_scope_and_token_errors(idp: LocalProvider) -> None:
    read_only = idp.login("bob", scope="calendar.read", upstream=True)["access_token"]
    r = httpx.post(
        idp.api_url + "/calendar/events",
        headers={"Authorization": f"Bearer {read_only}"},
        json={"title": "x", "start": "now"},
    )
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="calendar.write"' in r.headers["www-authenticate"]
    r = httpx.get(idp.api_url + "/calendar/events")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer realm=")
    assert "error=" not in r.headers["www-authenticate"]  # RFC 6750 §3.1: no error without credentials
    r = httpx.get(idp.api_url + "/calendar/events", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    r = httpx.get(idp.api_url + "/calendar/events", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 401
    # a main-issuer token is not an upstream token
    main = idp.login("bob", scope="openid")["access_token"]
    assert (
        httpx.get(idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {main}"}).status_code
        == 401
    )
    idp.upstream_outage(api=1)
    r = httpx.get(idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {read_only}"})
    assert r.status_code == 503
    assert (
        httpx.get(
            idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {read_only}"}
        ).status_code
        == 200
    )
    writer = idp.login("bob", scope="calendar.write", upstream=True)["access_token"]
    bad = httpx.post(
        idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {writer}"}, content=b"{not json"
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


# ---------------------------------------------------------------------------- bank API: approved == executed
def _ciba_token(handle: ProviderHandle, user: str, details: list, message: str) -> str:
    rid = handle.bc_authorize(
        login_hint=user,
        scope="openid",
        audience="urn:agent-auth:demo-api",
        binding_message=message,
        authorization_details=json.dumps(details),
    ).json()["auth_req_id"]
    handle.approve(handle.pending_one(user, message)["id"])
    tok, err = handle.poll(rid)
    assert err is None, err
    return tok["access_token"]


def test_bank_transfer_enforces_authorization_details(handle: ProviderHandle, idp: LocalProvider) -> None:
    token = _ciba_token(handle, "alice", PAYMENT, "Pay ACME 250")
    headers = {"Authorization": f"Bearer {token}"}
    transfer = {
        "amount": "250.00",
        "currency": "EUR",
        "creditorName": "ACME Corp",
        "creditorAccount": {"iban": "DE89370400440532013000"},
    }
    for changed in (
        {"amount": "251.00"},
        {"currency": "USD"},
        {"creditorName": "Mallory"},
        {"creditorAccount": {"iban": "GB00EVIL"}},
    ):
        r = httpx.post(idp.api_url + "/bank/transfers", headers=headers, json={**transfer, **changed})
        assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"], changed
    ok = httpx.post(idp.api_url + "/bank/transfers", headers=headers, json=transfer)
    assert ok.status_code == 201, ok.text
    assert ok.json()["status"] == "executed" and ok.json()["amount"] == "250.00"
    # the same approval replayed is idempotent; it cannot pay anything else
    replay = httpx.post(idp.api_url + "/bank/transfers", headers=headers, json=transfer)
    assert replay.status_code == 200 and replay.json()["id"] == ok.json()["id"] and replay.json()["replayed"]


def test_bank_balance_needs_scope_and_audience(handle: ProviderHandle, idp: LocalProvider) -> None:
    tok = idp.login("bob", scope="openid bank:read", audience="urn:agent-auth:demo-api")
    r = httpx.get(idp.api_url + "/bank/balance", headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert r.status_code == 200 and r.json()["currency"] == "EUR" and r.json()["account"] == "bob"
    other = idp.login("bob", scope="openid api:read", resource=API)  # wrong audience
    r = httpx.get(idp.api_url + "/bank/balance", headers={"Authorization": f"Bearer {other['access_token']}"})
    assert r.status_code == 401
    no_scope = _ciba_token(handle, "bob", PAYMENT, "Pay for balance test")
    r = httpx.get(idp.api_url + "/bank/balance", headers={"Authorization": f"Bearer {no_scope}"})
    assert r.status_code == 403 and 'scope="bank:read"' in r.headers["www-authenticate"]
    handle.post("revocation_endpoint", {"token": tok["access_token"]})
    r = httpx.get(idp.api_url + "/bank/balance", headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert r.status_code == 401
