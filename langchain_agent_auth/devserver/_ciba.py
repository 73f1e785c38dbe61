"""OpenID Client-Initiated Backchannel Authentication (CIBA Core 1.0), poll and ping modes.

authlib has no CIBA: :class:`BackchannelAuthentication` is an authlib ``Endpoint`` for
``POST /bc-authorize`` and :class:`CibaGrant` an authlib grant for
``grant_type=urn:openid:params:grant-type:ciba``. The user's "device" is the approval page
(and the admin API): it sees each pending request by an opaque request id, never by the
``auth_req_id``, which is a bearer credential of the client and is stored only as a hash
(and, for ping clients, encrypted so the ping can carry it).

Limits (documented in the README):

* ``binding_message``: 1-128 printable characters (no control characters), else
  ``invalid_binding_message``; always HTML-escaped on the page.
* ``requested_expiry``: an integer of seconds in [1, 3600], else ``invalid_request``;
  default 300 s.
* ``interval``: the provider's ``ciba_interval`` (default 5 s); a poll sooner than that after
  the previous poll of the same request gets ``slow_down``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from joserfc import jwt
from joserfc.errors import JoseError

from langchain_agent_auth.devserver._issuance import (
    parse_details,
)
from langchain_agent_auth.devserver._model import (
    AUTH_CONFIDENTIAL,
    Client,
    InvalidBindingMessageError,
    OAuthRequest,
    UnknownUserIdError,
    oauth_error,
)
from langchain_agent_auth.devserver._pending import PendingEndpoint, PendingGrant, PendingKind, open_request
from langchain_agent_auth.devserver._rar import (
    AuthorizationDetailsError,
    describe,
    narrows,
    parse_authorization_details,
)
from langchain_agent_auth.devserver._util import (
    GT_CIBA,
    dumps,
    loads,
    new_id,
    new_token,
    printable_ascii,
    split_scope,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")

BINDING_MESSAGE_MAX = 128
MAX_PENDING_PER_USER = 50  # unanswered requests one client may have open for one user
REQUESTED_EXPIRY_RANGE = (1, 3600)
DEFAULT_EXPIRY = 300
REQUEST_CONTEXT_MAX = 4096
ACR_PASSWORD = "urn:agent-auth:loa:1"
ACR_DEVICE_APPROVAL = "urn:agent-auth:loa:2"
ACR_VALUES_SUPPORTED = [ACR_PASSWORD, ACR_DEVICE_APPROVAL]


class DecisionError(Exception):
    """An admin/page action on a CIBA request that cannot be done (HTTP status + error code)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class Ping:
    """A ping callback to send after a decision (CIBA Core §10.2)."""

    request_id: str
    endpoint: str
    notification_token: str
    auth_req_id: str


def _valid_binding_message(value: str) -> bool:
    return 1 <= len(value) <= BINDING_MESSAGE_MAX and value.isprintable()


def resolve_login_hint(provider: Provider, hint: str) -> str | None:
    """A subject, an email, or the JSON forms ``{"format":"iss_sub","iss":..,"sub":..}`` and
    ``{"format":"email","email":..}``. Returns the subject, or None if unknown."""
    if hint.startswith("{"):
        try:
            value = json.loads(hint)
        except ValueError:
            raise oauth_error(InvalidRequestError, "login_hint is not valid JSON") from None
        if not isinstance(value, dict):
            raise oauth_error(InvalidRequestError, "login_hint JSON must be an object")
        fmt = value.get("format")
        if fmt == "iss_sub":
            if value.get("iss") != provider.issuer or not isinstance(value.get("sub"), str):
                return None
            row = provider.store.get_user(value["sub"])
        elif fmt == "email" and isinstance(value.get("email"), str):
            row = provider.store.one("SELECT * FROM users WHERE email=?", (value["email"],))
        else:
            raise oauth_error(InvalidRequestError, "unsupported login_hint format")
        return row["sub"] if row else None
    row = provider.store.find_user(hint)
    return row["sub"] if row else None


