"""Single-flight refresh: many concurrent calls for one user with an expired token -> one refresh,
counted at the provider (asyncio, threads, both at once, a real agent, and across processes)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.vault import StoreLease, TokenVault, VaultMiddleware
from langchain_agent_auth.vault._records import TokenRecord, user_ns
from tests.support.demo_upstream import CLIENT_ID, CLIENT_SECRET, browse_upstream
from tests.vault.conftest import ALICE, BOB, calendar_connection, connect
from tests.vault.graphs import agent, calendar_tools, interrupts

ROOT = pathlib.Path(__file__).resolve().parents[2]


def age(vault: TokenVault, user=ALICE, connection: str = "calendar") -> None:
    """Make the stored access token look expired (as if an hour had passed)."""
    ns = user_ns(user.key)
    item = vault.store.get(ns, connection)
    record = TokenRecord.from_value(vault.keyring, item.value, user=user.key, connection=connection)
    record.expires_at = time.time() - 10
    vault.store.put(ns, connection, record.to_value(vault.keyring), index=False)
    vault.invalidate(user, connection)


def test_100_concurrent_async_calls_one_refresh(vault, upstream):
    connect(vault, upstream, ALICE)
    age(vault)
    upstream.refresh_delay = 0.05

    async def run():
        return await asyncio.gather(*(vault.aget_token(ALICE, "calendar") for _ in range(100)))

    tokens = asyncio.run(run())
    assert len({t.token for t in tokens}) == 1
    assert upstream.stats()["token:refresh_token"] == 1


def test_100_concurrent_threads_one_refresh(vault, upstream):
    connect(vault, upstream, ALICE)
    age(vault)
    upstream.refresh_delay = 0.05
    start = threading.Barrier(100)

    def one(_):
        start.wait()
        return vault.get_token(ALICE, "calendar").token

    with ThreadPoolExecutor(100) as pool:
        tokens = list(pool.map(one, range(100)))
    assert len(set(tokens)) == 1
    assert upstream.stats()["token:refresh_token"] == 1


def test_threads_and_tasks_mixed_and_two_users(vault, upstream):
    connect(vault, upstream, ALICE)
    connect(vault, upstream, BOB)
    age(vault, ALICE)
    age(vault, BOB)
    upstream.refresh_delay = 0.1

    async def tasks():
        return await asyncio.gather(*(vault.aget_token(u, "calendar") for u in (ALICE, BOB) for _ in range(25)))

    with ThreadPoolExecutor(51) as pool:
        futures = [pool.submit(vault.get_token, u, "calendar") for u in (ALICE, BOB) for _ in range(25)]
        async_tokens = pool.submit(asyncio.run, tasks()).result()
        thread_tokens = [f.result() for f in futures]
    by_user: dict[str, set[str]] = {}
    for t, u in zip(thread_tokens, [u for u in (ALICE, BOB) for _ in range(25)], strict=True):
        by_user.setdefault(u.subject, set()).add(t.token)
    for t, u in zip(async_tokens, [u for u in (ALICE, BOB) for _ in range(25)], strict=True):
        by_user.setdefault(u.subject, set()).add(t.token)
    assert all(len(v) == 1 for v in by_user.values()) and by_user["alice"] != by_user["bob"]
    assert upstream.stats()["token:refresh_token"] == 2  # one per user


def test_100_parallel_tool_calls_in_an_agent_one_refresh(upstream, sqlite_store, keyring):
    # 100 connections at once to a server in this process: on a loaded machine accepting them
    # can take seconds, so the upstream's time limits are generous here (what is asserted: one
    # refresh, every call answered for alice, stays the same).
    vault = TokenVault([calendar_connection(upstream, timeout=60)], store=sqlite_store, keyring=keyring)
    try:
        tools = calendar_tools(upstream.api_url, timeout=60)
        graph = agent([tools["alist_events"]], [VaultMiddleware(vault, {"alist_events": "calendar"})], InMemorySaver())
        connect(vault, upstream, ALICE)
        upstream.expire("alice")  # the upstream says 401: every call reports the same stale token
        upstream.refresh_delay = 0.05
        calls = [{"tool": "alist_events", "args": {"day": str(i)}} for i in range(100)]
        result = asyncio.run(graph.ainvoke({"messages": [HumanMessage(json.dumps(calls))]},
                                           {"configurable": {"thread_id": "p1"}}, context={"user": ALICE}))
        assert not interrupts(result)
        outs = [m for m in result["messages"] if getattr(m, "type", "") == "tool"]
        assert len(outs) == 100 and all(json.loads(m.content)["owner"] == "alice" for m in outs)
        assert upstream.stats()["token:refresh_token"] == 1
    finally:
        vault.close()


def test_cross_process_lease_one_refresh(upstream, tmp_path, keyring):
    """Three worker processes x 10 threads on one SQLite store: the rotating refresh token is spent once."""
    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.vault import VaultCallback
    from tests.vault.conftest import calendar_connection as conn

    keys = tmp_path / "keys"
    ring = Keyring.from_file(keys)
    db = tmp_path / "agent_auth.sqlite"
    from langchain_agent_auth.vault import open_default_store

    vault = TokenVault([conn(upstream)], store=open_default_store(db), keyring=ring)
    upstream.callback_app = VaultCallback(vault, resolve_user=lambda r: ALICE)
    browse_upstream(vault.start_connect(ALICE, "calendar").authorize_url, "alice")
    age(vault)
    upstream.refresh_delay = 0.2
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(db), str(keys), upstream.issuer, upstream.redirect_uri, CLIENT_ID, CLIENT_SECRET, "10"]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.vault._worker", *args], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "READY", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    lines = [o.strip().splitlines()[-1] for o, _ in outs]
    assert all(line.startswith("TOKENS ") for line in lines), outs
    assert len({line for line in lines}) == 1 and len(lines[0].split()) == 2  # one token everywhere
    assert upstream.stats()["token:refresh_token"] == 1
    assert upstream.stats().get("refresh_reuse", 0) == 0


def test_best_effort_lease_on_any_store(upstream, keyring):
    """Two vaults (two workers) over one InMemoryStore, 20 threads each: one refresh."""
    store = InMemoryStore()
    vaults = [TokenVault([calendar_connection(upstream)], store=store, keyring=keyring,
                         lease=StoreLease(settle=0.1)) for _ in range(2)]
    connect(vaults[0], upstream, ALICE)
    age(vaults[0])
    upstream.refresh_delay = 0.2
    start = threading.Barrier(40)

    def one(i):
        start.wait()
        return vaults[i % 2].get_token(ALICE, "calendar").token

    with ThreadPoolExecutor(40) as pool:
        tokens = set(pool.map(one, range(40)))
    assert len(tokens) == 1
    assert upstream.stats()["token:refresh_token"] == 1
