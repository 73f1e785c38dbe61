"""Tuple stores: in memory and in SQLite, indexed for both directions of lookup.

A store holds relationship tuples and the authorization models written to it. The
engine reads tuples four ways, each served by an index:

* one exact tuple ``(object, relation, user)`` (direct and wildcard checks);
* all users of ``object#relation`` (usersets, tuple-to-userset, list_users);
* only the userset users of ``object#relation``;
* all objects of a type a user has a relation on (list_objects, reverse direction).

Stores do no model validation: the authorizer validates before writing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from langchain_agent_auth.core.errors import AuthorizationError, TupleError
from langchain_agent_auth.fga._sqlite import SQLiteDatabase
from langchain_agent_auth.fga._tuple import TupleKey

__all__ = [
    "MemoryTupleStore",
    "SQLiteTupleStore",
    "StoredModel",
    "TupleStore",
    "new_ulid",
]

ReadPage = tuple[list[tuple[TupleKey, str]], str | None]
"""One page of :meth:`TupleStore.read`: (tuple, write time) rows and the continuation token."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID (time-ordered, 26 characters): OpenFGA's id format for stores and models.

    Example:
        >>> len(new_ulid()), new_ulid() < new_ulid() or True
        (26, True)
    """
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _user_rel(user: str) -> str:
    if "#" in user:
        return user.rpartition("#")[2]
    return "*" if user.endswith(":*") else ""


@dataclass(frozen=True, slots=True)
class StoredModel:
    """An authorization model as stored: its id, creation time and OpenFGA JSON."""

    id: str
    created_at: str
    model_json: str


@runtime_checkable
class TupleStore(Protocol):
    """What the engine needs from a tuple store. Implement it to plug in another database.

    Example:
        >>> isinstance(MemoryTupleStore(), TupleStore), isinstance(SQLiteTupleStore(), TupleStore)
        (True, True)
    """

    store_id: str

    def write(self, writes: Sequence[TupleKey], deletes: Sequence[TupleKey], *, on_duplicate: str = "error",
              on_missing: str = "error") -> None:
        """Apply deletes then writes atomically; ``on_duplicate``/``on_missing``: error|ignore."""

    def read_tuple(self, object: str, relation: str, user: str) -> TupleKey | None: ...

    def read_users(self, object: str, relation: str) -> Sequence[TupleKey]: ...

    def read_usersets(self, object: str, relation: str) -> Sequence[TupleKey]: ...

    def read_objects(self, user: str, object_type: str, relation: str) -> Sequence[TupleKey]: ...

    def read(self, object: str | None = None, relation: str | None = None, user: str | None = None, *,
             page_size: int = 50, continuation_token: str | None = None) -> ReadPage: ...

    def count(self) -> int: ...

    def write_model(self, model_json: str) -> str: ...

    def read_model(self, model_id: str | None = None) -> StoredModel | None: ...

    def list_models(self) -> list[StoredModel]: ...


def _encode_token(key: tuple[str, str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> tuple[str, str, str] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError):
        raise AuthorizationError("invalid continuation token", code=2007) from None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise AuthorizationError("invalid continuation token", code=2007)
    return (value[0], value[1], value[2])


def _check_page_size(page_size: int) -> int:
    if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
        raise AuthorizationError("page_size must be between 1 and 1000", code=2039)
    return page_size


def _object_filter(obj: str | None) -> tuple[str | None, str | None]:
    """A read filter's object: ``type:id`` (exact), ``type:`` (a whole type) or nothing."""
    if not obj:
        return None, None
    if obj.endswith(":"):
        return obj[:-1], None
    return None, obj


@dataclass(frozen=True, slots=True)
class _Page:
    """One page of a filtered read: the filter, where it resumes, and how many rows to fetch."""

    exact: str | None
    type_only: str | None
    relation: str | None
    user: str | None
    after: tuple[str, str, str] | None
    limit: int

    def matches(self, t: TupleKey) -> bool:
        return (
            (self.exact is None or t.object == self.exact)
            and (self.type_only is None or t.object_type == self.type_only)
            and (not self.relation or t.relation == self.relation)
            and (not self.user or t.user == self.user)
            and (self.after is None or t.key > self.after)
        )


