"""Tool integrations: the vault guard, its wrapper / middleware / node forms, the
``connect_account`` pause, and the accessors a tool uses to reach its token.

The guard fetches the token *before* the tool runs and hands it over through a context
variable: the tool never sees it as an argument and the model never sees it at all. A tool
reads it with :func:`get_access_token` or lets :func:`vault_auth` (an ``httpx.Auth``) add it
to requests; on an HTTP 401 that auth drops the token, gets a new one once, and if the
upstream still refuses, raises :class:`CredentialUnavailableError`, which the guard turns
into a ``connect_account`` pause.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from pydantic import Field

from langchain_agent_auth.core._scrub import scrub
from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    ConfigurationError,
    CredentialUnavailableError,
    IdentityError,
)
from langchain_agent_auth.core.guards import (
    GuardedCall,
    GuardedTool,
    OnRefusal,
    Proceed,
    ToolGuard,
    ToolGuardMiddleware,
    guard_tool,
    guarded_tool_node,
)
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.core.pause import PausePayload, ResumeModel, pause
from langchain_agent_auth.core.progress import WaitProgress, emit_progress
from langchain_agent_auth.vault._model import AccessToken, normalize_scopes
from langchain_agent_auth.vault._vault import TokenVault

__all__ = [
    "ConnectAccountPayload",
    "ConnectAccountResume",
    "VaultAuth",
    "VaultGuard",
    "VaultMiddleware",
    "aget_access_token",
    "arefresh_access_token",
    "get_access_token",
    "refresh_access_token",
    "vault_auth",
    "vault_guards",
    "vault_tool_node",
    "with_vault",
]

log = logging.getLogger("langchain_agent_auth.vault")


# --------------------------------------------------------------------------- pause payload


class ConnectAccountResume(ResumeModel):
    """The resume value of a ``connect_account`` pause.

    ``connected`` (the default: ``Command(resume={})``) makes the guard check the store
    again: the value alone is never trusted, and a still-missing account pauses again.
    ``cancel`` gives up: the model is told the account was not connected.

    Example:
        >>> ConnectAccountResume.model_validate({}).action
        'connected'
        >>> ConnectAccountResume(action="cancel").action
        'cancel'
    """

    action: Literal["connected", "cancel"] = "connected"


class ConnectAccountPayload(PausePayload):
    """The ``connect_account`` interrupt: which account, which scopes, where to connect.

    Never carries a token. ``authorize_url`` is ``None`` when the connection has no connect
    flow of its own (token exchange, Auth0 Token Vault: the app connects accounts itself).

    Example:
        >>> p = ConnectAccountPayload(connection="calendar", scopes=["calendar.read"],
        ...     missing_scopes=["calendar.read"], status="not_connected",
        ...     authorize_url="https://upstream.example/authorize?...", tool_call_id="call-1")
        >>> d = p.to_interrupt()
        >>> d["type"], d["connection"], sorted(d["response_schema"]["properties"])
        ('connect_account', 'calendar', ['action'])
    """

    type: Literal["connect_account"] = "connect_account"
    connection: str
    scopes: list[str] = Field(default_factory=list)
    missing_scopes: list[str] = Field(default_factory=list)
    status: Literal["not_connected", "needs_reauthorization", "missing_scopes"] = "not_connected"
    authorize_url: str | None = None
    expires_at: float | None = None
    #: The pending connect flow's id (not a secret): resumers match the pause by it.
    connect_id: str | None = None
    message: str = ""
    resume_model = ConnectAccountResume


# --------------------------------------------------------------------------- accessors


@dataclass
class _Binding:
    vault: TokenVault
    user: UserIdentity
    connection: str
    scopes: tuple[str, ...]
    token: AccessToken
    context: Any
    refreshed: bool = False
    #: Tokens this call used before a refresh (kept out of the result too).
    spent: tuple[str, ...] = ()

    def _refresh_op(self) -> Flow[AccessToken]:
        """Drop the refused token and get a new one, once; refused again, the user must reconnect."""
        old, vault = self.token.token, self.vault
        if self.refreshed:
            yield Call(lambda: vault.reject(self.user, self.connection, old),
                       lambda: vault.areject(self.user, self.connection, old))
            raise _rejected(self.connection)
        self.refreshed = True
        self.spent = (*self.spent, old)
        self.token = yield Call(
            lambda: vault.get_token(self.user, self.connection, self.scopes, context=self.context, rejected=old),
            lambda: vault.aget_token(self.user, self.connection, self.scopes, context=self.context, rejected=old))
        return self.token

    def refresh(self) -> AccessToken:
        return run(self._refresh_op())

    async def arefresh(self) -> AccessToken:
        return await arun(self._refresh_op())


def _rejected(connection: str) -> CredentialUnavailableError:
    return CredentialUnavailableError(
        f"the {connection} API refused the access token even after a refresh",
        connection=connection, status="needs_reauthorization",
        hint=f"The user's {connection} account must be reconnected.",
    )


_BINDINGS: contextvars.ContextVar[Mapping[str, _Binding] | None] = contextvars.ContextVar(
    "langchain_agent_auth_vault_bindings", default=None
)


def _binding(connection: str | None) -> _Binding:
    bindings = _BINDINGS.get()
    if not bindings:
        raise IdentityError(
            "no vault credential in this context: wrap the tool with with_vault(), VaultMiddleware or "
            "vault_tool_node()", hint="This tool is not set up to reach the service on the user's behalf.",
        )
    if connection is None:
        if len(bindings) != 1:
            raise IdentityError(f"several connections are bound ({', '.join(bindings)}): name one")
        return next(iter(bindings.values()))
    try:
        return bindings[connection]
    except KeyError:
        raise IdentityError(f"connection {connection!r} is not bound to this tool call") from None


def get_access_token(connection: str | None = None) -> str:
    """The upstream access token for the running tool call (inside a vault-guarded tool).

    Example:
        >>> get_access_token()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langchain_agent_auth.errors.IdentityError: no vault credential in this context: ...
    """
    return _binding(connection).token.token


async def aget_access_token(connection: str | None = None) -> str:
    """Async :func:`get_access_token` (the token is fetched before the tool runs)."""
    return _binding(connection).token.token


def refresh_access_token(connection: str | None = None) -> str:
    """The upstream answered 401: drop the token and get a new one (once per tool call).

    A second call in the same tool call marks the connection as needing reauthorization and
    raises :class:`CredentialUnavailableError`; the guard then pauses with ``connect_account``.
    Use this with HTTP clients other than ``httpx`` (which has :func:`vault_auth`).
    """
    return _binding(connection).refresh().token


async def arefresh_access_token(connection: str | None = None) -> str:
    """Async :func:`refresh_access_token`."""
    return (await _binding(connection).arefresh()).token


class VaultAuth(httpx.Auth):
    """``httpx.Auth`` adding the vault's bearer token; on a 401, one refresh and one retry.

    A second 401 raises :class:`CredentialUnavailableError` (the guard pauses to reconnect).
    Works with ``httpx.Client`` and ``httpx.AsyncClient`` (the refresh never blocks the loop).

    Example:
        >>> import httpx
        >>> isinstance(VaultAuth("calendar"), httpx.Auth)
        True
    """

    requires_request_body = True

    def __init__(self, connection: str | None = None) -> None:
        self.connection = connection

    def _apply(self, request: httpx.Request, token: AccessToken) -> httpx.Request:
        request.headers["Authorization"] = token.authorization
        return request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        binding = _binding(self.connection)
        response = yield self._apply(request, binding.token)
        if response.status_code != 401:
            return
        response.read()
        token = binding.refresh()
        response = yield self._apply(request, token)
        if response.status_code == 401:
            response.read()
            binding.refresh()  # raises: refused twice

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        binding = _binding(self.connection)
        response = yield self._apply(request, binding.token)
        if response.status_code != 401:
            return
        await response.aread()
        token = await binding.arefresh()
        response = yield self._apply(request, token)
        if response.status_code == 401:
            await response.aread()
            await binding.arefresh()


def vault_auth(connection: str | None = None) -> VaultAuth:
    """An ``httpx.Auth`` for the running tool call's upstream token.

    Example::

        @tool
        def list_events(day: str) -> list[dict]:
            '''List calendar events.'''
            with httpx.Client(auth=vault_auth()) as http:
                return http.get(f"{API}/events", params={"day": day}).json()

    >>> vault_auth("calendar").connection
    'calendar'
    """
    return VaultAuth(connection)


# --------------------------------------------------------------------------- guard


def _scrub(result: Any, binding: _Binding) -> Any:
    """A tool must not hand the token to the model: remove it from whatever it returns
    (text, message content and artifact, nested data)."""
    return scrub(result, (binding.token.token, *binding.spent))


def _in_graph() -> bool:
    try:
        from langgraph.config import get_config

        get_config()
        return True
    except (RuntimeError, ImportError):
        return False


class VaultGuard(ToolGuard):
    """Fetches the user's token for ``connection`` before the tool runs; pauses with
    ``connect_account`` when there is none usable, and runs the tool once the user connected.

    The connection name is checked when the guard is built: an unknown name raises
    :class:`~langchain_agent_auth.errors.ConnectionNotFoundError` at configuration time.
    ``on_refusal`` is the policy every pillar shares (``"message"`` or ``"raise"``).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> vault = TokenVault([], store=InMemoryStore(), keyring=Keyring.generate())
        >>> VaultGuard(vault, "nope")
        Traceback (most recent call last):
        ...
        langchain_agent_auth.errors.ConnectionNotFoundError: unknown connection 'nope' (declared: none)
    """

    def __init__(self, vault: TokenVault, connection: str, scopes: str | Iterable[str] | None = None, *,
                 tools: Iterable[str] | None = None, on_refusal: OnRefusal = "message") -> None:
        if not isinstance(vault, TokenVault):
            raise TypeError("VaultGuard needs a TokenVault")
        conn = vault.connection(connection)
        self.vault = vault
        self.connection = connection
        self.scopes = normalize_scopes(scopes) if scopes is not None else conn.scopes
        self.tools = frozenset(tools) if tools is not None else None
        self.on_refusal = on_refusal

    def __repr__(self) -> str:
        return f"VaultGuard(connection={self.connection!r}, scopes={self.scopes!r})"

    def flow(self, call: GuardedCall) -> Flow[Any]:
        """Token, then the tool; a missing or refused credential pauses until the user connects."""
        if call.user is None:
            err = IdentityError("the vault needs a trusted user identity for this tool call")
            return self.refuse(call, err.for_model(), err)
        user = call.user
        while True:
            try:
                token = yield Call(
                    lambda: self.vault.get_token(user, self.connection, self.scopes, context=call.context),
                    lambda: self.vault.aget_token(user, self.connection, self.scopes, context=call.context))
            except CredentialUnavailableError as exc:
                self._require_pausable(call)
                failure = exc
            except AgentAuthError as exc:
                log.warning("vault: no token for connection=%s: %s", self.connection, exc)
                return self.refuse(call, exc.for_model(), exc)
            else:
                result, failure = yield from self._run_tool(call, user, token)
                if failure is None:
                    return result
            try:
                cancelled = yield from self._pause(call, user, failure)
            except AgentAuthError as err:
                if err is failure:
                    raise
                return self.refuse(call, err.for_model(), err)
            if cancelled is not None:
                return cancelled

    def _run_tool(self, call: GuardedCall, user: UserIdentity,
                  token: AccessToken) -> Flow[tuple[Any, CredentialUnavailableError | None]]:
        """The tool with the token bound: (its result with the token scrubbed, ``None``), or
        (``None``, the failure) when the upstream refused this connection's token."""
        current = _BINDINGS.get() or {}
        binding = _Binding(self.vault, user, self.connection, self.scopes, token, call.context)
        reset = _BINDINGS.set({**current, self.connection: binding})
        try:
            return _scrub((yield Proceed(call)), binding), None
        except CredentialUnavailableError as exc:
            if exc.connection != self.connection:
                raise
            return None, exc
        finally:
            _BINDINGS.reset(reset)

    def _pause(self, call: GuardedCall, user: UserIdentity, exc: CredentialUnavailableError) -> Flow[Any]:
        """Start a connect flow (if the source has one) and pause; ``None`` to check the store
        again, or the refusal when the user cancelled."""
        if not _in_graph():
            raise exc  # outside a graph there is nothing to pause: the caller gets the typed error
        request = None
        if self.vault.source(self.connection).stores_credentials:
            wanted = set(self.scopes) | set(exc.missing_scopes)
            where = {"thread_id": call.thread_id, "checkpoint_ns": call.checkpoint_ns,
                     "tool_call_id": call.tool_call_id}
            request = yield Call(lambda: self.vault.start_connect(user, self.connection, wanted, **where),
                                 lambda: self.vault.astart_connect(user, self.connection, wanted, **where))
        payload = self._payload(call, exc, request)
        try:
            value = pause(payload, ConnectAccountResume)
        except GraphBubbleUp:  # the run really pauses: say so on the progress stream, then let it go
            self._paused(call, payload)
            raise
        if value.action == "cancel":
            return self.refuse(call, f"The user did not connect their {self.connection} account, so this was "
                               "not done.", exc)
        return None

    def _payload(self, call: GuardedCall, exc: CredentialUnavailableError, request: Any) -> ConnectAccountPayload:
        missing = list(exc.missing_scopes) if exc.status != "not_connected" else list(self.scopes)
        return ConnectAccountPayload(
            connection=self.connection, scopes=list(self.scopes), missing_scopes=missing,
            status=exc.status if exc.status in ("not_connected", "needs_reauthorization", "missing_scopes")
            else "needs_reauthorization",
            authorize_url=request.authorize_url if request is not None else None,
            expires_at=request.expires_at if request is not None else None,
            connect_id=request.id if request is not None else None,
            message=exc.for_model(), tool_call_id=call.tool_call_id,
        )

    def _paused(self, call: GuardedCall, payload: ConnectAccountPayload) -> None:
        """The ``connect_account`` progress event of a run that pauses."""
        expires_at = payload.expires_at
        emit_progress(call.write, WaitProgress(
            kind="connect_account", state="paused", tool=call.name, tool_call_id=call.tool_call_id,
            connection=self.connection, expires_at=expires_at,
            seconds_left=max(0, round(expires_at - self.vault.clock())) if expires_at is not None else None,
            message=f"Waiting for you to connect your {self.connection} account"
                    + (" (open the link to connect it)" if payload.authorize_url else "")))

    def _require_pausable(self, call: GuardedCall) -> None:
        """In a graph that cannot resume (no checkpointer), refuse before a connect flow starts."""
        if _in_graph() and not call.can_pause:
            raise ConfigurationError(
                f"the vault pauses {call.name!r} until the user connects {self.connection!r}, but the graph has no "
                "checkpointer, so the pause could never be resumed: compile the graph with a checkpointer "
                "(checkpointer=InMemorySaver() or a SqliteSaver) and invoke it with a thread_id")


