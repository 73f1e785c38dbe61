"""A graph whose identity node and tool see the user the server authenticated."""

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph

from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import IdentityGuard, UserState, get_current_user, identity_node


class State(MessagesState, UserState):
    pass


@tool
def whoami(user_id: str = "") -> str:
    """Say who the tool acts for."""
    return f"acting for {get_current_user().subject}"


def model(state: State) -> dict:
    # A scripted "model": asks the tool, claiming another user if the input says so.
    claim = state["messages"][-1].content if state["messages"] else ""
    args = {"user_id": claim} if claim else {}
    return {"messages": [AIMessage("", tool_calls=[{"name": "whoami", "args": args, "id": "call-1"}])]}


graph = (
    StateGraph(State)
    .add_node("identity", identity_node())
    .add_node("model", model)
    .add_node("tools", guarded_tool_node([whoami], IdentityGuard()))
    .add_edge(START, "identity")
    .add_edge("identity", "model")
    .add_edge("model", "tools")
    .compile()
)
