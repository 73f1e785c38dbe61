"""The embedded engine behind the subset of OpenFGA's HTTP API that ``openfga-sdk`` calls.

Endpoints: stores (create, list, get, delete), authorization models (write, list, get),
write (with ``on_duplicate`` / ``on_missing``), read, check, batch-check, list-objects and
list-users. Request and response bodies follow OpenFGA's JSON; errors are OpenFGA's
``{"code": "validation_error", "message": ...}`` with its HTTP statuses, so an SDK (or the
``fga`` CLI) pointed at ``agent-auth fga serve`` behaves as against an OpenFGA server.

Stores live in memory, or in one SQLite file (``db=``) that survives restarts. A bearer token
(``api_token=``, sent as OpenFGA's ``Authorization: Bearer``) protects the API; ``agent-auth fga
serve`` generates one at start unless told ``--no-auth``. Bodies are read with a size limit and
parsed with a nesting limit, so bad input is a 400, never a 500.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_agent_auth.core._serving import JSONLimitError, load_json_bounded
from langchain_agent_auth.core.errors import AgentAuthError, AuthorizationError, ModelError
from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
from langchain_agent_auth.fga._model import AuthorizationModel
from langchain_agent_auth.fga._store import MemoryTupleStore, SQLiteTupleStore, TupleStore, _now, new_ulid
from langchain_agent_auth.fga._tuple import TupleKey, coerce_tuples

__all__ = ["create_app"]

MAX_WRITE_TUPLES = 100
MAX_BATCH_CHECKS = 50
MAX_LIST_RESULTS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64  # deep enough for any real model's rewrites, far from Python's recursion limit

_CODE_NAMES = {
    2000: "validation_error",
    2001: "authorization_model_not_found",
    2002: "authorization_model_resolution_too_complex",
    2004: "cannot_allow_duplicate_tuples_in_one_request",
    2007: "invalid_continuation_token",
    2017: "write_failed_due_to_invalid_input",
    2021: "type_not_found",
    2022: "relation_not_found",
    2027: "invalid_tuple",
    2039: "page_size_invalid",
    2053: "exceeded_entity_limit",
    2056: "invalid_authorization_model",
}


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message[:2000]}, status_code=status)


def _from_error(exc: AgentAuthError) -> JSONResponse:
    if isinstance(exc, ModelError):
        return _error_response(400, "invalid_authorization_model", str(exc))
    if isinstance(exc, AuthorizationError):
        return _error_response(400, _CODE_NAMES.get(exc.code, "validation_error"), str(exc))
    return _error_response(400, "validation_error", str(exc))


@dataclass
class _Store:
    id: str
    name: str
    created_at: str
    updated_at: str
    tuples: TupleStore
    authorizer: EmbeddedAuthorizer | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class _Registry:
    def __init__(self, db: str | None) -> None:
        self.db = db
        self.stores: dict[str, _Store] = {}
        self.lock = threading.Lock()
        if db:
            index = SQLiteTupleStore(db, store_id="__registry__")
            self._index = index
            for sid, name, created, updated in index.list_registered_stores():
                self.stores[sid] = _Store(sid, name, created, updated, SQLiteTupleStore(db, store_id=sid))

    def create(self, name: str) -> _Store:
        sid = new_ulid()
        stamp = _now()
        tuples: TupleStore = SQLiteTupleStore(self.db, store_id=sid) if self.db else MemoryTupleStore(sid)
        if self.db:
            self._index.register_store(sid, name)
        entry = _Store(sid, name, stamp, stamp, tuples)
        with self.lock:
            self.stores[sid] = entry
        return entry

    def get(self, store_id: str) -> _Store:
        entry = self.stores.get(store_id)
        if entry is None:
            raise _ApiError(404, "store_id_not_found", f"store '{store_id}' not found")
        return entry

    def delete(self, store_id: str) -> None:
        self.get(store_id)
        with self.lock:
            self.stores.pop(store_id, None)
        if self.db:
            self._index.drop_store(store_id)

    def authorizer(self, entry: _Store) -> EmbeddedAuthorizer:
        if entry.authorizer is None:
            if entry.tuples.read_model() is None:
                raise _ApiError(
                    400,
                    "latest_authorization_model_not_found",
                    f"no authorization model found for store '{entry.id}'",
                )
            entry.authorizer = EmbeddedAuthorizer(store=entry.tuples, max_contextual_tuples=100)
        return entry.authorizer


async def _read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused as soon as it passes ``limit`` (a chunked upload is never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _ApiError(413, "validation_error", "request body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _ApiError(413, "validation_error", "request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request) -> dict[str, Any]:
    raw = await _read_limited(request)
    if not raw.strip():
        return {}
    try:
        data = load_json_bounded(raw, max_depth=MAX_JSON_DEPTH)
    except JSONLimitError as exc:
        raise _ApiError(400, "validation_error", f"the request body is not usable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _ApiError(400, "validation_error", "the request body must be a JSON object")
    return data


def _tuple_keys(value: Any, field: str) -> list[TupleKey]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = value.get("tuple_keys") or []
    if not isinstance(value, list):
        raise _ApiError(400, "validation_error", f"{field} must be a list of tuple keys")
    return coerce_tuples(value)


def _required(body: Mapping[str, Any], *names: str) -> list[str]:
    out = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise _ApiError(400, "validation_error", f"'{name}' is required")
        out.append(value)
    return out


def _user_json(user: str) -> dict[str, Any]:
    head, _, rel = user.partition("#")
    t, _, i = head.partition(":")
    if rel:
        return {"userset": {"type": t, "id": i, "relation": rel}}
    if i == "*":
        return {"wildcard": {"type": t}}
    return {"object": {"type": t, "id": i}}


def _model_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("authorization_model_id")
    return value if isinstance(value, str) and value else None


class _Api:
    """The endpoints of the OpenFGA HTTP API subset, over one registry of stores."""

    def __init__(self, registry: _Registry) -> None:
        self.registry = registry

    async def _authorized(self, request: Request) -> tuple[dict[str, Any], EmbeddedAuthorizer]:
        """The request's body and its store's authorizer (an unknown store is a 404 first)."""
        entry = self.registry.get(request.path_params["store_id"])
        body = await _body(request)
        return body, self.registry.authorizer(entry)

    async def create_store(self, request: Request) -> Response:
        body = await _body(request)
        (name,) = _required(body, "name")
        return JSONResponse(self.registry.create(name).to_json(), status_code=201)

    async def list_stores(self, request: Request) -> Response:
        stores = sorted(self.registry.stores.values(), key=lambda s: s.id)
        name = request.query_params.get("name")
        if name:
            stores = [s for s in stores if s.name == name]
        return JSONResponse({"stores": [s.to_json() for s in stores], "continuation_token": ""})

    async def get_store(self, request: Request) -> Response:
        return JSONResponse(self.registry.get(request.path_params["store_id"]).to_json())

    async def delete_store(self, request: Request) -> Response:
        self.registry.delete(request.path_params["store_id"])
        return Response(status_code=204)

    async def write_model(self, request: Request) -> Response:
        entry = self.registry.get(request.path_params["store_id"])
        body = await _body(request)
        model = AuthorizationModel.from_json(body)
        if entry.authorizer is None:
            model_id = entry.tuples.write_model(json.dumps(model.to_json(), sort_keys=True))
            entry.authorizer = EmbeddedAuthorizer(store=entry.tuples, model_id=model_id)
        else:
            model_id = entry.authorizer.write_model(model)
        return JSONResponse({"authorization_model_id": model_id}, status_code=201)

    async def list_models(self, request: Request) -> Response:
        entry = self.registry.get(request.path_params["store_id"])
        models = entry.tuples.list_models()
        try:
            page_size = int(request.query_params.get("page_size") or 50)
        except ValueError:
            raise _ApiError(400, "validation_error", "page_size must be an integer") from None
        return JSONResponse(
            {
                "authorization_models": [
                    _stored_model_json(m.id, m.created_at, m.model_json) for m in models[:page_size]
                ],
                "continuation_token": "",
            }
        )

    async def get_model(self, request: Request) -> Response:
        entry = self.registry.get(request.path_params["store_id"])
        stored = entry.tuples.read_model(request.path_params["model_id"])
        if stored is None:
            raise _ApiError(404, "authorization_model_not_found", "authorization model not found")
        return JSONResponse(
            {"authorization_model": _stored_model_json(stored.id, stored.created_at, stored.model_json)}
        )

    async def write(self, request: Request) -> Response:
        body, auth = await self._authorized(request)
        writes_raw = body.get("writes") or {}
        deletes_raw = body.get("deletes") or {}
        writes = _tuple_keys(writes_raw, "writes")
        deletes = _tuple_keys(deletes_raw, "deletes")
        if not writes and not deletes:
            raise _ApiError(400, "validation_error", "a write needs writes or deletes")
        if len(writes) + len(deletes) > MAX_WRITE_TUPLES:
            raise _ApiError(
                400, "exceeded_entity_limit", f"at most {MAX_WRITE_TUPLES} tuples per write request"
            )
        on_duplicate = (
            writes_raw.get("on_duplicate") if isinstance(writes_raw, Mapping) else None
        ) or "error"
        on_missing = (deletes_raw.get("on_missing") if isinstance(deletes_raw, Mapping) else None) or "error"
        await run_in_threadpool(
            auth.write,
            writes,
            deletes,
            on_duplicate=on_duplicate,
            on_missing=on_missing,
            model_id=_model_id(body),
        )
        return JSONResponse({})

    async def read(self, request: Request) -> Response:
        entry = self.registry.get(request.path_params["store_id"])
        body = await _body(request)
        key = body.get("tuple_key") or {}
        if not isinstance(key, Mapping):
            raise _ApiError(400, "validation_error", "tuple_key must be an object")
        for name in ("object", "relation", "user"):
            if key.get(name) is not None and not isinstance(key.get(name), str):
                raise _ApiError(400, "validation_error", f"tuple_key.{name} must be a string")
        page_size = body.get("page_size") or 50
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise _ApiError(400, "validation_error", "page_size must be an integer from 1 to 100")
        if body.get("continuation_token") is not None and not isinstance(body["continuation_token"], str):
            raise _ApiError(400, "validation_error", "continuation_token must be a string")
        rows, token = await run_in_threadpool(
            entry.tuples.read,
            key.get("object") or None,
            key.get("relation") or None,
            key.get("user") or None,
            page_size=page_size,
            continuation_token=body.get("continuation_token") or None,
        )
        return JSONResponse(
            {
                "tuples": [{"key": t.to_dict(), "timestamp": stamp} for t, stamp in rows],
                "continuation_token": token or "",
            }
        )

    async def check(self, request: Request) -> Response:
        body, auth = await self._authorized(request)
        key = body.get("tuple_key")
        if not isinstance(key, Mapping):
            raise _ApiError(400, "validation_error", "tuple_key is required")
        user, relation, obj = _required(key, "user", "relation", "object")
        allowed = await run_in_threadpool(auth.check, user, relation, obj, **_query_options(body))
        return JSONResponse({"allowed": allowed, "resolution": ""})

    async def batch_check(self, request: Request) -> Response:
        body, auth = await self._authorized(request)
        checks = body.get("checks")
        if not isinstance(checks, list) or not checks:
            raise _ApiError(400, "validation_error", "checks must be a non-empty list")
        if len(checks) > MAX_BATCH_CHECKS:
            raise _ApiError(400, "validation_error", f"at most {MAX_BATCH_CHECKS} checks per batch")
        items, ids = [], []
        for item in checks:
            if not isinstance(item, Mapping) or not isinstance(item.get("tuple_key"), Mapping):
                raise _ApiError(400, "validation_error", "each check needs a tuple_key")
            cid = item.get("correlation_id")
            if not isinstance(cid, str) or not cid or cid in ids:
                raise _ApiError(400, "validation_error", "each check needs a unique correlation_id")
            ids.append(cid)
            key = item["tuple_key"]
            items.append(
                {
                    "user": key.get("user", ""),
                    "relation": key.get("relation", ""),
                    "object": key.get("object", ""),
                    "context": item.get("context"),
                    "contextual_tuples": _tuple_keys(item.get("contextual_tuples"), "contextual_tuples")
                    or None,
                    "correlation_id": cid,
                }
            )
        decisions = await run_in_threadpool(auth.batch_check, items, model_id=_model_id(body))
        result: dict[str, Any] = {}
        for cid, decision in zip(ids, decisions, strict=True):
            out: dict[str, Any] = {"allowed": decision.allowed}
            if decision.error:
                out["error"] = {
                    "input_error": _CODE_NAMES.get(decision.error_code or 2000, "validation_error"),
                    "message": decision.error,
                }
            result[cid] = out
        return JSONResponse({"result": result})

    async def list_objects(self, request: Request) -> Response:
        body, auth = await self._authorized(request)
        user, relation, type_ = _required(body, "user", "relation", "type")
        objects = await run_in_threadpool(
            auth.list_objects, user, relation, type_, **_query_options(body), max_results=MAX_LIST_RESULTS
        )
        return JSONResponse({"objects": objects})

    async def list_users(self, request: Request) -> Response:
        body, auth = await self._authorized(request)
        obj = body.get("object")
        if not isinstance(obj, Mapping) or not obj.get("type") or not obj.get("id"):
            raise _ApiError(400, "validation_error", "object must be {type, id}")
        (relation,) = _required(body, "relation")
        filters = body.get("user_filters")
        if not isinstance(filters, list) or len(filters) != 1:
            raise _ApiError(400, "validation_error", "user_filters must hold exactly one filter")
        target = f"{obj['type']}:{obj['id']}"
        users = await run_in_threadpool(auth.list_users, target, relation, filters[0], **_query_options(body))
        return JSONResponse({"users": [_user_json(u) for u in users[:MAX_LIST_RESULTS]]})


def _query_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """What every query accepts besides its own fields: context, contextual tuples, model id."""
    return {
        "context": body.get("context"),
        "contextual_tuples": _tuple_keys(body.get("contextual_tuples"), "contextual_tuples"),
        "model_id": _model_id(body),
    }


def _stored_model_json(model_id: str, created_at: str, raw: str) -> dict[str, Any]:
    data = json.loads(raw)
    data["id"] = model_id
    data.setdefault("conditions", {})
    return data


def _endpoint(
    fn: Callable[[Request], Awaitable[Response]], api_token: str | None, *, public: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """``fn`` behind the bearer token (unless ``public``), its errors as OpenFGA's error bodies."""

    async def wrapped(request: Request) -> Response:
        if api_token is not None and not public:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(errors="replace"), f"Bearer {api_token}".encode()):
                response = _error_response(401, "unauthenticated", "missing or invalid bearer token")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        try:
            return await fn(request)
        except _ApiError as exc:
            return _error_response(exc.status, exc.code, exc.message)
        except AgentAuthError as exc:
            return _from_error(exc)

    return wrapped