def _subject_from_id_token_hint(provider: Provider, value: str) -> str | None:
    try:
        token = jwt.decode(value, provider.store.verification_keyset(), algorithms=["RS256", "ES256"])
    except (JoseError, ValueError):
        raise oauth_error(
            InvalidRequestError, "id_token_hint is not a valid ID token of this provider"
        ) from None
    if token.claims.get("iss") != provider.issuer or not isinstance(token.claims.get("sub"), str):
        raise oauth_error(InvalidRequestError, "id_token_hint was not issued by this provider")
    return token.claims["sub"] if provider.store.get_user(token.claims["sub"]) else None


# access_denied is reported once; a later poll hears invalid_grant (the request was used)
CIBA = PendingKind("ciba", "CIBA request", "ciba_requests", "auth_req_id", GT_CIBA, "CIBA",
                   expired="the authentication request expired", deny_once=True,
                   endpoint="backchannel_authentication", opened="bc_authorize", auth_methods=AUTH_CONFIDENTIAL)


def _subject(provider: Provider, params: dict[str, str]) -> str:
    """The user named by exactly one hint (``login_hint`` or ``id_token_hint``)."""
    hints = [name for name in ("login_hint", "login_hint_token", "id_token_hint") if name in params]
    if len(hints) != 1:
        raise oauth_error(InvalidRequestError, "exactly one of login_hint, login_hint_token, id_token_hint")
    if hints[0] == "login_hint_token":
        raise oauth_error(InvalidRequestError, "login_hint_token is not supported; use login_hint")
    if hints[0] == "id_token_hint":
        sub = _subject_from_id_token_hint(provider, params["id_token_hint"])
    else:
        sub = resolve_login_hint(provider, params["login_hint"])
    if sub is None:
        raise oauth_error(UnknownUserIdError, "no user matches the hint")
    return sub


def _check_open_requests(provider: Provider, sub: str, client_id: str) -> None:
    pending = provider.store.one(
        "SELECT COUNT(*) AS n FROM ciba_requests WHERE sub=? AND client_id=? AND status='pending' "
        "AND expires_at>?",
        (sub, client_id, provider.now()),
    )
    if pending is not None and pending["n"] >= MAX_PENDING_PER_USER:
        raise oauth_error(
            InvalidRequestError,
            f"{MAX_PENDING_PER_USER} requests already wait for this user's answer; wait for them",
        )


def _request_options(params: dict[str, str]) -> tuple[str | None, int]:
    """``binding_message`` and ``requested_expiry`` (seconds), checked."""
    binding_message = params.get("binding_message")
    if binding_message is not None and not _valid_binding_message(binding_message):
        raise oauth_error(
            InvalidBindingMessageError, f"binding_message must be 1-{BINDING_MESSAGE_MAX} printable characters"
        )
    expires_in = DEFAULT_EXPIRY
    if "requested_expiry" in params:
        raw = params["requested_expiry"]
        low, high = REQUESTED_EXPIRY_RANGE
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise oauth_error(InvalidRequestError, f"requested_expiry must be an integer in [{low}, {high}]")
        expires_in = int(raw)
    return binding_message, expires_in


def _ping_secret(client: Client, params: dict[str, str]) -> str | None:
    """The ``client_notification_token`` a ping-mode client must send (None in poll mode)."""
    if client.delivery_mode != "ping":
        return None
    notification_token = params.get("client_notification_token")
    if not notification_token:
        raise oauth_error(InvalidRequestError, "client_notification_token is required in ping mode")
    if len(notification_token) > 1024:
        raise oauth_error(InvalidRequestError, "client_notification_token is too long")
    return notification_token


