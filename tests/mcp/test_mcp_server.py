"""End to end on loopback: a FastMCP server (the official SDK) protected by MCPTokenVerifier
and ToolScopes, the local provider as its authorization server, and three kinds of client:
MCPAuth with the SDK's client, langchain-mcp-adapters with two users on one agent, and the
SDK's own OAuthClientProvider (independent code) against our server and provider."""

from __future__ import annotations

import asyncio
import functools
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.server.fastmcp import FastMCP

from langchain_agent_auth import LocalProvider, UserIdentity, acting_as
from langchain_agent_auth.core.errors import MCPAuthorizationRequired
from langchain_agent_auth.mcp import (
    DownstreamTokens,
    MCPAuth,
    MCPServer,
    MCPTokenVerifier,
    ToolScopes,
    mcp_auth_settings,
    mcp_user,
)
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
from tests.support.browser import ServedApp

REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture(scope="module")
def world():
    """The provider, and a files server that needs files:read for everything and files:write
    for ``write_note``."""
    with LocalProvider() as idp, ServedApp(lifespan="on") as served:
        url = f"{served.url}/mcp"
        idp.add_resource(url, "files:read files:write downstream:read", description="Files MCP server")
        # the server's own client: it may exchange the agent's tokens for downstream ones (RFC 8693)
        mcp_secret = idp.add_client(client_id="files-mcp", client_name="Files MCP server",
                                    grant_types=["urn:ietf:params:oauth:grant-type:token-exchange"],
                                    token_exchange_from_clients=[idp.client_id])["client_secret"]
        downstream = DownstreamTokens(OAuthClient(idp.issuer, "files-mcp", mcp_secret),
                                      resource="urn:example:downstream", scopes=["downstream:read"])
        downstream_verifier = JWTVerifier(idp.issuer, audience="urn:example:downstream")
        verifier = MCPTokenVerifier(JWTVerifier(idp.issuer, audience=url))
        server = FastMCP("files", token_verifier=verifier, host="127.0.0.1", port=served.port,
                         auth=mcp_auth_settings(idp.issuer, url, scopes=["files:read"]))

        @server.tool()
        def whoami() -> str:
            """Who the server thinks is calling."""
            user = mcp_user()
            return f"{user.subject} via {user.issuer}"

        @server.tool()
        def write_note(text: str) -> str:
            """Write a note for the caller."""
            return f"{mcp_user().subject} wrote {text}"

        @server.tool()
        async def downstream_whoami() -> str:
            """Who the downstream API sees, and who acts for them."""
            token = await downstream.aget()
            claims = await downstream_verifier.averify(token.access_token)
            return f"{claims['sub']} act={claims['act']['sub']} aud={claims['aud']}"

        app = ToolScopes(server.streamable_http_app(), verifier,
                         {"write_note": ["files:write"], "downstream_whoami": ["downstream:read"]},
                         resource_metadata_url=f"{served.url}/.well-known/oauth-protected-resource/mcp")
        served.serve(app)
        yield idp, url


