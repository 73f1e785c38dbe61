"""The full cycle against the local identity provider (``agent-auth dev``): its demo upstream
OAuth server (opaque rotating tokens, login and consent pages) and its demo calendar API, over
HTTP, inside a real agent graph with a SQLite checkpointer; and its Auth0-style Token Vault."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.vault import Connection, TokenVault, VaultMiddleware, callback_app, vault_auth
from tests.support.browser import ServedApp, quiet
from tests.vault.graphs import agent, ask, interrupts, last_tool_message

pytest.importorskip("langchain_agent_auth.devserver")


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}, "buttons": {}})
        elif self.forms and tag == "input" and a.get("name"):
            if a.get("type") == "submit":
                self.forms[-1]["buttons"][a["name"]] = a.get("value", "")
            else:
                self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1]["buttons"].setdefault(a["name"], a.get("value", ""))


def sign_in_and_consent(url: str, username: str, password: str, *, allow: bool = True) -> httpx.Response:
    """The user at the demo upstream: sign in, consent, follow the redirect to the callback."""
    with quiet("httpx", "httpcore"), httpx.Client(timeout=15, follow_redirects=False) as browser:
        response = browser.get(url)
        for _ in range(12):
            if response.status_code in (301, 302, 303, 307):
                response = browser.get(urljoin(str(response.url), response.headers["location"]))
                continue
            parser = _Forms()
            parser.feed(response.text)
            form = next((f for f in parser.forms if "password" in f["fields"] or "decision" in f["buttons"]), None)
            if form is None:
                return response  # the callback's page
            data = dict(form["fields"])
            if "password" in data:
                data.update(username=username, password=password)
            else:
                data["decision"] = "allow" if allow else "deny"
            response = browser.post(urljoin(str(response.url), form["action"]), data=data)
        raise AssertionError("too many steps")


@pytest.fixture
def idp(upstream):
    """The session's local provider (tests/support/demo_upstream.py), reset."""
    return upstream.idp


def test_full_cycle_against_the_local_provider(idp, tmp_path, keyring, caplog):
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    signed_in = [alice]
    holder: dict[str, TokenVault] = {}  # the callback is served before the vault (redirect URI) exists
    served = ServedApp(callback_app_proxy(holder, signed_in))
    try:
        vault = TokenVault([Connection("calendar", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                                       client_secret=idp.upstream_client_secret, scopes=["calendar.read"],
                                       redirect_uri=f"{served.url}/callback")],
                           data_dir=tmp_path / "data", keyring=keyring)
        holder["vault"] = vault
        events = f"{idp.api_url}/calendar/events"

        @tool
        def list_events(day: str) -> str:
            """List the user's calendar events."""
            with httpx.Client(auth=vault_auth(), timeout=10) as http:
                r = http.get(events, params={"day": day})
                r.raise_for_status()
                return json.dumps(r.json())

        conn = sqlite3.connect(str(tmp_path / "cp.sqlite"), check_same_thread=False)
        graph = agent([list_events], [VaultMiddleware(vault, {"list_events": "calendar"})], SqliteSaver(conn))
        cfg, ctx = {"configurable": {"thread_id": "lp"}}, {"user": alice}
        idp.reset_stats()

        # connect
        result = graph.invoke({"messages": [ask("list_events", day="mon")]}, cfg, context=ctx)
        [payload] = interrupts(result)
        assert payload["authorize_url"].startswith(idp.upstream_issuer)
        page = sign_in_and_consent(payload["authorize_url"], "alice", idp.users["alice"])
        assert page.status_code == 200 and "connected" in page.text
        result = graph.invoke(Command(resume={}), cfg, context=ctx)
        assert json.loads(last_tool_message(result).content)["owner"] == "alice"

        # expire -> one refresh
        idp.expire_upstream_tokens("alice")
        result = graph.invoke({"messages": [ask("list_events", day="tue")]}, cfg, context=ctx)
        assert json.loads(last_tool_message(result).content)["owner"] == "alice"
        assert idp.stats()["upstream_grants"].get("refresh_token") == 1

        # 100 concurrent calls with an expired token -> still one refresh at the provider
        idp.expire_upstream_tokens("alice")
        _age(vault, alice)

        async def burst():
            return await asyncio.gather(*(vault.aget_token(alice, "calendar") for _ in range(100)))

        seen = {t.token for t in asyncio.run(burst())}
        assert len(seen) == 1
        assert idp.stats()["upstream_grants"].get("refresh_token") == 2

        # revoked at the provider -> pause needs_reauthorization -> reconnect -> runs
        idp.revoke_upstream_tokens("alice")
        result = graph.invoke({"messages": [ask("list_events", day="wed")]}, cfg, context=ctx)
        [payload] = interrupts(result)
        assert payload["status"] == "needs_reauthorization"
        sign_in_and_consent(payload["authorize_url"], "alice", idp.users["alice"])
        result = graph.invoke(Command(resume={}), cfg, context=ctx)
        assert json.loads(last_tool_message(result).content)["owner"] == "alice"

        # revoke through the vault (the demo upstream's revocation endpoint)
        assert vault.revoke(alice, "calendar").deleted
        result = graph.invoke({"messages": [ask("list_events", day="thu")]}, cfg, context=ctx)
        assert interrupts(result)[0]["status"] == "not_connected"
        conn.close()
        raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*.sqlite*"))
        assert b"calendar.read" in raw
        for secret in (idp.upstream_client_secret, *seen):
            assert secret.encode() not in raw
    finally:
        served.stop()


def callback_app_proxy(holder: dict[str, TokenVault], signed_in: list[UserIdentity]) -> Any:
    async def app(scope, receive, send):
        inner = callback_app(holder["vault"], resolve_user=lambda request: signed_in[0])
        await inner(scope, receive, send)

    return app


def _age(vault: TokenVault, user: UserIdentity) -> None:
    """Make the stored access token look expired, so every caller wants a refresh at once."""
    import time

    from langchain_agent_auth.vault._records import TokenRecord, user_ns

    item = vault.store.get(user_ns(user.key), "calendar")
    record = TokenRecord.from_value(vault.keyring, item.value, user=user.key, connection="calendar")
    record.expires_at = time.time() - 5
    vault.store.put(user_ns(user.key), "calendar", record.to_value(vault.keyring), index=False)
    vault.invalidate(user, "calendar")


def test_auth0_token_vault_profile_against_the_local_provider(idp, keyring):
    """Auth0's federated-connection exchange at the main issuer, for an account it holds."""
    from langgraph.store.memory import InMemoryStore

    idp.link_connection("bob", scope="calendar.read")
    tokens = idp.login("bob", scope="openid offline_access")
    vault = TokenVault([Connection("calendar", source="auth0_token_vault", issuer=idp.issuer,
                                   client_id=idp.client_id, client_secret=idp.client_secret,
                                   auth0_connection=idp.upstream_connection, subject_token_type="refresh_token",
                                   scopes=["calendar.read"])], store=InMemoryStore(), keyring=keyring)
    bob = UserIdentity(subject="bob", issuer=idp.issuer)
    token = vault.get_token(bob, "calendar", context={"subject_token": tokens["refresh_token"]})
    r = httpx.get(f"{idp.api_url}/calendar/events", headers={"Authorization": token.authorization})
    assert r.status_code == 200 and r.json()["owner"] == "bob"
