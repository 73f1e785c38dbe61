"""OAuth 2.0 Device Authorization Grant (RFC 8628) for CLI and headless agents.

:class:`DeviceAuthorization` is an authlib ``Endpoint`` for ``POST /device_authorization``
and :class:`DeviceCodeGrant` an authlib grant for
``grant_type=urn:ietf:params:oauth:grant-type:device_code``. The verification page
(``/device``) is where the signed-in user types the user code, sees which client asks for
what, and approves or denies; the request is then bound to that user.

The ``device_code`` is a bearer credential of the client and is stored only as a hash; so is
the user code (looked up by the hash of its normalized form).

Limits:

* user codes: 8 letters from RFC 8628's consonant alphabet (``BCDF-GHJK``), shown with a
  dash; typed codes are normalized (case, dashes, spaces ignored);
* ``expires_in``: 600 s; ``interval``: the provider's poll interval (``ciba_interval``); a poll
  sooner than that after the previous poll of the same request gets ``slow_down``;
* a browser session that types 10 wrong user codes is refused further tries (brute force).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.endpoint import Endpoint
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.hooks import hooked

from langchain_agent_auth.devserver._ciba import ACR_PASSWORD
from langchain_agent_auth.devserver._oauth import (
    AUTH_ALL,
    AccessDeniedError,
    AuthContext,
    AuthorizationPendingError,
    ExpiredTokenError,
    Issuance,
    IssuingGrant,
    OAuthRequest,
    SlowDownError,
    UnauthorizedClientError,
    check_client_scope,
    oauth_error,
    resolve_targets,
    revoke_grant,
)
from langchain_agent_auth.devserver._util import (
    GT_DEVICE,
    dumps,
    loads,
    new_id,
    new_token,
    split_scope,
    token_hash,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_TTL = 600
MAX_WRONG_CODES = 10



def new_user_code() -> str:
    """``WXYZ-BCDF``: 8 letters (about 34.6 bits), easy to read and type.

    Example:
        >>> code = new_user_code()
        >>> len(code), code[4], normalize_user_code(code.lower()) == code
        (9, '-', True)
    """
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_user_code(value: str) -> str | None:
    """The canonical ``XXXX-XXXX`` form of a typed code, or None if it cannot be one.

    Example:
        >>> normalize_user_code(" wdjb mjht "), normalize_user_code("nope")
        ('WDJB-MJHT', None)
    """
    letters = "".join(ch for ch in value.upper() if ch not in "- \t")
    if len(letters) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in letters):
        return None
    return f"{letters[:4]}-{letters[4:]}"


class DeviceAuthorization(Endpoint):
    """``POST /device_authorization`` (RFC 8628 §3.1, §3.2)."""

    ENDPOINT_NAME = "device_authorization"

    def create_endpoint_response(self, request: OAuthRequest) -> tuple[int, dict[str, Any], list]:
        provider: Provider = self.server.provider
        provider.count("device", "authorize")
        client = self.server.authenticate_client(request, AUTH_ALL, self.ENDPOINT_NAME)
        request.client = client
        if not client.check_grant_type(GT_DEVICE):
            raise oauth_error(UnauthorizedClientError, "client is not registered for the device grant")
        scopes = split_scope(request.form.get("scope"))
        check_client_scope(client, scopes)
        targets = resolve_targets(provider, request, scopes, user_grant=True)
        device_code = new_token(32)
        user_code = new_user_code()
        request_id = new_id("dev")
        created = provider.now()
        interval = provider.ciba_interval
        data = {"scope": " ".join(scopes), "resource": targets, "client_name": client.client_name}
        provider.store.execute(
            "INSERT INTO device_requests VALUES (?,?,?,?,NULL,?,?,?,?,?,NULL,NULL,NULL)",
            (request_id, token_hash(device_code), token_hash(user_code), client.client_id, "pending",
             dumps(data), created, created + DEVICE_CODE_TTL, interval),
        )
        log.info("device request %s from %s (expires in %ss)", request_id, client.client_id, DEVICE_CODE_TTL)
        verification = provider.base_url + "/device"
        body: dict[str, Any] = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": verification + "?" + urlencode({"user_code": user_code}),
            "expires_in": DEVICE_CODE_TTL,
        }
        if interval > 0:
            body["interval"] = interval
        return 200, body, default_json_headers


class DeviceCodeGrant(IssuingGrant, BaseGrant, TokenEndpointMixin):
    """The device access token request (RFC 8628 §3.4, §3.5)."""

    GRANT_TYPE = GT_DEVICE
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_ALL

    def validate_token_request(self) -> None:
        provider: Provider = self.server.provider
        provider.count("device", "polls")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(GT_DEVICE):
            raise oauth_error(UnauthorizedClientError, "client is not registered for the device grant")
        self.request.client = client
        device_code = self.request.form.get("device_code")
        if not device_code:
            raise oauth_error(InvalidRequestError, "missing device_code")
        row = provider.store.one(
            "SELECT * FROM device_requests WHERE device_code_hash=? AND client_id=?",
            (token_hash(device_code), client.client_id),
        )
        if row is None:
            raise oauth_error(InvalidGrantError, "unknown device_code")
        self.request.device = _poll(provider, dict(row))

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        provider: Provider = self.server.provider
        row = self.request.device
        user = provider.user(row["sub"])
        if user is None:
            raise oauth_error(InvalidGrantError, "the user no longer exists")
        self.request.user = user
        self.request.authorization_code = AuthContext(
            sub=row["sub"], auth_time=row["decided_at"], acr=ACR_PASSWORD, amr=["pwd"]
        )
        token = self.generate_token(user=user, scope=row["data"]["scope"], include_refresh_token=True)
        self.save_token(token)
        provider.store.execute(
            "UPDATE device_requests SET status='consumed', grant_id=? WHERE id=?",
            (self.request.issuance.grant_id, row["id"]),
        )
        provider.count("device", "tokens")
        log.info("device request %s: tokens issued to %s", row["id"], row["client_id"])
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def issuance(self, user: Any, scope: str) -> Issuance:
        row = self.request.device
        issuance = self.server.user_issuance(
            self.request, user, scope, targets=row["data"].get("resource") or [], authorization_details=None,
            acr=ACR_PASSWORD, amr=["pwd"], auth_time=row["decided_at"],
        )
        self.request.issuance = issuance
        return issuance


def _poll(provider: Provider, row: dict[str, Any]) -> dict[str, Any]:
    """Apply a poll to a stored request: raise the spec's error or return the approved row."""
    row["data"] = loads(row["data"], {})
    status = row["status"]
    if status == "consumed":
        revoke_grant(provider, row["grant_id"])  # a replayed device_code: revoke what it produced
        log.warning("device request %s: device_code replayed, grant revoked", row["id"])
        raise oauth_error(InvalidGrantError, "device_code was already used")
    if status == "denied":
        provider.count("device", "access_denied")
        raise oauth_error(AccessDeniedError, "the user denied the request")
    if row["expires_at"] <= provider.now():
        provider.count("device", "expired_token")
        raise oauth_error(ExpiredTokenError, "the device code expired")
    current = provider.clock.time()
    last = row["last_poll_at"]
    provider.store.execute("UPDATE device_requests SET last_poll_at=? WHERE id=?", (current, row["id"]))
    if row["interval"] > 0 and last is not None and current - last < row["interval"]:
        provider.count("device", "slow_down")
        raise oauth_error(SlowDownError, f"poll at most every {row['interval']} seconds")
    if status == "pending":
        provider.count("device", "authorization_pending")
        raise oauth_error(AuthorizationPendingError, "the user has not answered yet")
    return row


