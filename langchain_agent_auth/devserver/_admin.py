"""The admin API (``/admin/...``): loopback callers with the admin bearer token only.

It plays the user's phone for tests, notebooks and ``agent-auth approvals``, counts requests,
moves the provider's clock forward (instead of sleeping), registers users and clients at
runtime, rotates keys, links upstream accounts without a browser and makes the upstream
misbehave (revoke or expire a user's tokens, an outage, faults and delays per endpoint:
:mod:`._faults`). Every route answers JSON; errors are
``{"error": ..., "error_description": ...}``. The handlers are module-level functions of
``(provider, request)``; :data:`ROUTES` is the table.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_agent_auth.devserver import _ciba, _exchange
from langchain_agent_auth.devserver._faults import MAX_QUEUED
from langchain_agent_auth.devserver._util import is_loopback_host
from langchain_agent_auth.devserver._web import (
    BadRequest,
    Endpoint,
    Handler,
    RouteTable,
    guarded,
    json_error,
    read_json,
    table_routes,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider


def _str(body: dict[str, Any], name: str, *, required: bool = True, limit: int = 200) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(400, "invalid_request", f"{name} must be a non-empty string")
    return value


ADMIN_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agent-auth-admin", error="invalid_token"'}
CLIENT_FIELDS = {
    "client_id",
    "client_name",
    "grant_types",
    "redirect_uris",
    "token_endpoint_auth_method",
    "scope",
    "jwks",
    "backchannel_token_delivery_mode",
    "backchannel_client_notification_endpoint",
    "authorization_details_types",
    "client_secret",
    "realm",
    "require_pkce",
    "token_exchange_from_clients",
}
CLIENT_LIST_FIELDS = ("grant_types", "redirect_uris", "authorization_details_types", "token_exchange_from_clients")
CLIENT_STRING_FIELDS = CLIENT_FIELDS - {*CLIENT_LIST_FIELDS, "jwks", "realm", "require_pkce"}
APPROVAL_STATUSES = ("pending", "approved", "denied", "denied_reported", "consumed", "expired", "all")


def _endpoint(provider: Provider, func: Handler) -> Endpoint:
    """``func`` for loopback callers with the admin bearer token; errors become JSON."""
    token = provider.store.secrets.admin_token

    async def wrapper(request: Request) -> Response:
        client_host = request.client.host if request.client else None
        if not is_loopback_host(client_host):
            return json_error(403, "access_denied", "the admin API answers loopback callers only")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return json_error(401, "invalid_token", "admin bearer token required", ADMIN_CHALLENGE)
        try:
            return await func(provider, request)
        except _ciba.DecisionError as exc:
            return json_error(exc.status, exc.error, exc.description)
        except ValueError as exc:
            return json_error(400, "invalid_request", str(exc))

    wrapper.__name__ = func.__name__
    return guarded(wrapper)


# ---------------------------------------------------------------------------- the user's phone
async def health(provider: Provider, request: Request) -> Response:
    return JSONResponse({"ok": True, "issuer": provider.issuer})


async def approvals(provider: Provider, request: Request) -> Response:
    status = request.query_params.get("status", "pending")
    if status not in APPROVAL_STATUSES:
        raise BadRequest(400, "invalid_request", "unknown status")
    items = _ciba.list_requests(
        provider,
        user=request.query_params.get("user") or None,
        status=None if status == "all" else status,
    )
    return JSONResponse({"requests": items})


async def approval(provider: Provider, request: Request) -> Response:
    rows = [r for r in _ciba.list_requests(provider, status=None) if r["id"] == request.path_params["id"]]
    if not rows:
        return json_error(404, "not_found", "no such request")
    return JSONResponse(rows[0])


async def approve(provider: Provider, request: Request) -> Response:
    body = await read_json(request)
    details = body.get("authorization_details")
    if details is not None and not isinstance(details, list):
        raise BadRequest(400, "invalid_authorization_details", "authorization_details must be a list")
    return await _decided(
        provider, _ciba.approve, provider, request.path_params["id"], authorization_details=details
    )


async def deny(provider: Provider, request: Request) -> Response:
    reason = _str(await read_json(request), "reason", required=False)
    return await _decided(provider, _ciba.deny, provider, request.path_params["id"], reason=reason)


async def _decided(provider: Provider, decide: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
    """Record a decision off the event loop, then ping the client if it asked for pings."""
    view, ping = await run_in_threadpool(decide, *args, **kwargs)
    if ping:
        provider.spawn(_ciba.send_ping(provider, ping))
    return JSONResponse(view)


# ---------------------------------------------------------------------------- counters and time
async def stats(provider: Provider, request: Request) -> Response:
    return JSONResponse(provider.stats())


async def reset_stats(provider: Provider, request: Request) -> Response:
    provider.reset_stats()
    return JSONResponse({"ok": True})


async def clock(provider: Provider, request: Request) -> Response:
    """``GET`` the provider's time; ``POST {"seconds": n}`` moves it forward (tests, notebooks)."""
    if request.method == "POST":
        seconds = (await read_json(request)).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 10**7:
            raise BadRequest(400, "invalid_request", "seconds must be a number in [0, 10000000]")
        provider.clock.advance(seconds)
    return JSONResponse({"time": provider.clock.time()})


