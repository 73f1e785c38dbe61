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

from typing import Any

from langchain_agent_auth._user import UserIdentity
from langchain_agent_auth.errors import AgentAuthError, ConfigurationError, TokenValidationError
from langchain_agent_auth.oauth.jwt import JWTVerifier

__all__ = ["langgraph_auth", "server_user"]


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
    **verifier_kwargs: Any,
) -> Any:
    """Build a ``langgraph_sdk.Auth`` that authenticates requests with our verifier.

    Pass a configured :class:`JWTVerifier`, or ``issuer`` (+ ``audience`` and any
    :class:`JWTVerifier` keyword) to build one. With ``owner_scoped`` (default), each user
    sees only the threads, runs, assistants and crons they created.

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
    bearer = {"WWW-Authenticate": 'Bearer error="invalid_token"'}

    @auth.authenticate
    async def authenticate(authorization: str | None) -> dict[str, Any]:
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise Auth.exceptions.HTTPException(
                status_code=401, detail="missing bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            claims = await verifier.averify(authorization[7:].strip())
            identity = UserIdentity.from_claims(claims, source="langgraph_server")
        except TokenValidationError as exc:
            raise Auth.exceptions.HTTPException(
                status_code=401, detail=f"invalid token ({exc.reason})", headers=bearer
            ) from None
        except AgentAuthError as exc:
            raise Auth.exceptions.HTTPException(status_code=401, detail=str(exc), headers=bearer) from None
        return server_user(identity)

    if owner_scoped:

        @auth.on
        async def owner_only(ctx: Any, value: Any) -> dict[str, str]:
            owner = {"owner": ctx.user.identity}
            if isinstance(value, dict):
                metadata = value.setdefault("metadata", {})
                if isinstance(metadata, dict):
                    metadata.update(owner)
            return owner

    return auth
