"""authlib grants of the main realm (authorization code with S256 PKCE, refresh with
rotation, client credentials) and ``private_key_jwt`` client authentication with one-time
``jti``s. CIBA, the device grant and token exchange live in their own modules."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc.jwk import KeySet

from langchain_agent_auth.devserver._issuance import (
    ISSUANCE,
    Issuance,
    IssuingGrant,
    audience_and_alg,
    check_client_scope,
    find_token,
    parse_details,
    resolve_targets,
    revoke_grant,
)
from langchain_agent_auth.devserver._model import (
    AUTH_ALL,
    AUTH_CODE_TTL,
    AUTH_CONFIDENTIAL,
    AuthContext,
    Client,
    InvalidTargetError,
    OAuthRequest,
    StoredToken,
    User,
    oauth_error,
)
from langchain_agent_auth.devserver._rar import is_one_time
from langchain_agent_auth.devserver._util import (
    dumps,
    loads,
    split_scope,
    token_hash,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._oauth import OAuthServer

log = logging.getLogger("langchain_agent_auth.devserver")

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
        self.server.provider.record_issued(self.server.realm, code)
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
        issuance = ISSUANCE.get()
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
            provider.count("refresh_reuse", self.server.realm)
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

