"""A scripted chat model that behaves like a small assistant, so the demo needs no API key.

It reads what a real model would read and nothing else:

* the user's name from the system note :class:`~langchain_agent_auth.identity.IdentityMiddleware`
  adds (``describe_user=True``) from the *verified* token: with no note it does not know
  who it talks to;
* which tool to call from keywords in the user's last message (calendar, pay/transfer/send,
  documents/search), with arguments parsed from it;
* tool results and refusals (error ``ToolMessage``s from the guards), summarized honestly.

Example:
    >>> from langchain_core.messages import HumanMessage, SystemMessage
    >>> model = ScriptedAssistant()
    >>> note = SystemMessage("Be brief.\\n\\nYou are acting for the signed-in user Alice Example <alice@example.com>.")
    >>> model.invoke([note, HumanMessage("Hi there!")]).content.split("!")[0]
    'Hello Alice Example'
    >>> model.invoke([HumanMessage("Please pay Bob 250 EUR for the concert tickets.")]).tool_calls[0]["args"]
    {'amount': 250.0, 'to': 'Bob', 'reference': 'concert tickets'}
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = [
    "CALENDAR_TOOL",
    "SEARCH_TOOL",
    "TRANSFER_TOOL",
    "ScriptedAssistant",
    "format_eur",
    "parse_transfer",
    "signed_in_user",
]

CALENDAR_TOOL = "list_calendar_events"
TRANSFER_TOOL = "transfer_money"
SEARCH_TOOL = "search_documents"

_NOTE = re.compile(r"You are acting for the signed-in user (?P<name>.+?)(?: <(?P<email>[^<>\s]+)>)?\.\s*$", re.M)
_AMOUNT = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?![\w])")
_TO = re.compile(r"\b(?:to|pay)\s+([A-Z][\w'-]*)")
_FOR = re.compile(r"\bfor\s+(?:the\s+|my\s+|our\s+)?([^.!?]{1,60})")


def signed_in_user(messages: Sequence[BaseMessage]) -> tuple[str | None, str | None]:
    """(name, email) from the identity middleware's system note, or (None, None).

    Example:
        >>> signed_in_user([SystemMessage("You are acting for the signed-in user Bob Example <bob@example.com>.")])
        ('Bob Example', 'bob@example.com')
    """
    for message in messages:
        if isinstance(message, SystemMessage) and isinstance(message.content, str):
            found = _NOTE.search(message.content)
            if found:
                return found.group("name"), found.group("email")
    return None, None


def format_eur(amount: Any) -> str:
    """``1234.5`` -> ``'1,234.50 EUR'``.

    Example:
        >>> format_eur(5000)
        '5,000.00 EUR'
    """
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return f"{amount} EUR"
    return f"{value:,.2f} EUR"


def parse_transfer(text: str) -> dict[str, Any] | None:
    """Amount, recipient and reference from a request like "Pay Bob 250 EUR for lunch".

    Example:
        >>> parse_transfer("Also send 5,000 EUR to Mallory.")
        {'amount': 5000.0, 'to': 'Mallory'}
        >>> parse_transfer("send money") is None
        True
    """
    amount = _AMOUNT.search(text)
    to = _TO.search(text)
    if amount is None or to is None:
        return None
    value = float(amount.group(1).replace(",", "") + (f".{amount.group(2)}" if amount.group(2) else ""))
    args: dict[str, Any] = {"amount": value, "to": to.group(1)}
    reference = _FOR.search(text)
    if reference:
        args["reference"] = reference.group(1).strip()
    return args


def _intent(text: str) -> str:
    lowered = text.lower()
    if any(w in lowered for w in ("calendar", "schedule", "meeting", "agenda", "events")):
        return "calendar"
    if any(w in lowered for w in ("pay ", "transfer", "send ", "wire ")):
        return "transfer"
    if any(w in lowered for w in ("document", "docs", "search", "find", "files")):
        return "search"
    if any(w in lowered for w in ("hello", "hi ", "hi!", "hey", "good morning", "who am i")) or lowered in ("hi",):
        return "greet"
    return "unknown"


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                                      "type": "tool_call"}])


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _first_sentence(text: str) -> str:
    text = " ".join(str(text).split())
    head = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return head.rstrip(".")


class ScriptedAssistant(BaseChatModel):
    """A deterministic assistant for the demo (see the module docstring).

    ``bind_tools`` only records the tool names, so it works inside ``create_agent``; it
    never calls a tool that was not bound.
    """

    tool_names: tuple[str, ...] = ()

    @property
    def _llm_type(self) -> str:
        return "agent-auth-demo-scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedAssistant:  # type: ignore[override]
        names = []
        for t in tools:
            name = getattr(t, "name", None) or (t.get("name") if isinstance(t, dict) else None)
            if name is None and isinstance(t, dict):
                name = (t.get("function") or {}).get("name")
            if name:
                names.append(str(name))
        return self.model_copy(update={"tool_names": tuple(names)})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])

    # -- the behaviour

    def _can(self, tool: str) -> bool:
        return not self.tool_names or tool in self.tool_names

    def reply(self, messages: Sequence[BaseMessage]) -> AIMessage:
        """The next assistant message for this conversation."""
        name, email = signed_in_user(messages)
        results: list[ToolMessage] = []
        for message in reversed(messages):
            if isinstance(message, ToolMessage):
                results.append(message)
                continue
            break
        if results:
            return AIMessage("\n".join(self._summarize(m, messages) for m in reversed(results)))
        last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        text = str(last.content) if last is not None else ""
        intent = _intent(text)
        if intent == "greet":
            if name is None:
                return AIMessage("Hello! I don't know who you are: nobody is signed in, so I can't act for you.")
            who = f" ({email})" if email else ""
            return AIMessage(
                f"Hello {name}! I'm your assistant, acting for you{who}. I can read your calendar, "
                "send bank transfers (anything over 100.00 EUR needs your approval on your device) "
                "and search the documents you're allowed to read.")
        if intent == "calendar" and self._can(CALENDAR_TOOL):
            return _call(CALENDAR_TOOL, {"days": 7})
        if intent == "transfer" and self._can(TRANSFER_TOOL):
            args = parse_transfer(text)
            if args is None:
                return AIMessage("How much should I send, and to whom? For example: \"pay Bob 250 EUR\".")
            return _call(TRANSFER_TOOL, args)
        if intent == "search" and self._can(SEARCH_TOOL):
            return _call(SEARCH_TOOL, {"query": text})
        return AIMessage("I'm the demo's scripted assistant: I can greet you, read your calendar, "
                         "send money and search documents.")

    def _args_of(self, result: ToolMessage, messages: Sequence[BaseMessage]) -> dict[str, Any]:
        for message in messages:
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    if call.get("id") == result.tool_call_id:
                        return dict(call.get("args") or {})
        return {}

    def _summarize(self, result: ToolMessage, messages: Sequence[BaseMessage]) -> str:
        args = self._args_of(result, messages)
        failed = result.status == "error"
        content = result.content if isinstance(result.content, str) else json.dumps(result.content)
        data = None if failed else _json(content)
        if result.name == TRANSFER_TOOL:
            what = f"{format_eur(args.get('amount', '?'))} to {args.get('to', 'the recipient')}"
            if failed:
                lowered = content.lower()
                if "denied" in lowered:
                    why = "you denied it on your device, so nothing was sent"
                elif "expired" in lowered:
                    why = "the request expired before you answered, so nothing was sent"
                else:
                    why = _first_sentence(content)
                return f"The transfer of {what} was not approved: {why}."
            if isinstance(data, dict) and data.get("status") == "executed":
                ref = f" (bank reference {data['id']})" if data.get("id") else ""
                return f"Done: {format_eur(data.get('amount'))} sent to {data.get('creditorName')}{ref}."
            reason = data.get("error") if isinstance(data, dict) else content
            return f"The bank did not execute the transfer of {what}: {reason}."
        if result.name == CALENDAR_TOOL:
            if failed or not isinstance(data, dict) or data.get("error"):
                why = data["error"] if isinstance(data, dict) and data.get("error") else content
                return f"I couldn't read your calendar: {_first_sentence(why)}."
            events = data.get("events") or []
            if not events:
                return "Your calendar is empty."
            lines = [f"You have {len(events)} event{'s' if len(events) != 1 else ''} coming up:"]
            for e in events:
                where = f" ({e['location']})" if e.get("location") else ""
                lines.append(f"  - {e.get('when') or e.get('start')}: {e.get('title')}{where}")
            return "\n".join(lines)
        if result.name == SEARCH_TOOL:
            if failed or not isinstance(data, dict):
                return f"I couldn't search the documents: {_first_sentence(content)}."
            docs = data.get("documents") or []
            if not docs:
                return "I found no documents you're allowed to read."
            lines = [f"I found {len(docs)} document{'s' if len(docs) != 1 else ''} you can read:"]
            lines += [f"  - {d.get('title')}: {d.get('summary')}" for d in docs]
            return "\n".join(lines)
        return _first_sentence(content) + "."
