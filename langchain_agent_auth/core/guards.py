"""Tool guards: the one extension point every pillar plugs into.

A :class:`ToolGuard` wraps one tool call: it may look at the call, pause the graph,
fetch a credential, refuse, or edit the arguments, then hand the call on with
``proceed(call)``. Guards compose: the same guard objects run

* around any ``BaseTool`` through :func:`guard_tool` / :class:`GuardedTool`
  (keeps name, description, args schema, return_direct and response_format; works for
  tools whose ``args_schema`` is a JSON-schema dict, such as MCP tools);
* inside ``langchain.agents.create_agent`` through :class:`ToolGuardMiddleware`;
* in a hand-built ``StateGraph`` through :func:`guarded_tool_node`.

A guard is written once, as a flow of the core effect runtime
(:mod:`langchain_agent_auth.core.effects`): :meth:`ToolGuard.flow` yields the I/O it needs
(HTTP requests, store operations, :class:`~langchain_agent_auth.core.effects.Call` steps with
a sync and an async implementation) and ``yield Proceed(call)`` to hand the call on; it returns
the result, or ``call.refuse(...)``. ``wrap`` (``invoke``) and ``awrap`` (``ainvoke``) are the
runtime's two drivers over that one flow. (A guard may still implement ``wrap`` and ``awrap``
itself instead.)

Example:
    >>> from langchain_core.tools import tool
    >>> class Shout(ToolGuard):
    ...     def flow(self, call):
    ...         if not call.args["text"]:
    ...             return call.refuse("Say something.")
    ...         return (yield Proceed(call.with_args({"text": call.args["text"].upper()})))
    >>> @tool
    ... def echo(text: str) -> str:
    ...     '''Echo the text.'''
    ...     return text
    >>> guard_tool(echo, Shout()).invoke({"text": "hi"})
    'HI'
    >>> import asyncio
    >>> asyncio.run(guard_tool(echo, Shout()).ainvoke({"text": "hi"}))
    'HI'
    >>> guard_tool(echo, Shout()).invoke({"text": ""})
    'Say something.'
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.runtime import get_runtime as _get_runtime
from pydantic import BaseModel, PrivateAttr

from langchain_agent_auth.core._http import HTTPClients
from langchain_agent_auth.core.audit._emit import audit_call, audit_enabled
from langchain_agent_auth.core.effects import Call, Flow, Step, arun, run
from langchain_agent_auth.core.errors import AgentAuthError
from langchain_agent_auth.core.identity import UserIdentity, identity_from_sources

__all__ = [
    "GuardedCall",
    "GuardedTool",
    "OnRefusal",
    "Proceed",
    "Refusal",
    "ToolGuard",
    "ToolGuardMiddleware",
    "guard_tool",
    "guarded_tool_node",
]

ProceedFn = Callable[["GuardedCall"], Any]
AProceedFn = Callable[["GuardedCall"], Awaitable[Any]]
#: A guard's refusal policy (see :attr:`ToolGuard.on_refusal`).
OnRefusal = Literal["message", "raise"]


@dataclass(frozen=True)
class Refusal:
    """A guard's "no": a short message for the model and the typed error behind it."""

    message: str
    error: AgentAuthError | None = None
    #: Extra ``response_metadata`` for the error ToolMessage (e.g. the fga decision).
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardedCall:
    """One tool call as guards see it.

    ``args`` are the arguments the model chose (after any edit), without values LangGraph
    injects (state, store, runtime, tool_call_id); ``injected`` keeps those apart so an
    edit or a digest never touches them.
    """

    name: str
    args: Mapping[str, Any]
    tool_call_id: str | None = None
    config: RunnableConfig = field(default_factory=dict)  # type: ignore[assignment]
    user: UserIdentity | None = None
    tool: BaseTool | None = None
    state: Any = None
    context: Any = None
    store: Any = None
    injected: Mapping[str, Any] = field(default_factory=dict)
    stream_writer: Callable[[Any], None] | None = None

    @property
    def thread_id(self) -> str | None:
        """The LangGraph thread id, if the call runs in a graph with a checkpointer."""
        value = (self.config.get("configurable") or {}).get("thread_id")
        return None if value is None else str(value)

    @property
    def can_pause(self) -> bool:
        """Whether a pause here can be resumed: a thread id, and a checkpointer when the call
        runs inside LangGraph (which names the graph's checkpointer in the config, ``None`` when
        the graph was compiled without one)."""
        configurable = self.config.get("configurable") or {}
        if self.thread_id is None:
            return False
        return configurable.get("__pregel_checkpointer", True) is not None

    @property
    def checkpoint_ns(self) -> str:
        """The checkpoint namespace (empty string at the top level)."""
        return str((self.config.get("configurable") or {}).get("checkpoint_ns") or "")

    @property
    def call_key(self) -> str:
        """Identifies this pending call across node re-runs: thread, namespace, call id."""
        return f"{self.thread_id or '-'}|{self.checkpoint_ns}|{self.tool_call_id or '-'}"

    def with_args(self, args: Mapping[str, Any]) -> GuardedCall:
        """The same call with new model arguments (injected values are kept)."""
        return replace(self, args=dict(args))

    def full_args(self) -> dict[str, Any]:
        """Model arguments plus injected values: what the tool itself receives."""
        return {**self.args, **self.injected}

    def refuse(self, message: str, error: AgentAuthError | None = None) -> Refusal:
        """A refusal the adapters turn into an error ToolMessage for the model."""
        return Refusal(message=message, error=error)

    def warn_no_user(self, pillar: str) -> None:
        """Tell the developer (a WARNING on ``langchain_agent_auth.<pillar>``) that a guard
        refused ``self`` for want of a trusted user: the model only sees a refusal, while the
        cause is the graph's setup."""
        logging.getLogger(f"langchain_agent_auth.{pillar}").warning(
            "%s refused tool %r: no trusted user identity. Add IdentityMiddleware() (or identity_node) "
            "before the tools and pass the user through a trusted channel: the runtime context "
            "(invoke(..., context=...)), acting_as(user), or the LangGraph server's auth", pillar, self.name)

    def write(self, chunk: Any) -> None:
        """Send progress to LangGraph's custom stream, if there is one."""
        if self.stream_writer is not None:
            self.stream_writer(chunk)


