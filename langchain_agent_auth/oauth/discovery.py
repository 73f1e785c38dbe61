"""OpenID Connect discovery and RFC 8414 authorization server metadata.

Example:
    >>> import httpx
    >>> doc = {"issuer": "https://idp.test", "token_endpoint": "https://idp.test/token",
    ...        "jwks_uri": "https://idp.test/jwks"}
    >>> transport = httpx.MockTransport(lambda r: httpx.Response(200, json=doc))
    >>> with httpx.Client(transport=transport) as client:
    ...     meta = run_sync(discover("https://idp.test"), client)
    >>> meta.token_endpoint
    'https://idp.test/token'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_agent_auth.core.errors import ConfigurationError, ProtocolError, ProviderUnavailableError
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, run_async, run_sync, send_with_retries
from langchain_agent_auth.oauth._http import USER_AGENT, describe, json_object

__all__ = ["MetadataCache", "ProviderMetadata", "discover", "metadata_urls"]


class ProviderMetadata(BaseModel):
    """What a provider says about itself (OpenID discovery / RFC 8414), unknown fields kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    issuer: str
    token_endpoint: str | None = None
    authorization_endpoint: str | None = None
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    backchannel_authentication_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    grant_types_supported: list[str] | None = None
    scopes_supported: list[str] | None = None
    token_endpoint_auth_methods_supported: list[str] | None = None
    backchannel_token_delivery_modes_supported: list[str] | None = None
    backchannel_user_code_parameter_supported: bool | None = None
    authorization_details_types_supported: list[str] | None = None
    code_challenge_methods_supported: list[str] | None = None
    id_token_signing_alg_values_supported: list[str] | None = None

    def require(self, field: str) -> str:
        """The endpoint ``field``, or a :class:`ConfigurationError` naming what is missing."""
        value = getattr(self, field, None)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"the provider {self.issuer} does not advertise {field} in its metadata"
            )
        return value


def metadata_urls(issuer: str) -> list[str]:
    """Where to look for metadata: OpenID discovery first, then RFC 8414 (path-aware)."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"issuer must be an absolute http(s) URL, got {issuer!r}")
    base = issuer.rstrip("/")
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    urls = [f"{base}/.well-known/openid-configuration"]
    urls.append(f"{origin}/.well-known/oauth-authorization-server{path}")
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
    return urls


def _same_issuer(configured: str, advertised: str) -> bool:
    # Exact match as the specs require; a trailing slash difference is tolerated because
    # users write issuers both ways (Auth0's has one).
    return configured == advertised or configured.rstrip("/") == advertised.rstrip("/")


def discover(
    issuer: str,
    *,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
) -> Flow[ProviderMetadata]:
    """Fetch and validate the provider's metadata (a flow: run it with a driver)."""
    retry = retry or RetryPolicy()
    last: httpx.Response | None = None
    for url in metadata_urls(issuer):
        request = httpx.Request(
            "GET", url, headers={"accept": "application/json", "user-agent": USER_AGENT},
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        response = yield from send_with_retries(request, idempotent=True, policy=retry)
        if response.status_code == 404:
            last = response
            continue
        if response.status_code >= 500:
            raise ProviderUnavailableError(f"discovery failed: {describe(response)}", status_code=response.status_code)
        if response.status_code != 200:
            raise ProtocolError(f"discovery failed: {describe(response)}", status_code=response.status_code)
        data = json_object(response, what="discovery")
        try:
            meta = ProviderMetadata.model_validate(data)
        except ValidationError as exc:
            bad = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            raise ProtocolError(f"discovery document is malformed (fields: {bad or '?'})") from None
        if not _same_issuer(issuer, meta.issuer):
            raise ConfigurationError(
                f"the discovery document at {url} names issuer {meta.issuer!r}, "
                f"not the configured {issuer!r}; refusing it (possible mix-up or misconfiguration)"
            )
        return meta
    assert last is not None
    raise ProtocolError(f"no metadata found for issuer {issuer} ({describe(last)})", status_code=404)


class MetadataCache:
    """Provider metadata cached per issuer for ``ttl`` seconds (shared by sync and async).

    Example:
        >>> cache = MetadataCache(ttl=300)
        >>> cache.put(ProviderMetadata(issuer="https://a.test"))
        >>> cache.get("https://a.test").issuer
        'https://a.test'
    """

    def __init__(self, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, tuple[float, ProviderMetadata]] = {}
        self._lock = threading.Lock()

    def get(self, issuer: str) -> ProviderMetadata | None:
        with self._lock:
            item = self._items.get(issuer)
            if item is None or self._clock() - item[0] > self.ttl:
                return None
            return item[1]

    def put(self, meta: ProviderMetadata, issuer: str | None = None) -> None:
        with self._lock:
            self._items[issuer or meta.issuer] = (self._clock(), meta)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def cached(self, issuer: str, **kwargs: Any) -> Flow[ProviderMetadata]:
        """Cached metadata, discovered (``kwargs``: :func:`discover`'s) when missing or stale."""
        meta = self.get(issuer)
        if meta is None:
            meta = yield from discover(issuer, **kwargs)
            self.put(meta, issuer)
        return meta

    def fetch(self, issuer: str, client: httpx.Client, **kwargs: Any) -> ProviderMetadata:
        """Cached metadata, discovering it with ``client`` when missing or stale."""
        return run_sync(self.cached(issuer, **kwargs), client)

    async def afetch(self, issuer: str, client: httpx.AsyncClient, **kwargs: Any) -> ProviderMetadata:
        """Async :meth:`fetch`."""
        return await run_async(self.cached(issuer, **kwargs), client)
