"""Token exchange: RFC 8693 and Auth0 Token Vault's federated-connection exchange.

* :class:`TokenExchangeGrant` (``urn:ietf:params:oauth:grant-type:token-exchange``): a user's
  access, refresh or ID token (``subject_token``) becomes a new JWT access token for a target
  ``audience``/``resource`` with an ``act`` claim naming the client (or the ``actor_token``'s
  subject), nested when the subject token was itself delegated. Without a target, the new
  token keeps the subject token's audience and at most its scope.
* :class:`FederatedConnectionGrant` (Auth0's
  ``urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token``): a
  user's refresh or access token becomes the upstream access token of a ``connection`` the
  provider holds for that user (refreshing it at the upstream when needed). Same request and
  response shape as Auth0; an unlinked or revoked connection answers 401
  ``federated_connection_refresh_token_not_found`` like Auth0 does.

The connections themselves (linking through the pages or the admin shortcut) live here too.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from starlette.datastructures import Headers

from langchain_agent_auth.devserver._faults import injected_sync
from langchain_agent_auth.devserver._issuance import (
    Issuance,
    IssuingGrant,
    audience_and_alg,
    find_token,
    grant_client,
    load_grant,
    revoke_grant,
)
from langchain_agent_auth.devserver._model import (
    AUTH_CODE_TTL,
    AUTH_CONFIDENTIAL,
    AuthContext,
    Client,
    FederatedTokenNotFoundError,
    InvalidTargetError,
    OAuthRequest,
    TemporarilyUnavailableError,
    oauth_error,
)
from langchain_agent_auth.devserver._store import UPSTREAM_CONNECTION, UPSTREAM_IDP_CLIENT_ID, UPSTREAM_SCOPES
from langchain_agent_auth.devserver._util import (
    GT_FEDERATED,
    GT_TOKEN_EXCHANGE,
    TT_ACCESS,
    TT_FEDERATED,
    TT_ID,
    TT_JWT,
    TT_REFRESH,
    dumps,
    join_scope,
    loads,
    split_scope,
    token_hash,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")

CONNECTIONS = {UPSTREAM_CONNECTION: UPSTREAM_SCOPES}

# What a subject grant's scopes let a client obtain by token exchange for another resource
# (target scope -> subject scopes that imply it). Anything not listed needs the scope itself.
EXCHANGE_POLICY: dict[str, dict[str, tuple[str, ...]]] = {
    "urn:example:downstream": {"downstream:read": ("api:read",), "downstream:write": ("api:write",)},
}


# ---------------------------------------------------------------------------- subject tokens
def _may_present(client: Client, issued_to: str | None, audience: list[str], may_act: Any) -> bool:
    """RFC 8693 §1.1 / §4.4: a client exchanges a token that was issued to it, addressed to it,
    or that a configured may-act relationship (or the token's ``may_act`` claim) lets it use."""
    if issued_to == client.client_id or client.client_id in audience:
        return True
    if issued_to is not None and issued_to in client.may_exchange_from:
        return True
    return isinstance(may_act, dict) and may_act.get("sub") == client.client_id


def _live_grant(provider: Provider, grant_id: Any, sub: str, label: str) -> dict[str, Any]:
    grant = load_grant(provider, grant_id) if isinstance(grant_id, str) else None
    if grant is None or grant["revoked_at"] or grant["sub"] != sub or grant["realm"] != "main":
        raise oauth_error(InvalidGrantError, f"{label} belongs to a revoked or unknown grant")
    return grant


def _row_says(row: dict[str, Any]) -> dict[str, Any]:
    """What an access token says (see :func:`resolve_token`), from its stored row."""
    data = row["data"]
    return {"sub": row["sub"], "scope": row["scope"], "act": data.get("act"), "grant_id": row["grant_id"],
            "aud": data.get("aud") or [], "client_id": row["client_id"]}


def _grant_says(grant: dict[str, Any], sub: str, client_id: str) -> dict[str, Any]:
    """What a refresh or ID token says: its grant's scope and resources, nobody acting."""
    return {"sub": sub, "scope": grant["scope"], "act": None, "grant_id": grant["grant_id"],
            "aud": grant["data"].get("resource") or [], "client_id": client_id}


def resolve_token(provider: Provider, value: str, token_type: str, label: str, client: Client) -> dict[str, Any]:
    """Validate a subject/actor token issued by this provider for ``client``; returns what it says
    (``scope`` is what the user granted through it, ``grant_id`` the grant it belongs to)."""
    if token_type in (TT_ACCESS, TT_REFRESH):
        kind = "access_token" if token_type == TT_ACCESS else "refresh_token"
        stored = find_token(provider, "main", value, kind)
        if stored is None or stored.kind != kind or stored.is_expired() or stored.is_revoked():
            raise oauth_error(InvalidGrantError, f"{label} is invalid, expired or revoked")
        row = stored.row
        if kind == "refresh_token":
            grant = row["grant"]
            if row["client_id"] != client.client_id:
                raise oauth_error(InvalidGrantError, f"{label} was issued to another client")
            return _grant_says(grant, grant["sub"], row["client_id"])
        data = row["data"]
        if not _may_present(client, row["client_id"], data.get("aud") or [], data.get("may_act")):
            raise oauth_error(InvalidGrantError, f"{label} was issued to another client")
        return _row_says(row)
    if token_type in (TT_ID, TT_JWT):
        try:
            token = jwt.decode(value, provider.store.verification_keyset(), algorithms=["RS256", "ES256"])
        except (JoseError, ValueError):
            raise oauth_error(InvalidGrantError, f"{label} is not a valid JWT of this provider") from None
        claims = token.claims
        if claims.get("iss") != provider.issuer or not isinstance(claims.get("sub"), str):
            raise oauth_error(InvalidGrantError, f"{label} was not issued by this provider")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= provider.now():
            raise oauth_error(InvalidGrantError, f"{label} has expired")
        aud = claims.get("aud")
        audience = [a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]
        if token.header.get("typ") == "at+jwt":
            stored = find_token(provider, "main", value, "access_token")
            if stored is None or stored.is_revoked():
                raise oauth_error(InvalidGrantError, f"{label} was revoked")
            row = stored.row
            if not _may_present(client, row["client_id"], row["data"].get("aud") or [], claims.get("may_act")):
                raise oauth_error(InvalidGrantError, f"{label} was issued to another client")
            return _row_says(row)
        # An ID token: only from its own audience (OIDC Core §2), and only while its grant lives.
        if client.client_id not in audience:
            raise oauth_error(InvalidGrantError, f"{label} is an ID token for another client")
        grant = _live_grant(provider, claims.get("sid"), claims["sub"], label)
        return _grant_says(grant, claims["sub"], grant["client_id"])
    raise oauth_error(InvalidRequestError, f"unsupported {label}_type")


def exchangeable_scopes(target: str, target_scopes: list[str], subject_scopes: list[str]) -> list[str]:
    """Scopes of ``target`` the subject's grant covers: held directly, or derived through the
    exchange policy (:data:`EXCHANGE_POLICY`). Never more than the user consented to.

    Example:
        >>> exchangeable_scopes("urn:example:downstream", ["downstream:read", "downstream:write"],
        ...                     ["openid", "api:read"])
        ['downstream:read']
        >>> exchangeable_scopes("urn:agent-auth:demo-api", ["bank:read", "bank:transfer"], ["openid"])
        []
    """
    held = set(subject_scopes)
    policy = EXCHANGE_POLICY.get(target, {})
    return [s for s in target_scopes if s in held or held & set(policy.get(s, ()))]


class _SubjectTokenGrant(BaseGrant, TokenEndpointMixin):
    """What both exchanges share: a confidential client presents a ``subject_token`` that
    must stand for a known user."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_CONFIDENTIAL

    def known_subject(self, client: Client, token_type: str) -> dict[str, Any]:
        """The resolved ``subject_token`` (see :func:`resolve_token`); invalid_grant unless its
        user exists."""
        provider: Provider = self.server.provider
        subject = resolve_token(provider, self.request.form["subject_token"], token_type, "subject_token", client)
        if not subject["sub"] or provider.user(subject["sub"]) is None:
            raise oauth_error(InvalidGrantError, "subject_token does not represent a known user")
        return subject


class TokenExchangeGrant(IssuingGrant, _SubjectTokenGrant):
    """RFC 8693 token exchange (delegation: the new token carries ``act``)."""

    GRANT_TYPE = GT_TOKEN_EXCHANGE

    def validate_token_request(self) -> None:
        provider: Provider = self.server.provider
        client = grant_client(self, "client may not use token exchange")
        form = self.request.form
        if not form.get("subject_token") or not form.get("subject_token_type"):
            raise oauth_error(InvalidRequestError, "subject_token and subject_token_type are required")
        requested = form.get("requested_token_type")
        if requested is not None and requested not in (TT_ACCESS, TT_JWT):
            raise oauth_error(InvalidRequestError, "unsupported requested_token_type")
        if bool(form.get("actor_token")) != bool(form.get("actor_token_type")):
            raise oauth_error(InvalidRequestError, "actor_token and actor_token_type go together")
        subject = self.known_subject(client, form["subject_token_type"])
        actor = None
        if form.get("actor_token"):
            actor = resolve_token(provider, form["actor_token"], form["actor_token_type"], "actor_token", client)

        resources = provider.store.resources()
        targets = list(dict.fromkeys(self.request.values("resource") + self.request.values("audience")))
        if len(targets) > 1:
            raise oauth_error(InvalidTargetError, "one resource or audience per exchange")
        asked = split_scope(form.get("scope"))
        if targets:
            if targets[0] not in resources:
                raise oauth_error(InvalidTargetError, "unknown resource or audience")
            offered = resources[targets[0]]["scopes"].split()
            allowed = exchangeable_scopes(targets[0], offered, split_scope(subject["scope"]))
            bad = [s for s in asked if s not in offered]
            if bad:
                raise oauth_error(InvalidScopeError, "scope not available for the target: " + " ".join(bad))
            if not allowed:
                raise oauth_error(InvalidScopeError, "the subject's grant covers no scope of the target")
            scopes = asked or allowed
        else:
            targets = [a for a in subject["aud"] if a in resources]
            allowed = split_scope(subject["scope"])
            scopes = asked or allowed
        bad = [s for s in scopes if s not in allowed]
        if bad:
            raise oauth_error(InvalidScopeError, "scope beyond what the user granted: " + " ".join(bad))
        if client.scope is not None and any(s not in client.scope.split() for s in scopes):
            raise oauth_error(InvalidScopeError, "scope not allowed for this client")
        act: dict[str, Any] = {"sub": actor["sub"] if actor else client.client_id}
        if subject["act"]:
            act["act"] = subject["act"]
        self.request.exchange = {
            "subject": subject,
            "targets": targets,
            "scope": join_scope(scopes),
            "act": act,
            "issued_token_type": requested or TT_ACCESS,
        }

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        exchange = self.request.exchange
        user = self.server.provider.user(exchange["subject"]["sub"])
        self.request.user = user
        token = self.generate_token(user=user, scope=exchange["scope"], include_refresh_token=False)
        self.save_token(token)
        self.server.provider.count("grants", "token_exchange_issued")
        log.info("token exchange for %s by %s", exchange["subject"]["sub"], self.request.client.client_id)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def issuance(self, user: Any, scope: str) -> Issuance:
        exchange = self.request.exchange
        audience, alg, ttl = audience_and_alg(self.server.provider, exchange["targets"])
        return Issuance(
            grant_id=exchange["subject"]["grant_id"],
            audience=audience,
            alg=alg,
            ttl=ttl,
            act=exchange["act"],
            response_extra={"issued_token_type": exchange["issued_token_type"]},
        )


class FederatedConnectionGrant(_SubjectTokenGrant):
    """Auth0 Token Vault's exchange: an upstream access token for a linked connection."""

    GRANT_TYPE = GT_FEDERATED

    def validate_token_request(self) -> None:
        client = grant_client(self, "client may not use the Token Vault exchange")
        form = self.request.form
        if not form.get("subject_token"):
            raise oauth_error(InvalidRequestError, "subject_token is required")
        token_type = form.get("subject_token_type", TT_REFRESH)
        if token_type not in (TT_REFRESH, TT_ACCESS):
            raise oauth_error(
                InvalidRequestError, "subject_token_type must be a refresh or access token type"
            )
        if form.get("requested_token_type", TT_FEDERATED) != TT_FEDERATED:
            raise oauth_error(InvalidRequestError, f"requested_token_type must be {TT_FEDERATED}")
        connection = form.get("connection")
        if not connection:
            raise oauth_error(InvalidRequestError, "connection is required")
        if connection not in CONNECTIONS:
            raise oauth_error(InvalidRequestError, "unknown connection")
        subject = self.known_subject(client, token_type)
        login_hint = form.get("login_hint")
        if login_hint is not None and login_hint != subject["sub"]:
            raise oauth_error(FederatedTokenNotFoundError, "Federated connection Refresh Token not found.")
        self.request.federated = (subject["sub"], connection)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        sub, connection = self.request.federated
        token = federated_access_token(self.server.provider, sub, connection)
        self.server.provider.count("grants", "federated_issued")
        log.info(
            "Token Vault exchange: %s connection for %s to %s", connection, sub, self.request.client.client_id
        )
        return 200, token, self.TOKEN_RESPONSE_HEADER


# ---------------------------------------------------------------------------- connections
def _internal_upstream_token(provider: Provider, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Call the upstream token endpoint in-process as the provider's own upstream client."""
    fault = injected_sync(provider, "token")
    if fault in ("invalid_grant", "invalid_scope"):
        raise oauth_error(InvalidGrantError if fault == "invalid_grant" else InvalidScopeError, f"injected {fault}")
    if fault is not None:
        raise oauth_error(TemporarilyUnavailableError, "the upstream provider is unavailable")
    secret = provider.store.secrets.clients[UPSTREAM_IDP_CLIENT_ID]
    basic = base64.b64encode(f"{UPSTREAM_IDP_CLIENT_ID}:{secret}".encode()).decode()
    request = OAuthRequest(
        "POST",
        provider.upstream_issuer + "/token",
        Headers({"authorization": f"Basic {basic}"}),
        [],
        list(form.items()),
    )
    response = provider.upstream.create_token_response(request)
    return response.status_code, json.loads(bytes(response.body))


def _save_connection(provider: Provider, sub: str, connection: str, token: dict[str, Any]) -> dict[str, Any]:
    ts = provider.now()
    blob = provider.store.seal(
        {"access_token": token["access_token"], "refresh_token": token.get("refresh_token")}
    )
    provider.store.execute(
        "INSERT INTO connections VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (sub, connection) DO UPDATE SET "
        "status=excluded.status, scope=excluded.scope, secret_blob=excluded.secret_blob, "
        "access_expires_at=excluded.access_expires_at, updated_at=excluded.updated_at",
        (
            sub,
            connection,
            "active",
            token.get("scope", ""),
            blob,
            ts + int(token.get("expires_in", 3600)),
            ts,
            ts,
        ),
    )
    return connection_view(provider, sub, connection) or {}


def connection_view(provider: Provider, sub: str, connection: str) -> dict[str, Any] | None:
    row = provider.store.one("SELECT * FROM connections WHERE sub=? AND connection=?", (sub, connection))
    if row is None:
        return None
    return {
        "user": sub,
        "connection": connection,
        "status": row["status"],
        "scope": row["scope"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def list_connections(provider: Provider, sub: str | None = None) -> list[dict[str, Any]]:
    rows = provider.store.all(
        "SELECT sub, connection FROM connections WHERE (? IS NULL OR sub=?) ORDER BY sub, connection",
        (sub, sub),
    )
    return [v for row in rows if (v := connection_view(provider, row["sub"], row["connection"]))]


def _validate_connection_scope(connection: str, scope: str | None) -> str:
    if connection not in CONNECTIONS:
        raise ValueError("unknown connection")
    scopes = split_scope(scope) or [s for s in CONNECTIONS[connection] if s != "profile"]
    bad = [s for s in scopes if s not in CONNECTIONS[connection]]
    if bad:
        raise ValueError("unknown scope for the connection: " + " ".join(bad))
    return join_scope(scopes)


def start_connect(provider: Provider, sub: str, connection: str, scope: str | None) -> str:
    """Begin linking an upstream account (page flow): returns the upstream authorize URL."""
    scope = _validate_connection_scope(connection, scope)
    state, verifier = generate_token(32), generate_token(64)
    provider.store.execute("DELETE FROM connect_states WHERE expires_at < ?", (provider.now(),))
    provider.store.execute(
        "INSERT INTO connect_states VALUES (?,?,?,?,?)",
        (token_hash(state), sub, connection, dumps({"verifier": verifier, "scope": scope}), provider.now() + 600),
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": UPSTREAM_IDP_CLIENT_ID,
            "redirect_uri": _callback(provider),
            "scope": scope,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{provider.upstream_issuer}/authorize?{query}"


def _callback(provider: Provider) -> str:
    return provider.base_url + "/connections/callback"


def finish_connect(provider: Provider, sub: str, state: str, code: str) -> dict[str, Any]:
    """Complete the page flow: exchange the upstream code and keep the tokens (encrypted)."""
    row = provider.store.one("SELECT * FROM connect_states WHERE state_hash=?", (token_hash(state),))
    if row is None or row["expires_at"] <= provider.now() or row["sub"] != sub:
        raise ValueError("unknown, expired or foreign state")
    provider.store.execute("DELETE FROM connect_states WHERE state_hash=?", (row["state_hash"],))
    data = loads(row["data"], {})
    status, body = _internal_upstream_token(
        provider,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _callback(provider),
            "code_verifier": data["verifier"],
        },
    )
    if status != 200:
        raise ValueError(f"the upstream refused the code ({body.get('error')})")
    log.info("connection %s linked for %s", row["connection"], sub)
    return _save_connection(provider, sub, row["connection"], body)


def link_direct(provider: Provider, sub: str, connection: str, scope: str | None) -> dict[str, Any]:
    """Admin/test shortcut: link without a browser (the user 'consents' implicitly)."""
    if provider.user(sub) is None:
        raise ValueError("unknown user")
    scope = _validate_connection_scope(connection, scope)
    code, verifier = generate_token(48), generate_token(64)
    context = AuthContext(
        sub=sub,
        scope=scope,
        redirect_uri=_callback(provider),
        auth_time=provider.now(),
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    provider.store.execute(
        "INSERT INTO auth_codes VALUES (?,?,?,?,?,?,NULL,NULL)",
        (
            token_hash(code),
            "upstream",
            UPSTREAM_IDP_CLIENT_ID,
            sub,
            dumps(context.__dict__),
            provider.now() + AUTH_CODE_TTL,
        ),
    )
    status, body = _internal_upstream_token(
        provider,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _callback(provider),
            "code_verifier": verifier,
        },
    )
    if status != 200:  # pragma: no cover - the code was just minted
        raise ValueError(f"the upstream refused the code ({body.get('error')})")
    log.info("connection %s linked for %s (admin shortcut)", connection, sub)
    return _save_connection(provider, sub, connection, body)


def unlink(provider: Provider, sub: str, connection: str) -> bool:
    row = provider.store.one("SELECT * FROM connections WHERE sub=? AND connection=?", (sub, connection))
    if row is None:
        return False
    tokens = provider.store.unseal(row["secret_blob"])
    if tokens.get("refresh_token"):
        stored = find_token(provider, "upstream", tokens["refresh_token"], "refresh_token")
        if stored is not None:
            revoke_grant(provider, stored.row["grant_id"])
    provider.store.execute("DELETE FROM connections WHERE sub=? AND connection=?", (sub, connection))
    log.info("connection %s unlinked for %s", connection, sub)
    return True


def federated_access_token(provider: Provider, sub: str, connection: str) -> dict[str, Any]:
    """The Token Vault answer: a valid upstream access token, refreshed when needed."""
    row = provider.store.one("SELECT * FROM connections WHERE sub=? AND connection=?", (sub, connection))
    if row is None or row["status"] != "active":
        raise oauth_error(FederatedTokenNotFoundError, "Federated connection Refresh Token not found.")
    tokens = provider.store.unseal(row["secret_blob"])
    current = find_token(provider, "upstream", tokens["access_token"], "access_token")
    if current is not None and not current.is_revoked() and current.row["expires_at"] > provider.now() + 30:
        return {
            "access_token": tokens["access_token"],
            "issued_token_type": TT_FEDERATED,
            "token_type": "Bearer",
            "expires_in": current.row["expires_at"] - provider.now(),
            "scope": row["scope"],
        }
    refresh = tokens.get("refresh_token")
    status, body = (
        (400, {"error": "invalid_grant"})
        if not refresh
        else _internal_upstream_token(provider, {"grant_type": "refresh_token", "refresh_token": refresh})
    )
    if status != 200:
        provider.store.execute(
            "UPDATE connections SET status='needs_reauthorization', updated_at=? "
            "WHERE sub=? AND connection=?",
            (provider.now(), sub, connection),
        )
        log.info(
            "connection %s for %s needs reauthorization (upstream said %s)",
            connection,
            sub,
            body.get("error"),
        )
        raise oauth_error(
            FederatedTokenNotFoundError,
            "Federated connection Refresh Token not found. The upstream grant was revoked or "
            "expired: the user must connect the account again.",
        )
    _save_connection(provider, sub, connection, body)
    provider.count("grants", "federated_refreshed")
    return {
        "access_token": body["access_token"],
        "issued_token_type": TT_FEDERATED,
        "token_type": "Bearer",
        "expires_in": body.get("expires_in", 3600),
        "scope": body.get("scope", row["scope"]),
    }


def upstream_user_action(provider: Provider, sub: str, action: str) -> int:
    """Make the upstream misbehave for one user: ``revoke`` every grant, or ``expire`` access tokens."""
    ts = provider.now()
    if action == "revoke":
        with provider.store.transaction() as db:
            grants = [
                r["grant_id"]
                for r in db.execute(
                    "SELECT grant_id FROM grants WHERE realm='upstream' AND sub=? AND revoked_at IS NULL",
                    (sub,),
                )
            ]
            for grant_id in grants:
                db.execute("UPDATE grants SET revoked_at=? WHERE grant_id=?", (ts, grant_id))
                db.execute("UPDATE refresh_tokens SET revoked_at=? WHERE grant_id=?", (ts, grant_id))
                db.execute("UPDATE access_tokens SET revoked_at=? WHERE grant_id=?", (ts, grant_id))
        return len(grants)
    if action == "expire":
        return provider.store.execute(
            "UPDATE access_tokens SET expires_at=? WHERE realm='upstream' AND sub=? AND expires_at>?",
            (ts - 1, sub, ts),
        )
    raise ValueError("action must be revoke or expire")