# ---------------------------------------------------------------------------- users, clients, keys
async def add_user(provider: Provider, request: Request) -> Response:
    body = await read_json(request)
    sub, password = _str(body, "username"), _str(body, "password")
    provider.store.add_user(
        sub or "",
        password or "",
        email=_str(body, "email", required=False),
        name=_str(body, "name", required=False),
    )
    return JSONResponse({"sub": sub}, status_code=201)


def _client_metadata(body: dict[str, Any]) -> str:
    """Check an ``add_client`` body in place (types of every field); returns its realm."""
    unknown = set(body) - CLIENT_FIELDS
    if unknown:
        raise BadRequest(400, "invalid_client_metadata", "unknown fields: " + ", ".join(sorted(unknown)))
    realm = body.pop("realm", "main")
    if realm not in ("main", "upstream"):
        raise BadRequest(400, "invalid_client_metadata", "realm must be main or upstream")
    if "require_pkce" in body and not isinstance(body["require_pkce"], bool):
        raise BadRequest(400, "invalid_client_metadata", "require_pkce must be true or false")
    for name in CLIENT_LIST_FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise BadRequest(400, "invalid_client_metadata", f"{name} must be a list of strings")
    for name in CLIENT_STRING_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise BadRequest(400, "invalid_client_metadata", f"{name} must be a string")
    if body.get("jwks") is not None and not isinstance(body["jwks"], dict):
        raise BadRequest(400, "invalid_client_metadata", "jwks must be a JWK Set object")
    return realm


async def add_client(provider: Provider, request: Request) -> Response:
    body = await read_json(request)
    realm = _client_metadata(body)
    body["client_id"] = body.get("client_id") or f"client-{secrets.token_hex(6)}"
    try:
        secret = provider.store.add_client(realm=realm, **body)
    except (TypeError, ValueError, JoseError) as exc:
        raise BadRequest(400, "invalid_client_metadata", str(exc)) from None
    meta = provider.store.get_client(body["client_id"], realm) or {}
    meta.pop("_secret_hash", None)
    return JSONResponse({**meta, "client_secret": secret}, status_code=201)


async def rotate_keys(provider: Provider, request: Request) -> Response:
    kids = provider.store.add_signing_keys()
    return JSONResponse({"added": kids, "jwks": provider.store.public_jwks()})


async def add_resource(provider: Provider, request: Request) -> Response:
    body = await read_json(request)
    identifier, scopes = body.get("identifier"), body.get("scopes")
    if not isinstance(identifier, str) or not identifier or len(identifier) > 500:
        raise BadRequest(400, "invalid_request", "identifier must be a resource URI")
    if not isinstance(scopes, str):
        raise BadRequest(400, "invalid_request", "scopes must be a space-separated string")
    extra = {k: body[k] for k in ("alg", "ttl", "description") if body.get(k) is not None}
    try:
        provider.store.add_resource(identifier, scopes, **extra)
    except (TypeError, ValueError) as exc:
        raise BadRequest(400, "invalid_request", str(exc)) from None
    return JSONResponse({"identifier": identifier, "scopes": " ".join(scopes.split())}, status_code=201)


