"""Faults of the demo upstream, on purpose: make its token endpoint, its revocation endpoint and
its calendar API fail or lag over real HTTP, so an agent's error handling (retries, typed
errors, re-authorization, single-flight refresh) can be tested against the provider a user runs.

Each endpoint has a queue of faults (each one answers one request, in order) and a delay (every
request waits that long first, until cleared). What a fault answers:

===================  =================================================================
``500``              HTTP 500, plain text (a crashed server)
``503``              HTTP 503 ``temporarily_unavailable`` with ``Retry-After: 1``
``html``             HTTP 200 with an HTML page (a captive portal or a gateway's login)
``slow``             HTTP 503 after :data:`SLOW_SECONDS` (past a client's time limit)
``invalid_grant``    HTTP 400 ``invalid_grant`` (the user withdrew consent)
``invalid_scope``    HTTP 400 ``invalid_scope``
``unauthorized``     HTTP 401 ``invalid_token`` with a ``WWW-Authenticate`` challenge
===================  =================================================================

Faults at ``token`` also reach the provider's own Token Vault exchanges, which call the upstream's
token endpoint in-process. An outage (``upstream_outage(token=n, api=m)``) is ``n`` / ``m`` queued
``503`` faults.

Dev only: faults are set through the admin API (loopback + admin token), live in memory and are
gone on restart. Every call to a faultable endpoint is counted (``stats()["upstream_calls"]``),
answered or faulted, and every fault served (``stats()["upstream_faults"]``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, PlainTextResponse, Response

from langchain_agent_auth.devserver._web import json_error

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

ENDPOINTS = ("token", "revoke", "api")
KINDS = ("500", "503", "html", "slow", "invalid_grant", "invalid_scope", "unauthorized")
SLOW_SECONDS = 3.0
MAX_DELAY = 30.0
MAX_QUEUED = 100


class Faults:
    """The armed faults and delays of the demo upstream's endpoints (thread-safe).

    Example:
        >>> faults = Faults()
        >>> faults.add("token", ["500", "invalid_grant"], delay=0.5)["token"]
        {'queued': ['500', 'invalid_grant'], 'delay': 0.5}
        >>> faults.take("token"), faults.take("token"), faults.take("token")
        ((0.5, '500'), (0.5, 'invalid_grant'), (0.5, None))
        >>> faults.add("api", ["boom"])
        Traceback (most recent call last):
        ...
        ValueError: unknown fault 'boom' (one of 500, 503, html, slow, invalid_grant, invalid_scope, unauthorized)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[str]] = {name: deque() for name in ENDPOINTS}
        self._delays: dict[str, float] = dict.fromkeys(ENDPOINTS, 0.0)

    def add(self, endpoint: str, kinds: list[str], *, delay: float | None = None) -> dict[str, Any]:
        """Queue ``kinds`` at ``endpoint`` and set its delay (``None`` keeps it); returns :meth:`view`."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r} (one of {', '.join(ENDPOINTS)})")
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown fault {kind!r} (one of {', '.join(KINDS)})")
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY
        ):
            raise ValueError(f"delay must be a number of seconds in [0, {MAX_DELAY:g}]")
        with self._lock:
            if len(self._queues[endpoint]) + len(kinds) > MAX_QUEUED:
                raise ValueError(f"at most {MAX_QUEUED} faults may wait at one endpoint")
            self._queues[endpoint].extend(kinds)
            if delay is not None:
                self._delays[endpoint] = float(delay)
        return self.view()

    def clear(self) -> None:
        """Drop every queued fault and delay."""
        with self._lock:
            for name in ENDPOINTS:
                self._queues[name].clear()
                self._delays[name] = 0.0

    def view(self) -> dict[str, Any]:
        """``{endpoint: {"queued": [...], "delay": seconds}}``."""
        with self._lock:
            return {name: {"queued": list(self._queues[name]), "delay": self._delays[name]} for name in ENDPOINTS}

    def take(self, endpoint: str) -> tuple[float, str | None]:
        """The delay of ``endpoint`` and its next fault (consumed), if one is queued."""
        with self._lock:
            queue = self._queues[endpoint]
            return self._delays[endpoint], (queue.popleft() if queue else None)


def fault_response(kind: str) -> Response:
    """What a fault of ``kind`` answers (``slow`` answers its 503 at once; :func:`injected` waits)."""
    if kind == "500":
        return PlainTextResponse("upstream exploded", status_code=500)
    if kind in ("503", "slow"):
        return json_error(503, "temporarily_unavailable", "try again later", {"Retry-After": "1"})
    if kind == "html":
        return HTMLResponse("<html><body><h1>Gateway sign-in</h1></body></html>", status_code=200)
    if kind == "unauthorized":
        return json_error(401, "invalid_token", "the access token was revoked",
                          {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return json_error(400, kind, f"injected {kind}")


def _take(provider: Provider, endpoint: str) -> tuple[float, str | None]:
    """Count a call to ``endpoint``; its wait (delay, plus :data:`SLOW_SECONDS` for ``slow``)
    and its next fault, if one is queued."""
    provider.count("upstream_calls", endpoint)
    delay, kind = provider.faults.take(endpoint)
    if kind is not None:
        provider.count("upstream_faults", kind)
    return delay + (SLOW_SECONDS if kind == "slow" else 0.0), kind


async def injected(provider: Provider, endpoint: str) -> Response | None:
    """Count a call to ``endpoint``, wait its delay, and answer its next fault if one is queued."""
    wait, kind = _take(provider, endpoint)
    if wait:
        await asyncio.sleep(wait)
    return None if kind is None else fault_response(kind)


def injected_sync(provider: Provider, endpoint: str) -> str | None:
    """:func:`injected` for a caller inside the provider that runs in a worker thread (the Token
    Vault exchange calls the upstream's token endpoint in-process): the fault's name, or ``None``."""
    wait, kind = _take(provider, endpoint)
    if wait:
        time.sleep(wait)
    return kind
