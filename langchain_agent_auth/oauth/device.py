"""OAuth 2.0 Device Authorization Grant (RFC 8628), as sans-I/O flows.

For agents without a browser (a CLI, a headless worker): the agent asks the provider for a
device code and a user code, shows the user where to go and which code to type, and polls
the token endpoint until the user approved on another device.

* :func:`device_authorization`: ``POST`` to the ``device_authorization_endpoint`` (§3.1);
* :func:`poll_device`: one token request (§3.4), raising ``AuthorizationPendingError``,
  ``SlowDownError``, ``AccessDeniedError``, ``ExpiredTokenError`` as the provider answers;
* :func:`wait_for_device`: poll until answered, respecting ``interval`` and adding 5 s on
  ``slow_down`` (§3.5).

:func:`poll_device` and :func:`wait_for_device` are defined in :mod:`.flows`, with CIBA's
poll and wait: ``wait_for_device`` is :func:`~langchain_agent_auth.oauth.flows.wait_for_grant`,
which waits on any started grant; they are public here too.

``device_code`` is a bearer credential of the client: it never appears in ``repr()``; only
the user code and verification URI are meant for people.

Example:
    >>> import httpx
    >>> from langchain_agent_auth.oauth import ClientCredentials, run_sync
    >>> answer = {"device_code": "dc-secret", "user_code": "WDJB-MJHT", "expires_in": 600,
    ...           "verification_uri": "https://idp.test/device"}
    >>> transport = httpx.MockTransport(lambda r: httpx.Response(200, json=answer))
    >>> flow = device_authorization("https://idp.test/device_authorization",
    ...                             ClientCredentials("cli", auth_method="none"), scope="openid")
    >>> with httpx.Client(transport=transport) as client:
    ...     started = run_sync(flow, client)
    >>> started.user_code, started.interval, "dc-secret" in repr(started)
    ('WDJB-MJHT', 5.0, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_agent_auth.core.errors import ProtocolError
from langchain_agent_auth.oauth._flow import Flow, send_with_retries
from langchain_agent_auth.oauth._http import raise_for_error
from langchain_agent_auth.oauth.client_auth import ClientCredentials
from langchain_agent_auth.oauth.flows import (
    DEFAULT_SETTINGS,
    DEVICE_CODE_GRANT,
    FlowSettings,
    _device_grant,
    _pending_timing,
    _post,
    poll_device,
    wait_for_device,
)

__all__ = [
    "DEFAULT_DEVICE_INTERVAL",
    "DEVICE_CODE_GRANT",
    "DeviceAuthorizationResponse",
    "device_authorization",
    "poll_device",
    "wait_for_device",
]

DEFAULT_DEVICE_INTERVAL = 5.0  # RFC 8628 3.2: "If no value is provided, clients MUST use 5"


@dataclass(frozen=True, repr=False)
class DeviceAuthorizationResponse:
    """The provider's answer to a device authorization request (RFC 8628 §3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_at: float
    interval: float = DEFAULT_DEVICE_INTERVAL
    verification_uri_complete: str | None = None
    expired_message: ClassVar[str] = "the device code expired before the user answered"

    def __repr__(self) -> str:
        return (f"DeviceAuthorizationResponse(device_code=[redacted], user_code={self.user_code!r}, "
                f"verification_uri={self.verification_uri!r}, expires_at={self.expires_at!r}, "
                f"interval={self.interval!r})")

    @property
    def grant(self) -> dict[str, str]:
        """The token request's grant parameters for this device code (a bearer credential)."""
        return _device_grant(self.device_code)


def _text(data: Mapping[str, Any], name: str, limit: int = 2048) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise ProtocolError(f"device authorization response has no valid {name}")
    return value


def device_authorization(
    endpoint: str,
    credentials: ClientCredentials,
    *,
    scope: str | Sequence[str] | None = None,
    audience: str | None = None,
    resource: str | Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    settings: FlowSettings = DEFAULT_SETTINGS,
    assertion_audience: str | None = None,
) -> Flow[DeviceAuthorizationResponse]:
    """Start a device authorization (RFC 8628 §3.1). Not retried once it may have been
    sent: a second request would show the user a second code."""
    scopes = scope.split() if isinstance(scope, str) else list(scope or [])
    params: dict[str, Any] = {"scope": " ".join(scopes) or None, "audience": audience, "resource": resource}
    if extra:
        params.update({k: v for k, v in extra.items() if params.get(k) is None})
    request = _post(endpoint, credentials, params, settings, assertion_audience)
    response = yield from send_with_retries(request, idempotent=False, policy=settings.retry)
    data = raise_for_error(response, what="device authorization")
    device_code = _text(data, "device_code", 4096)
    user_code = _text(data, "user_code", 64)
    uri = data.get("verification_uri") or data.get("verification_url")  # some providers spell it _url
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise ProtocolError("device authorization response has no valid verification_uri")
    complete = data.get("verification_uri_complete")
    expires_at, interval = _pending_timing(data, "device authorization", settings)
    return DeviceAuthorizationResponse(
        device_code=device_code, user_code=user_code, verification_uri=uri,
        verification_uri_complete=complete if isinstance(complete, str) and complete.startswith(uri[:8]) else None,
        expires_at=expires_at, interval=DEFAULT_DEVICE_INTERVAL if interval is None else interval,
    )
