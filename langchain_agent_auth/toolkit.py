"""Ready-made tools about the agent's own user: :class:`AgentAuthToolkit`.

A LangChain ``BaseToolkit`` built from the pillars an app configured (any subset). Every
tool acts for the *trusted* user of the call (the guard contract: the LangGraph server's
user, :func:`~langchain_agent_auth.identity.acting_as`, the runtime context), never for a
user the model names: no tool argument is a user id, a token or an approval id.

=======================  ==============================================================
tool                     needs
=======================  ==============================================================
``whoami``               nothing (the verified user's public claims; never a token)
``list_connections``     ``vault``: the user's connections and their status
``connect_account``      ``vault``: pauses with the usual ``connect_account`` interrupt
``disconnect_account``   ``vault``: revokes upstream where possible, deletes the record
``what_can_i_access``    ``authorizer`` + ``access`` (the relation/type pairs allowed)
``my_pending_approvals`` ``approvers`` or ``approval_store``: what waits for the user's OK
``cancel_approval``      the same: withdraws one of *this user's* pending requests
=======================  ==============================================================

Pending approvals are shown with a *handle*, a hash of (user, approval id): the model never
sees an approval id, and ``cancel_approval`` only looks among the calling user's own
pending approvals, so a handle copied from another user's conversation matches nothing.
Cancelling is a compare-and-set on the store (the same ``decide`` step an in-app answer
takes), and the approval's ``run`` step is taken for good, so an answer that arrives later
(a CIBA approval on the user's phone) can never run the tool.

The toolkit is built the way every integration is: each tool body is written once (a plain
function, or a flow of the core effect runtime that yields the pillar's ``x`` / ``ax`` call as a
``Call`` step) and its guards are ``ToolGuard`` flows, composed with ``guard_tool``, under one
refusal policy (``on_refusal=``). Adding a pillar's tools means one guard and one factory.

Example:
    >>> from langchain_agent_auth.identity import UserIdentity, acting_as
    >>> tools = {t.name: t for t in AgentAuthToolkit().get_tools()}
    >>> sorted(tools)
    ['whoami']
    >>> with acting_as(UserIdentity(subject="alice", name="Alice", email="alice@example.com")):
    ...     print(tools["whoami"].invoke({}))
    {"subject": "alice", "name": "Alice", "email": "alice@example.com", "source": "config"}
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from langchain_core.tools import BaseTool, BaseToolkit, StructuredTool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from langchain_agent_auth.core.effects import Blocking, Call, Flow, arun, run
from langchain_agent_auth.core.errors import (
    AgentAuthError,
    ApprovalAlreadyHandledError,
    ApprovalError,
    AuthorizationError,
    ConfigurationError,
    ConnectionNotFoundError,
    IdentityError,
    VaultError,
)
from langchain_agent_auth.core.guards import GuardedCall, OnRefusal, Proceed, ToolGuard, guard_tool
from langchain_agent_auth.core.identity import UserIdentity, acting_as, get_current_user

__all__ = ["AgentAuthToolkit"]

log = logging.getLogger("langchain_agent_auth.toolkit")

_PENDING_LIMIT = 200
# the vault's statuses, as the model is told them
_STATUS = {"active": "connected", "external": "connected_through_the_identity_provider"}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).replace(microsecond=0).isoformat()


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


def _user() -> UserIdentity:
    user = get_current_user(required=False)
    if user is None:
        raise IdentityError("no trusted user identity for this tool call",
                            hint="I can't tell who you are, so I can't answer that.")
    return user


def _handle(user: UserIdentity, approval_id: str) -> str:
    """The handle the model sees for one of ``user``'s approvals (never the approval id)."""
    digest = hashlib.sha256(f"agent_auth/handle|{user.key}|{approval_id}".encode("utf-8", "surrogatepass"))
    return "apr_" + digest.hexdigest()[:12]


# --------------------------------------------------------------------------- the user guard


def _for_model(exc: AgentAuthError) -> bool:
    """Errors the model is told about; a setup mistake (no checkpointer...) reaches the developer."""
    return not isinstance(exc, ConfigurationError) or isinstance(exc, ConnectionNotFoundError)


