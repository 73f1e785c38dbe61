"""A CIBA-guarded transfer on a server with auth: the user comes from the bearer token, the
thread belongs to that user (IdentityGuard), and the resumer acts as that user."""

import os

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_agent_auth.approval import CIBAApprover, approval_guards, route_tool_calls
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import IdentityGuard, get_current_user
from langchain_agent_auth.oauth import OAuthClient

approver = CIBAApprover(
    OAuthClient(os.environ["IDP_ISSUER"], os.environ["CIBA_CLIENT_ID"], os.environ["CIBA_CLIENT_SECRET"]),
    scope="openid api:write", resource=os.environ["API_RESOURCE"],
)


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to} for {get_current_user().subject}"


def model(state: MessagesState) -> dict:
    if any(m.type == "tool" for m in state["messages"]):
        return {"messages": [AIMessage("all done")]}
    return {"messages": [AIMessage("", tool_calls=[{"name": "transfer", "args": {"amount": 30, "to": "Bob"},
                                                    "id": "call-30"}])]}


graph = (
    StateGraph(MessagesState)
    .add_node("model", model)
    .add_node("tools", guarded_tool_node([transfer], IdentityGuard(), *approval_guards({"transfer": approver})))
    .add_edge(START, "model")
    .add_conditional_edges("model", route_tool_calls, ["tools", END])
    .add_edge("tools", "model")
    .compile()
)