# --------------------------------------------------------------------------- forms

Requirement = str | tuple[str, str | Iterable[str] | None]


def _requirements(spec: Requirement | Sequence[Requirement]) -> list[tuple[str, Any]]:
    """A connection name, a ``(connection, scopes)`` tuple, or a list of those."""
    if isinstance(spec, str):
        return [(spec, None)]
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[0], str):
            raise TypeError(f"expected (connection, scopes), got {spec!r}")
        return [(spec[0], spec[1])]
    if isinstance(spec, list):
        return [pair for item in spec for pair in _requirements(item)]
    raise TypeError(f"expected a connection name, (connection, scopes) or a list of them, got {spec!r}")


def vault_guards(vault: TokenVault, tools: Mapping[str, Requirement | Sequence[Requirement]], *,
                 on_refusal: OnRefusal = "message") -> list[VaultGuard]:
    """One :class:`VaultGuard` per (tool, connection) in ``{tool_name: (connection, scopes)}``.

    A value may be a connection name, ``(connection, scopes)``, or a list of those.

    Example:
        >>> from langchain_agent_auth.vault._examples import example_vault
        >>> vault = example_vault()
        >>> vault_guards(vault, {"list_events": "calendar", "add_event": ("calendar", ["calendar.write"])})
        [VaultGuard(connection='calendar', scopes=()), VaultGuard(connection='calendar', scopes=('calendar.write',))]
    """
    guards: list[VaultGuard] = []
    for tool_name, spec in tools.items():
        for connection, scopes in _requirements(spec):
            guards.append(VaultGuard(vault, connection, scopes, tools=[tool_name], on_refusal=on_refusal))
    return guards