class BackchannelAuthentication(PendingEndpoint):
    """``POST /bc-authorize``: the CIBA backchannel authentication endpoint (CIBA Core §7)."""

    KIND = CIBA

    def open(self, provider: Provider, client: Client, request: OAuthRequest) -> dict[str, Any]:
        params = request.form
        if "request" in params or "request_uri" in params:
            raise oauth_error(InvalidRequestError, "signed authentication requests are not supported")
        scopes = split_scope(params.get("scope"))
        if "openid" not in scopes:
            raise oauth_error(InvalidRequestError, "scope must include openid")
        targets = self.user_targets(provider, client, request, scopes)
        sub = _subject(provider, params)
        _check_open_requests(provider, sub, client.client_id)
        binding_message, expires_in = _request_options(params)
        details = parse_details(client, params.get("authorization_details"))
        request_context = params.get("request_context")
        if request_context is not None and len(request_context) > REQUEST_CONTEXT_MAX:
            raise oauth_error(InvalidRequestError, "request_context is too large")
        ping_secret = _ping_secret(client, params)
        auth_req_id, request_id = new_token(32), new_id("req")
        data = {
            "scope": " ".join(scopes),
            "resource": targets,
            "binding_message": binding_message,
            "authorization_details": details,
            "acr_values": split_scope(params.get("acr_values")),
            "request_context": request_context,
            "delivery_mode": client.delivery_mode or "poll",
            "client_name": client.client_name,
        }
        if ping_secret is not None:
            data["ping"] = provider.store.seal({"token": ping_secret, "auth_req_id": auth_req_id})
        body = open_request(provider, CIBA, auth_req_id, expires_in, {"auth_req_id": auth_req_id},
                            id=request_id, client_id=client.client_id, sub=sub, data=data)
        log.info("CIBA request %s for %s from %s (%s mode, expires in %ss)",
                 request_id, sub, client.client_id, data["delivery_mode"], expires_in)
        return body


class CibaGrant(PendingGrant):
    """The CIBA token request (poll and ping): ``grant_type=urn:openid:params:grant-type:ciba``."""

    KIND = CIBA
    ACR = ACR_DEVICE_APPROVAL
    AMR = ["user", "pwd"]

    def approved_details(self, data: dict[str, Any]) -> list[dict[str, Any]] | None:
        return data.get("approved_details", data.get("authorization_details"))


# ---------------------------------------------------------------------------- the user's device
def public_view(provider: Provider, row: Any) -> dict[str, Any]:
    """What the approval page and ``agent-auth approvals list`` show (no auth_req_id)."""
    data = loads(row["data"], {})
    details = data.get("authorization_details")
    return {
        "id": row["id"],
        "user": row["sub"],
        "client_id": row["client_id"],
        "client_name": data.get("client_name") or row["client_id"],
        "status": row["status"] if row["expires_at"] > provider.now() or row["status"] != "pending" else "expired",
        "binding_message": data.get("binding_message"),
        "scope": data.get("scope"),
        "resource": data.get("resource") or [],
        "authorization_details": details,
        "authorization_details_view": [describe(d) for d in details or []],
        "acr_values": data.get("acr_values") or [],
        "delivery_mode": data.get("delivery_mode"),
        "requested_at": row["created_at"],
        "expires_at": row["expires_at"],
        "decided_at": row["decided_at"],
    }


