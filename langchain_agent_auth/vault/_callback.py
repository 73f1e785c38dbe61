"""The connect-account callback as an ASGI app: mount it in your own web app.

The provider redirects the user's browser to ``redirect_uri?code=...&state=...``; the
callback finds who is signed in (``resolve_user``), checks the state against the store
(the same user, not replayed, not expired), redeems the code with the PKCE verifier and
stores the tokens. ``on_complete(result)`` can then resume the waiting thread.
"""

from __future__ import annotations

import html
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from langchain_agent_auth.core.errors import AgentAuthError, CallbackStateError, ConfigurationError, OAuthError
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.vault._model import ConnectResult
from langchain_agent_auth.vault._vault import TokenVault

__all__ = ["VaultCallback", "callback_app"]

log = logging.getLogger("langchain_agent_auth.vault")

UserResolver = Callable[[Request], UserIdentity | Awaitable[UserIdentity | None] | None]
OnComplete = Callable[[ConnectResult], Any]

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .ok{{color:#176d2c}} .err{{color:#a4161a}}</style></head>
<body><h1 class="{cls}">{title}</h1><p>{body}</p></body></html>"""


def _page(title: str, body: str, *, ok: bool, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=html.escape(body), cls="ok" if ok else "err"),
        status_code=status, headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class VaultCallback:
    """ASGI endpoint finishing connect-account flows.

    Args:
        vault: the :class:`TokenVault` whose flows it completes.
        resolve_user: ``f(request) -> UserIdentity | None`` (sync or async): the user signed
            in to your app. The user who finishes a flow must be the one who started it.
        allow_anonymous: accept callbacks without a signed-in user, relying on the
            unguessable, single-use ``state`` alone (demos and local development only).
        on_complete: called with the :class:`ConnectResult` (e.g. to resume the thread).
        redirect_to: where to send the browser afterwards (a URL, or ``f(result) -> URL``);
            default: a small "connected" page.

    Example::

        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(routes=[Route("/callback", VaultCallback(vault, resolve_user=current_user))])
    """

    def __init__(self, vault: TokenVault, *, resolve_user: UserResolver | None = None,
                 allow_anonymous: bool = False, on_complete: OnComplete | None = None,
                 redirect_to: str | Callable[[ConnectResult], str] | None = None) -> None:
        if resolve_user is None and not allow_anonymous:
            raise ConfigurationError(
                "VaultCallback needs resolve_user=f(request) -> UserIdentity (the signed-in user), "
                "or allow_anonymous=True for local development"
            )
        self.vault = vault
        self.resolve_user = resolve_user
        self.on_complete = on_complete
        self.redirect_to = redirect_to

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return _page("Not allowed", "Use GET.", ok=False, status=405)
        params = request.query_params
        user = None
        if self.resolve_user is not None:
            user = await _maybe_await(self.resolve_user(request))
            if user is None:
                return _page("Sign in first", "Sign in to the app, then connect the account again.", ok=False,
                             status=401)
        try:
            result = await self.vault.acomplete_connect(
                params.get("state"), params.get("code"), user=user, error=params.get("error"),
                error_description=params.get("error_description"), iss=params.get("iss"),
            )
        except CallbackStateError as exc:
            return _page("This link is not valid", exc.for_model(), ok=False, status=400)
        except OAuthError as exc:
            text = ("You did not allow access, so the account was not connected." if exc.error == "access_denied"
                    else f"The provider answered {exc.error}; the account was not connected.")
            return _page("Not connected", text, ok=False, status=400)
        except AgentAuthError as exc:
            log.warning("vault: connect callback failed: %s", exc)
            return _page("Not connected", "The provider could not be reached. Try again shortly.", ok=False,
                         status=502)
        if self.on_complete is not None:
            await _maybe_await(self.on_complete(result))
        if self.redirect_to is not None:
            target = self.redirect_to(result) if callable(self.redirect_to) else self.redirect_to
            return RedirectResponse(target, status_code=303)
        body = f"Your {result.connection} account is connected. You can close this window and return to the app."
        if result.missing_scopes:
            body += f" Not granted: {', '.join(result.missing_scopes)}."
        return _page("Account connected", body, ok=True)


def callback_app(vault: TokenVault, path: str = "/callback", **kwargs: Any) -> Any:
    """A small Starlette app serving :class:`VaultCallback` at ``path`` (demos, dev servers).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> app = callback_app(TokenVault([], store=InMemoryStore(), keyring=Keyring.generate()),
        ...                    allow_anonymous=True)
        >>> [r.path for r in app.routes]
        ['/callback']
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route(path, VaultCallback(vault, **kwargs), methods=["GET"])])