def _root(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _call(url: str, auth: httpx.Auth, tool: str, args: dict | None = None) -> str:
    try:
        async with streamablehttp_client(url, auth=auth) as (read, write, _), ClientSession(read, write) as s:
            await s.initialize()
            result = await s.call_tool(tool, args or {})
            return result.content[0].text
    except BaseException as exc:  # anyio wraps what the auth flow raised
        raise _root(exc) from None


async def _call_signing_in(idp, url, auth, user, tool, args=None):
    """Call; when the server needs the user's sign-in, play the user and call again."""
    for _ in range(3):
        try:
            return await _call(url, auth, tool, args)
        except MCPAuthorizationRequired as pause:
            callback = await asyncio.to_thread(functools.partial(idp.sign_in, pause.authorize_url, user,
                                                                 redirect_uri=REDIRECT))
            await auth.acomplete(callback)
    raise AssertionError("still not authorized")


def _server(idp, url) -> MCPServer:
    return MCPServer(url, client_id=idp.client_id, client_secret=idp.client_secret, redirect_uri=REDIRECT)


async def test_sign_in_pause_then_the_verified_user_reaches_the_tool_and_step_up_widens_the_grant(world):
    idp, url = world
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    auth = MCPAuth(_server(idp, url), user=alice)
    with pytest.raises(MCPAuthorizationRequired) as info:
        await _call(url, auth, "whoami")
    assert parse_qs(urlsplit(info.value.authorize_url).query)["resource"] == [url]
    assert await _call_signing_in(idp, url, auth, "alice", "whoami") == f"alice via {idp.issuer}"
    first = auth.tokens.get(auth.token_key())
    assert "files:write" not in (first.scope or ())
    # write_note needs files:write: 403 insufficient_scope -> a new sign-in for the union of scopes
    assert await _call_signing_in(idp, url, auth, "alice", "write_note", {"text": "hi"}) == "alice wrote hi"
    assert {"files:read", "files:write"} <= set(auth.tokens.get(auth.token_key()).scope or ())


async def test_without_a_token_the_server_answers_401_with_its_resource_metadata(world):
    _, url = world
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                   headers={"accept": "application/json, text/event-stream"})
        assert response.status_code == 401
        assert "resource_metadata=" in response.headers["www-authenticate"]
        forged = await http.post(url, json={}, headers={"authorization": "Bearer eyJhbGciOiJub25lIn0.e30."})
        assert forged.status_code == 401
        prm = (await http.get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))).json()
    assert prm["resource"] == url and prm["authorization_servers"][0].rstrip("/") == world[0].issuer.rstrip("/")


async def test_two_users_of_one_agent_get_their_own_mcp_tokens_through_langchain_mcp_adapters(world):
    from langchain_mcp_adapters.client import MultiServerMCPClient

    idp, url = world
    auth = MCPAuth(_server(idp, url))  # no user=: the user of the current tool call
    users = {name: UserIdentity(subject=name, issuer=idp.issuer) for name in ("alice", "bob")}
    for name, user in users.items():  # each connects once (the connect_account step)
        with acting_as(user):
            await _call_signing_in(idp, url, auth, name, "whoami")
    client = MultiServerMCPClient({"files": {"url": url, "transport": "streamable_http", "auth": auth}})
    with acting_as(users["alice"]):
        tools = {t.name: t for t in await client.get_tools()}
    seen = {}
    for name, user in [("bob", users["bob"]), ("alice", users["alice"]), ("bob", users["bob"])]:
        with acting_as(user):
            out = await tools["whoami"].ainvoke({})
            seen.setdefault(name, []).append(out if isinstance(out, str) else out[0]["text"])
    assert seen == {"alice": [f"alice via {idp.issuer}"], "bob": [f"bob via {idp.issuer}"] * 2}
    assert auth.tokens.get(auth.token_key(users["alice"])).access_token != \
        auth.tokens.get(auth.token_key(users["bob"])).access_token


async def test_the_official_sdk_client_registers_and_authorizes_at_the_local_provider(world):
    """Independent code: the SDK's OAuthClientProvider discovers our server's metadata, registers
    itself at the local provider (RFC 7591), signs bob in with PKCE and resource, and calls."""
    from mcp.client.auth import OAuthClientProvider, TokenStorage
    from mcp.shared.auth import OAuthClientMetadata

    idp, url = world

    class Storage(TokenStorage):
        def __init__(self) -> None:
            self.tokens = self.info = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens

        async def get_client_info(self):
            return self.info

        async def set_client_info(self, info):
            self.info = info

    asked: list[str] = []

    async def redirect(authorization_url: str) -> None:
        asked.append(authorization_url)

    async def callback() -> tuple[str, str | None]:
        back = await asyncio.to_thread(functools.partial(idp.sign_in, asked[-1], "bob", redirect_uri=REDIRECT))
        query = parse_qs(urlsplit(back).query)
        return query["code"][0], query.get("state", [None])[0]

    storage = Storage()
    provider = OAuthClientProvider(url, OAuthClientMetadata(redirect_uris=[REDIRECT], client_name="sdk"),
                                   storage, redirect_handler=redirect, callback_handler=callback)
    assert await _call(url, provider, "whoami") == f"bob via {idp.issuer}"
    assert storage.info is not None and storage.info.client_id.startswith("dyn-")  # registered dynamically
    assert parse_qs(urlsplit(asked[0]).query)["resource"] == [url]


