"""Short leases in the store, so two workers never spend the same rotating refresh token.

A lease names what it protects (a user's connection, a pending connect flow), has an owner
(a random id per attempt) and an expiry (a few seconds: a crashed worker's lease lapses on
its own).

* :class:`CasLease` (chosen automatically for ``InMemoryStore``, ``SqliteStore`` and
  ``PostgresStore``): the store's compare-and-set (:mod:`langchain_agent_auth.store_cas`),
  one conditional statement on a small table in the store's own database: exactly one
  worker wins, across processes on SQLite and PostgreSQL. :class:`SqliteLease` is the same
  for an explicit ``SqliteStore``.
* :class:`StoreLease` (any other ``BaseStore``): ``BaseStore`` has no conditional write, so
  this writes the lease, waits ``settle`` seconds and reads it back: the last writer wins
  and everyone else backs off. Two workers can both win only if one writes more than
  ``settle`` after the other read: rare, not impossible. The vault also survives that case
  (a refresh answered ``invalid_grant`` is checked against a newer stored record before
  the connection is marked as needing reauthorization), unless the provider revokes the
  whole grant on refresh-token reuse. Give a :class:`Lease` of your own (Redis ``SET NX
  PX``, a Postgres advisory lock) when that matters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from langgraph.store.base import BaseStore
from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_agent_auth.core.effects import Blocking, Flow, Sleep, store_get, store_put
from langchain_agent_auth.core.store_cas import ABSENT, BestEffortCAS, CompareAndSet, SqliteCAS, compare_and_set

__all__ = ["LEASE_NS", "CasLease", "Lease", "SqliteLease", "StoreLease", "default_lease"]

LEASE_NS = ("agent_auth", "vault", "leases")


class _StoredLease(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    owner: str
    expires_at: float


def _holder(item: Any) -> _StoredLease | None:
    """The lease in a store item; a damaged one holds nothing (the next worker takes it over)."""
    if item is None:
        return None
    try:
        return _StoredLease.model_validate(item.value)
    except ValidationError:
        return None


@runtime_checkable
class Lease(Protocol):
    """Mutual exclusion between workers sharing a store. Both methods are vault operations
    (generators driven by the vault), so they work from sync and async code alike."""

    def acquire(self, name: str, owner: str, ttl: float) -> Flow[bool]:
        """Take the lease ``name`` for ``ttl`` seconds; ``False`` if someone else holds it."""
        ...

    def release(self, name: str, owner: str) -> Flow[None]:
        """Give the lease back if ``owner`` still holds it."""
        ...


class StoreLease:
    """A best-effort lease over any ``BaseStore`` (see the module docstring for the limits).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.effects import run
        >>> store, lease = InMemoryStore(), StoreLease(settle=0)
        >>> run(lease.acquire("alice|calendar", "w1", 5), store=store)
        True
        >>> run(lease.acquire("alice|calendar", "w2", 5), store=store)
        False
    """

    def __init__(self, *, settle: float = 0.02, clock: Callable[[], float] = time.time) -> None:
        self.settle = settle
        self._clock = clock

    def acquire(self, name: str, owner: str, ttl: float) -> Flow[bool]:
        now = self._clock()
        held = _holder((yield from store_get(LEASE_NS, name)))
        if held is not None and held.owner != owner and held.expires_at > now:
            return False
        yield from store_put(LEASE_NS, name, {"owner": owner, "expires_at": now + ttl})
        if self.settle > 0:
            yield Sleep(self.settle)
        held = _holder((yield from store_get(LEASE_NS, name)))
        return held is not None and held.owner == owner

    def release(self, name: str, owner: str) -> Flow[None]:
        held = _holder((yield from store_get(LEASE_NS, name)))
        if held is not None and held.owner == owner:
            yield from store_put(LEASE_NS, name, None)


class CasLease:
    """A lease on the store's compare-and-set (:mod:`langchain_agent_auth.store_cas`): one
    atomic statement per acquire, strict on SQLite and PostgreSQL (across processes) and on
    ``InMemoryStore`` (within the process).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.effects import run
        >>> store = InMemoryStore()
        >>> lease = CasLease(compare_and_set(store))
        >>> [run(lease.acquire("k", who, 5), store=store) for who in ("w1", "w2", "w1")]
        [True, False, True]
    """

    def __init__(self, cas: CompareAndSet) -> None:
        self.cas = cas

    def acquire(self, name: str, owner: str, ttl: float) -> Flow[bool]:
        held = f"lease:{owner}"
        # The same owner may renew its own lease; anyone may take a free or lapsed one.
        return (yield Blocking(lambda: self.cas.swap(f"vault|{name}", held, expect=(ABSENT, held), owner=owner,
                                                     ttl=ttl)))

    def release(self, name: str, owner: str) -> Flow[None]:
        yield Blocking(lambda: self.cas.release(f"vault|{name}", owner))


class SqliteLease(CasLease):
    """:class:`CasLease` on the SQLite connection of a ``SqliteStore``.

    Example:
        >>> import sqlite3
        >>> from langgraph.store.sqlite import SqliteStore
        >>> from langchain_agent_auth.core.effects import run
        >>> store = SqliteStore(sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))
        >>> lease = SqliteLease(store)
        >>> [run(lease.acquire("k", who, 5), store=store) for who in ("w1", "w2", "w1")]
        [True, False, True]
    """

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(SqliteCAS(store, clock=clock))


def default_lease(store: BaseStore, clock: Callable[[], float] = time.time) -> Lease:
    """:class:`CasLease` for a store with an atomic compare-and-set (InMemoryStore,
    SqliteStore, PostgresStore and their async twins), :class:`StoreLease` otherwise."""
    cas = compare_and_set(store, clock=clock)
    if isinstance(cas, BestEffortCAS):
        return StoreLease(clock=clock)
    return CasLease(cas)
