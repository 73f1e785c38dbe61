"""Objects the CLI tests load by ``module:attr``."""

from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from langchain_agent_auth.approval import InAppApprover
from langchain_agent_auth.core.crypto import Keyring


class S(TypedDict):
    x: int


graph = StateGraph(S).add_node("n", lambda s: s).add_edge(START, "n").compile(store=InMemoryStore())


def approvers() -> list:
    return [InAppApprover(keyring=Keyring.generate())]


def make_list() -> list:
    return [1, 2]


def needs_args(a: int) -> int:
    return a
