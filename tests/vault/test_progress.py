"""Live progress of a connect flow: a ``connect_account`` event on the custom stream when
the run pauses, sync and async, with no token, secret or state in it."""

from __future__ import annotations

import json

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_agent_auth.core.progress import WaitProgress, is_progress
from langchain_agent_auth.vault import VaultMiddleware
from tests.support.demo_upstream import CLIENT_SECRET, browse_upstream
from tests.vault.conftest import ALICE
from tests.vault.graphs import agent, ask, calendar_tools


def _graph(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    return agent([tools["list_events"]], [VaultMiddleware(vault, {"list_events": ("calendar", ["calendar.read"])})],
                 InMemorySaver())


async def _chunks(graph, value, cfg, mode):
    if mode == "sync":
        return list(graph.stream(value, cfg, context={"user": ALICE}, stream_mode=["custom", "updates"]))
    return [c async for c in graph.astream(value, cfg, context={"user": ALICE}, stream_mode=["custom", "updates"])]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_connect_pause_streams_one_typed_event_without_secrets(vault, upstream, mode):
    from langchain_agent_auth.vault import VaultCallback

    graph = _graph(vault, upstream)
    cfg = {"configurable": {"thread_id": f"progress-{mode}"}}
    chunks = await _chunks(graph, {"messages": [ask("list_events", day="monday")]}, cfg, mode)
    custom = [c for kind, c in chunks if kind == "custom"]
    [pause] = [c for kind, c in chunks if kind == "updates" and "__interrupt__" in c]
    payload = pause["__interrupt__"][0].value
    assert len(custom) == 1 and is_progress(custom[0])
    event = WaitProgress.model_validate(custom[0])  # the exact typed shape, nothing more
    assert event.kind == "connect_account" and event.state == "paused" and event.connection == "calendar"
    assert event.tool == "list_events" and event.tool_call_id == payload["tool_call_id"]
    assert event.expires_at == payload["expires_at"] and event.seconds_left and event.seconds_left > 0
    assert "calendar" in event.message

    # the user connects; the resumed run gets its token and emits no further wait
    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: ALICE)
    assert browse_upstream(payload["authorize_url"], "alice").status_code == 200
    chunks = await _chunks(graph, Command(resume={"action": "connected"}), cfg, mode)
    assert not [c for kind, c in chunks if kind == "custom"]

    # secret scan: nothing from the connect flow's state, the upstream's token or secrets
    text = json.dumps(custom)
    token = vault.get_token(ALICE, "calendar", ["calendar.read"]).token
    state = payload["authorize_url"].split("state=")[1].split("&")[0]
    for secret in (token, CLIENT_SECRET, state, "code_challenge", "refresh"):
        assert secret not in text
