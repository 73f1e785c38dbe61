"""Log lines never contain tokens, secrets or auth_req_ids."""

from __future__ import annotations

import json

import httpx

from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import (
    API,
    AT_TYPE,
    CIBA,
    FEDERATED,
    FEDERATED_TYPE,
    RAR,
    RT_TYPE,
    TE,
    TOKEN_SHAPED,
)


def test_logs_carry_no_credentials(idp: LocalProvider, provider_logs, ping_client, ping_receiver) -> None:
    seen: list[str] = [idp.client_secret, idp.admin_token, idp.upstream_client_secret, *idp.users.values()]
    auth = (idp.client_id, idp.client_secret)
    token_url = idp.issuer + "/token"
    start = len(provider_logs.lines)

    # CIBA poll with RAR, deny, ping, refresh, exchange, Token Vault, code flow, failures with secrets inside
    r = httpx.post(
        idp.issuer + "/bc-authorize",
        auth=auth,
        data={
            "login_hint": "alice",
            "scope": "openid offline_access api:read",
            "resource": API,
            "binding_message": "log scan",
            "authorization_details": json.dumps(RAR),
        },
    ).json()
    seen.append(r["auth_req_id"])
    httpx.post(token_url, auth=auth, data={"grant_type": CIBA, "auth_req_id": r["auth_req_id"]})
    idp.approve(idp.pending_approvals("alice")[-1]["id"])
    idp.advance(1.05)
    tok = httpx.post(token_url, auth=auth, data={"grant_type": CIBA, "auth_req_id": r["auth_req_id"]}).json()
    seen += [tok["access_token"], tok["refresh_token"], tok["id_token"]]
    ping_auth = (ping_client["client_id"], ping_client["client_secret"])
    seen.append(ping_client["client_secret"])
    p = httpx.post(
        idp.issuer + "/bc-authorize",
        auth=ping_auth,
        data={
            "login_hint": "bob",
            "scope": "openid",
            "client_notification_token": "notification-secret-123456789012345",
            "binding_message": "log scan ping",
        },
    ).json()
    seen += [p["auth_req_id"], "notification-secret-123456789012345"]
    idp.deny(idp.pending_approvals("bob")[-1]["id"], reason="no")
    ping_receiver.events.get(timeout=5)
    new = httpx.post(
        token_url, auth=auth, data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    ).json()
    seen += [new["access_token"], new["refresh_token"]]
    ex = httpx.post(
        token_url,
        auth=auth,
        data={"grant_type": TE, "subject_token": new["access_token"], "subject_token_type": AT_TYPE},
    ).json()
    seen.append(ex["access_token"])
    idp.link_connection("alice")
    fed = httpx.post(
        token_url,
        auth=auth,
        data={
            "grant_type": FEDERATED,
            "subject_token": new["refresh_token"],
            "subject_token_type": RT_TYPE,
            "requested_token_type": FEDERATED_TYPE,
            "connection": "demo-upstream",
        },
    ).json()
    seen.append(fed["access_token"])
    login = idp.login("bob", scope="openid offline_access")
    seen += [login["access_token"], login["refresh_token"]]
    httpx.post(
        token_url,
        auth=(idp.client_id, "wrong-secret-wrong-secret-wrong-secret"),
        data={"grant_type": "client_credentials"},
    )
    httpx.post(
        token_url, auth=auth, data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    )
    httpx.get(idp.api_url + "/calendar/events", headers={"Authorization": f"Bearer {fed['access_token']}"})
    httpx.post(idp.issuer + "/introspect", auth=auth, data={"token": login["access_token"]})
    httpx.post(idp.issuer + "/revoke", auth=auth, data={"token": login["refresh_token"]})
    seen.append("wrong-secret-wrong-secret-wrong-secret")

    lines = provider_logs.lines[start:]
    assert any("CIBA request" in line for line in lines) and any("POST /token" in line for line in lines)
    for line in provider_logs.lines:  # everything the provider logged during the whole session
        for secret in seen:
            assert secret not in line, line
        assert not TOKEN_SHAPED.search(line), line
