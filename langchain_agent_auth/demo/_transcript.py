"""What the demo prints of the conversation: new messages, tool calls and refusals, streamed
updates and the run's progress events (a mixin of :class:`~langchain_agent_auth.demo._runner.Demo`).

Example:
    >>> transcript = Transcript()
    >>> transcript.state = {"run": "r1"}
    >>> transcript._cfg("alice")
    {'configurable': {'thread_id': 'demo-r1-alice'}}
"""

from __future__ import annotations

import json
from typing import Any

from langchain_agent_auth.demo._support import args_text, short

__all__ = ["Transcript"]


class Transcript:
    """Printing the conversation; needs ``console``, ``agent``, ``state`` and the bookkeeping
    sets the demo keeps (``_printed``, ``_seen_interrupts``, ``_waits``, ``_context``)."""

    console: Any
    agent: Any
    state: dict[str, Any]
    _printed: set[str]
    _seen_interrupts: set[str]
    _waits: dict[str, dict[str, Any]]
    _context: dict[str, Any]

    def _report(self, pillar: str, text: str, facts: dict[str, Any] | None = None) -> None:
        self.console.label(pillar, text)
        for key, value in (facts or {}).items():
            current = self.state.setdefault("facts", {}).get(key)
            self._fact(key, {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value)

    def _cfg(self, user: str) -> dict[str, Any]:
        """The run config of ``user``'s thread."""
        return {"configurable": {"thread_id": f"demo-{self.state['run']}-{user}"}}

    def _show(self, message: Any) -> None:
        mid = getattr(message, "id", None)
        if mid is not None:
            if mid in self._printed:
                return
            self._printed.add(mid)
        kind = getattr(message, "type", "")
        if kind == "ai":
            text = message.content if isinstance(message.content, str) else short(message.content)
            if text.strip():
                self.console.say("assistant", text.strip())
            for call in message.tool_calls or ():
                self.console.say("assistant", f"calls {call['name']}({args_text(dict(call.get('args') or {}))})")
        elif kind == "tool":
            content = message.content if isinstance(message.content, str) else json.dumps(message.content)
            if message.status == "error":
                self.console.say(f"tool {message.name}", f"refused: {short(content)}", kind="tool")
            else:
                self.console.say(f"tool {message.name}", short(content), kind="tool")

    def _show_new(self, cfg: dict[str, Any]) -> None:
        for message in self.agent.get_state(cfg).values.get("messages", []):
            self._show(message)

    def _mark_shown(self, cfg: dict[str, Any]) -> None:
        for message in self.agent.get_state(cfg).values.get("messages", []):
            if getattr(message, "id", None):
                self._printed.add(message.id)

    def _stream(self, value: Any, cfg: dict[str, Any]) -> None:
        from langchain_agent_auth.core.progress import is_progress

        for mode, chunk in self.agent.stream(value, cfg, context=dict(self._context),
                                             stream_mode=["updates", "custom"]):
            if mode == "custom":
                if is_progress(chunk) and chunk.get("tool_call_id"):
                    self._waits[str(chunk["tool_call_id"])] = chunk
                continue
            for node, update in chunk.items():
                if node == "__interrupt__":
                    for interrupt in update or ():
                        self._seen_interrupts.add(interrupt.id)
                    continue
                messages = update.get("messages") if isinstance(update, dict) else None
                if messages is None:
                    continue
                for message in messages if isinstance(messages, list) else [messages]:
                    self._show(message)
        self._show_new(cfg)

    def _interrupt_ids(self, cfg: dict[str, Any]) -> set[str]:
        return {i.id for i in self.agent.get_state(cfg).interrupts}

    def _tool_of(self, cfg: dict[str, Any], tool_call_id: str | None) -> str:
        for message in self.agent.get_state(cfg).values.get("messages", []):
            for call in getattr(message, "tool_calls", None) or ():
                if call.get("id") == tool_call_id:
                    return str(call["name"])
        return "a tool"
