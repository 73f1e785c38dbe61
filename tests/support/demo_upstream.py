"""The vault tests' third-party provider: the local provider's demo upstream (``agent-auth dev``).

One :class:`~langchain_agent_auth.devserver.LocalProvider` per test session (per xdist worker)
plays "Google Calendar": its upstream realm (authorization code + PKCE behind real sign-in and
consent pages, rotating refresh tokens with reuse detection, RFC 7009 revocation) and its
calendar API (``/api/calendar/events``, 401 / 403 per RFC 6750). :class:`DemoUpstream` is the
view the tests use: the registered test client (:data:`CLIENT_ID`), the app's callback served
on loopback (``/app/callback`` forwards to the ASGI app a test installs, the vault's callback),
counters, the credentials the upstream issued (for secret scans), and the provider's admin API
to make the upstream misbehave (faults, delays, expired or revoked tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from langchain_agent_auth.devserver._browser import forms
from tests.support.browser import ServedApp, quiet

if TYPE_CHECKING:
    from langchain_agent_auth.devserver import LocalProvider

CLIENT_ID = "vault-client"
CLIENT_SECRET = "vault-client-secret-0123456789abcdef"
SCOPES = "calendar.read calendar.write profile"
# Where the tests' faults go: the stand-in's paths, the provider's endpoint names.
_ENDPOINTS = {"/token": "token", "/revoke": "revoke", "/api/events": "api"}


class DemoUpstream:
    """The demo upstream of ``idp`` as the vault tests see it (reset between tests)."""

    def __init__(self, idp: LocalProvider) -> None:
        self.idp = idp
        self.callback_app: Any = None
        self._served = ServedApp(Starlette(routes=[Route("/app/callback", self._callback, methods=["GET"])]))
        idp.add_client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, realm="upstream", client_name="Calendar agent",
                       grant_types=["authorization_code", "refresh_token"], scope=SCOPES,
                       redirect_uris=["http://127.0.0.1/app/callback", "http://127.0.0.1/app/callback?port=2"])
        self._cookies: dict[str, httpx.Cookies] = {}  # each user's browser stays signed in

    def stop(self) -> None:
        self._served.stop()

    @property
    def issuer(self) -> str:
        return self.idp.upstream_issuer

    @property
    def redirect_uri(self) -> str:
        return f"{self._served.url}/app/callback"

    @property
    def api_url(self) -> str:
        """So that ``f"{api_url}/events"`` is the calendar API."""
        return f"{self.idp.api_url}/calendar"

    # ------------------------------------------------------------------ test controls
    def reset(self) -> None:
        """Between tests: no faults or delays, counters at zero, no credentials recorded."""
        self.idp.clear_faults()
        self.idp.reset_stats()
        self.idp.forget_upstream_tokens_issued()
        self.callback_app = None

    def stats(self) -> dict[str, int]:
        """The upstream's counters under short names: ``token`` (requests at the token endpoint,
        faulted or not), ``token:<grant_type>``, ``revoke``, ``refresh_reuse``; zeros left out."""
        stats = self.idp.stats()
        flat = {
            "token": stats.get("upstream_calls", {}).get("token", 0),
            "revoke": stats.get("upstream_calls", {}).get("revoke", 0),
            "refresh_reuse": stats.get("refresh_reuse", {}).get("upstream", 0),
            **{f"token:{grant}": n for grant, n in stats.get("upstream_grants", {}).items()},
        }
        return {name: n for name, n in flat.items() if n}

    def issued(self) -> list[str]:
        """Every code, access and refresh token the upstream handed out since :meth:`reset`."""
        return self.idp.upstream_tokens_issued()

    def fail(self, path: str, *kinds: str) -> None:
        """The next requests to ``path`` (``/token``, ``/revoke``, ``/api/events``) fail as ``kinds``."""
        self.idp.inject_fault(_ENDPOINTS[path], *kinds)

    @property
    def refresh_delay(self) -> float:
        return self.idp.inject_fault("token")["token"]["delay"]

    @refresh_delay.setter
    def refresh_delay(self, seconds: float) -> None:
        """Every token request waits ``seconds`` first (widens the window of a refresh race)."""
        self.idp.inject_fault("token", delay=seconds)

    def expire(self, user: str) -> int:
        """Expire every access token of ``user`` (as if an hour had passed)."""
        return self.idp.expire_upstream_tokens(user)

    def revoke_user(self, user: str) -> int:
        """The user removed the app's access at the provider: every grant is revoked."""
        return self.idp.revoke_upstream_tokens(user)

    def is_live_access_token(self, token: str, user: str) -> bool:
        """The upstream's introspection says ``token`` is an active access token of ``user``."""
        answer = httpx.post(f"{self.issuer}/introspect", data={"token": token}, auth=(CLIENT_ID, CLIENT_SECRET))
        body = answer.json()
        return answer.status_code == 200 and body.get("active") is True and body.get("sub") == user

    async def _callback(self, request: Request) -> Response:
        if self.callback_app is None:
            return PlainTextResponse("no callback installed", status_code=404)
        return await self.callback_app.handle(request)

    # ------------------------------------------------------------------ a user's browser
    def browse(self, authorize_url: str, user: str, *, grant_scope: str | None = None, deny: bool = False,
               follow_callback: bool = True) -> httpx.Response:
        """Play ``user``: open the link, sign in at the upstream (once per session: the browser
        keeps its cookie), consent (to ``grant_scope`` only, if given, as if the user unticked
        the rest; or ``deny``), and land on the app's callback (or stop at the redirect to it)."""
        provider = urlsplit(self.issuer).netloc
        jar = self._cookies.setdefault(user, httpx.Cookies())
        with quiet("httpx", "httpcore"), httpx.Client(timeout=10, cookies=jar) as browser:
            response = browser.get(authorize_url)
            for _ in range(10):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if urlsplit(location).netloc != provider:
                        jar.update(browser.cookies)
                        return browser.get(location) if follow_callback else response
                    response = browser.get(location)
                    continue
                response = self._answer(browser, response, user, grant_scope=grant_scope, deny=deny)
        raise AssertionError(f"the upstream's pages did not lead to the callback: {response.text[:300]}")

    def _answer(self, browser: httpx.Client, page: httpx.Response, user: str, *, grant_scope: str | None,
                deny: bool) -> httpx.Response:
        """Fill in the sign-in form, or decide on the consent page."""
        posts = [f for f in forms(page.text) if f["method"] == "post"]
        sign_in = [f for f in posts if any(name == "password" for name, _, _ in f["fields"])]
        consent = [f for f in posts if any(name == "decision" for name, _, _ in f["buttons"])]
        assert sign_in or consent, f"HTTP {page.status_code}: {page.text[:300]}"
        form = (sign_in or consent)[0]
        pairs = [(name, value) for name, value, _ in form["fields"]]
        if sign_in:
            pairs = [(n, v) for n, v in pairs if n not in ("username", "password")]
            pairs += [("username", user), ("password", self.idp.users[user])]
        else:
            if grant_scope is not None:
                pairs = [(n, grant_scope if n == "scope" else v) for n, v in pairs]
            pairs.append(("decision", "deny" if deny else "allow"))
        return browser.post(urljoin(str(page.url), form["action"]), content=urlencode(pairs),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


_ACTIVE: list[DemoUpstream] = []


def start() -> DemoUpstream:
    """The session's demo upstream (the caller stops it)."""
    from langchain_agent_auth.devserver import LocalProvider

    idp = LocalProvider(record_upstream_tokens=True).start()
    upstream = DemoUpstream(idp)
    _ACTIVE[:] = [upstream]
    return upstream


def browse_upstream(authorize_url: str, user: str, **kw: Any) -> httpx.Response:
    """:meth:`DemoUpstream.browse` on the session's upstream."""
    return _ACTIVE[0].browse(authorize_url, user, **kw)
