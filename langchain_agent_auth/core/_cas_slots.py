"""The slot model of compare-and-set (:mod:`langchain_agent_auth.core.store_cas`): a slot's value,
the argument checks every implementation shares, and async methods run in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

__all__ = ["ABSENT", "CheckThenWrite", "Slot", "ThreadedAsync", "check", "expiry"]

ABSENT = ""
"""In ``expect``: the slot does not exist, or its ``ttl`` ran out."""

_MAX_NAME = 512


class Slot(NamedTuple):
    """A slot's current value (``expires_at`` ``None``: never expires)."""

    state: str
    owner: str
    expires_at: float | None
    version: int


def check(name: str, state: str, expect: Iterable[str]) -> tuple[str, ...]:
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise ValueError(f"a slot name is a non-empty string of at most {_MAX_NAME} characters")
    if not isinstance(state, str) or not state:
        raise ValueError("a slot state is a non-empty string")
    wanted = (expect,) if isinstance(expect, str) else tuple(expect)
    if not wanted or not all(isinstance(e, str) for e in wanted):
        raise ValueError("expect lists the states (strings; ABSENT for none) the slot may be in")
    return wanted


def expiry(now: float, ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError("ttl must be positive (or None: never expires)")
    return now + ttl


class ThreadedAsync:
    """Async twins that run the sync methods in a worker thread."""

    async def aswap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
                    ttl: float | None = None) -> bool:
        wanted = expect if isinstance(expect, str) else tuple(expect)  # a generator is read once, here
        return await asyncio.to_thread(self.swap, name, state, expect=wanted,  # type: ignore[attr-defined]
                                       owner=owner, ttl=ttl)

    async def aread(self, name: str) -> Slot | None:
        return await asyncio.to_thread(self.read, name)  # type: ignore[attr-defined]

    async def arelease(self, name: str, owner: str) -> bool:
        return await asyncio.to_thread(self.release, name, owner)  # type: ignore[attr-defined]

    async def apurge(self, before: float) -> int:
        return await asyncio.to_thread(self.purge, before)  # type: ignore[attr-defined]


class CheckThenWrite(ThreadedAsync):
    """Compare-and-set as read, compare, write, under :meth:`_locked` (a lock that makes it
    atomic, or none: then it is only best effort). Subclasses read (:meth:`_current`) and
    write (:meth:`_write`)."""

    _clock: Callable[[], float]

    def _locked(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def _current(self, name: str, now: float) -> Slot | None:
        raise NotImplementedError

    def _write(self, name: str, state: str, owner: str, expires_at: float | None, current: Slot | None) -> bool:
        raise NotImplementedError

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool:
        wanted = check(name, state, expect)
        now = self._clock()
        with self._locked():
            current = self._current(name, now)
            if (current.state if current is not None else ABSENT) not in wanted:
                return False
            return self._write(name, state, owner, expiry(now, ttl), current)
