"""How an MCP client gets a client identity at an authorization server it has no registration
with: RFC 7591 dynamic client registration, as a sans-I/O flow of the core effect runtime
(see :mod:`langchain_agent_auth.core.effects`), and the token endpoint auth method to use.

Example:
    >>> pick_auth_method(["client_secret_post"], has_secret=True), pick_auth_method([], has_secret=False)
    ('client_secret_post', 'none')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from langchain_agent_auth.core.errors import AgentAuthError, ProtocolError, oauth_error_from_response
from langchain_agent_auth.mcp._discovery import require_secure
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, send_with_retries
from langchain_agent_auth.oauth._http import USER_AGENT, json_object
from langchain_agent_auth.oauth.client_auth import AuthMethod, ClientCredentials

__all__ = ["pick_auth_method", "register_client"]


def register_client(endpoint: str, *, client_name: str, redirect_uri: str, supported: Sequence[str],
                    policy: RetryPolicy) -> Flow[ClientCredentials]:
    """Register this agent at ``endpoint`` (RFC 7591); the client it was given. A registration
    is not repeated on a network error (it may have been processed)."""
    require_secure(endpoint, "registration endpoint")
    wanted = next((m for m in supported if m in ("none", "client_secret_basic", "client_secret_post")),
                  "client_secret_basic")
    body = {
        "client_name": client_name, "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": wanted,
    }
    request = httpx.Request("POST", endpoint, json=body, headers={"accept": "application/json",
                                                                  "user-agent": USER_AGENT})
    response = yield from send_with_retries(request, idempotent=False, policy=policy)
    if response.status_code not in (200, 201):
        data = _maybe_json(response)
        if isinstance(data.get("error"), str):
            raise oauth_error_from_response(data, status_code=response.status_code)
        raise ProtocolError(f"dynamic client registration failed: HTTP {response.status_code}",
                            status_code=response.status_code)
    data = json_object(response, what="client registration")
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ProtocolError("client registration answered without a client_id")
    secret = data.get("client_secret") if isinstance(data.get("client_secret"), str) else None
    method = data.get("token_endpoint_auth_method")
    if method not in ("none", "client_secret_basic", "client_secret_post"):
        method = pick_auth_method(supported, bool(secret))
    if method != "none" and not secret:
        method = "none"
    return ClientCredentials(client_id, secret, method)


def pick_auth_method(supported: Sequence[str], has_secret: bool) -> AuthMethod:
    """The auth method for a client with (or without) a secret, among those ``supported``."""
    if not has_secret:
        return "none"
    for method in ("client_secret_basic", "client_secret_post"):
        if method in supported:
            return method  # type: ignore[return-value]
    return "client_secret_basic"


def _maybe_json(response: httpx.Response) -> dict[str, Any]:
    try:
        return json_object(response, what="registration")
    except (ProtocolError, AgentAuthError):
        return {}

