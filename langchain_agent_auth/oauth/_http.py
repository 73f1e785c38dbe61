"""Reading server answers: JSON bodies, OAuth error responses, size limits."""

from __future__ import annotations

import json
from typing import Any

import httpx

from langchain_agent_auth.core._http import USER_AGENT
from langchain_agent_auth.core.errors import (
    InvalidClientError,
    InvalidTokenError,
    OAuthError,
    ProtocolError,
    ProviderUnavailableError,
    oauth_error_from_response,
)

MAX_RESPONSE_BYTES = 1_000_000


def where(url: httpx.URL) -> str:
    """``scheme://host[:port]/path`` of ``url`` for a message: the port kept, no query."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def describe(response: httpx.Response) -> str:
    req = response.request
    return f"{req.method} {where(req.url)} -> HTTP {response.status_code}"


def json_object(response: httpx.Response, *, what: str) -> dict[str, Any]:
    """The response body as a JSON object, or a :class:`ProtocolError` saying why not."""
    body = response.content
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProtocolError(f"{what}: response too large ({len(body)} bytes)", status_code=response.status_code)
    if not body.strip():
        raise ProtocolError(f"{what}: empty response body ({describe(response)})", status_code=response.status_code)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        ctype = response.headers.get("content-type", "?").split(";")[0]
        raise ProtocolError(
            f"{what}: expected JSON, got {ctype} ({describe(response)})", status_code=response.status_code
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}",
                            status_code=response.status_code)
    return data


def raise_for_error(response: httpx.Response, *, what: str) -> dict[str, Any]:
    """Return the JSON body of a successful answer; raise the matching typed error otherwise.

    * 2xx with a JSON object: returned.
    * 4xx/5xx with a JSON ``error``: the :class:`OAuthError` subclass for that code.
    * 401 without a body: :class:`InvalidClientError` (token endpoints answer so).
    * 5xx without an error body: :class:`ProviderUnavailableError`.
    * anything else (HTML, empty, non-JSON): :class:`ProtocolError`.
    """
    status = response.status_code
    if 200 <= status < 300:
        return json_object(response, what=what)
    data: dict[str, Any] | None
    try:
        data = json_object(response, what=what)
    except ProtocolError:
        data = None
    if data is not None and isinstance(data.get("error"), str):
        raise oauth_error_from_response(data, status_code=status)
    www = response.headers.get("www-authenticate", "")
    if status == 401:
        if 'error="invalid_token"' in www:
            raise InvalidTokenError("the bearer token was rejected", status_code=status)
        raise InvalidClientError("client authentication failed", status_code=status)
    if status >= 500:
        raise ProviderUnavailableError(f"{what}: {describe(response)}", status_code=status,
                                       hint="The identity provider is having trouble; try again shortly.")
    raise ProtocolError(f"{what}: unexpected answer ({describe(response)})", status_code=status)


__all__ = ["MAX_RESPONSE_BYTES", "USER_AGENT", "OAuthError", "describe", "json_object", "raise_for_error"]
