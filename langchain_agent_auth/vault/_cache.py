"""The in-memory token cache and single-flight fetching.

Keys are ``(user key, connection, sorted scopes, variant)``: the user key carries issuer,
tenant and subject (invariant 5), so one user's token can never be served to another.

:class:`SingleFlight` makes concurrent misses for one key share a single fetch, whether the
callers are threads, asyncio tasks on one loop, tasks on several loops, or a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, TypeVar

from langchain_agent_auth.vault._model import AccessToken

T = TypeVar("T")

CacheKey = tuple[str, str, tuple[str, ...], str]


class TokenCache:
    """A bounded LRU of :class:`AccessToken` honouring expiry with a leeway.

    Example:
        >>> cache = TokenCache(leeway=30, clock=lambda: 1000.0)
        >>> key = ("iss|-|alice", "calendar", ("calendar.read",), "")
        >>> cache.put(key, AccessToken("t", "calendar", expires_at=1100.0))
        >>> cache.get(key).connection
        'calendar'
        >>> cache.put(key, AccessToken("t", "calendar", expires_at=1020.0))
        >>> cache.get(key) is None
        True
    """

    def __init__(self, *, leeway: float = 60.0, max_entries: int = 10_000, default_ttl: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.leeway = leeway
        self.max_entries = max_entries
        self.default_ttl = default_ttl
        self._clock = clock
        self._items: OrderedDict[CacheKey, tuple[AccessToken, float]] = OrderedDict()
        self._lock = threading.Lock()

    def fresh_until(self, token: AccessToken) -> float:
        """When the cached token stops being served (expiry minus leeway)."""
        if token.expires_at is None:
            return self._clock() + self.default_ttl
        return token.expires_at - self.leeway

    def get(self, key: CacheKey) -> AccessToken | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            with self._lock:
                if self._items.get(key) is item:
                    del self._items[key]
            return None
        return item[0]

    def put(self, key: CacheKey, token: AccessToken) -> None:
        until = self.fresh_until(token)
        with self._lock:
            if until <= self._clock():
                self._items.pop(key, None)
                return
            self._items[key] = (token, until)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def invalidate(self, user_key: str, connection: str, token: str | None = None) -> int:
        """Drop a user's cached tokens for a connection (only those equal to ``token`` if given)."""
        with self._lock:
            doomed = [k for k, (t, _) in self._items.items()
                      if k[0] == user_key and k[1] == connection and (token is None or t.token == token)]
            for k in doomed:
                del self._items[k]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class _Flight:
    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SingleFlight:
    """At most one fetch per key at a time; everyone else waits for its outcome.

    Example:
        >>> calls = []
        >>> sf = SingleFlight()
        >>> sf.run("k", lambda: calls.append(1) or "token")
        'token'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def _join(self, key: Hashable) -> tuple[_Flight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight()
            return flight, True

    def _finish(self, key: Hashable, flight: _Flight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.done.set()
            waiters, flight.waiters = flight.waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_wake, fut)

    @contextlib.contextmanager
    def _leading(self, key: Hashable, flight: _Flight) -> Iterator[None]:
        """The leader's bookkeeping: its error (a cancellation too) is the flight's, and the
        followers are woken whatever happens."""
        try:
            yield
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            self._finish(key, flight)

    def run(self, key: Hashable, fetch: Callable[[], T]) -> T:
        """Run ``fetch`` unless a fetch for ``key`` is in flight; then wait for its result."""
        while True:
            flight, leader = self._join(key)
            if leader:
                with self._leading(key, flight):
                    flight.result = fetch()
                return flight.result
            flight.done.wait()
            if isinstance(flight.error, asyncio.CancelledError):
                continue  # the leader was cancelled, not the fetch refused: try again
            return flight.outcome()

    async def arun(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """Async :meth:`run`; waiting never blocks the event loop."""
        while True:
            flight, leader = self._join(key)
            if leader:
                with self._leading(key, flight):
                    flight.result = await fetch()
                return flight.result
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            with self._lock:
                if not flight.done.is_set():
                    flight.waiters.append((loop, fut))
                else:
                    fut.set_result(None)
            await fut
            if isinstance(flight.error, asyncio.CancelledError):
                continue
            return flight.outcome()

    def in_flight(self) -> int:
        return len(self._flights)
