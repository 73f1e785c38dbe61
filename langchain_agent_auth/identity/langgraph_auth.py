"""A ready ``langgraph_sdk.Auth`` handler for deployments on a LangGraph server.

It verifies the ``Authorization: Bearer`` header with a :class:`JWTVerifier`, makes the
verified identity the run's ``langgraph_auth_user`` (which the identity pillar trusts above
anything a client sends), and by default scopes threads, runs, assistants and crons to
their owner.

Example ``auth.py`` next to ``langgraph.json`` (``"auth": {"path": "./auth.py:auth"}``)::

    from langchain_agent_auth.identity.langgraph_auth import langgraph_auth

    auth = langgraph_auth(issuer="https://idp.example", audience="https://agent.example")
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from langchain_agent_auth.core.errors import AgentAuthError, ConfigurationError, TokenValidationError
from langchain_agent_auth.core.identity import ACT_AS_HEADER, UserIdentity, act_as_header
from langchain_agent_auth.oauth.jwt import JWTVerifier

__all__ = ["ACT_AS_HEADER", "SERVICE_PERMISSION", "act_as_header", "langgraph_auth", "server_user"]

#: Permission of a trusted service's own identity (no owner scoping, store access).
SERVICE_PERMISSION = "agent_auth:service"


def server_user(identity: UserIdentity) -> dict[str, Any]:
    """The ``MinimalUserDict`` a LangGraph server keeps for ``identity`` (no token inside).

    Example:
        >>> server_user(UserIdentity(subject="alice", name="Alice"))["identity"]
        'alice'
    """
    return {
        "identity": identity.subject,
        "display_name": identity.display_name,
        "is_authenticated": True,
        "permissions": list(identity.scopes),
        "agent_auth_identity": identity.model_dump(mode="json"),
    }


def langgraph_auth(
    verifier: JWTVerifier | None = None,
    *,
    issuer: str | None = None,
    audience: str | list[str] | None = None,
    owner_scoped: bool = True,
    trusted_services: Collection[str] = (),
    **verifier_kwargs: Any,
) -> Any:
    """Build a ``langgraph_sdk.Auth`` that authenticates requests with our verifier.

    Pass a configured :class:`JWTVerifier`, or ``issuer`` (+ ``audience`` and any
    :class:`JWTVerifier` keyword) to build one. With ``owner_scoped`` (default), each user
    sees only the threads, runs, assistants and crons they created, and store namespaces that
    start with their identity.

    ``trusted_services`` lists client ids whose own client-credentials tokens identify a
    service (the remote resumer): such a service sees every thread and the store, and may
    send :data:`ACT_AS_HEADER` to run on a user's behalf (the run then sees that user, with
    ``act`` naming the service). The header from anyone else is refused with 403.

    Example:
        >>> auth = langgraph_auth(issuer="https://idp.example", audience="api")
        >>> type(auth).__name__
        'Auth'
    """
    try:
        from langgraph_sdk import Auth
    except ImportError as exc:  # pragma: no cover - langgraph-sdk ships with langgraph
        raise ConfigurationError(
            "langgraph_auth() needs langgraph-sdk: pip install 'langchain-agent-auth[server]'"
        ) from exc
    if verifier is None:
        if not issuer:
            raise ConfigurationError("langgraph_auth() needs a JWTVerifier or an issuer")
        verifier = JWTVerifier(issuer, audience=audience, **verifier_kwargs)
    elif issuer or audience or verifier_kwargs:
        raise ConfigurationError("pass either a verifier or issuer/audience settings, not both")

    auth = Auth()
    services = frozenset(trusted_services)

    @auth.authenticate
    async def authenticate(authorization: str | None, headers: Mapping[Any, Any] | None = None) -> dict[str, Any]:
        return await _authenticate(verifier, services, authorization, headers)

    if owner_scoped:
        _scope_to_owner(auth)
    return auth


_BEARER = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def _http_error(status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> Exception:
    from langgraph_sdk import Auth

    return Auth.exceptions.HTTPException(status_code=status_code, detail=detail, headers=headers)


async def _authenticate(verifier: JWTVerifier, services: frozenset[str], authorization: str | None,
                        headers: Mapping[Any, Any] | None) -> dict[str, Any]:
    """The server user for one request: a verified user, a trusted service, or a trusted
    service acting for a user (:data:`ACT_AS_HEADER`); anything else is an HTTP error."""
    if not authorization or not authorization[:7].lower() == "bearer ":
        raise _http_error(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    try:
        claims = await verifier.averify(authorization[7:].strip())
        client = claims.get("client_id") or claims.get("azp")
        act_as = _header(headers, ACT_AS_HEADER)
        # A client-credentials token: sub is the client (Auth0 writes "<client>@clients").
        if isinstance(client, str) and client in services and claims.get("sub") in (client, f"{client}@clients"):
            if act_as:
                return server_user(_acting(claims, act_as, client))
            return {"identity": f"service:{client}", "display_name": client, "is_authenticated": True,
                    "permissions": [SERVICE_PERMISSION]}
        if act_as:
            raise _http_error(403, "only a trusted service may act for a user")
        identity = UserIdentity.from_claims(claims, source="langgraph_server")
    except TokenValidationError as exc:
        raise _http_error(401, f"invalid token ({exc.reason})", _BEARER) from None
    except AgentAuthError as exc:
        raise _http_error(401, str(exc), _BEARER) from None
    return server_user(identity)


def _header(headers: Mapping[Any, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        k = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        if k.lower() == name:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def _acting(claims: Mapping[str, Any], raw: str, client: str) -> UserIdentity:
    try:
        data = json.loads(raw)
        return UserIdentity(
            subject=data["subject"], issuer=data.get("issuer") or claims.get("iss"),
            tenant=data.get("tenant"), claims={"act": {"sub": client}}, source="langgraph_server",
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _http_error(400, f"malformed {ACT_AS_HEADER}") from exc


def _is_service(ctx: Any) -> bool:
    return SERVICE_PERMISSION in (getattr(ctx.user, "permissions", None) or ())


def _scope_to_owner(auth: Any) -> None:
    """Each user sees only what they created, and store namespaces under their identity
    (a trusted service sees everything)."""

    @auth.on
    async def owner_only(ctx: Any, value: Any) -> dict[str, str] | None:
        if _is_service(ctx):
            return None
        owner = {"owner": ctx.user.identity}
        if isinstance(value, dict):
            metadata = value.setdefault("metadata", {})
            if isinstance(metadata, dict):
                metadata.update(owner)
        return owner

    @auth.on.store
    async def own_namespace(ctx: Any, value: Any) -> None:
        if _is_service(ctx):
            return
        namespace = tuple(value.get("namespace") or ())
        if not namespace or namespace[0] != ctx.user.identity:
            value["namespace"] = (ctx.user.identity, *namespace)
