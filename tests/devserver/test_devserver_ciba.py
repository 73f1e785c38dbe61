"""OpenID CIBA against the local provider: poll and ping, approve / deny / expiry / slow_down,
RAR carried into the token, login_hint forms, replay, and every bad-input case."""

from __future__ import annotations

import json

import httpx
import pytest
from authlib.oidc.core import CodeIDToken

from langchain_agent_auth.core.errors import OAuthError
from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import API, PAYMENT, RAR, PingReceiver, ProviderHandle, verify, wait_until


def test_poll_approve_with_rar(handle: ProviderHandle) -> None:
    r = handle.bc_authorize(
        login_hint="alice@example.com",
        scope="openid offline_access email api:read",
        binding_message="Approve email 42",
        requested_expiry="120",
        resource=API,
        authorization_details=json.dumps(RAR),
        acr_values="urn:agent-auth:loa:2",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert body["expires_in"] == 120 and body["interval"] == 1
    rid = body["auth_req_id"]
    assert handle.poll(rid) == (None, "authorization_pending")
    pending = handle.pending_one("alice", "Approve email 42")
    assert pending["authorization_details"] == RAR and pending["client_id"] == handle.client_id
    assert pending["id"] != rid and rid not in json.dumps(pending)  # the auth_req_id is never shown
    assert pending["authorization_details_view"][0]["title"] == "Let the agent send email"
    handle.approve(pending["id"])
    handle.idp.advance(1.05)  # respect the interval
    tok, err = handle.poll(rid)
    assert err is None
    assert tok["authorization_details"] == RAR and tok["token_type"] == "Bearer"
    assert {"access_token", "id_token", "refresh_token", "expires_in", "scope"} <= set(tok)
    _, at = verify(handle, tok["access_token"], API, typ="at+jwt")
    assert at["sub"] == "alice" and at["authorization_details"] == RAR and "api:read" in at["scope"].split()
    _, idt = verify(handle, tok["id_token"], handle.client_id)
    assert idt["email"] == "alice@example.com" and idt["acr"] == "urn:agent-auth:loa:2"
    CodeIDToken(idt, {"alg": "RS256"}, {"iss": {"value": handle.issuer}}).validate(leeway=5)
    # refresh keeps the approved details; the auth_req_id is single use
    new = handle.post(
        "token_endpoint", {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    )
    assert verify(handle, new.json()["access_token"], API)[1]["authorization_details"] == RAR
    handle.idp.advance(1.05)
    assert handle.poll(rid) == (None, "invalid_grant")
    # ... and the replay revoked the grant (what node-oidc-provider does too)
    again = handle.post(
        "token_endpoint", {"grant_type": "refresh_token", "refresh_token": new.json()["refresh_token"]}
    )
    assert again.json()["error"] == "invalid_grant"


def test_approve_with_narrowed_details(handle: ProviderHandle) -> None:
    rid = handle.bc_authorize(
        login_hint="bob",
        scope="openid",
        binding_message="Pay ACME",
        authorization_details=json.dumps(PAYMENT),
    ).json()["auth_req_id"]
    pending = handle.pending_one("bob", "Pay ACME")
    assert pending["authorization_details_view"][0]["title"] == "Pay 250.00 EUR to ACME Corp"
    narrowed = [{**PAYMENT[0], "instructedAmount": {"amount": "200.00", "currency": "EUR"}}]
    with pytest.raises(OAuthError) as exc:
        handle.approve(pending["id"], authorization_details=[{"type": "bogus"}])
    assert exc.value.error == "invalid_authorization_details"
    handle.approve(pending["id"], authorization_details=narrowed)
    tok, _ = handle.poll(rid)
    assert tok["authorization_details"] == narrowed


def test_deny_with_reason(handle: ProviderHandle) -> None:
    rid = handle.bc_authorize(login_hint="alice", scope="openid", binding_message="Delete all").json()[
        "auth_req_id"
    ]
    assert handle.poll(rid) == (None, "authorization_pending")
    handle.deny(handle.pending_one("alice", "Delete all")["id"], reason="user said no")
    handle.idp.advance(1.05)
    r = handle.post("token_endpoint", {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": rid})
    assert r.status_code == 400
    assert r.json() == {"error": "access_denied", "error_description": "user said no"}
    handle.idp.advance(1.05)
    assert handle.poll(rid) == (None, "invalid_grant")  # consumed


def test_decisions_are_final(handle: ProviderHandle, idp: LocalProvider) -> None:
    handle.bc_authorize(login_hint="bob", scope="openid", binding_message="Once")
    pending = handle.pending_one("bob", "Once")
    handle.approve(pending["id"])
    for action in (lambda: handle.deny(pending["id"]), lambda: handle.approve(pending["id"])):
        with pytest.raises(OAuthError) as exc:
            action()
        assert exc.value.error == "already_decided" and exc.value.status_code == 409
    with pytest.raises(OAuthError) as exc:
        handle.approve("req_doesnotexist")
    assert exc.value.status_code == 404


def test_expiry(handle: ProviderHandle) -> None:
    body = handle.bc_authorize(
        login_hint="alice", scope="openid", requested_expiry="1", binding_message="Too slow"
    ).json()
    assert body["expires_in"] == 1
    handle.idp.advance(1.2)
    assert handle.poll(body["auth_req_id"]) == (None, "expired_token")
    item = next(a for a in handle.idp.approvals(user="alice") if a["binding_message"] == "Too slow")
    assert item["status"] == "expired"
    assert handle.pending("alice", "Too slow") == []
    with pytest.raises(OAuthError) as exc:
        handle.approve(item["id"])
    assert exc.value.error in ("expired", "already_decided")


def test_polling_at_the_interval_is_accepted(handle: ProviderHandle) -> None:
    rid = handle.bc_authorize(login_hint="bob", scope="openid").json()["auth_req_id"]
    for _ in range(3):
        assert handle.poll(rid) == (None, "authorization_pending")
        handle.idp.advance(1.05)


def test_slow_down_with_five_second_default() -> None:
    """Two polls well within the interval: the second one gets slow_down."""
    with LocalProvider() as idp:  # ciba_interval defaults to 5 s, as the spec suggests
        auth = (idp.client_id, idp.client_secret)
        body = httpx.post(
            idp.issuer + "/bc-authorize", auth=auth, data={"login_hint": "bob", "scope": "openid"}
        ).json()
        assert body["interval"] == 5
        poll = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": body["auth_req_id"]}
        assert (
            httpx.post(idp.issuer + "/token", auth=auth, data=poll).json()["error"] == "authorization_pending"
        )
        assert httpx.post(idp.issuer + "/token", auth=auth, data=poll).json()["error"] == "slow_down"
        assert idp.stats()["ciba"]["slow_down"] == 1


@pytest.mark.parametrize(
    "hint",
    [
        "bob",
        "bob@example.com",
        None,  # the {"format":"iss_sub"} JSON form, built with the issuer below
        json.dumps({"format": "email", "email": "bob@example.com"}),
    ],
)
def test_login_hint_forms(handle: ProviderHandle, hint: str | None) -> None:
    hint = hint or json.dumps({"format": "iss_sub", "iss": handle.issuer, "sub": "bob"})
    message = f"hint {len(hint)}"
    r = handle.bc_authorize(login_hint=hint, scope="openid", binding_message=message)
    assert r.status_code == 200, r.text
    assert handle.pending_one("bob", message)["user"] == "bob"


def test_id_token_hint(handle: ProviderHandle, idp: LocalProvider) -> None:
    id_token = idp.login("bob", scope="openid")["id_token"]
    r = handle.bc_authorize(id_token_hint=id_token, scope="openid", binding_message="via id_token_hint")
    assert r.status_code == 200, r.text
    assert handle.pending_one("bob", "via id_token_hint")["user"] == "bob"


def test_binding_message_unicode_accepted(handle: ProviderHandle) -> None:
    message = "Überweisung 250 € an Zoë — ok? ✅"
    assert handle.bc_authorize(login_hint="alice", scope="openid", binding_message=message).status_code == 200
    assert handle.pending_one("alice", message)["binding_message"] == message


@pytest.mark.parametrize(
    "params,error,status",
    [
        ({"login_hint": "mallory", "scope": "openid"}, "unknown_user_id", 400),
        (
            {
                "login_hint": json.dumps({"format": "iss_sub", "iss": "https://other", "sub": "alice"}),
                "scope": "openid",
            },
            "unknown_user_id",
            400,
        ),
        ({"login_hint": "{not json", "scope": "openid"}, "invalid_request", 400),
        ({"login_hint": json.dumps({"format": "phone"}), "scope": "openid"}, "invalid_request", 400),
        ({"login_hint": "alice", "scope": "api:read"}, "invalid_request", 400),  # openid is required
        ({"login_hint": "alice"}, "invalid_request", 400),
        ({"scope": "openid"}, "invalid_request", 400),  # no hint
        ({"login_hint": "alice", "login_hint_token": "x", "scope": "openid"}, "invalid_request", 400),
        ({"login_hint_token": "x", "scope": "openid"}, "invalid_request", 400),
        ({"id_token_hint": "not-a-jwt", "scope": "openid"}, "invalid_request", 400),
        (
            {"login_hint": "alice", "scope": "openid", "binding_message": "x" * 129},
            "invalid_binding_message",
            400,
        ),
        (
            {"login_hint": "alice", "scope": "openid", "binding_message": "line\nbreak"},
            "invalid_binding_message",
            400,
        ),
        (
            {"login_hint": "alice", "scope": "openid", "binding_message": "bell\x07"},
            "invalid_binding_message",
            400,
        ),
        ({"login_hint": "alice", "scope": "openid", "requested_expiry": "0"}, "invalid_request", 400),
        ({"login_hint": "alice", "scope": "openid", "requested_expiry": "3601"}, "invalid_request", 400),
        ({"login_hint": "alice", "scope": "openid", "requested_expiry": "-5"}, "invalid_request", 400),
        ({"login_hint": "alice", "scope": "openid", "requested_expiry": "soon"}, "invalid_request", 400),
        ({"login_hint": "alice", "scope": "openid", "requested_expiry": "1.5"}, "invalid_request", 400),
        ({"login_hint": "alice", "scope": "openid nope:read"}, "invalid_scope", 400),
        ({"login_hint": "alice", "scope": "openid", "resource": "urn:nope"}, "invalid_target", 400),
        (
            {
                "login_hint": "alice",
                "scope": "openid",
                "authorization_details": json.dumps([{"type": "unknown_type"}]),
            },
            "invalid_authorization_details",
            400,
        ),
        (
            {
                "login_hint": "alice",
                "scope": "openid",
                "authorization_details": json.dumps([{"type": "agent_action"}]),
            },
            "invalid_authorization_details",
            400,
        ),
        (
            {
                "login_hint": "alice",
                "scope": "openid",
                "authorization_details": json.dumps(
                    [{"type": "payment_initiation", "instructedAmount": {"amount": "-3", "currency": "EUR"}}]
                ),
            },
            "invalid_authorization_details",
            400,
        ),
        (
            {"login_hint": "alice", "scope": "openid", "authorization_details": "{}"},
            "invalid_authorization_details",
            400,
        ),
        (
            {"login_hint": "alice", "scope": "openid", "request": "eyJhbGciOiJub25lIn0.e30."},
            "invalid_request",
            400,
        ),
    ],
)
def test_bc_authorize_errors(handle: ProviderHandle, params: dict, error: str, status: int) -> None:
    before = len(handle.idp.approvals(status="all"))
    r = handle.bc_authorize(**params)
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert len(handle.idp.approvals(status="all")) == before  # nothing was created


def test_bc_authorize_client_errors(handle: ProviderHandle, idp: LocalProvider) -> None:
    r = handle.bc_authorize(auth=(handle.client_id, "wrong"), login_hint="alice", scope="openid")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    r = handle.bc_authorize(auth=("nobody", "x"), login_hint="alice", scope="openid")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = handle.bc_authorize(auth=None, login_hint="alice", scope="openid")
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    plain = idp.add_client(client_id="no-ciba", grant_types=["client_credentials"])
    r = handle.bc_authorize(
        auth=(plain["client_id"], plain["client_secret"]), login_hint="alice", scope="openid"
    )
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_token_request_errors(handle: ProviderHandle, idp: LocalProvider) -> None:
    rid = handle.bc_authorize(login_hint="alice", scope="openid").json()["auth_req_id"]
    other = idp.add_client(client_id="ciba-other", grant_types=["urn:openid:params:grant-type:ciba"])
    assert handle.poll(rid, auth=(other["client_id"], other["client_secret"])) == (None, "invalid_grant")
    assert handle.poll("made-up-auth-req-id") == (None, "invalid_grant")
    r = handle.post("token_endpoint", {"grant_type": "urn:openid:params:grant-type:ciba"})
    assert r.json()["error"] == "invalid_request"
    assert handle.poll(rid) == (None, "authorization_pending")  # the real request is untouched


# ---------------------------------------------------------------------------- ping mode
def test_ping_approve(handle: ProviderHandle, ping_client: dict, ping_receiver: PingReceiver) -> None:
    auth = (ping_client["client_id"], ping_client["client_secret"])
    r = handle.bc_authorize(
        auth=auth,
        login_hint="alice",
        scope="openid",
        binding_message="ping me",
        client_notification_token="notif-123",
    )
    assert r.status_code == 200, r.text
    rid = r.json()["auth_req_id"]
    pending = handle.pending_one("alice", "ping me")
    assert pending["delivery_mode"] == "ping"
    handle.approve(pending["id"])
    event = ping_receiver.events.get(timeout=5)
    assert event["authorization"] == "Bearer notif-123" and event["body"] == {"auth_req_id": rid}
    assert event["content_type"].startswith("application/json")
    tok, err = handle.poll(rid, auth=auth)
    assert err is None and verify(handle, tok["id_token"], ping_client["client_id"])[1]["sub"] == "alice"
    assert wait_until(lambda: handle.idp.stats()["ciba"].get("pings_sent", 0) >= 1)


def test_ping_deny(handle: ProviderHandle, ping_client: dict, ping_receiver: PingReceiver) -> None:
    auth = (ping_client["client_id"], ping_client["client_secret"])
    rid = handle.bc_authorize(
        auth=auth,
        login_hint="bob",
        scope="openid",
        binding_message="ping deny",
        client_notification_token="n2",
    ).json()["auth_req_id"]
    handle.deny(handle.pending_one("bob", "ping deny")["id"])
    event = ping_receiver.events.get(timeout=5)
    assert event["body"] == {"auth_req_id": rid} and event["authorization"] == "Bearer n2"
    assert handle.poll(rid, auth=auth) == (None, "access_denied")


def test_ping_requires_notification_token(handle: ProviderHandle, ping_client: dict) -> None:
    auth = (ping_client["client_id"], ping_client["client_secret"])
    r = handle.bc_authorize(auth=auth, login_hint="alice", scope="openid")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_ping_failure_is_counted_not_fatal(handle: ProviderHandle, idp: LocalProvider) -> None:
    dead = idp.add_client(
        client_id="ping-dead",
        grant_types=["urn:openid:params:grant-type:ciba"],
        backchannel_token_delivery_mode="ping",
        backchannel_client_notification_endpoint="http://127.0.0.1:9/notify",
    )
    auth = (dead["client_id"], dead["client_secret"])
    rid = handle.bc_authorize(
        auth=auth,
        login_hint="alice",
        scope="openid",
        binding_message="dead ping",
        client_notification_token="t",
    ).json()["auth_req_id"]
    handle.approve(handle.pending_one("alice", "dead ping")["id"])
    assert wait_until(lambda: idp.stats()["ciba"].get("pings_failed", 0) >= 1)
    tok, err = handle.poll(rid, auth=auth)  # the client can still poll
    assert err is None and tok["access_token"]