async def _not_found(request: Request) -> Response:
    return _error_response(404, "undefined_endpoint", "endpoint not implemented by this server")


def create_app(*, db: str | None = None, api_token: str | None = None) -> Starlette:
    """The ASGI app (run it with uvicorn; ``agent-auth fga serve`` does).

    Example:
        >>> from starlette.testclient import TestClient
        >>> client = TestClient(create_app())
        >>> store = client.post("/stores", json={"name": "demo"}).json()
        >>> client.get(f"/stores/{store['id']}").json()["name"]
        'demo'
    """
    api = _Api(_Registry(db))

    store = "/stores/{store_id}"
    models = f"{store}/authorization-models"
    table: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = [
        ("POST", "/stores", api.create_store),
        ("GET", "/stores", api.list_stores),
        ("GET", store, api.get_store),
        ("DELETE", store, api.delete_store),
        ("POST", models, api.write_model),
        ("GET", models, api.list_models),
        ("GET", f"{models}/{{model_id}}", api.get_model),
        ("POST", f"{store}/write", api.write),
        ("POST", f"{store}/read", api.read),
        ("POST", f"{store}/check", api.check),
        ("POST", f"{store}/batch-check", api.batch_check),
        ("POST", f"{store}/list-objects", api.list_objects),
        ("POST", f"{store}/list-users", api.list_users),
    ]
    routes = [Route(path, _endpoint(handler, api_token), methods=[method]) for method, path, handler in table]
    routes += [
        Route("/healthz", _endpoint(lambda r: _ok(), api_token, public=True), methods=["GET"]),
        Route("/{path:path}", _not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    return Starlette(routes=routes)


async def _ok() -> Response:
    return JSONResponse({"status": "SERVING"})
