"""Approval guard overhead: a guarded tool call that needs no pause (``when=`` false) vs the
bare tool; and CIBA ``block`` mode with an instantly approved request (peers: 17.5x a bare
call, 2 HTTP requests per call). Run: python benchmarks/approval_overhead.py
"""

from __future__ import annotations

import sys

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import httpx
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from benchmarks._util import Row, latency_us, per_second, print_table
from langchain_agent_auth.approval import CIBAApprover, InAppApprover, with_approval
from langchain_agent_auth.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.oauth import OAuthClient, RetryPolicy

ALICE = UserIdentity(subject="alice", name="Alice")
CALL = {"type": "tool_call", "name": "transfer", "args": {"amount": 5, "to": "Bob"}, "id": "c1"}


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


class InstantProvider:
    """Answers bc-authorize and the first poll at once (interval 1 ms): the cheapest approval."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if request.url.path == "/bc-authorize":
            return httpx.Response(200, json={"auth_req_id": f"rid-{self.requests:040d}", "expires_in": 60,
                                             "interval": 0.001})
        return httpx.Response(200, json={"access_token": "at-" + "x" * 40, "token_type": "Bearer",
                                         "expires_in": 60})


def run(quick: bool = False) -> list[Row]:
    seconds = 0.5 if quick else 1.5
    keyring = Keyring.generate()
    skipped = with_approval(transfer, InAppApprover(keyring=keyring), when=lambda args: args["amount"] > 100)
    bare = ours = 0.0
    with acting_as(ALICE):
        for _ in range(3):  # interleaved, best of each: warm-up and noise hit both alike
            bare = max(bare, per_second(lambda: transfer.invoke(CALL), seconds=seconds, repeat=1))
            ours = max(ours, per_second(lambda: skipped.invoke(CALL), seconds=seconds, repeat=1))
        ours_us, _ = latency_us(lambda: skipped.invoke(CALL), n=500 if quick else 3000)
        bare_us, _ = latency_us(lambda: transfer.invoke(CALL), n=500 if quick else 3000)

    provider = InstantProvider()
    meta = {"issuer": "https://idp.bench", "token_endpoint": "https://idp.bench/token",
            "backchannel_authentication_endpoint": "https://idp.bench/bc-authorize"}
    client = OAuthClient("https://idp.bench", "agent", "secret-secret", metadata=meta, retry=RetryPolicy(attempts=1),
                         http_client=httpx.Client(transport=httpx.MockTransport(provider)))
    ciba = CIBAApprover(client, keyring=keyring, store=InMemoryStore())
    blocking = with_approval(transfer, ciba, mode="block")
    args = {"amount": 5, "to": "Bob"}
    with acting_as(ALICE):
        n_before = provider.requests
        blocked = per_second(lambda: blocking.invoke(args), seconds=seconds, repeat=1)
        calls = 0

        def counted() -> None:
            nonlocal calls
            calls += 1
            blocking.invoke(args)

        n_before = provider.requests
        for _ in range(200):
            counted()
        per_call = (provider.requests - n_before) / calls
    return [
        Row("approval: no pause (when=)", "calls/s, guarded tool, when= false", ours, bare, "/s",
            "bare tool.invoke", "ratio < 1 = slower"),
        Row("approval: no pause (when=)", "us per call added", ours_us - bare_us, None, "us"),
        Row("approval: CIBA block mode", "calls/s, instantly approved (MockTransport)", blocked, bare, "/s",
            "bare tool.invoke", f"{per_call:.0f} HTTP requests per call; peers 17.5x slower, 2 requests"),
    ]


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
