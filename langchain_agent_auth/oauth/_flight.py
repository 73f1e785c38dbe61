"""One operation in flight at a time, shared by threads and asyncio tasks.

The first caller to :meth:`SingleFlight.begin` leads: it runs the operation as a flow of the
core effect runtime through :meth:`SingleFlight.leading`, which reports the outcome. Everyone
arriving meanwhile follows (:meth:`Flight.joined`): a thread waits on an event, an asyncio task
awaits a future completed through its own loop's ``call_soon_threadsafe`` (the loop is never
blocked). An error reaches every follower; a leader that was cancelled leaves the flight
*abandoned* and followers try again.

Example:
    >>> flights = SingleFlight()
    >>> flight, lead = flights.begin()
    >>> lead
    True
    >>> flights.begin()[1]        # a second caller meanwhile follows
    False
    >>> flight.finish()
    >>> flight.wait()             # returns at once: done, no error
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from langchain_agent_auth.core.effects import Call, Flow

__all__ = ["Flight", "FlightAbandoned", "SingleFlight"]

T = TypeVar("T")


class FlightAbandoned(Exception):
    """The leader stopped (cancelled, interrupted) without an outcome: try again."""


class Flight:
    """One run of the operation; followers wait for :meth:`finish`."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        """Record the outcome and wake every follower (threads and event loops)."""
        with self._lock:
            self.error = error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def _outcome(self) -> None:
        if self.error is not None:
            raise self.error

    def wait(self) -> None:
        """Block this thread until the flight is done; re-raise its error."""
        self._done.wait()
        self._outcome()

    async def await_(self) -> None:
        """Wait without blocking the event loop; re-raise the flight's error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        def wake_threadsafe() -> None:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there now
                loop.call_soon_threadsafe(wake)

        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(wake_threadsafe)
            else:
                future.set_result(None)
        await future
        self._outcome()

    def joined(self) -> Flow[None]:
        """Wait for the flight as a flow step: a blocked thread under ``run``, an awaited
        future under ``arun``."""
        yield Call(self.wait, self.await_)


class SingleFlight:
    """At most one :class:`Flight` in progress; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Flight | None = None

    def begin(self, should_start: Callable[[], bool] = lambda: True) -> tuple[Flight | None, bool]:
        """Join the flight in progress, or start one if ``should_start()`` (checked under the lock).

        Returns ``(flight, True)`` for the leader, ``(flight, False)`` for a follower and
        ``(None, False)`` when nothing is in flight and nothing should start.
        """
        with self._lock:
            if self._current is not None:
                return self._current, False
            if not should_start():
                return None, False
            self._current = Flight()
            return self._current, True

    def end(self, flight: Flight, error: BaseException | None = None) -> None:
        """The leader's report: clear the slot, then wake the followers."""
        with self._lock:
            if self._current is flight:
                self._current = None
        flight.finish(error)

    def leading(self, flight: Flight, operation: Flow[T]) -> Flow[T]:
        """``operation`` run as the leader of ``flight``, its outcome reported to the followers.

        A leader stopped without an outcome (a cancelled task, a closed flow) abandons the
        flight: followers get :class:`FlightAbandoned` and try again.
        """
        try:
            result = yield from operation
        except Exception as exc:
            self.end(flight, exc)
            raise
        except BaseException:
            self.end(flight, FlightAbandoned())
            raise
        self.end(flight)
        return result
