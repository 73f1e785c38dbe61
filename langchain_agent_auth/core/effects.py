"""The effect runtime: every flow in the toolkit is written once and run by two drivers.

A *flow* is a generator that yields what it needs done and receives the answer, like
``httpx.Auth.auth_flow``. The steps it may yield:

* ``httpx.Request``: send it (answer: the ``httpx.Response``, body read);
* :class:`Sleep`: wait (backoff, a CIBA poll interval; answer ``None``);
* :class:`StoreOps`: a batch of LangGraph ``BaseStore`` operations (answer: their results);
* :class:`Blocking`: a short blocking local call, run in a worker thread by the async driver;
* :class:`Call`: one operation with a sync and an async implementation (a tool call, an SDK
  method, another component's ``x`` / ``ax`` pair): the driver picks the one that fits.

:func:`run` carries the steps out with blocking I/O (``httpx.Client``, ``store.batch``);
:func:`arun` on the event loop (``httpx.AsyncClient``, ``store.abatch``, or ``store.batch``
in a worker thread for stores without async support, such as ``SqliteStore``), so it never
blocks the loop. An error raised while carrying out a step is thrown into the flow at its
``yield``: the flow alone decides whether to retry, clean up (release a lease) or let it go.
Decisions live in the flow; the drivers only do I/O, so sync and async cannot drift apart.

Example:
    >>> import asyncio, httpx
    >>> def status(url):
    ...     response = yield httpx.Request("GET", url)
    ...     doubled = yield Call(lambda: response.status_code * 2, lambda: _twice(response.status_code))
    ...     return doubled
    >>> async def _twice(n):
    ...     return n * 2
    >>> transport = httpx.MockTransport(lambda request: httpx.Response(204))
    >>> with httpx.Client(transport=transport) as client:
    ...     run(status("https://example.test/"), http=client)
    408
    >>> async def main():
    ...     async with httpx.AsyncClient(transport=transport) as client:
    ...         return await arun(status("https://example.test/"), http=client)
    >>> asyncio.run(main())
    408
"""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from langgraph.store.base import BaseStore, GetOp, Item, Op, PutOp, SearchOp

__all__ = [
    "Blocking",
    "Call",
    "Flow",
    "Sleep",
    "Step",
    "StoreOps",
    "arun",
    "run",
    "store_get",
    "store_put",
    "store_search",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Sleep:
    """A step asking the driver to wait ``seconds`` (backoff, CIBA poll interval)."""

    seconds: float


@dataclass(frozen=True)
class StoreOps:
    """Run these store operations as one batch; the answer is the list of results."""

    ops: tuple[Op, ...]


@dataclass(frozen=True)
class Blocking:
    """Run a short blocking local call (never network I/O); the answer is its return value."""

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Call:
    """One operation with two implementations: ``sync()`` under :func:`run`, ``await
    async_()`` under :func:`arun`. The answer is the result."""

    sync: Callable[[], Any]
    async_: Callable[[], Awaitable[Any]]


Step = httpx.Request | Sleep | StoreOps | Blocking | Call
Flow = Generator[Step, Any, T]


def store_get(namespace: tuple[str, ...], key: str) -> Flow[Item | None]:
    results = yield StoreOps((GetOp(namespace, key),))
    return results[0]


def store_put(namespace: tuple[str, ...], key: str, value: dict[str, Any] | None) -> Flow[None]:
    # index=False: never hand toolkit records to a store's embedding index.
    yield StoreOps((PutOp(namespace, key, value, index=False),))


def store_search(prefix: tuple[str, ...], *, limit: int = 1000) -> Flow[list[Any]]:
    results = yield StoreOps((SearchOp(prefix, None, limit, 0),))
    return list(results[0])


class _AsyncStore:
    """``store.abatch`` when the store implements it, else ``store.batch`` in a thread."""

    _native: weakref.WeakKeyDictionary[BaseStore, bool] = weakref.WeakKeyDictionary()

    @classmethod
    async def batch(cls, store: BaseStore, ops: Sequence[Op]) -> list[Any]:
        native = cls._native.get(store)
        if native is not False:
            try:
                result = await store.abatch(ops)
                cls._native[store] = True
                return result
            except NotImplementedError:
                cls._native[store] = False
        return await asyncio.to_thread(store.batch, ops)


def _missing(what: str) -> RuntimeError:
    return RuntimeError(f"this flow needs {what}, and the driver was given none")


# The two drivers share one loop (:func:`_drive`) and differ only in how they carry out a
# step: :class:`_BlockingIO` never suspends (so a coroutine over it finishes in one
# ``send``), :class:`_LoopIO` awaits.


class _BlockingIO:
    def __init__(self, http: Any, store: BaseStore | None) -> None:
        self.http, self.store = http, store

    async def request(self, request: httpx.Request) -> httpx.Response:
        response = self.http.send(request)
        response.read()
        return response

    async def call(self, step: Call) -> Any:
        return step.sync()

    async def batch(self, ops: Sequence[Op]) -> list[Any]:
        return self.store.batch(ops)  # type: ignore[union-attr]

    async def blocking(self, fn: Callable[[], Any]) -> Any:
        return fn()

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # noqa: ASYNC251 - the blocking driver: no event loop runs here


class _LoopIO:
    def __init__(self, http: Any, store: BaseStore | None) -> None:
        self.http, self.store = http, store

    async def request(self, request: httpx.Request) -> httpx.Response:
        response = await self.http.send(request)
        await response.aread()
        return response

    async def call(self, step: Call) -> Any:
        reply = step.async_()
        return (await reply) if inspect.isawaitable(reply) else reply

    async def batch(self, ops: Sequence[Op]) -> list[Any]:
        return await _AsyncStore.batch(self.store, ops)  # type: ignore[arg-type]

    async def blocking(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(fn)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _perform(io: _BlockingIO | _LoopIO, step: Any) -> Any:
    if isinstance(step, httpx.Request):
        if io.http is None:
            raise _missing("an HTTP client")
        return await io.request(step)
    if isinstance(step, Call):
        return await io.call(step)
    if isinstance(step, StoreOps):
        if io.store is None:
            raise _missing("a store")
        return await io.batch(step.ops)
    if isinstance(step, Blocking):
        return await io.blocking(step.fn)
    if isinstance(step, Sleep):
        return await io.sleep(max(0.0, step.seconds))
    raise TypeError(f"a flow yielded {step!r}, which is not a step")


async def _drive(flow: Flow[T], io: _BlockingIO | _LoopIO) -> T:
    """The one driver loop: carry out each step, send the answer or throw the error back."""
    try:
        step = next(flow)
        while True:
            try:
                reply = await _perform(io, step)
            except Exception as exc:
                step = flow.throw(exc)
                continue
            step = flow.send(reply)
    except StopIteration as stop:
        return stop.value
    finally:
        flow.close()


def run(flow: Flow[T], *, http: httpx.Client | None = None, store: BaseStore | None = None) -> T:
    """Run ``flow`` with blocking I/O and return its result."""
    driving = _drive(flow, _BlockingIO(http, store))
    try:
        driving.send(None)
    except StopIteration as done:
        return done.value
    driving.close()  # pragma: no cover - a blocking step never suspends
    raise RuntimeError("a blocking step suspended")  # pragma: no cover


async def arun(flow: Flow[T], *, http: httpx.AsyncClient | None = None, store: BaseStore | None = None) -> T:
    """Run ``flow`` on the event loop (network, store and blocking calls never block it)."""
    return await _drive(flow, _LoopIO(http, store))
