"""The OAuth vocabulary of the local provider: error classes, the request authlib sees, the
client / user / code / stored-token models, client authentication methods and lifetimes.

:class:`OAuthRequest` is built from a Starlette request read up front (authlib has no
Starlette integration); every other devserver module speaks in these types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oidc.core.models import AuthorizationCodeMixin
from starlette.datastructures import Headers

from langchain_agent_auth.devserver._util import (
    join_scope,
    printable_ascii,
    same_uri_ignoring_loopback_port,
    secret_matches,
    split_scope,
)

if TYPE_CHECKING:
    pass


AUTH_SECRET = ["client_secret_basic", "client_secret_post"]
AUTH_CONFIDENTIAL = [*AUTH_SECRET, "private_key_jwt"]
AUTH_ALL = [*AUTH_CONFIDENTIAL, "none"]

ACCESS_TOKEN_TTL = 600
REFRESH_TOKEN_TTL = 30 * 24 * 3600
AUTH_CODE_TTL = 60
UPSTREAM_ACCESS_TTL = 3600
PURGE_EVERY = 500  # tokens issued between two purges of expired rows


# ---------------------------------------------------------------------------- errors
def oauth_error(cls: type[OAuth2Error], description: str, **kwargs: Any) -> OAuth2Error:
    """Build an authlib error with a description made safe for the spec's charset."""
    return cls(printable_ascii(description), **kwargs)


class _CodeError(OAuth2Error):
    def __init__(self, description: str | None = None, status_code: int | None = None, **kw: Any) -> None:
        super().__init__(printable_ascii(description) if description else None, status_code=status_code, **kw)


class InvalidTargetError(_CodeError):
    error = "invalid_target"


class InvalidAuthorizationDetailsError(_CodeError):
    error = "invalid_authorization_details"


class AuthorizationPendingError(_CodeError):
    error = "authorization_pending"


class SlowDownError(_CodeError):
    error = "slow_down"


class ExpiredTokenError(_CodeError):
    error = "expired_token"


class AccessDeniedError(_CodeError):
    error = "access_denied"


class UnknownUserIdError(_CodeError):
    error = "unknown_user_id"


class InvalidBindingMessageError(_CodeError):
    error = "invalid_binding_message"


class UnauthorizedClientError(_CodeError):
    error = "unauthorized_client"


class TemporarilyUnavailableError(_CodeError):
    error = "temporarily_unavailable"
    status_code = 503


class FederatedTokenNotFoundError(_CodeError):
    error = "federated_connection_refresh_token_not_found"
    status_code = 401


# ---------------------------------------------------------------------------- requests
class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: dict[str, list[str]] = {}
        for key, value in pairs:
            self._datalist.setdefault(key, []).append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class OAuthRequest(OAuth2Request):
    """authlib's request object, built from a Starlette request whose body was read up front.

    ``query`` and ``form`` are lists of ``(name, value)`` pairs; blank values have already been
    dropped (RFC 6749 §3.1: a parameter without a value is treated as omitted).
    """

    def __init__(
        self,
        method: str,
        url: str,
        headers: Headers,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        # authlib refuses non-https URLs other than loopback; the dev server deliberately
        # serves plain HTTP (loopback by default, any other --host is the operator's choice),
        # so the transport check runs against a placeholder and the real URL is kept.
        super().__init__(method, "https://localhost/", headers=headers)
        self.uri = url
        self._query = _Payload(query)
        self._form = _Payload(form)
        self.payload = self._form if method == "POST" else self._query
        self.resolved: dict[str, Any] = {}

    @property
    def args(self) -> dict[str, str]:
        return self._query.data

    @property
    def form(self) -> dict[str, str]:
        return self._form.data

    def values(self, name: str) -> list[str]:
        """Every value of a repeatable parameter (``resource``, ``audience``)."""
        return list(self.payload.datalist.get(name, []))


# ---------------------------------------------------------------------------- models
@dataclass
class User:
    """An end-user of the provider (authlib calls ``get_user_id``)."""

    sub: str
    email: str | None = None
    name: str | None = None

    def get_user_id(self) -> str:
        return self.sub


class Client(ClientMixin):
    """A registered client of one realm, backed by its metadata (RFC 7591 names)."""

    def __init__(self, meta: dict[str, Any], realm: str, base_url: str) -> None:
        self.meta = meta
        self.realm = realm
        self.base_url = base_url
        self.client_id: str = meta["client_id"]
        self.client_name: str = meta.get("client_name") or self.client_id
        self.token_endpoint_auth_method: str = meta.get("token_endpoint_auth_method", "client_secret_basic")
        self.grant_types: list[str] = list(meta.get("grant_types") or [])
        self.scope: str | None = meta.get("scope")
        self.jwks: dict[str, Any] | None = meta.get("jwks")
        self.delivery_mode: str | None = meta.get("backchannel_token_delivery_mode")
        self.notification_endpoint: str | None = meta.get("backchannel_client_notification_endpoint")
        self.authorization_details_types: list[str] = list(meta.get("authorization_details_types") or [])
        self.id_token_signed_response_alg: str | None = meta.get("id_token_signed_response_alg")
        # OAuth 2.1 / RFC 9700 §2.1.1: PKCE for every client unless registered without it.
        self.require_pkce: bool = meta.get("require_pkce", True) is not False
        # RFC 8693 may-act policy: clients whose users' tokens this client may exchange.
        self.may_exchange_from: list[str] = list(meta.get("token_exchange_from_clients") or [])
        self._secret_hash: str | None = meta.get("_secret_hash")

    @property
    def redirect_uris(self) -> list[str]:
        # Entries starting with "/" are this server's own pages (its base URL changes with the port).
        return [
            self.base_url + uri if uri.startswith("/") else uri
            for uri in self.meta.get("redirect_uris") or []
        ]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Scope policy is checked by the grants (with a precise error); keep the request's scope.
        return join_scope(split_scope(scope))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(
            redirect_uri == uri or same_uri_ignoring_loopback_port(uri, redirect_uri)
            for uri in self.redirect_uris
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self._secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.token_endpoint_auth_method in AUTH_SECRET:
            return method in AUTH_SECRET  # a secret may travel in the header or the body
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


@dataclass
class AuthContext(AuthorizationCodeMixin):
    """How the user authenticated: what an authorization code, a CIBA approval or a grant
    carries into the ID token (authlib reads it through ``request.authorization_code``)."""

    sub: str
    scope: str = ""
    redirect_uri: str | None = None
    nonce: str | None = None
    auth_time: int | None = None
    acr: str | None = None
    amr: list[str] | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    resource: list[str] = field(default_factory=list)
    authorization_details: list[dict[str, Any]] | None = None
    code_hash: str | None = None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int | None:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str] | None:
        return self.amr


@dataclass
class StoredToken:
    """An issued access or refresh token, as introspection and revocation see it."""

    kind: str  # "access_token" | "refresh_token"
    row: dict[str, Any]
    grant_revoked: bool = False
    checked_at: int = 0  # the provider's time when the token was looked up

    def check_client(self, client: Client) -> bool:
        return self.row["client_id"] == client.get_client_id()

    def get_scope(self) -> str:
        return self.row["scope"]

    def is_expired(self) -> bool:
        return self.row["expires_at"] <= self.checked_at

    def is_revoked(self) -> bool:
        return bool(self.row.get("revoked_at") or self.row.get("rotated_at") or self.grant_revoked)

