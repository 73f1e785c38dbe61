"""JWKS fetching and caching.

Keys are cached for ``ttl`` seconds. A token with an unknown ``kid`` triggers at most one
refetch per ``refetch_cooldown`` seconds, so a flood of tokens with random kids cannot turn
into a flood of requests to the provider. Fetches are single-flight: however many threads
and asyncio tasks need keys at once (a cold cache, a key set at expiry), one request is in
flight and everyone else waits for its result (or its error). A caller that took part in a
fetch (led it or waited for it) does not refetch for an unknown kid: the key set it sees
is as new as the provider's.

Example:
    >>> from joserfc.jwk import RSAKey
    >>> key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
    >>> cache = JWKSCache(jwks={"keys": [key.as_dict(private=False)]})
    >>> flow = cache.key_for("k1", "RS256")
    >>> try:
    ...     next(flow)
    ... except StopIteration as done:
    ...     print(done.value.kid)
    k1
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from langchain_agent_auth.core.effects import arun, run
from langchain_agent_auth.core.errors import ProtocolError, ProviderUnavailableError, UnknownKeyError
from langchain_agent_auth.oauth._flight import Flight, FlightAbandoned, SingleFlight
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, send_with_retries
from langchain_agent_auth.oauth._http import USER_AGENT, describe, json_object

__all__ = ["JWKSCache", "PublicKey"]

PublicKey = RSAKey | ECKey | OKPKey
_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def _kty(alg: str) -> str | None:
    return _KTY_FOR_ALG.get(alg[:2])


class JWKSCache:
    """Public keys of one issuer, fetched from ``jwks_uri`` (or given statically).

    Args:
        jwks_uri: where to fetch the key set; may be set later (after discovery).
        jwks: a static key set (dict with ``keys``) instead of fetching.
        ttl: seconds a fetched key set stays fresh.
        refetch_cooldown: minimum seconds between refetches caused by unknown kids.
    """

    def __init__(
        self,
        jwks_uri: str | None = None,
        *,
        jwks: Mapping[str, Any] | None = None,
        ttl: float = 3600.0,
        refetch_cooldown: float = 60.0,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_uri = jwks_uri
        self.ttl = ttl
        self.refetch_cooldown = refetch_cooldown
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, PublicKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._static = jwks is not None
        self._flights = SingleFlight()
        self.fetch_count = 0
        if jwks is not None:
            self._install(jwks)

    # -- state

    def _install(self, jwks: Mapping[str, Any]) -> None:
        raw = jwks.get("keys")
        if not isinstance(raw, list):
            raise ProtocolError("JWKS has no 'keys' list")
        keys: dict[str | None, PublicKey] = {}
        for item in raw:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                continue
            if any(p in item for p in ("d", "p", "q")):
                continue  # never accept private key material from a JWKS
            try:
                key = KeySet.import_key_set({"keys": [item]}).keys[0]
            except Exception:  # noqa: S112 - a key we cannot use (unknown kty...) is skipped
                continue
            if isinstance(key, OctKey):
                continue  # symmetric keys have no place in a public JWKS
            keys[item.get("kid")] = key
        with self._lock:
            self._keys = keys
            self._fetched_at = self._clock()

    @property
    def static(self) -> bool:
        """Whether the key set was given rather than fetched."""
        return self._static

    def peek(self, kid: str | None, alg: str) -> PublicKey | None:
        """The cached key for ``kid`` if the cache is fresh, without any I/O."""
        return self._pick(kid, alg) if self._fresh() else None

    def _fresh(self) -> bool:
        if self._static:
            return True
        return self._fetched_at is not None and self._clock() - self._fetched_at < self.ttl

    def _pick(self, kid: str | None, alg: str) -> PublicKey | None:
        with self._lock:
            keys = self._keys
        if kid is not None:
            key = keys.get(kid)
            if key is not None and _kty(alg) not in (None, key.key_type):
                return None
            return key
        kty = _kty(alg)
        matching = [k for k in keys.values() if k.key_type == kty]
        return matching[0] if len(matching) == 1 else None

    # -- flows

    def fetch(self) -> Flow[None]:
        """Fetch the key set now (a flow)."""
        if not self.jwks_uri:
            raise ProtocolError("no jwks_uri to fetch keys from")
        request = httpx.Request(
            "GET", self.jwks_uri, headers={"accept": "application/json", "user-agent": USER_AGENT},
            extensions={"timeout": httpx.Timeout(self.timeout).as_dict()},
        )
        response = yield from send_with_retries(request, idempotent=True, policy=self.retry)
        if response.status_code >= 500:
            raise ProviderUnavailableError(f"JWKS fetch failed: {describe(response)}", status_code=response.status_code)
        if response.status_code != 200:
            raise ProtocolError(f"JWKS fetch failed: {describe(response)}", status_code=response.status_code)
        self.fetch_count += 1
        self._install(json_object(response, what="JWKS"))

    def key_for(self, kid: str | None, alg: str) -> Flow[PublicKey]:
        """The key for ``kid`` (fetching or refetching within the cooldown rules)."""
        if not self._fresh():
            yield from self.fetch()
        key = self._pick(kid, alg)
        if key is not None:
            return key
        if not self._static and self._may_refetch():
            yield from self.fetch()
            key = self._pick(kid, alg)
            if key is not None:
                return key
        raise self._unknown(kid, alg)

    # -- single-flight entry points (the verifier's; ``key_for`` is the hand-driven form)

    def shared_key(self, kid: str | None, alg: str) -> Flow[PublicKey]:
        """:meth:`key_for` with one fetch in flight at a time across threads and tasks."""
        fetched = False
        while True:
            step = self._plan(kid, alg, fetched)
            if not isinstance(step, tuple):
                return step
            flight, lead = step
            try:
                yield from (self._flights.leading(flight, self.fetch()) if lead else flight.joined())
            except FlightAbandoned:
                continue
            fetched = True

    def get_key(self, kid: str | None, alg: str, client: httpx.Client) -> PublicKey:
        """The key for ``kid``, fetching with ``client``; one fetch in flight at a time."""
        return run(self.shared_key(kid, alg), http=client)

    async def aget_key(self, kid: str | None, alg: str, client: httpx.AsyncClient) -> PublicKey:
        """Async :meth:`get_key`; waiting for another caller's fetch never blocks the loop."""
        return await arun(self.shared_key(kid, alg), http=client)

    def _plan(self, kid: str | None, alg: str, fetched: bool) -> PublicKey | tuple[Flight, bool]:
        """The next step for one caller: a key, or a flight to lead or to follow.

        ``fetched``: this caller already took part in a fetch, so the key set it sees is
        as new as the provider's; an unknown kid is final.
        """
        if self._static or fetched or self._fresh():
            key = self._pick(kid, alg)
            if key is not None:
                return key
            if self._static or fetched:
                raise self._unknown(kid, alg)

        def should_start() -> bool:
            if not self._fresh():
                return True
            if self._pick(kid, alg) is not None:
                return False  # another caller's fetch just brought the key
            return self._may_refetch()

        flight, lead = self._flights.begin(should_start)
        if flight is None:
            key = self._pick(kid, alg) if self._fresh() else None
            if key is None:
                raise self._unknown(kid, alg)
            return key
        return flight, lead

    @staticmethod
    def _unknown(kid: str | None, alg: str) -> UnknownKeyError:
        shown = "no kid" if kid is None else f"kid {kid[:64]!r}"
        return UnknownKeyError(f"no signing key matches {shown} ({alg})", reason="kid")

    def _may_refetch(self) -> bool:
        """At most one unknown-kid refetch per cooldown period."""
        with self._lock:
            last = self._last_attempt
            now = self._clock()
            if last is not None and now - last < self.refetch_cooldown:
                return False
            self._last_attempt = now
            return True
