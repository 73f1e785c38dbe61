"""Bad input: upstream errors, hostile callbacks, odd scopes, unknown connections."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from starlette.testclient import TestClient

from langchain_agent_auth import errors as E
from langchain_agent_auth.vault import Connection, TokenVault, VaultCallback, VaultMiddleware, callback_app
from tests.support.demo_upstream import CLIENT_ID, CLIENT_SECRET, browse_upstream
from tests.vault.conftest import ALICE, BOB, Both, calendar_connection, connect
from tests.vault.graphs import agent, ask, calendar_tools, interrupts, last_tool_message
from tests.vault.test_concurrency import age

# ------------------------------------------------------------------ the upstream misbehaves


async def test_invalid_grant_marks_needs_reauthorization(vault, upstream, mode):
    call = Both(vault, mode)
    connect(vault, upstream, ALICE)
    age(vault)
    upstream.fail("/token", "invalid_grant")
    with pytest.raises(E.CredentialUnavailableError) as exc:
        await call("get_token", ALICE, "calendar")
    assert exc.value.status == "needs_reauthorization"
    assert (await call("status", ALICE, "calendar")).status == "needs_reauthorization"
    before = upstream.stats()["token"]
    with pytest.raises(E.CredentialUnavailableError):  # known from the store: no new request
        await call("get_token", ALICE, "calendar")
    assert upstream.stats()["token"] == before


@pytest.mark.parametrize("kind,error", [("500", E.ProviderUnavailableError), ("503", E.TemporarilyUnavailableError),
                                        ("html", E.ProtocolError), ("slow", E.ProviderUnavailableError),
                                        ("invalid_scope", E.CredentialUnavailableError)])
async def test_refresh_failures_are_typed_and_keep_the_record(vault, upstream, mode, kind, error):
    call = Both(vault, mode)
    connect(vault, upstream, ALICE)
    age(vault)
    upstream.fail("/token", kind)
    with pytest.raises(error) as exc:
        await call("get_token", ALICE, "calendar")
    assert all(t not in str(exc.value) for t in upstream.issued())
    if kind == "invalid_scope":
        assert exc.value.status == "needs_reauthorization"
        return
    # transient: nothing lost, the next call refreshes with the same refresh token
    token = await call("get_token", ALICE, "calendar")
    assert httpx.get(f"{upstream.api_url}/events", headers={"Authorization": token.authorization}).status_code == 200


def test_transient_failure_in_a_graph_is_a_refusal_not_a_pause(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    graph = agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    connect(vault, upstream, ALICE)
    age(vault)
    upstream.fail("/token", "500")
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, {"configurable": {"thread_id": "f1"}},
                          context={"user": ALICE})
    assert not interrupts(result)
    msg = last_tool_message(result)
    assert msg.status == "error" and "try again" in msg.content


# ------------------------------------------------------------------ hostile callbacks


@pytest.fixture
def client(vault):
    return TestClient(callback_app(vault, resolve_user=lambda request: _signed_in[0]))


_signed_in = [ALICE]


def _redirect(vault, upstream, user=ALICE, **browse):
    link = vault.start_connect(user, "calendar", ["calendar.read"])
    answer = browse_upstream(link.authorize_url, user.subject, follow_callback=False, **browse)
    return httpx.URL(answer.headers["location"])


def test_callback_good_then_replayed(vault, upstream, client):
    _signed_in[0] = ALICE
    url = _redirect(vault, upstream)
    ok = client.get("/callback", params=dict(url.params))
    assert ok.status_code == 200 and "connected" in ok.text
    replay = client.get("/callback", params=dict(url.params))
    assert replay.status_code == 400 and "already used" in replay.text
    assert vault.status(ALICE, "calendar").ok


def test_callback_wrong_state_and_missing_code(vault, upstream, client):
    _signed_in[0] = ALICE
    url = _redirect(vault, upstream)
    params = dict(url.params)
    pid, secret = params["state"].split(".")
    for bad in ("", "nonsense", f"{pid}.{secret[:-2]}xx", f"{'0' * 32}.{secret}", f"{pid}.{secret}.x",
                "../../etc/passwd.x", "a" * 500):
        r = client.get("/callback", params={**params, "state": bad})
        assert r.status_code == 400, bad
    r = client.get("/callback", params={"state": params["state"]})
    assert r.status_code == 400 and "not connected" in r.text.lower()
    # none of that consumed the flow: the real callback still works
    assert client.get("/callback", params=params).status_code == 200


def test_callback_by_another_user_is_refused(vault, upstream, client):
    url = _redirect(vault, upstream, ALICE)
    _signed_in[0] = BOB
    r = client.get("/callback", params=dict(url.params))
    assert r.status_code == 400 and "user who started" in r.text
    with pytest.raises(E.CredentialUnavailableError):
        vault.get_token(BOB, "calendar")
    with pytest.raises(E.CredentialUnavailableError):
        vault.get_token(ALICE, "calendar")
    _signed_in[0] = ALICE
    assert client.get("/callback", params=dict(url.params)).status_code == 200


def test_callback_needs_a_signed_in_user(vault, upstream):
    with pytest.raises(E.ConfigurationError):
        VaultCallback(vault)
    client = TestClient(callback_app(vault, resolve_user=lambda request: None))
    url = _redirect(vault, upstream)
    assert client.get("/callback", params=dict(url.params)).status_code == 401


def test_user_denies_at_the_provider(vault, upstream, client):
    _signed_in[0] = ALICE
    url = _redirect(vault, upstream, deny=True)
    r = client.get("/callback", params=dict(url.params))
    assert r.status_code == 400 and "did not allow" in r.text
    [p] = vault.pending_connects(ALICE)
    assert p.status == "failed" and p.error == "access_denied"


def test_expired_state(upstream, sqlite_store, keyring):
    now = [time.time()]
    vault = TokenVault([calendar_connection(upstream)], store=sqlite_store, keyring=keyring,
                       clock=lambda: now[0], connect_ttl=60)
    url = _redirect(vault, upstream)
    now[0] += 120
    with pytest.raises(E.CallbackStateError, match="expired"):
        vault.complete_connect(url.params["state"], url.params["code"], user=ALICE)


def test_mix_up_issuer_refused(vault, upstream):
    url = _redirect(vault, upstream)
    with pytest.raises(E.CallbackStateError, match="issuer"):
        vault.complete_connect(url.params["state"], url.params["code"], user=ALICE, iss="https://evil.example")


def test_code_replayed_at_the_provider(vault, upstream):
    url = _redirect(vault, upstream)
    # The provider refuses the code (someone redeemed it first: a redemption without the
    # PKCE verifier cannot, so the provider is told to refuse it). The flow ends cleanly.
    upstream.fail("/token", "invalid_grant")
    with pytest.raises(E.InvalidGrantError):
        vault.complete_connect(url.params["state"], url.params["code"], user=ALICE)
    [p] = vault.pending_connects(ALICE)
    assert p.status == "failed"


def test_partial_consent_reports_missing_scopes(vault, upstream):
    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: ALICE)
    link = vault.start_connect(ALICE, "calendar", ["calendar.read", "calendar.write"])
    page = browse_upstream(link.authorize_url, "alice", grant_scope="calendar.read")
    assert "Not granted: calendar.write" in page.text
    with pytest.raises(E.CredentialUnavailableError) as exc:
        vault.get_token(ALICE, "calendar", ["calendar.read", "calendar.write"])
    assert exc.value.status == "missing_scopes" and exc.value.missing_scopes == ("calendar.write",)
    assert vault.get_token(ALICE, "calendar", ["calendar.read"]).scopes == ("calendar.read",)


# ------------------------------------------------------------------ scopes and names


@pytest.mark.parametrize("scope", ["has space", 'quote"d', "back\\slash", "caf\u00e9", "tab\t", "", "x" * 300,
                                   "nul\x00"])
def test_odd_scopes_are_refused_with_a_clear_error(vault, upstream, scope):
    with pytest.raises(E.ConfigurationError, match="scope"):
        calendar_connection(upstream, scopes=[scope])
    with pytest.raises(E.ConfigurationError, match="scope"):
        vault.get_token(ALICE, "calendar", [scope])
    tools = calendar_tools(upstream.api_url)
    from langchain_agent_auth.vault import with_vault

    with pytest.raises(E.ConfigurationError, match="scope"):
        with_vault(tools["list_events"], vault, connection="calendar", scopes=[scope])


def test_legal_but_odd_scopes_round_trip(vault, upstream):
    odd = ["https://www.googleapis.com/auth/calendar.readonly", "repo:status", "user:email!", "a=b&c=d", "~x#y"]
    vault.import_token(ALICE, "calendar", access_token="opaque-access-1", scopes=odd)
    assert set(vault.get_token(ALICE, "calendar", odd).scopes) == set(odd)
    link = vault.start_connect(ALICE, "calendar", odd)
    query = httpx.URL(link.authorize_url).params["scope"].split(" ")
    assert set(odd) <= set(query)
    [info] = vault.connections(ALICE)
    assert set(info.scopes) == set(odd)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "-leading", "new\nline"])
def test_bad_connection_names(name):
    with pytest.raises(E.ConfigurationError):
        Connection(name, issuer="https://up.example", client_id="c", client_secret="s",
                   redirect_uri="http://127.0.0.1/cb")


def test_bad_declarations(upstream, keyring):
    base = {"issuer": upstream.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    with pytest.raises(E.ConfigurationError, match="redirect_uri"):
        Connection("c", **base)
    with pytest.raises(E.ConfigurationError, match="issuer"):
        Connection("c", client_id="x", client_secret="y", redirect_uri="http://127.0.0.1/cb")
    with pytest.raises(E.ConfigurationError, match="client_secret"):
        Connection("c", issuer=upstream.issuer, client_id="x", redirect_uri="http://127.0.0.1/cb")
    with pytest.raises(E.ConfigurationError, match="twice"):
        TokenVault([calendar_connection(upstream)] * 2, store=None, keyring=keyring)
    with pytest.raises(E.ConfigurationError, match="Auth0"):
        Connection("g", source="auth0_token_vault", subject_token_type="jwt", **base)
    vault = TokenVault([calendar_connection(upstream)], store=__import__("langgraph.store.memory").store.memory
                       .InMemoryStore(), keyring=keyring)
    with pytest.raises(E.ConnectionNotFoundError, match="'github'"):
        vault.get_token(ALICE, "github")
    with pytest.raises(E.ConnectionNotFoundError):
        vault.start_connect(ALICE, "github")
    with pytest.raises(TypeError):
        vault.get_token(None, "calendar")  # type: ignore[arg-type]
    token = json.dumps(repr(calendar_connection(upstream)))
    assert CLIENT_SECRET not in token
