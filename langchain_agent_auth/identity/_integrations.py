"""Bringing the user into agents: middleware, a node, a state mixin and a tool guard.

Every invocation is re-resolved: a new input, a ``Command(resume=...)``, ``invoke(None)``
or a continuation after ``update_state`` all re-enter some node, and each of these
components resolves the caller of *this* invocation there (the server user, then
:func:`acting_as`, then the configured resolvers; ``state["user"]`` is only a record) and
checks it against the thread's owner (:mod:`._owner`) before anything else runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain.agents.middleware.types import OmitFromInput
from langchain_core.messages import SystemMessage
from langchain_core.tools import BaseTool
from typing_extensions import TypedDict, Unpack

from langchain_agent_auth.core._user_fields import IDENTITY_FIELDS, find_foreign, replace_at
from langchain_agent_auth.core.audit._emit import audit_enabled, emit_audit
from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import IdentityError
from langchain_agent_auth.core.guards import (
    GuardedCall,
    GuardedTool,
    OnRefusal,
    Proceed,
    ToolGuard,
    awrap_tool_call_with,
    guard_tool,
    wrap_tool_call_with,
)
from langchain_agent_auth.core.identity import (
    IdentityResolver,
    IdentitySource,
    LangGraphServerUserResolver,
    RuntimeContextResolver,
    UserIdentity,
    acting_as,
    current_acting_user,
    user_from_config,
)
from langchain_agent_auth.identity._owner import (
    ThreadAllow,
    abort_run,
    acheck_thread_access,
    check_thread_access,
    recorded_user,
)

__all__ = [
    "AuthContext",
    "IdentityGuard",
    "IdentityMiddleware",
    "UserState",
    "aresolve_identity",
    "identity_node",
    "resolve_identity",
    "with_identity",
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


def _known(source: IdentitySource) -> UserIdentity | None:
    return user_from_config(source.config) or current_acting_user()


def resolve_identity(resolvers: Sequence[IdentityResolver], source: IdentitySource) -> UserIdentity | None:
    """The caller of this invocation: the LangGraph server's user (when a run comes through
    a server with auth, the client controls ``context``, so nothing else is trusted), else
    the user :func:`acting_as` set, else the first identity the resolvers find.

    Example:
        >>> from langchain_agent_auth.identity import RuntimeContextResolver
        >>> src = IdentitySource(context={"user": {"subject": "alice"}})
        >>> resolve_identity([RuntimeContextResolver()], src).subject
        'alice'
    """
    return run(_resolving(resolvers, source))


async def aresolve_identity(resolvers: Sequence[IdentityResolver], source: IdentitySource) -> UserIdentity | None:
    """Async :func:`resolve_identity`."""
    return await arun(_resolving(resolvers, source))


def _resolving(resolvers: Sequence[IdentityResolver], source: IdentitySource) -> Flow[UserIdentity | None]:
    known = _known(source)
    if known is not None:
        return known
    for resolver in resolvers:
        user = yield Call(lambda r=resolver: r.resolve(source), lambda r=resolver: r.aresolve(source))
        if user is not None:
            return user
    return None


def _audit_resolved(user: UserIdentity | None, config: Any) -> None:
    if user is not None and audit_enabled():
        emit_audit("identity_resolved", user=user.key, channel=user.source, thread_id=_thread_id(config))


def _missing(required: bool) -> None:
    if required:
        err = IdentityError(
            "no trusted user identity for this run: pass context={'user': UserIdentity(...)} "
            "or a verified token, or run behind a LangGraph server with auth"
        )
        raise abort_run(err)


def _thread_id(config: Mapping[str, Any] | None) -> str | None:
    value = ((config or {}).get("configurable") or {}).get("thread_id")
    return None if value is None else str(value)


class _ThreadCheck:
    """Who may use a thread: one helper for the middleware, the node and the guard."""

    def __init__(self, own_threads: bool, allow: ThreadAllow | None) -> None:
        if allow is not None and not callable(allow):
            raise TypeError("allow must be a callable (thread_id, user, owner) -> bool")
        self.own_threads = own_threads
        self.allow = allow

    def flow(self, user: UserIdentity | None, config: Any, store: Any, state: Any) -> Flow[None]:
        """Check ``user`` may use the thread of ``config`` (the owner check's sync or async form)."""
        thread_id = _thread_id(config)
        if self.own_threads and user is not None and thread_id is not None:
            def owner_check(check: Callable[..., Any]) -> Any:
                return check(store, thread_id, user, recorded=lambda: recorded_user(state), allow=self.allow)

            yield Call(lambda: owner_check(check_thread_access), lambda: owner_check(acheck_thread_access))


def _admit(resolvers: Sequence[IdentityResolver], threads: _ThreadCheck, required: bool, source: IdentitySource,
           store: Any, *, audit: bool = True) -> Flow[UserIdentity | None]:
    """Who calls, and whether they may: resolve the caller, fail when one is ``required`` and
    none is found, then check the caller against the thread's owner."""
    user = yield from _resolving(resolvers, source)
    if audit:
        _audit_resolved(user, source.config)
    if user is None:
        _missing(required)
    yield from threads.flow(user, source.config, store, source.state)
    return user


class IdentityGuard(ToolGuard):
    """Runs each tool call on behalf of the caller of this invocation, on threads that caller
    may use, and never lets the model pick another user.

    On every call (a resume re-enters the tool node, not the identity node) it re-resolves
    the caller: the server user, then :func:`acting_as`, then ``resolvers``; checks the
    caller against the thread's owner (raising
    :class:`~langchain_agent_auth.errors.ThreadOwnershipError` before any inner guard,
    pending record or tool runs); and runs the call as that caller.

    Args:
        resolvers: where to look after the server user (default: ``context["user"]``); give
            the same list as your ``identity_node`` (a :class:`TokenResolver` caches each
            verified token, so this costs no second verification).
        required: raise ``IdentityError`` (the run stops, a pause stays) when no trusted
            user is known.
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
        own_threads: check the thread's owner (default); ``allow(thread_id, user, owner)``
            admits other users (e.g. an FGA check), see :func:`share_thread`.
        on_refusal: what a refused argument becomes, as in every pillar: ``"message"`` (an
            error ToolMessage for the model, the run goes on) or ``"raise"`` (the
            ``IdentityError`` propagates). A missing user or a foreign thread always stops
            the run.

    The exact argument rule is in :mod:`langchain_agent_auth.core._user_fields`.

    Example:
        >>> from langchain_core.tools import tool
        >>> from langchain_agent_auth.core.guards import guard_tool
        >>> @tool
        ... def whoami() -> str:
        ...     "Who the tool acts for."
        ...     from langchain_agent_auth.identity import get_current_user
        ...     return get_current_user().subject
        >>> with acting_as(UserIdentity(subject="alice")):
        ...     guard_tool(whoami, IdentityGuard()).invoke({})
        'alice'
    """

    def __init__(
        self,
        resolvers: Sequence[IdentityResolver] | None = None,
        *,
        required: bool = True,
        user_args: Mapping[str, UserAttr] | None = None,
        on_conflict: Literal["refuse", "override"] = "refuse",
        identity_fields: Iterable[str] = IDENTITY_FIELDS,
        known_users: Callable[[str], bool] | Iterable[str] | None = None,
        own_threads: bool = True,
        allow: ThreadAllow | None = None,
        on_refusal: OnRefusal = "message",
    ) -> None:
        if on_conflict not in ("refuse", "override"):
            raise ValueError("on_conflict must be 'refuse' or 'override'")
        if on_refusal not in ("message", "raise"):
            raise ValueError("on_refusal must be 'message' or 'raise'")
        self.on_refusal = on_refusal
        if isinstance(identity_fields, str):
            raise ValueError("identity_fields must be a collection of names, not one string")
        if isinstance(known_users, str):
            raise ValueError("known_users must be a collection or a predicate, not one string")
        self.resolvers = _checked(resolvers)
        self.required = required
        self.user_args = dict({"user_id": "subject"} if user_args is None else user_args)
        self.on_conflict = on_conflict
        self.identity_fields = frozenset(identity_fields)
        self.known_users = known_users if known_users is None or callable(known_users) else frozenset(known_users)
        self.threads = _ThreadCheck(own_threads, allow)

    @staticmethod
    def _source(call: GuardedCall) -> IdentitySource:
        return IdentitySource(config=call.config, context=call.context, state=call.state)

    def _bind(self, call: GuardedCall) -> GuardedCall | Any:
        user = call.user
        if user is None:
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
        return self.refuse(call, _REFUSAL, IdentityError(f"a tool argument ({where}) named another user"))

    def flow(self, call: GuardedCall) -> Flow[Any]:
        """Resolve and admit the caller, bind the arguments to them, run the call as them."""
        user = yield from _admit(self.resolvers, self.threads, self.required, self._source(call), call.store)
        bound = self._bind(replace(call, user=user))
        if not isinstance(bound, GuardedCall):
            return bound
        if user is None:
            return (yield Proceed(bound))
        with acting_as(user):
            return (yield Proceed(bound))


def with_identity(tool: BaseTool, resolvers: Sequence[IdentityResolver] | None = None,
                  **options: Any) -> GuardedTool:
    """``tool`` run through an :class:`IdentityGuard` (``options``: the guard's keywords).

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def send(user_id: str, text: str) -> str:
        ...     "Send a note as the user."
        ...     return f"{user_id}: {text}"
        >>> with acting_as(UserIdentity(subject="alice")):
        ...     with_identity(send).invoke({"user_id": "bob", "text": "hi"})
        'This tool acts only for the signed-in user; it cannot act for another user.'
    """
    return guard_tool(tool, IdentityGuard(resolvers, **options))


def _checked(resolvers: Sequence[IdentityResolver] | None) -> list[IdentityResolver]:
    chain = list(resolvers) if resolvers is not None else _default_resolvers()
    for r in chain:
        if not isinstance(r, IdentityResolver):
            raise TypeError(f"not an identity resolver: {r!r}")
    return chain


def _schema_names(call: GuardedCall) -> set[str]:
    if call.tool is None:
        return set()
    schema = call.tool.tool_call_schema
    if isinstance(schema, dict):
        return set((schema.get("properties") or {}).keys())
    return set(getattr(schema, "model_fields", {}))


class _GuardOptions(TypedDict, total=False):
    """:class:`IdentityGuard`'s keyword options, which :class:`IdentityMiddleware` takes too."""

    required: bool
    user_args: Mapping[str, UserAttr] | None
    on_conflict: Literal["refuse", "override"]
    identity_fields: Iterable[str]
    known_users: Callable[[str], bool] | Iterable[str] | None
    own_threads: bool
    allow: ThreadAllow | None
    on_refusal: OnRefusal


class IdentityMiddleware(AgentMiddleware[_IdentityAgentState, Any]):
    """Resolves the caller of every invocation, keeps threads to their owner, and runs tools
    on that caller's behalf.

    At the start of a run it writes the caller into ``state["user"]`` (a record of who
    started the run). Every model call and tool call re-resolves the caller (a resume or an
    ``invoke(None)`` re-enters the model or tool node, not the start) and checks the
    thread's owner, so another user's ``Command(resume=...)``, continuation or new input is
    refused with :class:`~langchain_agent_auth.errors.ThreadOwnershipError` before any
    model call, guard or tool runs. List it first in ``middleware=[...]``.

    Args:
        resolvers: where to look, in order (default: the LangGraph server user, then
            ``context["user"]``). Add a :class:`TokenResolver` to verify a bearer token.
        describe_user: add a system note naming the user to every model call.
        required, user_args, on_conflict, identity_fields, known_users, own_threads, allow,
            on_refusal: :class:`IdentityGuard`'s options, the same names and defaults
            (``required``: fail the run with ``IdentityError`` when no trusted user is found;
            ``own_threads`` / ``allow``: the thread-owner check and its hook;
            ``on_refusal``: the refusal policy of the tool-call check).

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
        describe_user: bool = False,
        **options: Unpack[_GuardOptions],
    ) -> None:
        super().__init__()
        self.guard = IdentityGuard(resolvers, **options)
        self.resolvers = self.guard.resolvers
        self.required = self.guard.required
        self.describe_user = describe_user
        self.threads = self.guard.threads

    @staticmethod
    def _source(runtime: Any, state: Any) -> IdentitySource:
        config = getattr(runtime, "config", None) or _graph_config()
        return IdentitySource(config=config, context=getattr(runtime, "context", None), state=state)

    def _admitted(self, runtime: Any, state: Any, *, audit: bool = True) -> Flow[UserIdentity | None]:
        source = self._source(runtime, state)
        return _admit(self.resolvers, self.threads, self.required, source, getattr(runtime, "store", None),
                      audit=audit)

    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return _user_update(run(self._admitted(runtime, state)))

    async def abefore_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return _user_update(await arun(self._admitted(runtime, state)))

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return wrap_tool_call_with([self.guard], request, handler)

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        return await awrap_tool_call_with([self.guard], request, handler)

    def _describe(self, request: Any, user: UserIdentity | None) -> Any:
        if not self.describe_user or user is None:
            return request
        note = f"You are acting for the signed-in user {user.display_name}"
        note += f" <{user.email}>." if user.email and user.email != user.display_name else "."
        base = request.system_message.content if request.system_message else ""
        text = f"{base}\n\n{note}" if isinstance(base, str) and base else note
        return request.override(system_message=SystemMessage(content=text))

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        user = run(self._admitted(getattr(request, "runtime", None), request.state, audit=False))
        return handler(self._describe(request, user))

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        user = await arun(self._admitted(getattr(request, "runtime", None), request.state, audit=False))
        return await handler(self._describe(request, user))


def _user_update(user: UserIdentity | None) -> dict[str, Any]:
    """The state update recording who started the run."""
    return {"user": None if user is None else user.model_dump(mode="json")}


def identity_node(
    resolvers: Sequence[IdentityResolver] | None = None,
    *,
    required: bool = True,
    own_threads: bool = True,
    allow: ThreadAllow | None = None,
) -> Any:
    """A node for hand-built ``StateGraph``s that resolves the caller, checks the thread's
    owner and records the caller in ``state["user"]``.

    Put it first; give the graph a state with :class:`UserState`. A resume re-enters the
    interrupted node, not this one: put an :class:`IdentityGuard` with the same
    ``resolvers`` in the tool node so every invocation is re-resolved there too. Works with
    ``invoke`` and ``ainvoke`` (LangGraph picks the async form).

    Example:
        >>> node = identity_node()
        >>> node.name
        'identity'
    """
    from langchain_core.runnables import RunnableLambda

    chain = _checked(resolvers)
    threads = _ThreadCheck(own_threads, allow)

    def runtime() -> Any:
        from langgraph.runtime import get_runtime

        try:
            return get_runtime()
        except Exception:
            return None

    def admitted(state: Any, config: Any) -> Flow[UserIdentity | None]:
        rt = runtime()
        source = IdentitySource(config=config, context=getattr(rt, "context", None), state=state)
        return _admit(chain, threads, required, source, getattr(rt, "store", None))

    def node(state: Any, config: Any) -> dict[str, Any]:
        return _user_update(run(admitted(state, config)))

    async def anode(state: Any, config: Any) -> dict[str, Any]:
        return _user_update(await arun(admitted(state, config)))

    return RunnableLambda(node, afunc=anode, name="identity")
