"""A guard written once as a flow runs under invoke and ainvoke, sending its HTTP requests
through its ``http_clients`` (made only when a request is sent) and handing the call on with
``Proceed``."""

from __future__ import annotations

import asyncio

import httpx
from langchain_core.tools import tool

from langchain_agent_auth.core._http import HTTPClients
from langchain_agent_auth.core.guards import Proceed, ToolGuard, guard_tool


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


class _Checking(ToolGuard):
    """Asks a server whether the text may pass; refuses on 403."""

    def __init__(self, seen: list[str], *, ask: bool = True) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request.url.params["text"])
            return httpx.Response(403 if request.url.params["text"] == "no" else 204)

        self.ask = ask
        self.http_clients = HTTPClients(
            client=httpx.Client(transport=httpx.MockTransport(answer)),
            async_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        )

    def flow(self, call):
        if self.ask:
            response = yield httpx.Request("GET", "https://policy.test/", params={"text": call.args["text"]})
            if response.status_code == 403:
                return self.refuse(call, "Not allowed.")
        return (yield Proceed(call))


def test_a_flow_guard_sends_its_requests_sync_and_async() -> None:
    seen: list[str] = []
    guarded = guard_tool(echo, _Checking(seen))
    assert guarded.invoke({"text": "hi"}) == "hi"
    assert guarded.invoke({"text": "no"}) == "Not allowed."
    assert asyncio.run(guarded.ainvoke({"text": "yo"})) == "yo"
    assert asyncio.run(guarded.ainvoke({"text": "no"})) == "Not allowed."
    assert seen == ["hi", "no", "yo", "no"]


def test_no_http_client_is_made_when_the_flow_sends_nothing() -> None:
    clients = HTTPClients()
    guard = _Checking([], ask=False)
    guard.http_clients = clients
    guarded = guard_tool(echo, guard)
    assert guarded.invoke({"text": "hi"}) == "hi"
    assert asyncio.run(guarded.ainvoke({"text": "hi"})) == "hi"
    assert clients._sync is None and not clients._async