@dataclass(frozen=True)
class Proceed:
    """A guard flow's step: hand ``call`` on to the next guard or the tool; the answer is
    what the tool returned."""

    call: GuardedCall


class ToolGuard:
    """Wraps tool calls: one :meth:`flow` (or a ``wrap`` / ``awrap`` pair) per guard.

    Never catch ``GraphBubbleUp`` (LangGraph's interrupts) in a guard.
    """

    #: Which tools this guard applies to when used from a middleware; ``None`` = all.
    tools: frozenset[str] | None = None
    #: The HTTP clients the guard's flow sends its requests with (``None``: it sends none).
    http_clients: HTTPClients | None = None
    #: What a "no" becomes, the same in every pillar: ``"message"`` (a short error
    #: ToolMessage for the model, the run goes on) or ``"raise"`` (the typed error propagates).
    on_refusal: OnRefusal = "message"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "__abstractmethods__", None):
            return
        has_flow = cls.flow is not ToolGuard.flow
        has_pair = cls.wrap is not ToolGuard.wrap and cls.awrap is not ToolGuard.awrap
        if not (has_flow or has_pair):
            raise TypeError(f"{cls.__name__} must define flow() (or both wrap() and awrap())")

    def applies_to(self, tool_name: str) -> bool:
        """Whether a middleware should run this guard for ``tool_name``."""
        return self.tools is None or tool_name in self.tools

    def flow(self, call: GuardedCall) -> Flow[Any]:
        """The guard, written once: yield steps and ``Proceed(call)``; return the result."""
        raise NotImplementedError(f"{type(self).__name__} defines no flow()")

    def refuse(
        self,
        call: GuardedCall,
        message: str,
        error: AgentAuthError | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> Refusal:
        """Say no to ``call`` under this guard's :attr:`on_refusal` policy: a :class:`Refusal`
        for the model (``metadata`` goes to the ToolMessage's ``response_metadata``), or
        ``error`` raised when the policy is ``"raise"``."""
        if self.on_refusal == "raise" and error is not None:
            raise error
        refusal = call.refuse(message, error)
        return replace(refusal, metadata=dict(metadata)) if metadata else refusal

    def store_for(self, call: GuardedCall) -> Any:
        """The store the flow's ``StoreOps`` run against (default: the graph's store)."""
        return call.store

    def wrap(self, call: GuardedCall, proceed: ProceedFn) -> Any:
        """Run the guard synchronously (the flow under the blocking driver)."""
        http = self.http_clients.sync_on_demand if self.http_clients is not None else None
        return run(_Proceeding(self.flow(call), proceed), http=http, store=self.store_for(call))  # type: ignore[arg-type]

    async def awrap(self, call: GuardedCall, proceed: AProceedFn) -> Any:
        """Run the guard asynchronously (the flow under the event-loop driver)."""
        http = self.http_clients.async_on_demand if self.http_clients is not None else None
        return await arun(_Proceeding(self.flow(call), proceed), http=http,  # type: ignore[arg-type]
                          store=self.store_for(call))


class _Proceeding:
    """A guard's flow as the drivers see it: each :class:`Proceed` step becomes a
    :class:`~langchain_agent_auth.core.effects.Call` of ``proceed`` (the next guard, or the
    tool); every other step, answer and error passes through unchanged."""

    def __init__(self, flow: Flow[Any], proceed: Callable[[GuardedCall], Any]) -> None:
        self._flow = flow
        self._proceed = proceed

    def __iter__(self) -> _Proceeding:
        return self

    def __next__(self) -> Step:
        return self._step(next(self._flow))

    def send(self, value: Any) -> Step:
        return self._step(self._flow.send(value))

    def throw(self, error: BaseException) -> Step:
        return self._step(self._flow.throw(error))

    def close(self) -> None:
        self._flow.close()

    def _step(self, step: Step | Proceed) -> Step:
        if isinstance(step, Proceed):
            call, proceed = step.call, self._proceed
            return Call(lambda: proceed(call), lambda: proceed(call))
        return step


def _audit_scope(call: GuardedCall) -> AbstractContextManager[Any]:
    if not audit_enabled():
        return nullcontext()
    return audit_call(call.name, call.thread_id, call.tool_call_id, call.user.key if call.user else None)


def _chain(guards: Sequence[ToolGuard], call: GuardedCall, final: Callable[[GuardedCall], Any], method: str) -> Any:
    """``guards`` (first = outermost) around ``final`` through each guard's ``method``
    (``"wrap"``, or ``"awrap"``: then every link, and the result, is an awaitable)."""

    def step(index: int, current: GuardedCall) -> Any:
        if index == len(guards):
            return final(current)
        return getattr(guards[index], method)(current, lambda nxt: step(index + 1, nxt))

    return step(0, call)


def _run_chain(guards: Sequence[ToolGuard], call: GuardedCall, final: ProceedFn) -> Any:
    with _audit_scope(call):
        return _chain(guards, call, final, "wrap")


async def _arun_chain(guards: Sequence[ToolGuard], call: GuardedCall, final: AProceedFn) -> Any:
    with _audit_scope(call):
        return await _chain(guards, call, final, "awrap")


# --------------------------------------------------------------------------- helpers


def _model_arg_names(tool: BaseTool | None) -> set[str] | None:
    """Names the model may fill (the tool-call schema), or ``None`` if unknown."""
    if tool is None:
        return None
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return set((schema.get("properties") or {}).keys())
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return set(schema.model_fields)
    return None


def split_args(tool: BaseTool | None, args: Mapping[str, Any]) -> tuple[dict, dict]:
    """Split arguments into (model-filled, injected)."""
    return _split(_model_arg_names(tool), args)


def _split(names: set[str] | None, args: Mapping[str, Any]) -> tuple[dict, dict]:
    if names is None:
        return dict(args), {}
    model = {k: v for k, v in args.items() if k in names}
    injected = {k: v for k, v in args.items() if k not in names}
    return model, injected


def _graph_extras() -> tuple[Any, Any, Callable[[Any], None] | None]:
    """Context, store and stream writer of the surrounding graph run, if any."""
    try:  # a plain try: this runs on every guarded call (hot path)
        runtime = _get_runtime()
        return runtime.context, runtime.store, runtime.stream_writer
    except Exception:  # outside a graph run (no runtime in the config)
        return None, None, None


def _refusal_output(refusal: Refusal, name: str, tool_call_id: str | None) -> Any:
    if tool_call_id is None:
        return refusal.message
    extra = {"response_metadata": dict(refusal.metadata)} if refusal.metadata else {}
    return ToolMessage(content=refusal.message, name=name, tool_call_id=tool_call_id, status="error", **extra)


def _is_tool_call(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "tool_call" and "args" in value


# --------------------------------------------------------------------------- BaseTool wrapper


class GuardedTool(BaseTool):
    """A ``BaseTool`` run through a chain of guards; looks exactly like the tool it wraps.

    Wrapping a ``GuardedTool`` again adds the new guards outside the existing ones, so
    wrappers from different pillars compose in any order without nesting tools.
    """

    inner: BaseTool
    guards: tuple[ToolGuard, ...] = ()
    # the inner tool's model-filled argument names, computed once (tool_call_schema is not free)
    _arg_names: tuple[set[str] | None] | None = PrivateAttr(default=None)

    def __init__(self, inner: BaseTool, guards: Iterable[ToolGuard], **kwargs: Any) -> None:
        new = tuple(guards)
        for g in new:
            if not isinstance(g, ToolGuard):
                raise TypeError(f"not a ToolGuard: {g!r}")
        if isinstance(inner, GuardedTool):
            new, inner = new + inner.guards, inner.inner
        if not isinstance(inner, BaseTool):
            raise TypeError(f"guard_tool() needs a BaseTool, got {type(inner).__name__}")
        super().__init__(
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            response_format=inner.response_format,
            tags=inner.tags,
            metadata=inner.metadata,
            extras=getattr(inner, "extras", None),
            inner=inner,
            guards=new,
            **kwargs,
        )

    # BaseTool needs these, but every call goes through invoke/ainvoke below.
    def _run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not reached
        raise NotImplementedError("GuardedTool runs through invoke()")

    def _call(self, value: Any, config: RunnableConfig | None) -> tuple[GuardedCall, Any]:
        config = config or {}
        if _is_tool_call(value):
            raw_args, call_id = dict(value["args"]), value.get("id")
        elif isinstance(value, dict):
            raw_args, call_id = dict(value), None
        else:
            names = list(self.inner.args)
            key = names[0] if len(names) == 1 else "input"
            raw_args, call_id = {key: value}, None
        if self._arg_names is None:
            self._arg_names = (_model_arg_names(self.inner),)
        model_args, injected = _split(self._arg_names[0], raw_args)
        context, store, writer = _graph_extras()
        user = identity_from_sources(config=config, context=context)
        call = GuardedCall(
            name=self.name,
            args=model_args,
            tool_call_id=call_id,
            config=config,
            user=user,
            tool=self.inner,
            context=context,
            store=store,
            injected=injected,
            stream_writer=writer,
        )
        return call, value

    def _input_for(self, original: Any, call: GuardedCall) -> Any:
        if _is_tool_call(original):
            return {**original, "args": call.full_args()}
        if isinstance(original, dict):
            return call.full_args()
        if len(call.args) == 1 and next(iter(call.args.values())) == original:
            return original
        return call.full_args()

    def _finish(self, result: Any, call_id: str | None) -> Any:
        if isinstance(result, Refusal):
            return _refusal_output(result, self.name, call_id)
        return result

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        call, original = self._call(input, config)
        result = _run_chain(
            self.guards,
            call,
            lambda c: self.inner.invoke(self._input_for(original, c), config, **kwargs),
        )
        return self._finish(result, call.tool_call_id)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        call, original = self._call(input, config)

        async def final(c: GuardedCall) -> Any:
            return await self.inner.ainvoke(self._input_for(original, c), config, **kwargs)

        result = await _arun_chain(self.guards, call, final)
        return self._finish(result, call.tool_call_id)


def guard_tool(tool: BaseTool, *guards: ToolGuard) -> GuardedTool:
    """Wrap ``tool`` so every call runs through ``guards`` (first = outermost).

    Example:
        >>> from langchain_core.tools import tool
        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two numbers.'''
        ...     return a + b
        >>> guard_tool(add).invoke({"a": 1, "b": 2})
        3
    """
    return GuardedTool(tool, guards)


# --------------------------------------------------------------------------- middleware / node


def _call_from_request(request: Any) -> GuardedCall:
    runtime = request.runtime
    config = getattr(runtime, "config", None) or {}
    context = getattr(runtime, "context", None)
    state = request.state
    user = identity_from_sources(config=config, context=context)
    tool_call = request.tool_call
    model_args, injected = split_args(request.tool, tool_call.get("args") or {})
    return GuardedCall(
        name=tool_call["name"],
        args=model_args,
        tool_call_id=tool_call.get("id"),
        config=config,
        user=user,
        tool=request.tool,
        state=state,
        context=context,
        store=getattr(runtime, "store", None),
        injected=injected,
        stream_writer=getattr(runtime, "stream_writer", None),
    )


def _with_args(request: Any, call: GuardedCall) -> Any:
    if dict(call.args) == dict(request.tool_call.get("args") or {}):
        return request
    return request.override(tool_call={**request.tool_call, "args": call.full_args()})


def wrap_tool_call_with(guards: Sequence[ToolGuard], request: Any, handler: Callable[[Any], Any]) -> Any:
    """Run ``guards`` around a LangChain ``ToolCallRequest`` (sync)."""
    active = [g for g in guards if g.applies_to(request.tool_call["name"])]
    if not active:
        return handler(request)
    call = _call_from_request(request)
    result = _run_chain(active, call, lambda c: handler(_with_args(request, c)))
    if isinstance(result, Refusal):
        return _refusal_output(result, call.name, call.tool_call_id or "")
    return result


async def awrap_tool_call_with(
    guards: Sequence[ToolGuard], request: Any, handler: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Run ``guards`` around a LangChain ``ToolCallRequest`` (async)."""
    active = [g for g in guards if g.applies_to(request.tool_call["name"])]
    if not active:
        return await handler(request)
    call = _call_from_request(request)

    async def final(c: GuardedCall) -> Any:
        return await handler(_with_args(request, c))

    result = await _arun_chain(active, call, final)
    if isinstance(result, Refusal):
        return _refusal_output(result, call.name, call.tool_call_id or "")
    return result


def _middleware_base() -> type:
    from langchain.agents.middleware import AgentMiddleware

    return AgentMiddleware


class ToolGuardMiddleware(_middleware_base()):  # type: ignore[misc]
    """An agent middleware that runs guards around the tool calls they apply to.

    Example::

        from langchain.agents import create_agent

        agent = create_agent(model, tools, middleware=[ToolGuardMiddleware([my_guard])])
    """

    def __init__(self, guards: Iterable[ToolGuard] = ()) -> None:
        super().__init__()
        self.guards: tuple[ToolGuard, ...] = tuple(guards)
        for g in self.guards:
            if not isinstance(g, ToolGuard):
                raise TypeError(f"not a ToolGuard: {g!r}")

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return wrap_tool_call_with(self.guards, request, handler)

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        return await awrap_tool_call_with(self.guards, request, handler)


def guarded_tool_node(
    tools: Sequence[BaseTool | Callable[..., Any]],
    *guards: ToolGuard,
    **tool_node_kwargs: Any,
) -> Any:
    """A LangGraph ``ToolNode`` whose calls run through ``guards`` (for hand-built graphs).

    Example::

        builder.add_node("tools", guarded_tool_node([add], my_guard))
    """
    from langgraph.prebuilt import ToolNode

    chain = tuple(guards)

    def wrap(request: Any, handler: Callable[[Any], Any]) -> Any:
        return wrap_tool_call_with(chain, request, handler)

    async def awrap(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        return await awrap_tool_call_with(chain, request, handler)

    return ToolNode(tools, wrap_tool_call=wrap, awrap_tool_call=awrap, **tool_node_kwargs)
