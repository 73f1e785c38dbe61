"""The model as the attacker: a scripted chat model that emits the tool calls a test
scripts, and records everything it was shown (so a test can prove a secret never
reached it).

The turn it plays is the number of AI messages already in the conversation, so the
script is the same however often a node re-runs on resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from pydantic import Field

from langchain_agent_auth.identity import UserIdentity

ALICE = UserIdentity(subject="alice", issuer="https://idp.test", email="alice@example.com", name="Alice")
BOB = UserIdentity(subject="bob", issuer="https://idp.test", email="bob@example.com", name="Bob")

Turn = AIMessage | Callable[[Sequence[BaseMessage]], AIMessage]


class Attacker(BaseChatModel):
    """Plays ``script`` turn by turn; then says "done"."""

    script: list[Any] = Field(default_factory=list)
    #: Every message text the model was given, in order (system, human, AI, tool).
    seen: list[str] = Field(default_factory=list)
    #: The tool schemas the agent showed the model (OpenAI function format).
    tools_shown: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "adversarial-scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Attacker:
        self.tools_shown[:] = [convert_to_openai_tool(t) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        for m in messages:
            self.seen.append(m.content if isinstance(m.content, str) else json.dumps(m.content))
            self.seen.extend(json.dumps(c.get("args")) for c in getattr(m, "tool_calls", None) or ())
        turn = sum(1 for m in messages if m.type == "ai")
        step: Any = self.script[turn] if turn < len(self.script) else AIMessage("done")
        message = step(messages) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])

    def saw(self, text: str) -> bool:
        return any(text in s for s in self.seen)


def call(name: str, args: dict[str, Any], call_id: str = "call_1") -> AIMessage:
    """An AI message calling one tool."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def calls(*specs: tuple[str, dict[str, Any], str]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": n, "args": a, "id": i, "type": "tool_call"} for n, a, i in specs])


def agent(model: Attacker, tools: list[Any], middleware: list[Any], *, saver: Any = None, store: Any = None) -> Any:
    """A real ``create_agent`` graph with a checkpointer and a store."""
    return create_agent(model, tools, middleware=middleware, checkpointer=saver or InMemorySaver(),
                        store=store if store is not None else InMemoryStore())


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def tool_messages(result: dict[str, Any]) -> list[Any]:
    return [m for m in result["messages"] if m.type == "tool"]


def interrupts(result: dict[str, Any]) -> Sequence[Any]:
    return result.get("__interrupt__") or ()
