"""``httpx.Auth`` that signs requests with the agent's own client-credentials token.

The token is fetched on first use, cached until shortly before it expires, refreshed by one
request however many calls wait for it, and fetched again once on a 401. Sync and async
clients share the cache.

Example:
    >>> import httpx
    >>> # one answer serves as both the discovery document and the token response
    >>> answer = {"issuer": "https://idp.test", "token_endpoint": "https://idp.test/token",
    ...           "access_token": "svc-token", "expires_in": 300}
    >>> idp = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    >>> oauth = OAuthClient("https://idp.test", "svc", "secret", http_client=httpx.Client(transport=idp))
    >>> api = httpx.MockTransport(lambda r: httpx.Response(200, text=r.headers["authorization"][:6]))
    >>> with httpx.Client(transport=api, auth=ClientCredentialsAuth(oauth)) as http:
    ...     http.get("https://api.test/").text
    'Bearer'
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

import httpx

from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.oauth.client import OAuthClient
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = ["ClientCredentialsAuth"]


class ClientCredentialsAuth(httpx.Auth):
    """Bearer auth with a cached client-credentials token of ``client``."""

    def __init__(self, client: OAuthClient, *, scope: str | Sequence[str] | None = None,
                 resource: str | Sequence[str] | None = None, audience: str | None = None,
                 leeway: float = 30.0) -> None:
        self.client = client
        self._params: dict[str, Any] = {"scope": scope, "resource": resource, "audience": audience}
        self.leeway = leeway
        self._token: TokenResponse | None = None
        self._lock = threading.Lock()
        self._alock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(client_id={self.client.client_id!r})"

    def _fresh(self) -> TokenResponse | None:
        token = self._token
        return token if token is not None and not token.is_expired(self.leeway) else None

    def token(self, *, force: bool = False) -> str:
        """The current access token (fetched when missing, expiring, or ``force``)."""
        with self._lock:
            return run(self._current(force))

    async def atoken(self, *, force: bool = False) -> str:
        """Async :meth:`token`."""
        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:
            return await arun(self._current(force))

    def _current(self, force: bool) -> Flow[str]:
        if force or self._fresh() is None:
            self._token = yield Call(lambda: self.client.client_credentials(**self._params),
                                     lambda: self.client.aclient_credentials(**self._params))
        assert self._token is not None
        return self._token.access_token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(force=True)}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self.atoken()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self.atoken(force=True)}"
            yield request
