"""Finding how an MCP server wants to be authorized (sans-I/O flows).

The MCP authorization spec (2025-06-18, 2025-11-25) makes an MCP server an OAuth resource
server. A client that gets ``401`` reads the ``WWW-Authenticate`` challenge, fetches the
server's protected resource metadata (RFC 9728: the challenge's ``resource_metadata``, else
the path-based, else the root well-known URL), checks that the metadata names *this* server
(``resource``), and then discovers the authorization server it lists (RFC 8414 and OpenID
discovery, path-aware). Servers of the 2025-03-26 revision publish no resource metadata: the
authorization server is then the MCP server's origin, and without metadata there the client
falls back to ``/authorize``, ``/token`` and ``/register`` at that origin.

Every step is a flow (see :mod:`langchain_agent_auth.oauth._flow`), so the same code runs
sync and async, inside an ``httpx.Auth``.

Example:
    >>> challenge = parse_challenge('Bearer error="insufficient_scope", scope="files:read files:write", '
    ...                             'resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"')
    >>> challenge.error, challenge.scopes
    ('insufficient_scope', ('files:read', 'files:write'))
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_agent_auth.core.errors import ConfigurationError, ProtocolError
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, send_with_retries
from langchain_agent_auth.oauth._http import USER_AGENT, describe, json_object
from langchain_agent_auth.oauth.discovery import ProviderMetadata

__all__ = [
    "BearerChallenge",
    "ProtectedResourceMetadata",
    "canonical_resource",
    "discover_authorization_server",
    "discover_resource",
    "parse_challenge",
    "require_secure",
    "resource_allowed",
]

M = TypeVar("M", bound=BaseModel)
MAX_METADATA_BYTES = 64_000
_PARAM = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class BearerChallenge:
    """A ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3, RFC 9728 §5.1)."""

    error: str | None = None
    error_description: str | None = None
    scope: str | None = None
    resource_metadata: str | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split()) if self.scope else ()


def parse_challenge(header: str | None) -> BearerChallenge:
    """The Bearer challenge in a ``WWW-Authenticate`` header (other schemes ignored).

    Example:
        >>> parse_challenge('Basic realm="x", Bearer scope="a b"').scopes
        ('a', 'b')
        >>> parse_challenge(None)
        BearerChallenge(error=None, error_description=None, scope=None, resource_metadata=None)
    """
    if not header or len(header) > 8192:
        return BearerChallenge()
    start = header.lower().find("bearer")
    if start < 0:
        return BearerChallenge()
    params: dict[str, str] = {}
    for match in _PARAM.finditer(header[start + len("bearer"):]):
        name = match.group(1).lower()
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params.setdefault(name, value.replace('\\"', '"') if value else value)
    return BearerChallenge(
        error=params.get("error"),
        error_description=params.get("error_description"),
        scope=params.get("scope"),
        resource_metadata=params.get("resource_metadata"),
    )


class ProtectedResourceMetadata(BaseModel):
    """RFC 9728 protected resource metadata (unknown fields kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    resource: str
    authorization_servers: list[str] | None = None
    scopes_supported: list[str] | None = None
    bearer_methods_supported: list[str] | None = None
    resource_name: str | None = None


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_secure(url: str, what: str) -> str:
    """``url`` if it is https (or http on a loopback host); a :class:`ConfigurationError` otherwise.

    Example:
        >>> require_secure("http://127.0.0.1:8000/mcp", "MCP server")
        'http://127.0.0.1:8000/mcp'
        >>> try:
        ...     require_secure("http://mcp.example/mcp", "MCP server")
        ... except ConfigurationError as exc:
        ...     print(str(exc)[:30])
        the MCP server URL must use ht
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise ConfigurationError(f"the {what} URL must use https (http only on a loopback host): {url[:200]}")


def canonical_resource(url: str) -> str:
    """The canonical form of a resource URL (RFC 8707 / MCP): lower-case scheme and host, no
    fragment, no query, no trailing slash on a bare origin.

    Example:
        >>> canonical_resource("HTTPS://MCP.Example.com/mcp#x")
        'https://mcp.example.com/mcp'
    """
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def resource_allowed(server_url: str, resource: str) -> bool:
    """Whether metadata naming ``resource`` may speak for ``server_url``: same origin, and the
    server's path equals or lies below the resource's path.

    Example:
        >>> resource_allowed("http://localhost:3000/mcp", "http://localhost:3000")
        True
        >>> resource_allowed("http://localhost:3000/mcp", "https://evil.example.com/mcp")
        False
    """
    want, have = urlsplit(canonical_resource(server_url)), urlsplit(canonical_resource(resource))
    if (want.scheme, want.netloc) != (have.scheme, have.netloc):
        return False
    base = have.path.rstrip("/")
    return want.path == base or want.path.startswith(base + "/") or not base


def _get(url: str, retry: RetryPolicy, timeout: float) -> Flow[httpx.Response]:
    request = httpx.Request("GET", url, headers={"accept": "application/json", "user-agent": USER_AGENT,
                                                 "mcp-protocol-version": "2025-06-18"},
                            extensions={"timeout": httpx.Timeout(timeout).as_dict()})
    response = yield from send_with_retries(request, idempotent=True, policy=retry)
    return response


def _document(response: httpx.Response, model: type[M], what: str) -> M:
    """The metadata document in ``response``, size-capped and validated as ``model``."""
    if len(response.content) > MAX_METADATA_BYTES:
        raise ProtocolError(f"{what} is too large ({len(response.content)} bytes)", status_code=response.status_code)
    data = json_object(response, what=what)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        bad = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise ProtocolError(f"{what} is malformed (fields: {bad or '?'})") from None


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme.lower(), pa.netloc.lower()) == (pb.scheme.lower(), pb.netloc.lower())


def resource_metadata_urls(server_url: str, challenge: BearerChallenge) -> list[str]:
    """Where to look for the resource metadata, in the spec's order.

    Example:
        >>> resource_metadata_urls("https://mcp.example/v1/mcp", BearerChallenge())
        ['https://mcp.example/.well-known/oauth-protected-resource/v1/mcp', 'https://mcp.example/.well-known/oauth-protected-resource']
    """
    parts = urlsplit(server_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    urls: list[str] = []
    if challenge.resource_metadata:
        urls.append(urljoin(server_url, challenge.resource_metadata))
    path = parts.path.rstrip("/")
    if path:
        urls.append(f"{origin}/.well-known/oauth-protected-resource{path}")
    urls.append(f"{origin}/.well-known/oauth-protected-resource")
    return list(dict.fromkeys(urls))


def discover_resource(
    server_url: str, challenge: BearerChallenge, *, retry: RetryPolicy | None = None, timeout: float = 10.0
) -> Flow[ProtectedResourceMetadata | None]:
    """The server's protected resource metadata, or ``None`` when it publishes none (a server
    of the 2025-03-26 revision). Raises :class:`ProtocolError` for a malformed document and
    :class:`ConfigurationError` when the document names another resource (RFC 9728 §3.3)."""
    retry = retry or RetryPolicy(attempts=2)
    for url in resource_metadata_urls(server_url, challenge):
        require_secure(url, "resource metadata")
        response = yield from _get(url, retry, timeout)
        if response.status_code in (404, 405, 410) or 300 <= response.status_code < 400:
            continue  # redirects are not followed during discovery
        if response.status_code != 200:
            raise ProtocolError(f"protected resource metadata: {describe(response)}", status_code=response.status_code)
        meta = _document(response, ProtectedResourceMetadata, "protected resource metadata")
        if not resource_allowed(server_url, meta.resource):
            raise ConfigurationError(
                f"the protected resource metadata at {url} is for {meta.resource[:200]!r}, not for the MCP "
                f"server {server_url!r}: refusing to send it a token (RFC 9728 §3.3)"
            )
        return meta
    return None


def authorization_server_urls(issuer: str) -> list[str]:
    """Metadata URLs for an authorization server, in the MCP spec's order (RFC 8414
    path insertion, OpenID path insertion, OpenID path appending).

    Example:
        >>> for url in authorization_server_urls("https://auth.example/tenant1"):
        ...     print(url)
        https://auth.example/.well-known/oauth-authorization-server/tenant1
        https://auth.example/.well-known/openid-configuration/tenant1
        https://auth.example/tenant1/.well-known/openid-configuration
    """
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


def discover_authorization_server(
    issuer: str, *, legacy_fallback: bool = False, retry: RetryPolicy | None = None, timeout: float = 10.0
) -> Flow[ProviderMetadata]:
    """The authorization server's metadata. The document must come from the issuer's origin
    and name an issuer of that origin. With ``legacy_fallback`` (2025-03-26 servers), an
    origin without metadata gets the default endpoints ``/authorize``, ``/token``,
    ``/register``."""
    require_secure(issuer, "authorization server")
    retry = retry or RetryPolicy(attempts=2)
    last: httpx.Response | None = None
    for url in authorization_server_urls(issuer):
        response = yield from _get(url, retry, timeout)
        if response.status_code in (404, 405, 410) or 300 <= response.status_code < 400:
            last = response
            continue
        if response.status_code != 200:
            raise ProtocolError(f"authorization server metadata: {describe(response)}",
                                status_code=response.status_code)
        meta = _document(response, ProviderMetadata, "authorization server metadata")
        if not _same_origin(meta.issuer, issuer):
            raise ConfigurationError(
                f"the authorization server metadata at {url} names issuer {meta.issuer[:200]!r}, "
                f"not one of {issuer!r}: refusing it (possible mix-up, RFC 8414 §3.3)"
            )
        for name in ("authorization_endpoint", "token_endpoint"):
            value = getattr(meta, name)
            if value:
                require_secure(value, name.replace("_", " "))
        return meta
    if legacy_fallback:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(issuer))
        return ProviderMetadata(issuer=origin, authorization_endpoint=f"{origin}/authorize",
                                token_endpoint=f"{origin}/token", registration_endpoint=f"{origin}/register",
                                code_challenge_methods_supported=["S256"])
    assert last is not None
    raise ProtocolError(f"no authorization server metadata for {issuer} ({describe(last)})", status_code=404)


def scopes_for(challenge: BearerChallenge, resource: ProtectedResourceMetadata | None,
               held: Sequence[str] = ()) -> list[str]:
    """The scopes to ask for (MCP scope selection): the challenge's ``scope`` first, else every
    ``scopes_supported`` of the resource; united with what the client already holds (step-up).

    Example:
        >>> scopes_for(BearerChallenge(scope="a b"), None, held=["b", "c"])
        ['b', 'c', 'a']
    """
    wanted = list(challenge.scopes) or list((resource.scopes_supported if resource else None) or [])
    return list(dict.fromkeys([*held, *wanted]))
