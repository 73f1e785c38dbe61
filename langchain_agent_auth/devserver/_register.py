"""Clients an MCP client brings itself: RFC 7591 dynamic registration and Client ID Metadata
Documents (OAuth Client ID Metadata Document draft, as the MCP authorization spec uses it).

* ``POST /register`` (RFC 7591): a public (``none``) or confidential
  (``client_secret_basic`` / ``client_secret_post``) client for the authorization code grant
  only, PKCE required, redirect URIs https or loopback http. Other grants (CIBA, token
  exchange, client credentials) stay with clients an administrator registers. At most
  :data:`MAX_DYNAMIC_CLIENTS` such clients.
* A ``client_id`` that is an https URL (or http on a loopback host, for development) names
  the client's metadata document: the provider fetches it once (no redirects, 64 KB, 5 s),
  checks that its ``client_id`` is that URL and that it asks for nothing a public client may
  not, and keeps it as a public client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
from typing import Any
from urllib.parse import SplitResult, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from langchain_agent_auth.devserver._web import BadRequest, json_error, read_json

__all__ = ["MAX_DYNAMIC_CLIENTS", "cimd_client", "register_endpoint"]

MAX_DYNAMIC_CLIENTS = 500
MAX_CIMD_BYTES = 64_000
_METHODS = ("none", "client_secret_basic", "client_secret_post")
_GRANTS = {"authorization_code", "refresh_token"}


def _loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False


def _url(value: Any, *, limit: int) -> SplitResult | None:
    """``value`` split as a URL, or None unless it is a string of at most ``limit`` characters."""
    return urlsplit(value) if isinstance(value, str) and len(value) <= limit else None


def _https_or_loopback(parts: SplitResult) -> bool:
    """https, or http on a loopback host (RFC 8252's allowance for native and dev clients)."""
    return parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))


def redirect_uri_ok(uri: Any) -> bool:
    """An https redirect URI, or http on a loopback host (RFC 8252), without a fragment.

    Example:
        >>> redirect_uri_ok("http://127.0.0.1:8976/callback"), redirect_uri_ok("http://evil.example/cb")
        (True, False)
    """
    parts = _url(uri, limit=500)
    return parts is not None and not parts.fragment and bool(parts.netloc) and _https_or_loopback(parts)


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > 10:
        raise BadRequest(400, "invalid_redirect_uri", "redirect_uris must list 1 to 10 URIs")
    if not all(redirect_uri_ok(u) for u in uris):
        raise BadRequest(400, "invalid_redirect_uri", "redirect URIs must be https, or http on a loopback host")
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in _METHODS:
        raise BadRequest(400, "invalid_client_metadata",
                         f"token_endpoint_auth_method must be one of {', '.join(_METHODS)}")
    grants = body.get("grant_types", ["authorization_code", "refresh_token"])
    if not isinstance(grants, list) or not set(grants) <= _GRANTS or "authorization_code" not in grants:
        raise BadRequest(400, "invalid_client_metadata",
                         "dynamically registered clients may use authorization_code (and refresh_token) only")
    responses = body.get("response_types", ["code"])
    if responses != ["code"]:
        raise BadRequest(400, "invalid_client_metadata", "response_types must be [\"code\"]")
    name = body.get("client_name")
    if name is not None and (not isinstance(name, str) or len(name) > 200 or not name.isprintable()):
        raise BadRequest(400, "invalid_client_metadata", "client_name must be printable text up to 200 characters")
    scope = body.get("scope")
    if scope is not None and (not isinstance(scope, str) or len(scope) > 1000):
        raise BadRequest(400, "invalid_client_metadata", "scope must be a space-separated string")
    return {"client_name": name, "redirect_uris": list(uris), "token_endpoint_auth_method": method,
            "grant_types": list(dict.fromkeys(grants)), "scope": scope}


def register_endpoint(provider: Any) -> Any:
    """The ``POST /register`` route of the main realm."""

    async def register(request: Request) -> Response:
        try:
            return await _register(request)
        except BadRequest as exc:  # RFC 7591 section 3.2.2: a JSON error body
            return json_error(exc.status, exc.error, exc.description, exc.headers)

    async def _register(request: Request) -> Response:
        body = await read_json(request)
        meta = _validate(body)

        def create() -> tuple[str | None, dict[str, Any]]:
            count = provider.store.one("SELECT COUNT(*) AS n FROM clients WHERE client_id LIKE 'dyn-%'")
            if count is not None and count["n"] >= MAX_DYNAMIC_CLIENTS:
                raise BadRequest(400, "invalid_client_metadata", "the registration limit of this provider is reached")
            client_id = "dyn-" + secrets.token_hex(8)
            secret = provider.store.add_client(client_id, realm="main", authorization_details_types=[], **meta)
            row = provider.store.get_client(client_id, "main") or {}
            row.pop("_secret_hash", None)
            return secret, row

        secret, row = await run_in_threadpool(create)
        answer = {k: row.get(k) for k in ("client_id", "client_name", "redirect_uris", "grant_types",
                                          "response_types", "token_endpoint_auth_method", "scope") if row.get(k)}
        answer["client_id_issued_at"] = provider.now()
        if secret:
            answer.update(client_secret=secret, client_secret_expires_at=0)
        return JSONResponse(answer, status_code=201, headers={"Cache-Control": "no-store"})

    return register


def is_cimd_url(client_id: Any) -> bool:
    """Whether ``client_id`` names a Client ID Metadata Document (https with a path, or http
    on a loopback host for development).

    Example:
        >>> is_cimd_url("https://agent.example/cimd.json"), is_cimd_url("agent-client")
        (True, False)
    """
    parts = _url(client_id, limit=200)
    if parts is None or parts.fragment or parts.query or parts.path in ("", "/"):
        return False
    return _https_or_loopback(parts)


def cimd_client(provider: Any, client_id: str) -> dict[str, Any] | None:
    """The metadata document ``client_id`` names, registered as a public client (or ``None``
    when it cannot be fetched or does not qualify). Blocking: call it off the event loop."""
    import httpx

    try:
        with httpx.Client(timeout=5.0, follow_redirects=False) as http, http.stream(
                "GET", client_id, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                return None
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_CIMD_BYTES:
                    return None
    except httpx.HTTPError:
        return None
    from langchain_agent_auth.core._serving import load_json_bounded

    try:
        doc = load_json_bounded(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("client_id") != client_id:
        return None
    try:
        meta = _validate({**doc, "token_endpoint_auth_method": doc.get("token_endpoint_auth_method", "none")})
    except BadRequest:
        return None
    if meta["token_endpoint_auth_method"] != "none":
        return None  # a metadata document cannot carry a shared secret
    with contextlib.suppress(ValueError):  # registered meanwhile by another request
        provider.store.add_client(client_id, realm="main", authorization_details_types=[], **meta)
    return provider.store.get_client(client_id, "main")
