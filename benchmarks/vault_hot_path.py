"""Vault hot path: a wrapped tool call with the token already cached vs the bare tool call.

Measured in the same run: ``tool.invoke`` / ``tool.ainvoke`` of the bare tool, then of
``with_vault(tool, ...)`` (token in the vault's cache, so no I/O). Also the vault's own
``get_token`` cache hit. Run: python benchmarks/vault_hot_path.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from benchmarks._util import Row, per_second, print_table
from benchmarks._vault_peer import peer
from langchain_agent_auth.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.vault import Connection, TokenVault, get_access_token, with_vault

ALICE = UserIdentity(subject="alice", issuer="https://idp.example")


@tool
def bare(day: str) -> str:
    """Look something up."""
    return f"ok {day}"


@tool
def reads_token(day: str) -> str:
    """Look something up with the user's token."""
    return f"ok {day} {len(get_access_token())}"


def make_vault() -> TokenVault:
    vault = TokenVault([Connection("calendar", issuer="https://upstream.example", client_id="agent",
                                   client_secret="s3cret-value", redirect_uri="http://127.0.0.1:8765/callback")],
                       store=InMemoryStore(), keyring=Keyring.generate())
    vault.import_token(ALICE, "calendar", access_token="opaque-access-token-0123456789", scopes=["calendar.read"],
                       expires_at=time.time() + 86_400)
    return vault


def _async_rate(fn, seconds: float) -> float:
    async def loop() -> float:
        await fn()
        best = 0.0
        for _ in range(3):
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(20):
                    await fn()
                n += 20
            best = max(best, n / (time.perf_counter() - start))
        return best

    return asyncio.run(loop())


def run(quick: bool = False) -> list[Row]:
    seconds = 0.4 if quick else 1.5
    vault = make_vault()
    wrapped = with_vault(reads_token, vault, connection="calendar", scopes=["calendar.read"])
    call = {"type": "tool_call", "name": "bare", "args": {"day": "mon"}, "id": "c1"}
    wcall = {**call, "name": "reads_token"}
    with acting_as(ALICE):
        vault.get_token(ALICE, "calendar", ["calendar.read"])  # warm the cache
        bare_sync = per_second(lambda: bare.invoke(call), seconds=seconds)
        wrapped_sync = per_second(lambda: wrapped.invoke(wcall), seconds=seconds)
        bare_async = _async_rate(lambda: bare.ainvoke(call), seconds)
        wrapped_async = _async_rate(lambda: wrapped.ainvoke(wcall), seconds)
        hits = per_second(lambda: vault.get_token(ALICE, "calendar", ["calendar.read"]), seconds=seconds)
    us = lambda rate: 1e6 / rate  # noqa: E731
    theirs = peer(quick)
    if "wrapped_us" in theirs:
        peer_row = Row("peer: with_token_vault", "µs per wrapped tool call, token cached", theirs["wrapped_us"],
                       theirs["bare_us"], "µs", "its bare tool.ainvoke", theirs["source"])
    else:
        peer_row = Row("peer: with_token_vault", "wrapped / bare tool call, token cached", theirs["ratio"], 1.0,
                       "x", "bare = 1", f"{theirs['source']}, +{theirs['extra_us']:.0f} µs")
    return [
        Row("vault: hot path (sync)", "µs per wrapped tool call, token cached", us(wrapped_sync), us(bare_sync), "µs",
            "bare tool.invoke", f"+{us(wrapped_sync) - us(bare_sync):.0f} µs"),
        Row("vault: hot path (async)", "µs per wrapped tool call, token cached", us(wrapped_async), us(bare_async),
            "µs", "bare tool.ainvoke", f"+{us(wrapped_async) - us(bare_async):.0f} µs"),
        peer_row,
        Row("vault: cache hit", "get_token calls/s (cached)", hits, None, "/s"),
    ]


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
