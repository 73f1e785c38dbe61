"""Protocol flows, written once as generators (see :mod:`._flow`), run sync or async.

Every flow here takes the endpoint URL and :class:`ClientCredentials` explicitly; the
:class:`~langchain_agent_auth.oauth.OAuthClient` facade fills them from discovery.

Grant type and token type URNs are exported as constants.

Example:
    >>> import httpx
    >>> from langchain_agent_auth.oauth import ClientCredentials, run_sync
    >>> ok = {"access_token": "t0k3n", "token_type": "Bearer", "expires_in": 60}
    >>> transport = httpx.MockTransport(lambda r: httpx.Response(200, json=ok))
    >>> flow = token_request("https://idp.test/token", ClientCredentials("a", "secret"),
    ...                      {"grant_type": "client_credentials"}, idempotent=True)
    >>> with httpx.Client(transport=transport) as client:
    ...     run_sync(flow, client).token_type
    'Bearer'
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import httpx

from langchain_agent_auth.core.errors import ConfigurationError, ProtocolError
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, send_with_retries
from langchain_agent_auth.oauth._http import USER_AGENT, raise_for_error
from langchain_agent_auth.oauth._polling import SLOW_DOWN_STEP as SLOW_DOWN_STEP  # the public name
from langchain_agent_auth.oauth._polling import poll_until_answered
from langchain_agent_auth.oauth.client_auth import ClientCredentials
from langchain_agent_auth.oauth.profiles import (
    AUTH0_TOKEN_VAULT,
    TOKEN_TYPE_ACCESS,
    TOKEN_TYPE_REFRESH,
    iss_sub_login_hint,
)
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = [
    "AUTH0_FEDERATED_GRANT",
    "AUTH0_FEDERATED_TOKEN_TYPE",
    "CIBA_GRANT",
    "TOKEN_EXCHANGE_GRANT",
    "TOKEN_TYPE_ACCESS",
    "TOKEN_TYPE_ID",
    "TOKEN_TYPE_JWT",
    "TOKEN_TYPE_REFRESH",
    "BackchannelAuthResponse",
    "FlowSettings",
    "PendingGrant",
    "backchannel_authorize",
    "introspect",
    "iss_sub_login_hint",
    "poll_backchannel",
    "revoke",
    "token_request",
    "wait_for_backchannel",
    "wait_for_grant",
]

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
# Auth0's Token Vault exchange is data of its profile (oauth.profiles.AUTH0_TOKEN_VAULT).
AUTH0_FEDERATED_GRANT = AUTH0_TOKEN_VAULT.grant_type
AUTH0_FEDERATED_TOKEN_TYPE = AUTH0_TOKEN_VAULT.requested_token_type
TOKEN_TYPE_ID = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"

DEFAULT_CIBA_INTERVAL = 5.0  # OpenID CIBA Core 7.3: "If no value is provided, clients MUST use 5"


@dataclass(frozen=True)
class FlowSettings:
    """Timeouts, retries and the clock used by flows."""

    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.time


DEFAULT_SETTINGS = FlowSettings()


def _post(url: str, creds: ClientCredentials, params: Mapping[str, Any], settings: FlowSettings,
          audience: str | None) -> httpx.Request:
    headers, body = creds.apply(url, dict(params), audience=audience)
    headers = {**headers, "Accept": "application/json", "User-Agent": USER_AGENT}
    return httpx.Request(
        "POST", url, headers=headers, content=body.encode(),
        extensions={"timeout": httpx.Timeout(settings.timeout).as_dict()},
    )


def token_request(
    token_endpoint: str,
    credentials: ClientCredentials,
    params: Mapping[str, Any],
    *,
    idempotent: bool,
    settings: FlowSettings = DEFAULT_SETTINGS,
    audience: str | None = None,
) -> Flow[TokenResponse]:
    """POST ``params`` (with ``grant_type``) to the token endpoint; any grant.

    ``idempotent`` says whether the request may be repeated after it may have reached
    the server (client_credentials, CIBA polls and exchanges yes; refresh with rotation,
    authorization codes no). ``audience`` is the private_key_jwt assertion audience.
    """
    if "grant_type" not in params:
        raise ConfigurationError("token_request needs a grant_type")
    request = _post(token_endpoint, credentials, params, settings, audience)
    response = yield from send_with_retries(request, idempotent=idempotent, policy=settings.retry)
    data = raise_for_error(response, what="token endpoint")
    return TokenResponse.from_json(data, now=settings.clock())


# --------------------------------------------------------------------------- CIBA


@dataclass(frozen=True, repr=False)
class BackchannelAuthResponse:
    """The answer to a backchannel authentication request (CIBA 7.3).

    ``auth_req_id`` is a bearer credential of the client: it never appears in repr().
    """

    auth_req_id: str
    expires_at: float
    interval: float = DEFAULT_CIBA_INTERVAL
    interval_given: bool = False
    expired_message: ClassVar[str] = "the approval request expired before the user answered"

    def __repr__(self) -> str:
        return (f"BackchannelAuthResponse(auth_req_id=[redacted], expires_at={self.expires_at!r}, "
                f"interval={self.interval!r})")

    @property
    def grant(self) -> dict[str, str]:
        """The token request's grant parameters for this request (a bearer credential)."""
        return _ciba_grant(self.auth_req_id)


