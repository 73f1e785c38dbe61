"""Token endpoint requests for 100 sequential and 100 concurrent calls with an expired token
(counted at a stub provider answering in ~2 ms, rotating refresh tokens), through wrapped tools;
side by side with auth0-ai-langchain's ``with_token_vault`` when its venv exists.

Run: python benchmarks/vault_token_requests.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import httpx
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from benchmarks._util import Row, print_table
from benchmarks._vault_peer import peer
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.vault import Connection, TokenVault, get_access_token, with_vault

ALICE = UserIdentity(subject="alice", issuer="https://idp.example")
ISSUER = "https://upstream.example"
META = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token", "authorization_endpoint": f"{ISSUER}/authorize"}


class Provider:
    """Counts token requests; rotates refresh tokens; ~2 ms per answer."""

    def __init__(self) -> None:
        self.requests = 0
        self.n = 0
        self.lock = threading.Lock()

    def _answer(self) -> httpx.Response:
        with self.lock:
            self.requests += 1
            self.n += 1
            n = self.n
        return httpx.Response(200, json={"access_token": f"at-{n}-0123456789abcdef", "expires_in": 3600,
                                         "refresh_token": f"rt-{n}-0123456789abcdef", "token_type": "Bearer"})

    def sync(self, request: httpx.Request) -> httpx.Response:
        time.sleep(0.002)
        return self._answer()

    async def async_(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.002)
        return self._answer()


@tool
def reads_token(day: str) -> str:
    """Look something up with the user's token."""
    return f"ok {day} {len(get_access_token())}"


def setup() -> tuple[TokenVault, Provider, object]:
    provider = Provider()
    vault = TokenVault(
        [Connection("calendar", metadata=META, client_id="agent", client_secret="s3cret-value",
                    redirect_uri="http://127.0.0.1:8765/callback")],
        store=InMemoryStore(), keyring=Keyring.generate(),
        http_client=httpx.Client(transport=httpx.MockTransport(provider.sync)),
        async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(provider.async_)))
    vault.import_token(ALICE, "calendar", access_token="at-0-expired-0123456789", refresh_token="rt-0-0123456789ab",
                       scopes=["calendar.read"], expires_at=time.time() - 10)
    return vault, provider, with_vault(reads_token, vault, connection="calendar", scopes=["calendar.read"])


def call(i: int) -> dict:
    return {"type": "tool_call", "name": "reads_token", "args": {"day": "mon"}, "id": f"c{i}"}


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    theirs = peer(quick)
    label = theirs["source"]

    _, provider, wrapped = setup()
    with acting_as(ALICE):
        for i in range(100):
            wrapped.invoke(call(i))
    rows.append(Row("vault: token requests", "100 sequential calls, expired token", provider.requests,
                    theirs.get("sequential_fetches"), "req", f"with_token_vault ({label})"))

    _, provider, wrapped = setup()

    async def concurrent() -> None:
        with acting_as(ALICE):
            await asyncio.gather(*(wrapped.ainvoke(call(i)) for i in range(100)))

    asyncio.run(concurrent())
    rows.append(Row("vault: token requests", "100 concurrent calls (asyncio), expired", provider.requests,
                    theirs.get("concurrent_fetches"), "req", f"with_token_vault ({label})"))

    _, provider, wrapped = setup()
    start = threading.Barrier(100)

    def one(i: int) -> str:
        start.wait()
        with acting_as(ALICE):
            return wrapped.invoke(call(i))

    with ThreadPoolExecutor(100) as pool:
        list(pool.map(one, range(100)))
    rows.append(Row("vault: token requests", "100 concurrent calls (threads), expired", provider.requests, None,
                    "req", "", "with_token_vault has no sync path" if not theirs.get("sync_invoke_works", False)
                    else ""))
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
