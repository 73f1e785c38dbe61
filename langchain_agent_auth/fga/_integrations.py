"""The fga pillar's integrations: check a relationship before a tool runs.

:class:`FGAGuard` (one flow of the core effect runtime, run by ``invoke`` and
``ainvoke`` alike), :func:`with_fga`, :class:`FGAMiddleware` and the node form
(``guarded_tool_node(tools, FGAGuard(...))``), as in every pillar.

The user comes from the identity pillar (``call.user``), never from the model. The object
(and optionally the relation) is derived from the tool's arguments by a callable or a
template such as ``"document:{doc_id}"``. Template values are validated: a value holding
``:``, ``#``, ``@``, whitespace or control characters, or longer than ``max_value_length``,
is refused (``escape="reject"``, the default) or percent-encoded (``escape="quote"``), so
the model can never address another object type or relation through an argument.

When the check says no, the model gets a short refusal (an error ``ToolMessage``); with
``on_refusal="raise"`` the guard raises :class:`~langchain_agent_auth.errors.AccessDenied`
instead (``on_deny=`` is the deprecated name of that option). Any failure to decide (no
user, invalid input, unreachable server, missing condition context) denies: fail closed.
Every decision goes to ``on_decision`` and is
attached to the refusal's ``response_metadata["fga_decision"]``.

The three forms, over any :class:`Authorizer`::

    guarded = with_fga(read_doc, fga, relation="viewer", object="document:{doc_id}")
    agent = create_agent(model, tools, middleware=[FGAMiddleware(fga, {
        "read_doc": {"relation": "viewer", "object": "document:{doc_id}"},
        "delete_doc": {"relation": "owner", "object": "document:{doc_id}"},
    })])
    builder.add_node("tools", guarded_tool_node(tools, FGAGuard(fga, relation=..., object=...)))
"""

from __future__ import annotations

import inspect
import re
import string
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from langchain_core.tools import BaseTool

from langchain_agent_auth.core.effects import Call, Flow
from langchain_agent_auth.core.errors import (
    AccessDenied,
    AgentAuthError,
    AuthorizationError,
    ConfigurationError,
    IdentityError,
    TupleError,
    redact,
)
from langchain_agent_auth.core.guards import (
    GuardedCall,
    GuardedTool,
    OnRefusal,
    Proceed,
    Refusal,
    ToolGuard,
    ToolGuardMiddleware,
    guard_tool,
)
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.fga._tuple import is_valid_object, is_valid_relation, split_user
from langchain_agent_auth.fga._types import (
    AuthorizationDecision,
    Authorizer,
    DecisionSink,
    emit,
    error_text,
    record_decision,
)

__all__ = ["FGAGuard", "FGAMiddleware", "FGAToolGuard", "fga_user", "with_fga"]

_UNSAFE = re.compile(r"[:#@\s\x00-\x1f\x7f]")
ObjectSpec = str | Callable[[Mapping[str, Any]], str]
RelationSpec = str | Callable[[Mapping[str, Any]], str]


def fga_user(identity: UserIdentity, user_type: str = "user") -> str:
    """The FGA user string for an identity: ``user:<subject>``, unsafe characters percent-encoded.

    Write tuples for users with the same function so checks and tuples agree.

    Example:
        >>> fga_user(UserIdentity(subject="auth0|abc")), fga_user(UserIdentity(subject="urn:x y"))
        ('user:auth0|abc', 'user:urn%3Ax%20y')
    """
    return f"{user_type}:{_quote(identity.subject)}"


def _quote(value: str) -> str:
    return quote(value, safe="!$&'()*+,;=-._~|/") if _UNSAFE.search(value) or "%" in value else value


