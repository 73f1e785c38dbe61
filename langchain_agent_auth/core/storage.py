"""Open the LangGraph store and checkpointer an agent keeps its state in, from one URL.

Everything durable the toolkit keeps (vault records, pending approvals and connect flows,
thread owners, the compare-and-set slots behind every exactly-once step) lives in the
LangGraph ``BaseStore`` you pass in; graph state lives in the checkpointer. This module
turns one setting into both, so a demo, an example or a worker process can move from a
laptop to a shared database by changing a URL:

=================================  ==========================================================
``AGENT_AUTH_STORE`` / ``url``     store and checkpointer
=================================  ==========================================================
``sqlite:///path/to/dir``          ``SqliteStore`` (``agent_auth.sqlite``, WAL) and
or a directory path                ``SqliteSaver`` (``checkpoints.sqlite``) in that directory
``postgresql://user@host:port/db`` LangGraph's own ``PostgresStore`` and ``PostgresSaver``
                                   (``pip install 'langchain-agent-auth[postgres]'``)
``memory:``                        ``InMemoryStore`` and ``InMemorySaver`` (one process only)
=================================  ==========================================================

Tables are created on open (``setup()``), so a fresh database works at once. On a LangGraph
server the server provides both (``langgraph.json``); use this in the processes beside it
(resumer workers, scripts) pointed at the same database.

Example:
    >>> import tempfile
    >>> with open_storage(tempfile.mkdtemp()) as storage:
    ...     type(storage.store).__name__, type(storage.checkpointer).__name__
    ('SqliteStore', 'SqliteSaver')
    >>> with open_storage("memory:") as storage:
    ...     type(storage.store).__name__
    'InMemoryStore'
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langchain_agent_auth.core.errors import ConfigurationError

__all__ = ["STORE_ENV", "Storage", "open_storage", "redact_url"]

STORE_ENV = "AGENT_AUTH_STORE"
_POSTGRES_HINT = "install the PostgreSQL extra: pip install 'langchain-agent-auth[postgres]'"


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs.

    Example:
        >>> redact_url("postgresql://app:s3cret@db:5432/agents")
        'postgresql://app:***@db:5432/agents'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Storage:
    """A store and a checkpointer opened together; ``close()`` (or ``with``) releases both."""

    store: Any
    checkpointer: Any
    url: str
    kind: str
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close the connections this storage opened (idempotent)."""
        while self._closers:
            with contextlib.suppress(Exception):  # closing is best effort
                self._closers.pop()()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_storage(
    url: str | os.PathLike[str] | None = None, *, default_dir: str | os.PathLike[str] | None = None
) -> Storage:
    """Open the store and checkpointer named by ``url``, else ``$AGENT_AUTH_STORE``, else
    SQLite files in ``default_dir`` (see the module docstring for the forms).

    Raises :class:`~langchain_agent_auth.errors.ConfigurationError` naming the value when it
    cannot be used (unknown scheme, PostgreSQL extra missing, database unreachable); a
    password in the URL is never shown.

    Example:
        >>> try:
        ...     open_storage("mysql://db/agents")
        ... except ConfigurationError as exc:
        ...     print(str(exc)[:42])
        unsupported store URL 'mysql://db/agents':
    """
    if url is None:
        url = os.environ.get(STORE_ENV) or None
    if url is None:
        if default_dir is None:
            raise ConfigurationError(f"no store configured: pass a URL or set {STORE_ENV}")
        return _open_sqlite(pathlib.Path(default_dir))
    text = os.fspath(url).strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme in ("postgresql", "postgres"):
        return _open_postgres(text)
    if text == "memory:" or scheme == "memory":
        return _open_memory()
    if scheme == "sqlite":
        path = text[len("sqlite:"):]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise ConfigurationError(f"the store URL {text!r} names no directory: use sqlite:///DIR")
        return _open_sqlite(pathlib.Path(path))
    if scheme and len(scheme) > 1:  # a drive letter is not a scheme
        raise ConfigurationError(f"unsupported store URL {redact_url(text)!r}: use sqlite:///DIR, a directory path, "
                                 "postgresql://USER@HOST:PORT/DB or memory:")
    return _open_sqlite(pathlib.Path(text))


def _open_memory() -> Storage:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    return Storage(InMemoryStore(), InMemorySaver(), "memory:", "memory")


def _open_sqlite(directory: pathlib.Path) -> Storage:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    from langchain_agent_auth.core.crypto import private_dir, private_file

    directory = directory.expanduser()
    try:
        if not directory.exists():
            private_dir(directory)  # 0700, like every data directory the toolkit creates
        for name in ("agent_auth.sqlite", "checkpoints.sqlite"):
            private_file(directory / name)  # 0600, and so are SQLite's -wal/-shm files
        conn = sqlite3.connect(str(directory / "agent_auth.sqlite"), check_same_thread=False,
                               isolation_level=None, timeout=30.0)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(f"cannot open the SQLite store in {directory}: {exc}") from None
    conn.execute("PRAGMA journal_mode=WAL")
    store = SqliteStore(conn)
    store.setup()
    checkpoints = sqlite3.connect(str(directory / "checkpoints.sqlite"), check_same_thread=False)
    saver = SqliteSaver(checkpoints)
    return Storage(store, saver, f"sqlite:///{directory}", "sqlite", [conn.close, checkpoints.close])


def _open_postgres(url: str) -> Storage:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.store.postgres import PostgresStore
        from psycopg import Connection
        from psycopg.rows import dict_row
    except ImportError:
        raise ConfigurationError(
            f"the store URL {redact_url(url)!r} needs PostgreSQL support: {_POSTGRES_HINT}"
        ) from None
    closers: list[Callable[[], None]] = []
    try:
        conns = []
        for _ in range(2):
            conn = Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
            closers.append(conn.close)
            conns.append(conn)
        store = PostgresStore(conns[0])
        store.setup()
        saver = PostgresSaver(conns[1])
        saver.setup()
    except ConfigurationError:
        raise
    except Exception as exc:
        for close in closers:
            close()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(f"cannot open the PostgreSQL store {redact_url(url)!r}: "
                                 f"{reason.replace(url, redact_url(url))}") from None
    return Storage(store, saver, redact_url(url), "postgres", closers)
