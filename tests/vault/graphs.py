"""Real graphs for the vault tests: a scripted chat model, calendar tools, agents, a StateGraph."""

from __future__ import annotations

import itertools
import json
from typing import Annotated, Any

import httpx
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from langchain_agent_auth.vault import refresh_access_token, vault_auth

_ids = itertools.count(1)


def ask(tool_name: str, **args: Any) -> HumanMessage:
    """A user message that makes the scripted model call ``tool_name`` with ``args``."""
    return HumanMessage(json.dumps({"tool": tool_name, "args": args}))


class ScriptedModel(GenericFakeChatModel):
    """Calls the tool a human message names; answers with the tool's output after it."""

    messages: Any = iter(())

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            try:
                spec = json.loads(str(last.content))
                calls = spec if isinstance(spec, list) else [spec]
                msg = AIMessage(content="", tool_calls=[
                    {"name": c["tool"], "args": c["args"], "id": f"call-{next(_ids)}", "type": "tool_call"}
                    for c in calls])
            except (ValueError, KeyError, TypeError):
                msg = AIMessage(content="I can only call tools.")
        elif isinstance(last, ToolMessage):
            msg = AIMessage(content=f"result: {last.content}")
        else:
            msg = AIMessage(content="ok")
        return ChatResult(generations=[ChatGeneration(message=msg)])


def calendar_tools(api_url: str, *, timeout: float = 5) -> dict[str, BaseTool]:
    """Tools that call the upstream calendar API with the vault's token, sync and async
    (``timeout``: seconds per request, generous where many calls share a busy machine)."""

    @tool
    def list_events(day: str) -> str:
        """List the user's calendar events for a day."""
        with httpx.Client(auth=vault_auth(), timeout=timeout) as http:
            r = http.get(f"{api_url}/events", params={"day": day})
            r.raise_for_status()
            return json.dumps(r.json())

    @tool
    async def alist_events(day: str) -> str:
        """List the user's calendar events for a day (async tool)."""
        async with httpx.AsyncClient(auth=vault_auth(), timeout=timeout) as http:
            r = await http.get(f"{api_url}/events", params={"day": day})
            r.raise_for_status()
            return json.dumps(r.json())

    @tool
    def create_event(title: str) -> str:
        """Create an event in the user's calendar."""
        with httpx.Client(auth=vault_auth(), timeout=timeout) as http:
            r = http.post(f"{api_url}/events", json={"title": title, "start": "09:00"})
            r.raise_for_status()
            body = r.json()
            return json.dumps({"created": body["title"], "owner": body["owner"]})

    @tool
    def list_events_plain(day: str) -> str:
        """List events with a non-httpx style: token by accessor, refresh on 401."""
        from langchain_agent_auth.vault import get_access_token

        token = get_access_token()
        r = httpx.get(f"{api_url}/events", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        if r.status_code == 401:
            token = refresh_access_token()
            r = httpx.get(f"{api_url}/events", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
            if r.status_code == 401:
                refresh_access_token()  # raises: the guard pauses
        r.raise_for_status()
        return json.dumps(r.json())

    return {t.name: t for t in (list_events, alist_events, create_event, list_events_plain)}


def agent(tools: list[Any], middleware: list[Any], checkpointer: Any) -> Any:
    return create_agent(ScriptedModel(), tools, middleware=middleware, checkpointer=checkpointer)


class State(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]


def hand_built_graph(tool_node: Any, checkpointer: Any) -> Any:
    """START -> model -> tools -> model -> END, with a ToolNode the test provides."""
    model = ScriptedModel()

    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(State)
    builder.add_node("model", call_model)
    builder.add_node("tools", tool_node)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer)


def interrupts(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [i.value for i in result.get("__interrupt__", ())]


def last_tool_message(result: dict[str, Any]) -> ToolMessage:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)][-1]
