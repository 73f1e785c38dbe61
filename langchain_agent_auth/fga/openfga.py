"""The OpenFGA backend: the same :class:`Authorizer` interface over ``openfga-sdk``.

For an OpenFGA server or Okta FGA, when one machine is no longer enough. ``openfga-sdk``
is imported lazily (``pip install 'langchain-agent-auth[openfga]'``); the sync methods
use the SDK's sync client, the async ones its asyncio client (one per event loop).

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
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_agent_auth.core.errors import (
    AgentAuthError,
    AuthorizationError,
    ConditionError,
    ConfigurationError,
    ProviderUnavailableError,
    ResolutionDepthError,
    TupleError,
)
from langchain_agent_auth.fga._tuple import TupleKey, coerce_tuples
from langchain_agent_auth.fga._types import (
    AuthorizationDecision,
    DecisionSink,
    batch_decisions,
    coerce_check,
    coerce_user_filter,
    record_decision,
)

__all__ = ["OpenFGAAuthorizer"]

_INSTALL_HINT = "pip install 'langchain-agent-auth[openfga]'"
_CODES = {
    "validation_error": 2000,
    "authorization_model_not_found": 2001,
    "authorization_model_resolution_too_complex": 2002,
    "cannot_allow_duplicate_tuples_in_one_request": 2004,
    "write_failed_due_to_invalid_input": 2017,
    "type_not_found": 2021,
    "relation_not_found": 2022,
    "invalid_tuple": 2027,
}


def _sdk() -> Any:
    try:
        import openfga_sdk
    except ImportError:  # pragma: no cover - exercised without the extra installed
        raise ConfigurationError(
            f"the OpenFGA backend needs openfga-sdk: {_INSTALL_HINT}",
            hint="The authorization service is not configured.",
        ) from None
    return openfga_sdk


def _map_error(exc: BaseException) -> AgentAuthError:
    """An SDK or transport error as the toolkit's typed error."""
    if isinstance(exc, AgentAuthError):
        return exc
    sdk = _sdk()
    exceptions = sdk.exceptions
    if isinstance(exc, exceptions.ApiException):
        status = getattr(exc, "status", None)
        code_name = getattr(exc, "code", None)
        message = getattr(exc, "error_message", None) or str(exc)
        if code_name is None and getattr(exc, "body", None):
            try:
                body = json.loads(exc.body)
                code_name, message = body.get("code"), body.get("message", message)
            except (ValueError, TypeError, AttributeError):
                pass
        if status is not None and (status >= 500 or status == 429):
            return ProviderUnavailableError(f"OpenFGA answered HTTP {status}: {message}", status_code=status)
        if status in (401, 403):
            return ConfigurationError(
                f"OpenFGA rejected the credentials (HTTP {status})",
                hint="The authorization service rejected this agent's credentials.",
            )
        code = _CODES.get(str(code_name), 2000)
        if code == 2002:
            return ResolutionDepthError(str(message))
        if "condition" in str(message) and "missing" in str(message):
            return ConditionError(str(message))
        if code in (2021, 2022, 2027):
            return TupleError(str(message), code=code)
        return AuthorizationError(f"OpenFGA: {message}", code=code)
    if isinstance(exc, (exceptions.FgaValidationException, ValueError, TypeError)):
        return AuthorizationError(f"invalid request for OpenFGA: {exc}", code=2000)
    return ProviderUnavailableError(f"OpenFGA unreachable: {type(exc).__name__}: {exc}")


def _tuple_json(t: TupleKey) -> dict[str, Any]:
    out: dict[str, Any] = {"user": t.user, "relation": t.relation, "object": t.object}
    if t.condition:
        out["condition"] = {"name": t.condition, "context": dict(t.context or {})}
    return out


