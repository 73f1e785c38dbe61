"""The vault's sans-I/O steps and their two drivers.

Vault operations are generators, like the protocol flows in :mod:`langchain_agent_auth.oauth`
(whose flows they compose with ``yield from``). Besides ``httpx.Request`` and
:class:`~langchain_agent_auth.oauth.Sleep` they yield:

* :class:`StoreOps`: a batch of LangGraph ``BaseStore`` operations (answer: the results);
* :class:`Blocking`: a short local call (a SQLite lease statement), run in a worker thread
  by the async driver.

:func:`drive` runs an operation with ``httpx.Client`` and ``store.batch``;
:func:`adrive` with ``httpx.AsyncClient`` and ``store.abatch`` (or ``store.batch`` in a
worker thread for stores without async support, such as ``SqliteStore``), so the event
loop never blocks. Any error raised while carrying out a step is thrown into the operation
at its ``yield`` so it can clean up (release a lease) before it propagates.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from langgraph.store.base import BaseStore, GetOp, Item, Op, PutOp, SearchOp

from langchain_agent_auth.oauth import Sleep
from langchain_agent_auth.oauth._clients import HTTPClients

T = TypeVar("T")


@dataclass(frozen=True)
class StoreOps:
    """Run these store operations as one batch; the answer is the list of results."""

    ops: tuple[Op, ...]


@dataclass(frozen=True)
class Blocking:
    """Run a short blocking local call (never network I/O); the answer is its return value."""

    fn: Callable[[], Any]


Step = httpx.Request | Sleep | StoreOps | Blocking
VaultOp = Generator[Step, Any, T]


def store_get(namespace: tuple[str, ...], key: str) -> VaultOp[Item | None]:
    results = yield StoreOps((GetOp(namespace, key),))
    return results[0]


def store_put(namespace: tuple[str, ...], key: str, value: dict[str, Any] | None) -> VaultOp[None]:
    # index=False: never hand vault records to a store's embedding index.
    yield StoreOps((PutOp(namespace, key, value, index=False),))


def store_search(prefix: tuple[str, ...], *, limit: int = 1000) -> VaultOp[list[Any]]:
    results = yield StoreOps((SearchOp(prefix, None, limit, 0),))
    return list(results[0])


# The vault's HTTP clients: one sync client, one async client per event loop (shared helper).
HTTP = HTTPClients


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


def drive(op: VaultOp[T], http: httpx.Client, store: BaseStore | None) -> T:
    """Run a vault operation synchronously."""
    try:
        step = next(op)
        while True:
            try:
                if isinstance(step, httpx.Request):
                    reply: Any = http.send(step)
                    reply.read()
                elif isinstance(step, StoreOps):
                    if store is None:
                        raise RuntimeError("this vault operation needs a store")
                    reply = store.batch(step.ops)
                elif isinstance(step, Blocking):
                    reply = step.fn()
                elif isinstance(step, Sleep):
                    time.sleep(max(0.0, step.seconds))
                    reply = None
                else:  # pragma: no cover - programming error
                    raise TypeError(f"unknown vault step {step!r}")
            except Exception as exc:
                step = op.throw(exc)
                continue
            step = op.send(reply)
    except StopIteration as stop:
        return stop.value
    finally:
        op.close()


async def adrive(op: VaultOp[T], http: httpx.AsyncClient, store: BaseStore | None) -> T:
    """Run a vault operation on the event loop (network and store I/O never block it)."""
    try:
        step = next(op)
        while True:
            try:
                if isinstance(step, httpx.Request):
                    reply: Any = await http.send(step)
                    await reply.aread()
                elif isinstance(step, StoreOps):
                    if store is None:
                        raise RuntimeError("this vault operation needs a store")
                    reply = await _AsyncStore.batch(store, step.ops)
                elif isinstance(step, Blocking):
                    reply = await asyncio.to_thread(step.fn)
                elif isinstance(step, Sleep):
                    await asyncio.sleep(max(0.0, step.seconds))
                    reply = None
                else:  # pragma: no cover - programming error
                    raise TypeError(f"unknown vault step {step!r}")
            except Exception as exc:
                step = op.throw(exc)
                continue
            step = op.send(reply)
    except StopIteration as stop:
        return stop.value
    finally:
        op.close()