def _refusal_policy(on_refusal: OnRefusal | None, on_deny: str | None) -> OnRefusal:
    """The guard's refusal policy from ``on_refusal``, or the deprecated ``on_deny`` alias."""
    if on_deny is not None:
        warnings.warn("FGAGuard(on_deny=...) is deprecated; use on_refusal='message' or 'raise'",
                      DeprecationWarning, stacklevel=3)
        if on_refusal is not None:
            raise ConfigurationError("give on_refusal or on_deny (deprecated), not both")
        if on_deny not in ("refuse", "raise"):
            raise ConfigurationError("on_deny must be 'refuse' or 'raise'")
        return "raise" if on_deny == "raise" else "message"
    if on_refusal is None:
        return "message"
    if on_refusal not in ("message", "raise"):
        raise ConfigurationError("on_refusal must be 'message' or 'raise'")
    return on_refusal


def _takes_on_decision(method: Callable[..., Any]) -> bool:
    """Whether an authorizer method accepts ``on_decision=`` (older custom authorizers don't)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the current interface
        return True
    return any(p.name == "on_decision" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class _Template:
    """``"document:{doc_id}"``: a literal type and placeholders filled from tool arguments."""

    def __init__(self, template: str, *, escape: str, max_value_length: int) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        if any(not f or not f.isidentifier() for f in fields):
            raise ConfigurationError(f"object template {template!r}: use named fields like {{doc_id}}")
        type_part, sep, _ = template.partition(":")
        if not sep or "{" in type_part or "}" in type_part or not type_part:
            raise ConfigurationError(
                f"object template {template!r} must start with a literal type, e.g. 'document:{{doc_id}}'"
            )
        self.template = template
        self.type = type_part
        self.fields = fields
        self.escape = escape
        self.max_value_length = max_value_length

    def render(self, args: Mapping[str, Any]) -> str:
        values = {}
        for name in self.fields:
            if name not in args:
                raise TupleError(f"argument '{name}' is missing", code=2000)
            raw = args[name]
            if isinstance(raw, bool) or not isinstance(raw, (str, int)):
                raise TupleError(f"argument '{name}' must be a string or an integer", code=2000)
            value = str(raw)
            if not value:
                raise TupleError(f"argument '{name}' is empty", code=2000)
            if len(value) > self.max_value_length:
                raise TupleError(
                    f"argument '{name}' is longer than {self.max_value_length} characters", code=2000
                )
            if _UNSAFE.search(value) or value == "*":
                if self.escape != "quote" or value == "*":
                    raise TupleError(
                        f"argument '{name}' contains characters that are not allowed "
                        "in an object id (':', '#', '@', spaces)",
                        code=2000,
                    )
                value = _quote(value)
            values[name] = value
        obj = self.template.format(**values)
        if not is_valid_object(obj) or obj.partition(":")[0] != self.type:
            raise TupleError("the arguments do not make a valid object id", code=2000)
        return obj


class FGAGuard(ToolGuard):
    """A :class:`~langchain_agent_auth.guards.ToolGuard` that checks ``user relation object`` first.

    Args:
        authorizer: any :class:`Authorizer` (embedded or OpenFGA).
        relation: the relation to check, or a callable of the tool arguments returning it.
        object: a template such as ``"document:{doc_id}"`` or a callable of the arguments.
        tools: tool names this guard applies to in a middleware (default: all).
        allowed_relations: with a callable ``relation``, the relations it may return.
        object_types: with a callable ``object``, the object types it may return.
        user: how to turn the :class:`UserIdentity` into an FGA user (default :func:`fga_user`).
        context: a callable of the call giving the request context for conditions.
        on_refusal: ``"message"`` (a refusal for the model, the default) or ``"raise"``
            (:class:`AccessDenied` propagates), as in every pillar.
        on_deny: deprecated alias of ``on_refusal`` (``"refuse"`` = ``"message"``).
        message: the refusal text, or a callable of the decision.
        escape: ``"reject"`` hostile argument values, or ``"quote"`` them.
        on_decision: a sink for every :class:`AuthorizationDecision`.

    Example:
        >>> from langchain_core.tools import tool
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> from langchain_agent_auth.identity import acting_as
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype document\\n"
        ...                          "  relations\\n    define viewer: [user]\\n")
        >>> fga.write([("user:anne", "viewer", "document:1")])
        >>> @tool
        ... def read_doc(doc_id: str) -> str:
        ...     '''Read a document.'''
        ...     return f"contents of {doc_id}"
        >>> guarded = with_fga(read_doc, fga, relation="viewer", object="document:{doc_id}")
        >>> with acting_as(UserIdentity(subject="anne")):
        ...     guarded.invoke({"doc_id": "1"}), guarded.invoke({"doc_id": "2"})
        ('contents of 1', "Access denied: you don't have viewer access to document:2.")
    """

    def __init__(
        self,
        authorizer: Authorizer,
        *,
        relation: RelationSpec,
        object: ObjectSpec,
        tools: Iterable[str] | None = None,
        allowed_relations: Iterable[str] | None = None,
        object_types: Iterable[str] | None = None,
        user: Callable[[UserIdentity], str] = fga_user,
        context: Callable[[GuardedCall], Mapping[str, Any] | None] | None = None,
        contextual_tuples: Callable[[GuardedCall], Sequence[Any] | None] | None = None,
        on_refusal: OnRefusal | None = None,
        on_deny: Literal["refuse", "raise"] | None = None,
        message: str | Callable[[AuthorizationDecision], str] | None = None,
        escape: Literal["reject", "quote"] = "reject",
        max_value_length: int = 200,
        on_decision: DecisionSink | None = None,
    ) -> None:
        if not hasattr(authorizer, "check") or not hasattr(authorizer, "acheck"):
            raise ConfigurationError("FGAGuard needs an Authorizer (check / acheck)")
        self.on_refusal = _refusal_policy(on_refusal, on_deny)
        if escape not in ("reject", "quote"):
            raise ConfigurationError("escape must be 'reject' or 'quote'")
        if isinstance(relation, str) and not is_valid_relation(relation):
            raise ConfigurationError(f"invalid relation {relation!r}")
        self.authorizer = authorizer
        self._reports_decisions = _takes_on_decision(authorizer.check) and _takes_on_decision(authorizer.acheck)
        self.relation = relation
        self.allowed_relations = frozenset(allowed_relations) if allowed_relations is not None else None
        self.object_types = frozenset(object_types) if object_types is not None else None
        self._template = (
            _Template(object, escape=escape, max_value_length=max_value_length)
            if isinstance(object, str)
            else None
        )
        if self._template is None and not callable(object):
            raise ConfigurationError("object must be a template string or a callable of the tool arguments")
        self.object = object
        self.tools = frozenset(tools) if tools is not None else None
        self.user = user
        self.context = context
        self.contextual_tuples = contextual_tuples
        self.message = message
        self.on_decision = on_decision

    # -- plain decision helpers (shared by wrap and awrap) ------------------------------------

    def _request(self, call: GuardedCall) -> tuple[str, str, str]:
        """``(user, relation, object)`` for the call, or a typed error."""
        if call.user is None:
            call.warn_no_user("fga")
            raise IdentityError("no trusted user identity for this tool call")
        user = self.user(call.user)
        split_user(user)
        relation = self.relation(call.args) if callable(self.relation) else self.relation
        if not isinstance(relation, str) or not is_valid_relation(relation):
            raise TupleError("the tool arguments do not name a valid relation", code=2000)
        if self.allowed_relations is not None and relation not in self.allowed_relations:
            raise TupleError(f"relation {relation!r} is not allowed for this tool", code=2000)
        if self._template is not None:
            obj = self._template.render(call.args)
        else:
            obj = self.object(call.args)  # type: ignore[operator]
            if not isinstance(obj, str) or not is_valid_object(obj) or obj.endswith(":*"):
                raise TupleError("the tool arguments do not make a valid object id", code=2000)
            if self.object_types is not None and obj.partition(":")[0] not in self.object_types:
                raise TupleError(f"object type of {obj!r} is not allowed for this tool", code=2000)
        return user, relation, obj

    def _kwargs(self, call: GuardedCall) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.context is not None:
            kwargs["context"] = self.context(call)
        if self.contextual_tuples is not None:
            kwargs["contextual_tuples"] = self.contextual_tuples(call)
        return kwargs

    def _denied_message(self, decision: AuthorizationDecision) -> str:
        if callable(self.message):
            return self.message(decision)
        if self.message:
            return self.message
        return f"Access denied: you don't have {decision.relation} access to {decision.object}."

    def _failure(
        self,
        call: GuardedCall,
        exc: BaseException,
        started: float,
        who: tuple[str, str, str] | None,
        box: list[AuthorizationDecision],
    ) -> Any:
        if box:  # the authorizer recorded the failed check already
            decision = box[-1]
        else:
            user, relation, obj = who or ("", self.relation if isinstance(self.relation, str) else "", "")
            decision = self._record(user, relation, obj, False, started, exc)
        if isinstance(exc, IdentityError):
            message = "I can't check your permissions because I don't know who you are, so I didn't do this."
        elif isinstance(exc, TupleError) and who is None:
            message = f"I can't do this: {redact(exc.message)}."
        elif isinstance(exc, AgentAuthError) and exc.hint:
            message = f"I couldn't verify your permission to do this, so I didn't do it. {exc.hint}"
        else:
            message = "I couldn't verify your permission to do this, so I didn't do it."
        error = AccessDenied(f"authorization failed: {error_text(exc)}", decision=decision, hint=message)
        return self._refuse(call, message, error, decision)

    def _denied(self, call: GuardedCall, decision: AuthorizationDecision) -> Any:
        message = self._denied_message(decision)
        error = AccessDenied(
            f"{decision.user} has no {decision.relation} on {decision.object}",
            decision=decision,
            hint=message,
        )
        return self._refuse(call, message, error, decision)

    def _refuse(
        self, call: GuardedCall, message: str, error: AgentAuthError, decision: AuthorizationDecision
    ) -> Refusal:
        # the decision rides on the error ToolMessage (response_metadata) for audit
        return self.refuse(call, message, error, metadata={"fga_decision": decision.to_dict()})

    def _decision_sink(self, box: list[AuthorizationDecision]) -> DecisionSink:
        def sink(decision: AuthorizationDecision) -> None:
            box.append(decision)
            emit((self.on_decision,), decision)

        return sink

    def _result(
        self,
        call: GuardedCall,
        allowed: bool,
        decision: AuthorizationDecision | None,
        who: tuple[str, str, str],
        started: float,
    ) -> AuthorizationDecision:
        if decision is None:  # an Authorizer that does not accept on_decision
            decision = self._record(*who, allowed, started, None)
        return decision

    def _record(
        self, user: str, relation: str, obj: str, allowed: bool, started: float, exc: BaseException | None
    ) -> AuthorizationDecision:
        """A decision the authorizer did not record itself, for ``on_decision`` and the audit trail."""
        backend = getattr(self.authorizer, "backend", "unknown")
        return record_decision(backend, user, relation, obj, allowed, started, exc, None, (self.on_decision,))

    # -- ToolGuard ---------------------------------------------------------------------------

    def _check(self, who: tuple[str, str, str], call: GuardedCall, box: list[AuthorizationDecision]) -> Call:
        """The check as one step: ``authorizer.check`` under ``run``, ``acheck`` under ``arun``."""
        kwargs = self._kwargs(call)
        if self._reports_decisions:
            kwargs["on_decision"] = self._decision_sink(box)
        return Call(lambda: self.authorizer.check(*who, **kwargs), lambda: self.authorizer.acheck(*who, **kwargs))

    def flow(self, call: GuardedCall) -> Flow[Any]:
        started = time.perf_counter()
        who = None
        box: list[AuthorizationDecision] = []
        failure: Exception | None = None
        try:
            who = self._request(call)
            allowed = bool((yield self._check(who, call, box)))
        except Exception as exc:  # fail closed on anything (GraphBubbleUp cannot come from a check)
            failure = exc
        if failure is not None:
            return self._failure(call, failure, started, who, box)
        assert who is not None
        decision = self._result(call, allowed, box[-1] if box else None, who, started)
        if not allowed:
            return self._denied(call, decision)
        return (yield Proceed(call))


FGAToolGuard = FGAGuard
"""The former name of :class:`FGAGuard` (kept so existing imports work)."""


def with_fga(
    tool: BaseTool, authorizer: Authorizer, *, relation: RelationSpec, object: ObjectSpec, **kwargs: Any
) -> GuardedTool:
    """Wrap ``tool`` so every call is checked first (see :class:`FGAGuard` for the options).

    Composes with the other pillars' wrappers in any order (``guard_tool`` flattens them).

    Example:
        >>> from langchain_core.tools import tool
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype repo\\n"
        ...                          "  relations\\n    define admin: [user]\\n")
        >>> @tool
        ... def delete_repo(repo: str) -> str:
        ...     "Delete a repository."
        ...     return "deleted"
        >>> guarded = with_fga(delete_repo, fga, relation="admin", object="repo:{repo}")
        >>> from langchain_agent_auth.identity import acting_as
        >>> with acting_as(UserIdentity(subject="mallory")):
        ...     guarded.invoke({"repo": "core"})
        "Access denied: you don't have admin access to repo:core."
    """
    return guard_tool(tool, FGAGuard(authorizer, relation=relation, object=object, **kwargs))


class FGAMiddleware(ToolGuardMiddleware):
    """An agent middleware checking tool calls, configured per tool name.

    ``rules`` maps a tool name to :class:`FGAGuard` options (``relation``, ``object``...)
    or to a ready guard. Tools without a rule run unchecked, or are refused with
    ``unlisted="deny"``. Other keyword arguments are defaults for every rule; among them
    ``on_refusal="raise"`` also applies to ``unlisted="deny"``.

    Example:
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype document\\n"
        ...                          "  relations\\n    define viewer: [user]\\n")
        >>> mw = FGAMiddleware(fga, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}},
        ...                    unlisted="deny")
        >>> [g.applies_to("read_doc") for g in mw.guards], [g.applies_to("other") for g in mw.guards]
        ([True, False], [False, True])

        In an agent: ``create_agent(model, tools, middleware=[mw])``.
    """

    def __init__(
        self,
        authorizer: Authorizer,
        rules: Mapping[str, Mapping[str, Any] | FGAGuard],
        *,
        unlisted: Literal["allow", "deny"] = "allow",
        on_decision: DecisionSink | None = None,
        **defaults: Any,
    ) -> None:
        if unlisted not in ("allow", "deny"):
            raise ConfigurationError("unlisted must be 'allow' or 'deny'")
        guards: list[ToolGuard] = []
        for name, rule in rules.items():
            if isinstance(rule, FGAGuard):
                rule.tools = frozenset({name})
                guards.append(rule)
                continue
            options = {**defaults, **dict(rule)}
            options.setdefault("on_decision", on_decision)
            guards.append(FGAGuard(authorizer, tools=[name], **options))
        if unlisted == "deny":
            guards.append(_DenyUnlisted(frozenset(rules), _refusal_policy(defaults.get("on_refusal"), None)))
        super().__init__(guards)


class _DenyUnlisted(ToolGuard):
    def __init__(self, listed: frozenset[str], on_refusal: OnRefusal = "message") -> None:
        self.listed = listed
        self.on_refusal = on_refusal

    def applies_to(self, tool_name: str) -> bool:
        return tool_name not in self.listed

    def flow(self, call: GuardedCall) -> Flow[Any]:
        error = AuthorizationError(f"tool '{call.name}' has no authorization rule")
        return self.refuse(call, "This tool is not available: it has no authorization rule.", error)
        yield  # a flow that never hands the call on