def backchannel_authorize(
    endpoint: str,
    credentials: ClientCredentials,
    *,
    scope: str | Sequence[str] = "openid",
    login_hint: str | None = None,
    login_hint_token: str | None = None,
    id_token_hint: str | None = None,
    binding_message: str | None = None,
    user_code: str | None = None,
    requested_expiry: int | None = None,
    acr_values: str | Sequence[str] | None = None,
    authorization_details: Sequence[Mapping[str, Any]] | None = None,
    client_notification_token: str | None = None,
    audience: str | None = None,
    resource: str | Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
) -> Flow[BackchannelAuthResponse]:
    """Start a CIBA request (OpenID CIBA Core 7.1). Not retried once it may have been sent:
    repeating it would push a second notification to the user's device."""
    hints = [h for h in (login_hint, login_hint_token, id_token_hint) if h]
    if len(hints) != 1:
        raise ConfigurationError("CIBA needs exactly one of login_hint, login_hint_token, id_token_hint")
    scopes = scope.split() if isinstance(scope, str) else list(scope)
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    if requested_expiry is not None and (not isinstance(requested_expiry, int) or requested_expiry <= 0):
        raise ConfigurationError("requested_expiry must be a positive integer (seconds)")
    params: dict[str, Any] = {
        "scope": " ".join(scopes),
        "login_hint": login_hint,
        "login_hint_token": login_hint_token,
        "id_token_hint": id_token_hint,
        "binding_message": binding_message,
        "user_code": user_code,
        "requested_expiry": requested_expiry,
        "acr_values": acr_values if isinstance(acr_values, str) or acr_values is None else " ".join(acr_values),
        "client_notification_token": client_notification_token,
        "audience": audience,  # never sent when unset (no "audience=None")
        "resource": resource,
    }
    if authorization_details is not None:
        params["authorization_details"] = json.dumps(list(authorization_details), separators=(",", ":"))
    if extra:
        params.update({k: v for k, v in extra.items() if k not in params or params[k] is None})
    request = _post(endpoint, credentials, params, settings, assertion_audience)
    response = yield from send_with_retries(request, idempotent=False, policy=settings.retry)
    data = raise_for_error(response, what="backchannel authentication")
    auth_req_id = data.get("auth_req_id")
    if not isinstance(auth_req_id, str) or not auth_req_id:
        raise ProtocolError("backchannel authentication response has no auth_req_id")
    expires_at, interval = _pending_timing(data, "backchannel authentication", settings)
    return BackchannelAuthResponse(
        auth_req_id=auth_req_id, expires_at=expires_at,
        interval=DEFAULT_CIBA_INTERVAL if interval is None else interval,
        interval_given=interval is not None,
    )


def _pending_timing(data: Mapping[str, Any], what: str, settings: FlowSettings) -> tuple[float, float | None]:
    """When a started grant (CIBA, device code) expires, from its required ``expires_in``, and
    the poll ``interval`` it gave (``None`` when it gave no valid one)."""
    expires_in = data.get("expires_in")
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in <= 0:
        raise ProtocolError(f"{what} response has no valid expires_in")
    interval = data.get("interval")
    given = isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0
    return settings.clock() + float(expires_in), float(interval) if given else None


# --------------------------------------------------------------------------- polling a pending grant


class PendingGrant(Protocol):
    """A started grant the client polls the token endpoint for: a CIBA request
    (:class:`BackchannelAuthResponse`) or a device code (``DeviceAuthorizationResponse``)."""

    expires_at: float
    interval: float
    expired_message: ClassVar[str]

    @property
    def grant(self) -> dict[str, str]: ...


def _ciba_grant(auth_req_id: str) -> dict[str, str]:
    return {"grant_type": CIBA_GRANT, "auth_req_id": auth_req_id}


def _device_grant(device_code: str) -> dict[str, str]:
    if not device_code:
        raise ConfigurationError("poll_device needs the device_code")
    return {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code}


def _poll_grant(token_endpoint: str, credentials: ClientCredentials, grant: Mapping[str, str],
                settings: FlowSettings, assertion_audience: str | None) -> Flow[TokenResponse]:
    """One token request for a pending grant (safe to repeat: the grant is redeemed once)."""
    return (yield from token_request(token_endpoint, credentials, grant, idempotent=True, settings=settings,
                                     audience=assertion_audience))