# ---------------------------------------------------------------------------- upstream & Token Vault
async def connections(provider: Provider, request: Request) -> Response:
    return JSONResponse({"connections": _exchange.list_connections(provider, request.query_params.get("user"))})


async def link(provider: Provider, request: Request) -> Response:
    body = await read_json(request)
    view = _exchange.link_direct(
        provider,
        _str(body, "user") or "",
        _str(body, "connection") or "",
        _str(body, "scope", required=False, limit=500),
    )
    return JSONResponse(view, status_code=201)


async def unlink(provider: Provider, request: Request) -> Response:
    done = _exchange.unlink(provider, request.path_params["user"], request.path_params["connection"])
    return JSONResponse({"removed": done}, status_code=200 if done else 404)


async def upstream_user(provider: Provider, request: Request) -> Response:
    sub, action = request.path_params["user"], request.path_params["action"]
    if provider.user(sub) is None:
        return json_error(404, "not_found", "unknown user")
    count = _exchange.upstream_user_action(provider, sub, action)
    return JSONResponse({"user": sub, "action": action, "affected": count})


async def outage(provider: Provider, request: Request) -> Response:
    """``POST {"token": n, "api": m}``: queue that many ``503`` faults (:mod:`._faults`)."""
    body = await read_json(request)
    for kind in ("token", "api"):
        if kind in body:
            value = body[kind]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_QUEUED:
                raise BadRequest(400, "invalid_request", f"{kind} must be an integer count")
            provider.faults.add(kind, ["503"] * value)
    return JSONResponse({"ok": True})


async def faults(provider: Provider, request: Request) -> Response:
    """``GET`` the armed faults; ``POST {"endpoint", "faults": [...], "delay": s}`` arms more;
    ``DELETE`` clears them all (see :mod:`._faults`)."""
    if request.method == "POST":
        body = await read_json(request)
        kinds = body.get("faults", [])
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise BadRequest(400, "invalid_request", "faults must be a list of fault names")
        return JSONResponse(provider.faults.add(_str(body, "endpoint") or "", kinds, delay=body.get("delay")))
    if request.method == "DELETE":
        provider.faults.clear()
    return JSONResponse(provider.faults.view())


async def issued(provider: Provider, request: Request) -> Response:
    """``GET`` the demo upstream's recorded credentials; ``DELETE`` forgets them."""
    tokens = provider.recorded_upstream_tokens(forget=request.method == "DELETE")
    if tokens is None:
        return json_error(404, "not_found", "start the provider with record_upstream_tokens=True")
    return JSONResponse({"tokens": tokens})


ROUTES: RouteTable = [
    ("/admin/health", health, ["GET"]),
    ("/admin/approvals", approvals, ["GET"]),
    ("/admin/approvals/{id}", approval, ["GET"]),
    ("/admin/approvals/{id}/approve", approve, ["POST"]),
    ("/admin/approvals/{id}/deny", deny, ["POST"]),
    ("/admin/stats", stats, ["GET"]),
    ("/admin/stats/reset", reset_stats, ["POST"]),
    ("/admin/clock", clock, ["GET", "POST"]),
    ("/admin/users", add_user, ["POST"]),
    ("/admin/clients", add_client, ["POST"]),
    ("/admin/keys/rotate", rotate_keys, ["POST"]),
    ("/admin/resources", add_resource, ["POST"]),
    ("/admin/connections", connections, ["GET"]),
    ("/admin/connections", link, ["POST"]),
    ("/admin/connections/{user}/{connection}", unlink, ["DELETE"]),
    ("/admin/upstream/users/{user}/{action:str}", upstream_user, ["POST"]),
    ("/admin/upstream/outage", outage, ["POST"]),
    ("/admin/upstream/faults", faults, ["GET", "POST", "DELETE"]),
    ("/admin/upstream/issued", issued, ["GET", "DELETE"]),
]


def admin_routes(provider: Provider) -> list[Route]:
    """The admin API's routes, each behind the loopback + admin-token check."""
    return table_routes(ROUTES, lambda func: _endpoint(provider, func))
