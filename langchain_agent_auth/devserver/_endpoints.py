"""The machine-facing endpoints of both realms: metadata and JWKS, the token endpoint, authlib
endpoints (CIBA, device authorization, introspection, revocation) and userinfo. Handlers are
functions of ``(site, ..., request)`` bound by :mod:`._app`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from langchain_agent_auth.devserver import _pages
from langchain_agent_auth.devserver._faults import injected
from langchain_agent_auth.devserver._issuance import find_token
from langchain_agent_auth.devserver._site import page
from langchain_agent_auth.devserver._util import split_scope
from langchain_agent_auth.devserver._web import json_error, oauth_request

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._site import Site


# ---------------------------------------------------------------------------- metadata
async def discovery(site: Site, request: Request) -> Response:
    return JSONResponse(site.provider.discovery())


async def upstream_metadata(site: Site, request: Request) -> Response:
    return JSONResponse(site.provider.upstream_metadata())


async def jwks(site: Site, request: Request) -> Response:
    return JSONResponse(site.provider.store.public_jwks(), headers={"Cache-Control": "public, max-age=60"})


async def index(site: Site, request: Request) -> Response:
    return page(_pages.index_page(site.provider.info()))


async def upstream_index(site: Site, request: Request) -> Response:
    session = site.sessions["upstream"].current(request)
    text = f"Signed in as {session.sub}." if session else "Not signed in."
    return page(_pages.message_page("Demo upstream provider", text, realm="upstream"))


# ---------------------------------------------------------------------------- token side
async def token(site: Site, realm: str, request: Request) -> Response:
    """``POST {prefix}/token``: every grant of the realm (the upstream's may answer a fault)."""
    provider = site.provider
    oreq = await oauth_request(request)
    grant_type = oreq.form.get("grant_type")
    if not grant_type:
        return json_error(400, "invalid_request", "missing grant_type")
    provider.count(
        "grants" if realm == "main" else "upstream_grants", grant_type if len(grant_type) < 100 else "(long)"
    )
    if realm == "upstream" and (fault := await injected(provider, "token")) is not None:
        return fault
    return await run_in_threadpool(site.servers[realm].create_token_response, oreq)


async def endpoint(site: Site, realm: str, name: str, request: Request) -> Response:
    """An authlib endpoint of the realm by name (``backchannel_authentication``, ...)."""
    if realm == "upstream" and name == "revocation" and (fault := await injected(site.provider, "revoke")) is not None:
        return fault
    oreq = await oauth_request(request)
    response = await run_in_threadpool(site.servers[realm].create_endpoint_response, name, oreq)
    return response if response is not None else json_error(400, "invalid_request")


async def userinfo(site: Site, realm: str, request: Request) -> Response:
    """``GET/POST {prefix}/userinfo`` with a bearer access token of the realm."""
    provider = site.provider
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    challenge = f'Bearer realm="{site.servers[realm].issuer}"'
    if scheme.lower() != "bearer" or not value.strip():
        return json_error(401, "invalid_token", "bearer access token required", {"WWW-Authenticate": challenge})
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
