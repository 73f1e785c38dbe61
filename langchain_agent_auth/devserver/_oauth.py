"""The authlib authorization servers of the local provider, one per realm.

authlib ships grants, client authentication, PKCE, an RFC 9068 JWT access-token generator,
introspection and revocation, but no Starlette server integration. :class:`OAuthServer` is
that integration (it turns authlib's ``(status, body, headers)`` into Starlette responses,
and saves every issued token); this module also holds the introspection and revocation
endpoints and ID tokens. The vocabulary is in :mod:`._model`, what a token says in
:mod:`._issuance`, the grants in :mod:`._grants`. The realms:

* ``main``: the OpenID provider (JWT access tokens, ID tokens, refresh rotation, CIBA and
  token exchange grants registered from :mod:`._ciba` and :mod:`._exchange`);
* ``upstream``: the demo third-party OAuth server (opaque tokens, rotating refresh tokens).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import KeySet
from starlette.responses import Response

from langchain_agent_auth.devserver._grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    PrivateKeyJWT,
    RefreshTokenGrant,
    S256Only,
)
from langchain_agent_auth.devserver._issuance import (
    ISSUANCE,
    Issuance,
    JWTAccessTokens,
    audience_and_alg,
    check_client_scope,
    create_grant,
    current_issuance,
    find_token,
    parse_details,
    resolve_targets,
    revoke_grant,
)
from langchain_agent_auth.devserver._model import (
    ACCESS_TOKEN_TTL,
    AUTH_ALL,
    AUTH_CONFIDENTIAL,
    PURGE_EVERY,
    REFRESH_TOKEN_TTL,
    UPSTREAM_ACCESS_TTL,
    Client,
    OAuthRequest,
    StoredToken,
    User,
    oauth_error,
)
from langchain_agent_auth.devserver._rar import (
    is_one_time,
)
from langchain_agent_auth.devserver._util import (
    dumps,
    new_token,
    split_scope,
    token_hash,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")

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
        issuance = ISSUANCE.get()
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
        self.provider.record_issued(self.realm, token["access_token"], *filter(None, [token.get("refresh_token")]))
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