def _client_tuple(t: TupleKey) -> Any:
    from openfga_sdk.client.models import ClientTuple
    from openfga_sdk.models import RelationshipCondition

    cond = RelationshipCondition(name=t.condition, context=dict(t.context or {})) if t.condition else None
    return ClientTuple(user=t.user, relation=t.relation, object=t.object, condition=cond)


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
        _sdk()

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

    def _check_body(
        self,
        user: str,
        relation: str,
        obj: str,
        context: Mapping[str, Any] | None,
        contextual_tuples: Sequence[Any] | None,
    ) -> Any:
        from openfga_sdk.client.models import ClientCheckRequest

        return ClientCheckRequest(
            user=user,
            relation=relation,
            object=obj,
            context=dict(context) if context else None,
            contextual_tuples=[_client_tuple(t) for t in coerce_tuples(contextual_tuples)] or None,
        )

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

    def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
        on_decision: DecisionSink | None = None,
    ) -> bool:
        """Whether ``user`` has ``relation`` on ``object`` (raises a typed error if unanswerable)."""
        started = time.perf_counter()
        try:
            response = self._client().check(
                self._check_body(user, relation, object, context, contextual_tuples)
            )
            allowed = bool(response.allowed)
        except Exception as exc:
            err = _map_error(exc)
            self._decide(user, relation, object, False, started, err, on_decision=on_decision)
            raise err from None
        self._decide(user, relation, object, allowed, started, None, on_decision=on_decision)
        return allowed

    async def acheck(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
        on_decision: DecisionSink | None = None,
    ) -> bool:
        """Async :meth:`check`."""
        started = time.perf_counter()
        try:
            response = await self._aclient().check(
                self._check_body(user, relation, object, context, contextual_tuples)
            )
            allowed = bool(response.allowed)
        except Exception as exc:
            err = _map_error(exc)
            self._decide(user, relation, object, False, started, err, on_decision=on_decision)
            raise err from None
        self._decide(user, relation, object, allowed, started, None, on_decision=on_decision)
        return allowed

    # Batch check builds the request bodies as plain JSON and sends them with the SDK client's
    # ``execute_api_request`` (its credentials, retries and error handling): building one
    # ``ClientBatchCheckItem`` per check costs the SDK a default ``Configuration`` each, which
    # was most of the client's time for a retriever's thousand documents.

    def _batch_payloads(
        self,
        checks: Sequence[Any],
        context: Mapping[str, Any] | None,
        contextual_tuples: Sequence[Any] | None,
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        requests = [coerce_check(c) for c in checks]
        shared = [_tuple_json(t) for t in coerce_tuples(contextual_tuples)]
        base_ctx = dict(context) if context else None
        items = []
        for i, req in enumerate(requests):
            item: dict[str, Any] = {
                "tuple_key": {"user": req.user, "relation": req.relation, "object": req.object},
                "correlation_id": str(i),  # positional: the caller's ids stay in the decisions
            }
            if shared or req.contextual_tuples:
                extra = shared + [_tuple_json(t) for t in coerce_tuples(req.contextual_tuples)]
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
        err = _map_error(exc)
        return [
            self._decide(r.user, r.relation, r.object, False, started, err, r.correlation_id, on_decision)
            for r in requests
        ]

    def batch_check(
        self,
        checks: Sequence[Any],
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
        on_decision: DecisionSink | None = None,
    ) -> list[AuthorizationDecision]:
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

    async def abatch_check(
        self,
        checks: Sequence[Any],
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
        on_decision: DecisionSink | None = None,
    ) -> list[AuthorizationDecision]:
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

    def _list_objects_body(
        self,
        user: str,
        relation: str,
        type: str,
        context: Mapping[str, Any] | None,
        contextual_tuples: Sequence[Any] | None,
    ) -> Any:
        from openfga_sdk.client.models import ClientListObjectsRequest

        return ClientListObjectsRequest(
            user=user,
            relation=relation,
            type=type,
            context=dict(context) if context else None,
            contextual_tuples=[_client_tuple(t) for t in coerce_tuples(contextual_tuples)] or None,
        )

    def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
    ) -> list[str]:
        """Objects of ``type`` the user has ``relation`` on (OpenFGA caps the answer, 1000 by default)."""
        try:
            response = self._client().list_objects(
                self._list_objects_body(user, relation, type, context, contextual_tuples)
            )
        except Exception as exc:
            raise _map_error(exc) from None
        return sorted(response.objects or [])

    async def alist_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
    ) -> list[str]:
        """Async :meth:`list_objects`."""
        try:
            response = await self._aclient().list_objects(
                self._list_objects_body(user, relation, type, context, contextual_tuples)
            )
        except Exception as exc:
            raise _map_error(exc) from None
        return sorted(response.objects or [])

    def _list_users_body(
        self,
        object: str,
        relation: str,
        user_filter: Any,
        context: Mapping[str, Any] | None,
        contextual_tuples: Sequence[Any] | None,
    ) -> Any:
        from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
        from openfga_sdk.models import FgaObject, UserTypeFilter

        filters = list(user_filter) if isinstance(user_filter, (list, tuple)) else [user_filter]
        parsed = [coerce_user_filter(f) for f in filters]
        otype, _, oid = object.partition(":")
        return ClientListUsersRequest(
            object=FgaObject(type=otype, id=oid),
            relation=relation,
            user_filters=[UserTypeFilter(type=f.type, relation=f.relation or None) for f in parsed],
            context=dict(context) if context else None,
            contextual_tuples=[_client_tuple(t) for t in coerce_tuples(contextual_tuples)] or None,
        )

    @staticmethod
    def _users(response: Any) -> list[str]:
        out = []
        for u in response.users or []:
            if getattr(u, "object", None) is not None:
                out.append(f"{u.object.type}:{u.object.id}")
            elif getattr(u, "userset", None) is not None:
                out.append(f"{u.userset.type}:{u.userset.id}#{u.userset.relation}")
            elif getattr(u, "wildcard", None) is not None:
                out.append(f"{u.wildcard.type}:*")
        return sorted(out)

    def list_users(
        self,
        object: str,
        relation: str,
        user_filter: Any,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
    ) -> list[str]:
        """Users related to ``object`` (``type:*`` for a public wildcard)."""
        try:
            response = self._client().list_users(
                self._list_users_body(object, relation, user_filter, context, contextual_tuples)
            )
        except Exception as exc:
            raise _map_error(exc) from None
        return self._users(response)

    async def alist_users(
        self,
        object: str,
        relation: str,
        user_filter: Any,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Any] | None = None,
    ) -> list[str]:
        """Async :meth:`list_users`."""
        try:
            response = await self._aclient().list_users(
                self._list_users_body(object, relation, user_filter, context, contextual_tuples)
            )
        except Exception as exc:
            raise _map_error(exc) from None
        return self._users(response)

    def _write_args(self, writes: Iterable[Any], deletes: Iterable[Any]) -> tuple[Any, dict[str, Any]]:
        from openfga_sdk.client.models import ClientWriteRequest, WriteTransactionOpts

        w = [_client_tuple(t) for t in coerce_tuples(writes)]
        d = [_client_tuple(TupleKey(t.user, t.relation, t.object)) for t in coerce_tuples(deletes)]
        options: dict[str, Any] = {}
        if len(w) + len(d) > 100:
            # More than OpenFGA accepts in one transaction: chunks (not atomic as a whole).
            options["transaction"] = WriteTransactionOpts(disabled=True, max_per_chunk=100)
        return ClientWriteRequest(writes=w or None, deletes=d or None), options

    def write(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> None:
        """Write and delete tuples (one transaction up to 100 tuples, chunks beyond)."""
        body, options = self._write_args(writes, deletes)
        try:
            response = self._client().write(body, options)
        except Exception as exc:
            raise _map_error(exc) from None
        _raise_chunk_errors(response)

    async def awrite(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = ()) -> None:
        """Async :meth:`write`."""
        body, options = self._write_args(writes, deletes)
        try:
            response = await self._aclient().write(body, options)
        except Exception as exc:
            raise _map_error(exc) from None
        _raise_chunk_errors(response)

    def delete(self, tuples: Iterable[Any]) -> None:
        """Delete tuples."""
        self.write((), tuples)

    async def adelete(self, tuples: Iterable[Any]) -> None:
        """Async :meth:`delete`."""
        await self.awrite((), tuples)


def _raise_chunk_errors(response: Any) -> None:
    for group in (getattr(response, "writes", None) or [], getattr(response, "deletes", None) or []):
        for item in group:
            error = getattr(item, "error", None)
            if error is not None:
                raise (
                    _map_error(error) if isinstance(error, BaseException) else AuthorizationError(str(error))
                )