class _ForUser(ToolGuard):
    """Outermost guard of every toolkit tool: refuses without a trusted user, runs the tool
    as that user, and turns the toolkit's typed errors into a short refusal for the model
    (or raises them, under ``on_refusal="raise"``). ``check`` looks at the model's raw
    arguments first (before schema validation), so an argument outside an allow-list gets the
    toolkit's clear message."""

    def __init__(self, check: Callable[[Mapping[str, Any]], Any] | None = None, *,
                 on_refusal: OnRefusal = "message") -> None:
        self.check = check
        self.on_refusal = on_refusal

    def flow(self, call: GuardedCall) -> Flow[Any]:
        if call.user is None:
            call.warn_no_user("toolkit")
            err = IdentityError("no trusted user identity for this tool call",
                                hint="I can't tell who you are, so I can't do that.")
            return self.refuse(call, err.for_model(), err)
        try:
            with acting_as(call.user):
                if self.check is not None:
                    self.check(call.args)
                return (yield Proceed(call))
        except AgentAuthError as exc:
            if not _for_model(exc):
                raise
            return self.refuse(call, exc.for_model(), exc)


class _ConnectGuard(ToolGuard):
    """Runs the vault's own guard for the connection the model chose: the token check, the
    ``connect_account`` pause and its resume are the vault's, not a copy."""

    def __init__(self, toolkit: AgentAuthToolkit) -> None:
        self.toolkit = toolkit

    def flow(self, call: GuardedCall) -> Flow[Any]:
        from langchain_agent_auth.vault import VaultGuard

        name, scopes = self.toolkit._connect_target(call.args)
        guard = VaultGuard(self.toolkit.vault, name, scopes, on_refusal=self.toolkit.on_refusal)
        return (yield from guard.flow(call))


# --------------------------------------------------------------------------- the toolkit


