"""HTTP clients owned by a component: one sync client, one async client per event loop."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

import httpx

USER_AGENT = "langchain-agent-auth"


class _OnDemand:
    """A client stand-in for the effect drivers: the real client is only made (or looked up
    for the running loop) when a flow sends its first request."""

    __slots__ = ("_client",)

    def __init__(self, client: Callable[[], Any]) -> None:
        self._client = client

    def send(self, request: httpx.Request, **kwargs: Any) -> Any:
        return self._client().send(request, **kwargs)

class HTTPClients:
    """Lazily created ``httpx`` clients; given clients are used as-is and never closed.

    An ``httpx.AsyncClient`` is bound to the event loop it first ran on, so an owned async
    client is kept per loop (``asyncio.run`` twice in one process keeps working).
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._given_sync = client
        self._given_async = async_client
        self._timeout = timeout
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    @property
    def sync(self) -> httpx.Client:
        if self._given_sync is not None:
            return self._given_sync
        with self._lock:
            if self._sync is None or self._sync.is_closed:
                self._sync = httpx.Client(timeout=self._timeout, headers={"user-agent": USER_AGENT},
                                          follow_redirects=False)
            return self._sync

    @property
    def async_(self) -> httpx.AsyncClient:
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.get(loop)
            if client is None or client.is_closed:
                client = httpx.AsyncClient(timeout=self._timeout, headers={"user-agent": USER_AGENT},
                                           follow_redirects=False)
                self._async[loop] = client
            return client

    @property
    def sync_on_demand(self) -> Any:
        """For ``run(flow, http=...)``: :attr:`sync`, made only if the flow sends a request."""
        return _OnDemand(lambda: self.sync)

    @property
    def async_on_demand(self) -> Any:
        """For ``arun(flow, http=...)``: :attr:`async_`, made only if the flow sends a request."""
        return _OnDemand(lambda: self.async_)

    def close(self) -> None:
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    async def aclose(self) -> None:
        self.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover
            return
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()
