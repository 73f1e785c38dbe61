"""The Starlette application of the local provider: the route table of both realms, the pages,
the demo API and the admin API, wrapped in :class:`~._web.ShieldMiddleware`.

The handlers live by what they serve: :mod:`._endpoints` (metadata, token, authlib endpoints,
userinfo), :mod:`._signin` (sign-in and the authorization endpoint), :mod:`._userpages` (the
approval device, connections), :mod:`._device` (the device verification page),
:mod:`._register`, :mod:`._api` and :mod:`._admin`; :class:`~._site.Site` is what they share.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from langchain_agent_auth.devserver import _device, _endpoints, _signin, _userpages
from langchain_agent_auth.devserver._admin import admin_routes
from langchain_agent_auth.devserver._api import api_routes
from langchain_agent_auth.devserver._register import register_endpoint
from langchain_agent_auth.devserver._site import PREFIXES, Site, bind
from langchain_agent_auth.devserver._web import ShieldMiddleware, busy_response, guarded, is_busy, json_error

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]


def _routes(site: Site) -> list[Route]:
    """Every route; the machine-to-machine endpoints first (Starlette tries routes in order)."""
    provider, e, u = site.provider, _endpoints, _userpages
    routes = [
        Route("/token", guarded(bind(e.token, site, "main")), methods=POST),
        Route("/register", register_endpoint(provider), methods=POST),
        Route("/bc-authorize", guarded(bind(e.endpoint, site, "main", "backchannel_authentication")), methods=POST),
        Route("/device_authorization", guarded(bind(e.endpoint, site, "main", "device_authorization")), methods=POST),
        Route("/", bind(e.index, site), methods=GET),
        Route("/.well-known/openid-configuration", bind(e.discovery, site), methods=GET),
        Route("/.well-known/oauth-authorization-server", bind(e.discovery, site), methods=GET),
        Route("/.well-known/oauth-authorization-server/upstream", bind(e.upstream_metadata, site), methods=GET),
        Route("/jwks", bind(e.jwks, site), methods=GET),
        Route("/approvals", bind(u.approvals_page, site), methods=GET),
        Route("/approvals/{id}/approve", site.page(u.decide, "main", "approve"), methods=POST),
        Route("/approvals/{id}/deny", site.page(u.decide, "main", "deny"), methods=POST),
        Route("/connections", site.page(u.connections_page), methods=GET),
        Route("/connections/callback", site.page(u.connect_callback), methods=GET),
        Route("/connections/{connection}/connect", site.page(u.connect), methods=GET),
        Route("/connections/{connection}/disconnect", site.page(u.disconnect), methods=POST),
        Route("/upstream/", bind(e.upstream_index, site), methods=GET),
        Route("/upstream/.well-known/oauth-authorization-server", bind(e.upstream_metadata, site), methods=GET),
    ]
    for realm, prefix in PREFIXES.items():
        routes += [
            Route(f"{prefix}/authorize", site.page(_signin.authorize, realm, realm), methods=BOTH),
            Route(f"{prefix}/login", site.page(_signin.login, realm, realm), methods=BOTH),
            Route(f"{prefix}/logout", site.page(_signin.logout, realm, realm), methods=POST),
            Route(f"{prefix}/introspect", guarded(bind(e.endpoint, site, realm, "introspection")), methods=POST),
            Route(f"{prefix}/revoke", guarded(bind(e.endpoint, site, realm, "revocation")), methods=POST),
            Route(f"{prefix}/userinfo", guarded(bind(e.userinfo, site, realm)), methods=BOTH),
        ]
    routes.append(Route("/upstream/token", guarded(bind(e.token, site, "upstream")), methods=POST))
    routes += _device.device_routes(site)
    return routes + api_routes(provider) + admin_routes(provider)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 400)
    if status == 404:
        return json_error(404, "not_found", "no such endpoint")
    if status == 405:
        return json_error(405, "invalid_request", "method not allowed")
    return json_error(status, "invalid_request", None)


async def _database_error(request: Request, exc: Exception) -> Response:
    if is_busy(exc):
        return busy_response()
    raise exc


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette answers with this, then re-raises to the shield, which logs it (redacted).
    return json_error(500, "server_error", "unexpected error")


def build_app(provider: Provider) -> Starlette:
    """Assemble the ASGI app for ``provider``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for task in list(provider.tasks):
            task.cancel()

    app = Starlette(
        routes=_routes(Site(provider)),
        exception_handlers={
            HTTPException: _http_error,
            sqlite3.OperationalError: _database_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    return ShieldMiddleware(app, provider)  # type: ignore[return-value]
