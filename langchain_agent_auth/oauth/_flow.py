"""Sans-I/O flows and their two drivers.

A protocol flow is a flow of the core effect runtime (:mod:`langchain_agent_auth.core.effects`)
that yields only an ``httpx.Request`` to send or a :class:`Sleep`, and receives the
``httpx.Response`` (or ``None`` after a sleep). Network errors are thrown into the flow at the
``yield``, so the flow alone decides whether a request is safe to repeat
(:func:`send_with_retries`). :func:`run_sync` (``httpx.Client``) and :func:`run_async`
(``httpx.AsyncClient``) are the runtime's drivers; tests can also drive a flow by hand.

Example:
    >>> import httpx
    >>> def hello():
    ...     response = yield httpx.Request("GET", "https://example.test/")
    ...     return response.status_code
    >>> transport = httpx.MockTransport(lambda request: httpx.Response(204))
    >>> with httpx.Client(transport=transport) as client:
    ...     run_sync(hello(), client)
    204
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

import httpx

from langchain_agent_auth.core.effects import Sleep, arun, run
from langchain_agent_auth.core.errors import ProviderUnavailableError, redact

__all__ = ["Flow", "RetryPolicy", "Sleep", "Step", "run_async", "run_sync", "send_with_retries"]

T = TypeVar("T")


Step = httpx.Request | Sleep
Flow = Generator[Step, "httpx.Response | None", T]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a request that failed on the network or 5xx.

    Only requests a flow marks as safe to repeat are retried after they may have reached
    the server; a connection that was never established is always safe to retry.
    """

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 2.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return base + random.uniform(0, self.jitter * base)


NO_RETRY = RetryPolicy(attempts=1)

# Errors raised before any byte of the request reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def send_with_retries(
    request: httpx.Request, *, idempotent: bool, policy: RetryPolicy
) -> Flow[httpx.Response]:
    """Send ``request``; retry network errors (and 5xx when ``idempotent``) with backoff.

    Raises :class:`ProviderUnavailableError` when the attempts run out. Returns the last
    response otherwise, whatever its status (a 4xx is the caller's business).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            response = yield request
        except httpx.TransportError as exc:
            retryable = idempotent or isinstance(exc, _NOT_SENT)
            if not retryable or attempt >= policy.attempts:
                raise ProviderUnavailableError(
                    f"{request.method} {_where(request)} failed: {type(exc).__name__}"
                    + ("" if retryable else " (not retried: the request may have been processed)"),
                    hint="The identity provider could not be reached; try again shortly.",
                ) from None
            yield Sleep(policy.delay(attempt))
            continue
        assert response is not None
        if response.status_code >= 500 and idempotent and attempt < policy.attempts:
            yield Sleep(_retry_after(response) or policy.delay(attempt))
            continue
        return response


def _where(request: httpx.Request) -> str:
    port = f":{request.url.port}" if request.url.port is not None else ""
    return redact(f"{request.url.scheme}://{request.url.host}{port}{request.url.path}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(float(value), 30.0) if value else None
    except ValueError:
        return None


def run_sync(flow: Flow[T], client: httpx.Client) -> T:
    """Run ``flow`` with a blocking ``httpx.Client`` (the core runtime's :func:`run`)."""
    return run(flow, http=client)


async def run_async(flow: Flow[T], client: httpx.AsyncClient) -> T:
    """Run ``flow`` with an ``httpx.AsyncClient``; never blocks the event loop."""
    return await arun(flow, http=client)
