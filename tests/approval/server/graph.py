"""A graph served by `langgraph dev` whose tool needs a CIBA approval (node-oidc-provider).

Configured from the environment the test fixture sets: NODE_ISSUER, CIBA_CLIENT_ID,
CIBA_CLIENT_SECRET, API_RESOURCE and AGENT_AUTH_ENCRYPTION_KEYS (shared with the resumer).
"""

import os

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_agent_auth.approval import CIBAApprover, approval_guards, get_approval_token, route_tool_calls
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.oauth import OAuthClient

approver = CIBAApprover(
    OAuthClient(os.environ["NODE_ISSUER"], os.environ["CIBA_CLIENT_ID"], os.environ["CIBA_CLIENT_SECRET"]),
    scope="openid api:write", resource=os.environ["API_RESOURCE"],
)


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    token = get_approval_token()
    return f"sent {amount} to {to}" + (" with the approval token" if token and token.access_token else "")


def model(state: MessagesState) -> dict:
    if any(m.type == "tool" for m in state["messages"]):
        return {"messages": [AIMessage("all done")]}
    return {"messages": [AIMessage("", tool_calls=[{"name": "transfer", "args": {"amount": 12, "to": "Bob"},
                                                    "id": "call-12"}])]}


graph = (
    StateGraph(MessagesState)
    .add_node("model", model)
    .add_node("tools", guarded_tool_node([transfer], *approval_guards({"transfer": approver})))
    .add_edge(START, "model")
    .add_conditional_edges("model", route_tool_calls, ["tools", END])
    .add_edge("tools", "model")
    .compile()
)
