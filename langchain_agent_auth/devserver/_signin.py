"""The browser side of both realms: sign-in, sign-out and the authorization endpoint with its
consent page. Handlers are functions of ``(site, realm, request)`` bound by :mod:`._app`."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from langchain_agent_auth.devserver import _pages
from langchain_agent_auth.devserver._ciba import ACR_PASSWORD
from langchain_agent_auth.devserver._rar import describe
from langchain_agent_auth.devserver._register import cimd_client, is_cimd_url
from langchain_agent_auth.devserver._site import PREFIXES, expired_session, page, redirect
from langchain_agent_auth.devserver._util import check_password, printable_ascii, split_scope
from langchain_agent_auth.devserver._web import oauth_request, read_form

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._model import OAuthRequest, User
    from langchain_agent_auth.devserver._site import Site
    from langchain_agent_auth.devserver._web import Session

LOGIN_CSRF_COOKIE = "aa_login_csrf"


def safe_next(value: str | None, realm: str) -> str:
    """Where to go after signing in: a local path of ``realm``, else its default page."""
    default = "/upstream/" if realm == "upstream" else "/approvals"
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 4000:
        return default
    if realm == "upstream" and not value.startswith("/upstream/"):
        return default
    return value


# ---------------------------------------------------------------------------- sign-in
def _login_form(site: Site, realm: str, next_url: str, *, status: int = 200, error: str | None = None) -> Response:
    """The sign-in page with a fresh form token in its cookie."""
    prefix = PREFIXES[realm]
    csrf = secrets.token_urlsafe(24)
    html = _pages.login_page(
        action=f"{prefix}/login",
        next_url=next_url,
        csrf=csrf,
        realm=realm,
        error=error,
        users=site.provider.store.user_subjects()[:5],
    )
    response = page(html, status)
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, max_age=900, path=prefix or "/", httponly=True, samesite="lax")
    return response


async def _check_password(site: Site, realm: str, username: str, password: str, address: str) -> tuple[Any, int]:
    """``(user row or None, seconds to wait)``: the user when the password is right."""
    user = site.provider.store.find_user(username) if username else None
    # scrypt is slow on purpose: off the event loop, one at a time, and the throttle is
    # checked once it is our turn (concurrent attempts cannot all slip past the limit).
    async with site.password_checks:
        wait = site.login_failures.blocked(username, address)
        ok = not wait and user is not None and await run_in_threadpool(check_password, password, user["password_hash"])
    return (user if ok else None), wait


async def login(site: Site, realm: str, request: Request) -> Response:
    """``GET/POST {prefix}/login``: the sign-in form, then a session and the ``next`` page."""
    provider = site.provider
    if request.method == "GET":
        return _login_form(site, realm, safe_next(request.query_params.get("next"), realm))
    form = dict(await read_form(request))
    next_url = safe_next(form.get("next"), realm)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
        text = "The sign-in form expired. Go back and reload the page."
        return page(_pages.message_page("Sign-in expired", text, realm=realm), 400)
    username, password = form.get("username", ""), form.get("password", "")
    address = request.client.host if request.client else "?"
    user, wait = await _check_password(site, realm, username, password, address)
    if wait:
        provider.count("logins", f"{realm}_throttled")
        text = f"Too many failed sign-ins. Try again in {wait} seconds."
        return page(_pages.message_page("Too many attempts", text, realm=realm), 429, {"Retry-After": str(wait)})
    if user is None:
        site.login_failures.record(username, address)
        provider.count("logins", f"{realm}_failed")
        return _login_form(site, realm, next_url, status=401, error="Wrong username or password.")
    provider.count("logins", realm)
    response = redirect(next_url)
    await run_in_threadpool(site.sessions[realm].create, response, user["sub"])
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIXES[realm] or "/")
    return response


async def logout(site: Site, realm: str, request: Request) -> Response:
    """``POST {prefix}/logout`` (with the session's form token)."""
    form = dict(await read_form(request))
    session = site.sessions[realm].current(request)
    response = redirect(f"{PREFIXES[realm]}/login")
    if session and secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
        site.sessions[realm].destroy(request, response)
    return response


# ---------------------------------------------------------------------------- authorization endpoint
async def authorize(site: Site, realm: str, request: Request) -> Response:
    """``GET/POST {prefix}/authorize``: check the request, sign in, ask consent, redirect back."""
    provider, server = site.provider, site.servers[realm]
    oreq = await _oauth_request(site, realm, request)
    session = site.sessions[realm].current(request)
    if request.method == "POST" and (
        session is None or not secrets.compare_digest(str(oreq.form.get("csrf", "")), session.csrf)
    ):
        return expired_session("Your session expired. Start again from the application.", realm)
    user = provider.user(session.sub) if session else None
    try:
        grant = server.get_consent_grant(oreq, end_user=user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(oreq, error)
        text = printable_ascii(error.get_error_description() or error.error or "invalid request")
        return page(_pages.message_page("Cannot continue", f"{error.error}: {text}", realm=realm), 400)
    if request.method == "GET":
        return _authorize_page(site, realm, request, oreq, grant, session, user)
    if user is None or session is None:
        return redirect(f"{PREFIXES[realm]}/login")
    oreq.resolved["auth_time"] = session.auth_time
    oreq.resolved["acr"] = ACR_PASSWORD
    decision = oreq.form.get("decision")
    provider.count("consents", f"{realm}_{'allow' if decision == 'allow' else 'deny'}")
    return await run_in_threadpool(
        server.create_authorization_response, oreq, grant_user=user if decision == "allow" else None, grant=grant
    )


async def _oauth_request(site: Site, realm: str, request: Request) -> OAuthRequest:
    """The authorization request; a Client ID Metadata Document URL registers its client first."""
    oreq = await oauth_request(request)
    client_id = oreq.payload.data.get("client_id") if realm == "main" else None
    if is_cimd_url(client_id) and site.provider.store.get_client(client_id, "main") is None:
        await run_in_threadpool(cimd_client, site.provider, client_id)
    return oreq


def _authorize_page(
    site: Site, realm: str, request: Request, oreq: OAuthRequest, grant: Any, session: Session | None,
    user: User | None,
) -> Response:
    """``GET /authorize``: ``prompt=none`` errors, sign-in first, or the consent page."""
    server, prefix = site.servers[realm], PREFIXES[realm]
    prompts = set(split_scope(oreq.payload.data.get("prompt")))
    if "none" in prompts:
        from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError

        cls = LoginRequiredError if user is None else ConsentRequiredError
        return server.handle_error_response(oreq, cls(redirect_uri=grant.redirect_uri, state=oreq.payload.state))
    if user is None or "login" in prompts:
        again = [(k, v) for k, values in oreq._query.datalist.items() for v in values if k != "prompt"]
        response = redirect(f"{prefix}/login?" + urlencode({"next": f"{prefix}/authorize?{urlencode(again)}"}))
        if user is not None:
            site.sessions[realm].destroy(request, response)
        return response
    details = oreq.resolved.get("authorization_details")
    csrf = session.csrf if session else ""
    return page(
        _pages.consent_page(
            action=f"{prefix}/authorize",
            client_name=oreq.client.client_name,
            scope=oreq.scope,
            resources=oreq.resolved.get("targets", []),
            details_views=[describe(d) for d in details or []],
            details_raw=details,
            fields=[(k, v) for k, values in oreq._query.datalist.items() for v in values],
            csrf=csrf,
            realm=realm,
            user=user.sub,
            session_csrf=csrf,
        )
    )
