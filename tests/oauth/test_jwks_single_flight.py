"""JWKS fetches are single-flight: many concurrent callers, one request at a real loopback server.

The server holds each JWKS answer until every other caller is parked on the flight in
progress (or until all callers' requests arrived, which is what happened before the fix),
so the callers really are concurrent; the counts are taken at the server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from langchain_agent_auth import errors as E
from langchain_agent_auth.core.effects import Call, arun
from langchain_agent_auth.oauth import JWKSCache, JWTVerifier, RetryPolicy, _flight

N = 40
KEY = RSAKey.generate_key(2048, parameters={"kid": "good", "alg": "RS256", "use": "sig"})
STRANGERS = [RSAKey.generate_key(2048, parameters={"kid": f"random-{i}"}) for i in range(4)]


class KeyServer:
    """Discovery and JWKS on loopback; counts requests; holds answers until ``expected`` callers wait."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.status = 200
        self.expected = 0
        self.waiting = 0
        self.cond = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server.cond:
                    server.hits[self.path] += 1
                    # Hold until the other callers are parked (or all sent a request themselves).
                    server.cond.wait_for(
                        lambda: server.waiting + server.hits[self.path] >= server.expected, timeout=20
                    )
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": server.issuer, "jwks_uri": server.issuer + "/jwks"}
                else:
                    body = {"keys": [KEY.as_dict(private=False)]}
                data = json.dumps(body).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def parked(self) -> None:
        with self.cond:
            self.waiting += 1
            self.cond.notify_all()

    def reset(self, expected: int) -> None:
        with self.cond:
            self.expected, self.waiting = expected, 0

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyServer]:
    srv = KeyServer()
    wait, await_ = _flight.Flight.wait, _flight.Flight.await_

    def counted_wait(self: _flight.Flight) -> None:
        srv.parked()
        wait(self)

    async def counted_await(self: _flight.Flight) -> None:
        srv.parked()
        await await_(self)

    monkeypatch.setattr(_flight.Flight, "wait", counted_wait)
    monkeypatch.setattr(_flight.Flight, "await_", counted_await)
    yield srv
    srv.close()


def token(key: RSAKey = KEY, kid: str | None = None, iss: str = "https://issuer.test") -> str:
    claims = {"iss": iss, "aud": "api", "sub": "alice", "exp": 4_000_000_000, "iat": 1}
    return jwt.encode({"alg": "RS256", "kid": kid or key.kid, "typ": "at+jwt"}, claims, key)


def make_verifier(server: KeyServer, *, cache: JWKSCache | None = None, discover: bool = False) -> JWTVerifier:
    retry = RetryPolicy(attempts=1)
    if discover:
        return JWTVerifier(server.issuer, audience="api", retry=retry, jwks_cache=cache)
    cache = cache or JWKSCache(server.issuer + "/jwks", retry=retry)
    return JWTVerifier("https://issuer.test", audience="api", jwks_cache=cache, retry=retry)


def run_threads(verifier: JWTVerifier, tokens: list[str]) -> list[object]:
    def one(tok: str) -> object:
        try:
            return verifier.verify(tok)["sub"]
        except E.AgentAuthError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        return list(pool.map(one, tokens))


async def run_tasks(verifier: JWTVerifier, tokens: list[str]) -> list[object]:
    results = await asyncio.gather(*(verifier.averify(t) for t in tokens), return_exceptions=True)
    return [r["sub"] if isinstance(r, dict) else r for r in results]


def random_kid_tokens() -> list[str]:
    return [token(STRANGERS[i % len(STRANGERS)], kid=f"random-{i}") for i in range(N)]


async def verify_all(mode: str, verifier: JWTVerifier, tokens: list[str]) -> list[object]:
    if mode == "sync":
        return run_threads(verifier, tokens)
    return await run_tasks(verifier, tokens)


async def test_cold_verifier_random_kids_one_fetch(server: KeyServer, mode: str):
    server.reset(N)
    results = await verify_all(mode, make_verifier(server), random_kid_tokens())
    assert all(isinstance(r, E.UnknownKeyError) for r in results)
    assert server.hits["/jwks"] == 1


async def test_cold_verifier_through_discovery_one_request_each(server: KeyServer, mode: str):
    server.reset(N)
    results = await verify_all(mode, make_verifier(server, discover=True), [token(iss=server.issuer)] * N)
    assert results == ["alice"] * N
    assert server.hits == Counter({"/.well-known/openid-configuration": 1, "/jwks": 1})


async def test_key_set_expiry_one_refetch(server: KeyServer, mode: str):
    now = [1000.0]
    cache = JWKSCache(server.issuer + "/jwks", ttl=300, retry=RetryPolicy(attempts=1), clock=lambda: now[0])
    verifier = make_verifier(server, cache=cache)
    server.reset(1)
    assert verifier.verify(token())["sub"] == "alice"
    assert server.hits["/jwks"] == 1
    now[0] += 301  # the key set is now stale: every caller needs a refetch
    server.reset(N)
    results = await verify_all(mode, verifier, [token()] * N)
    assert results == ["alice"] * N
    assert server.hits["/jwks"] == 2


async def test_a_failed_fetch_reaches_every_waiter(server: KeyServer, mode: str):
    server.status = 503
    server.reset(N)
    results = await verify_all(mode, make_verifier(server), [token()] * N)
    assert all(isinstance(r, E.ProviderUnavailableError) for r in results), results[:3]
    assert server.hits["/jwks"] == 1


async def test_unknown_kid_after_a_warm_cache_refetches_once(server: KeyServer, mode: str):
    """The cooldown still holds: a flood of random kids against a warm cache costs one refetch."""
    verifier = make_verifier(server)
    server.reset(1)
    assert verifier.verify(token())["sub"] == "alice"
    server.reset(N)
    results = await verify_all(mode, verifier, random_kid_tokens())
    assert all(isinstance(r, E.UnknownKeyError) for r in results)
    assert server.hits["/jwks"] == 2


def _one(fetch):
    """A flow of one async step (the leader's fetch)."""
    yield Call(lambda: None, fetch)


async def test_cancelled_leader_lets_a_follower_fetch():
    flights = _flight.SingleFlight()
    flight, lead = flights.begin()
    assert lead
    started = asyncio.Event()

    async def leader() -> None:
        async def fetch() -> None:
            started.set()
            await asyncio.Event().wait()  # never answers
        await arun(flights.leading(flight, _one(fetch)))

    task = asyncio.create_task(leader())
    await started.wait()
    follower = asyncio.create_task(flight.await_())
    task.cancel()
    with pytest.raises(_flight.FlightAbandoned):
        await follower
    assert flights.begin()[1] is True  # the slot is free: the next caller leads


def test_a_follower_whose_loop_closed_does_not_break_the_leader():
    flights = _flight.SingleFlight()
    flight, _ = flights.begin()
    loop = asyncio.new_event_loop()
    task = loop.create_task(flight.await_())
    loop.run_until_complete(asyncio.sleep(0))  # the follower is parked on the flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()
    flights.end(flight)  # wakes a closed loop: nothing to do, no error
    flight.wait()
    assert flights.begin()[1] is True
