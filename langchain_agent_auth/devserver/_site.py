"""What the page and endpoint handlers of the local provider share.

:class:`Site` holds the provider, both realms' sessions and authorization servers and the
sign-in throttle; the handlers in :mod:`._signin`, :mod:`._endpoints` and :mod:`._userpages`
are module-level functions of ``(site, ..., request)`` that :mod:`._app` binds into its route
table with :func:`bind`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from langchain_agent_auth.devserver import _pages
from langchain_agent_auth.devserver._web import PAGE_HEADERS, BadRequest, FailureLimiter, Sessions, read_form

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider
    from langchain_agent_auth.devserver._oauth import OAuthServer
    from langchain_agent_auth.devserver._web import Session

Endpoint = Callable[[Request], Awaitable[Response]]
PREFIXES = {"main": "", "upstream": "/upstream"}


def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def redirect(url: str, status: int = 303) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers={"Cache-Control": "no-store"})


def bind(func: Callable[..., Awaitable[Response]], *args: Any) -> Endpoint:
    """``func(*args, request)`` as a Starlette endpoint (named after ``func``)."""

    async def endpoint(request: Request) -> Response:
        return await func(*args, request)

    endpoint.__name__ = func.__name__
    endpoint.__doc__ = func.__doc__
    return endpoint


def guarded_page(func: Endpoint, realm: str) -> Endpoint:
    """A page endpoint: :class:`BadRequest` becomes an HTML message page."""

    async def wrapper(request: Request) -> Response:
        try:
            return await func(request)
        except BadRequest as exc:
            return page(_pages.message_page("Bad request", exc.description, realm=realm), exc.status)

    wrapper.__name__ = func.__name__
    return wrapper


async def signed_form(request: Request, session: Session) -> dict[str, Any] | None:
    """The posted form, or None when its ``csrf`` field is not the session's."""
    form = dict(await read_form(request))
    return form if secrets.compare_digest(str(form.get("csrf", "")), session.csrf) else None


def expired_session(hint: str = "Reload the page.", realm: str = "main") -> HTMLResponse:
    return page(_pages.message_page("Session expired", hint, realm=realm), 400)


class Site:
    """The provider with its realms' sessions and servers and the sign-in throttle."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.sessions = {realm: Sessions(provider, realm) for realm in PREFIXES}
        self.servers: dict[str, OAuthServer] = {"main": provider.main, "upstream": provider.upstream}
        self.login_failures = FailureLimiter()
        self.password_checks = asyncio.Semaphore(1)

    def require_session(self, request: Request, next_url: str) -> Any:
        """``(session, None)`` for a signed-in user, else ``(None, redirect to sign in)``."""
        session = self.sessions["main"].current(request)
        if session is None:
            return None, redirect("/login?" + urlencode({"next": next_url}))
        return session, None

    def page(self, func: Callable[..., Awaitable[Response]], realm: str = "main", *args: Any) -> Endpoint:
        """A page endpoint of ``realm`` calling ``func(site, *args, request)``."""
        return guarded_page(bind(func, self, *args), realm)
