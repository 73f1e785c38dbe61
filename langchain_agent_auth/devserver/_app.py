"""The Starlette application of the local provider: every route of both realms, the pages,
the demo API and the admin API, wrapped in :class:`~._web.ShieldMiddleware`."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from langchain_agent_auth.devserver import _ciba, _device, _exchange, _pages
from langchain_agent_auth.devserver._admin import admin_routes
from langchain_agent_auth.devserver._api import api_routes
from langchain_agent_auth.devserver._issuance import find_token
from langchain_agent_auth.devserver._oauth import OAuthServer
from langchain_agent_auth.devserver._rar import describe
from langchain_agent_auth.devserver._register import cimd_client, is_cimd_url, register_endpoint
from langchain_agent_auth.devserver._util import check_password, printable_ascii, split_scope
from langchain_agent_auth.devserver._web import (
    PAGE_HEADERS,
    BadRequest,
    FailureLimiter,
    Sessions,
    ShieldMiddleware,
    busy_response,
    guarded,
    is_busy,
    json_error,
    oauth_request,
    read_form,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

_FLASH = {
    "approved": "Approved. The agent can continue.",
    "denied": "Denied. The agent has been told no.",
    "gone": "That request was already answered or has expired.",
    "linked": "Account connected.",
    "unlinked": "Account disconnected.",
    "cancelled": "Connecting the account was cancelled.",
    "failed": "Connecting the account failed; try again.",
}


def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def redirect(url: str, status: int = 303) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers={"Cache-Control": "no-store"})


def _safe_next(value: str | None, realm: str) -> str:
    default = "/upstream/" if realm == "upstream" else "/approvals"
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 4000:
        return default
    if realm == "upstream" and not value.startswith("/upstream/"):
        return default
    return value


def build_app(provider: Provider) -> Starlette:
    """Assemble the ASGI app for ``provider``."""
    sessions = {"main": Sessions(provider, "main"), "upstream": Sessions(provider, "upstream")}
    login_failures = FailureLimiter()
    password_checks = asyncio.Semaphore(1)
    servers: dict[str, OAuthServer] = {"main": provider.main, "upstream": provider.upstream}
    prefixes = {"main": "", "upstream": "/upstream"}

    # ------------------------------------------------------------------ metadata
    async def discovery(request: Request) -> Response:
        return JSONResponse(provider.discovery())

    async def upstream_metadata(request: Request) -> Response:
        return JSONResponse(provider.upstream_metadata())

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.store.public_jwks(), headers={"Cache-Control": "public, max-age=60"})

    async def index(request: Request) -> Response:
        return page(_pages.index_page(provider.info()))

    async def upstream_index(request: Request) -> Response:
        session = sessions["upstream"].current(request)
        text = f"Signed in as {session.sub}." if session else "Not signed in."
        return page(_pages.message_page("Demo upstream provider", text, realm="upstream"))

    # ------------------------------------------------------------------ sign-in
    def login_handler(realm: str) -> Any:
        prefix = prefixes[realm]
        cookie = "aa_login_csrf"

        async def login(request: Request) -> Response:
            if request.method == "GET":
                csrf = secrets.token_urlsafe(24)
                next_url = _safe_next(request.query_params.get("next"), realm)
                response = page(
                    _pages.login_page(
                        action=f"{prefix}/login",
                        next_url=next_url,
                        csrf=csrf,
                        realm=realm,
                        users=provider.store.user_subjects()[:5],
                    )
                )
                response.set_cookie(
                    cookie, csrf, max_age=900, path=prefix or "/", httponly=True, samesite="lax"
                )
                return response
            form = dict(await read_form(request))
            next_url = _safe_next(form.get("next"), realm)
            expected = request.cookies.get(cookie)
            if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
                return page(
                    _pages.message_page(
                        "Sign-in expired",
                        "The sign-in form expired. Go back and reload the page.",
                        realm=realm,
                    ),
                    400,
                )
            username, password = form.get("username", ""), form.get("password", "")
            address = request.client.host if request.client else "?"
            user = provider.store.find_user(username) if username else None
            # scrypt is slow on purpose: off the event loop, one at a time, and the throttle is
            # checked once it is our turn (concurrent attempts cannot all slip past the limit).
            async with password_checks:
                wait = login_failures.blocked(username, address)
                ok = (
                    not wait
                    and user is not None
                    and await run_in_threadpool(check_password, password, user["password_hash"])
                )
            if wait:
                provider.count("logins", f"{realm}_throttled")
                return page(
                    _pages.message_page(
                        "Too many attempts",
                        f"Too many failed sign-ins. Try again in {wait} seconds.",
                        realm=realm,
                    ),
                    429,
                    {"Retry-After": str(wait)},
                )
            if not ok:
                login_failures.record(username, address)
                provider.count("logins", f"{realm}_failed")
                csrf = secrets.token_urlsafe(24)
                response = page(
                    _pages.login_page(
                        action=f"{prefix}/login",
                        next_url=next_url,
                        csrf=csrf,
                        realm=realm,
                        error="Wrong username or password.",
                        users=provider.store.user_subjects()[:5],
                    ),
                    401,
                )
                response.set_cookie(
                    cookie, csrf, max_age=900, path=prefix or "/", httponly=True, samesite="lax"
                )
                return response
            provider.count("logins", realm)
            response = redirect(next_url)
            await run_in_threadpool(sessions[realm].create, response, user["sub"])
            response.delete_cookie(cookie, path=prefix or "/")
            return response

        return guarded_page(login, realm)

    def logout_handler(realm: str) -> Any:
        async def logout(request: Request) -> Response:
            form = dict(await read_form(request))
            session = sessions[realm].current(request)
            response = redirect(f"{prefixes[realm]}/login")
            if session and secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
                sessions[realm].destroy(request, response)
            return response

        return guarded_page(logout, realm)

    def guarded_page(func: Any, realm: str) -> Any:
        async def wrapper(request: Request) -> Response:
            try:
                return await func(request)
            except BadRequest as exc:
                return page(_pages.message_page("Bad request", exc.description, realm=realm), exc.status)

        wrapper.__name__ = func.__name__
        return wrapper

    # ------------------------------------------------------------------ authorization endpoint
    def authorize_handler(realm: str) -> Any:
        server = servers[realm]
        prefix = prefixes[realm]

        async def authorize(request: Request) -> Response:
            oreq = await oauth_request(request)
            client_id = oreq.payload.data.get("client_id") if realm == "main" else None
            if is_cimd_url(client_id) and provider.store.get_client(client_id, "main") is None:
                await run_in_threadpool(cimd_client, provider, client_id)  # a Client ID Metadata Document
            session = sessions[realm].current(request)
            if request.method == "POST" and (
                session is None or not secrets.compare_digest(str(oreq.form.get("csrf", "")), session.csrf)
            ):
                return page(
                    _pages.message_page(
                        "Session expired",
                        "Your session expired. Start again from the application.",
                        realm=realm,
                    ),
                    400,
                )
            user = provider.user(session.sub) if session else None
            try:
                grant = server.get_consent_grant(oreq, end_user=user)
            except OAuth2Error as error:
                if error.redirect_uri:
                    return server.handle_error_response(oreq, error)
                text = printable_ascii(error.get_error_description() or error.error or "invalid request")
                return page(
                    _pages.message_page("Cannot continue", f"{error.error}: {text}", realm=realm), 400
                )
            prompts = set(split_scope(oreq.payload.data.get("prompt")))
            if request.method == "GET":
                if "none" in prompts:
                    from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError

                    cls = LoginRequiredError if user is None else ConsentRequiredError
                    return server.handle_error_response(
                        oreq, cls(redirect_uri=grant.redirect_uri, state=oreq.payload.state)
                    )
                if user is None or "login" in prompts:
                    again = [
                        (k, v) for k, values in oreq._query.datalist.items() for v in values if k != "prompt"
                    ]
                    next_url = f"{prefix}/authorize?{urlencode(again)}"
                    if user is not None:
                        sessions[realm].destroy(
                            request, response := redirect(f"{prefix}/login?" + urlencode({"next": next_url}))
                        )
                        return response
                    return redirect(f"{prefix}/login?" + urlencode({"next": next_url}))
                fields = [(k, v) for k, values in oreq._query.datalist.items() for v in values]
                details = oreq.resolved.get("authorization_details")
                client = oreq.client
                return page(
                    _pages.consent_page(
                        action=f"{prefix}/authorize",
                        client_name=client.client_name,
                        scope=oreq.scope,
                        resources=oreq.resolved.get("targets", []),
                        details_views=[describe(d) for d in details or []],
                        details_raw=details,
                        fields=fields,
                        csrf=session.csrf if session else "",
                        realm=realm,
                        user=user.sub if user else "",
                        session_csrf=session.csrf if session else "",
                    )
                )
            if user is None or session is None:
                return redirect(f"{prefix}/login")
            oreq.resolved["auth_time"] = session.auth_time
            oreq.resolved["acr"] = _ciba.ACR_PASSWORD
            decision = oreq.form.get("decision")
            provider.count("consents", f"{realm}_{'allow' if decision == 'allow' else 'deny'}")
            return await run_in_threadpool(
                server.create_authorization_response,
                oreq,
                grant_user=user if decision == "allow" else None,
                grant=grant,
            )

        return guarded_page(authorize, realm)

    # ------------------------------------------------------------------ token-side endpoints
    def token_handler(realm: str) -> Any:
        server = servers[realm]

        @guarded
        async def token(request: Request) -> Response:
            if realm == "upstream" and provider.upstream_outage("token"):
                return json_error(
                    503,
                    "temporarily_unavailable",
                    "the upstream provider is unavailable",
                    {"Retry-After": "1"},
                )
            oreq = await oauth_request(request)
            grant_type = oreq.form.get("grant_type")
            if not grant_type:
                return json_error(400, "invalid_request", "missing grant_type")
            provider.count(
                "grants" if realm == "main" else "upstream_grants",
                grant_type if len(grant_type) < 100 else "(long)",
            )
            return await run_in_threadpool(server.create_token_response, oreq)

        return token

    def endpoint_handler(realm: str, name: str) -> Any:
        server = servers[realm]

        @guarded
        async def handler(request: Request) -> Response:
            oreq = await oauth_request(request)
            response = await run_in_threadpool(server.create_endpoint_response, name, oreq)
            return response if response is not None else json_error(400, "invalid_request")

        handler.__name__ = name
        return handler

    # ------------------------------------------------------------------ userinfo
    def userinfo_handler(realm: str) -> Any:
        @guarded
        async def userinfo(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            challenge = f'Bearer realm="{servers[realm].issuer}"'
            if scheme.lower() != "bearer" or not value.strip():
                return json_error(
                    401, "invalid_token", "bearer access token required", {"WWW-Authenticate": challenge}
                )
            stored = find_token(provider, realm, value.strip(), "access_token")
            if (
                stored is None
                or stored.kind != "access_token"
                or stored.is_expired()
                or stored.is_revoked()
                or provider.user(stored.row["sub"]) is None
            ):
                return json_error(
                    401,
                    "invalid_token",
                    "the access token is unknown, expired or revoked",
                    {"WWW-Authenticate": challenge + ', error="invalid_token"'},
                )
            scope = stored.row["scope"]
            if realm == "main" and "openid" not in split_scope(scope):
                return json_error(
                    403,
                    "insufficient_scope",
                    "needs the openid scope",
                    {"WWW-Authenticate": challenge + ', error="insufficient_scope", scope="openid"'},
                )
            if realm == "upstream":
                scope = "profile email" if "profile" in split_scope(scope) else ""
            return JSONResponse(provider.userinfo_claims(stored.row["sub"], scope))

        return userinfo

    # ------------------------------------------------------------------ approvals (the device)
    def require_session(request: Request, next_url: str) -> Any:
        session = sessions["main"].current(request)
        if session is None:
            return None, redirect("/login?" + urlencode({"next": next_url}))
        return session, None

    async def approvals_page(request: Request) -> Response:
        session, response = require_session(request, "/approvals")
        if response:
            return response
        flash = _FLASH.get(request.query_params.get("done", ""))
        items = _ciba.list_requests(provider, user=session.sub)
        return page(_pages.approvals_page(user=session.sub, requests=items, csrf=session.csrf, flash=flash,
                                         now=provider.now()))

    def decision_handler(action: str) -> Any:
        async def decide(request: Request) -> Response:
            session, response = require_session(request, "/approvals")
            if response:
                return response
            form = dict(await read_form(request))
            if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
                return page(_pages.message_page("Session expired", "Reload the approvals page."), 400)
            try:
                if action == "approve":
                    _, ping = await run_in_threadpool(
                        _ciba.approve, provider, request.path_params["id"], user=session.sub
                    )
                else:
                    reason = (form.get("reason") or "").strip()[:200] or None
                    _, ping = await run_in_threadpool(
                        _ciba.deny, provider, request.path_params["id"], user=session.sub, reason=reason
                    )
            except _ciba.DecisionError:
                return redirect("/approvals?done=gone")
            if ping:
                provider.spawn(_ciba.send_ping(provider, ping))
            return redirect(f"/approvals?done={'approved' if action == 'approve' else 'denied'}")

        return guarded_page(decide, "main")

    # ------------------------------------------------------------------ connections (Token Vault)
    async def connections_page(request: Request) -> Response:
        session, response = require_session(request, "/connections")
        if response:
            return response
        flash = _FLASH.get(request.query_params.get("done", ""))
        rows = _exchange.list_connections(provider, session.sub)
        return page(
            _pages.connections_page(
                user=session.sub, rows=rows, available=_exchange.CONNECTIONS, csrf=session.csrf, flash=flash
            )
        )

    async def connect(request: Request) -> Response:
        name = request.path_params["connection"]
        session, response = require_session(request, f"/connections/{name}/connect")
        if response:
            return response
        try:
            url = _exchange.start_connect(provider, session.sub, name, request.query_params.get("scope"))
        except ValueError as exc:
            return page(_pages.message_page("Cannot connect", str(exc)), 400)
        return redirect(url)

    async def connect_callback(request: Request) -> Response:
        session, response = require_session(request, "/connections")
        if response:
            return response
        params = request.query_params
        if params.get("error") or not params.get("code") or not params.get("state"):
            return redirect("/connections?done=cancelled")
        try:
            await run_in_threadpool(
                _exchange.finish_connect, provider, session.sub, params["state"], params["code"]
            )
        except (ValueError, OAuth2Error):
            return redirect("/connections?done=failed")
        return redirect("/connections?done=linked")

    async def disconnect(request: Request) -> Response:
        session, response = require_session(request, "/connections")
        if response:
            return response
        form = dict(await read_form(request))
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            return page(_pages.message_page("Session expired", "Reload the page."), 400)
        await run_in_threadpool(_exchange.unlink, provider, session.sub, request.path_params["connection"])
        return redirect("/connections?done=unlinked")

    # The machine-to-machine endpoints first: Starlette tries routes in order.
    routes = [
        Route("/token", token_handler("main"), methods=["POST"]),
        Route("/register", register_endpoint(provider), methods=["POST"]),
        Route("/bc-authorize", endpoint_handler("main", "backchannel_authentication"), methods=["POST"]),
        Route("/device_authorization", endpoint_handler("main", "device_authorization"), methods=["POST"]),
        Route("/", index, methods=["GET"]),
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", discovery, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server/upstream", upstream_metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/approvals", approvals_page, methods=["GET"]),
        Route("/approvals/{id}/approve", decision_handler("approve"), methods=["POST"]),
        Route("/approvals/{id}/deny", decision_handler("deny"), methods=["POST"]),
        Route("/connections", guarded_page(connections_page, "main"), methods=["GET"]),
        Route("/connections/callback", guarded_page(connect_callback, "main"), methods=["GET"]),
        Route("/connections/{connection}/connect", guarded_page(connect, "main"), methods=["GET"]),
        Route("/connections/{connection}/disconnect", guarded_page(disconnect, "main"), methods=["POST"]),
        Route("/upstream/", upstream_index, methods=["GET"]),
        Route("/upstream/.well-known/oauth-authorization-server", upstream_metadata, methods=["GET"]),
    ]
    for realm, prefix in prefixes.items():
        routes += [
            Route(f"{prefix}/authorize", authorize_handler(realm), methods=["GET", "POST"]),
            Route(f"{prefix}/login", login_handler(realm), methods=["GET", "POST"]),
            Route(f"{prefix}/logout", logout_handler(realm), methods=["POST"]),
            Route(f"{prefix}/introspect", endpoint_handler(realm, "introspection"), methods=["POST"]),
            Route(f"{prefix}/revoke", endpoint_handler(realm, "revocation"), methods=["POST"]),
            Route(f"{prefix}/userinfo", userinfo_handler(realm), methods=["GET", "POST"]),
        ]
    routes.append(Route("/upstream/token", token_handler("upstream"), methods=["POST"]))
    routes += _device.device_routes(provider, require_session, guarded_page)
    routes += api_routes(provider)
    routes += admin_routes(provider)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 400)
        if status == 404:
            return json_error(404, "not_found", "no such endpoint")
        if status == 405:
            return json_error(405, "invalid_request", "method not allowed")
        return json_error(status, "invalid_request", None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for task in list(provider.tasks):
            task.cancel()

    async def database_error(request: Request, exc: Exception) -> Response:
        if is_busy(exc):
            return busy_response()
        raise exc

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette answers with this, then re-raises to the shield, which logs it (redacted).
        return json_error(500, "server_error", "unexpected error")

    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: http_error,
            sqlite3.OperationalError: database_error,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
    return ShieldMiddleware(app, provider)  # type: ignore[return-value]
