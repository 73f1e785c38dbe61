"""Polling a token endpoint until the user answers: one flow for RFC 8628 device codes and
CIBA poll mode (which takes RFC 8628's rules).

Before each poll it waits ``interval`` (RFC 8628 §3.5); ``slow_down`` adds
:data:`SLOW_DOWN_STEP` seconds for good; ``authorization_pending`` polls again; the wait ends
at the request's expiry (``ExpiredTokenError``) or an earlier ``deadline``. With
``tolerate_outages``, a provider that cannot be reached (network error, 5xx) does not end
the wait: the flow backs off (doubling, up to ``max_outage_backoff``) and polls again.

Example:
    >>> from langchain_agent_auth.core.errors import AuthorizationPendingError
    >>> answers = iter([AuthorizationPendingError(), "token"])
    >>> def poll():
    ...     answer = next(answers)
    ...     if isinstance(answer, Exception):
    ...         raise answer
    ...     return answer
    ...     yield
    >>> flow = poll_until_answered(poll, interval=2, expires_at=100, expired="too late", clock=lambda: 0)
    >>> next(flow), flow.send(None)
    (Sleep(seconds=2), Sleep(seconds=2))
    >>> try:
    ...     flow.send(None)
    ... except StopIteration as done:
    ...     print(done.value)
    token
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from langchain_agent_auth.core.effects import Flow, Sleep
from langchain_agent_auth.core.errors import (
    AuthorizationPendingError,
    ExpiredTokenError,
    ProviderUnavailableError,
    SlowDownError,
)

__all__ = ["SLOW_DOWN_STEP", "poll_until_answered"]

SLOW_DOWN_STEP = 5.0  # RFC 8628 3.5, referenced by CIBA: add 5 seconds on slow_down

T = TypeVar("T")


def poll_until_answered(
    poll: Callable[[], Flow[T]],
    *,
    interval: float,
    expires_at: float,
    expired: str,
    clock: Callable[[], float],
    deadline: float | None = None,
    tolerate_outages: bool = False,
    max_outage_backoff: float = 60.0,
    on_wait: Callable[[float, float], None] | None = None,
    on_pending: Callable[[float], None] | None = None,
) -> Flow[T]:
    """Run ``poll()`` (one token request) until it returns, under the rules above.

    ``on_wait(seconds_left, seconds_to_next_poll)`` is called before every wait,
    ``on_pending(seconds_left)`` after every answer that was not final; ``expired`` is the
    message of the ``ExpiredTokenError`` at the end.
    """
    interval = max(interval, 0.0)
    end = expires_at if deadline is None else min(expires_at, deadline)
    outage_wait = 0.0
    while True:
        if clock() >= end:
            raise ExpiredTokenError(expired)
        if on_wait is not None:
            on_wait(end - clock(), max(interval, outage_wait))
        yield Sleep(max(interval, outage_wait))
        try:
            return (yield from poll())
        except SlowDownError:
            interval += SLOW_DOWN_STEP
            outage_wait = 0.0
        except AuthorizationPendingError:
            outage_wait = 0.0
        except ProviderUnavailableError:
            if not tolerate_outages:
                raise
            outage_wait = min(max_outage_backoff, max(interval, outage_wait * 2 or interval))
        if on_pending is not None:
            on_pending(end - clock())
