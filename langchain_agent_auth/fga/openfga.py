"""The OpenFGA backend: the same :class:`Authorizer` interface over ``openfga-sdk``.

For an OpenFGA server or Okta FGA, when one machine is no longer enough. ``openfga-sdk``
is imported lazily (``pip install 'langchain-agent-auth[openfga]'``). Each operation is one
flow of the core effect runtime whose SDK requests are :class:`~langchain_agent_auth.core.effects.Call`
steps: the sync methods run it with the SDK's sync client, the async ones with its asyncio
client (one per event loop).

Errors come back as the toolkit's typed errors with OpenFGA's numeric code
(``ValidationException`` ``validation_error`` -> :class:`AuthorizationError` code 2000...);
a server that cannot be reached raises :class:`ProviderUnavailableError`. Both are
denials for the tool guard and the retriever (fail closed).

Example::

    fga = OpenFGAAuthorizer("http://127.0.0.1:8080", store_id=..., authorization_model_id=...)
    fga.check("user:anne", "viewer", "document:1")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    AuthorizationError,
    ConfigurationError,
    ProviderUnavailableError,
)
from langchain_agent_auth.fga._openfga_sdk import (
    check_body,
    list_objects_body,
    list_users_body,
    map_error,
    raise_chunk_errors,
    sdk,
    tuple_json,
    users_of,
    write_args,
)
from langchain_agent_auth.fga._tuple import coerce_tuples
from langchain_agent_auth.fga._types import (
    AuthorizationDecision,
    Context,
    DecisionSink,
    Tuples,
    batch_decisions,
    coerce_check,
    record_decision,
)

__all__ = ["OpenFGAAuthorizer"]

class OpenFGAAuthorizer:
    """:class:`Authorizer` over an OpenFGA server (or Okta FGA) through ``openfga-sdk``.

    Args:
        api_url: the server, e.g. ``"http://127.0.0.1:8080"`` or ``"https://api.us1.fga.dev"``.
        store_id: the store to use.
        authorization_model_id: pin a model (recommended); the latest otherwise.
        api_token: a preshared bearer token, or
        client_id / client_secret / api_token_issuer / api_audience: OAuth client credentials
            (Okta FGA).
        on_decision: a sink receiving an :class:`AuthorizationDecision` per check.
        max_batch_size: checks per batch-check request (OpenFGA's limit is 50).
    """

    backend = "openfga"

    def __init__(
        self,
        api_url: str,
        store_id: str,
        *,
        authorization_model_id: str | None = None,
        api_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_token_issuer: str | None = None,
        api_audience: str | None = None,
        on_decision: DecisionSink | None = None,
        max_batch_size: int = 50,
        max_parallel_requests: int = 10,
        timeout_ms: int | None = None,
    ) -> None:
        if not api_url or not store_id:
            raise ConfigurationError("OpenFGAAuthorizer needs api_url and store_id")
        self.api_url = api_url.rstrip("/")
        self.store_id = store_id
        self.authorization_model_id = authorization_model_id
        self.on_decision = on_decision
        self.max_batch_size = max_batch_size
        self.max_parallel_requests = max_parallel_requests
        self._timeout_ms = timeout_ms
        self._credentials_args = (api_token, client_id, client_secret, api_token_issuer, api_audience)
        self._sync_client: Any = None
        self._async_clients: dict[int, Any] = {}
        self._pool: ThreadPoolExecutor | None = None  # sync batch-check requests in parallel
        sdk()

    def __repr__(self) -> str:
        return f"OpenFGAAuthorizer({self.api_url!r}, store_id={self.store_id!r})"

    # -- clients -------------------------------------------------------------------------

    def _configuration(self) -> Any:
        from openfga_sdk.client import ClientConfiguration
        from openfga_sdk.credentials import CredentialConfiguration, Credentials

        api_token, client_id, client_secret, issuer, audience = self._credentials_args
        credentials = None
        if api_token:
            credentials = Credentials(
                method="api_token", configuration=CredentialConfiguration(api_token=api_token)
            )
        elif client_id:
            credentials = Credentials(
                method="client_credentials",
                configuration=CredentialConfiguration(
                    client_id=client_id, client_secret=client_secret, api_issuer=issuer, api_audience=audience
                ),
            )
        kwargs: dict[str, Any] = {}
        if self._timeout_ms is not None:
            kwargs["timeout_millisec"] = self._timeout_ms
        return ClientConfiguration(
            api_url=self.api_url,
            store_id=self.store_id,
            authorization_model_id=self.authorization_model_id,
            credentials=credentials,
            **kwargs,
        )

    def _client(self) -> Any:
        if self._sync_client is None:
            from openfga_sdk.sync import OpenFgaClient

            self._sync_client = OpenFgaClient(self._configuration())
        return self._sync_client

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(id(loop))
        if client is None:
            from openfga_sdk import OpenFgaClient

            client = OpenFgaClient(self._configuration())
            self._async_clients = {id(loop): client}  # clients are bound to their loop
        return client

    def close(self) -> None:
        """Close the sync client's connections (and the batch-check worker threads)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        """Close the async client of the running loop."""
        client = self._async_clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.close()

    # -- requests ---------------------------------------------------------------------------

    def _decide(
        self,
        user: str,
        relation: str,
        obj: str,
        allowed: bool,
        started: float,
        exc: BaseException | None,
        correlation_id: str | None = None,
        on_decision: DecisionSink | None = None,
    ) -> AuthorizationDecision:
        return record_decision(self.backend, user, relation, obj, allowed, started, exc, correlation_id,
                               (self.on_decision, on_decision))

    def _sdk(self, method: str, *args: Any) -> Call:
        """One SDK request as a step: the sync client under ``run``, this loop's async client
        under ``arun`` (the clients are made on first use)."""
        return Call(lambda: getattr(self._client(), method)(*args), lambda: getattr(self._aclient(), method)(*args))

    def _check_flow(self, user: str, relation: str, obj: str, context: Context, contextual_tuples: Tuples,
                    on_decision: DecisionSink | None) -> Flow[bool]:
        started = time.perf_counter()
        try:
            response = yield self._sdk("check", check_body(user, relation, obj, context, contextual_tuples))
            allowed = bool(response.allowed)
        except Exception as exc:
            err = map_error(exc)
            self._decide(user, relation, obj, False, started, err, on_decision=on_decision)
            raise err from None
        self._decide(user, relation, obj, allowed, started, None, on_decision=on_decision)
        return allowed

    def check(self, user: str, relation: str, object: str, *, context: Context = None, contextual_tuples: Tuples = None,
              on_decision: DecisionSink | None = None) -> bool:
        """Whether ``user`` has ``relation`` on ``object`` (raises a typed error if unanswerable)."""
        return run(self._check_flow(user, relation, object, context, contextual_tuples, on_decision))

    async def acheck(self, user: str, relation: str, object: str, *, context: Context = None,
                     contextual_tuples: Tuples = None, on_decision: DecisionSink | None = None) -> bool:
        """Async :meth:`check`."""
        return await arun(self._check_flow(user, relation, object, context, contextual_tuples, on_decision))

    # Batch check builds the request bodies as plain JSON and sends them with the SDK client's
    # ``execute_api_request`` (its credentials, retries and error handling): building one
    # ``ClientBatchCheckItem`` per check costs the SDK a default ``Configuration`` each, which
    # was most of the client's time for a retriever's thousand documents.

    def _batch_payloads(
        self, checks: Sequence[Any], context: Context, contextual_tuples: Tuples
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        requests = [coerce_check(c) for c in checks]
        shared = [tuple_json(t) for t in coerce_tuples(contextual_tuples)]
        base_ctx = dict(context) if context else None
        items = []
        for i, req in enumerate(requests):
            item: dict[str, Any] = {
                "tuple_key": {"user": req.user, "relation": req.relation, "object": req.object},
                "correlation_id": str(i),  # positional: the caller's ids stay in the decisions
            }
            if shared or req.contextual_tuples:
                extra = shared + [tuple_json(t) for t in coerce_tuples(req.contextual_tuples)]
                item["contextual_tuples"] = {"tuple_keys": extra}
            if req.context:
                item["context"] = {**(base_ctx or {}), **req.context}
            elif base_ctx:
                item["context"] = base_ctx
            items.append(item)
        size = max(1, min(self.max_batch_size, 50))
        payloads = []
        for start in range(0, len(items), size):
            payload: dict[str, Any] = {"checks": items[start : start + size]}
            if self.authorization_model_id:
                payload["authorization_model_id"] = self.authorization_model_id
            payloads.append(payload)
        return payloads, requests

    def _batch_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "operation_name": "BatchCheck",
            "method": "POST",
            "path": "/stores/{store_id}/batch-check",
            "path_params": {"store_id": self.store_id},
            "body": payload,
        }

    def _batch_result(
        self,
        requests: list[Any],
        responses: Sequence[Any],
        started: float,
        on_decision: DecisionSink | None,
    ) -> list[AuthorizationDecision]:
        results: dict[str, Any] = {}
        for response in responses:
            body = response.json() if hasattr(response, "json") else None
            if isinstance(body, Mapping) and isinstance(body.get("result"), Mapping):
                results.update(body["result"])
        rows = []
        for i, req in enumerate(requests):
            r = results.get(str(i))
            if type(r) is dict and not r.get("error"):  # the common case first
                rows.append((req.user, req.relation, req.object, r.get("allowed") is True, None, req.correlation_id))
                continue
            err: AgentAuthError | None = None
            if not isinstance(r, Mapping):
                err = ProviderUnavailableError("OpenFGA returned no result for a check")
            elif isinstance(r.get("error"), Mapping) and (
                r["error"].get("message") or r["error"].get("input_error") or r["error"].get("internal_error")
            ):
                error = r["error"]
                message = error.get("message") or str(error.get("input_error") or error.get("internal_error"))
                err = AuthorizationError(f"OpenFGA: {message}", code=2000)
            allowed = err is None and r.get("allowed") is True  # type: ignore[union-attr]
            rows.append((req.user, req.relation, req.object, allowed, err, req.correlation_id))
        return batch_decisions(self.backend, rows, started, (self.on_decision, on_decision))

    def _batch_failed(
        self, requests: list[Any], started: float, exc: BaseException, on_decision: DecisionSink | None
    ) -> list[AuthorizationDecision]:
        err = map_error(exc)
        return [
            self._decide(r.user, r.relation, r.object, False, started, err, r.correlation_id, on_decision)
            for r in requests
        ]

    def batch_check(self, checks: Sequence[Any], *, context: Context = None, contextual_tuples: Tuples = None,
                    on_decision: DecisionSink | None = None) -> list[AuthorizationDecision]:
        """Server-side batch check (requests of ``max_batch_size``, ``max_parallel_requests`` at a time).

        Never raises per item: a failed request denies its checks with the error recorded.
        """
        started = time.perf_counter()
        payloads, requests = self._batch_payloads(checks, context, contextual_tuples)
        if not requests:
            return []
        client = self._client()
        try:
            if len(payloads) == 1:
                responses = [client.execute_api_request(**self._batch_request(payloads[0]))]
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=max(1, self.max_parallel_requests), thread_name_prefix="openfga-batch"
                    )
                responses = list(
                    self._pool.map(lambda p: client.execute_api_request(**self._batch_request(p)), payloads)
                )
        except Exception as exc:
            return self._batch_failed(requests, started, exc, on_decision)
        return self._batch_result(requests, responses, started, on_decision)

    async def abatch_check(self, checks: Sequence[Any], *, context: Context = None, contextual_tuples: Tuples = None,
                           on_decision: DecisionSink | None = None) -> list[AuthorizationDecision]:
        """Async :meth:`batch_check`."""
        started = time.perf_counter()
        payloads, requests = self._batch_payloads(checks, context, contextual_tuples)
        if not requests:
            return []
        client = self._aclient()
        gate = asyncio.Semaphore(max(1, self.max_parallel_requests))

        async def send(payload: dict[str, Any]) -> Any:
            async with gate:
                return await client.execute_api_request(**self._batch_request(payload))

        try:
            responses = await asyncio.gather(*(send(p) for p in payloads))
        except Exception as exc:
            return self._batch_failed(requests, started, exc, on_decision)
        return self._batch_result(requests, responses, started, on_decision)

    def _request_flow(self, method: str, body: Callable[..., Any], *args: Any) -> Flow[Any]:
        """One SDK request with the body ``body(*args)``; any failure becomes a typed error."""
        try:
            return (yield self._sdk(method, body(*args)))
        except Exception as exc:
            raise map_error(exc) from None

    def _list_objects_flow(self, *args: Any) -> Flow[list[str]]:
        response = yield from self._request_flow("list_objects", list_objects_body, *args)
        return sorted(response.objects or [])

    def list_objects(self, user: str, relation: str, type: str, *, context: Context = None,
                     contextual_tuples: Tuples = None) -> list[str]:
        """Objects of ``type`` the user has ``relation`` on (OpenFGA caps the answer, 1000 by default)."""
        return run(self._list_objects_flow(user, relation, type, context, contextual_tuples))

    async def alist_objects(self, user: str, relation: str, type: str, *, context: Context = None,
                            contextual_tuples: Tuples = None) -> list[str]:
        """Async :meth:`list_objects`."""
        return await arun(self._list_objects_flow(user, relation, type, context, contextual_tuples))

    def _list_users_flow(self, *args: Any) -> Flow[list[str]]:
        response = yield from self._request_flow("list_users", list_users_body, *args)
        return users_of(response)

    def list_users(self, object: str, relation: str, user_filter: Any, *, context: Context = None,
                   contextual_tuples: Tuples = None) -> list[str]:
        """Users related to ``object`` (``type:*`` for a public wildcard)."""
        return run(self._list_users_flow(object, relation, user_filter, context, contextual_tuples))

    async def alist_users(self, object: str, relation: str, user_filter: Any, *, context: Context = None,
                          contextual_tuples: Tuples = None) -> list[str]:
        """Async :meth:`list_users`."""
        return await arun(self._list_users_flow(object, relation, user_filter, context, contextual_tuples))

    def _write_flow(self, writes: Iterable[Any], deletes: Iterable[Any]) -> Flow[None]:
        body, options = write_args(writes, deletes)
        try:
            response = yield self._sdk("write", body, options)
        except Exception as exc:
            raise map_error(exc) from None
        raise_chunk_errors(response)

    def write(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> None:
        """Write and delete tuples (one transaction up to 100 tuples, chunks beyond)."""
        run(self._write_flow(writes, deletes))

    async def awrite(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> None:
        """Async :meth:`write`."""
        await arun(self._write_flow(writes, deletes))

    def delete(self, tuples: Iterable[Any]) -> None:
        """Delete tuples."""
        self.write((), tuples)

    async def adelete(self, tuples: Iterable[Any]) -> None:
        """Async :meth:`delete`."""
        await self.awrite((), tuples)
