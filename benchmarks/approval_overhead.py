"""Approval guard overhead, like for like:

* a guarded call that needs no pause (``when=`` false) vs the same bare tool: sync tool with
  ``invoke`` against sync, async tool with ``ainvoke`` against async (process CPU time: no I/O);
* CIBA ``block`` mode with an instantly approved request, over real loopback HTTP to a
  provider in its own process that approves at once (``_instant_ciba.py``), against the
  protocol's floor on the same provider: two raw httpx round trips (``/bc-authorize``, the
  1 ms poll interval the provider asks for, then ``/token``) plus the bare tool call, sync
  against sync and async against async;
* the event loop's worst stall while 20 async ``block`` mode calls wait for a human at the
  LocalProvider (approved through its admin API from another thread).

Run: python benchmarks/approval_overhead.py [--quick]
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import threading
import time

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import httpx
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from benchmarks._util import CPU, LoopLag, Row, ainterleaved, interleaved, paired, print_table, rounds_for, single
from langchain_agent_auth.approval import CIBAApprover, InAppApprover, with_approval
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.oauth import OAuthClient, RetryPolicy

ALICE = UserIdentity(subject="alice", name="Alice")
ARGS = {"amount": 5, "to": "Bob"}
CALL = {"type": "tool_call", "name": "transfer", "args": ARGS, "id": "c1"}
ACALL = {**CALL, "name": "atransfer"}
CLIENT = ("agent", "secret-secret-0123456789")


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


@tool
async def atransfer(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


def start_instant() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).with_name("_instant_ciba.py"))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError("the instant CIBA provider did not start")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def no_pause(quick: bool) -> list[Row]:
    rounds, round_s = rounds_for(quick)
    keyring = Keyring.generate()
    skipped = with_approval(transfer, InAppApprover(keyring=keyring), when=lambda a: a["amount"] > 100)
    askipped = with_approval(atransfer, InAppApprover(keyring=keyring), when=lambda a: a["amount"] > 100)
    with acting_as(ALICE):
        sync = interleaved({"bare": lambda: transfer.invoke(CALL), "ours": lambda: skipped.invoke(CALL)},
                           rounds=rounds, round_s=round_s, clock=CPU)
        asy = asyncio.run(ainterleaved({"bare": lambda: atransfer.ainvoke(ACALL),
                                        "ours": lambda: askipped.ainvoke(ACALL)},
                                       rounds=rounds, round_s=round_s, clock=CPU))
    return [
        paired("approval: when= false, sync", "CPU µs per call (invoke)", sync["ours"], sync["bare"], "µs",
               "bare sync tool.invoke", "goal <= 1.05x"),
        paired("approval: when= false, async", "CPU µs per call (ainvoke)", asy["ours"], asy["bare"], "µs",
               "bare async tool.ainvoke", "goal <= 1.05x"),
    ]


def block_mode(quick: bool) -> list[Row]:
    rounds, round_s = rounds_for(quick)
    proc, url = start_instant()
    try:
        meta = {"issuer": url, "token_endpoint": f"{url}/token",
                "backchannel_authentication_endpoint": f"{url}/bc-authorize"}
        keyring = Keyring.generate()
        http, ahttp = httpx.Client(), httpx.AsyncClient()
        raw, araw = httpx.Client(auth=CLIENT), httpx.AsyncClient(auth=CLIENT)
        client = OAuthClient(url, *CLIENT, metadata=meta, retry=RetryPolicy(attempts=1), http_client=http,
                             async_http_client=ahttp)
        ciba = CIBAApprover(client, keyring=keyring, store=InMemoryStore())
        blocking = with_approval(transfer, ciba, mode="block")
        ablocking = with_approval(atransfer, ciba, mode="block")
        form = {"scope": "openid", "login_hint": "alice", "binding_message": "Send 5 to Bob"}

        def floor() -> object:
            answer = raw.post(f"{url}/bc-authorize", data=form).json()
            rid = answer["auth_req_id"]
            time.sleep(answer["interval"])  # CIBA: wait the interval the provider asks for
            raw.post(f"{url}/token", data={"grant_type": "urn:openid:params:grant-type:ciba",
                                           "auth_req_id": rid}).json()
            return transfer.invoke(CALL)

        async def afloor() -> object:
            answer = (await araw.post(f"{url}/bc-authorize", data=form)).json()
            rid = answer["auth_req_id"]
            await asyncio.sleep(answer["interval"])
            (await araw.post(f"{url}/token", data={"grant_type": "urn:openid:params:grant-type:ciba",
                                                   "auth_req_id": rid})).json()
            return await atransfer.ainvoke(ACALL)

        with acting_as(ALICE):
            sync = interleaved({"floor": floor, "ours": lambda: blocking.invoke(CALL)}, rounds=rounds,
                               round_s=round_s)
            asy = asyncio.run(ainterleaved({"floor": afloor, "ours": lambda: ablocking.ainvoke(ACALL)},
                                           rounds=rounds, round_s=round_s))
            cpu = interleaved({"floor": floor, "ours": lambda: blocking.invoke(CALL)}, rounds=rounds,
                              round_s=round_s, clock=CPU)
        for c in (http, raw):
            c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    label = "2 raw httpx round trips + the 1 ms interval + bare tool, same provider"
    note = "goal <= 1.20x"
    return [
        paired("approval: CIBA block, sync", "µs per instantly approved call (loopback HTTP)", sync["ours"],
               sync["floor"], "µs", label, note),
        paired("approval: CIBA block, async", "µs per instantly approved call (loopback HTTP)", asy["ours"],
               asy["floor"], "µs", label, note),
        paired("approval: CIBA block, sync", "client CPU µs per instantly approved call", cpu["ours"], cpu["floor"],
               "µs", label, "this process only: the provider runs in its own"),
    ]


def wait_lag(quick: bool) -> list[Row]:
    """Max event-loop lag while 20 async block-mode calls wait for approvals at the LocalProvider."""
    from langchain_agent_auth.devserver import LocalProvider

    lags = []
    n = 5 if quick else 20
    with LocalProvider(ciba_interval=1) as idp:
        for _ in range(2 if quick else 3):
            def approve_all() -> None:
                for item in idp.wait_for_pending("alice", count=n, timeout=30):
                    idp.approve(item["id"])

            approver = threading.Thread(target=approve_all)
            approver.start()

            async def burst() -> float:
                client = OAuthClient(idp.issuer, idp.client_id, idp.client_secret,
                                     async_http_client=httpx.AsyncClient())  # one per event loop
                ciba = CIBAApprover(client, keyring=Keyring.generate(), store=InMemoryStore())
                ablocking = with_approval(atransfer, ciba, mode="block")
                async with LoopLag() as lag:
                    with acting_as(UserIdentity(subject="alice", issuer=idp.issuer)):
                        await asyncio.gather(*(ablocking.ainvoke({**ACALL, "id": f"c{i}"}) for i in range(n)))
                return lag.max_ms

            lags.append(asyncio.run(burst()))
            approver.join()
    return [single(f"approval: {n} CIBA waits, async", "max event-loop lag (ms), LocalProvider", lags, "ms",
                   "ticker every 1 ms; approvals from another thread")]


def run(quick: bool = False) -> list[Row]:
    return no_pause(quick) + block_mode(quick) + wait_lag(quick)


if __name__ == "__main__":
    started = time.perf_counter()
    print_table(run(quick="--quick" in sys.argv))
    print(f"({time.perf_counter() - started:.0f} s)")
