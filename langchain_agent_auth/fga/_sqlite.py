"""A SQLite database shared by threads, for the fga tuple store and the OpenFGA-API server.

A file database gets one connection per thread (WAL mode); ``":memory:"`` one shared
connection behind a lock. :meth:`SQLiteDatabase._transaction` is a write transaction
(``BEGIN IMMEDIATE``), :meth:`SQLiteDatabase.read_snapshot` one read transaction for a whole
request.

Example:
    >>> db = SQLiteDatabase(":memory:", "CREATE TABLE t (x INTEGER);")
    >>> with db._transaction() as conn:
    ...     _ = conn.execute("INSERT INTO t VALUES (1)")
    >>> db._query("SELECT x FROM t", ())
    [(1,)]
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_agent_auth.core.errors import ConfigurationError

__all__ = ["SQLiteDatabase"]


class SQLiteDatabase:
    """Connections, transactions and read snapshots over one SQLite file (or ``":memory:"``)."""

    def __init__(self, path: str | os.PathLike[str], schema: str, *, what: str = "the SQLite database") -> None:
        self.path = str(path)
        self._memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        self._local = threading.local()
        self._lock = threading.RLock()
        self._shared: sqlite3.Connection | None = None
        if not self._memory:
            parent = Path(self.path).parent
            if not parent.exists():
                raise ConfigurationError(f"the directory of {what} does not exist: {parent}")
        conn = self._conn()
        with self._lock:
            conn.executescript(schema)

    def _conn(self) -> sqlite3.Connection:
        if self._memory:
            if self._shared is None:
                self._shared = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._memory:
            with self._lock:
                return self._conn().execute(sql, params).fetchall()
        return self._conn().execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """One read transaction for a whole request: consistent reads, and far cheaper than a
        transaction per query in WAL mode (whose per-read setup showed millisecond stalls)."""
        depth = getattr(self._local, "snapshot", 0)
        if depth:
            self._local.snapshot = depth + 1
            try:
                yield
            finally:
                self._local.snapshot = depth
            return
        if self._memory:
            self._lock.acquire()
        conn = self._conn()
        conn.execute("BEGIN")
        self._local.snapshot = 1
        try:
            yield
        finally:
            self._local.snapshot = 0
            try:
                conn.execute("COMMIT")
            finally:
                if self._memory:
                    self._lock.release()

    def close(self) -> None:
        """Close this thread's connection (and the shared one of a memory database)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._shared is not None:
            self._shared.close()
            self._shared = None
