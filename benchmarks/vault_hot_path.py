"""Vault hot path: a wrapped tool call with the token already cached vs the same kind of bare
tool, sync tool with ``invoke`` against sync, async tool with ``ainvoke`` against async, in
interleaved rounds, timed in process CPU time (no I/O on this path; the machine is shared).
Also the event loop's worst stall while 100 concurrent calls with an
expired token refresh it over real loopback HTTP at the LocalProvider's demo upstream.

Run: python benchmarks/vault_hot_path.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from benchmarks._util import CPU, LoopLag, Row, ainterleaved, interleaved, paired, print_table, rounds_for, single
from benchmarks._vault_peer import peer_rows
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.vault import Connection, TokenVault, aget_access_token, get_access_token, with_vault

ALICE = UserIdentity(subject="alice", issuer="https://idp.example")
SCOPES = ["calendar.read"]


@tool
def bare(day: str) -> str:
    """Look something up."""
    return f"ok {day}"


@tool
def reads_token(day: str) -> str:
    """Look something up with the user's token."""
    return f"ok {day} {len(get_access_token())}"


@tool
async def abare(day: str) -> str:
    """Look something up."""
    return f"ok {day}"


@tool
async def areads_token(day: str) -> str:
    """Look something up with the user's token."""
    return f"ok {day} {len(await aget_access_token())}"


def make_vault() -> TokenVault:
    vault = TokenVault([Connection("calendar", issuer="https://upstream.example", client_id="agent",
                                   client_secret="s3cret-value", redirect_uri="http://127.0.0.1:8765/callback")],
                       store=InMemoryStore(), keyring=Keyring.generate())
    vault.import_token(ALICE, "calendar", access_token="opaque-access-token-0123456789", scopes=SCOPES,
                       expires_at=time.time() + 86_400)
    return vault


def _call(name: str) -> dict:
    return {"type": "tool_call", "name": name, "args": {"day": "mon"}, "id": "c1"}


async def _burst(tool: object, name: str) -> tuple[float, float]:
    """(max event-loop lag, wall time) in ms of 100 concurrent ``ainvoke`` calls of ``tool``."""
    async with LoopLag() as lag:
        started = time.perf_counter()
        with acting_as(ALICE):
            await asyncio.gather(*(tool.ainvoke({**_call(name), "id": f"c{i}"}) for i in range(100)))  # type: ignore[attr-defined]
        wall = (time.perf_counter() - started) * 1000
    return lag.max_ms, wall


def cold_refresh(quick: bool) -> dict[str, list[float]]:
    """100 concurrent wrapped calls whose token expired (one refresh at the LocalProvider's demo
    upstream over loopback HTTP) against 100 concurrent bare async calls, interleaved: max
    event-loop lag and wall time per round, in ms."""
    from langchain_agent_auth.devserver import LocalProvider

    out: dict[str, list[float]] = {"lag": [], "wall": [], "bare_lag": [], "bare_wall": []}
    with LocalProvider(ciba_interval=0) as idp:
        for _ in range(3 if quick else 7):
            tokens = idp.login("alice", scope="calendar.read", upstream=True)
            vault = TokenVault([Connection(idp.upstream_connection, issuer=idp.upstream_issuer,
                                           client_id=idp.upstream_client_id,
                                           client_secret=idp.upstream_client_secret,
                                           redirect_uri="http://127.0.0.1:8765/callback")],
                               store=InMemoryStore(), keyring=Keyring.generate())
            vault.import_token(ALICE, idp.upstream_connection, access_token=tokens["access_token"],
                               refresh_token=tokens["refresh_token"], scopes=SCOPES, expires_at=time.time() - 10)
            wrapped = with_vault(areads_token, vault, connection=idp.upstream_connection, scopes=SCOPES)
            lag, wall = asyncio.run(_burst(wrapped, "areads_token"))
            bare_lag, bare_wall = asyncio.run(_burst(abare, "abare"))
            for key, value in (("lag", lag), ("wall", wall), ("bare_lag", bare_lag), ("bare_wall", bare_wall)):
                out[key].append(value)
    return out


def run(quick: bool = False) -> list[Row]:
    rounds, round_s = rounds_for(quick)
    vault = make_vault()
    wrapped = with_vault(reads_token, vault, connection="calendar", scopes=SCOPES)
    awrapped = with_vault(areads_token, vault, connection="calendar", scopes=SCOPES)
    call, wcall, acall, awcall = _call("bare"), _call("reads_token"), _call("abare"), _call("areads_token")
    with acting_as(ALICE):
        sync = interleaved({"bare": lambda: bare.invoke(call), "ours": lambda: wrapped.invoke(wcall)},
                           rounds=rounds, round_s=round_s, clock=CPU)

        async def both() -> dict[str, list[float]]:
            return await ainterleaved({"bare": lambda: abare.ainvoke(acall), "ours": lambda: awrapped.ainvoke(awcall)},
                                      rounds=rounds, round_s=round_s, clock=CPU)

        asy = asyncio.run(both())
        hits = interleaved({"hit": lambda: vault.get_token(ALICE, "calendar", SCOPES)}, rounds=rounds,
                           round_s=round_s, clock=CPU)
    cold = cold_refresh(quick)
    rows = [
        paired("vault: hot path, sync tool", "CPU µs per call, token cached (invoke)", sync["ours"], sync["bare"], "µs",
               "bare sync tool.invoke", "goal <= 1.10x"),
        paired("vault: hot path, async tool", "CPU µs per call, token cached (ainvoke)", asy["ours"], asy["bare"], "µs",
               "bare async tool.ainvoke", "goal <= 1.10x"),
        single("vault: cache hit", "CPU µs per get_token (cached)", hits["hit"], "µs"),
        paired("vault: 100 concurrent, expired", "max event-loop lag (ms), 1 refresh over loopback", cold["lag"],
               cold["bare_lag"], "ms", "100 concurrent bare async calls", "ticker every 1 ms"),
        paired("vault: 100 concurrent, expired", "ms until all 100 calls returned", cold["wall"], cold["bare_wall"],
               "ms", "100 concurrent bare async calls"),
    ]
    return rows + peer_rows(quick)


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
