"""CIBA ping mode: an ASGI endpoint the provider notifies when the user has answered.

In ping mode (OpenID CIBA Core 1.0, section 10.2) the client sends a random
``client_notification_token`` with the backchannel request; when the user answers, the
provider POSTs ``{"auth_req_id": ...}`` to the client's notification endpoint with that
token as a bearer credential. The client then fetches the result from the token endpoint
once, instead of polling every ``interval`` seconds.

:class:`PingReceiver` is that endpoint. It checks the bearer token against the one
expected for the ``auth_req_id`` with a constant-time comparison, answers 204, and wakes
whoever waits for that request: blocking code (:meth:`PingReceiver.wait`), coroutines
(:meth:`PingReceiver.wait_async`, never blocking the event loop) and an ``on_ping``
callback (a resumer). Expected tokens come from :meth:`PingReceiver.expect` (in memory)
or from a ``resolver`` (for example a durable store, so pings survive a restart).

Mount it in any ASGI server (uvicorn, Starlette ``Mount``). The provider only calls
``https`` endpoints.

Example:
    >>> import asyncio, httpx
    >>> receiver = PingReceiver()
    >>> token = receiver.expect("req-1")
    >>> async def provider_pings(bearer):
    ...     transport = httpx.ASGITransport(app=receiver)
    ...     async with httpx.AsyncClient(transport=transport, base_url="https://agent") as c:
    ...         r = await c.post("/ciba/notify", json={"auth_req_id": "req-1"},
    ...                          headers={"Authorization": f"Bearer {bearer}"})
    ...     return r.status_code
    >>> asyncio.run(provider_pings("wrong-token")), receiver.pinged("req-1")
    (401, False)
    >>> asyncio.run(provider_pings(token)), receiver.pinged("req-1")
    (204, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["PingReceiver", "new_notification_token"]

log = logging.getLogger(__name__)

Resolver = Callable[[str], "str | Awaitable[str | None] | None"]
OnPing = Callable[[str], "Awaitable[None] | None"]

_MAX_BODY = 8192
# Compared against when no token is expected, so unknown ids take as long as bad tokens.
_DUMMY = secrets.token_urlsafe(32)


def new_notification_token() -> str:
    """A fresh ``client_notification_token`` (256 bits, url-safe).

    Example:
        >>> len(new_notification_token()) >= 43
        True
    """
    return secrets.token_urlsafe(32)


class _Signal:
    """One auth_req_id's wake-up: a thread event plus the event loops waiting on it."""

    __slots__ = ("event", "loops", "token")

    def __init__(self, token: str) -> None:
        self.token = token
        self.event = threading.Event()
        self.loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def fire(self) -> None:
        self.event.set()
        for loop, ev in self.loops:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits there any more
                loop.call_soon_threadsafe(ev.set)


