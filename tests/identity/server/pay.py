"""An approval-guarded transfer on a server with auth: identity node, identity guard,
in-app approval. The thread belongs to whoever's token started it."""

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_agent_auth.approval import InAppApprover, approval_guards, route_tool_calls
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import IdentityGuard, UserState, get_current_user, identity_node


class State(MessagesState, UserState):
    pass


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    return f"{get_current_user().subject} sent {amount} to {to}"


def model(state: State) -> dict:
    if any(m.type == "tool" for m in state["messages"]):
        return {"messages": [AIMessage("all done")]}
    return {"messages": [AIMessage("", tool_calls=[{"name": "transfer", "args": {"amount": 30, "to": "Eve"},
                                                    "id": "call-30"}])]}


graph = (
    StateGraph(State)
    .add_node("identity", identity_node())
    .add_node("model", model)
    .add_node("tools", guarded_tool_node(
        [transfer], IdentityGuard(), *approval_guards({"transfer": InAppApprover(keyring=Keyring.generate())})))
    .add_edge(START, "identity")
    .add_edge("identity", "model")
    .add_conditional_edges("model", route_tool_calls, ["tools", END])
    .add_edge("tools", "model")
    .compile()
)