def with_vault(tool: BaseTool, vault: TokenVault, *, connection: str,
               scopes: str | Iterable[str] | None = None, on_refusal: OnRefusal = "message") -> GuardedTool:
    """Wrap any ``BaseTool`` so it runs with the user's ``connection`` token (sync and async).

    The wrapped tool keeps the tool's name, description and schema (JSON-schema tools too),
    composes with the other pillars' wrappers in any order, and pauses with
    ``connect_account`` when the user has not connected the account.

    Example:
        >>> from langchain_core.tools import tool
        >>> from langchain_agent_auth.vault._examples import example_vault
        >>> vault = example_vault()
        >>> @tool
        ... def list_events(day: str) -> str:
        ...     '''List the user's events on a day.'''
        ...     return f"events on {day}"
        >>> wrapped = with_vault(list_events, vault, connection="calendar", scopes=["calendar.read"])
        >>> wrapped.name, list(wrapped.tool_call_schema.model_json_schema()["properties"])
        ('list_events', ['day'])
    """
    return guard_tool(tool, VaultGuard(vault, connection, scopes, on_refusal=on_refusal))


class VaultMiddleware(ToolGuardMiddleware):
    """Agent middleware for ``create_agent``: ``{tool_name: (connection, scopes)}``.

    Unknown connection names raise :class:`ConnectionNotFoundError` here, not at run time.

    Example::

        agent = create_agent(model, [list_events],
                             middleware=[VaultMiddleware(vault, {"list_events": ("calendar", ["calendar.read"])})])

    >>> from langchain_agent_auth.vault._examples import example_vault
    >>> vault = example_vault()
    >>> [g.tools for g in VaultMiddleware(vault, {"list_events": "calendar"}).guards]
    [frozenset({'list_events'})]
    """

    def __init__(self, vault: TokenVault, tools: Mapping[str, Requirement | Sequence[Requirement]], *,
                 on_refusal: OnRefusal = "message") -> None:
        super().__init__(vault_guards(vault, tools, on_refusal=on_refusal))
        self.vault = vault


def vault_tool_node(tools: Sequence[BaseTool | Callable[..., Any]], vault: TokenVault,
                    requirements: Mapping[str, Requirement | Sequence[Requirement]], *,
                    on_refusal: OnRefusal = "message", **tool_node_kwargs: Any) -> Any:
    """A LangGraph ``ToolNode`` whose listed tools run with the vault (hand-built graphs).

    Example::

        builder.add_node("tools", vault_tool_node([list_events], vault, {"list_events": "calendar"}))

    >>> from langchain_core.tools import tool
    >>> from langchain_agent_auth.vault._examples import example_vault
    >>> vault = example_vault()
    >>> @tool
    ... def list_events(day: str) -> str:
    ...     '''List events.'''
    ...     return day
    >>> sorted(vault_tool_node([list_events], vault, {"list_events": "calendar"}).tools_by_name)
    ['list_events']
    """
    return guarded_tool_node(tools, *vault_guards(vault, requirements, on_refusal=on_refusal), **tool_node_kwargs)
