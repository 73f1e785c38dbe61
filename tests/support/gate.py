"""``GateStore``: wraps a real store and holds the answers of the first reads of one namespace
until every party has read (a barrier: threads, asyncio tasks, or processes through files),
so concurrent deliveries all see the same record before any of them acts. The race then
happens every time instead of by luck, without any timing assumption.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
from collections.abc import Iterable
from typing import Any

from langgraph.store.base import BaseStore, GetOp, Op

APPROVALS = ("agent_auth", "approvals")


class GateStore(BaseStore):
    """A store whose reads in ``namespace`` meet: the first ``rounds`` reads of every party
    (thread, task, or process with ``mode="files"``) wait until all parties made theirs."""

    def __init__(self, inner: BaseStore, parties: int, *, mode: str = "thread", rounds: int = 1,
                 folder: pathlib.Path | None = None, namespace: tuple[str, ...] = APPROVALS) -> None:
        self._store = inner
        self.namespace = namespace
        self.rounds = rounds
        self.parties = parties
        self.mode = mode
        self.folder = folder
        self._lock = threading.Lock()
        self._count = 0
        self._barrier = threading.Barrier(parties) if mode == "thread" else None
        self._abarrier: asyncio.Barrier | None = None

    def _gated(self, ops: Iterable[Op]) -> int | None:
        """The round this read belongs to (``None``: not held)."""
        if not any(isinstance(op, GetOp) and op.namespace == self.namespace for op in ops):
            return None
        with self._lock:
            self._count += 1
            if self.mode == "files":  # one party per process: its own reads are the rounds
                return self._count - 1 if self._count <= self.rounds else None
            return (self._count - 1) // self.parties if self._count <= self.parties * self.rounds else None

    def _files(self, round_: int) -> None:
        assert self.folder is not None
        (self.folder / f"at{round_}-{os.getpid()}").touch()
        for _ in range(6000):  # all processes arrive within seconds; never wait for ever
            if len(list(self.folder.glob(f"at{round_}-*"))) >= self.parties:
                return
            time.sleep(0.01)

    def batch(self, ops: Iterable[Op]) -> list[Any]:
        ops = list(ops)
        round_ = self._gated(ops)
        result = self._store.batch(ops)
        # Read first, then wait: every party holds the same answer before any goes on.
        if round_ is not None:
            if self.mode == "thread":
                assert self._barrier is not None
                self._barrier.wait(timeout=60)
            elif self.mode == "files":
                self._files(round_)
        return result

    async def abatch(self, ops: Iterable[Op]) -> list[Any]:
        ops = list(ops)
        gated = self._gated(ops) is not None
        result = await asyncio.to_thread(self._store.batch, ops)
        if gated:
            if self._abarrier is None:
                self._abarrier = asyncio.Barrier(self.parties)
            await asyncio.wait_for(self._abarrier.wait(), 60)
        return result
