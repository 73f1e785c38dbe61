"""An agent that uses a remote MCP server on behalf of each of its users.

The agent loads the notes server's tools with ``langchain-mcp-adapters``; the toolkit's
``MCPAuth`` gives each call the current user's token for that server (never another
user's), and ``MCPAuthMiddleware`` turns "this user has not signed in there yet" into the
vault's ``connect_account`` pause with the authorization URL:

1. alice asks for her notes: the run pauses; alice signs in at the provider and allows the
   agent; the app's callback redeems the code (PKCE, RFC 8707 ``resource``); the run resumes.
2. alice adds a note: the server needs ``notes:write`` (``403 insufficient_scope``): a second
   pause asks for the wider grant (step-up); once allowed, the note is added.
3. bob asks for his notes: his own sign-in, his own token; he never sees alice's notes.

    python examples/mcp/agent.py            # provider and MCP server in-process, offline
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # examples/_common.py

from _common import Browser, LoopbackServer, calls, chat_model, parse_args, provider, say
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from server import SCOPES, build_app
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from langchain_agent_auth import UserIdentity, acting_as
from langchain_agent_auth.identity import IdentityMiddleware
from langchain_agent_auth.mcp import MCPAuth, MCPAuthMiddleware, MCPServer, authorization_required

_seen: set[str] = set()


async def run(agent: Any, value: Any, config: dict, user: UserIdentity) -> dict:
    """One agent turn; prints the tool calls and results not printed yet, and any pause."""
    result = await agent.ainvoke(value, config, context={"user": user})
    for message in result.get("messages", []):
        if message.id in _seen:
            continue
        _seen.add(message.id)
        if isinstance(message, ToolMessage):
            text = message.content if isinstance(message.content, str) else message.content[0]["text"]
            say("tool", f"{message.name} -> {text}")
        elif isinstance(message, AIMessage) and message.tool_calls:
            say("model", "calls " + ", ".join(c["name"] for c in message.tool_calls))
    for pause in result.get("__interrupt__", ()):
        value = pause.value
        say("paused", f"{value['type']}: sign in at the notes server's provider "
                      f"(scopes {' '.join(value['scopes']) or 'default'})")
    return result


async def conversation(args: Any) -> None:
    with provider(args) as idp, LoopbackServer() as mcp_web, LoopbackServer() as app_web:
        port = int(mcp_web.url.rsplit(":", 1)[1])
        url = f"{mcp_web.url}/mcp"
        idp.add_resource(url, SCOPES, description="Notes MCP server")
        mcp_web.start(build_app(idp.issuer, port), lifespan="on")
        say("mcp", f"notes server protected by the toolkit at {url}")

        auth = MCPAuth(MCPServer(url, client_id=idp.client_id, client_secret=idp.client_secret,
                                 redirect_uri=f"{app_web.url}/callback"))

        async def callback(request: Any) -> PlainTextResponse:  # the app's redirect URI
            await auth.acomplete(str(request.url))
            return PlainTextResponse("Connected. You can close this window.")

        app_web.start(Starlette(routes=[Route("/callback", callback)]))
        users = {name: UserIdentity(subject=name, issuer=idp.issuer) for name in ("alice", "bob")}
        client = MultiServerMCPClient({"notes": {"url": url, "transport": "streamable_http", "auth": auth}})

        async def connect(name: str, pause: dict) -> None:
            def browse() -> int:
                with Browser(name, idp.users[name]) as browser:
                    return browser.open(pause["authorize_url"]).status_code
            status = await asyncio.to_thread(browse)
            say(name, f"signs in and allows the agent; the app's callback answers HTTP {status}")

        async def as_user(name: str, action: Any) -> Any:
            """Run ``action`` as ``name``; when the server needs their sign-in first, do it."""
            with acting_as(users[name]):
                for _ in range(3):
                    try:
                        return await action()
                    except Exception as exc:
                        need = authorization_required(exc)
                        if need is None:
                            raise
                        await connect(name, {"authorize_url": need.authorize_url})
            raise SystemExit("the notes server kept asking to sign in")

        # The app lists the server's tools once (as alice: every request needs a signed-in user).
        say("alice", "opens the app and connects her notes account")
        tools = await as_user("alice", client.get_tools)
        say("mcp", "tools: " + ", ".join(t.name for t in tools))
        model = chat_model(args, [calls(("list_notes", {})), calls(("add_note", {"text": "buy milk"})),
                                  calls(("list_notes", {})), calls(("list_notes", {}))])
        agent = create_agent(model, tools, middleware=[IdentityMiddleware(), MCPAuthMiddleware(auth)],
                             checkpointer=InMemorySaver())
        for name, ask in [("alice", "What are my notes?"), ("alice", "Add a note: buy milk"),
                          ("alice", "What are my notes now?"), ("bob", "What are my notes?")]:
            say(name, ask)
            config = {"configurable": {"thread_id": f"notes-{name}-{len(ask)}"}}
            result = await run(agent, {"messages": [("user", ask)]}, config, users[name])
            while result.get("__interrupt__"):
                await connect(name, result["__interrupt__"][0].value)
                result = await run(agent, Command(resume={}), config, users[name])


def main() -> None:
    asyncio.run(conversation(parse_args(__doc__)))


if __name__ == "__main__":
    main()
