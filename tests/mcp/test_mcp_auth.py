"""MCPAuth's flow against fake servers (httpx.MockTransport), sync and async: discovery and
its refusals, per-user tokens, the sign-in pause and its completion, refresh, step-up and
the retry limit. The MCP project's own suite (test_conformance.py) covers the spec
scenarios against independent servers."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from langchain_agent_auth import UserIdentity, acting_as
from langchain_agent_auth.core.errors import (
    CallbackStateError,
    ConfigurationError,
    IdentityError,
    InsufficientScopeError,
    MCPAuthorizationRequired,
    ProtocolError,
)
from langchain_agent_auth.mcp import HeadlessAuthorizer, MCPAuth, MCPServer, MemoryTokenStore, parse_challenge
from langchain_agent_auth.mcp._discovery import resource_allowed

MCP = "http://127.0.0.1:9000/mcp"
AS = "http://127.0.0.1:9100"
REDIRECT = "http://127.0.0.1:8976/callback"


class FakeWorld:
    """An MCP server (resource) and its authorization server, scripted per test."""

    def __init__(self, *, required: tuple[str, ...] = ("files:read",), per_tool: dict | None = None,
                 prm_resource: str = MCP, issuer: str = AS, dcr: bool = True, refresh: bool = True,
                 challenge_scope: str | None = None) -> None:
        self.challenge_scope = challenge_scope
        self.required, self.per_tool = required, per_tool or {}
        self.prm_resource, self.issuer, self.dcr, self.refresh = prm_resource, issuer, dcr, refresh
        self.tokens: dict[str, tuple[str, set[str]]] = {}  # access token -> (user, scopes)
        self.codes: dict[str, dict] = {}
        self.log: list[str] = []
        self.authorize_params: list[dict] = []
        self.token_params: list[dict] = []
        self.user = "alice"
        self.n = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        url, path = str(request.url), request.url.path
        self.log.append(f"{request.method} {path}")
        if url.startswith(MCP):
            return self.mcp(request)
        if path == "/.well-known/oauth-protected-resource/mcp":
            return httpx.Response(200, json={"resource": self.prm_resource, "authorization_servers": [AS],
                                             "scopes_supported": ["files:read", "files:write"]})
        if path == "/.well-known/oauth-authorization-server" and request.url.port == 9100:
            meta = {"issuer": self.issuer, "authorization_endpoint": f"{AS}/authorize",
                    "token_endpoint": f"{AS}/token", "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"]}
            if self.dcr:
                meta["registration_endpoint"] = f"{AS}/register"
            return httpx.Response(200, json=meta)
        if path == "/register":
            return httpx.Response(201, json={"client_id": "dyn-1", "token_endpoint_auth_method": "none"})
        if path == "/authorize":
            q = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
            self.authorize_params.append(q)
            self.n += 1
            code = f"code-{self.n}"
            granted = " ".join(x for x in q.get("scope", "").split() if x in ("files:read", "files:write"))
            self.codes[code] = {"user": self.user, "scope": granted, "challenge": q["code_challenge"]}
            return httpx.Response(302, headers={"location": f"{q['redirect_uri']}?code={code}&state={q['state']}"})
        if path == "/token":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.token_params.append(form)
            self.n += 1
            if form["grant_type"] == "authorization_code":
                grant = self.codes.pop(form["code"], None)
                if grant is None:
                    return httpx.Response(400, json={"error": "invalid_grant"})
            elif form["grant_type"] == "refresh_token":
                if not self.refresh or not form["refresh_token"].startswith("rt-"):
                    return httpx.Response(400, json={"error": "invalid_grant"})
                grant = {"user": form["refresh_token"].split("-")[1], "scope": "files:read"}
            else:
                return httpx.Response(400, json={"error": "unsupported_grant_type"})
            token = f"at-{grant['user']}-{self.n}"
            self.tokens[token] = (grant["user"], set(grant["scope"].split()))
            return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                                             "refresh_token": f"rt-{grant['user']}-{self.n}",
                                             "scope": grant["scope"]})
        return httpx.Response(404)

    def mcp(self, request: httpx.Request) -> httpx.Response:
        meta = 'resource_metadata="http://127.0.0.1:9000/.well-known/oauth-protected-resource/mcp"'
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            scope = f'scope="{self.challenge_scope}", ' if self.challenge_scope else ""
            return httpx.Response(401, headers={"www-authenticate": f"Bearer {scope}{meta}"})
        user, scopes = self.tokens[auth[7:]]
        body = json.loads(request.content or b"{}")
        need = set(self.per_tool.get(body.get("tool"), self.required))
        if not need <= scopes:
            return httpx.Response(403, headers={
                "www-authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(sorted(need))}", {meta}'})
        return httpx.Response(200, json={"user": user})


def client(world: FakeWorld, auth: MCPAuth) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(world.handler), auth=auth)


def aclient(world: FakeWorld, auth: MCPAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(world.handler), auth=auth)


ALICE = UserIdentity(subject="alice", issuer=AS)
BOB = UserIdentity(subject="bob", issuer=AS)


def test_full_flow_discovers_registers_and_signs_in_with_pkce_and_resource():
    world = FakeWorld()
    auth = MCPAuth(MCPServer(MCP, redirect_uri=REDIRECT), user=ALICE, authorizer=HeadlessAuthorizer())
    with client(world, auth) as http:
        assert http.post(MCP, json={"tool": "read"}).json() == {"user": "alice"}
    ask, redeem = world.authorize_params[0], world.token_params[0]
    assert ask["resource"] == redeem["resource"] == MCP
    assert ask["code_challenge_method"] == "S256" and ask["client_id"] == "dyn-1"
    assert ask["scope"] == "files:read files:write"  # no scope in the challenge: every scopes_supported
    assert "code_verifier" in redeem and redeem["redirect_uri"] == REDIRECT
    assert world.log[:4] == ["POST /mcp", "GET /.well-known/oauth-protected-resource/mcp",
                             "GET /.well-known/oauth-authorization-server", "POST /register"]


async def test_async_flow_and_a_second_call_reuses_the_token():
    world = FakeWorld()
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    async with aclient(world, auth) as http:
        assert (await http.post(MCP, json={})).json() == {"user": "alice"}
        before = len(world.log)
        assert (await http.post(MCP, json={})).status_code == 200
    assert world.log[before:] == ["POST /mcp"]


def test_two_users_never_share_a_token():
    world = FakeWorld()
    auth = MCPAuth(MCP, authorizer=HeadlessAuthorizer())  # the user comes from the current tool call
    with client(world, auth) as http:
        with acting_as(ALICE):
            assert http.post(MCP, json={}).json() == {"user": "alice"}
        world.user = "bob"
        with acting_as(BOB):
            assert http.post(MCP, json={}).json() == {"user": "bob"}
        world.user = "mallory"  # were alice's token reused, the server would answer "alice"
        with acting_as(ALICE):
            assert http.post(MCP, json={}).json() == {"user": "alice"}
    assert auth.tokens.get(auth.token_key(ALICE)).access_token != auth.tokens.get(auth.token_key(BOB)).access_token


def test_no_user_fails_closed_before_any_request():
    world = FakeWorld()
    with client(world, MCPAuth(MCP)) as http, pytest.raises(IdentityError):
        http.post(MCP, json={})
    assert world.log == []


def test_sign_in_pauses_with_the_authorization_url_then_completes_from_the_callback():
    world = FakeWorld()
    auth = MCPAuth(MCP, user=ALICE)
    with client(world, auth) as http:
        with pytest.raises(MCPAuthorizationRequired) as info:
            http.post(MCP, json={})
        err = info.value
        assert err.connection == MCP and err.status == "not_connected"
        assert err.authorize_url.startswith(f"{AS}/authorize?") and "code_challenge=" in err.authorize_url
        assert "verifier" not in err.authorize_url and "secret" not in str(err)
        # the user's browser: the authorization server redirects back to the app's callback
        callback = world.handler(httpx.Request("GET", err.authorize_url)).headers["location"]
        transport_client = httpx.Client(transport=httpx.MockTransport(world.handler))
        token = auth.complete(callback, client=transport_client)
        assert token.access_token.startswith("at-alice")
        assert http.post(MCP, json={}).json() == {"user": "alice"}
        with pytest.raises(CallbackStateError):  # replayed
            auth.complete(callback, client=transport_client)


def test_a_forged_state_or_another_issuer_in_the_callback_is_refused():
    world = FakeWorld()
    auth = MCPAuth(MCP, user=ALICE)
    with client(world, auth) as http, pytest.raises(MCPAuthorizationRequired) as info:
        http.post(MCP, json={})
    with pytest.raises(CallbackStateError):
        auth.complete(f"{REDIRECT}?code=x&state=forged")
    callback = world.handler(httpx.Request("GET", info.value.authorize_url)).headers["location"]
    with pytest.raises(CallbackStateError, match="RFC 9207"):
        auth.complete(callback + "&iss=https%3A%2F%2Fevil.example",
                      client=httpx.Client(transport=httpx.MockTransport(world.handler)))


def test_step_up_asks_for_the_union_of_held_and_required_scopes():
    world = FakeWorld(per_tool={"write": ("files:read", "files:write")}, challenge_scope="files:read")
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with client(world, auth) as http:
        assert http.post(MCP, json={"tool": "read"}).status_code == 200
        assert http.post(MCP, json={"tool": "write"}).status_code == 200
        assert http.post(MCP, json={"tool": "read"}).status_code == 200  # the wider token serves both
    assert [p["scope"] for p in world.authorize_params] == ["files:read", "files:read files:write"]


def test_a_server_that_keeps_refusing_is_given_up_on():
    world = FakeWorld(required=("admin",))
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with client(world, auth) as http, pytest.raises(InsufficientScopeError):
        http.post(MCP, json={})
    # asked once for everything advertised, once more with "admin": the server refused it, stop
    assert len(world.authorize_params) == 2


def test_an_expired_token_is_refreshed_once_and_a_dead_refresh_token_signs_in_again():
    now = [1000.0]
    world = FakeWorld()
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer(), clock=lambda: now[0])
    with client(world, auth) as http:
        http.post(MCP, json={})
        now[0] += 7200  # expired
        assert http.post(MCP, json={}).status_code == 200
        assert [p["grant_type"] for p in world.token_params] == ["authorization_code", "refresh_token"]
        world.refresh = False
        now[0] += 7200
        assert http.post(MCP, json={}).status_code == 200
        assert [p["grant_type"] for p in world.token_params][-2:] == ["refresh_token", "authorization_code"]


def test_metadata_for_another_resource_is_refused_before_signing_in():
    world = FakeWorld(prm_resource="https://evil.example.com/mcp")
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with client(world, auth) as http, pytest.raises(ConfigurationError, match="RFC 9728"):
        http.post(MCP, json={})
    assert world.authorize_params == []


def test_an_authorization_server_naming_another_issuer_is_refused():
    world = FakeWorld(issuer="https://evil.example.com")
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with client(world, auth) as http, pytest.raises(ConfigurationError, match="mix-up"):
        http.post(MCP, json={})


def test_without_registration_or_client_id_the_error_says_what_to_configure():
    world = FakeWorld(dcr=False)
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with client(world, auth) as http, pytest.raises(ConfigurationError, match="client_id"):
        http.post(MCP, json={})


@pytest.mark.parametrize("bad", [
    lambda r: httpx.Response(200, text="<html>hi</html>"),
    lambda r: httpx.Response(200, json={"authorization_servers": [AS]}),  # no resource
    lambda r: httpx.Response(200, content=b"{" + b" " * 70_000 + b"}"),
    lambda r: httpx.Response(500),
])
def test_malformed_resource_metadata_is_a_protocol_error(bad):
    world = FakeWorld()

    def handler(request):
        if "oauth-protected-resource" in request.url.path:
            return bad(request)
        return world.handler(request)

    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as http, pytest.raises(ProtocolError):
        http.post(MCP, json={})


def test_discovery_does_not_follow_redirects_to_other_hosts():
    world = FakeWorld()
    seen = []

    def handler(request):
        seen.append(request.url.host)
        if "oauth-protected-resource" in request.url.path:
            return httpx.Response(302, headers={"location": "https://evil.example.com/prm"})
        return world.handler(request)

    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer())
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as http:
        http.post(MCP, json={})  # falls back to the 2025-03-26 rules at the server's origin
    assert "evil.example.com" not in seen


@pytest.mark.parametrize("url", ["http://mcp.example.com/mcp", "ftp://127.0.0.1/mcp", "mcp"])
def test_plain_http_is_refused_except_on_loopback(url):
    with pytest.raises(ConfigurationError):
        MCPServer(url)


def test_configuration_errors_are_clear():
    with pytest.raises(ConfigurationError, match="client_credentials needs"):
        MCPServer(MCP, grant="client_credentials")
    with pytest.raises(ConfigurationError, match="https"):
        MCPServer(MCP, client_metadata_url="http://agent.example/cimd.json")
    with pytest.raises(ConfigurationError, match="path"):
        MCPServer(MCP, client_metadata_url="https://agent.example/")
    with pytest.raises(ConfigurationError, match="max_authorizations"):
        MCPServer(MCP, max_authorizations=0)


def test_challenge_parsing_and_resource_matching():
    c = parse_challenge('Bearer realm="x", error="insufficient_scope", scope="a b", resource_metadata="https://m/x"')
    assert (c.error, c.scopes, c.resource_metadata) == ("insufficient_scope", ("a", "b"), "https://m/x")
    assert parse_challenge("Basic realm=x").scope is None
    assert parse_challenge("Bearer " + "x=" * 10_000).scope is None  # oversized header ignored
    assert resource_allowed("https://m.example/mcp", "https://m.example/")
    assert not resource_allowed("https://m.example/mcp", "https://m.example/other")
    assert not resource_allowed("https://m.example/mcp", "http://m.example/mcp")


def test_tokens_never_appear_in_reprs_or_errors():
    store = MemoryTokenStore()
    auth = MCPAuth(MCPServer(MCP, client_id="agent", client_secret="very-secret-value"), user=ALICE, tokens=store)
    assert "very-secret-value" not in repr(auth) and "very-secret-value" not in repr(auth.server)
    world = FakeWorld()
    with client(world, MCPAuth(MCP, user=ALICE, tokens=store, authorizer=HeadlessAuthorizer())) as http:
        http.post(MCP, json={})
    token = store.get(auth.token_key()).access_token
    assert token not in repr(store.get(auth.token_key()))


def test_urls_in_the_pause_belong_to_the_authorization_server():
    world = FakeWorld()
    with client(world, MCPAuth(MCP, user=ALICE)) as http, pytest.raises(MCPAuthorizationRequired) as info:
        http.post(MCP, json={})
    assert urlsplit(info.value.authorize_url).netloc == urlsplit(AS).netloc


def _sqlite_store(tmp_path):
    import sqlite3

    from langgraph.store.sqlite import SqliteStore

    conn = sqlite3.connect(str(tmp_path / "agent_auth.sqlite"), check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    return store


def test_sealed_tokens_live_encrypted_in_the_store_per_user(tmp_path):
    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.mcp import SealedTokenStore

    store, keyring = _sqlite_store(tmp_path), Keyring.generate()
    world = FakeWorld()
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer(), tokens=SealedTokenStore(store, keyring))
    with client(world, auth) as http:
        assert http.post(MCP, json={}).json() == {"user": "alice"}
    token = auth.tokens.get(auth.token_key()).access_token
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("agent_auth.sqlite*"))
    assert token.encode() not in on_disk and b"alice" not in on_disk  # sealed; keys are hashes
    # durable: a new MCPAuth (another worker, after a restart) on the same store makes no new sign-in
    again = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer(), tokens=SealedTokenStore(store, keyring))
    before = len(world.authorize_params)
    with client(world, again) as http:
        assert http.post(MCP, json={}).json() == {"user": "alice"}
    assert len(world.authorize_params) == before
    # another user's key, another keyring, a box moved under another key: no token
    assert SealedTokenStore(store, keyring).get(auth.token_key(BOB)) is None
    assert SealedTokenStore(store, Keyring.generate()).get(auth.token_key()) is None
    box = store.get(SealedTokenStore.NAMESPACE, SealedTokenStore._id(auth.token_key())).value
    store.put(SealedTokenStore.NAMESPACE, SealedTokenStore._id(auth.token_key(BOB)), box)
    assert SealedTokenStore(store, keyring).get(auth.token_key(BOB)) is None


async def test_sealed_tokens_under_asyncio_stay_off_the_event_loop(tmp_path):
    import threading

    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.mcp import SealedTokenStore

    loop_thread = threading.get_ident()
    calls: list[bool] = []

    class Watched(SealedTokenStore):
        def get(self, key):
            calls.append(threading.get_ident() == loop_thread)
            return super().get(key)

    world = FakeWorld()
    auth = MCPAuth(MCP, user=ALICE, authorizer=HeadlessAuthorizer(),
                   tokens=Watched(_sqlite_store(tmp_path), Keyring.generate()))
    async with aclient(world, auth) as http:
        assert (await http.post(MCP, json={})).json() == {"user": "alice"}
        assert (await http.post(MCP, json={})).json() == {"user": "alice"}
    assert calls and not any(calls)  # every store read ran in a worker thread


def test_a_callback_reaching_another_worker_completes_the_sign_in_once(tmp_path):
    """Worker A pauses (sign-in needed); the user's browser comes back to worker B, which shares
    the sealed store: B redeems the code, A and B then both have the user's token; a replay of
    the callback, in either worker, is refused."""
    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.mcp import SealedTokenStore

    store, keyring = _sqlite_store(tmp_path), Keyring.generate()
    world = FakeWorld()
    worker_a = MCPAuth(MCP, user=ALICE, tokens=SealedTokenStore(store, keyring))
    worker_b = MCPAuth(MCP, user=ALICE, tokens=SealedTokenStore(store, keyring))
    with client(world, worker_a) as http, pytest.raises(MCPAuthorizationRequired) as info:
        http.post(MCP, json={})
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("agent_auth.sqlite*"))
    assert b"verifier" not in on_disk  # the PKCE verifier is sealed
    callback = world.handler(httpx.Request("GET", info.value.authorize_url)).headers["location"]
    transport = httpx.Client(transport=httpx.MockTransport(world.handler))
    assert worker_b.complete(callback, client=transport).access_token.startswith("at-alice")
    with client(world, worker_a) as http:
        assert http.post(MCP, json={}).json() == {"user": "alice"}
    for worker in (worker_a, worker_b):
        with pytest.raises(CallbackStateError):
            worker.complete(callback, client=transport)
