"""Run the Python snippets of a Markdown file, in order, in one namespace.

``python -m tests.support.doc_snippets docs/approval.md`` extracts every fenced ```python
block and runs them one after another, the way a reader pastes them into one session.

A block is skipped only when the line just above it (blank lines aside) says so visibly,
with a reason::

    *Not runnable as is: needs an Okta FGA account.*

Snippets may use these placeholders for what the reader brings (nothing else is given):

* ``idp``: a running :class:`~langchain_agent_auth.LocalProvider` (CIBA interval 1 s);
  ``issuer``, ``client_id``, ``client_secret`` / ``secret``: its agent client;
* ``model``: a scripted chat model, playing the turns in ``$DOC_SCRIPT`` (JSON list: a
  string is a text answer, a list of ``[tool, args]`` pairs is one turn of tool calls);
  once the tools answered it says "done";
* ``alice`` / ``bob``: the provider's users as ``UserIdentity``; ``config``: a thread config;
* ``saver`` / ``store``: an ``InMemorySaver`` and an ``InMemoryStore``.

Exit status 0 when every block ran; 1 with the failing block's ``file:line`` and traceback.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"^\*?\s*not runnable as is:\s*(?P<reason>\S.*?)\s*\*?$", re.I)


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """The ```python blocks of ``path`` with their first line number and skip reason."""
    text = path.read_text(encoding="utf-8")
    out = []
    for match in _FENCE.finditer(text):
        before = [line.strip() for line in text[: match.start()].splitlines() if line.strip()]
        skip = _SKIP.match(before[-1]) if before else None
        out.append(Snippet(path, text[: match.start()].count("\n") + 2, match.group(1),
                           skip.group("reason") if skip else None))
    return out


def _model(script: list[Any]) -> Any:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    ids = itertools.count(1)

    def turn(step: Any) -> AIMessage:
        if isinstance(step, str):
            return AIMessage(step)
        return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"c{next(ids)}", "type": "tool_call"}
                                         for name, args in step])

    class DocModel(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None,
                      **kwargs: Any) -> ChatResult:
            if messages and isinstance(messages[-1], ToolMessage):
                return ChatResult(generations=[ChatGeneration(message=AIMessage("done"))])
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    turns: Iterator[AIMessage] = iter([turn(s) for s in script] + [AIMessage("done")] * 20)
    return DocModel(messages=turns)


def placeholders(script: list[Any]) -> tuple[dict[str, Any], Any]:
    """The placeholder names, and the provider to stop afterwards."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from langchain_agent_auth import LocalProvider, UserIdentity

    idp = LocalProvider(ciba_interval=1).start()
    names = {
        "idp": idp, "issuer": idp.issuer, "client_id": idp.client_id, "client_secret": idp.client_secret,
        "secret": idp.client_secret, "model": _model(script), "saver": InMemorySaver(), "store": InMemoryStore(),
        "config": {"configurable": {"thread_id": "t1"}},
        "alice": UserIdentity(subject="alice", issuer=idp.issuer, email="alice@example.com", name="Alice"),
        "bob": UserIdentity(subject="bob", issuer=idp.issuer, email="bob@example.com", name="Bob"),
    }
    return names, idp


def run(path: Path) -> int:
    blocks = snippets(path)
    script = json.loads(os.environ.get("DOC_SCRIPT") or "[]")
    namespace, idp = placeholders(script)
    namespace["__name__"] = "__doc__"
    try:
        for block in blocks:
            if block.skip_reason:
                print(f"SKIPPED {block.where}: {block.skip_reason}", flush=True)
                continue
            try:
                # padded so a traceback's line numbers are the Markdown file's
                exec(compile("\n" * (block.line - 1) + block.code, str(block.path), "exec"), namespace)
            except Exception:
                print(f"FAILED {block.where}", flush=True)
                traceback.print_exc(file=sys.stdout)
                return 1
            print(f"RAN {block.where}", flush=True)
        return 0
    finally:
        idp.stop()


if __name__ == "__main__":
    raise SystemExit(run(Path(sys.argv[1])))
