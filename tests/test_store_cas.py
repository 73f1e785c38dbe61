"""The store compare-and-set primitive: semantics on every store kind, then contention from
threads, asyncio tasks and processes (SQLite files; PostgreSQL when the binaries are here)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth.core.errors import ConfigurationError
from langchain_agent_auth.core.store_cas import (
    ABSENT,
    BestEffortCAS,
    MemoryCAS,
    SqliteCAS,
    compare_and_set,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sqlite_store(path: Any = ":memory:") -> SqliteStore:
    return SqliteStore(sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(kind: str, request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Any]:
    """make(clock) -> a compare-and-set of the parametrized kind (one fresh store per test)."""
    if kind == "memory":
        store: Any = InMemoryStore()
        yield lambda clock=None: compare_and_set(store, **({"clock": clock} if clock else {}))
        return
    if kind == "sqlite":
        store = sqlite_store(tmp_path / "store.db")
        yield lambda clock=None: compare_and_set(store, **({"clock": clock} if clock else {}))
        return
    pg = request.getfixturevalue("postgres")
    from langgraph.store.postgres import PostgresStore

    dsn = pg.database(f"cas_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}")
    with PostgresStore.from_conn_string(dsn) as store:
        store.setup()
        yield lambda clock=None: compare_and_set(store, **({"clock": clock} if clock else {}))


def test_chosen_by_store_type():
    assert isinstance(compare_and_set(InMemoryStore()), MemoryCAS)
    assert isinstance(compare_and_set(sqlite_store()), SqliteCAS)


def test_swap_semantics(make):
    clock = Clock()
    cas = make(clock)
    assert cas.read("a") is None
    assert cas.swap("a", "decided") is True
    assert cas.swap("a", "decided") is False  # taken: absent is no longer true
    assert cas.swap("a", "running", expect=["pending"]) is False
    assert cas.swap("a", "running", expect=["decided"]) is True
    slot = cas.read("a")
    assert (slot.state, slot.expires_at, slot.version) == ("running", None, 2)
    assert cas.swap("b", "x", expect=["running"]) is False  # no slot: only ABSENT matches it
    assert cas.read("b") is None


def test_ttl_is_a_lease(make):
    clock = Clock()
    cas = make(clock)
    mine, theirs = "lease:w1", "lease:w2"
    assert cas.swap("l", mine, expect=(ABSENT, mine), owner="w1", ttl=10)
    assert not cas.swap("l", theirs, expect=(ABSENT, theirs), owner="w2", ttl=10)
    assert cas.swap("l", mine, expect=(ABSENT, mine), owner="w1", ttl=10)  # renewal by its holder
    clock.now += 11  # lapsed: anyone may take it
    assert cas.read("l") is None
    assert cas.swap("l", theirs, expect=(ABSENT, theirs), owner="w2", ttl=10)
    assert not cas.release("l", "w1") and cas.read("l").owner == "w2"
    assert cas.release("l", "w2") and cas.read("l") is None
    assert cas.swap("p", "x", ttl=5) and cas.swap("q", "y")
    clock.now += 6
    assert cas.purge(clock.now) == 1  # the lapsed one only
    assert cas.read("q").state == "y"


async def test_async_twins(make):
    cas = make()
    assert await cas.aswap("t", "one") is True
    assert await cas.aswap("t", "one") is False
    assert (await cas.aread("t")).state == "one"
    assert await cas.aswap("t", "two", expect=["one"], owner="me", ttl=30)
    assert await cas.arelease("t", "me") and await cas.aread("t") is None


@pytest.mark.parametrize("bad", [
    {"name": "", "state": "x"}, {"name": "n", "state": ""}, {"name": "n" * 600, "state": "x"},
    {"name": "n", "state": "x", "expect": []}, {"name": "n", "state": "x", "ttl": 0},
    {"name": "n", "state": "x", "expect": [None]},
])
def test_bad_input_is_refused(bad):
    cas = compare_and_set(InMemoryStore())
    with pytest.raises(ValueError):
        cas.swap(**bad)


def test_contention_threads(make):
    """16 threads race for 20 slots at once: each slot has exactly one winner."""
    cas = make()
    start = threading.Barrier(16)

    def worker(i: int) -> list[str]:
        start.wait(timeout=60)
        return [f"s{n}" for n in range(20) if cas.swap(f"s{n}", f"w{i}")]

    with ThreadPoolExecutor(16) as pool:
        won = [s for got in pool.map(worker, range(16)) for s in got]
    assert sorted(won) == sorted(f"s{n}" for n in range(20))


async def test_contention_tasks(make):
    cas = make()
    results = await asyncio.gather(*(cas.aswap("once", f"t{i}") for i in range(8)))
    assert results.count(True) == 1


def test_unknown_store_is_best_effort_or_refused():
    class Other(InMemoryStore.__mro__[1]):  # a BaseStore of no known kind
        def batch(self, ops):  # type: ignore[override]
            return InMemoryStore.batch(self._inner, ops)

        async def abatch(self, ops):  # type: ignore[override]
            return self.batch(ops)

    other = Other()
    other._inner = InMemoryStore()
    cas = compare_and_set(other)
    assert isinstance(cas, BestEffortCAS)
    with pytest.raises(ConfigurationError, match="no atomic compare-and-set"):
        compare_and_set(other, strict=True)


def test_a_store_with_its_own_swap_is_used_as_is():
    mine = compare_and_set(InMemoryStore())
    assert compare_and_set(mine) is mine


def _worker_cmd(kind: str, target: str, slots: int) -> list[str]:
    return [sys.executable, "-c", (
        "import sys, sqlite3\n"
        "from langchain_agent_auth.core.store_cas import compare_and_set\n"
        "kind, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "if kind == 'sqlite':\n"
        "    from langgraph.store.sqlite import SqliteStore\n"
        "    store = SqliteStore(sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30))\n"
        "    cm = None\n"
        "else:\n"
        "    from langgraph.store.postgres import PostgresStore\n"
        "    cm = PostgresStore.from_conn_string(target); store = cm.__enter__()\n"
        "cas = compare_and_set(store)\n"
        "print('READY', flush=True); sys.stdin.readline()\n"
        "print('WON ' + ' '.join(str(i) for i in range(n) if cas.swap(f'slot{i}', 'taken')), flush=True)\n"
    ), kind, target, str(slots)]


@pytest.mark.parametrize("kind_", ["sqlite", "postgres"])
def test_contention_processes(kind_, tmp_path, request):
    """Three processes race for 50 slots: every slot is won exactly once."""
    if kind_ == "sqlite":
        target = str(tmp_path / "store.db")
        sqlite_store(target).setup()
    else:
        target = request.getfixturevalue("postgres").database(f"cas_procs_{os.getpid()}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen(_worker_cmd(kind_, target, 50), cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:  # all connected before any starts
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    won: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        won += out.split("WON", 1)[1].split()
    assert sorted(won, key=int) == [str(i) for i in range(50)]


@pytest.mark.parametrize("kind_", ["sqlite", "postgres"])
async def test_async_stores(kind_, tmp_path, request):
    """AsyncSqliteStore and AsyncPostgresStore: native async swaps on the store's own
    connection; the sync methods work from a worker thread (the vault's lease uses them)."""
    if kind_ == "sqlite":
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        cm: Any = AsyncSqliteStore.from_conn_string(str(tmp_path / "store.db"))
        expected = "AsyncSqliteCAS"
    else:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        cm = AsyncPostgresStore.from_conn_string(request.getfixturevalue("postgres").database(
            f"cas_async_{os.getpid()}"))
        expected = "AsyncPostgresCAS"
    async with cm as store:
        await store.setup()
        cas = compare_and_set(store)
        assert type(cas).__name__ == expected
        results = await asyncio.gather(*(cas.aswap("once", f"t{i}") for i in range(8)))
        assert results.count(True) == 1
        assert (await cas.aread("once")).version == 1
        assert await asyncio.to_thread(cas.swap, "once", "again", expect=[(await cas.aread("once")).state])
        assert (await cas.aread("once")).state == "again"
        with pytest.raises(ConfigurationError, match="async"):
            cas.swap("on-the-loop", "x")  # would block its own loop: refused
