"""Compare-and-set on a LangGraph store: the one primitive behind every exactly-once step.

A transition that guards a side effect (an approval consumed, a connect flow completed, a
resumer's claim on a pending item, a refresh lease) must be decided by *one* atomic write,
not a read followed by a plain ``put``: two deliveries of the same answer (threads, asyncio
tasks, processes) would both see the old state and both act. ``BaseStore`` has no
conditional write, so this module keeps small *slots* beside the store's data::

    name -> (state, owner, expires_at, version)

and changes one only when its current state is what the caller expects::

    cas = compare_and_set(store)
    if cas.swap("approval|abc.1|run", "running"):      # expect: absent (or expired)
        run_the_tool()                                  # exactly one caller gets here
    else:
        ...                                             # "already handled"

``expect`` lists the states the slot may be in (:data:`ABSENT` for "no slot, or its
``ttl`` ran out"); a slot with a ``ttl`` is a lease, one without stays until deleted.

Implementations, chosen from the store's type by :func:`compare_and_set`:

* ``InMemoryStore`` (and LangGraph server's in-memory store): a process-wide lock; strict
  within the process, which is all such a store can be shared by.
* ``SqliteStore`` / ``AsyncSqliteStore``: one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
  ... RETURNING`` (or ``UPDATE ... WHERE ... RETURNING``) statement on a table in the store's
  own database. SQLite serialises writers across processes: strict.
* ``PostgresStore`` / ``AsyncPostgresStore``: the same single conditional statement in its
  own transaction. PostgreSQL locks the conflicting row and re-checks the ``WHERE`` on its
  newest version (read committed), so exactly one of any number of concurrent callers,
  from any number of processes and machines, wins: strict.
* a store that implements :class:`CompareAndSet` itself (Redis, a managed database...) is
  used as is.
* any other store: :class:`BestEffortCAS` (write, read back) with a warning, or
  :class:`~langchain_agent_auth.errors.ConfigurationError` with ``strict=True``.

Each has the sync methods and their ``a``-prefixed async twins; the async methods of a
sync-only store run in a worker thread, so the event loop never blocks. The SQL backends live
in :mod:`langchain_agent_auth.core._cas_sql` (statements written once for both drivers), the
slot model in :mod:`langchain_agent_auth.core._cas_slots`; this module is the public surface.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from langchain_agent_auth.core._cas_slots import ABSENT, CheckThenWrite, Slot
from langchain_agent_auth.core._cas_sql import AsyncPostgresCAS, AsyncSqliteCAS, PostgresCAS, SqliteCAS
from langchain_agent_auth.core.errors import ConfigurationError

__all__ = [
    "ABSENT",
    "AsyncPostgresCAS",
    "AsyncSqliteCAS",
    "BestEffortCAS",
    "CompareAndSet",
    "MemoryCAS",
    "PostgresCAS",
    "Slot",
    "SqliteCAS",
    "compare_and_set",
]

log = logging.getLogger("langchain_agent_auth.store_cas")


@runtime_checkable
class CompareAndSet(Protocol):
    """Atomic compare-and-set of small named slots, sync and async.

    ``swap(name, state, expect=(ABSENT,), owner="", ttl=None)`` sets the slot to ``state``
    (held by ``owner``, for ``ttl`` seconds or for good) if and only if its current state is
    one of ``expect``; it returns whether it did. ``read`` returns the live slot (or
    ``None``), ``release`` deletes the slot if ``owner`` holds it, ``purge`` deletes slots
    that expired before ``before``.
    """

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool: ...

    async def aswap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
                    ttl: float | None = None) -> bool: ...

    def read(self, name: str) -> Slot | None: ...

    async def aread(self, name: str) -> Slot | None: ...

    def release(self, name: str, owner: str) -> bool: ...

    async def arelease(self, name: str, owner: str) -> bool: ...

    def purge(self, before: float) -> int: ...

    async def apurge(self, before: float) -> int: ...


# --------------------------------------------------------------------------- in memory

_MEMORY_LOCK = threading.Lock()
_MEMORY: weakref.WeakKeyDictionary[Any, dict[str, Slot]] = weakref.WeakKeyDictionary()


class MemoryCAS(CheckThenWrite):
    """Slots for an ``InMemoryStore``, guarded by one process-wide lock (strict within the
    process; an in-memory store is not shared with other processes).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> cas = MemoryCAS(InMemoryStore())
        >>> cas.swap("call-1|run", "running"), cas.swap("call-1|run", "running")
        (True, False)
        >>> cas.swap("call-1|run", "done", expect=["running"]), cas.read("call-1|run").state
        (True, 'done')
    """

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        with _MEMORY_LOCK:
            self._slots = _MEMORY.setdefault(store, {})

    def _live(self, name: str, now: float) -> Slot | None:
        slot = self._slots.get(name)
        if slot is not None and slot.expires_at is not None and slot.expires_at <= now:
            return None
        return slot

    def _locked(self) -> AbstractContextManager[Any]:
        return _MEMORY_LOCK

    def _current(self, name: str, now: float) -> Slot | None:
        return self._live(name, now)

    def _write(self, name: str, state: str, owner: str, expires_at: float | None, current: Slot | None) -> bool:
        old = self._slots.get(name)  # an expired slot's version goes on counting
        self._slots[name] = Slot(state, owner, expires_at, (old.version if old else 0) + 1)
        return True

    def read(self, name: str) -> Slot | None:
        with _MEMORY_LOCK:
            return self._live(name, self._clock())

    def release(self, name: str, owner: str) -> bool:
        with _MEMORY_LOCK:
            slot = self._slots.get(name)
            if slot is None or slot.owner != owner:
                return False
            del self._slots[name]
            return True

    def purge(self, before: float) -> int:
        with _MEMORY_LOCK:
            dead = [k for k, s in self._slots.items() if s.expires_at is not None and s.expires_at <= before]
            for k in dead:
                del self._slots[k]
            return len(dead)


# --------------------------------------------------------------------------- any other store

BEST_EFFORT_NS = ("agent_auth", "cas")


class BestEffortCAS(CheckThenWrite):
    """Slots as store items for a store with no conditional write: write, wait ``settle``
    seconds, read back; the last writer wins. Two callers can both win when one writes more
    than ``settle`` after the other read. Use a store this module knows (SQLite, PostgreSQL)
    or one implementing ``swap``/``aswap`` where exactly-once matters.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> cas = BestEffortCAS(InMemoryStore(), settle=0)
        >>> cas.swap("k", "running"), cas.swap("k", "running")
        (True, False)
    """

    def __init__(self, store: Any, *, settle: float = 0.02, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.settle = settle
        self._clock = clock

    def read(self, name: str) -> Slot | None:
        item = self._store.get(BEST_EFFORT_NS, name)
        if item is None or not isinstance(item.value, dict):
            return None
        v = item.value
        slot = Slot(str(v.get("state") or ""), str(v.get("owner") or ""), v.get("expires_at"),
                    int(v.get("version") or 0))
        if not slot.state or (slot.expires_at is not None and float(slot.expires_at) <= self._clock()):
            return None
        return slot

    def _current(self, name: str, now: float) -> Slot | None:
        return self.read(name)

    def _write(self, name: str, state: str, owner: str, expires_at: float | None, current: Slot | None) -> bool:
        nonce = secrets.token_hex(8)
        value = {"state": state, "owner": owner, "expires_at": expires_at,
                 "version": (current.version if current else 0) + 1, "nonce": nonce}
        self._store.put(BEST_EFFORT_NS, name, value, index=False)
        if self.settle > 0:
            time.sleep(self.settle)
        item = self._store.get(BEST_EFFORT_NS, name)
        return item is not None and isinstance(item.value, dict) and item.value.get("nonce") == nonce

    def release(self, name: str, owner: str) -> bool:
        current = self.read(name)
        if current is None or current.owner != owner:
            return False
        self._store.delete(BEST_EFFORT_NS, name)
        return True

    def purge(self, before: float) -> int:
        return 0  # items expire by themselves (read treats them as absent)


# --------------------------------------------------------------------------- choosing

_WARNED: set[str] = set()
# One instance per store (with the default clock): a SQL table is created once, not per swap.
_CACHE: weakref.WeakKeyDictionary[Any, CompareAndSet] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def compare_and_set(store: Any, *, strict: bool = False, clock: Callable[[], float] = time.time) -> CompareAndSet:
    """The compare-and-set for ``store``, chosen from its type (see the module docstring).

    ``strict=True`` refuses a store with no atomic implementation instead of falling back to
    :class:`BestEffortCAS`.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> store = InMemoryStore()
        >>> cas = compare_and_set(store)
        >>> type(cas).__name__, cas.swap("once", "done"), compare_and_set(store).swap("once", "done")
        ('MemoryCAS', True, False)
    """
    if store is None:
        raise ConfigurationError("compare-and-set needs a LangGraph store")
    if isinstance(store, CompareAndSet):
        return store
    if clock is time.time:
        try:
            with _CACHE_LOCK:
                cached = _CACHE.get(store)
        except TypeError:  # a store that cannot be weakly referenced: no cache
            cached = None
        if cached is not None:
            return cached
    cas = _choose(store, strict, clock)
    if clock is time.time and not isinstance(cas, BestEffortCAS):  # strict= is checked every time
        try:
            with _CACHE_LOCK:
                _CACHE.setdefault(store, cas)
        except TypeError:
            pass
    return cas


def _choose(store: Any, strict: bool, clock: Callable[[], float]) -> CompareAndSet:
    kind = _kind(store)
    inner = getattr(store, "_store", None)  # a wrapper (LangGraph server's BatchedStore) of a known store
    if kind is None and inner is not None and _kind(inner) is not None:
        store, kind = inner, _kind(inner)
    if kind == "memory":
        return MemoryCAS(store, clock=clock)
    if kind == "sqlite":
        return SqliteCAS(store, clock=clock)
    if kind == "asqlite":
        return AsyncSqliteCAS(store, clock=clock)
    if kind == "postgres":
        return PostgresCAS(store, clock=clock)
    if kind == "apostgres":
        return AsyncPostgresCAS(store, clock=clock)
    name = type(store).__name__
    if strict:
        raise ConfigurationError(f"{name} has no atomic compare-and-set: use InMemoryStore, SqliteStore or "
                                 f"PostgresStore, or a store implementing CompareAndSet")
    if name not in _WARNED:
        _WARNED.add(name)
        log.warning("%s has no atomic compare-and-set; exactly-once steps are best effort on it", name)
    return BestEffortCAS(store, clock=clock)


def _kind(store: Any) -> str | None:
    from langgraph.store.memory import InMemoryStore

    if isinstance(store, InMemoryStore):
        return "memory"
    module = type(store).__module__
    name = type(store).__name__
    if module.startswith("langgraph.store.sqlite"):
        if name == "SqliteStore" and isinstance(getattr(store, "conn", None), sqlite3.Connection):
            return "sqlite"
        if name == "AsyncSqliteStore":
            return "asqlite"
    if module.startswith("langgraph.store.postgres"):
        if name == "PostgresStore":
            return "postgres"
        if name == "AsyncPostgresStore":
            return "apostgres"
    return None
