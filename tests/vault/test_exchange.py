"""Against the independent node-oidc-provider (connect with code + PKCE, refresh, revoke, RFC 8693
with ``act``) and the Auth0 Token Vault profile's exact parameters."""

from __future__ import annotations

import json
import sqlite3
import time
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth import errors as E
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.oauth import AUTH0_FEDERATED_GRANT, AUTH0_FEDERATED_TOKEN_TYPE, JWTVerifier, OAuthClient
from langchain_agent_auth.vault import Connection, TokenVault, VaultMiddleware
from tests.support.browser import form_fields
from tests.support.fake_idp import FakeProvider
from tests.support.node_idp import AGENT, DOWNSTREAM
from tests.vault.conftest import ALICE, BOB
from tests.vault.graphs import agent, ask, interrupts, last_tool_message

REDIRECT = "http://127.0.0.1:8765/callback"  # registered at node-oidc-provider; never served


def node_browse(url: str, base: str, account: str) -> str:
    """The user in node-oidc-provider's devInteractions pages; returns the callback URL."""
    with httpx.Client(timeout=10) as browser:
        resp = browser.get(url)
        for _ in range(15):
            if resp.status_code in (302, 303):
                loc = urljoin(base, resp.headers["location"])
                if loc.startswith(REDIRECT):
                    return loc
                resp = browser.get(loc)
                continue
            action, fields = form_fields(resp.text)
            assert action is not None, resp.text[:300]
            if "login" in fields:
                fields.update(prompt="login", login=account, password="x")
            resp = browser.post(urljoin(base, action), data=fields)
    raise AssertionError("too many steps")


@pytest.fixture
def counting():
    seen: list[str] = []
    client = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    return client, seen


@pytest.mark.interop
def test_node_connect_refresh_revoke(node_idp, counting):
    http, seen = counting
    now = [time.time()]
    vault = TokenVault(
        [Connection("node", issuer=node_idp.issuer, client_id=AGENT[0], client_secret=AGENT[1], redirect_uri=REDIRECT,
                    scopes=["openid", "offline_access", "email"], authorize_params={"prompt": "consent"})],
        store=InMemoryStore(), keyring=Keyring.generate(), http_client=http, clock=lambda: now[0])
    link = vault.start_connect(ALICE, "node")
    callback = node_browse(link.authorize_url, node_idp.issuer, "alice")
    q = {k: v[0] for k, v in parse_qs(urlparse(callback).query).items()}
    result = vault.complete_connect(q["state"], q["code"], user=ALICE, iss=q.get("iss"))
    assert result.scopes and "offline_access" in result.scopes
    first = vault.get_token(ALICE, "node", ["email"])
    agent_client = OAuthClient(node_idp.issuer, *AGENT)
    assert agent_client.introspect(first.token)["sub"] == "alice"

    now[0] += 7200  # two hours later: the vault refreshes at node-oidc-provider
    refreshed = vault.get_token(ALICE, "node", ["email"])
    assert refreshed.token != first.token and agent_client.introspect(refreshed.token)["active"] is True
    assert seen.count("/token") == 2  # code exchange + one refresh

    result = vault.revoke(ALICE, "node")
    assert result.upstream_revoked
    assert agent_client.introspect(refreshed.token)["active"] is False


