"""A small third-party OAuth provider and calendar API for the vault's tests, served on loopback.

Stands in for "Google Calendar" until the local identity provider's demo upstream is on main:

* an authorization server with opaque tokens: authorization code + PKCE (S256 only) behind
  an HTML login form, refresh with **rotating** refresh tokens and reuse detection (reusing
  a spent refresh token revokes the whole grant), RFC 7009 revocation, metadata;
* a calendar API (``/api/events``) checking bearer tokens and scopes (401 / 403);
* counters (``stats()``), every token ever issued (``issued()``, for secret scans), and
  failure injection (``fail(path, kind)``: ``500``, ``html``, ``slow``, ``invalid_grant``,
  ``invalid_scope``, ``unauthorized``);
* ``/app/callback`` forwards to an ASGI app a test installs (the vault's callback), so the
  browser's redirect lands on a real URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import logging
import re
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "vault-client"
CLIENT_SECRET = "vault-client-secret-0123456789abcdef"
SCOPES = ("calendar.read", "calendar.write", "contacts.read")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _err(code: str, description: str = "", status: int = 400) -> JSONResponse:
    body = {"error": code}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


class Upstream:
    """The provider's state and its Starlette app."""

    def __init__(self, *, access_ttl: int = 3600) -> None:
        self.access_ttl = access_ttl
        self.base = ""
        self.lock = threading.Lock()
        self.codes: dict[str, dict[str, Any]] = {}
        self.access: dict[str, dict[str, Any]] = {}
        self.refresh: dict[str, dict[str, Any]] = {}
        self.revoked_grants: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.failures: dict[str, deque[str]] = {}
        self.refresh_delay = 0.0
        self.callback_app: Any = None
        self._issued: list[str] = []
        self.app = Starlette(routes=[
            Route("/.well-known/oauth-authorization-server", self.metadata),
            Route("/.well-known/openid-configuration", self.metadata),
            Route("/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/token", self.token, methods=["POST"]),
            Route("/revoke", self.revoke_endpoint, methods=["POST"]),
            Route("/api/events", self.events, methods=["GET", "POST"]),
            Route("/app/callback", self.callback, methods=["GET"]),
        ])

    # ------------------------------------------------------------------ test controls

    @property
    def issuer(self) -> str:
        return self.base

    @property
    def redirect_uri(self) -> str:
        return f"{self.base}/app/callback"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api"

    def reset(self) -> None:
        with self.lock:
            self.codes.clear()
            self.access.clear()
            self.refresh.clear()
            self.revoked_grants.clear()
            self.counts.clear()
            self.failures.clear()
            self.refresh_delay = 0.0
            self.access_ttl = 3600
            self.callback_app = None

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def issued(self) -> list[str]:
        """Every access and refresh token and code this provider ever handed out."""
        with self.lock:
            return list(self._issued)

    def fail(self, path: str, *kinds: str) -> None:
        with self.lock:
            self.failures.setdefault(path, deque()).extend(kinds)

    def expire(self, user: str) -> int:
        """Expire every access token of ``user`` (as if an hour had passed)."""
        with self.lock:
            n = 0
            for info in self.access.values():
                if info["user"] == user:
                    info["exp"] = 0
                    n += 1
            return n

    def revoke_user(self, user: str) -> None:
        """The user removed the app's access at the provider: every grant is revoked."""
        with self.lock:
            for info in (*self.access.values(), *self.refresh.values()):
                if info["user"] == user:
                    self.revoked_grants.add(info["grant"])

    def live_access_tokens(self, user: str) -> list[str]:
        with self.lock:
            now = time.time()
            return [t for t, i in self.access.items()
                    if i["user"] == user and i["exp"] > now and i["grant"] not in self.revoked_grants]

    # ------------------------------------------------------------------ helpers

    def _take_failure(self, path: str) -> str | None:
        with self.lock:
            queue = self.failures.get(path)
            return queue.popleft() if queue else None

    async def _failure(self, path: str) -> Response | None:
        kind = self._take_failure(path)
        if kind is None:
            return None
        if kind == "500":
            return PlainTextResponse("upstream exploded", status_code=500)
        if kind == "503":
            return _err("temporarily_unavailable", "try later", 503)
        if kind == "html":
            return HTMLResponse("<html><body><h1>Gateway login</h1></body></html>", status_code=200)
        if kind == "slow":
            await asyncio.sleep(3.0)
            return PlainTextResponse("too late", status_code=503)
        if kind == "unauthorized":
            return _err("invalid_token", "token revoked", 401)
        return _err(kind, f"injected {kind}")

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                return False
            return cid == CLIENT_ID and secret == CLIENT_SECRET
        return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET

    def _issue(self, user: str, scope: str, grant: str) -> dict[str, Any]:
        access = "at_" + secrets.token_urlsafe(24)
        refresh = "rt_" + secrets.token_urlsafe(24)
        self.access[access] = {"user": user, "scope": scope, "exp": time.time() + self.access_ttl, "grant": grant}
        self.refresh[refresh] = {"user": user, "scope": scope, "grant": grant, "used": False}
        self._issued.extend((access, refresh))
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl,
                "refresh_token": refresh, "scope": scope}

    # ------------------------------------------------------------------ endpoints

    async def metadata(self, request: Request) -> Response:
        b = self.base
        return JSONResponse({
            "issuer": b, "authorization_endpoint": f"{b}/authorize", "token_endpoint": f"{b}/token",
            "revocation_endpoint": f"{b}/revoke", "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        })

    async def authorize(self, request: Request) -> Response:
        if request.method == "GET":
            p = dict(request.query_params)
            with self.lock:
                self.counts["authorize"] += 1
            if p.get("client_id") != CLIENT_ID or not (p.get("redirect_uri") or "").startswith(self.base):
                return PlainTextResponse("unknown client or redirect_uri", status_code=400)
            if p.get("code_challenge_method") != "S256" or not p.get("code_challenge"):
                return PlainTextResponse("PKCE S256 required", status_code=400)
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                             for k, v in p.items())
            return HTMLResponse(f'<html><body><h1>Demo Calendar: sign in</h1><form method="post" '
                                f'action="/authorize">{hidden}<input name="login"><input name="grant_scope">'
                                f'<input type="submit" name="decision" value="allow"></form></body></html>')
        form = dict(await request.form())
        redirect = form.get("redirect_uri", "")
        state = form.get("state", "")
        if form.get("decision") == "deny":
            return RedirectResponse(f"{redirect}?{urlencode({'error': 'access_denied', 'state': state})}", 302)
        requested = [s for s in (form.get("scope") or "").split(" ") if s]
        bad = [s for s in requested if s not in SCOPES]
        if bad:
            return RedirectResponse(
                f"{redirect}?{urlencode({'error': 'invalid_scope', 'state': state, 'iss': self.base})}", 302)
        granted = form.get("grant_scope") or " ".join(requested)
        code = "code_" + secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = {"user": form.get("login") or "alice", "redirect_uri": redirect,
                                "challenge": form.get("code_challenge"), "scope": granted,
                                "exp": time.time() + 60}
            self._issued.append(code)
        return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': state, 'iss': self.base})}", 302)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        grant_type = form.get("grant_type", "")
        with self.lock:
            self.counts[f"token:{grant_type}"] += 1
            self.counts["token"] += 1
        injected = await self._failure("/token")
        if injected is not None:
            return injected
        if not self._client_ok(request, form):
            return _err("invalid_client", "", 401)
        if grant_type == "authorization_code":
            with self.lock:
                info = self.codes.pop(form.get("code", ""), None)
                if info is None or info["exp"] < time.time():
                    return _err("invalid_grant", "unknown or used code")
                if info["redirect_uri"] != form.get("redirect_uri"):
                    return _err("invalid_grant", "redirect_uri mismatch")
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if digest != info["challenge"]:
                    return _err("invalid_grant", "PKCE verification failed")
                body = self._issue(info["user"], info["scope"], "g_" + secrets.token_hex(6))
            return JSONResponse(body, headers={"cache-control": "no-store"})
        if grant_type == "refresh_token":
            if self.refresh_delay:
                await asyncio.sleep(self.refresh_delay)
            with self.lock:
                info = self.refresh.get(form.get("refresh_token", ""))
                if info is None or info["grant"] in self.revoked_grants:
                    return _err("invalid_grant", "unknown or revoked refresh token")
                if info["used"]:
                    self.revoked_grants.add(info["grant"])  # reuse detected: kill the grant
                    self.counts["refresh_reuse"] += 1
                    return _err("invalid_grant", "refresh token reuse detected")
                info["used"] = True
                scope = info["scope"]
                if form.get("scope"):
                    narrower = form["scope"].split(" ")
                    if not set(narrower) <= set(scope.split(" ")):
                        return _err("invalid_scope", "cannot widen scope on refresh")
                    scope = form["scope"]
                body = self._issue(info["user"], scope, info["grant"])
            return JSONResponse(body, headers={"cache-control": "no-store"})
        return _err("unsupported_grant_type")

    async def revoke_endpoint(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        with self.lock:
            self.counts["revoke"] += 1
        injected = await self._failure("/revoke")
        if injected is not None:
            return injected
        if not self._client_ok(request, form):
            return _err("invalid_client", "", 401)
        token = form.get("token", "")
        with self.lock:
            info = self.refresh.get(token) or self.access.get(token)
            if info is not None:
                self.revoked_grants.add(info["grant"])
        return Response(status_code=200)

    async def events(self, request: Request) -> Response:
        with self.lock:
            self.counts[f"api:{request.method}"] += 1
        injected = await self._failure("/api/events")
        if injected is not None:
            return injected
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        with self.lock:
            info = self.access.get(token)
            ok = info is not None and info["exp"] > time.time() and info["grant"] not in self.revoked_grants
        if not ok:
            return JSONResponse({"error": "invalid_token"}, status_code=401,
                                headers={"www-authenticate": 'Bearer error="invalid_token"'})
        assert info is not None
        need = "calendar.read" if request.method == "GET" else "calendar.write"
        if need not in info["scope"].split(" "):
            return JSONResponse({"error": "insufficient_scope", "scope": need}, status_code=403,
                                headers={"www-authenticate": f'Bearer error="insufficient_scope", scope="{need}"'})
        if request.method == "POST":
            body = await request.json()
            return JSONResponse({"created": body.get("title"), "owner": info["user"]}, status_code=201)
        return JSONResponse({"owner": info["user"], "events": [{"title": f"{info['user']}'s standup", "at": "09:00"}]})

    async def callback(self, request: Request) -> Response:
        if self.callback_app is None:
            return PlainTextResponse("no callback installed", status_code=404)
        return await self.callback_app.handle(request)


class UpstreamServer:
    """:class:`Upstream` served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self) -> None:
        self.upstream = Upstream()
        port = _free_port()
        self.upstream.base = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.upstream.app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("upstream test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


# ---------------------------------------------------------------------- a user's browser

@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)  # children (httpcore.http11...) inherit it
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"')
_INPUT = re.compile(r"<input\b[^>]*>", re.S)


def form_fields(page: str) -> tuple[str | None, dict[str, str]]:
    m = _FORM.search(page)
    if not m:
        return None, {}
    fields: dict[str, str] = {}
    for tag in _INPUT.findall(page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    return html.unescape(m.group(1)), fields


def browse_upstream(authorize_url: str, user: str, *, grant_scope: str | None = None, deny: bool = False,
                    follow_callback: bool = True) -> httpx.Response:
    """Play the user: open the link, sign in at the upstream, consent, land on the callback.

    The browser is not part of the agent's process: its request log (URLs with the
    authorization code) is kept out of the test's captured logs.
    """
    with _quiet("httpx", "httpcore"), httpx.Client(timeout=10) as browser:
        page = browser.get(authorize_url)
        page.raise_for_status()
        action, fields = form_fields(page.text)
        assert action is not None, page.text[:300]
        fields.update(login=user, decision="deny" if deny else "allow")
        if grant_scope is not None:
            fields["grant_scope"] = grant_scope
        answer = browser.post(urljoin(str(page.url), action), data=fields)
        assert answer.status_code == 302, answer.text[:300]
        location = answer.headers["location"]
        if not follow_callback:
            return answer
        return browser.get(location)


class ServedApp:
    """Any ASGI app served by uvicorn in a thread on 127.0.0.1 (e.g. the vault's callback)."""

    def __init__(self, app: Any) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test app server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
