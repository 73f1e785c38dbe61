"""What a token says and who may get one: :class:`Issuance` (audience, alg, lifetime,
details, ``act``) set per token request, the RFC 9068 JWT generator fed from it, the
:class:`IssuingGrant` mixin every grant uses, and the policy helpers (resource indicators,
client scopes, RAR parsing, grants and their revocation, token lookup)."""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from langchain_agent_auth.devserver._model import (
    ACCESS_TOKEN_TTL,
    Client,
    InvalidAuthorizationDetailsError,
    InvalidTargetError,
    OAuthRequest,
    StoredToken,
    UnauthorizedClientError,
    User,
    oauth_error,
)
from langchain_agent_auth.devserver._rar import AuthorizationDetailsError, parse_authorization_details
from langchain_agent_auth.devserver._util import (
    OIDC_SCOPES,
    dumps,
    loads,
    new_id,
    new_token,
    token_hash,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider
    from langchain_agent_auth.devserver._oauth import OAuthServer

log = logging.getLogger("langchain_agent_auth.devserver")

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


ISSUANCE: contextvars.ContextVar[Issuance | None] = contextvars.ContextVar(
    "agent_auth_issuance", default=None
)


def current_issuance() -> Issuance:
    issuance = ISSUANCE.get()
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
        issuance = ISSUANCE.get()
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
        ISSUANCE.set(issuance)
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


def grant_client(grant: Any, refused: str) -> Client:
    """Authenticate the client of a token request and check it may use ``grant``'s type."""
    client = grant.authenticate_token_endpoint_client()
    if not client.check_grant_type(grant.GRANT_TYPE):
        raise oauth_error(UnauthorizedClientError, refused)
    grant.request.client = client
    return client


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

