"""The user model, trusted channels, accessors and the basic resolvers.

The user reaches the agent from one of these channels, never from model output:

* a bearer token verified against an issuer (:class:`TokenResolver`);
* the LangGraph runtime context passed by the application (``context=`` on invoke);
* the LangGraph server's authenticated user (``config["configurable"]["langgraph_auth_user"]``);
* explicit configuration for scripts (:class:`StaticResolver`, :func:`acting_as`).

Tools read the user with :func:`get_current_user`; a tool argument the model fills can
never name or change the user. The user is the caller of the current invocation (resumes
included); graph state only records who started a run.

Example:
    >>> from langchain_agent_auth.identity import UserIdentity, acting_as, get_current_user
    >>> with acting_as(UserIdentity(subject="alice", name="Alice")):
    ...     get_current_user().subject
    'alice'
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_agent_auth.core.errors import IdentityError

__all__ = [
    "ACT_AS_HEADER",
    "DEFAULT_CLAIMS",
    "IdentityResolver",
    "IdentitySource",
    "LangGraphServerUserResolver",
    "RuntimeContextResolver",
    "StaticResolver",
    "UserIdentity",
    "act_as_header",
    "acting_as",
    "get_current_user",
    "identity_from_sources",
    "user_from_config",
    "user_from_context",
    "user_from_state",
]

IdentitySourceName = Literal["token", "runtime_context", "langgraph_server", "config", "state"]

# Claims copied into ``UserIdentity.claims`` by default. Never the raw token, never secrets.
DEFAULT_CLAIMS: tuple[str, ...] = (
    "preferred_username",
    "given_name",
    "family_name",
    "email_verified",
    "locale",
    "acr",
    "amr",
    "auth_time",
    "azp",
    "client_id",
)
_FORBIDDEN_CLAIMS = frozenset(
    {"access_token", "refresh_token", "id_token", "client_secret", "password", "token"}
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UserIdentity(BaseModel):
    """A verified user, as the agent sees it. Holds claims, never the raw token.

    ``key`` is the stable per-user cache key (issuer, tenant and subject) every pillar
    uses, so one user's cached credential can never be served to another.

    Example:
        >>> u = UserIdentity(subject="alice", issuer="https://idp.example", scopes=("openid",))
        >>> u.key
        'https://idp.example|-|alice'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(min_length=1, max_length=255)
    issuer: str | None = Field(default=None, max_length=2048)
    tenant: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=255)
    scopes: tuple[str, ...] = ()
    claims: dict[str, Any] = Field(default_factory=dict)
    source: IdentitySourceName = "config"

    @field_validator("subject", "tenant")
    @classmethod
    def _no_control_chars(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("claims")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = _FORBIDDEN_CLAIMS.intersection(value)
        if bad:
            raise ValueError(f"claims must not carry credentials: {sorted(bad)}")
        return value

    @property
    def key(self) -> str:
        """Per-user cache key: ``issuer|tenant|subject``."""
        return f"{self.issuer or '-'}|{self.tenant or '-'}|{self.subject}"

    @property
    def display_name(self) -> str:
        """A name to greet the user by: name, email or subject."""
        return self.name or self.email or self.subject

    @classmethod
    def from_claims(
        cls,
        claims: Mapping[str, Any],
        *,
        source: IdentitySourceName = "token",
        include: Sequence[str] = DEFAULT_CLAIMS,
        tenant_claim: str | Sequence[str] = ("org_id", "tenant", "tid"),
    ) -> UserIdentity:
        """Build an identity from verified JWT claims (``sub`` is required).

        Example:
            >>> UserIdentity.from_claims({"sub": "bob", "iss": "https://i", "scope": "a b"}).scopes
            ('a', 'b')
        """
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise IdentityError("the verified claims have no usable 'sub'")
        scope = claims.get("scope", claims.get("scp", ()))
        if isinstance(scope, str):
            scopes = tuple(s for s in scope.split(" ") if s)
        elif isinstance(scope, (list, tuple)):
            scopes = tuple(str(s) for s in scope)
        else:
            scopes = ()
        tenant = None
        for name in (tenant_claim,) if isinstance(tenant_claim, str) else tenant_claim:
            if isinstance(claims.get(name), str):
                tenant = claims[name]
                break
        kept = {k: claims[k] for k in include if k in claims and k not in _FORBIDDEN_CLAIMS}
        iss = claims.get("iss")
        email = claims.get("email")
        name = claims.get("name")
        return cls(
            subject=sub,
            issuer=iss if isinstance(iss, str) else None,
            tenant=tenant,
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
            scopes=scopes,
            claims=kept,
            source=source,
        )

    @classmethod
    def coerce(cls, value: Any, *, source: IdentitySourceName) -> UserIdentity | None:
        """Turn what a trusted channel carries into an identity, or ``None``.

        Accepts a :class:`UserIdentity`, its dict form, a claims dict with ``sub``, or an
        object with an ``identity`` (LangGraph server users) or ``sub`` attribute.
        """
        if value is None:
            return None
        if isinstance(value, UserIdentity):
            return value
        if isinstance(value, Mapping):
            if "subject" in value:
                data = {k: v for k, v in value.items() if k in cls.model_fields}
                data.setdefault("source", source)
                return cls.model_validate(data)
            if "sub" in value:
                return cls.from_claims(value, source=source)
            if "identity" in value and isinstance(value["identity"], str):
                return _from_server_user(value, source)
            return None
        identity = getattr(value, "identity", None)
        if isinstance(identity, str):
            return _from_server_user(value, source)
        return None


def _from_server_user(user: Any, source: IdentitySourceName) -> UserIdentity | None:
    """A LangGraph server user (``BaseUser`` / ``MinimalUserDict``) to an identity."""

    def get(name: str) -> Any:
        if isinstance(user, Mapping):
            return user.get(name)
        try:
            return user[name]
        except (KeyError, TypeError, IndexError):
            return getattr(user, name, None)

    subject = get("identity")
    if not isinstance(subject, str) or not subject or get("is_authenticated") is False:
        return None
    # Our Auth handler (``langgraph_auth`` module) stores the verified identity whole.
    stored = get("agent_auth_identity")
    if isinstance(stored, Mapping) and stored.get("subject") == subject:
        return UserIdentity.model_validate({**stored, "source": source})
    perms = get("permissions") or ()
    name = get("display_name")
    return UserIdentity(
        subject=subject,
        name=name if isinstance(name, str) and name != subject else None,
        scopes=tuple(str(p) for p in perms),
        source=source,
    )


# --------------------------------------------------------------------------- accessors

_CURRENT_USER: contextvars.ContextVar[UserIdentity | None] = contextvars.ContextVar(
    "langchain_agent_auth_current_user", default=None
)


#: Header a trusted service (the remote resumer) sends to run on a user's behalf.
ACT_AS_HEADER = "x-agent-auth-act-as"


def act_as_header(user: UserIdentity | dict[str, Any]) -> dict[str, str]:
    """The header that asks the server to run as ``user`` (honoured for trusted services only).

    Example:
        >>> act_as_header(UserIdentity(subject="alice"))
        {'x-agent-auth-act-as': '{"subject":"alice"}'}
    """
    data = user.model_dump(include={"subject", "issuer", "tenant"}) if isinstance(user, UserIdentity) else user
    compact = {k: v for k, v in data.items() if k in ("subject", "issuer", "tenant") and v}
    return {ACT_AS_HEADER: json.dumps(compact, separators=(",", ":"))}


@contextmanager
def acting_as(user: UserIdentity) -> Iterator[UserIdentity]:
    """Run a block of code on behalf of ``user`` (scripts, tests, middleware).

    Example:
        >>> with acting_as(UserIdentity(subject="bob")) as u:
        ...     u.subject
        'bob'
    """
    if not isinstance(user, UserIdentity):
        raise TypeError("acting_as() needs a UserIdentity")
    token = _CURRENT_USER.set(user)
    try:
        yield user
    finally:
        _CURRENT_USER.reset(token)


def user_from_config(config: Mapping[str, Any] | None) -> UserIdentity | None:
    """The LangGraph server's authenticated user, if the run came through a server."""
    if not config:
        return None
    configurable = config.get("configurable") or {}
    return UserIdentity.coerce(configurable.get("langgraph_auth_user"), source="langgraph_server")


def user_from_context(context: Any) -> UserIdentity | None:
    """The user the application put into the LangGraph runtime context.

    Recognised shapes: a :class:`UserIdentity`; a mapping or object with a ``user``
    attribute holding one (or its dict form).
    """
    if context is None:
        return None
    if isinstance(context, UserIdentity):
        return context
    user = context.get("user") if isinstance(context, Mapping) else getattr(context, "user", None)
    return UserIdentity.coerce(user, source="runtime_context")


def user_from_state(state: Any) -> UserIdentity | None:
    """The user our middleware or node recorded in graph state (key ``user``): who started
    the run. A record to read, never a source of the current caller."""
    if state is None:
        return None
    value = state.get("user") if isinstance(state, Mapping) else getattr(state, "user", None)
    return UserIdentity.coerce(value, source="state")


def _graph_config() -> Mapping[str, Any] | None:
    try:
        from langgraph.config import get_config

        return get_config()
    except RuntimeError:
        return None


def _graph_context() -> Any:
    try:
        from langgraph.runtime import get_runtime

        return get_runtime().context
    except (RuntimeError, KeyError, AttributeError):
        return None


def current_acting_user() -> UserIdentity | None:
    """The user :func:`acting_as` set for the current call, if any."""
    return _CURRENT_USER.get()


def identity_from_sources(
    *,
    config: Mapping[str, Any] | None = None,
    context: Any = None,
) -> UserIdentity | None:
    """Find the caller of *this* invocation from trusted channels, in this order.

    1. the LangGraph server's authenticated user: when a run came through a server with
       auth, it is the only source (the client controls ``context`` there);
    2. the user set by :func:`acting_as` or by this toolkit's identity guard for this call;
    3. the runtime context the application passed to this ``invoke`` / ``ainvoke``.

    Graph state is never a source: ``state["user"]`` records who started the run, and a
    resume or continuation may come from someone else (who is then refused, see
    :func:`~langchain_agent_auth.identity.check_thread_access`).

    Example:
        >>> identity_from_sources(context={"user": {"subject": "bob"}}).subject
        'bob'
    """
    server_user = user_from_config(config)
    if server_user is not None:
        return server_user
    current = _CURRENT_USER.get()
    if current is not None:
        return current
    return user_from_context(context)


def get_current_user(runtime: Any = None, *, required: bool = True) -> UserIdentity | None:
    """The user the current tool call acts for: the caller of this invocation.

    Inside a graph it reads the server user, the user the toolkit's identity guard
    resolved for this call (``IdentityMiddleware`` / ``IdentityGuard``, which also verify
    tokens), and the runtime context; pass a tool's ``ToolRuntime`` as ``runtime`` to read
    its config and context directly. Outside a graph, what :func:`acting_as` set. Raises
    :class:`IdentityError` when none is found and ``required`` is true.

    Example:
        >>> with acting_as(UserIdentity(subject="alice")):
        ...     get_current_user().subject
        'alice'
        >>> get_current_user(required=False) is None
        True
    """
    if runtime is not None:
        user = identity_from_sources(
            config=getattr(runtime, "config", None),
            context=getattr(runtime, "context", None),
        )
    else:
        user = identity_from_sources(config=_graph_config(), context=_graph_context())
    if user is None and required:
        raise IdentityError(
            "no trusted user identity: pass context={'user': UserIdentity(...)} on invoke, "
            "add IdentityMiddleware, run behind a LangGraph server with auth, or use acting_as()"
        )
    return user


# --------------------------------------------------------------------------- resolvers


class IdentitySource(BaseModel):
    """What a resolver may look at: the run's config, runtime context and state."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: Mapping[str, Any] | None = None
    context: Any = None
    state: Any = None


@runtime_checkable
class IdentityResolver(Protocol):
    """Finds the user in a trusted channel, or returns ``None`` to let the next one try."""

    def resolve(self, source: IdentitySource) -> UserIdentity | None: ...

    async def aresolve(self, source: IdentitySource) -> UserIdentity | None: ...


class StaticResolver:
    """Always the same user: for scripts, notebooks and tests.

    Example:
        >>> StaticResolver(UserIdentity(subject="alice")).resolve(IdentitySource()).subject
        'alice'
    """

    def __init__(self, user: UserIdentity) -> None:
        if not isinstance(user, UserIdentity):
            raise TypeError("StaticResolver needs a UserIdentity")
        self.user = user

    def resolve(self, source: IdentitySource) -> UserIdentity | None:
        return self.user

    async def aresolve(self, source: IdentitySource) -> UserIdentity | None:
        return self.user


class RuntimeContextResolver:
    """The user the application put into the runtime context (``context={"user": ...}``).

    Example:
        >>> r = RuntimeContextResolver()
        >>> r.resolve(IdentitySource(context={"user": {"subject": "bob"}})).subject
        'bob'
    """

    def resolve(self, source: IdentitySource) -> UserIdentity | None:
        return user_from_context(source.context)

    async def aresolve(self, source: IdentitySource) -> UserIdentity | None:
        return self.resolve(source)


class LangGraphServerUserResolver:
    """The LangGraph server's authenticated user (``langgraph_auth_user``).

    Example:
        >>> cfg = {"configurable": {"langgraph_auth_user": {"identity": "carol"}}}
        >>> LangGraphServerUserResolver().resolve(IdentitySource(config=cfg)).subject
        'carol'
    """

    def resolve(self, source: IdentitySource) -> UserIdentity | None:
        return user_from_config(source.config)

    async def aresolve(self, source: IdentitySource) -> UserIdentity | None:
        return self.resolve(source)
