"""authlib server pieces of the local provider.

authlib ships grants, client authentication, PKCE, an RFC 9068 JWT access-token generator,
introspection and revocation, but no Starlette server integration. This module is that
integration (:class:`OAuthRequest` is built from a Starlette request read up front, and
:class:`OAuthServer` turns authlib's ``(status, body, headers)`` into Starlette responses),
plus the models and the concrete grants of both realms:

* ``main``: the OpenID provider (JWT access tokens, ID tokens, refresh rotation, CIBA and
  token exchange grants registered from :mod:`._ciba` and :mod:`._exchange`);
* ``upstream``: the demo third-party OAuth server (opaque tokens, rotating refresh tokens).
"""

from __future__ import annotations

import contextvars
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from joserfc.jwk import KeySet
from starlette.datastructures import Headers
from starlette.responses import Response

from langchain_agent_auth.devserver._rar import (
    AuthorizationDetailsError,
    is_one_time,
    parse_authorization_details,
)
from langchain_agent_auth.devserver._util import (
    OIDC_SCOPES,
    dumps,
    join_scope,
    loads,
    new_id,
    new_token,
    printable_ascii,
    same_uri_ignoring_loopback_port,
    secret_matches,
    split_scope,
    token_hash,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")

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


# ---------------------------------------------------------------------------- issuance
@dataclass
class Issuance:
    """What the token about to be generated carries beyond authlib's arguments."""

    grant_id: str | None
    audience: list[str]
    alg: str = "RS256"
    ttl: int = ACCESS_TOKEN_TTL
    refresh: bool = False
    refresh_scope: str | None = None
    jti: str = field(default_factory=lambda: new_id("at"))
    authorization_details: list[dict[str, Any]] | None = None
    act: dict[str, Any] | None = None
    acr: str | None = None
    amr: list[str] | None = None
    auth_time: int | None = None
    response_extra: dict[str, Any] = field(default_factory=dict)


_ISSUANCE: contextvars.ContextVar[Issuance | None] = contextvars.ContextVar(
    "agent_auth_issuance", default=None
)


def current_issuance() -> Issuance:
    issuance = _ISSUANCE.get()
    if issuance is None:  # pragma: no cover - a grant forgot to set it
        raise RuntimeError("token generation outside a grant")
    return issuance


class JWTAccessTokens(JWTBearerTokenGenerator):
    """authlib's RFC 9068 generator, fed per token from the current :class:`Issuance`."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        super().__init__(
            issuer=provider.issuer,
            refresh_token_generator=lambda **_: new_token(32),
            expires_generator=lambda client, grant_type: current_issuance().ttl,
        )

    @property  # type: ignore[override]
    def alg(self) -> str:
        issuance = _ISSUANCE.get()
        return issuance.alg if issuance else "RS256"

    @alg.setter
    def alg(self, value: str) -> None:  # the base class assigns it once; the issuance decides
        pass

    def get_jwks(self) -> KeySet:
        return self._provider.store.signing_keyset(self.alg)

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str | list[str]:
        audience = current_issuance().audience
        return audience[0] if len(audience) == 1 else list(audience)

    def get_jti(self, client: Any, grant_type: Any, user: Any, scope: Any) -> str:
        return current_issuance().jti

    def get_acr(self, user: Any) -> str | None:
        return current_issuance().acr

    def get_auth_time(self, user: Any) -> int | None:
        return current_issuance().auth_time

    def get_amr(self, user: Any) -> list[str] | None:
        return current_issuance().amr

    def get_extra_claims(self, client: Any, grant_type: Any, user: Any, scope: Any) -> dict[str, Any]:
        issuance = current_issuance()
        claims: dict[str, Any] = {}
        if issuance.authorization_details is not None:
            claims["authorization_details"] = issuance.authorization_details
        if issuance.act is not None:
            claims["act"] = issuance.act
        return claims


class IssuingGrant:
    """Mixin for every grant: prepare the :class:`Issuance`, then let authlib generate."""

    request: OAuthRequest
    server: OAuthServer

    def issuance(self, user: User | None, scope: str) -> Issuance:
        raise NotImplementedError

    def generate_token(
        self,
        user: Any = None,
        scope: Any = None,
        grant_type: Any = None,
        expires_in: Any = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        issuance = self.issuance(user, scope or "")
        _ISSUANCE.set(issuance)
        token = super().generate_token(  # type: ignore[misc]
            user=user,
            scope=scope,
            grant_type=grant_type,
            include_refresh_token=include_refresh_token and issuance.refresh,
        )
        if issuance.authorization_details is not None:
            token["authorization_details"] = issuance.authorization_details
        token.update(issuance.response_extra)
        return token


# ---------------------------------------------------------------------------- policy helpers
def resolve_targets(
    provider: Provider, request: OAuthRequest, scopes: list[str], *, user_grant: bool
) -> list[str]:
    """RFC 8707 ``resource`` + Auth0-style ``audience`` -> the token's audiences.

    Scopes must exist; resource scopes must belong to a target (when none is named, the one
    resource they belong to becomes the target, as RFC 9068 §3 suggests).
    """
    resources = provider.store.resources()
    targets = list(dict.fromkeys(request.values("resource") + request.values("audience")))
    for target in targets:
        if target not in resources:
            raise oauth_error(InvalidTargetError, "unknown resource or audience")
    owners: dict[str, str] = {}
    for identifier, row in resources.items():
        for scope in row["scopes"].split():
            owners.setdefault(scope, identifier)
    for scope in scopes:
        if scope in OIDC_SCOPES:
            if not user_grant:
                raise oauth_error(InvalidScopeError, f"scope {scope} needs an end-user")
            continue
        owner = owners.get(scope)
        if owner is None:
            raise oauth_error(InvalidScopeError, f"unknown scope {scope}")
        if targets and not any(scope in resources[t]["scopes"].split() for t in targets):
            raise oauth_error(InvalidScopeError, f"scope {scope} does not belong to the requested resource")
    if not targets:
        inferred = {owners[s] for s in scopes if s not in OIDC_SCOPES}
        if len(inferred) > 1:
            raise oauth_error(InvalidScopeError, "scopes of several resources: name the resource")
        targets = list(inferred)
    return targets


def check_client_scope(client: Client, scopes: list[str]) -> None:
    if client.scope is None:
        return
    allowed = set(client.scope.split())
    extra = [s for s in scopes if s not in allowed]
    if extra:
        raise oauth_error(InvalidScopeError, "scope not allowed for this client: " + " ".join(extra))


def parse_details(client: Client, raw: str | None) -> list[dict[str, Any]] | None:
    try:
        return parse_authorization_details(raw, allowed_types=client.authorization_details_types)
    except AuthorizationDetailsError as exc:
        raise oauth_error(InvalidAuthorizationDetailsError, str(exc)) from None


def audience_and_alg(provider: Provider, targets: list[str]) -> tuple[list[str], str, int]:
    """Audiences for the JWT (a default when no target), the signing alg and the TTL."""
    if not targets:
        return [provider.default_audience], "RS256", ACCESS_TOKEN_TTL
    resources = provider.store.resources()
    first = resources[targets[0]]
    ttl = min(resources[t]["ttl"] for t in targets)
    return targets, first["alg"], ttl


def create_grant(
    provider: Provider, *, realm: str, sub: str | None, client_id: str, scope: str, data: dict[str, Any]
) -> str:
    grant_id = new_id("grant")
    provider.store.execute(
        "INSERT INTO grants VALUES (?,?,?,?,?,?,?,NULL)",
        (grant_id, realm, sub, client_id, scope, dumps(data), provider.now()),
    )
    return grant_id


def revoke_grant(provider: Provider, grant_id: str | None) -> None:
    """Revoke a grant and every token issued under it."""
    if not grant_id:
        return
    ts = provider.now()
    with provider.store.transaction() as db:
        db.execute("UPDATE grants SET revoked_at=? WHERE grant_id=? AND revoked_at IS NULL", (ts, grant_id))
        db.execute(
            "UPDATE refresh_tokens SET revoked_at=? WHERE grant_id=? AND revoked_at IS NULL", (ts, grant_id)
        )
        db.execute(
            "UPDATE access_tokens SET revoked_at=? WHERE grant_id=? AND revoked_at IS NULL", (ts, grant_id)
        )


def load_grant(provider: Provider, grant_id: str | None) -> dict[str, Any] | None:
    if not grant_id:
        return None
    row = provider.store.one("SELECT * FROM grants WHERE grant_id=?", (grant_id,))
    if row is None:
        return None
    grant = dict(row)
    grant["data"] = loads(row["data"], {})
    return grant


def find_token(provider: Provider, realm: str, value: str, hint: str | None = None) -> StoredToken | None:
    """Look an access or refresh token up by the hash of its value."""
    digest = token_hash(value)
    order = (
        ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    )
    for kind in order:
        if kind == "access_token":
            row = provider.store.one(
                "SELECT * FROM access_tokens WHERE token_hash=? AND realm=?", (digest, realm)
            )
        else:
            row = provider.store.one(
                "SELECT r.* FROM refresh_tokens r JOIN grants g ON g.grant_id=r.grant_id "
                "WHERE r.token_hash=? AND g.realm=?",
                (digest, realm),
            )
        if row is not None:
            grant = load_grant(provider, row["grant_id"])
            data = dict(row)
            if "data" in data:
                data["data"] = loads(data["data"], {})
            data["grant"] = grant
            revoked = bool(grant and grant["revoked_at"])
            return StoredToken(kind, data, grant_revoked=revoked, checked_at=provider.now())
    return None


# ---------------------------------------------------------------------------- grants: main realm
class S256Only(CodeChallenge):
    """PKCE with S256 only (``plain`` is not offered: RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        client = request.client
        if (
            not request.payload.data.get("code_challenge")
            and getattr(client, "require_pkce", True)
        ):
            raise InvalidRequestError("code_challenge (PKCE, S256) is required", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(IssuingGrant, grants.AuthorizationCodeGrant):
    """Authorization code (+ PKCE, + OpenID) for both realms."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_ALL

    def validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        request, client = self.request, self.request.client
        try:
            self.server.validate_user_authorization(request, client)
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuthRequest) -> None:
        data = AuthContext(
            sub=request.user.sub,
            scope=request.scope,
            redirect_uri=request.payload.redirect_uri,
            nonce=request.payload.data.get("nonce"),
            auth_time=request.resolved.get("auth_time"),
            acr=request.resolved.get("acr"),
            amr=["pwd"],
            code_challenge=request.payload.data.get("code_challenge"),
            code_challenge_method=request.payload.data.get("code_challenge_method"),
            resource=request.resolved.get("targets", []),
            authorization_details=request.resolved.get("authorization_details"),
        )
        self.server.provider.store.execute(
            "INSERT INTO auth_codes VALUES (?,?,?,?,?,?,NULL,NULL)",
            (
                token_hash(code),
                self.server.realm,
                request.client.client_id,
                request.user.sub,
                dumps(data.__dict__),
                self.server.provider.now() + AUTH_CODE_TTL,
            ),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthContext | None:
        provider = self.server.provider
        row = provider.store.one(
            "SELECT * FROM auth_codes WHERE code_hash=? AND realm=? AND client_id=?",
            (token_hash(code), self.server.realm, client.client_id),
        )
        if row is None:
            return None
        if row["used_at"]:
            # A replayed code: refuse it and revoke what it produced (RFC 6749 §4.1.2).
            revoke_grant(provider, row["grant_id"])
            log.warning("replayed authorization code for client %s: grant revoked", client.client_id)
            return None
        if row["expires_at"] <= provider.now():
            return None
        context = AuthContext(**loads(row["data"]))
        context.code_hash = row["code_hash"]
        return context

    def delete_authorization_code(self, authorization_code: AuthContext) -> None:
        issuance = _ISSUANCE.get()
        self.server.provider.store.execute(
            "UPDATE auth_codes SET used_at=?, grant_id=? WHERE code_hash=?",
            (self.server.provider.now(), issuance.grant_id if issuance else None, authorization_code.code_hash),
        )

    def authenticate_user(self, authorization_code: AuthContext) -> User | None:
        return self.server.provider.user(authorization_code.sub)

    def issuance(self, user: User | None, scope: str) -> Issuance:
        code: AuthContext = self.request.authorization_code
        return self.server.user_issuance(
            self.request,
            user,
            scope,
            targets=code.resource,
            authorization_details=code.authorization_details,
            acr=code.acr,
            amr=code.amr,
            auth_time=code.auth_time,
        )


class RefreshTokenGrant(IssuingGrant, grants.RefreshTokenGrant):
    """Refresh with rotation: each use returns a new refresh token; reusing a rotated one
    revokes the whole grant (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_ALL
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredToken | None:
        provider = self.server.provider
        token = find_token(provider, self.server.realm, refresh_token, "refresh_token")
        if token is None or token.kind != "refresh_token":
            return None
        if token.row["rotated_at"] and not token.row["revoked_at"]:
            revoke_grant(provider, token.row["grant_id"])
            log.warning("refresh token reuse by client %s: grant revoked", token.row["client_id"])
            return None
        if token.is_revoked() or token.is_expired():
            return None
        return token

    def authenticate_user(self, refresh_token: StoredToken) -> User | None:
        grant = refresh_token.row["grant"]
        return self.server.provider.user(grant["sub"]) if grant and grant["sub"] else None

    def revoke_old_credential(self, refresh_token: StoredToken) -> None:
        self.server.provider.store.execute(
            "UPDATE refresh_tokens SET rotated_at=? WHERE token_hash=?",
            (self.server.provider.now(), refresh_token.row["token_hash"]),
        )

    def issuance(self, user: User | None, scope: str) -> Issuance:
        stored: StoredToken = self.request.refresh_token
        grant = stored.row["grant"]
        data = grant["data"]
        if is_one_time(data.get("authorization_details")):
            raise oauth_error(InvalidGrantError, "a one-time authorization cannot be refreshed")
        targets = list(data.get("resource") or [])
        asked = self.request.values("resource") + self.request.values("audience")
        if asked:
            if not set(asked) <= set(targets):
                raise oauth_error(InvalidTargetError, "resource was not part of the original grant")
            targets = list(dict.fromkeys(asked))
        self.request.authorization_code = AuthContext(
            sub=grant["sub"], auth_time=data.get("auth_time"), acr=data.get("acr"), amr=data.get("amr")
        )
        issuance = self.server.issuance_for_grant(
            grant["grant_id"],
            targets,
            authorization_details=data.get("authorization_details"),
            acr=data.get("acr"),
            amr=data.get("amr"),
            auth_time=data.get("auth_time"),
        )
        issuance.refresh = True
        issuance.refresh_scope = grant["scope"]
        return issuance


class ClientCredentialsGrant(IssuingGrant, grants.ClientCredentialsGrant):
    """client_credentials: the client acting for itself (``sub`` = client_id)."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_CONFIDENTIAL

    def validate_token_request(self) -> None:
        super().validate_token_request()
        scopes = split_scope(self.request.payload.scope)
        check_client_scope(self.request.client, scopes)
        self.request.resolved["targets"] = resolve_targets(
            self.server.provider, self.request, scopes, user_grant=False
        )
        self.request.resolved["authorization_details"] = parse_details(
            self.request.client, self.request.payload.data.get("authorization_details")
        )

    def issuance(self, user: User | None, scope: str) -> Issuance:
        audience, alg, ttl = audience_and_alg(self.server.provider, self.request.resolved["targets"])
        return Issuance(
            grant_id=None,
            audience=audience,
            alg=alg,
            ttl=ttl,
            authorization_details=self.request.resolved["authorization_details"],
        )


# ---------------------------------------------------------------------------- client auth
class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` (RFC 7523 §2.2 / OIDC Core §9) with one-time ``jti``s."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: OAuthServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._server = server

    def get_audiences(self) -> list[str]:
        base = self._server.issuer
        return [base, *(base + path for path in ("/token", "/bc-authorize", "/introspect", "/revoke"))]

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        if not isinstance(jti, str) or len(jti) > 256:
            return False
        store = self._server.provider.store
        key = f"{claims['sub']}:{jti}"
        store.execute("DELETE FROM assertion_jtis WHERE expires_at < ?", (store.clock.now(),))
        if store.one("SELECT 1 FROM assertion_jtis WHERE key=?", (key,)):
            return False
        exp = claims.get("exp")
        store.execute(
            "INSERT INTO assertion_jtis VALUES (?,?)",
            (key, int(exp) if isinstance(exp, int | float) else store.clock.now() + 600),
        )
        return True

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if not client.jwks:
            raise oauth_error(InvalidClientError, "the client has no registered keys")
        return KeySet.import_key_set(client.jwks)

    def __call__(self, query_client: Any, request: OAuthRequest) -> Client | None:
        try:
            return super().__call__(query_client, request)
        except OAuth2Error:
            raise
        except Exception as exc:  # joserfc raises ValueError & co. on hostile assertions
            log.info("client assertion rejected (%s)", type(exc).__name__)
            raise oauth_error(InvalidClientError, "invalid client assertion") from None


# ---------------------------------------------------------------------------- endpoints
class _TokenLookupMixin:
    server: OAuthServer

    def check_params(self, request: OAuthRequest, client: Client) -> None:
        # An unknown token_type_hint is ignored (RFC 7009 §2.1, RFC 7662 §2.1).
        if "token" not in request.form:
            raise oauth_error(InvalidRequestError, "missing token parameter")

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        return find_token(self.server.provider, self.server.realm, token_string, token_type_hint)


class Introspection(_TokenLookupMixin, IntrospectionEndpoint):
    """RFC 7662. Any authenticated confidential client of the realm may introspect."""

    CLIENT_AUTH_METHODS = AUTH_CONFIDENTIAL

    def check_permission(self, token: StoredToken, client: Client, request: OAuthRequest) -> bool:
        return True

    def introspect_token(self, token: StoredToken) -> dict[str, Any]:
        row = token.row
        grant = row.get("grant") or {}
        body: dict[str, Any] = {
            "active": True,
            "client_id": row["client_id"],
            "scope": row["scope"],
            "iss": self.server.issuer,
            "exp": row["expires_at"],
            "iat": row["created_at"],
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
        }
        sub = row.get("sub") if token.kind == "access_token" else grant.get("sub")
        if sub:
            body["sub"] = sub
        if token.kind == "access_token":
            data = row.get("data") or {}
            body["jti"] = row["jti"]
            if data.get("aud"):
                body["aud"] = data["aud"][0] if len(data["aud"]) == 1 else data["aud"]
            for name in ("authorization_details", "act"):
                if data.get(name) is not None:
                    body[name] = data[name]
        return body


class Revocation(_TokenLookupMixin, RevocationEndpoint):
    """RFC 7009. Revoking a refresh token revokes its whole grant."""

    CLIENT_AUTH_METHODS = AUTH_ALL

    def revoke_token(self, token: StoredToken, request: OAuthRequest) -> None:
        provider = self.server.provider
        if token.kind == "refresh_token":
            revoke_grant(provider, token.row["grant_id"])
        else:
            provider.store.execute(
                "UPDATE access_tokens SET revoked_at=? WHERE jti=? AND revoked_at IS NULL",
                (provider.now(), token.row["jti"]),
            )


class IDTokens(OpenIDCode):
    """ID tokens for the code, CIBA and refresh grants (authlib's OpenIDCode extension)."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def resolve_client_private_key(self, client: Client) -> KeySet:
        return self.provider.store.signing_keyset(self.get_client_algorithm(client))

    def get_client_algorithm(self, client: Client) -> str:
        alg = getattr(client, "id_token_signed_response_alg", None)
        return alg if alg in ("RS256", "ES256") else "RS256"

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {
            "iss": self.provider.issuer,
            "aud": client.get_client_id(),
            "azp": client.get_client_id(),
            "exp": self.provider.now() + ACCESS_TOKEN_TTL,
        }

    def get_authorization_code_claims(self, authorization_code: Any) -> dict[str, Any]:
        claims = super().get_authorization_code_claims(authorization_code)
        issuance = _ISSUANCE.get()
        if issuance is not None and issuance.grant_id:
            # The grant the ID token belongs to: token exchange ties its tokens to it.
            claims["sid"] = issuance.grant_id
        return claims

    def exists_nonce(self, nonce: str, request: OAuthRequest) -> bool:
        row = self.provider.store.one(
            "SELECT 1 FROM auth_codes WHERE client_id=? AND json_extract(data, '$.nonce')=?",
            (request.payload.client_id, nonce),
        )
        return row is not None

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(self.provider.userinfo_claims(user.sub, scope))


# ---------------------------------------------------------------------------- the server
class OAuthServer(AuthorizationServer):
    """authlib's AuthorizationServer for one realm, speaking Starlette."""

    def __init__(self, provider: Provider, realm: str, issuer: str) -> None:
        super().__init__(scopes_supported=None)
        self.provider = provider
        self.realm = realm
        self.issuer = issuer
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(self))

    # -- authlib hooks
    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or len(client_id) > 200:
            return None
        meta = self.provider.store.get_client(client_id, self.realm)
        return Client(meta, self.realm, self.provider.base_url) if meta else None

    def save_token(self, token: dict[str, Any], request: OAuthRequest) -> None:
        issuance = current_issuance()
        user = request.user
        ts = self.provider.now()
        data = {
            "aud": issuance.audience,
            "authorization_details": issuance.authorization_details,
            "act": issuance.act,
        }
        access_row = (
            issuance.jti,
            token_hash(token["access_token"]),
            self.realm,
            issuance.grant_id,
            request.client.client_id,
            user.sub if user else request.client.client_id,
            token.get("scope", ""),
            dumps(data),
            ts,
            ts + token.get("expires_in", issuance.ttl),
        )
        insert_access = "INSERT INTO access_tokens VALUES (?,?,?,?,?,?,?,?,?,?,NULL)"
        self.provider.issued += 1
        if self.provider.issued % PURGE_EVERY == 0:
            self.provider.store.purge_expired()
        if "refresh_token" not in token or not issuance.grant_id:
            self.provider.store.execute(insert_access, access_row)
            return
        with self.provider.store.transaction() as db:
            db.execute(insert_access, access_row)
            db.execute(
                "INSERT INTO refresh_tokens VALUES (?,?,?,?,?,?,NULL,NULL)",
                (
                    token_hash(token["refresh_token"]),
                    issuance.grant_id,
                    request.client.client_id,
                    issuance.refresh_scope or token.get("scope", ""),
                    ts,
                    ts + REFRESH_TOKEN_TTL,
                ),
            )

    def validate_requested_scope(self, scope: str | None) -> None:
        return None  # each grant checks scopes against resources and the client (precise errors)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("build an OAuthRequest from the Starlette request first")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        header_map = dict(headers)
        if isinstance(body, dict):
            header_map["Content-Type"] = "application/json"
            header_map.setdefault("Cache-Control", "no-store")
            return Response(json.dumps(body), status_code=status, headers=header_map)
        if status == 302 and "Location" in header_map:
            # RFC 9207: the issuer in every authorization response, errors included.
            header_map["Location"] = add_params_to_uri(header_map["Location"], [("iss", self.issuer)])
        return Response(body or b"", status_code=status, headers=header_map)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    # -- helpers shared by the grants
    def validate_user_authorization(self, request: OAuthRequest, client: Client) -> None:
        """Scopes, resources and RAR of an authorization request (code flow)."""
        scopes = split_scope(request.payload.scope)
        check_client_scope(client, scopes)
        if self.realm == "main":
            request.resolved["targets"] = resolve_targets(self.provider, request, scopes, user_grant=True)
            request.resolved["authorization_details"] = parse_details(
                client, request.payload.data.get("authorization_details")
            )
        else:
            from langchain_agent_auth.devserver._store import UPSTREAM_SCOPES

            unknown = [s for s in scopes if s not in UPSTREAM_SCOPES]
            if unknown:
                raise oauth_error(InvalidScopeError, "unknown scope " + " ".join(unknown))
            if not scopes:
                raise oauth_error(InvalidScopeError, "scope is required")

    def issuance_for_grant(self, grant_id: str | None, targets: list[str], **kwargs: Any) -> Issuance:
        if self.realm == "upstream":
            return Issuance(grant_id=grant_id, audience=[], ttl=UPSTREAM_ACCESS_TTL, **kwargs)
        audience, alg, ttl = audience_and_alg(self.provider, targets)
        return Issuance(grant_id=grant_id, audience=audience, alg=alg, ttl=ttl, **kwargs)

    def user_issuance(
        self,
        request: OAuthRequest,
        user: User | None,
        scope: str,
        *,
        targets: list[str],
        authorization_details: list[dict[str, Any]] | None,
        acr: str | None,
        amr: list[str] | None,
        auth_time: int | None,
    ) -> Issuance:
        """Create the grant for a user authorization and the issuance of its first tokens."""
        if user is None:
            raise oauth_error(InvalidGrantError, "no user for this grant")
        client: Client = request.client
        data = {
            "resource": targets,
            "authorization_details": authorization_details,
            "acr": acr,
            "amr": amr,
            "auth_time": auth_time,
        }
        grant_id = create_grant(
            self.provider, realm=self.realm, sub=user.sub, client_id=client.client_id, scope=scope, data=data
        )
        issuance = self.issuance_for_grant(
            grant_id,
            targets,
            authorization_details=authorization_details,
            acr=acr,
            amr=amr,
            auth_time=auth_time,
        )
        wants_refresh = self.realm == "upstream" or "offline_access" in scope.split()
        # A one-time authorization (a payment) is used once: no refresh token can mint it again.
        issuance.refresh = (
            wants_refresh and client.check_grant_type("refresh_token") and not is_one_time(authorization_details)
        )
        issuance.refresh_scope = scope
        return issuance


def build_main_server(provider: Provider) -> OAuthServer:
    """The OpenID provider's authorization server with every grant and endpoint."""
    from langchain_agent_auth.devserver._ciba import BackchannelAuthentication, CibaGrant
    from langchain_agent_auth.devserver._device import DeviceAuthorization, DeviceCodeGrant
    from langchain_agent_auth.devserver._exchange import FederatedConnectionGrant, TokenExchangeGrant

    server = OAuthServer(provider, "main", provider.issuer)
    server.register_token_generator("default", JWTAccessTokens(provider))
    id_tokens = IDTokens(provider)
    server.register_grant(AuthorizationCodeGrant, [S256Only(required=True), id_tokens])
    server.register_grant(RefreshTokenGrant, [id_tokens])
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(CibaGrant, [id_tokens])
    server.register_grant(DeviceCodeGrant, [id_tokens])
    server.register_grant(TokenExchangeGrant)
    server.register_grant(FederatedConnectionGrant)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    server.register_endpoint(BackchannelAuthentication)
    server.register_endpoint(DeviceAuthorization)
    return server


def build_upstream_server(provider: Provider) -> OAuthServer:
    """The demo third-party provider: opaque tokens, rotating refresh tokens."""
    server = OAuthServer(provider, "upstream", provider.upstream_issuer)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **_: new_token(32),
            refresh_token_generator=lambda **_: new_token(32),
            expires_generator=lambda client, grant_type: current_issuance().ttl,
        ),
    )
    server.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server
