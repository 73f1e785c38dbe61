"""Bringing the user into agents: middleware, a node, a state mixin and a tool guard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain.agents.middleware.types import OmitFromInput
from langchain_core.messages import SystemMessage
from typing_extensions import TypedDict

from langchain_agent_auth._user import (
    IdentityResolver,
    IdentitySource,
    LangGraphServerUserResolver,
    RuntimeContextResolver,
    UserIdentity,
    acting_as,
    user_from_config,
)
from langchain_agent_auth.errors import IdentityError
from langchain_agent_auth.guards import (
    AProceed,
    GuardedCall,
    Proceed,
    ToolGuard,
    awrap_tool_call_with,
    wrap_tool_call_with,
)
from langchain_agent_auth.identity._fields import IDENTITY_FIELDS, find_foreign, replace_at

__all__ = [
    "AuthContext",
    "IdentityGuard",
    "IdentityMiddleware",
    "UserState",
    "aresolve_identity",
    "identity_node",
    "resolve_identity",
]

UserAttr = Literal["subject", "email", "tenant", "key", "issuer"]
_REFUSAL = "This tool acts only for the signed-in user; it cannot act for another user."


class UserState(TypedDict, total=False):
    """State mixin: ``user`` holds the resolved :class:`UserIdentity` as a plain dict.

    Callers cannot set it in the graph input; only the identity middleware or node writes it.

    Example::

        class State(MessagesState, UserState):
            pass
    """

    user: NotRequired[Annotated[dict[str, Any] | None, OmitFromInput]]


class AuthContext(TypedDict, total=False):
    """A runtime context schema for agents: ``create_agent(..., context_schema=AuthContext)``.

    ``user`` is a trusted identity the application resolved; ``access_token`` a bearer token
    for :class:`TokenResolver` to verify. The runtime context is never checkpointed.
    """

    user: UserIdentity
    access_token: str


class _IdentityAgentState(AgentState[Any]):
    user: NotRequired[Annotated[dict[str, Any] | None, OmitFromInput]]


def _default_resolvers() -> list[IdentityResolver]:
    return [LangGraphServerUserResolver(), RuntimeContextResolver()]


def _graph_config() -> Mapping[str, Any] | None:
    try:
        from langgraph.config import get_config

        return get_config()
    except RuntimeError:
        return None


def resolve_identity(resolvers: Sequence[IdentityResolver], source: IdentitySource) -> UserIdentity | None:
    """First identity the resolvers find. The LangGraph server's user always wins: when a
    run comes through a server with auth, the client controls ``context``, so nothing else
    is trusted.

    Example:
        >>> from langchain_agent_auth.identity import RuntimeContextResolver
        >>> src = IdentitySource(context={"user": {"subject": "alice"}})
        >>> resolve_identity([RuntimeContextResolver()], src).subject
        'alice'
    """
    server = user_from_config(source.config)
    if server is not None:
        return server
    for resolver in resolvers:
        user = resolver.resolve(source)
        if user is not None:
            return user
    return None


async def aresolve_identity(resolvers: Sequence[IdentityResolver], source: IdentitySource) -> UserIdentity | None:
    """Async :func:`resolve_identity`."""
    server = user_from_config(source.config)
    if server is not None:
        return server
    for resolver in resolvers:
        user = await resolver.aresolve(source)
        if user is not None:
            return user
    return None


def _missing(required: bool) -> None:
    if required:
        raise IdentityError(
            "no trusted user identity for this run: pass context={'user': UserIdentity(...)} "
            "or a verified token, or run behind a LangGraph server with auth"
        )


class IdentityGuard(ToolGuard):
    """Runs each tool call on behalf of the trusted user and never lets the model pick another.

    Args:
        required: refuse tool calls when no trusted user is known.
        user_args: tool arguments that name a user, mapped to the identity attribute they
            must equal (default ``{"user_id": "subject"}``). A plain name matches that key
            at any depth of the arguments, a dotted path (``"recipient.owner_id"``) that
            location. A model-filled value that differs is refused
            (``on_conflict="refuse"``) or replaced (``"override"``); a missing top-level
            one the tool's schema has is filled from the trusted identity.
        identity_fields: more argument names (compared ignoring case, ``_`` and ``-``)
            that may only name the signed-in user, at any depth (default
            ``IDENTITY_FIELDS``: ``owner_id``, ``account_owner``, ``on_behalf_of``...); a
            value that is not one of the user's identifiers (subject, email, key) is
            refused or, with ``"override"``, replaced by the subject.
        known_users: opt-in: identifiers of other users (a collection, or a predicate
            ``str -> bool``); any argument string equal to one of them, under any key,
            is refused.

    The exact rule is in :mod:`langchain_agent_auth.identity._fields`.

    Example:
        >>> from langchain_core.tools import tool
        >>> from langchain_agent_auth.guards import guard_tool
        >>> from langchain_agent_auth.identity import UserIdentity, acting_as
        >>> @tool
        ... def share(doc: str, grant: dict) -> str:
        ...     '''Share a document.'''
        ...     return "shared"
        >>> with acting_as(UserIdentity(subject="alice")):
        ...     guard_tool(share, IdentityGuard()).invoke({"doc": "d1", "grant": {"owner_id": "bob"}})
        'This tool acts only for the signed-in user; it cannot act for another user.'
    """

    def __init__(
        self,
        *,
        required: bool = True,
        user_args: Mapping[str, UserAttr] | None = None,
        on_conflict: Literal["refuse", "override"] = "refuse",
        identity_fields: Iterable[str] = IDENTITY_FIELDS,
        known_users: Callable[[str], bool] | Iterable[str] | None = None,
    ) -> None:
        if on_conflict not in ("refuse", "override"):
            raise ValueError("on_conflict must be 'refuse' or 'override'")
        if isinstance(identity_fields, str):
            raise ValueError("identity_fields must be a collection of names, not one string")
        if isinstance(known_users, str):
            raise ValueError("known_users must be a collection or a predicate, not one string")
        self.required = required
        self.user_args = dict({"user_id": "subject"} if user_args is None else user_args)
        self.on_conflict = on_conflict
        self.identity_fields = frozenset(identity_fields)
        self.known_users = known_users if known_users is None or callable(known_users) else frozenset(known_users)

    def _bind(self, call: GuardedCall) -> GuardedCall | Any:
        user = call.user
        if user is None:
            if self.required:
                return call.refuse(IdentityError.hint or "", IdentityError("no trusted user identity"))
            return call
        names = _schema_names(call)
        args = dict(call.args)
        changed = False
        for arg, attr in self.user_args.items():
            trusted = getattr(user, attr)
            if arg not in args and arg in names and trusted is not None:
                args[arg], changed = trusted, True
        found = None
        for _ in range(64):
            found = find_foreign(args, user, self.user_args, identity_fields=self.identity_fields,
                                 known_users=self.known_users)
            if found is None:
                return call.with_args(args) if changed else call
            if self.on_conflict == "refuse" or found.replacement is None or not found.parts:
                break
            args, changed = replace_at(args, found.parts, found.replacement), True
        where = found.path if found is not None else "?"
        return call.refuse(_REFUSAL, IdentityError(f"a tool argument ({where}) named another user"))

    def wrap(self, call: GuardedCall, proceed: Proceed) -> Any:
        bound = self._bind(call)
        if not isinstance(bound, GuardedCall):
            return bound
        if bound.user is None:
            return proceed(bound)
        with acting_as(bound.user):
            return proceed(bound)

    async def awrap(self, call: GuardedCall, proceed: AProceed) -> Any:
        bound = self._bind(call)
        if not isinstance(bound, GuardedCall):
            return bound
        if bound.user is None:
            return await proceed(bound)
        with acting_as(bound.user):
            return await proceed(bound)


def _schema_names(call: GuardedCall) -> set[str]:
    if call.tool is None:
        return set()
    schema = call.tool.tool_call_schema
    if isinstance(schema, dict):
        return set((schema.get("properties") or {}).keys())
    return set(getattr(schema, "model_fields", {}))


class IdentityMiddleware(AgentMiddleware[_IdentityAgentState, Any]):
    """Resolves the user once per run into agent state; tools run on that user's behalf.

    Args:
        resolvers: where to look, in order (default: the LangGraph server user, then
            ``context["user"]``). Add a :class:`TokenResolver` to verify a bearer token.
        required: fail the run (``IdentityError``) when no trusted user is found.
        user_args / on_conflict / identity_fields / known_users: see :class:`IdentityGuard`.
        describe_user: add a system note naming the user to every model call.

    Example:
        >>> from langchain_agent_auth.identity import IdentityMiddleware
        >>> mw = IdentityMiddleware()
        >>> sorted(mw.state_schema.__annotations__)
        ['jump_to', 'messages', 'structured_response', 'user']
    """

    state_schema = _IdentityAgentState

    def __init__(
        self,
        resolvers: Sequence[IdentityResolver] | None = None,
        *,
        required: bool = True,
        user_args: Mapping[str, UserAttr] | None = None,
        on_conflict: Literal["refuse", "override"] = "refuse",
        describe_user: bool = False,
        identity_fields: Iterable[str] = IDENTITY_FIELDS,
        known_users: Callable[[str], bool] | Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.resolvers = list(resolvers) if resolvers is not None else _default_resolvers()
        for r in self.resolvers:
            if not isinstance(r, IdentityResolver):
                raise TypeError(f"not an identity resolver: {r!r}")
        self.required = required
        self.describe_user = describe_user
        self.guard = IdentityGuard(required=required, user_args=user_args, on_conflict=on_conflict,
                                   identity_fields=identity_fields, known_users=known_users)

    def _source(self, runtime: Any) -> IdentitySource:
        return IdentitySource(config=_graph_config(), context=getattr(runtime, "context", None))

    def _update(self, user: UserIdentity | None) -> dict[str, Any]:
        if user is None:
            _missing(self.required)
        return {"user": None if user is None else user.model_dump(mode="json")}

    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self._update(resolve_identity(self.resolvers, self._source(runtime)))

    async def abefore_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self._update(await aresolve_identity(self.resolvers, self._source(runtime)))

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return wrap_tool_call_with([self.guard], request, handler)

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        return await awrap_tool_call_with([self.guard], request, handler)

    def _describe(self, request: Any) -> Any:
        user = UserIdentity.coerce((request.state or {}).get("user"), source="state")
        if not self.describe_user or user is None:
            return request
        note = f"You are acting for the signed-in user {user.display_name}"
        note += f" <{user.email}>." if user.email and user.email != user.display_name else "."
        base = request.system_message.content if request.system_message else ""
        text = f"{base}\n\n{note}" if isinstance(base, str) and base else note
        return request.override(system_message=SystemMessage(content=text))

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return handler(self._describe(request))

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        return await handler(self._describe(request))


def identity_node(
    resolvers: Sequence[IdentityResolver] | None = None, *, required: bool = True
) -> Any:
    """A node for hand-built ``StateGraph``s that writes the resolved user into ``state["user"]``.

    Put it first; give the graph a state with :class:`UserState`. Works with ``invoke``
    and ``ainvoke`` (LangGraph picks the async form).

    Example:
        >>> node = identity_node()
        >>> node.name
        'identity'
    """
    from langchain_core.runnables import RunnableLambda

    chain = list(resolvers) if resolvers is not None else _default_resolvers()

    def update(user: UserIdentity | None) -> dict[str, Any]:
        if user is None:
            _missing(required)
        return {"user": None if user is None else user.model_dump(mode="json")}

    def source(config: Any) -> IdentitySource:
        from langgraph.runtime import get_runtime

        try:
            context = get_runtime().context
        except Exception:
            context = None
        return IdentitySource(config=config, context=context)

    def run(state: Any, config: Any) -> dict[str, Any]:
        return update(resolve_identity(chain, source(config)))

    async def arun(state: Any, config: Any) -> dict[str, Any]:
        return update(await aresolve_identity(chain, source(config)))

    return RunnableLambda(run, afunc=arun, name="identity")