class _StoreCommon:
    """What both stores share: ``write``'s options, and ``read``'s filter and continuation
    token. A store supplies ``_write`` (deletes then writes, atomically) and ``_rows``
    (matching rows in key order after the token, up to the limit)."""

    def _write(
        self, writes: Sequence[TupleKey], deletes: Sequence[TupleKey], on_duplicate: str, on_missing: str
    ) -> None:
        raise NotImplementedError

    def _rows(self, page: _Page) -> list[tuple[TupleKey, str]]:
        raise NotImplementedError

    def write(
        self,
        writes: Sequence[TupleKey],
        deletes: Sequence[TupleKey],
        *,
        on_duplicate: str = "error",
        on_missing: str = "error",
    ) -> None:
        """Apply deletes then writes atomically; ``on_duplicate``/``on_missing``: error|ignore."""
        self._write(writes, deletes, on_duplicate, on_missing)

    def read(
        self,
        object: str | None = None,
        relation: str | None = None,
        user: str | None = None,
        *,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> ReadPage:
        """Tuples matching a filter, ordered by (object, relation, user), one page at a time."""
        page_size = _check_page_size(page_size)
        after = _decode_token(continuation_token)
        type_only, exact = _object_filter(object)
        rows = self._rows(_Page(exact, type_only, relation, user, after, page_size + 1))
        page = rows[:page_size]
        token = _encode_token(page[-1][0].key) if len(rows) > page_size else None
        return page, token


class MemoryTupleStore(_StoreCommon):
    """Tuples in dictionaries: the default store, for tests, notebooks and single processes.

    Example:
        >>> s = MemoryTupleStore()
        >>> s.write([TupleKey("user:anne", "viewer", "document:1")], [])
        >>> [str(t) for t in s.read_objects("user:anne", "document", "viewer")]
        ['document:1#viewer@user:anne']
    """

    def __init__(self, store_id: str = "default") -> None:
        self.store_id = store_id
        self._by_object: dict[tuple[str, str], dict[str, TupleKey]] = {}
        self._usersets: dict[tuple[str, str], dict[str, TupleKey]] = {}
        self._by_user: dict[tuple[str, str, str], dict[str, TupleKey]] = {}
        self._written_at: dict[tuple[str, str, str], str] = {}
        self._models: list[StoredModel] = []
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MemoryTupleStore(store_id={self.store_id!r}, tuples={self.count()})"

    # -- writes -------------------------------------------------------------------------

    def _write(
        self, writes: Sequence[TupleKey], deletes: Sequence[TupleKey], on_duplicate: str, on_missing: str
    ) -> None:
        with self._lock:
            deleted = {t.key for t in deletes}
            for t in deletes:
                if self.read_tuple(t.object, t.relation, t.user) is None and on_missing != "ignore":
                    raise TupleError(f"cannot delete a tuple which does not exist: {t}", code=2017)
            skip: set[tuple[str, str, str]] = set()
            for t in writes:
                existing = self.read_tuple(t.object, t.relation, t.user)
                if existing is None or t.key in deleted:
                    continue
                if on_duplicate == "ignore" and existing.same_as(t):
                    skip.add(t.key)
                    continue
                raise TupleError(f"cannot write a tuple which already exists: {t}", code=2017)
            for t in deletes:
                self._remove(t)
            stamp = _now()
            for t in writes:
                if t.key not in skip:
                    self._add(t, stamp)

    def _add(self, t: TupleKey, stamp: str) -> None:
        self._by_object.setdefault((t.object, t.relation), {})[t.user] = t
        if _user_rel(t.user) not in ("", "*"):
            self._usersets.setdefault((t.object, t.relation), {})[t.user] = t
        self._by_user.setdefault((t.user, t.object_type, t.relation), {})[t.object] = t
        self._written_at[t.key] = stamp

    def _remove(self, t: TupleKey) -> None:
        for index, key, member in (
            (self._by_object, (t.object, t.relation), t.user),
            (self._usersets, (t.object, t.relation), t.user),
            (self._by_user, (t.user, t.object_type, t.relation), t.object),
        ):
            bucket = index.get(key)
            if bucket is not None:
                bucket.pop(member, None)
                if not bucket:
                    del index[key]
        self._written_at.pop(t.key, None)

    # -- reads ----------------------------------------------------------------------------

    def read_tuple(self, object: str, relation: str, user: str) -> TupleKey | None:
        bucket = self._by_object.get((object, relation))
        return bucket.get(user) if bucket else None

    def read_users(self, object: str, relation: str) -> Sequence[TupleKey]:
        bucket = self._by_object.get((object, relation))
        return list(bucket.values()) if bucket else ()

    def read_usersets(self, object: str, relation: str) -> Sequence[TupleKey]:
        bucket = self._usersets.get((object, relation))
        return list(bucket.values()) if bucket else ()

    def read_objects(self, user: str, object_type: str, relation: str) -> Sequence[TupleKey]:
        bucket = self._by_user.get((user, object_type, relation))
        return list(bucket.values()) if bucket else ()

    def _all(self) -> Iterator[TupleKey]:
        for bucket in list(self._by_object.values()):
            yield from list(bucket.values())

    def _rows(self, page: _Page) -> list[tuple[TupleKey, str]]:
        with self._lock:
            if page.exact is not None and page.relation:
                candidates: Iterable[TupleKey] = self.read_users(page.exact, page.relation)
            else:
                candidates = self._all()
            rows = sorted((t for t in candidates if page.matches(t)), key=lambda t: t.key)
            return [(t, self._written_at.get(t.key, "")) for t in rows[: page.limit]]

    def count(self) -> int:
        return len(self._written_at)

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Nothing to do in memory (kept for the interface)."""
        yield

    # -- models -----------------------------------------------------------------------------

    def write_model(self, model_json: str) -> str:
        with self._lock:
            model_id = new_ulid()
            self._models.append(StoredModel(model_id, _now(), model_json))
            return model_id

    def read_model(self, model_id: str | None = None) -> StoredModel | None:
        with self._lock:
            if model_id is None:
                return self._models[-1] if self._models else None
            return next((m for m in self._models if m.id == model_id), None)

    def list_models(self) -> list[StoredModel]:
        with self._lock:
            return list(reversed(self._models))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS fga_tuples (
    store TEXT NOT NULL,
    object TEXT NOT NULL,
    relation TEXT NOT NULL,
    user TEXT NOT NULL,
    object_type TEXT NOT NULL,
    user_rel TEXT NOT NULL,
    condition TEXT,
    context TEXT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (store, object, relation, user)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fga_tuples_by_user ON fga_tuples (store, user, object_type, relation, object);
CREATE TABLE IF NOT EXISTS fga_models (
    store TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    model TEXT NOT NULL,
    PRIMARY KEY (store, id)
);
CREATE TABLE IF NOT EXISTS fga_stores (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

_COLUMNS = "object, relation, user, condition, context"

_Q_ONE = (
    "SELECT object, relation, user, condition, context FROM fga_tuples "
    "WHERE store=? AND object=? AND relation=? AND user=?"
)
_Q_USERS = (
    "SELECT object, relation, user, condition, context FROM fga_tuples "
    "WHERE store=? AND object=? AND relation=?"
)
_Q_USERSETS = (
    "SELECT object, relation, user, condition, context FROM fga_tuples "
    "WHERE store=? AND object=? AND relation=? AND user_rel NOT IN ('', '*')"
)
_Q_OBJECTS = (  # INDEXED BY: without statistics SQLite may otherwise scan the store
    "SELECT object, relation, user, condition, context FROM fga_tuples INDEXED BY fga_tuples_by_user "
    "WHERE store=? AND user=? AND object_type=? AND relation=?"
)


def _row(row: Sequence[Any]) -> TupleKey:
    ctx = json.loads(row[4]) if row[4] else None
    return TupleKey(row[2], row[1], row[0], row[3] or None, ctx)


class SQLiteTupleStore(SQLiteDatabase, _StoreCommon):
    """Tuples in a SQLite file (or ``":memory:"``), indexed both ways.

    One file can hold many stores (``store_id``). Safe to share between threads; each
    thread gets its own connection to a file database.

    Example:
        >>> s = SQLiteTupleStore(":memory:")
        >>> s.write([TupleKey("user:anne", "viewer", "document:1")], [])
        >>> s.read_tuple("document:1", "viewer", "user:anne") is not None, s.count()
        (True, 1)
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", store_id: str = "default") -> None:
        super().__init__(path, _SCHEMA, what="the SQLite store")
        self.store_id = store_id

    def __repr__(self) -> str:
        return f"SQLiteTupleStore({self.path!r}, store_id={self.store_id!r})"

    # -- writes ---------------------------------------------------------------------------

    def _write(
        self, writes: Sequence[TupleKey], deletes: Sequence[TupleKey], on_duplicate: str, on_missing: str
    ) -> None:
        stamp = _now()
        with self._transaction() as conn:
            for t in deletes:
                cur = conn.execute(
                    "DELETE FROM fga_tuples WHERE store=? AND object=? AND relation=? AND user=?",
                    (self.store_id, t.object, t.relation, t.user),
                )
                if cur.rowcount == 0 and on_missing != "ignore":
                    raise TupleError(f"cannot delete a tuple which does not exist: {t}", code=2017)
            for t in writes:
                existing = conn.execute(
                    _Q_ONE,
                    (self.store_id, t.object, t.relation, t.user),
                ).fetchone()
                if existing is not None:
                    if on_duplicate == "ignore" and _row(existing).same_as(t):
                        continue
                    raise TupleError(f"cannot write a tuple which already exists: {t}", code=2017)
                conn.execute(
                    "INSERT INTO fga_tuples (store, object, relation, user, object_type, user_rel, "
                    "condition, context, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.store_id,
                        t.object,
                        t.relation,
                        t.user,
                        t.object_type,
                        _user_rel(t.user),
                        t.condition,
                        t.context_json(),
                        stamp,
                    ),
                )

    # -- reads ----------------------------------------------------------------------------

    def read_tuple(self, object: str, relation: str, user: str) -> TupleKey | None:
        rows = self._query(
            _Q_ONE,
            (self.store_id, object, relation, user),
        )
        return _row(rows[0]) if rows else None

    def read_users(self, object: str, relation: str) -> Sequence[TupleKey]:
        rows = self._query(
            _Q_USERS,
            (self.store_id, object, relation),
        )
        return [_row(r) for r in rows]

    def read_usersets(self, object: str, relation: str) -> Sequence[TupleKey]:
        rows = self._query(
            _Q_USERSETS,
            (self.store_id, object, relation),
        )
        return [_row(r) for r in rows]

    def read_objects(self, user: str, object_type: str, relation: str) -> Sequence[TupleKey]:
        rows = self._query(
            _Q_OBJECTS,
            (self.store_id, user, object_type, relation),
        )
        return [_row(r) for r in rows]

    def _rows(self, page: _Page) -> list[tuple[TupleKey, str]]:
        where, params = ["store=?"], [self.store_id]
        for column, value in (("object", page.exact), ("object_type", page.type_only),
                              ("relation", page.relation), ("user", page.user)):
            if value:
                where.append(f"{column}=?")
                params.append(value)
        if page.after is not None:
            where.append("(object, relation, user) > (?, ?, ?)")
            params.extend(page.after)
        rows = self._query(
            f"SELECT {_COLUMNS}, written_at FROM fga_tuples WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY object, relation, user LIMIT ?",
            [*params, page.limit],
        )
        return [(_row(r), r[5]) for r in rows]

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM fga_tuples WHERE store=?", (self.store_id,))[0][0])

    # -- models -----------------------------------------------------------------------------

    def write_model(self, model_json: str) -> str:
        model_id = new_ulid()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO fga_models (store, id, created_at, model) VALUES (?, ?, ?, ?)",
                (self.store_id, model_id, _now(), model_json),
            )
        return model_id

    def read_model(self, model_id: str | None = None) -> StoredModel | None:
        if model_id is None:
            rows = self._query(
                "SELECT id, created_at, model FROM fga_models WHERE store=? ORDER BY id DESC LIMIT 1",
                (self.store_id,),
            )
        else:
            rows = self._query(
                "SELECT id, created_at, model FROM fga_models WHERE store=? AND id=?",
                (self.store_id, model_id),
            )
        return StoredModel(*rows[0]) if rows else None

    def list_models(self) -> list[StoredModel]:
        rows = self._query(
            "SELECT id, created_at, model FROM fga_models WHERE store=? ORDER BY id DESC", (self.store_id,)
        )
        return [StoredModel(*r) for r in rows]

    # -- store registry (used by the OpenFGA-API server) -------------------------------------

    def register_store(self, store_id: str, name: str) -> None:
        stamp = _now()
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO fga_stores (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (store_id, name, stamp, stamp),
            )

    def list_registered_stores(self) -> list[tuple[str, str, str, str]]:
        return [
            tuple(r)
            for r in self._query("SELECT id, name, created_at, updated_at FROM fga_stores ORDER BY id", ())
        ]

    def drop_store(self, store_id: str) -> None:
        with self._transaction() as conn:
            for table in ("fga_tuples", "fga_models"):
                conn.execute(f"DELETE FROM {table} WHERE store=?", (store_id,))  # noqa: S608
            conn.execute("DELETE FROM fga_stores WHERE id=?", (store_id,))
