"""MCPGuard as one flow: the same refusals sync and async, under the shared on_refusal policy."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.tools import tool

from langchain_agent_auth.core.errors import ConfigurationError, IdentityError, MCPAuthorizationRequired
from langchain_agent_auth.core.identity import UserIdentity, acting_as
from langchain_agent_auth.mcp import MCPAuth, MCPGuard, with_mcp_auth

URL = "https://mcp.example.com/mcp"


@tool
def notes(query: str) -> str:
    """Search the notes."""
    if query == "sign-in":
        raise ExceptionGroup("tasks", [MCPAuthorizationRequired("sign in", connection=URL, authorize_url="https://as/a")])
    return f"notes about {query}"


def test_without_a_user_the_call_is_refused_sync_and_async():
    [guarded] = with_mcp_auth([notes], MCPAuth(URL))
    assert "no user is known" in guarded.invoke({"query": "x"})
    assert "no user is known" in asyncio.run(guarded.ainvoke({"query": "x"}))


def test_on_refusal_raise_raises_the_typed_error():
    [guarded] = with_mcp_auth([notes], MCPAuth(URL), on_refusal="raise")
    with pytest.raises(IdentityError):
        guarded.invoke({"query": "x"})
    with pytest.raises(ConfigurationError):
        MCPGuard(MCPAuth(URL), on_refusal="refuse")  # type: ignore[arg-type]


def test_the_tool_runs_as_the_user_and_a_sign_in_outside_a_graph_raises():
    [guarded] = with_mcp_auth([notes], MCPAuth(URL))
    with acting_as(UserIdentity(subject="alice")):
        assert guarded.invoke({"query": "x"}) == "notes about x"
        assert asyncio.run(guarded.ainvoke({"query": "x"})) == "notes about x"
        with pytest.raises(MCPAuthorizationRequired):
            guarded.invoke({"query": "sign-in"})
        with pytest.raises(MCPAuthorizationRequired):
            asyncio.run(guarded.ainvoke({"query": "sign-in"}))