@pytest.mark.interop
async def test_node_token_exchange_with_act(node_idp, counting, mode):
    http, seen = counting
    at = _user_access_token(node_idp)
    vault = TokenVault(
        [Connection("downstream", source="token_exchange", issuer=node_idp.issuer, client_id=AGENT[0],
                    client_secret=AGENT[1], resource=DOWNSTREAM, scopes=["downstream:read"])],
        store=InMemoryStore(), keyring=Keyring.generate(), http_client=http,
        async_http_client=httpx.AsyncClient(event_hooks={"request": [lambda r: _async_seen(seen, r)]}))
    get = vault.get_token if mode == "sync" else None

    async def token(**kw):
        if get is not None:
            return get(ALICE, "downstream", **kw)
        return await vault.aget_token(ALICE, "downstream", **kw)

    t = await token(context={"subject_token": at})
    claims = JWTVerifier(node_idp.issuer, audience=DOWNSTREAM).verify(t.token)
    assert claims["sub"] == "alice" and claims["act"] == {"sub": AGENT[0]} and claims["scope"] == "downstream:read"
    again = await token(context={"subject_token": at})
    assert again.token == t.token and seen.count("/token") == 1  # cached per user
    with pytest.raises(E.CredentialUnavailableError):  # Bob shares nothing with Alice
        await (vault.aget_token(BOB, "downstream", context={"subject_token": "garbage-token"}) if mode == "async"
               else _sync(vault.get_token, BOB, "downstream", context={"subject_token": "garbage-token"}))
    with pytest.raises(E.InvalidScopeError):
        await token(scopes=["api:write"], context={"subject_token": at})
    with pytest.raises(E.IdentityError, match="subject_token"):
        await (vault.aget_token(BOB, "downstream") if mode == "async" else _sync(vault.get_token, BOB, "downstream"))


async def _async_seen(seen, request):
    seen.append(request.url.path)


async def _sync(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def _user_access_token(node_idp) -> str:
    """Alice's access token at the main issuer (code + PKCE through the devInteractions pages)."""
    from langchain_agent_auth.oauth import Pkce

    client = OAuthClient(node_idp.issuer, *AGENT)
    pkce = Pkce.generate()
    url = client.authorization_url(REDIRECT, state="s-1", pkce=pkce, scope="openid email")
    q = parse_qs(urlparse(node_browse(url, node_idp.issuer, "alice")).query)
    return client.exchange_code(q["code"][0], redirect_uri=REDIRECT, code_verifier=pkce.verifier).access_token


@pytest.mark.interop
def test_subject_token_in_runtime_context_never_reaches_checkpoints(node_idp, tmp_path):
    from langchain_core.tools import tool

    from langchain_agent_auth.vault import get_access_token

    at = _user_access_token(node_idp)
    vault = TokenVault(
        [Connection("downstream", source="token_exchange", issuer=node_idp.issuer, client_id=AGENT[0],
                    client_secret=AGENT[1], resource=DOWNSTREAM, scopes=["downstream:read"])],
        store=InMemoryStore(), keyring=Keyring.generate())
    issued: list[str] = []

    @tool
    def read_downstream(item: str) -> str:
        """Read an item from the downstream API."""
        issued.append(get_access_token())
        return f"read {item}"

    db = tmp_path / "cp.sqlite"
    conn = sqlite3.connect(str(db), check_same_thread=False)
    graph = agent([read_downstream], [VaultMiddleware(vault, {"read_downstream": "downstream"})], SqliteSaver(conn))
    result = graph.invoke({"messages": [ask("read_downstream", item="x")]}, {"configurable": {"thread_id": "e1"}},
                          context={"user": ALICE, "subject_token": at})
    assert last_tool_message(result).content == "read x" and issued
    conn.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("cp.sqlite*"))
    for secret in (at, *issued, AGENT[1]):
        assert secret.encode() not in raw


# --------------------------------------------------------------------------- Auth0 Token Vault profile


def auth0_vault(idp: FakeProvider, **kw) -> TokenVault:
    conn = Connection("google", source="auth0_token_vault", issuer=idp.issuer, client_id="agent",
                      client_secret="agent-secret-value", auth0_connection="google-oauth2",
                      subject_token_type="refresh_token", scopes=["https://www.googleapis.com/auth/calendar"], **kw)
    return TokenVault([conn], store=InMemoryStore(), keyring=Keyring.generate(), http_client=idp.client(),
                      async_http_client=idp.async_client())


