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
sync-only store run in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, NamedTuple, Protocol, runtime_checkable

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

ABSENT = ""
"""In ``expect``: the slot does not exist, or its ``ttl`` ran out."""

TABLE = "agent_auth_cas"  # in the store's own database (SQLite, PostgreSQL)
_MAX_NAME = 512


class Slot(NamedTuple):
    """A slot's current value (``expires_at`` ``None``: never expires)."""

    state: str
    owner: str
    expires_at: float | None
    version: int


def _check(name: str, state: str, expect: Iterable[str]) -> tuple[str, ...]:
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise ValueError(f"a slot name is a non-empty string of at most {_MAX_NAME} characters")
    if not isinstance(state, str) or not state:
        raise ValueError("a slot state is a non-empty string")
    wanted = (expect,) if isinstance(expect, str) else tuple(expect)
    if not wanted or not all(isinstance(e, str) for e in wanted):
        raise ValueError("expect lists the states (strings; ABSENT for none) the slot may be in")
    return wanted


def _expiry(now: float, ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError("ttl must be positive (or None: never expires)")
    return now + ttl


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


class _ThreadedAsync:
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


# --------------------------------------------------------------------------- in memory

_MEMORY_LOCK = threading.Lock()
_MEMORY: weakref.WeakKeyDictionary[Any, dict[str, Slot]] = weakref.WeakKeyDictionary()


class MemoryCAS(_ThreadedAsync):
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

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool:
        wanted = _check(name, state, expect)
        now = self._clock()
        with _MEMORY_LOCK:
            current = self._live(name, now)
            if (current.state if current is not None else ABSENT) not in wanted:
                return False
            old = self._slots.get(name)
            self._slots[name] = Slot(state, owner, _expiry(now, ttl), (old.version if old else 0) + 1)
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


# --------------------------------------------------------------------------- SQL

# Statements for SQLite ("?" placeholders); PostgreSQL's are the same with "%s". The
# ``{states}`` mark becomes one placeholder per expected state.
_SQLITE = {
    "create": ("CREATE TABLE IF NOT EXISTS agent_auth_cas (name TEXT PRIMARY KEY, state TEXT NOT NULL, "
               "owner TEXT NOT NULL, expires_at DOUBLE PRECISION, version BIGINT NOT NULL)"),
    # The slot is absent (insert), expired, or in one of the expected states: one statement.
    "upsert": ("INSERT INTO agent_auth_cas (name, state, owner, expires_at, version) VALUES (?, ?, ?, ?, 1) "
               "ON CONFLICT (name) DO UPDATE SET state = excluded.state, owner = excluded.owner, "
               "expires_at = excluded.expires_at, version = agent_auth_cas.version + 1 "
               "WHERE NOT (agent_auth_cas.expires_at IS NULL OR agent_auth_cas.expires_at > ?) "
               "OR agent_auth_cas.state IN ({states}) RETURNING version"),
    # ABSENT not expected: only a live slot in an expected state changes.
    "update": ("UPDATE agent_auth_cas SET state = ?, owner = ?, expires_at = ?, version = version + 1 "
               "WHERE name = ? AND (agent_auth_cas.expires_at IS NULL OR agent_auth_cas.expires_at > ?) "
               "AND state IN ({states}) RETURNING version"),
    "read": ("SELECT state, owner, expires_at, version FROM agent_auth_cas WHERE name = ? "
             "AND (agent_auth_cas.expires_at IS NULL OR agent_auth_cas.expires_at > ?)"),
    "release": "DELETE FROM agent_auth_cas WHERE name = ? AND owner = ? RETURNING name",
    "purge": "DELETE FROM agent_auth_cas WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING name",
}
_PG = {k: v.replace("?", "%s") for k, v in _SQLITE.items()}


def _swap_statement(sql: dict[str, str], param: str, name: str, state: str, wanted: tuple[str, ...],
                    owner: str, expires: float | None, now: float) -> tuple[str, tuple[Any, ...]]:
    states = [s for s in wanted if s != ABSENT] or [ABSENT]  # no stored slot has the state ""
    marks = ", ".join([param] * len(states))
    if ABSENT in wanted:
        return sql["upsert"].format(states=marks), (name, state, owner, expires, now, *states)
    return sql["update"].format(states=marks), (state, owner, expires, name, now, *states)



class SqliteCAS(_ThreadedAsync):
    """Slots in a table of the ``SqliteStore``'s own database: one conditional statement per
    swap, so processes sharing the file agree (SQLite serialises writers).

    Example:
        >>> import sqlite3
        >>> from langgraph.store.sqlite import SqliteStore
        >>> store = SqliteStore(sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))
        >>> cas = SqliteCAS(store)
        >>> [cas.swap("k", "lease:" + w, expect=["", "lease:" + w], ttl=5) for w in ("w1", "w2", "w1")]
        [True, False, True]
    """

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._conn: sqlite3.Connection = store.conn
        self._lock: Any = getattr(store, "lock", None) or threading.Lock()
        self._clock = clock
        self._ready = False

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            if not self._ready:
                self._conn.execute(_SQLITE["create"])
                self._ready = True
            rows = self._conn.execute(sql, params).fetchall()
            if self._conn.in_transaction:
                self._conn.commit()
            return rows

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool:
        wanted = _check(name, state, expect)
        now = self._clock()
        sql, params = _swap_statement(_SQLITE, "?", name, state, wanted, owner, _expiry(now, ttl), now)
        return bool(self._run(sql, params))

    def read(self, name: str) -> Slot | None:
        rows = self._run(_SQLITE["read"], (name, self._clock()))
        return Slot(*rows[0]) if rows else None

    def release(self, name: str, owner: str) -> bool:
        return bool(self._run(_SQLITE["release"], (name, owner)))

    def purge(self, before: float) -> int:
        return len(self._run(_SQLITE["purge"], (before,)))


class AsyncSqliteCAS(SqliteCAS):
    """:class:`SqliteCAS` for ``AsyncSqliteStore`` (aiosqlite): the async methods await the
    store's connection; the sync ones are for worker threads only."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._aconn = store.conn
        self._alock: asyncio.Lock = store.lock
        self._clock = clock
        self._ready = False
        self._loop = getattr(store, "_loop", None)

    async def _arun(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._alock:
            if not self._ready:
                await self._aconn.execute(_SQLITE["create"])
                self._ready = True
            cur = await self._aconn.execute(sql, params)
            rows = list(await cur.fetchall())
            await self._aconn.commit()
            return rows

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return _on_loop(self._loop, self._arun(sql, params))

    async def aswap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
                    ttl: float | None = None) -> bool:
        wanted = _check(name, state, expect)
        now = self._clock()
        sql, params = _swap_statement(_SQLITE, "?", name, state, wanted, owner, _expiry(now, ttl), now)
        return bool(await self._arun(sql, params))

    async def aread(self, name: str) -> Slot | None:
        rows = await self._arun(_SQLITE["read"], (name, self._clock()))
        return Slot(*rows[0]) if rows else None

    async def arelease(self, name: str, owner: str) -> bool:
        return bool(await self._arun(_SQLITE["release"], (name, owner)))

    async def apurge(self, before: float) -> int:
        return len(await self._arun(_SQLITE["purge"], (before,)))


def _on_loop(loop: Any, coro: Any) -> Any:
    """Run ``coro`` on the async store's loop from another thread (never from that loop)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or running is loop:
        coro.close()
        raise ConfigurationError("this store is async: use the a-prefixed methods (aswap, aread...) on its "
                                 "event loop, or call the sync ones from a worker thread")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


class PostgresCAS(_ThreadedAsync):
    """Slots in a table of the ``PostgresStore``'s database: one conditional ``INSERT ... ON
    CONFLICT DO UPDATE ... WHERE ... RETURNING`` in its own transaction per swap. PostgreSQL
    re-checks the ``WHERE`` on the locked, newest row, so the swap is strict across
    connections, processes and machines. Works with a connection (autocommit, as
    ``PostgresStore`` needs) or a pool.

    Example::

        with PostgresStore.from_conn_string(dsn) as store:
            cas = PostgresCAS(store)
            cas.swap("approval|abc.1|run", "running")
    """

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._ready = False

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self._store.conn
        if _is_pool(conn):
            with conn.connection() as c:
                yield c
        else:  # a connection shared with the store: one user at a time, as the store does
            with getattr(self._store, "lock", None) or nullcontext():
                yield conn

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            if not self._ready:
                _pg_setup(conn)
                self._ready = True
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(sql, params)
                return [_row(r) for r in cur.fetchall()]

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool:
        wanted = _check(name, state, expect)
        now = self._clock()
        sql, params = _swap_statement(_PG, "%s", name, state, wanted, owner, _expiry(now, ttl), now)
        return bool(self._run(sql, params))

    def read(self, name: str) -> Slot | None:
        rows = self._run(_PG["read"], (name, self._clock()))
        return Slot(*rows[0]) if rows else None

    def release(self, name: str, owner: str) -> bool:
        return bool(self._run(_PG["release"], (name, owner)))

    def purge(self, before: float) -> int:
        return len(self._run(_PG["purge"], (before,)))


def _is_pool(conn: Any) -> bool:
    return hasattr(conn, "connection") and not hasattr(conn, "cursor")


def _row(r: Any) -> tuple[Any, ...]:
    return tuple(r.values()) if isinstance(r, dict) else tuple(r)


# Processes creating the table at the same moment collide in PostgreSQL's catalog (the table
# and its row type): an advisory lock held for the creating transaction makes them take turns.
_PG_SETUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('agent_auth_cas'))"
_PG_CREATED = ("UniqueViolation", "DuplicateTable", "DuplicateObject")


