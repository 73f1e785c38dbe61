"""HTTP plumbing shared by the routes: bounded body reading, parameter parsing, JSON errors,
browser sessions, and the outer ASGI middleware (error shield, size limit, counters, log)."""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import sqlite3
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langchain_agent_auth.core._serving import JSONLimitError, load_json_bounded
from langchain_agent_auth.core.errors import redact
from langchain_agent_auth.devserver._model import OAuthRequest
from langchain_agent_auth.devserver._util import printable_ascii, token_hash

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")

MAX_BODY = 64 * 1024
MAX_PARAMS = 200
REPEATABLE = ("resource", "audience")
# Protocol parameters whose values are identifiers or URIs: printable ASCII without '"' and '\\'
# (authlib echoes some of them into error descriptions, which RFC 6749 §5.2 restricts to that).
ASCII_PARAMS = frozenset(
    {
        "response_type",
        "grant_type",
        "client_id",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "token_type_hint",
        "subject_token_type",
        "actor_token_type",
        "requested_token_type",
        "client_assertion_type",
        "prompt",
        "response_mode",
    }
)
SESSION_TTL = 8 * 3600


class BadRequest(Exception):
    """A request refused before any grant looks at it: answered as a spec error."""

    def __init__(
        self, status: int, error: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def json_error(
    status: int, error: str, description: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": error}
    if description:
        body["error_description"] = printable_ascii(description)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadRequest(413, "invalid_request", f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "invalid_request", f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` to pairs; blank values are dropped (RFC 6749 §3.1)."""
    if not text:
        return []
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_PARAMS
        )
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "invalid_request", "malformed or too many parameters") from None
    out = []
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise BadRequest(400, "invalid_request", "parameters must not contain NUL characters")
        if value != "":
            out.append((key, value))
    return out


async def read_form(request: Request, limit: int = MAX_BODY) -> list[tuple[str, str]]:
    body = await read_body(request, limit)
    if not body:
        return []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "invalid_request", "the body is not UTF-8") from None
    return parse_pairs(text)


async def read_json(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        value = load_json_bounded(body)
    except JSONLimitError as exc:
        raise BadRequest(400, "invalid_request", f"the body is not usable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "invalid_request", "the body must be a JSON object")
    return value


def _check_params(pairs: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen and key not in REPEATABLE:
            raise BadRequest(400, "invalid_request", f"parameter {printable_ascii(key, 60)} is repeated")
        seen.add(key)
        if key in ASCII_PARAMS and not all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in value):
            raise BadRequest(400, "invalid_request", f"{key} must be printable ASCII")


def _check_basic(request: Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        return
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if ":" not in decoded:
        raise BadRequest(
            401,
            "invalid_client",
            "malformed HTTP Basic credentials",
            {"WWW-Authenticate": 'Basic error="invalid_client"'},
        )


async def oauth_request(request: Request) -> OAuthRequest:
    """Read a whole OAuth request (query + bounded form) into authlib's request object."""
    query = parse_pairs(request.url.query)
    form = await read_form(request) if request.method == "POST" else []
    _check_params(form if request.method == "POST" else query)
    _check_basic(request)
    return OAuthRequest(request.method, str(request.url), request.headers, query, form)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the database."""
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in ("locked", "busy")
    )


def busy_response() -> JSONResponse:
    """The answer while another process holds the database: retry, never a 500."""
    return json_error(503, "temporarily_unavailable", "the database is busy; retry shortly", {"Retry-After": "1"})


Endpoint = Callable[[Request], Awaitable[Response]]
#: a JSON API's handler: a module-level function of ``(provider, request)``
Handler = Callable[["Provider", Request], Awaitable[Response]]
#: a JSON API's routes, one row each: ``(path, handler, methods)``
RouteTable = list[tuple[str, Handler, list[str]]]


def table_routes(table: RouteTable, endpoint: Callable[[Handler], Endpoint]) -> list[Route]:
    """A route per row of ``table``; ``endpoint`` makes each handler a Starlette endpoint."""
    return [Route(path, endpoint(func), methods=methods) for path, func, methods in table]


def guarded(func: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn :class:`BadRequest` into the spec's JSON error."""

    async def wrapper(request: Request) -> Response:
        try:
            return await func(request)
        except BadRequest as exc:
            return json_error(exc.status, exc.error, exc.description, exc.headers)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


# ---------------------------------------------------------------------------- login throttling
class FailureLimiter:
    """Failed sign-ins per user name and per client address in a sliding window: past the
    limit, further attempts are refused (429) without checking the password."""

    def __init__(
        self,
        *,
        per_user: int = 5,
        per_address: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        cutoff = self.clock() - self.window
        times = [t for t in self._failures.get(key, []) if t > cutoff]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def blocked(self, user: str, address: str) -> int:
        """Seconds to wait before trying again (0: go ahead)."""
        wait = 0.0
        for key in (("user", user.lower()), ("address", address)):
            times = self._recent(key)
            if len(times) >= self.limits[key[0]]:
                wait = max(wait, times[0] + self.window - self.clock())
        return int(wait) + 1 if wait > 0 else 0

    def record(self, user: str, address: str) -> None:
        if len(self._failures) > 10_000:  # bounded memory under a spray of names
            self._failures.clear()
        now_ = self.clock()
        for key in (("user", user.lower()), ("address", address)):
            self._failures.setdefault(key, []).append(now_)


# ---------------------------------------------------------------------------- sessions
@dataclass
class Session:
    sub: str
    csrf: str
    auth_time: int


class Sessions:
    """Server-side browser sessions of one realm (cookie = random id; the DB keeps its hash)."""

    def __init__(self, provider: Provider, realm: str) -> None:
        self.provider = provider
        self.realm = realm
        self.cookie = "aa_sid" if realm == "main" else "aa_up_sid"
        self.path = "/" if realm == "main" else "/upstream"

    def current(self, request: Request) -> Session | None:
        value = request.cookies.get(self.cookie)
        if not value or len(value) > 200:
            return None
        row = self.provider.store.one(
            "SELECT * FROM sessions WHERE id_hash=? AND realm=? AND expires_at>?",
            (token_hash(value), self.realm, self.provider.now()),
        )
        if row is None or self.provider.store.get_user(row["sub"]) is None:
            return None
        return Session(row["sub"], row["csrf"], row["auth_time"])

    def create(self, response: Response, sub: str) -> Session:
        value = secrets.token_urlsafe(32)
        session = Session(sub, secrets.token_urlsafe(24), self.provider.now())
        self.provider.store.execute("DELETE FROM sessions WHERE expires_at<?", (self.provider.now(),))
        self.provider.store.execute(
            "INSERT INTO sessions VALUES (?,?,?,?,?,?)",
            (token_hash(value), self.realm, sub, session.csrf, session.auth_time, self.provider.now() + SESSION_TTL),
        )
        response.set_cookie(
            self.cookie, value, max_age=SESSION_TTL, path=self.path, httponly=True, samesite="lax"
        )
        return session

    def destroy(self, request: Request, response: Response) -> None:
        value = request.cookies.get(self.cookie)
        if value:
            self.provider.store.execute("DELETE FROM sessions WHERE id_hash=?", (token_hash(value),))
        response.delete_cookie(self.cookie, path=self.path)


# ---------------------------------------------------------------------------- middleware
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ShieldMiddleware:
    """Outermost layer: size limit, per-route counters, one log line per request (method, route
    template, status, time: never the query string, a body or a header), and a JSON
    ``server_error`` instead of a traceback if anything escapes."""

    def __init__(self, app: ASGIApp, provider: Provider, max_body: int = 1024 * 1024) -> None:
        self.app = app
        self.provider = provider
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
            await send(message)

        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await json_error(413, "invalid_request", "request body too large")(scope, receive, send)
                self._record(scope, 413, started)
                return
        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            status["code"] = 499
        except Exception as exc:
            text = redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            log.error("unhandled error on %s %s: %s", scope.get("method"), self._route(scope), text)
            if not status["sent"]:
                await json_error(500, "server_error", "unexpected error")(scope, receive, send)
                status["code"] = 500
        self._record(scope, status["code"], started)

    @staticmethod
    def _route(scope: Scope) -> str:
        route = scope.get("route")
        return getattr(route, "path", None) or "(unrouted)"

    def _record(self, scope: Scope, code: int, started: float) -> None:
        route = self._route(scope)
        method = scope.get("method", "?")
        self.provider.count("requests", f"{method} {route}")
        if code >= 400:
            self.provider.count("errors", f"{method} {route} {code}")
        log.info(
            "%s %s %s %.1fms",
            method,
            route if route != "(unrouted)" else "(no route)",
            code,
            (time.perf_counter() - started) * 1000,
        )