def wait_for_grant(
    token_endpoint: str,
    credentials: ClientCredentials,
    request: PendingGrant,
    *,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
    on_wait: Callable[[float, float], None] | None = None,
    on_pending: Callable[[float], None] | None = None,
    deadline: float | None = None,
    tolerate_outages: bool = False,
    max_outage_backoff: float = 60.0,
) -> Flow[TokenResponse]:
    """Poll a started grant until the user answers: a CIBA request
    (:class:`BackchannelAuthResponse`, OpenID CIBA Core 7.3) or a device code
    (``DeviceAuthorizationResponse``, RFC 8628 §3.4-3.5). Also importable as
    ``wait_for_backchannel`` and ``wait_for_device`` (the same function).

    Waits ``interval`` before each poll, adds 5 s on ``slow_down``, stops at the request's
    expiry (``ExpiredTokenError``) or ``deadline``. ``on_wait(seconds_left,
    seconds_to_next_poll)`` is called before every wait (progress output),
    ``on_pending(seconds_left)`` after every pending answer. With ``tolerate_outages``, a
    provider that cannot be reached (network error, 5xx) does not end the wait: the flow
    backs off (doubling, up to ``max_outage_backoff``) and polls again until the request
    expires; the request is still valid at the provider.

    Example:
        >>> import httpx, time
        >>> from langchain_agent_auth.oauth import ClientCredentials, run_sync
        >>> answers = iter([httpx.Response(400, json={"error": "authorization_pending"}),
        ...                 httpx.Response(200, json={"access_token": "t", "token_type": "Bearer"})])
        >>> transport = httpx.MockTransport(lambda r: next(answers))
        >>> started = BackchannelAuthResponse(auth_req_id="r", expires_at=time.time() + 60, interval=0.01)
        >>> flow = wait_for_grant("https://idp.test/token", ClientCredentials("a", "s"), started)
        >>> with httpx.Client(transport=transport) as client:
        ...     run_sync(flow, client).token_type
        'Bearer'
    """
    return (yield from poll_until_answered(
        lambda: _poll_grant(token_endpoint, credentials, request.grant, settings, assertion_audience),
        interval=request.interval, expires_at=request.expires_at, expired=request.expired_message,
        clock=settings.clock, on_wait=on_wait, on_pending=on_pending, deadline=deadline,
        tolerate_outages=tolerate_outages, max_outage_backoff=max_outage_backoff,
    ))


wait_for_backchannel = wait_for_grant  # the CIBA name (OpenID CIBA Core 7.3)
wait_for_device = wait_for_grant  # the device grant's name (RFC 8628 §3.5)


def poll_backchannel(
    token_endpoint: str,
    credentials: ClientCredentials,
    auth_req_id: str,
    *,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
) -> Flow[TokenResponse]:
    """One CIBA token poll. Raises :class:`AuthorizationPendingError` while pending,
    :class:`SlowDownError`, :class:`AccessDeniedError`, :class:`ExpiredTokenError`... as
    the provider answers."""
    return (yield from _poll_grant(token_endpoint, credentials, _ciba_grant(auth_req_id), settings,
                                   assertion_audience))


def poll_device(
    token_endpoint: str,
    credentials: ClientCredentials,
    device_code: str,
    *,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
) -> Flow[TokenResponse]:
    """One device access token request (RFC 8628 §3.4); also importable from
    :mod:`langchain_agent_auth.oauth.device`, with the rest of the device grant."""
    return (yield from _poll_grant(token_endpoint, credentials, _device_grant(device_code), settings,
                                   assertion_audience))


# --------------------------------------------------------------------------- revocation / introspection


def revoke(
    endpoint: str,
    credentials: ClientCredentials,
    token: str,
    *,
    token_type_hint: Literal["access_token", "refresh_token"] | None = None,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
) -> Flow[None]:
    """Revoke a token (RFC 7009). A 200 means revoked or already invalid."""
    request = _post(endpoint, credentials, {"token": token, "token_type_hint": token_type_hint},
                    settings, assertion_audience)
    response = yield from send_with_retries(request, idempotent=True, policy=settings.retry)
    if response.status_code == 200:
        return None
    raise_for_error(response, what="revocation")
    raise ProtocolError(f"revocation: unexpected HTTP {response.status_code}")  # pragma: no cover


def introspect(
    endpoint: str,
    credentials: ClientCredentials,
    token: str,
    *,
    token_type_hint: str | None = None,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
) -> Flow[dict[str, Any]]:
    """Introspect a token (RFC 7662). Returns the JSON answer; ``active`` is a bool."""
    request = _post(endpoint, credentials, {"token": token, "token_type_hint": token_type_hint},
                    settings, assertion_audience)
    response = yield from send_with_retries(request, idempotent=True, policy=settings.retry)
    data = raise_for_error(response, what="introspection")
    if not isinstance(data.get("active"), bool):
        raise ProtocolError("introspection response has no boolean 'active'")
    return data
