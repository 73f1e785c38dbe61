"""The connect -> call -> expire -> refresh -> revoke -> reconnect cycle, over HTTP."""

from __future__ import annotations

import httpx
import pytest

from langchain_agent_auth.core.errors import CredentialUnavailableError
from tests.vault.conftest import ALICE, Both, connect


async def test_full_cycle(vault, upstream, mode):
    call = Both(vault, mode)
    with pytest.raises(CredentialUnavailableError) as exc:
        await call("get_token", ALICE, "calendar", ["calendar.read"])
    assert exc.value.status == "not_connected" and exc.value.missing_scopes == ("calendar.read",)

    _, page = connect(vault, upstream, ALICE)
    assert page.status_code == 200 and "connected" in page.text
    token = await call("get_token", ALICE, "calendar", ["calendar.read"])
    api = httpx.get(f"{upstream.api_url}/events", headers={"Authorization": token.authorization})
    assert api.status_code == 200 and api.json()["owner"] == "alice"
    assert upstream.stats()["token:authorization_code"] == 1

    # cached: no token endpoint traffic
    again = await call("get_token", ALICE, "calendar", ["calendar.read"])
    assert again.token == token.token and upstream.stats()["token"] == 1

    # expire at the provider; the vault learns it from a 401 (rejected=) and refreshes once
    upstream.expire("alice")
    assert httpx.get(f"{upstream.api_url}/events", headers={"Authorization": token.authorization}).status_code == 401
    fresh = await call("get_token", ALICE, "calendar", ["calendar.read"], rejected=token.token)
    assert fresh.token != token.token and upstream.stats()["token:refresh_token"] == 1
    assert httpx.get(f"{upstream.api_url}/events", headers={"Authorization": fresh.authorization}).status_code == 200

    # revoke: upstream revocation endpoint called, record gone, token dead
    result = await call("revoke", ALICE, "calendar")
    assert result.deleted and result.upstream_revoked and upstream.stats()["revoke"] >= 1
    assert httpx.get(f"{upstream.api_url}/events", headers={"Authorization": fresh.authorization}).status_code == 401
    with pytest.raises(CredentialUnavailableError) as exc:
        await call("get_token", ALICE, "calendar", ["calendar.read"])
    assert exc.value.status == "not_connected"

    # reconnect
    connect(vault, upstream, ALICE)
    back = await call("get_token", ALICE, "calendar", ["calendar.read"])
    assert httpx.get(f"{upstream.api_url}/events", headers={"Authorization": back.authorization}).status_code == 200


def test_code_is_redeemed_with_the_redirect_uri_the_flow_started_with(upstream, sqlite_store, keyring):
    from langchain_agent_auth.vault import Connection, TokenVault, VaultCallback
    from tests.support.demo_upstream import CLIENT_ID, CLIENT_SECRET, browse_upstream
    from tests.vault.conftest import calendar_connection

    before = TokenVault([calendar_connection(upstream)], store=sqlite_store, keyring=keyring)
    request = before.start_connect(ALICE, "calendar", ["calendar.read"])
    # The app restarts with another callback address before the user finishes the flow.
    moved = Connection("calendar", issuer=upstream.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                       redirect_uri=upstream.redirect_uri + "?port=2", scopes=["calendar.read"], timeout=1.0)
    after = TokenVault([moved], store=sqlite_store, keyring=keyring)
    upstream.callback_app = VaultCallback(after, resolve_user=lambda request: ALICE)
    page = browse_upstream(request.authorize_url, "alice")
    assert page.status_code == 200 and "connected" in page.text
    assert after.get_token(ALICE, "calendar", ["calendar.read"]).connection == "calendar"


def test_a_new_flow_under_the_same_id_is_not_marked_resumed(vault, upstream):
    from langchain_agent_auth.vault._records import PENDING_NS

    first = vault.start_connect(ALICE, "calendar", ["calendar.read"], thread_id="t", tool_call_id="c1")
    item = vault.store.get(PENDING_NS, first.id)
    vault.store.put(PENDING_NS, first.id, {**item.value, "status": "failed", "error": "invalid_grant"})
    # the resumed run asks again: same call, same id, a fresh pending flow
    second = vault.start_connect(ALICE, "calendar", ["calendar.read"], thread_id="t", tool_call_id="c1")
    assert second.id == first.id and second.authorize_url != first.authorize_url
    # the resumer settles the failed flow it resumed: the new flow must stay resumable
    assert vault.mark_resumed(first.id) is False
    assert vault.store.get(PENDING_NS, first.id).value["resumed"] is False
    connect(vault, upstream, ALICE, thread_id="t", tool_call_id="c1")
    (ready,) = [p for p in vault.pending_connects() if p.id == first.id]
    assert ready.status == "completed" and not ready.resumed