def list_requests(
    provider: Provider, *, user: str | None = None, status: str | None = "pending"
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM ciba_requests WHERE 1=1"
    params: list[Any] = []
    if user:
        sql += " AND sub=?"
        params.append(user)
    if status == "pending":
        sql += " AND status='pending' AND expires_at>?"
        params.append(provider.now())
    elif status:
        sql += " AND status=?"
        params.append(status)
    sql += " ORDER BY created_at, rowid"
    return [public_view(provider, row) for row in provider.store.all(sql, tuple(params))]


def _pending_row(provider: Provider, request_id: str, user: str | None) -> dict[str, Any]:
    row = provider.store.one("SELECT * FROM ciba_requests WHERE id=?", (request_id,))
    if row is None or (user is not None and row["sub"] != user):
        raise DecisionError(404, "not_found", "no such request")
    if row["status"] != "pending":
        raise DecisionError(409, "already_decided", f"the request is {row['status']}")
    if row["expires_at"] <= provider.now():
        raise DecisionError(409, "expired", "the request expired")
    return dict(row)


def _ping_for(provider: Provider, row: dict[str, Any], data: dict[str, Any]) -> Ping | None:
    if data.get("delivery_mode") != "ping" or "ping" not in data:
        return None
    client = provider.main.query_client(row["client_id"])
    if client is None or not client.notification_endpoint:
        return None
    secret = provider.store.unseal(data["ping"])
    return Ping(row["id"], client.notification_endpoint, secret["token"], secret["auth_req_id"])


def approve(
    provider: Provider,
    request_id: str,
    *,
    user: str | None = None,
    authorization_details: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], Ping | None]:
    """The user approves (optionally narrowing ``authorization_details``)."""

    def narrow(row: dict[str, Any], data: dict[str, Any]) -> None:
        if authorization_details is None:
            return
        client = provider.main.query_client(row["client_id"])
        try:
            data["approved_details"] = parse_authorization_details(
                authorization_details, allowed_types=client.authorization_details_types if client else []
            )
        except AuthorizationDetailsError as exc:
            raise DecisionError(400, "invalid_authorization_details", str(exc)) from None
        if not narrows(data["approved_details"], data.get("authorization_details")):
            raise DecisionError(
                400,
                "invalid_authorization_details",
                "an approval may only narrow the request (drop entries or lower an amount)",
            )

    return _decide(provider, request_id, user, "approved", narrow)


def deny(
    provider: Provider, request_id: str, *, user: str | None = None, reason: str | None = None
) -> tuple[dict[str, Any], Ping | None]:
    """The user denies. The reason becomes the ``error_description`` the client sees."""

    def give_reason(row: dict[str, Any], data: dict[str, Any]) -> None:
        if reason:
            data["deny_reason"] = printable_ascii(reason, 200)

    return _decide(provider, request_id, user, "denied", give_reason)


def _decide(
    provider: Provider,
    request_id: str,
    user: str | None,
    status: str,
    amend: Callable[[dict[str, Any], dict[str, Any]], None],
) -> tuple[dict[str, Any], Ping | None]:
    """Record the user's decision on a pending request (``amend`` adds to its data)."""
    with provider.store.transaction():
        row = _pending_row(provider, request_id, user)
        data = loads(row["data"], {})
        amend(row, data)
        provider.store.execute(
            "UPDATE ciba_requests SET status=?, decided_at=?, data=? WHERE id=?",
            (status, provider.now(), dumps(data), request_id),
        )
    provider.count("ciba", status)
    log.info("CIBA request %s %s by %s", request_id, status, row["sub"])
    return _view(provider, request_id), _ping_for(provider, row, data)


def _view(provider: Provider, request_id: str) -> dict[str, Any]:
    row = provider.store.one("SELECT * FROM ciba_requests WHERE id=?", (request_id,))
    return public_view(provider, row)


async def send_ping(provider: Provider, ping: Ping) -> None:
    """POST ``{"auth_req_id": ...}`` to the client with its ``client_notification_token``."""
    import httpx  # only ping mode needs a client; keeps ``agent-auth dev`` startup light

    for attempt in range(2):
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                response = await http.post(
                    ping.endpoint,
                    json={"auth_req_id": ping.auth_req_id},
                    headers={"Authorization": f"Bearer {ping.notification_token}"},
                )
            provider.count("ciba", "pings_sent")
            log.info("CIBA request %s: ping delivered (HTTP %s)", ping.request_id, response.status_code)
            return
        except httpx.HTTPError as exc:
            log.warning(
                "CIBA request %s: ping failed (%s)%s",
                ping.request_id,
                type(exc).__name__,
                ", retrying" if attempt == 0 else "",
            )
            if attempt == 0:
                await asyncio.sleep(0.5)
    provider.count("ciba", "pings_failed")
