"""A connect callback delivered many times at once (threads, asyncio tasks) completes the flow
once: one delivery redeems the code, every other gets ``CallbackStateError``, on
InMemoryStore, SqliteStore and PostgreSQL. A ``GateStore`` makes every delivery read the
pending flow before any acts, so the race happens every time."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth import errors as E
from langchain_agent_auth.vault import TokenVault
from langchain_agent_auth.vault._records import PENDING_NS
from tests.support.demo_upstream import browse_upstream
from tests.support.gate import GateStore
from tests.vault.conftest import ALICE, calendar_connection

N = 8


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def base_store(request: pytest.FixtureRequest, sqlite_store: Any) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore()
    elif request.param == "sqlite":
        yield sqlite_store
    else:
        from langgraph.store.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres").database(f"connect_{os.getpid()}_{request.node.name[-12:-1]}"
                                                            .replace("-", "_").replace("[", "_"))
        with PostgresStore.from_conn_string(dsn) as store:
            store.setup()
            yield store


def _callback(vault: TokenVault) -> httpx.URL:
    link = vault.start_connect(ALICE, "calendar", ["calendar.read"])
    answer = browse_upstream(link.authorize_url, ALICE.subject, follow_callback=False)
    return httpx.URL(answer.headers["location"])


def _outcome(fn: Any) -> str:
    try:
        fn()
    except E.CallbackStateError:
        return "already_handled"
    return "completed"


@pytest.mark.parametrize("mode", ["threads", "tasks", "threads-no-lease"])
async def test_concurrent_callbacks_complete_once(upstream, keyring, base_store, mode):
    """``threads-no-lease``: without the connect lease every delivery reads the flow as
    pending twice; the redeem claim alone keeps the code redeemed once."""
    setup = TokenVault([calendar_connection(upstream)], store=base_store, keyring=keyring)
    url = _callback(setup)
    state, code = url.params["state"], url.params["code"]
    lease = mode != "threads-no-lease"
    store = GateStore(base_store, N, mode="async" if mode == "tasks" else "thread", namespace=PENDING_NS,
                      rounds=1 if lease else 2)
    vault = TokenVault([calendar_connection(upstream)], store=store, keyring=keyring, lease=lease)

    if mode != "tasks":
        start = threading.Barrier(N)

        def deliver(_: int) -> str:
            start.wait(timeout=60)
            return _outcome(lambda: vault.complete_connect(state, code, user=ALICE))

        with ThreadPoolExecutor(N) as pool:
            outcomes = list(pool.map(deliver, range(N)))
    else:
        async def adeliver() -> str:
            try:
                await vault.acomplete_connect(state, code, user=ALICE)
            except E.CallbackStateError:
                return "already_handled"
            return "completed"

        outcomes = list(await asyncio.gather(*(adeliver() for _ in range(N))))

    # One redemption: a second would have been refused by the provider (InvalidGrantError).
    assert sorted(outcomes) == ["already_handled"] * (N - 1) + ["completed"]
    [flow] = setup.pending_connects(ALICE)
    assert flow.status == "completed"
    assert setup.status(ALICE, "calendar").status == "active"
    setup.close()
    vault.close()