def _pg_setup(conn: Any) -> None:
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(_PG_SETUP_LOCK)
            cur.execute(_PG["create"])
    except Exception as exc:
        if type(exc).__name__ not in _PG_CREATED:  # another creator won: the table exists
            raise


async def _apg_setup(conn: Any) -> None:
    try:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute(_PG_SETUP_LOCK)
            await cur.execute(_PG["create"])
    except Exception as exc:
        if type(exc).__name__ not in _PG_CREATED:
            raise


class AsyncPostgresCAS(PostgresCAS):
    """:class:`PostgresCAS` for ``AsyncPostgresStore`` (psycopg's async connection or pool);
    the sync methods are for worker threads only."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(store, clock=clock)
        self._loop = getattr(store, "_loop", None)

    @asynccontextmanager
    async def _aconnection(self) -> AsyncIterator[Any]:
        conn = self._store.conn
        if _is_pool(conn):
            async with conn.connection() as c:
                yield c
        else:
            async with self._store.lock:
                yield conn

    async def _arun(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._aconnection() as conn:
            if not self._ready:
                await _apg_setup(conn)
                self._ready = True
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute(sql, params)
                return [_row(r) for r in await cur.fetchall()]

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return _on_loop(self._loop, self._arun(sql, params))

    async def aswap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
                    ttl: float | None = None) -> bool:
        wanted = _check(name, state, expect)
        now = self._clock()
        sql, params = _swap_statement(_PG, "%s", name, state, wanted, owner, _expiry(now, ttl), now)
        return bool(await self._arun(sql, params))

    async def aread(self, name: str) -> Slot | None:
        rows = await self._arun(_PG["read"], (name, self._clock()))
        return Slot(*rows[0]) if rows else None

    async def arelease(self, name: str, owner: str) -> bool:
        return bool(await self._arun(_PG["release"], (name, owner)))

    async def apurge(self, before: float) -> int:
        return len(await self._arun(_PG["purge"], (before,)))


# --------------------------------------------------------------------------- any other store

BEST_EFFORT_NS = ("agent_auth", "cas")


class BestEffortCAS(_ThreadedAsync):
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

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool:
        wanted = _check(name, state, expect)
        now = self._clock()
        current = self.read(name)
        if (current.state if current is not None else ABSENT) not in wanted:
            return False
        import secrets

        nonce = secrets.token_hex(8)
        value = {"state": state, "owner": owner, "expires_at": _expiry(now, ttl),
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