async def test_auth0_exact_parameters_and_login_hint(mode):
    idp = FakeProvider()
    answers = iter(range(100))

    def token(request):
        n = next(answers)
        return httpx.Response(200, json={"access_token": f"ya29.google-{n}", "token_type": "Bearer",
                                         "expires_in": 3600, "scope": "https://www.googleapis.com/auth/calendar"})

    idp.script("/token", token, token, token)
    vault = auth0_vault(idp, login_hint=lambda user, ctx: (ctx or {}).get("google_account"))
    ctx = {"user": ALICE, "subject_token": "auth0-refresh-token-of-alice", "google_account": "alice@work"}
    get = (lambda **kw: vault.get_token(ALICE, "google", **kw)) if mode == "sync" else None
    t = get(context=ctx) if get else await vault.aget_token(ALICE, "google", context=ctx)
    assert t.token == "ya29.google-0"
    form = idp.form_multi(idp.last("/token"))
    assert form == {
        "grant_type": [AUTH0_FEDERATED_GRANT],
        "subject_token": ["auth0-refresh-token-of-alice"],
        "subject_token_type": ["urn:ietf:params:oauth:token-type:refresh_token"],
        "requested_token_type": [AUTH0_FEDERATED_TOKEN_TYPE],
        "connection": ["google-oauth2"],
        "login_hint": ["alice@work"],
    }
    # cached per user *and* linked account; another account is another token
    same = vault.get_token(ALICE, "google", context=ctx)
    other = vault.get_token(ALICE, "google", context={**ctx, "google_account": "alice@home"})
    assert same.token == t.token and other.token == "ya29.google-1" and idp.hits["/token"] == 2


def test_auth0_not_connected_and_missing_scopes_pause():
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver

    idp = FakeProvider()
    idp.script("/token", httpx.Response(401, json={"error": "federated_connection_refresh_token_not_found",
                                                   "error_description": "not found"}))
    idp.script("/token", httpx.Response(200, json={"access_token": "ya29.narrow", "expires_in": 60,
                                                   "scope": "openid"}))
    vault = auth0_vault(idp)

    @tool
    def calendar(day: str) -> str:
        """Read the Google calendar."""
        return "ok"

    graph = agent([calendar], [VaultMiddleware(vault, {"calendar": "google"})], InMemorySaver())
    ctx = {"user": ALICE, "subject_token": "auth0-refresh-token-of-alice"}
    result = graph.invoke({"messages": [ask("calendar", day="mon")]}, {"configurable": {"thread_id": "g"}}, context=ctx)
    [p] = interrupts(result)
    assert (p["type"], p["status"], p["authorize_url"]) == ("connect_account", "not_connected", None)
    assert p["missing_scopes"] == ["https://www.googleapis.com/auth/calendar"]
    from langgraph.types import Command

    result = graph.invoke(Command(resume={}), {"configurable": {"thread_id": "g"}}, context=ctx)
    [p] = interrupts(result)
    assert p["status"] == "missing_scopes" and p["missing_scopes"] == ["https://www.googleapis.com/auth/calendar"]
    assert "auth0-refresh-token-of-alice" not in json.dumps(p)


async def test_exchange_single_flight_and_per_user_cache():
    """100 concurrent calls for one user -> one exchange; another user -> their own exchange."""
    import asyncio

    idp = FakeProvider()
    seen: list[str] = []

    async def slow(request):
        await asyncio.sleep(0.02)
        seen.append(dict(idp.form(request))["subject_token"])
        return httpx.Response(200, json={"access_token": f"xchg-{len(seen)}", "expires_in": 300,
                                         "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})

    conn = Connection("api", source="token_exchange", issuer=idp.issuer, client_id="agent",
                      client_secret="agent-secret-value", audience="https://api.example", scopes=["read"])
    vault = TokenVault([conn], store=InMemoryStore(), keyring=Keyring.generate(),
                       async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(
                           lambda r: slow(r) if r.url.path == "/token" else idp.handle(r))))
    tokens = await asyncio.gather(*(vault.aget_token(ALICE, "api", context={"subject_token": "alice-at"})
                                    for _ in range(100)))
    assert {t.token for t in tokens} == {"xchg-1"} and seen == ["alice-at"]
    bob = await vault.aget_token(BOB, "api", context={"subject_token": "bob-at"})
    assert bob.token == "xchg-2" and seen == ["alice-at", "bob-at"]