class AgentAuthToolkit(BaseToolkit):
    """Tools the agent can use about its own user, built from the configured pillars.

    Args:
        vault: a :class:`~langchain_agent_auth.vault.TokenVault`: adds ``list_connections``,
            ``connect_account`` and ``disconnect_account``.
        connect_scopes: per connection, scopes the model may ask for beyond the connection's
            declared ones (default: only the declared scopes).
        authorizer: an fga :class:`~langchain_agent_auth.fga.Authorizer`, with ``access``:
            ``{object_type: [relation, ...]}`` the model may list (anything else is refused).
        fga_user_type: the FGA type of users (``user:<subject>``).
        max_objects: at most this many objects in one ``what_can_i_access`` answer.
        approvers: the approvers of the app's approval guards (their stores are searched;
            a CIBA approver lets ``cancel_approval`` reach the provider through ``ciba_cancel``).
        approval_store: a LangGraph ``BaseStore`` holding approvals, when no approver has
            one (default: the graph's store).
        ciba_cancel: ``f(approver, auth_req_id) -> bool`` withdrawing a CIBA request at the
            provider, for providers that offer it (CIBA itself defines no cancel endpoint);
            without it (or when it fails) the request is only marked cancelled here and the
            user's later answer is ignored.
        include: the tool names to build (default: every tool the given pillars allow).
        on_refusal: what a refusal becomes, as in every pillar: ``"message"`` (a short error
            ToolMessage for the model; the default) or ``"raise"`` (the typed error propagates).

    Example:
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype doc\\n  relations\\n"
        ...                          "    define viewer: [user]\\n")
        >>> fga.write([("user:alice", "viewer", "doc:roadmap")])
        >>> kit = AgentAuthToolkit(authorizer=fga, access={"doc": ["viewer"]})
        >>> [t.name for t in kit.get_tools()]
        ['whoami', 'what_can_i_access']
        >>> from langchain_agent_auth.identity import UserIdentity, acting_as
        >>> with acting_as(UserIdentity(subject="alice")):
        ...     print(kit.get_tools()[1].invoke({"relation": "viewer", "type": "doc"}))
        {"relation": "viewer", "type": "doc", "objects": ["doc:roadmap"], "truncated": false}
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    vault: Any = None
    connect_scopes: dict[str, list[str]] = Field(default_factory=dict)
    authorizer: Any = None
    access: dict[str, list[str]] = Field(default_factory=dict)
    fga_user_type: str = "user"
    max_objects: int = Field(default=100, ge=1, le=10_000)
    approvers: list[Any] = Field(default_factory=list)
    approval_store: Any = None
    ciba_cancel: Callable[[Any, str], bool] | None = None
    include: list[str] | None = None
    on_refusal: OnRefusal = "message"

    _tools: list[BaseTool] | None = PrivateAttr(default=None)

    def model_post_init(self, __context: Any) -> None:
        if self.vault is not None:
            from langchain_agent_auth.vault import TokenVault

            if not isinstance(self.vault, TokenVault):
                raise ConfigurationError("AgentAuthToolkit(vault=...) needs a TokenVault")
            for name in self.connect_scopes:
                self.vault.connection(name)  # unknown names fail here, not at run time
        if self.authorizer is not None and not self.access:
            raise ConfigurationError("AgentAuthToolkit(authorizer=...) needs access={object_type: [relations]}: "
                                     "the relations and types the model may list")
        if self.access and self.authorizer is None:
            raise ConfigurationError("AgentAuthToolkit(access=...) needs an authorizer")
        for type_, relations in self.access.items():
            if not type_ or not relations or not all(isinstance(r, str) and r for r in relations):
                raise ConfigurationError(f"access[{type_!r}] must list at least one relation")
        from langchain_agent_auth.approval import Approver

        for approver in self.approvers:
            if not isinstance(approver, Approver):
                raise ConfigurationError(f"not an approver: {approver!r}")
        known = set(self._available())
        if self.include is not None:
            unknown = sorted(set(self.include) - known)
            if unknown:
                raise ConfigurationError(f"AgentAuthToolkit cannot build {unknown}: available here: {sorted(known)}")

    def _available(self) -> list[str]:
        names = ["whoami"]
        if self.vault is not None:
            names += ["list_connections", "connect_account", "disconnect_account"]
        if self.authorizer is not None:
            names.append("what_can_i_access")
        if self.approvers or self.approval_store is not None:
            names += ["my_pending_approvals", "cancel_approval"]
        return names

    def get_tools(self) -> list[BaseTool]:
        """The tools, each wrapped so it runs for the trusted user of the call."""
        if self._tools is None:
            wanted = self._available() if self.include is None else [n for n in self._available()
                                                                        if n in self.include]
            self._tools = [self._build(name) for name in wanted]
        return list(self._tools)

    # ------------------------------------------------------------------ building

    def _build(self, name: str) -> BaseTool:
        spec = _SPECS[name]
        schema = spec["schema"] if isinstance(spec["schema"], type) else spec["schema"](self)
        func, coroutine = _drivers(getattr(self, f"_{name}"))
        inner = StructuredTool.from_function(
            func=func, coroutine=coroutine, name=name,
            description=spec["description"], args_schema=schema, infer_schema=False)
        check = None
        if name == "what_can_i_access":
            def check(args: Mapping[str, Any]) -> Any:
                return self._access_request(args.get("relation"), args.get("type"))
        guards: list[ToolGuard] = [_ForUser(check, on_refusal=self.on_refusal)]
        if name == "connect_account":
            guards.append(_ConnectGuard(self))
        return guard_tool(inner, *guards)

    def _connect_schema(self) -> type[BaseModel]:
        names = tuple(self.vault.connection_names)
        connection_type: Any = Literal[names] if names else str  # type: ignore[valid-type]
        return create_model(
            "ConnectAccountArgs",
            connection=(connection_type, Field(description="The account to connect (see list_connections).")),
            scopes=(list[str] | None, Field(default=None, description="Scopes to ask for; default: the "
                                                                       "connection's usual scopes.")),
        )

    def _disconnect_schema(self) -> type[BaseModel]:
        names = tuple(self.vault.connection_names)
        connection_type: Any = Literal[names] if names else str  # type: ignore[valid-type]
        return create_model("DisconnectAccountArgs", connection=(
            connection_type, Field(description="The account to disconnect.")))

    def _access_schema(self) -> type[BaseModel]:
        relations = tuple(sorted({r for rs in self.access.values() for r in rs}))
        types = tuple(sorted(self.access))
        allowed = "; ".join(f"{t}: {', '.join(rs)}" for t, rs in sorted(self.access.items()))
        return create_model(
            "WhatCanIAccessArgs",
            relation=(Literal[relations], Field(description=f"The relation to list (allowed: {allowed}).")),
            type=(Literal[types], Field(description="The object type to list.")),
        )

    # ------------------------------------------------------------------ whoami

    def _whoami(self) -> str:
        return _dump(_public(_user()))

    # ------------------------------------------------------------------ connections

    def _connection_view(self, info: Any) -> dict[str, Any]:
        declared = self.vault.connection(info.name).scopes
        missing = [s for s in declared if s not in info.scopes] if info.status in ("active", "expired") else []
        status = "missing_scopes" if missing else _STATUS.get(info.status, info.status)
        if status == "not_connected":
            missing = list(declared)
        view = {"connection": info.name, "status": status, "scopes": list(info.scopes),
                "missing_scopes": missing, "expires_at": _iso(info.expires_at),
                "connected_at": _iso(info.connected_at)}
        return {k: v for k, v in view.items() if v not in (None, [])}

    def _list_connections(self) -> Flow[str]:
        user = _user()
        infos = yield Call(lambda: self.vault.connections(user), lambda: self.vault.aconnections(user))
        return _dump([self._connection_view(i) for i in infos])

    def _connect_target(self, args: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        name = args.get("connection")
        if not isinstance(name, str) or name not in self.vault.connection_names:
            raise ConnectionNotFoundError(
                f"unknown connection {str(name)[:64]!r}",
                hint=f"There is no such account to connect. Known: {', '.join(self.vault.connection_names)}.")
        declared = tuple(self.vault.connection(name).scopes)
        asked = args.get("scopes")
        if not asked:
            return name, declared
        if not isinstance(asked, list | tuple) or not all(isinstance(x, str) for x in asked):
            raise VaultError("scopes must be a list of strings",
                             hint="Give scopes as a list of scope names, or leave them out.")
        allowed = set(declared) | set(self.connect_scopes.get(name, ()))
        extra = sorted(set(asked) - allowed)
        if extra:
            raise VaultError(
                f"scopes {extra} are not offered for {name}",
                hint=f"Those scopes are not available for {name}; allowed: {', '.join(sorted(allowed)) or 'none'}.")
        return name, tuple(dict.fromkeys(asked))

    def _connect_account(self, connection: str, scopes: list[str] | None = None) -> str:
        name, granted = self._connect_target({"connection": connection, "scopes": scopes})
        return _dump({"connection": name, "status": "connected", "scopes": list(granted)})

    @staticmethod
    def _revoked(result: Any) -> str:
        view = {"connection": result.connection, "disconnected": result.deleted,
                "revoked_at_provider": result.upstream_revoked}
        if not result.deleted:
            view["note"] = result.error or "the account was not connected"
        return _dump(view)

    def _disconnect_account(self, connection: str) -> Flow[str]:
        user = _user()
        result = yield Call(lambda: self.vault.revoke(user, connection), lambda: self.vault.arevoke(user, connection))
        return self._revoked(result)

    # ------------------------------------------------------------------ fga

    def _access_request(self, relation: Any, type: Any) -> tuple[str, str, str]:
        from langchain_agent_auth.fga import fga_user

        if not isinstance(type, str) or relation not in self.access.get(type, ()):
            allowed = "; ".join(f"{t}: {', '.join(rs)}" for t, rs in sorted(self.access.items()))
            raise AuthorizationError(
                f"listing {str(relation)[:64]!r} on {str(type)[:64]!r} is not allowed by the toolkit",
                hint=f"I can't list that. I can list: {allowed}.")
        return fga_user(_user(), self.fga_user_type), relation, type

    def _objects(self, relation: str, type: str, objects: Sequence[str]) -> str:
        objects = sorted(objects)
        return _dump({"relation": relation, "type": type, "objects": objects[: self.max_objects],
                      "truncated": len(objects) > self.max_objects})

    def _what_can_i_access(self, relation: str, type: str) -> Flow[str]:
        user, relation, type = self._access_request(relation, type)
        objects = yield Call(lambda: self.authorizer.list_objects(user, relation, type),
                             lambda: self.authorizer.alist_objects(user, relation, type))
        return self._objects(relation, type, objects)

    # ------------------------------------------------------------------ approvals

    def _stores(self) -> list[Any]:
        """The approval stores to search (``ApprovalStore`` with the approver that owns it)."""
        from langchain_agent_auth.approval import ApprovalStore
        from langchain_agent_auth.core.crypto import Keyring

        fallback = self.approval_store if self.approval_store is not None else _graph_store()
        out: list[tuple[Any, Any]] = []
        seen: set[int] = set()
        for approver in self.approvers:
            store = approver.store if approver.store is not None else fallback
            if store is None or id(store) in seen:
                continue
            seen.add(id(store))
            out.append((approver.approval_store(store), approver))
        if fallback is not None and id(fallback) not in seen:
            out.append((ApprovalStore(fallback, Keyring.generate()), None))
        if not out:
            raise ConfigurationError("no approval store: pass approval_store=... or compile the graph with a store",
                                     hint="Pending approvals can't be looked up right now.")
        return out

    def _approver_for(self, source: str) -> Any:
        return next((a for a in self.approvers if a.name == source), None)

    def _pending(self, user: UserIdentity) -> list[tuple[Any, Any]]:
        """``user``'s pending approvals with the store holding each (blocking)."""
        return run(self._pending_flow(user))

    def _pending_flow(self, user: UserIdentity) -> Flow[list[tuple[Any, Any]]]:
        now = time.time()
        out: list[tuple[Any, Any]] = []
        for store, _ in self._stores():
            recs = yield Call(lambda s=store: s.pending_for(user.key, now, limit=_PENDING_LIMIT),
                              lambda s=store: s.apending_for(user.key, now, limit=_PENDING_LIMIT))
            out.extend((rec, store) for rec in recs)
        return out

    @staticmethod
    def _approval_view(user: UserIdentity, rec: Any) -> dict[str, Any]:
        view = {"handle": _handle(user, rec.approval_id), "tool": rec.tool,
                "channel": "your device" if rec.kind == "ciba" else "this app",
                "what": rec.binding_message, "requested_at": _iso(rec.created_at), "expires_at": _iso(rec.expires_at)}
        return {k: v for k, v in view.items() if v is not None}

    def _my_pending_approvals(self) -> Flow[str]:
        user = _user()
        recs = sorted((yield from self._pending_flow(user)), key=lambda p: p[0].created_at)
        return _dump([self._approval_view(user, rec) for rec, _ in recs])

    @staticmethod
    def _find(user: UserIdentity, handle: str, pending: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        given = str(handle).encode("utf-8", "surrogatepass")
        for rec, store in pending:
            if secrets.compare_digest(_handle(user, rec.approval_id).encode(), given):
                return rec, store
        raise ApprovalError(f"no pending approval of this user with handle {str(handle)[:32]!r}",
                            hint="You have no pending approval with that handle; call my_pending_approvals.")

    def _provider_cancel(self, rec: Any, store: Any) -> bool:
        approver = self._approver_for(rec.source)
        if rec.kind != "ciba" or self.ciba_cancel is None or approver is None:
            return False
        try:
            auth_req_id = store.open(rec).get("auth_req_id")
            return bool(auth_req_id) and bool(self.ciba_cancel(approver, auth_req_id))
        except Exception as exc:  # the local mark is what counts; the provider is a courtesy
            log.warning("toolkit: cancelling approval %s at the provider failed (%s)", rec.key[:16],
                        type(exc).__name__)
            return False

    def _cancel_view(self, rec: Any, user: UserIdentity, at_provider: bool) -> str:
        return _dump({"handle": _handle(user, rec.approval_id), "tool": rec.tool, "status": "cancelled",
                      "cancelled_at_provider": at_provider,
                      "note": "The request was withdrawn; an answer that still arrives is ignored."})

    def _cancel_approval(self, handle: str) -> Flow[str]:
        user = _user()
        rec, store = self._find(user, handle, (yield from self._pending_flow(user)))
        withdrawn = yield Call(lambda: store.withdraw(rec, time.time()), lambda: store.awithdraw(rec, time.time()))
        if withdrawn is None:
            raise _handled(rec)
        at_provider = yield Blocking(lambda: self._provider_cancel(rec, store))
        log.info("toolkit: approval %s for %s withdrawn by its user", rec.key[:16], rec.tool)
        return self._cancel_view(rec, user, at_provider)


def _drivers(body: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Awaitable[Any]]]:
    """A tool body written once (a plain function, or a flow of the core effect runtime) as
    the tool's ``func`` and ``coroutine``: the flow under the blocking and the event-loop driver."""
    if not inspect.isgeneratorfunction(body):
        async def plain(**kwargs: Any) -> Any:
            return body(**kwargs)

        return body, plain

    def func(**kwargs: Any) -> Any:
        return run(body(**kwargs))

    async def coroutine(**kwargs: Any) -> Any:
        return await arun(body(**kwargs))

    return func, coroutine


