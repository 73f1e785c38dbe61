"""A scripted chat model for real agent graphs (no API key, deterministic)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage


class ScriptedModel(GenericFakeChatModel):
    """Answers with the given messages in order; tools are accepted and ignored."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:
        return self


def script(*turns: AIMessage | str) -> ScriptedModel:
    messages: Iterable[AIMessage] = (t if isinstance(t, AIMessage) else AIMessage(content=t) for t in turns)
    return ScriptedModel(messages=iter(list(messages)))


def call(name: str, args: dict[str, Any], id: str = "call-1") -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": id}])
