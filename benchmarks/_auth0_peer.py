"""Measures auth0-ai-langchain's ``with_token_vault`` (run inside its own venv: it needs
langchain-core < 0.4). Prints one JSON line. Auth0's token endpoint is replaced by a stub
(``GetToken.access_token_for_connection``) that counts calls and takes ``FETCH_MS``.

    /tmp/a0/bin/python benchmarks/_auth0_peer.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # _util: the same harness (stdlib only)
from _util import CPU, LoopLag, ainterleaved, rounds_for

FETCH_MS = 2.0


def main(quick: bool) -> None:
    from auth0.authentication.get_token import GetToken
    from auth0_ai_langchain.auth0_ai import Auth0AI
    from langchain_core.tools import tool

    fetches = [0]

    def fake_fetch(self, **kwargs):
        fetches[0] += 1
        time.sleep(FETCH_MS / 1000)  # the real call is a blocking `requests` POST
        return {"access_token": "ya29.stub-token", "expires_in": 3600, "scope": "openid", "token_type": "Bearer"}

    GetToken.access_token_for_connection = fake_fetch

    @tool
    async def bare(day: str) -> str:
        """Look something up."""
        return f"ok {day}"

    ai = Auth0AI(auth0={"domain": "tenant.example.auth0.com", "client_id": "agent", "client_secret": "secret"})
    wrapped = ai.with_token_vault(connection="google-oauth2", scopes=["openid"],
                                  refresh_token=lambda *_, **__: "auth0-refresh-token")(bare)

    def call(i: int = 1) -> dict:
        return {"type": "tool_call", "name": "bare", "args": {"day": "mon"}, "id": f"c{i}"}

    rounds, round_s = rounds_for(quick)

    async def measure() -> dict:
        cfg = {"configurable": {"thread_id": "t-hot"}}
        hot = await ainterleaved({"bare": lambda: bare.ainvoke(call(), cfg),
                                  "ours": lambda: wrapped.ainvoke(call(), cfg)}, rounds=rounds, round_s=round_s,
                                 clock=CPU)
        lags, bare_lags = [], []
        for r in range(3 if quick else 7):
            async with LoopLag() as lag:
                await asyncio.gather(*(wrapped.ainvoke(call(i), {"configurable": {"thread_id": f"t-lag-{r}"}})
                                       for i in range(100)))
            lags.append(lag.max_ms)
            async with LoopLag() as lag:
                await asyncio.gather(*(bare.ainvoke(call(i), {"configurable": {"thread_id": f"t-lag-{r}"}})
                                       for i in range(100)))
            bare_lags.append(lag.max_ms)
        fetches[0] = 0
        cold = {"configurable": {"thread_id": "t-cold-seq"}}
        for i in range(100):
            await wrapped.ainvoke(call(i), cold)
        sequential = fetches[0]
        fetches[0] = 0
        conc = {"configurable": {"thread_id": "t-cold-conc"}}
        started = time.perf_counter()
        await asyncio.gather(*(wrapped.ainvoke(call(i), conc) for i in range(100)))
        conc_ms = (time.perf_counter() - started) * 1000
        try:
            wrapped.invoke(call(), cfg)
            sync_ok = True
        except Exception:
            sync_ok = False
        return {"bare_us": hot["bare"], "wrapped_us": hot["ours"], "lag_ms": lags, "bare_lag_ms": bare_lags,
                "sequential_fetches": sequential,
                "concurrent_fetches": fetches[0], "concurrent_ms": conc_ms, "sync_invoke_works": sync_ok}

    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main("--quick" in sys.argv)