def _handled(rec: Any) -> ApprovalAlreadyHandledError:
    return ApprovalAlreadyHandledError(
        f"approval {rec.key[:16]} was already answered; not cancelled",
        hint=f"The approval for {rec.tool} was already answered, so it can't be withdrawn.")


def _graph_store() -> Any:
    try:
        from langgraph.config import get_store

        return get_store()
    except (RuntimeError, KeyError, ImportError):  # outside a graph run
        return None


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _public(user: UserIdentity) -> dict[str, Any]:
    view: dict[str, Any] = {"subject": user.subject, "name": user.name, "email": user.email,
                            "issuer": user.issuer, "tenant": user.tenant}
    claims = {k: v for k, v in user.claims.items() if _plain(v) or (isinstance(v, list) and all(map(_plain, v)))}
    if claims:
        view["claims"] = claims
    view["source"] = user.source
    return {k: v for k, v in view.items() if v is not None}


class _NoArgs(BaseModel):
    pass


_SPECS: dict[str, dict[str, Any]] = {
    "whoami": {"schema": _NoArgs, "description":
               "Who the user you act for is: their name, email and account details. Takes no arguments."},
    "list_connections": {"schema": _NoArgs, "description":
                         "The user's connected accounts (calendar, mail...) and their status: connected, "
                         "expired, missing_scopes, needs_reauthorization or not_connected."},
    "connect_account": {"schema": AgentAuthToolkit._connect_schema, "description":
                        "Ask the user to connect (or reconnect) one of their accounts; pauses until they have. "
                        "Use it when list_connections shows an account not usable."},
    "disconnect_account": {"schema": AgentAuthToolkit._disconnect_schema, "description":
                           "Disconnect one of the user's accounts (revokes the agent's access). Only when the "
                           "user asked for it."},
    "what_can_i_access": {"schema": AgentAuthToolkit._access_schema, "description":
                          "List the objects of a type the user has a relation on (for example the documents "
                          "they can view)."},
    "my_pending_approvals": {"schema": _NoArgs, "description":
                             "The actions waiting for the user's approval, each with a handle."},
    "cancel_approval": {"schema": create_model("CancelApprovalArgs", handle=(str, Field(
        max_length=64, description="The handle from my_pending_approvals."))), "description":
                        "Withdraw one of the user's pending approval requests (by its handle); the action will "
                        "not run even if the user approves it later. Only when the user asked for it."},
}