# ---------------------------------------------------------------------------- the verification page
def _find_pending(provider: Provider, user_code: str) -> dict[str, Any] | None:
    row = provider.store.one(
        "SELECT * FROM device_requests WHERE user_code_hash=? AND status='pending' AND expires_at>?",
        (token_hash(user_code), provider.now()),
    )
    return dict(row) if row is not None else None


def decide(provider: Provider, user_code: str, user: str, approve: bool) -> bool:
    """Bind the pending request with ``user_code`` to ``user`` and approve or deny it.

    Returns False when no pending request has that code (expired, answered, mistyped).
    """
    code = normalize_user_code(user_code)
    if code is None:
        return False
    with provider.store.transaction():
        row = _find_pending(provider, code)
        if row is None:
            return False
        provider.store.execute(
            "UPDATE device_requests SET status=?, sub=?, decided_at=? WHERE id=? AND status='pending'",
            ("approved" if approve else "denied", user, provider.now(), row["id"]),
        )
    provider.count("device", "approved" if approve else "denied")
    log.info("device request %s %s by %s", row["id"], "approved" if approve else "denied", user)
    return True


def _form(action: str, csrf: str, fields: dict[str, str], button: str, cls: str, ident: str) -> str:
    from langchain_agent_auth.devserver._pages import esc

    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items())
    return (f'<form method="post" action="{esc(action)}"><input type="hidden" name="csrf" value="{esc(csrf)}">'
            f'{hidden}<button class="{cls}" type="submit" id="{ident}">{esc(button)}</button></form>')