class PingReceiver:
    """ASGI app receiving CIBA ping notifications.

    Args:
        path: the path the provider posts to (others answer 404).
        resolver: ``resolver(auth_req_id)`` returns the expected notification token for
            requests not registered with :meth:`expect` (sync or async), or ``None``.
        on_ping: called with the ``auth_req_id`` after a ping verified (sync or async).
        retention: seconds a verified ping stays visible to :meth:`pinged` / waiters that
            come late.
    """

    def __init__(
        self,
        *,
        path: str = "/ciba/notify",
        resolver: Resolver | None = None,
        on_ping: OnPing | None = None,
        retention: float = 600.0,
    ) -> None:
        self.path = path
        self.resolver = resolver
        self.on_ping = on_ping
        self.retention = retention
        self._signals: dict[str, _Signal] = {}
        self._fired: dict[str, float] = {}
        self._lock = threading.Lock()
        #: Counters, for tests and metrics: accepted, rejected, bad_request.
        self.stats = {"accepted": 0, "rejected": 0, "bad_request": 0}

    def __repr__(self) -> str:
        return f"PingReceiver(path={self.path!r}, expected={len(self._signals)})"

    # -- registration and waiting

    def expect(self, auth_req_id: str, token: str | None = None) -> str:
        """Expect a ping for ``auth_req_id``; returns the token to send as
        ``client_notification_token`` (a new random one unless given)."""
        if not auth_req_id:
            raise ValueError("expect() needs an auth_req_id")
        token = token or new_notification_token()
        with self._lock:
            self._signals[auth_req_id] = _Signal(token)
        return token

    def forget(self, auth_req_id: str) -> None:
        """Stop expecting a ping for ``auth_req_id`` (after it completed)."""
        with self._lock:
            self._signals.pop(auth_req_id, None)
            self._fired.pop(auth_req_id, None)

    def pinged(self, auth_req_id: str) -> bool:
        """Whether a verified ping for ``auth_req_id`` arrived (and was not forgotten)."""
        with self._lock:
            return auth_req_id in self._fired

    def _pending(self, auth_req_id: str) -> _Signal | None:
        """The signal to wait on, ``None`` when the ping already came (hold the lock)."""
        if auth_req_id in self._fired:
            return None
        signal = self._signals.get(auth_req_id)
        if signal is None:
            raise KeyError("no ping is expected for this auth_req_id; call expect() first")
        return signal

    def wait(self, auth_req_id: str, timeout: float | None) -> bool:
        """Block until the ping for ``auth_req_id`` arrives or ``timeout`` passes."""
        with self._lock:
            signal = self._pending(auth_req_id)
        return True if signal is None else signal.event.wait(timeout)

    async def wait_async(self, auth_req_id: str, timeout: float | None) -> bool:  # noqa: ASYNC109
        """Await the ping for ``auth_req_id`` (or ``timeout``) without blocking the loop."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            signal = self._pending(auth_req_id)
            if signal is None or signal.event.is_set():
                return True
            entry = (loop, event)
            signal.loops.append(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in signal.loops:
                    signal.loops.remove(entry)

    # -- verification

    async def _expected(self, auth_req_id: str) -> tuple[str | None, _Signal | None]:
        with self._lock:
            signal = self._signals.get(auth_req_id)
        if signal is not None:
            return signal.token, signal
        if self.resolver is None:
            return None, None
        expected = self.resolver(auth_req_id)
        if inspect.isawaitable(expected):
            expected = await expected
        return (expected if isinstance(expected, str) and expected else None), None

    async def verify(self, auth_req_id: str, presented: str) -> bool:
        """Whether ``presented`` is the notification token expected for ``auth_req_id``;
        on success, wake its waiters. Constant-time in the token."""
        expected, signal = await self._expected(auth_req_id)
        ok = hmac.compare_digest((expected or _DUMMY).encode(), presented.encode()) and expected is not None
        if not ok:
            return False
        now = time.monotonic()
        with self._lock:
            self._fired[auth_req_id] = now
            for rid, at in list(self._fired.items()):
                if now - at > self.retention:
                    del self._fired[rid]
        if signal is not None:
            signal.fire()
        if self.on_ping is not None:
            result = self.on_ping(auth_req_id)
            if inspect.isawaitable(result):
                await result
        return True

    # -- ASGI

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover - websockets are not ours
            return
        if scope.get("path") != self.path:
            await _respond(send, 404, {"error": "not_found"})
            return
        if scope.get("method") != "POST":
            await _respond(send, 405, {"error": "method_not_allowed"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > _MAX_BODY:
                self.stats["bad_request"] += 1
                await _respond(send, 413, {"error": "invalid_request"})
                return
            if not message.get("more_body"):
                break
        presented = _bearer(scope)
        auth_req_id = _auth_req_id(body)
        if auth_req_id is None:
            self.stats["bad_request"] += 1
            await _respond(send, 400, {"error": "invalid_request"})
            return
        try:
            ok = presented is not None and await self.verify(auth_req_id, presented)
        except Exception as exc:  # a failing resolver/callback must not leak details
            log.warning("CIBA ping handling failed: %s", type(exc).__name__)
            await _respond(send, 500, {"error": "server_error"})
            return
        if not ok:
            self.stats["rejected"] += 1
            await _respond(send, 401, {"error": "invalid_token"},
                           [(b"www-authenticate", b'Bearer error="invalid_token"')])
            return
        self.stats["accepted"] += 1
        await send({"type": "http.response.start", "status": 204, "headers": [(b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            try:
                text = value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover
                return None
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _auth_req_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    rid = data.get("auth_req_id") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) and 0 < len(rid) <= 1024 else None


async def _respond(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: dict[str, Any],
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})
