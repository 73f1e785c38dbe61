"""Compare-and-set in a SQL table of the store's own database (SQLite, PostgreSQL).

Each operation is one conditional statement (see :mod:`langchain_agent_auth.core.store_cas`
for why that makes the swap strict). The statements and the sync / async methods are written
once in :class:`_SqlCAS`; a backend only says how to run one statement: ``_rows`` (blocking)
and ``_arows`` (on the event loop). A sync store runs ``_arows`` in a worker thread; an async
store runs ``_rows`` on its own loop from another thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, ClassVar

from langchain_agent_auth.core._cas_slots import ABSENT, Slot, check, expiry
from langchain_agent_auth.core.errors import ConfigurationError

__all__ = ["AsyncPostgresCAS", "AsyncSqliteCAS", "PostgresCAS", "SqliteCAS"]

TABLE = "agent_auth_cas"  # in the store's own database

Rows = list[tuple[Any, ...]]
Statement = str | tuple[str, tuple[Any, ...]]  # SQL, or SQL and its parameters

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

# Processes creating the table at the same moment collide in PostgreSQL's catalog (the table
# and its row type): an advisory lock held for the creating transaction makes them take turns.
_PG_SETUP = ("SELECT pg_advisory_xact_lock(hashtext('agent_auth_cas'))", _PG["create"])
_PG_CREATED = ("UniqueViolation", "DuplicateTable", "DuplicateObject")


class _SqlCAS:
    """The compare-and-set operations as statements; subclasses run them (``_rows``/``_arows``)."""

    _sql: ClassVar[dict[str, str]] = _SQLITE
    _mark: ClassVar[str] = "?"

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._ready = False

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        raise NotImplementedError

    async def _arows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        return await asyncio.to_thread(self._rows, sql, params)

    def _swap(self, name: str, state: str, expect: Iterable[str], owner: str,
              ttl: float | None) -> tuple[str, tuple[Any, ...]]:
        wanted = check(name, state, expect)
        now = self._clock()
        expires = expiry(now, ttl)
        states = [s for s in wanted if s != ABSENT] or [ABSENT]  # no stored slot has the state ""
        marks = ", ".join([self._mark] * len(states))
        if ABSENT in wanted:
            return self._sql["upsert"].format(states=marks), (name, state, owner, expires, now, *states)
        return self._sql["update"].format(states=marks), (state, owner, expires, name, now, *states)

    def _read(self, name: str) -> tuple[str, tuple[Any, ...]]:
        return self._sql["read"], (name, self._clock())

    def swap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
             ttl: float | None = None) -> bool:
        return bool(self._rows(*self._swap(name, state, expect, owner, ttl)))

    async def aswap(self, name: str, state: str, *, expect: Iterable[str] = (ABSENT,), owner: str = "",
                    ttl: float | None = None) -> bool:
        return bool(await self._arows(*self._swap(name, state, expect, owner, ttl)))

    def read(self, name: str) -> Slot | None:
        return _slot(self._rows(*self._read(name)))

    async def aread(self, name: str) -> Slot | None:
        return _slot(await self._arows(*self._read(name)))

    def release(self, name: str, owner: str) -> bool:
        return bool(self._rows(self._sql["release"], (name, owner)))

    async def arelease(self, name: str, owner: str) -> bool:
        return bool(await self._arows(self._sql["release"], (name, owner)))

    def purge(self, before: float) -> int:
        return len(self._rows(self._sql["purge"], (before,)))

    async def apurge(self, before: float) -> int:
        return len(await self._arows(self._sql["purge"], (before,)))


def _slot(rows: Rows) -> Slot | None:
    return Slot(*rows[0]) if rows else None


class _OnStoreLoop:
    """For an async store: the blocking ``_rows`` runs ``_arows`` on the store's loop."""

    _loop: Any

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        return _on_loop(self._loop, self._arows(sql, params))  # type: ignore[attr-defined]


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


# --------------------------------------------------------------------------- SQLite


class SqliteCAS(_SqlCAS):
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
        super().__init__(store, clock=clock)
        self._conn: sqlite3.Connection = store.conn
        self._lock: Any = getattr(store, "lock", None) or threading.Lock()

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        with self._lock:
            if not self._ready:
                self._conn.execute(_SQLITE["create"])
                self._ready = True
            rows = self._conn.execute(sql, params).fetchall()
            if self._conn.in_transaction:
                self._conn.commit()
            return rows


class AsyncSqliteCAS(_OnStoreLoop, _SqlCAS):
    """:class:`SqliteCAS` for ``AsyncSqliteStore`` (aiosqlite): the async methods await the
    store's connection; the sync ones are for worker threads only."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(store, clock=clock)
        self._loop = getattr(store, "_loop", None)

    async def _arows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        conn = self._store.conn
        async with self._store.lock:
            if not self._ready:
                await conn.execute(_SQLITE["create"])
                self._ready = True
            cur = await conn.execute(sql, params)
            rows = list(await cur.fetchall())
            await conn.commit()
            return rows


# --------------------------------------------------------------------------- PostgreSQL


class PostgresCAS(_SqlCAS):
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

    _sql = _PG
    _mark = "%s"

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self._store.conn
        if _is_pool(conn):
            with conn.connection() as c:
                yield c
        else:  # a connection shared with the store: one user at a time, as the store does
            with getattr(self._store, "lock", None) or nullcontext():
                yield conn

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        with self._connection() as conn:
            if not self._ready:
                with _created_elsewhere():
                    self._transaction(conn, _PG_SETUP)
                self._ready = True
            return self._transaction(conn, ((sql, params),))

    @staticmethod
    def _transaction(conn: Any, statements: Iterable[Statement]) -> Rows:
        """Run ``statements`` in one transaction; the rows of the last one, if it has any."""
        with conn.transaction(), conn.cursor() as cur:
            for statement in statements:
                cur.execute(*_args(statement))
            return [_row(r) for r in cur.fetchall()] if cur.description else []


class AsyncPostgresCAS(_OnStoreLoop, PostgresCAS):
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

    async def _arows(self, sql: str, params: tuple[Any, ...]) -> Rows:
        async with self._aconnection() as conn:
            if not self._ready:
                with _created_elsewhere():
                    await self._atransaction(conn, _PG_SETUP)
                self._ready = True
            return await self._atransaction(conn, ((sql, params),))

    @staticmethod
    async def _atransaction(conn: Any, statements: Iterable[Statement]) -> Rows:
        """:meth:`PostgresCAS._transaction` on an async connection."""
        async with conn.transaction(), conn.cursor() as cur:
            for statement in statements:
                await cur.execute(*_args(statement))
            return [_row(r) for r in await cur.fetchall()] if cur.description else []


@contextmanager
def _created_elsewhere() -> Iterator[None]:
    """Let the table creation fail when another process created the table meanwhile."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ not in _PG_CREATED:
            raise


def _args(statement: Statement) -> tuple[Any, ...]:
    return (statement,) if isinstance(statement, str) else statement


def _is_pool(conn: Any) -> bool:
    return hasattr(conn, "connection") and not hasattr(conn, "cursor")


def _row(r: Any) -> tuple[Any, ...]:
    return tuple(r.values()) if isinstance(r, dict) else tuple(r)