def code_page(*, user: str, csrf: str, user_code: str = "", error: str | None = None,
              flash: str | None = None) -> str:
    """Step 1: type (or check) the code the device shows."""
    from langchain_agent_auth.devserver._pages import esc, layout

    body = (
        "<h1>Connect a device</h1>"
        + (f'<div class="flash">{esc(flash)}</div>' if flash else "")
        + (f'<div class="error" role="alert">{esc(error)}</div>' if error else "")
        + '<section class="card"><p>Enter the code shown by the agent or device that asks to act for you.</p>'
        f'<form method="post" action="/device"><input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<label>Code <input type="text" name="user_code" id="user_code" value="{esc(user_code)}" '
        'autocomplete="off" autocapitalize="characters" maxlength="16" required></label> '
        '<button class="approve" type="submit" id="continue">Continue</button></form></section>'
    )
    return layout("Connect a device", body, user=user, csrf=csrf)


def confirm_page(*, user: str, csrf: str, user_code: str, row: dict[str, Any]) -> str:
    """Step 2: which client asks for what; approve or deny."""
    from langchain_agent_auth.devserver._pages import esc, layout, scope_items

    data = loads(row["data"], {}) if isinstance(row["data"], str) else row["data"]
    scopes = [s for s in (data.get("scope") or "").split() if s != "openid"]
    body = (
        "<h1>Allow this device?</h1>"
        f'<section class="card request" data-device-request="{esc(row["id"])}">'
        f'<div class="muted">Code <b>{esc(user_code)}</b> &middot; requested by '
        f'<b>{esc(data.get("client_name") or row["client_id"])}</b> <code>{esc(row["client_id"])}</code></div>'
        "<p>Only continue if you started this on your own device and it shows the same code.</p>"
        + (f'<p class="muted">It will receive:</p>{scope_items(" ".join(scopes))}' if scopes else "")
        + '<div class="actions">'
        + _form("/device/approve", csrf, {"user_code": user_code}, "Approve", "approve", "approve")
        + _form("/device/deny", csrf, {"user_code": user_code}, "Deny", "deny", "deny")
        + "</div></section>"
    )
    return layout("Allow this device?", body, user=user, csrf=csrf)


def device_routes(provider: Provider, require_session: Any, guarded_page: Any) -> list[Any]:
    """The verification pages: ``GET/POST /device`` and ``POST /device/approve|deny``."""
    from starlette.responses import HTMLResponse, RedirectResponse
    from starlette.routing import Route

    from langchain_agent_auth.devserver._pages import message_page
    from langchain_agent_auth.devserver._web import PAGE_HEADERS, read_form

    wrong: dict[str, int] = {}  # session csrf -> wrong codes typed

    def page(html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(html, status_code=status, headers=dict(PAGE_HEADERS))

    async def device(request: Request) -> Response:
        code = request.query_params.get("user_code", "") if request.method == "GET" else ""
        next_url = "/device" + ("?" + urlencode({"user_code": code[:16]}) if code else "")
        session, response = require_session(request, next_url)
        if response:
            return response
        if request.method == "GET":
            flash = {"approved": "Approved. Your device can continue.", "denied": "Denied. The device was told no."}
            return page(code_page(user=session.sub, csrf=session.csrf, user_code=code[:16],
                                  flash=flash.get(request.query_params.get("done", ""))))
        form = dict(await read_form(request))
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            return page(message_page("Session expired", "Reload the page."), 400)
        if wrong.get(session.csrf, 0) >= MAX_WRONG_CODES:
            return page(message_page("Too many tries", "Too many wrong codes. Sign out and in again."), 429)
        typed = str(form.get("user_code", ""))[:64]
        user_code = normalize_user_code(typed)
        row = _find_pending(provider, user_code) if user_code else None
        if row is None:
            if len(wrong) > 10_000:  # bounded memory: old sessions' counts are dropped
                wrong.clear()
            wrong[session.csrf] = wrong.get(session.csrf, 0) + 1
            provider.count("device", "wrong_code")
            return page(code_page(user=session.sub, csrf=session.csrf, user_code=typed,
                                  error="That code is unknown or has expired. Check the code on your device."), 400)
        return page(confirm_page(user=session.sub, csrf=session.csrf, user_code=str(user_code), row=row))

    def decision(approve: bool) -> Any:
        async def handler(request: Request) -> Response:
            session, response = require_session(request, "/device")
            if response:
                return response
            form = dict(await read_form(request))
            if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
                return page(message_page("Session expired", "Reload the page."), 400)
            if not decide(provider, str(form.get("user_code", ""))[:64], session.sub, approve):
                return page(code_page(user=session.sub, csrf=session.csrf,
                                      error="That code was already answered or has expired."), 409)
            return RedirectResponse(f"/device?done={'approved' if approve else 'denied'}", status_code=303,
                                    headers={"Cache-Control": "no-store"})

        handler.__name__ = "device_approve" if approve else "device_deny"
        return handler

    return [
        Route("/device", guarded_page(device, "main"), methods=["GET", "POST"]),
        Route("/device/approve", guarded_page(decision(True), "main"), methods=["POST"]),
        Route("/device/deny", guarded_page(decision(False), "main"), methods=["POST"]),
    ]