async def test_our_client_registers_dynamically_or_by_metadata_document(world):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    idp, url = world
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    # RFC 7591: no client id configured, the provider advertises registration_endpoint
    auth = MCPAuth(MCPServer(url, redirect_uri=REDIRECT), user=alice)
    with pytest.raises(MCPAuthorizationRequired) as info:
        await _call(url, auth, "whoami")
    assert parse_qs(urlsplit(info.value.authorize_url).query)["client_id"][0].startswith("dyn-")
    assert await _call_signing_in(idp, url, auth, "alice", "whoami") == f"alice via {idp.issuer}"
    # A Client ID Metadata Document the provider fetches (loopback http here, https in production)
    served = ServedApp()
    cimd = f"{served.url}/agent/cimd.json"
    doc = {"client_id": cimd, "client_name": "notes agent", "redirect_uris": [REDIRECT],
           "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}
    app = Starlette(routes=[Route("/agent/cimd.json", lambda request: JSONResponse(doc))])
    with served.serve(app):
        bob = UserIdentity(subject="bob", issuer=idp.issuer)
        auth = MCPAuth(MCPServer(url, client_metadata_url=cimd, redirect_uri=REDIRECT), user=bob)
        with pytest.raises(MCPAuthorizationRequired) as info:
            await _call(url, auth, "whoami")
        assert parse_qs(urlsplit(info.value.authorize_url).query)["client_id"] == [cimd]
        assert await _call_signing_in(idp, url, auth, "bob", "whoami") == f"bob via {idp.issuer}"


async def test_an_agent_pauses_with_connect_account_and_resumes_once_the_user_signed_in(world):
    from langchain.agents import create_agent
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from langchain_agent_auth.identity import IdentityMiddleware
    from langchain_agent_auth.mcp import MCPAuthMiddleware
    from tests.support.fake_model import call, script

    idp, url = world
    carol = UserIdentity(subject="carol", issuer=idp.issuer)
    idp.add_user("carol", "carol-password-1")
    auth = MCPAuth(_server(idp, url))
    client = MultiServerMCPClient({"files": {"url": url, "transport": "streamable_http", "auth": auth}})
    # listing tools needs a signed-in user too: the app lists them as a service user once
    lister = UserIdentity(subject="alice", issuer=idp.issuer)
    with acting_as(lister):
        await _call_signing_in(idp, url, auth, "alice", "whoami")
        tools = await client.get_tools()
    agent = create_agent(script(call("whoami", {}), "done"), tools,
                         middleware=[IdentityMiddleware(), MCPAuthMiddleware(auth)], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "mcp-carol"}}
    result = await agent.ainvoke({"messages": [("user", "who am I?")]}, config, context={"user": carol})
    pause = result["__interrupt__"][0].value
    assert pause["type"] == "connect_account" and pause["connection"] == url
    assert pause["authorize_url"].startswith(idp.issuer) and "access_token" not in str(pause)
    callback = await asyncio.to_thread(functools.partial(idp.sign_in, pause["authorize_url"], "carol",
                                                         "carol-password-1", redirect_uri=REDIRECT))
    await auth.acomplete(callback)  # what the app's callback route does
    result = await agent.ainvoke(Command(resume={}), config, context={"user": carol})
    tool_messages = [m for m in result["messages"] if m.type == "tool"]
    assert f"carol via {idp.issuer}" in str(tool_messages[-1].content)
    token = auth.tokens.get(auth.token_key(carol)).access_token
    assert token not in str(result) and token not in str(pause)


async def test_a_tool_calls_a_downstream_api_with_an_exchanged_token_naming_the_mcp_server(world):
    idp, url = world
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    auth = MCPAuth(_server(idp, url), user=alice)
    # downstream_whoami needs downstream:read: a step-up where alice allows it, then the exchange
    out = await _call_signing_in(idp, url, auth, "alice", "downstream_whoami")
    assert out == "alice act=files-mcp aud=urn:example:downstream"
