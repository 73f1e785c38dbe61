"""The graph of the exactly-once tests, and a worker process that delivers one answer to it.

``GateStore`` wraps the real store and holds the first ``parties`` reads of approval records
until every delivery has made one (a barrier: threads, asyncio tasks, or processes through
files), so all deliveries see the same pending record before any of them acts. That is the
race, made certain instead of likely, without any timing assumption.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, GetOp, Op

from langchain_agent_auth.approval import ApprovalGuard, InAppApprover
from langchain_agent_auth.crypto import Keyring
from langchain_agent_auth.guards import guarded_tool_node
from tests.approval.helpers import ALICE, State

APPROVALS = ("agent_auth", "approvals")
CALL = AIMessage("", tool_calls=[{"name": "pay", "args": {"amount": 250, "to": "Bob"}, "id": "c1",
                                  "type": "tool_call"}])


class GateStore(BaseStore):
    """A store that makes the first ``parties`` approval reads meet before going on."""

    def __init__(self, inner: BaseStore, parties: int, *, mode: str = "thread",
                 folder: pathlib.Path | None = None) -> None:
        self._store = inner
        self.parties = parties
        self.mode = mode
        self.folder = folder
        self._lock = threading.Lock()
        self._count = 0
        self._barrier = threading.Barrier(parties) if mode == "thread" else None
        self._abarrier: asyncio.Barrier | None = None

    def _gated(self, ops: Iterable[Op]) -> bool:
        if not any(isinstance(op, GetOp) and op.namespace == APPROVALS for op in ops):
            return False
        with self._lock:
            self._count += 1
            return self._count <= self.parties

    def _files(self) -> None:
        assert self.folder is not None
        (self.folder / f"at-{os.getpid()}").touch()
        for _ in range(3000):  # all processes arrive within seconds; never wait for ever
            if len(list(self.folder.glob("at-*"))) >= self.parties:
                return
            time.sleep(0.01)

    def batch(self, ops: Iterable[Op]) -> list[Any]:
        ops = list(ops)
        if self._gated(ops):
            if self.mode == "thread":
                assert self._barrier is not None
                self._barrier.wait(timeout=60)
            elif self.mode == "files":
                self._files()
        return self._store.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Any]:
        ops = list(ops)
        if self._gated(ops):
            if self._abarrier is None:
                self._abarrier = asyncio.Barrier(self.parties)
            await asyncio.wait_for(self._abarrier.wait(), 60)
        return await asyncio.to_thread(self._store.batch, ops)


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
          on_denied: str = "message") -> Any:
    """START -> tools -> END, the tool call given as input; the pay tool needs approval."""
    guard = ApprovalGuard(InAppApprover(keyring=keyring), on_denied=on_denied)  # type: ignore[arg-type]
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
    store = GateStore(SqliteStore(sqlite_conn(folder / "store.db")), parties, mode="files", folder=folder)
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
