"""Shared pieces of the approval tests (a plain module: conftest files are imported under
another name, so module-level state there would be a second copy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from langchain_agent_auth.identity import UserIdentity

ALICE = UserIdentity(subject="alice", issuer="https://idp.test", email="alice@example.com", name="Alice")
BOB = UserIdentity(subject="bob", issuer="https://idp.test", email="bob@example.com", name="Bob")


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model whose ``bind_tools`` returns itself (create_agent needs it)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


def scripted(*messages: AIMessage) -> ScriptedModel:
    return ScriptedModel(messages=iter(list(messages)))


def calls(*specs: tuple[str, dict[str, Any], str]) -> AIMessage:
    """An AI message calling tools: ``calls(("transfer", {...}, "call_1"), ...)``."""
    return AIMessage("", tool_calls=[{"name": n, "args": a, "id": i, "type": "tool_call"} for n, a, i in specs])


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


SIDE_EFFECTS: list[tuple[str, dict[str, Any]]] = []


@tool
def transfer_money(amount: int, to: str) -> str:
    """Transfer money to someone."""
    SIDE_EFFECTS.append(("transfer_money", {"amount": amount, "to": to}))
    return f"transferred {amount} to {to}"


@tool
def delete_repo(name: str) -> str:
    """Delete a repository."""
    SIDE_EFFECTS.append(("delete_repo", {"name": name}))
    return f"deleted {name}"


def tool_messages(result: dict[str, Any]) -> list[Any]:
    return [m for m in result["messages"] if m.type == "tool"]


def interrupts(result: dict[str, Any]) -> Sequence[Any]:
    return result.get("__interrupt__") or ()


def answer(result_or_interrupts: Any, **by_tool: dict[str, Any]) -> dict[str, Any]:
    """A resume map: for each pending approval of tool ``name``, ``by_tool[name]`` plus its id."""
    pending = result_or_interrupts
    if isinstance(pending, dict):
        pending = interrupts(pending)
    out: dict[str, Any] = {}
    for i in pending:
        tool_name = i.value.get("tool")
        if tool_name in by_tool:
            out[i.id] = {"approval_id": i.value["approval_id"], **by_tool[tool_name]}
    return out
