"""``OAuthClient``: one OpenID provider, every grant this toolkit needs, sync and async.

Each method builds a flow from :mod:`.flows` (discovery composed in with ``yield from``)
and runs it with the sync or the async driver; the pair differ only by ``await``.

Example:
    >>> import httpx
    >>> def provider(request):
    ...     if request.url.path.endswith("openid-configuration"):
    ...         return httpx.Response(200, json={"issuer": "https://idp.test",
    ...                                          "token_endpoint": "https://idp.test/token"})
    ...     return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
    >>> http = httpx.Client(transport=httpx.MockTransport(provider))
    >>> client = OAuthClient("https://idp.test", "agent", "secret", http_client=http)
    >>> client.client_credentials(scope="api:read").token_type
    'Bearer'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from langchain_agent_auth.core._http import HTTPClients
from langchain_agent_auth.core.errors import ConfigurationError
from langchain_agent_auth.oauth import device as D
from langchain_agent_auth.oauth import flows as F
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, run_async, run_sync
from langchain_agent_auth.oauth.client_auth import AuthMethod, ClientCredentials
from langchain_agent_auth.oauth.discovery import MetadataCache, ProviderMetadata, discover
from langchain_agent_auth.oauth.profiles import AUTH0, AUTH0_TOKEN_VAULT
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = ["OAuthClient", "Pkce"]

T = TypeVar("T")


class Pkce:
    """A PKCE verifier and its S256 challenge (RFC 7636).

    Example:
        >>> p = Pkce.generate()
        >>> len(p.verifier) >= 43 and p.method
        'S256'
    """

    __slots__ = ("challenge", "method", "verifier")

    def __init__(self, verifier: str) -> None:
        if not 43 <= len(verifier) <= 128:
            raise ConfigurationError("a PKCE code_verifier must be 43 to 128 characters")
        self.verifier = verifier
        self.challenge = create_s256_code_challenge(verifier)
        self.method = "S256"

    @classmethod
    def generate(cls) -> Pkce:
        return cls(generate_token(64))

    def __repr__(self) -> str:
        return "Pkce(verifier=[redacted], method='S256')"


class OAuthClient:
    """A client of one OpenID provider found by discovery.

    Args:
        issuer: the provider's issuer URL.
        client_id / client_secret / auth_method / private_key: the agent's client
            registration (or pass ``credentials``).
        metadata: skip discovery and use this metadata (dict or ``ProviderMetadata``).
        metadata_overrides: endpoints to set or replace after discovery (profiles use
            this, e.g. Auth0's ``/bc-authorize``).
        timeout: seconds per request. retry: backoff policy for safe requests.
        http_client / async_http_client: clients to use (else owned ones are created).
    """

    def __init__(
        self,
        issuer: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        auth_method: AuthMethod = "client_secret_basic",
        private_key: Any = None,
        credentials: ClientCredentials | None = None,
        metadata: ProviderMetadata | Mapping[str, Any] | None = None,
        metadata_overrides: Mapping[str, Any] | None = None,
        metadata_ttl: float = 3600.0,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(issuer, str) or urlsplit(issuer).scheme not in ("http", "https"):
            raise ConfigurationError(f"issuer must be an http(s) URL, got {issuer!r}")
        if credentials is None:
            if client_id is None:
                raise ConfigurationError("OAuthClient needs client_id (or credentials)")
            credentials = ClientCredentials(
                client_id, client_secret, auth_method=auth_method, private_key=private_key
            )
        self.issuer = issuer
        self.credentials = credentials
        self.settings = F.FlowSettings(timeout=timeout, retry=retry or RetryPolicy(), clock=clock)
        self._overrides = dict(metadata_overrides or {})
        self._cache = MetadataCache(ttl=metadata_ttl)
        if metadata is not None:
            meta = metadata if isinstance(metadata, ProviderMetadata) else ProviderMetadata.model_validate(metadata)
            self._cache = MetadataCache(ttl=float("inf"))
            self._cache.put(self._apply_overrides(meta), issuer)
        self._http = HTTPClients(http_client, async_http_client, timeout)

    @property
    def client_id(self) -> str:
        return self.credentials.client_id

    def __repr__(self) -> str:
        return f"OAuthClient(issuer={self.issuer!r}, client_id={self.client_id!r})"

    # -- plumbing

    def _apply_overrides(self, meta: ProviderMetadata) -> ProviderMetadata:
        if not self._overrides:
            return meta
        return ProviderMetadata.model_validate({**meta.model_dump(exclude_none=True), **self._overrides})

    def metadata_flow(self) -> Flow[ProviderMetadata]:
        """The provider metadata (cached; discovery on a miss)."""
        meta = self._cache.get(self.issuer)
        if meta is None:
            meta = yield from discover(self.issuer, timeout=self.settings.timeout, retry=self.settings.retry)
            meta = self._apply_overrides(meta)
            self._cache.put(meta, self.issuer)
        return meta

    def _with_meta(self, make: Callable[[ProviderMetadata], Flow[T]]) -> Flow[T]:
        meta = yield from self.metadata_flow()
        return (yield from make(meta))

    def run(self, flow: Flow[T]) -> T:
        """Run any flow with this client's sync HTTP client."""
        return run_sync(flow, self._http.sync)

    async def arun(self, flow: Flow[T]) -> T:
        """Run any flow with this client's async HTTP client."""
        return await run_async(flow, self._http.async_)

    def close(self) -> None:
        self._http.close()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __enter__(self) -> OAuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> OAuthClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- metadata

    def metadata(self) -> ProviderMetadata:
        """The provider's metadata (discovery, cached with a TTL)."""
        return self.run(self.metadata_flow())

    async def ametadata(self) -> ProviderMetadata:
        """Async :meth:`metadata`."""
        return await self.arun(self.metadata_flow())

    # -- generic grant

    def grant_flow(self, params: Mapping[str, Any], *, idempotent: bool = True) -> Flow[TokenResponse]:
        """Any grant at the token endpoint, as a flow."""
        return self._with_meta(lambda m: F.token_request(
            m.require("token_endpoint"), self.credentials, params,
            idempotent=idempotent, settings=self.settings, audience=m.issuer,
        ))

    def grant(self, grant_type: str, *, idempotent: bool = True, **params: Any) -> TokenResponse:
        """Any grant type: ``grant("urn:...", foo="bar")``."""
        return self.run(self.grant_flow({"grant_type": grant_type, **params}, idempotent=idempotent))

    async def agrant(self, grant_type: str, *, idempotent: bool = True, **params: Any) -> TokenResponse:
        """Async :meth:`grant`."""
        return await self.arun(self.grant_flow({"grant_type": grant_type, **params}, idempotent=idempotent))

    # -- client credentials / refresh

    @staticmethod
    def _scope(scope: str | Sequence[str] | None) -> str | None:
        if scope is None:
            return None
        return scope if isinstance(scope, str) else " ".join(scope)

    def _cc_params(self, scope: Any, resource: Any, audience: str | None, extra: Mapping[str, Any]) -> dict:
        return {"grant_type": "client_credentials", "scope": self._scope(scope), "resource": resource,
                "audience": audience, **extra}

    def client_credentials(
        self, *, scope: str | Sequence[str] | None = None, resource: str | Sequence[str] | None = None,
        audience: str | None = None, **extra: Any,
    ) -> TokenResponse:
        """A token for the agent itself (client_credentials grant)."""
        return self.run(self.grant_flow(self._cc_params(scope, resource, audience, extra)))

    async def aclient_credentials(
        self, *, scope: str | Sequence[str] | None = None, resource: str | Sequence[str] | None = None,
        audience: str | None = None, **extra: Any,
    ) -> TokenResponse:
        """Async :meth:`client_credentials`."""
        return await self.arun(self.grant_flow(self._cc_params(scope, resource, audience, extra)))

    def refresh_flow(self, refresh_token: str, *, scope: str | Sequence[str] | None = None,
                     **extra: Any) -> Flow[TokenResponse]:
        """Refresh, as a flow. Not repeated once sent: rotating refresh tokens are single-use."""
        if not refresh_token:
            raise ConfigurationError("refresh() needs a refresh token")
        params = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                  "scope": self._scope(scope), **extra}
        return self.grant_flow(params, idempotent=False)

    def refresh(self, refresh_token: str, *, scope: str | Sequence[str] | None = None,
                **extra: Any) -> TokenResponse:
        """Exchange a refresh token for new tokens (keep the new refresh token if rotated)."""
        return self.run(self.refresh_flow(refresh_token, scope=scope, **extra))

    async def arefresh(self, refresh_token: str, *, scope: str | Sequence[str] | None = None,
                       **extra: Any) -> TokenResponse:
        """Async :meth:`refresh`."""
        return await self.arun(self.refresh_flow(refresh_token, scope=scope, **extra))

    # -- authorization code + PKCE

    def authorization_url_flow(
        self, redirect_uri: str, *, state: str, pkce: Pkce, scope: str | Sequence[str] | None = None,
        nonce: str | None = None, resource: str | Sequence[str] | None = None, audience: str | None = None,
        prompt: str | None = None, login_hint: str | None = None, extra: Mapping[str, Any] | None = None,
    ) -> Flow[str]:
        """The authorization URL to send the user to, as a flow (needs discovery)."""
        meta = yield from self.metadata_flow()
        endpoint = meta.require("authorization_endpoint")
        params = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "scope": self._scope(scope), "state": state, "nonce": nonce,
            "code_challenge": pkce.challenge, "code_challenge_method": pkce.method,
            "resource": resource, "audience": audience, "prompt": prompt, "login_hint": login_hint,
            **(extra or {}),
        }
        pairs: list[tuple[str, str]] = []
        for k, v in params.items():
            if v is None:
                continue
            pairs.extend((k, str(x)) for x in v) if isinstance(v, (list, tuple)) else pairs.append((k, str(v)))
        sep = "&" if "?" in endpoint else "?"
        return f"{endpoint}{sep}{urlencode(pairs)}"

    def authorization_url(self, redirect_uri: str, **kwargs: Any) -> str:
        """Build the authorization URL (auth code + PKCE). See :meth:`authorization_url_flow`."""
        return self.run(self.authorization_url_flow(redirect_uri, **kwargs))

    async def aauthorization_url(self, redirect_uri: str, **kwargs: Any) -> str:
        """Async :meth:`authorization_url`."""
        return await self.arun(self.authorization_url_flow(redirect_uri, **kwargs))

    def _code_params(self, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        if not code or not isinstance(code, str):
            raise ConfigurationError("exchange_code() needs the authorization code")
        return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier, "client_id": self.client_id
                if self.credentials.auth_method == "none" else None}

    def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenResponse:
        """Redeem an authorization code (single-use: never retried once sent)."""
        return self.run(self.grant_flow(self._code_params(code, redirect_uri, code_verifier), idempotent=False))

    async def aexchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenResponse:
        """Async :meth:`exchange_code`."""
        return await self.arun(
            self.grant_flow(self._code_params(code, redirect_uri, code_verifier), idempotent=False)
        )

    # -- CIBA

    def ciba_authorize_flow(self, **kwargs: Any) -> Flow[F.BackchannelAuthResponse]:
        """Start a CIBA request, as a flow. Arguments as :func:`flows.backchannel_authorize`."""
        def make(meta: ProviderMetadata) -> Flow[F.BackchannelAuthResponse]:
            endpoint = meta.require("backchannel_authentication_endpoint")
            return F.backchannel_authorize(endpoint, self.credentials, settings=self.settings,
                                           assertion_audience=meta.issuer, **kwargs)
        return self._with_meta(make)

    def ciba_authorize(self, **kwargs: Any) -> F.BackchannelAuthResponse:
        """Start a CIBA request: a push to the user's device (login_hint, binding_message,
        scope, authorization_details, requested_expiry...)."""
        return self.run(self.ciba_authorize_flow(**kwargs))

    async def aciba_authorize(self, **kwargs: Any) -> F.BackchannelAuthResponse:
        """Async :meth:`ciba_authorize`."""
        return await self.arun(self.ciba_authorize_flow(**kwargs))

    def ciba_poll_flow(self, auth_req_id: str) -> Flow[TokenResponse]:
        """One CIBA poll, as a flow."""
        return self._with_meta(lambda m: F.poll_backchannel(
            m.require("token_endpoint"), self.credentials, auth_req_id,
            settings=self.settings, assertion_audience=m.issuer,
        ))

    def ciba_poll(self, auth_req_id: str) -> TokenResponse:
        """Poll once: a token, or ``AuthorizationPendingError`` / ``SlowDownError`` /
        ``AccessDeniedError`` / ``ExpiredTokenError`` / ``TransactionFailedError``..."""
        return self.run(self.ciba_poll_flow(auth_req_id))

    async def aciba_poll(self, auth_req_id: str) -> TokenResponse:
        """Async :meth:`ciba_poll`."""
        return await self.arun(self.ciba_poll_flow(auth_req_id))

    def ciba_wait_flow(self, request: F.BackchannelAuthResponse, **kwargs: Any) -> Flow[TokenResponse]:
        """Poll until answered, as a flow (interval and slow_down respected)."""
        return self._with_meta(lambda m: F.wait_for_backchannel(
            m.require("token_endpoint"), self.credentials, request,
            settings=self.settings, assertion_audience=m.issuer, **kwargs,
        ))

    def ciba_wait(self, request: F.BackchannelAuthResponse, **kwargs: Any) -> TokenResponse:
        """Block until the user answers (``on_pending``, ``deadline`` optional)."""
        return self.run(self.ciba_wait_flow(request, **kwargs))

    async def aciba_wait(self, request: F.BackchannelAuthResponse, **kwargs: Any) -> TokenResponse:
        """Async :meth:`ciba_wait`; sleeps with ``asyncio.sleep``."""
        return await self.arun(self.ciba_wait_flow(request, **kwargs))

    # -- device authorization (RFC 8628)

    def device_authorize_flow(self, **kwargs: Any) -> Flow[D.DeviceAuthorizationResponse]:
        """Start a device authorization, as a flow. Arguments as :func:`device.device_authorization`."""
        return self._with_meta(lambda m: D.device_authorization(
            m.require("device_authorization_endpoint"), self.credentials, settings=self.settings,
            assertion_audience=m.issuer, **kwargs))

    def device_authorize(self, **kwargs: Any) -> D.DeviceAuthorizationResponse:
        """Start a device authorization (RFC 8628): a user code and where to type it."""
        return self.run(self.device_authorize_flow(**kwargs))

    async def adevice_authorize(self, **kwargs: Any) -> D.DeviceAuthorizationResponse:
        """Async :meth:`device_authorize`."""
        return await self.arun(self.device_authorize_flow(**kwargs))

    def device_poll_flow(self, device_code: str) -> Flow[TokenResponse]:
        """One device token poll, as a flow."""
        return self._with_meta(lambda m: D.poll_device(
            m.require("token_endpoint"), self.credentials, device_code, settings=self.settings,
            assertion_audience=m.issuer))

    def device_poll(self, device_code: str) -> TokenResponse:
        """Poll once: tokens, or ``AuthorizationPendingError`` / ``SlowDownError`` /
        ``AccessDeniedError`` / ``ExpiredTokenError``."""
        return self.run(self.device_poll_flow(device_code))

    async def adevice_poll(self, device_code: str) -> TokenResponse:
        """Async :meth:`device_poll`."""
        return await self.arun(self.device_poll_flow(device_code))

    def device_wait_flow(self, request: D.DeviceAuthorizationResponse, **kwargs: Any) -> Flow[TokenResponse]:
        """Poll until the user answered, as a flow (interval and slow_down respected)."""
        return self._with_meta(lambda m: D.wait_for_device(
            m.require("token_endpoint"), self.credentials, request, settings=self.settings,
            assertion_audience=m.issuer, **kwargs))

    def device_wait(self, request: D.DeviceAuthorizationResponse, **kwargs: Any) -> TokenResponse:
        """Block until the user answered (``on_wait``, ``deadline`` optional)."""
        return self.run(self.device_wait_flow(request, **kwargs))

    async def adevice_wait(self, request: D.DeviceAuthorizationResponse, **kwargs: Any) -> TokenResponse:
        """Async :meth:`device_wait`; sleeps with ``asyncio.sleep``."""
        return await self.arun(self.device_wait_flow(request, **kwargs))

    # -- token exchange

    def token_exchange_flow(
        self, subject_token: str, subject_token_type: str = F.TOKEN_TYPE_ACCESS, *,
        audience: str | Sequence[str] | None = None, resource: str | Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None, actor_token: str | None = None,
        actor_token_type: str | None = None, requested_token_type: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Flow[TokenResponse]:
        """RFC 8693 token exchange, as a flow."""
        if not subject_token:
            raise ConfigurationError("token exchange needs a subject_token")
        if (actor_token is None) != (actor_token_type is None):
            raise ConfigurationError("actor_token and actor_token_type go together")
        params = {
            "grant_type": F.TOKEN_EXCHANGE_GRANT, "subject_token": subject_token,
            "subject_token_type": subject_token_type, "audience": audience, "resource": resource,
            "scope": self._scope(scope), "actor_token": actor_token, "actor_token_type": actor_token_type,
            "requested_token_type": requested_token_type, **(extra or {}),
        }
        return self.grant_flow(params, idempotent=True)

    def token_exchange(self, subject_token: str, subject_token_type: str = F.TOKEN_TYPE_ACCESS,
                       **kwargs: Any) -> TokenResponse:
        """RFC 8693: trade the user's token for one for another audience/resource/scope."""
        return self.run(self.token_exchange_flow(subject_token, subject_token_type, **kwargs))

    async def atoken_exchange(self, subject_token: str, subject_token_type: str = F.TOKEN_TYPE_ACCESS,
                              **kwargs: Any) -> TokenResponse:
        """Async :meth:`token_exchange`."""
        return await self.arun(self.token_exchange_flow(subject_token, subject_token_type, **kwargs))

    def federated_exchange_flow(
        self, subject_token: str, *, connection: str,
        subject_token_type: Literal["refresh_token", "access_token"] = "refresh_token",
        login_hint: str | None = None, scope: str | Sequence[str] | None = None,
    ) -> Flow[TokenResponse]:
        """Auth0 Token Vault's federated-connection exchange, as a flow."""
        if not connection:
            raise ConfigurationError("the federated exchange needs a connection name")
        params = AUTH0_TOKEN_VAULT.params(subject_token, subject_token_type, connection, login_hint=login_hint,
                                          scope=self._scope(scope))
        if not subject_token:
            raise ConfigurationError("the federated exchange needs the user's token")
        return self.grant_flow(params, idempotent=True)

    def federated_exchange(self, subject_token: str, *, connection: str, **kwargs: Any) -> TokenResponse:
        """Auth0 Token Vault: the upstream access token of ``connection`` for the user."""
        return self.run(self.federated_exchange_flow(subject_token, connection=connection, **kwargs))

    async def afederated_exchange(self, subject_token: str, *, connection: str, **kwargs: Any) -> TokenResponse:
        """Async :meth:`federated_exchange`."""
        return await self.arun(self.federated_exchange_flow(subject_token, connection=connection, **kwargs))

    # -- revocation / introspection

    def revoke_flow(self, token: str, *, token_type_hint: Any = None) -> Flow[None]:
        return self._with_meta(lambda m: F.revoke(
            m.require("revocation_endpoint"), self.credentials, token, token_type_hint=token_type_hint,
            settings=self.settings, assertion_audience=m.issuer,
        ))

    def revoke(self, token: str, *, token_type_hint: Any = None) -> None:
        """Revoke a token (RFC 7009)."""
        self.run(self.revoke_flow(token, token_type_hint=token_type_hint))

    async def arevoke(self, token: str, *, token_type_hint: Any = None) -> None:
        """Async :meth:`revoke`."""
        await self.arun(self.revoke_flow(token, token_type_hint=token_type_hint))

    def introspect_flow(self, token: str, *, token_type_hint: str | None = None) -> Flow[dict[str, Any]]:
        return self._with_meta(lambda m: F.introspect(
            m.require("introspection_endpoint"), self.credentials, token, token_type_hint=token_type_hint,
            settings=self.settings, assertion_audience=m.issuer,
        ))

    def introspect(self, token: str, *, token_type_hint: str | None = None) -> dict[str, Any]:
        """Introspect a token (RFC 7662)."""
        return self.run(self.introspect_flow(token, token_type_hint=token_type_hint))

    async def aintrospect(self, token: str, *, token_type_hint: str | None = None) -> dict[str, Any]:
        """Async :meth:`introspect`."""
        return await self.arun(self.introspect_flow(token, token_type_hint=token_type_hint))

    # -- profiles

    @classmethod
    def for_auth0(cls, domain: str, client_id: str, client_secret: str | None = None, **kwargs: Any) -> OAuthClient:
        """A client for an Auth0 tenant (``domain`` like ``tenant.us.auth0.com``).

        Auth0's CIBA endpoint is ``/bc-authorize``; it is set when discovery omits it.

        Example:
            >>> OAuthClient.for_auth0("t.auth0.com", "id", "secret").issuer
            'https://t.auth0.com/'
        """
        issuer = AUTH0.issuer_for(domain)
        overrides = {**AUTH0.metadata_overrides(issuer), **kwargs.pop("metadata_overrides", {})}
        return cls(issuer, client_id, client_secret, metadata_overrides=overrides, **kwargs)
