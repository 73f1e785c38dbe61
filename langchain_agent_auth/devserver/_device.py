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

from langchain_agent_auth.devserver._ciba import ACR_PASSWORD
from langchain_agent_auth.devserver._model import (
    AUTH_ALL,
    Client,
    OAuthRequest,
)
from langchain_agent_auth.devserver._pending import PendingEndpoint, PendingGrant, PendingKind, open_request
from langchain_agent_auth.devserver._util import (
    GT_DEVICE,
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
    from langchain_agent_auth.devserver._site import Site

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


DEVICE = PendingKind("device", "device request", "device_requests", "device_code", GT_DEVICE, "the device grant",
                     expired="the device code expired", deny_once=False,
                     endpoint="device_authorization", opened="authorize", auth_methods=AUTH_ALL)


class DeviceAuthorization(PendingEndpoint):
    """``POST /device_authorization`` (RFC 8628 §3.1, §3.2)."""

    KIND = DEVICE

    def open(self, provider: Provider, client: Client, request: OAuthRequest) -> dict[str, Any]:
        scopes = split_scope(request.form.get("scope"))
        targets = self.user_targets(provider, client, request, scopes)
        device_code, user_code, request_id = new_token(32), new_user_code(), new_id("dev")
        verification = provider.base_url + "/device"
        body: dict[str, Any] = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": verification + "?" + urlencode({"user_code": user_code}),
        }
        data = {"scope": " ".join(scopes), "resource": targets, "client_name": client.client_name}
        open_request(provider, DEVICE, device_code, DEVICE_CODE_TTL, body, id=request_id,
                     user_code_hash=token_hash(user_code), client_id=client.client_id, sub=None, data=data)
        log.info("device request %s from %s (expires in %ss)", request_id, client.client_id, DEVICE_CODE_TTL)
        return body


class DeviceCodeGrant(PendingGrant):
    """The device access token request (RFC 8628 §3.4, §3.5)."""

    KIND = DEVICE
    ACR = ACR_PASSWORD
    AMR = ["pwd"]


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


class WrongCodes:
    """Wrong user codes typed per browser session (its csrf value), bounded in memory."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def exhausted(self, session_csrf: str) -> bool:
        return self._counts.get(session_csrf, 0) >= MAX_WRONG_CODES

    def record(self, session_csrf: str) -> None:
        if len(self._counts) > 10_000:  # old sessions' counts are dropped
            self._counts.clear()
        self._counts[session_csrf] = self._counts.get(session_csrf, 0) + 1


async def device_page(site: Site, wrong: WrongCodes, request: Request) -> Response:
    """``GET/POST /device``: type (or check) the user code, then see what the client asks."""
    from langchain_agent_auth.devserver._pages import message_page
    from langchain_agent_auth.devserver._site import expired_session, page, signed_form

    code = request.query_params.get("user_code", "") if request.method == "GET" else ""
    next_url = "/device" + ("?" + urlencode({"user_code": code[:16]}) if code else "")
    session, response = site.require_session(request, next_url)
    if response:
        return response
    if request.method == "GET":
        flash = {"approved": "Approved. Your device can continue.", "denied": "Denied. The device was told no."}
        return page(code_page(user=session.sub, csrf=session.csrf, user_code=code[:16],
                              flash=flash.get(request.query_params.get("done", ""))))
    form = await signed_form(request, session)
    if form is None:
        return expired_session()
    if wrong.exhausted(session.csrf):
        return page(message_page("Too many tries", "Too many wrong codes. Sign out and in again."), 429)
    typed = str(form.get("user_code", ""))[:64]
    user_code = normalize_user_code(typed)
    row = _find_pending(site.provider, user_code) if user_code else None
    if row is None:
        wrong.record(session.csrf)
        site.provider.count("device", "wrong_code")
        return page(code_page(user=session.sub, csrf=session.csrf, user_code=typed,
                              error="That code is unknown or has expired. Check the code on your device."), 400)
    return page(confirm_page(user=session.sub, csrf=session.csrf, user_code=str(user_code), row=row))


async def device_decision(site: Site, approve: bool, request: Request) -> Response:
    """``POST /device/approve|deny``: bind the request to the signed-in user and decide."""
    from langchain_agent_auth.devserver._site import expired_session, page, redirect, signed_form

    session, response = site.require_session(request, "/device")
    if response:
        return response
    form = await signed_form(request, session)
    if form is None:
        return expired_session()
    if not decide(site.provider, str(form.get("user_code", ""))[:64], session.sub, approve):
        return page(code_page(user=session.sub, csrf=session.csrf,
                              error="That code was already answered or has expired."), 409)
    return redirect(f"/device?done={'approved' if approve else 'denied'}")


def device_routes(site: Site) -> list[Any]:
    """The verification pages: ``GET/POST /device`` and ``POST /device/approve|deny``."""
    from starlette.routing import Route

    approve, deny = site.page(device_decision, "main", True), site.page(device_decision, "main", False)
    approve.__name__, deny.__name__ = "device_approve", "device_deny"
    return [
        Route("/device", site.page(device_page, "main", WrongCodes()), methods=["GET", "POST"]),
        Route("/device/approve", approve, methods=["POST"]),
        Route("/device/deny", deny, methods=["POST"]),
    ]
