"""Restart durability: everything lives in SQLite under the data directory."""

from __future__ import annotations

import json
import pathlib

import httpx

from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import CIBA, PAYMENT


def test_pending_ciba_request_survives_restart(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "state"
    with LocalProvider(data_dir, ciba_interval=1) as idp:
        port, info = idp.port, dict(idp.info)
        auth = (idp.client_id, idp.client_secret)
        r = httpx.post(
            idp.issuer + "/bc-authorize",
            auth=auth,
            data={
                "login_hint": "alice",
                "scope": "openid offline_access",
                "binding_message": "Survive a restart",
                "authorization_details": json.dumps(PAYMENT),
            },
        )
        auth_req_id = r.json()["auth_req_id"]
        before = idp.pending_approvals("alice")
        old = idp.login("bob", scope="openid offline_access")
        idp.link_connection("bob")
        kids = {k["kid"] for k in httpx.get(idp.issuer + "/jwks").json()["keys"]}

    with LocalProvider(data_dir, port=port, ciba_interval=1) as idp:
        assert idp.issuer == info["issuer"]
        # same seeded credentials, admin token and keys
        for key in ("client_secret", "users", "admin_token", "upstream_client_secret"):
            assert idp.info[key] == info[key], key
        assert {k["kid"] for k in httpx.get(idp.issuer + "/jwks").json()["keys"]} == kids
        # the pending request is still there and can still be approved
        after = idp.pending_approvals("alice")
        assert [p["id"] for p in after] == [p["id"] for p in before]
        assert after[0]["authorization_details"] == PAYMENT
        poll = {"grant_type": CIBA, "auth_req_id": auth_req_id}
        assert (
            httpx.post(idp.issuer + "/token", auth=auth, data=poll).json()["error"] == "authorization_pending"
        )
        idp.approve(after[0]["id"])
        idp.advance(1.05)
        tok = httpx.post(idp.issuer + "/token", auth=auth, data=poll)
        assert tok.status_code == 200 and tok.json()["authorization_details"] == PAYMENT
        # tokens issued before the restart still work
        refreshed = httpx.post(
            idp.issuer + "/token",
            auth=auth,
            data={"grant_type": "refresh_token", "refresh_token": old["refresh_token"]},
        )
        assert refreshed.status_code == 200
        assert idp.connections("bob")[0]["status"] == "active"


def test_temporary_data_dir_is_removed() -> None:
    idp = LocalProvider().start()
    data_dir = pathlib.Path(idp.data_dir)
    assert (data_dir / "provider.sqlite3").exists()
    idp.stop()
    assert not data_dir.exists() and not idp.running


async def test_async_context_manager() -> None:
    async with LocalProvider() as idp:
        async with httpx.AsyncClient() as http:
            meta = (await http.get(idp.issuer + "/.well-known/openid-configuration")).json()
        assert meta["issuer"] == idp.issuer
    assert not idp.running
