"""The admin API (``/admin/...``): loopback callers with the admin bearer token only.

It plays the user's phone for tests, notebooks and ``agent-auth approvals``, counts requests,
registers users and clients at runtime, rotates keys, links upstream accounts without a
browser and makes the upstream misbehave (revoke or expire a user's tokens, fail the next
calls). Every route answers JSON; errors are ``{"error": ..., "error_description": ...}``.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Any

from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_agent_auth.devserver import _ciba, _exchange
from langchain_agent_auth.devserver._util import is_loopback_host
from langchain_agent_auth.devserver._web import BadRequest, guarded, json_error, read_json

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider


def _str(body: dict[str, Any], name: str, *, required: bool = True, limit: int = 200) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(400, "invalid_request", f"{name} must be a non-empty string")
    return value


def admin_routes(provider: Provider) -> list[Route]:
    token = provider.store.secrets.admin_token

    def admin(func: Any) -> Any:
        async def wrapper(request: Request) -> Response:
            client_host = request.client.host if request.client else None
            if not is_loopback_host(client_host):
                return json_error(403, "access_denied", "the admin API answers loopback callers only")
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return json_error(
                    401,
                    "invalid_token",
                    "admin bearer token required",
                    {"WWW-Authenticate": 'Bearer realm="agent-auth-admin", error="invalid_token"'},
                )
            try:
                return await func(request)
            except _ciba.DecisionError as exc:
                return json_error(exc.status, exc.error, exc.description)
            except ValueError as exc:
                return json_error(400, "invalid_request", str(exc))

        wrapper.__name__ = func.__name__
        return guarded(wrapper)

    @admin
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "issuer": provider.issuer})

    @admin
    async def approvals(request: Request) -> Response:
        status = request.query_params.get("status", "pending")
        if status not in ("pending", "approved", "denied", "denied_reported", "consumed", "expired", "all"):
            raise BadRequest(400, "invalid_request", "unknown status")
        items = _ciba.list_requests(
            provider,
            user=request.query_params.get("user") or None,
            status=None if status == "all" else status,
        )
        return JSONResponse({"requests": items})

    @admin
    async def approval(request: Request) -> Response:
        rows = [r for r in _ciba.list_requests(provider, status=None) if r["id"] == request.path_params["id"]]
        if not rows:
            return json_error(404, "not_found", "no such request")
        return JSONResponse(rows[0])

    @admin
    async def approve(request: Request) -> Response:
        body = await read_json(request)
        details = body.get("authorization_details")
        if details is not None and not isinstance(details, list):
            raise BadRequest(400, "invalid_authorization_details", "authorization_details must be a list")
        view, ping = await run_in_threadpool(
            _ciba.approve, provider, request.path_params["id"], authorization_details=details
        )
        if ping:
            provider.spawn(_ciba.send_ping(provider, ping))
        return JSONResponse(view)

    @admin
    async def deny(request: Request) -> Response:
        body = await read_json(request)
        reason = _str(body, "reason", required=False)
        view, ping = await run_in_threadpool(_ciba.deny, provider, request.path_params["id"], reason=reason)
        if ping:
            provider.spawn(_ciba.send_ping(provider, ping))
        return JSONResponse(view)

    @admin
    async def stats(request: Request) -> Response:
        return JSONResponse(provider.stats())

    @admin
    async def reset_stats(request: Request) -> Response:
        provider.reset_stats()
        return JSONResponse({"ok": True})

    @admin
    async def add_user(request: Request) -> Response:
        body = await read_json(request)
        sub, password = _str(body, "username"), _str(body, "password")
        provider.store.add_user(
            sub or "",
            password or "",
            email=_str(body, "email", required=False),
            name=_str(body, "name", required=False),
        )
        return JSONResponse({"sub": sub}, status_code=201)

    @admin
    async def add_client(request: Request) -> Response:
        body = await read_json(request)
        allowed = {
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
        unknown = set(body) - allowed
        if unknown:
            raise BadRequest(400, "invalid_client_metadata", "unknown fields: " + ", ".join(sorted(unknown)))
        realm = body.pop("realm", "main")
        if realm not in ("main", "upstream"):
            raise BadRequest(400, "invalid_client_metadata", "realm must be main or upstream")
        if "require_pkce" in body and not isinstance(body["require_pkce"], bool):
            raise BadRequest(400, "invalid_client_metadata", "require_pkce must be true or false")
        for name in ("grant_types", "redirect_uris", "authorization_details_types", "token_exchange_from_clients"):
            value = body.get(name)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise BadRequest(400, "invalid_client_metadata", f"{name} must be a list of strings")
        for name in allowed - {
            "grant_types",
            "redirect_uris",
            "authorization_details_types",
            "jwks",
            "realm",
            "require_pkce",
            "token_exchange_from_clients",
        }:
            if body.get(name) is not None and not isinstance(body[name], str):
                raise BadRequest(400, "invalid_client_metadata", f"{name} must be a string")
        if body.get("jwks") is not None and not isinstance(body["jwks"], dict):
            raise BadRequest(400, "invalid_client_metadata", "jwks must be a JWK Set object")
        body["client_id"] = body.get("client_id") or f"client-{secrets.token_hex(6)}"
        try:
            secret = provider.store.add_client(realm=realm, **body)
        except (TypeError, ValueError, JoseError) as exc:
            raise BadRequest(400, "invalid_client_metadata", str(exc)) from None
        meta = provider.store.get_client(body["client_id"], realm) or {}
        meta.pop("_secret_hash", None)
        return JSONResponse({**meta, "client_secret": secret}, status_code=201)

    @admin
    async def rotate_keys(request: Request) -> Response:
        kids = provider.store.add_signing_keys()
        return JSONResponse({"added": kids, "jwks": provider.store.public_jwks()})

    @admin
    async def add_resource(request: Request) -> Response:
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

    @admin
    async def connections(request: Request) -> Response:
        return JSONResponse(
            {"connections": _exchange.list_connections(provider, request.query_params.get("user"))}
        )

    @admin
    async def link(request: Request) -> Response:
        body = await read_json(request)
        view = _exchange.link_direct(
            provider,
            _str(body, "user") or "",
            _str(body, "connection") or "",
            _str(body, "scope", required=False, limit=500),
        )
        return JSONResponse(view, status_code=201)

    @admin
    async def unlink(request: Request) -> Response:
        done = _exchange.unlink(provider, request.path_params["user"], request.path_params["connection"])
        return JSONResponse({"removed": done}, status_code=200 if done else 404)

    @admin
    async def upstream_user(request: Request) -> Response:
        sub, action = request.path_params["user"], request.path_params["action"]
        if provider.user(sub) is None:
            return json_error(404, "not_found", "unknown user")
        count = _exchange.upstream_user_action(provider, sub, action)
        return JSONResponse({"user": sub, "action": action, "affected": count})

    @admin
    async def outage(request: Request) -> Response:
        body = await read_json(request)
        for kind in ("token", "api"):
            if kind in body:
                if (
                    not isinstance(body[kind], int)
                    or isinstance(body[kind], bool)
                    or not 0 <= body[kind] <= 1000
                ):
                    raise BadRequest(400, "invalid_request", f"{kind} must be an integer count")
                provider.set_outage(kind, body[kind])
        return JSONResponse({"ok": True})

    return [
        Route("/admin/health", health, methods=["GET"]),
        Route("/admin/approvals", approvals, methods=["GET"]),
        Route("/admin/approvals/{id}", approval, methods=["GET"]),
        Route("/admin/approvals/{id}/approve", approve, methods=["POST"]),
        Route("/admin/approvals/{id}/deny", deny, methods=["POST"]),
        Route("/admin/stats", stats, methods=["GET"]),
        Route("/admin/stats/reset", reset_stats, methods=["POST"]),
        Route("/admin/users", add_user, methods=["POST"]),
        Route("/admin/clients", add_client, methods=["POST"]),
        Route("/admin/keys/rotate", rotate_keys, methods=["POST"]),
        Route("/admin/resources", add_resource, methods=["POST"]),
        Route("/admin/connections", connections, methods=["GET"]),
        Route("/admin/connections", link, methods=["POST"]),
        Route("/admin/connections/{user}/{connection}", unlink, methods=["DELETE"]),
        Route("/admin/upstream/users/{user}/{action:str}", upstream_user, methods=["POST"]),
        Route("/admin/upstream/outage", outage, methods=["POST"]),
    ]
