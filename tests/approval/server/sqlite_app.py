"""A small app with durable state (SqliteSaver + SqliteStore) for the restart test.

    APP_DIR=... NODE_ISSUER=... python -m tests.approval.server.sqlite_app start|show

``agent-auth resumer --graph tests.approval.server.sqlite_app:graph --approver
tests.approval.server.sqlite_app:approver --once`` resumes it from another process.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import sys

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth.approval import CIBAApprover, approval_guards, route_tool_calls
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.oauth import OAuthClient
from tests.approval.helpers import State
from tests.support.node_idp import AGENT, API

APP_DIR = pathlib.Path(os.environ["APP_DIR"])
CFG = {"configurable": {"thread_id": "restart-thread"}}


def _conn(name: str) -> sqlite3.Connection:
    return sqlite3.connect(str(APP_DIR / name), check_same_thread=False, isolation_level=None)


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


def model(state: State) -> dict:
    if any(m.type == "tool" for m in state["messages"]):
        return {"messages": [AIMessage("all done")]}
    return {"messages": [AIMessage("", tool_calls=[{"name": "transfer", "args": {"amount": 42, "to": "Bob"},
                                                    "id": "call-42"}])]}


approver = CIBAApprover(OAuthClient(os.environ["NODE_ISSUER"], *AGENT), scope="openid api:write", resource=API)
store = SqliteStore(_conn("store.sqlite"))
store.setup()
graph = (StateGraph(State).add_node("model", model)
         .add_node("tools", guarded_tool_node([transfer], *approval_guards({"transfer": approver})))
         .add_edge(START, "model").add_conditional_edges("model", route_tool_calls, ["tools", END])
         .add_edge("tools", "model").compile(checkpointer=SqliteSaver(_conn("checkpoints.sqlite")), store=store))

if __name__ == "__main__":
    if sys.argv[1] == "start":
        result = graph.invoke({"messages": [("user", "pay Bob 42")]}, CFG,
                              context={"user": UserIdentity(subject="alice")})
        print(json.dumps({"paused": result["__interrupt__"][0].value["type"]}))
    else:
        state = graph.get_state(CFG)
        tools = [m.content for m in state.values["messages"] if m.type == "tool"]
        print(json.dumps({"last": state.values["messages"][-1].content, "tool": tools[0] if tools else None,
                          "paused": bool(state.interrupts)}))
