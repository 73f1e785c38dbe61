"""The graph of the exactly-once tests, and a worker process that delivers one answer to it
(through a :class:`~tests.support.gate.GateStore`, so every delivery reads the pending record
before any acts)."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import sys
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from langchain_agent_auth.approval import ApprovalGuard, InAppApprover
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.guards import guarded_tool_node
from tests.approval.helpers import ALICE, State
from tests.support.gate import GateStore

APPROVALS = ("agent_auth", "approvals")
CALL = AIMessage("", tool_calls=[{"name": "pay", "args": {"amount": 250, "to": "Bob"}, "id": "c1",
                                  "type": "tool_call"}])


def counter(path: pathlib.Path) -> Any:
    """The guarded tool: every run appends one line to ``path`` (shared by all processes)."""

    @tool
    def pay(amount: int, to: str) -> str:
        """Pay someone."""
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")
        return f"paid {amount} to {to}"

    return pay


def runs(path: pathlib.Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def build(store: BaseStore, checkpointer: Any, keyring: Keyring, count_file: pathlib.Path,
          on_refusal: str = "message") -> Any:
    """START -> tools -> END, the tool call given as input; the pay tool needs approval."""
    guard = ApprovalGuard(InAppApprover(keyring=keyring), on_refusal=on_refusal)  # type: ignore[arg-type]
    return (StateGraph(State).add_node("tools", guarded_tool_node([counter(count_file)], guard))
            .add_edge(START, "tools").add_edge("tools", END)
            .compile(checkpointer=checkpointer, store=store))


def sqlite_conn(path: pathlib.Path) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)


def main() -> None:
    """Worker: deliver the resume value (JSON, argv) once, print the outcome."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore
    from langgraph.types import Command

    folder, parties, resume = pathlib.Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    store = GateStore(SqliteStore(sqlite_conn(folder / "store.db")), parties, mode="files", rounds=2,
                      folder=folder)
    saver = SqliteSaver(sqlite_conn(folder / "checkpoints.db"))
    graph = build(store, saver, Keyring.from_file(folder / "keys.json", create=False), folder / "runs.txt")
    try:
        out = graph.invoke(Command(resume=resume), {"configurable": {"thread_id": "t1"}}, context={"user": ALICE})
        last = [m for m in out.get("messages", []) if m.type == "tool"][-1:]
        print("OUTCOME ok " + (str(last[0].content) if last else ""), flush=True)
    except Exception as exc:
        print(f"OUTCOME {type(exc).__name__} {getattr(exc, 'error', '')}", flush=True)


if __name__ == "__main__":
    main()
