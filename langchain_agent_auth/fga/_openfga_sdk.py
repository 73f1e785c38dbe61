"""The openfga-sdk side of the OpenFGA backend: the lazy import, request bodies, answers and errors.

:class:`~langchain_agent_auth.fga.openfga.OpenFGAAuthorizer` builds its SDK requests here and
maps every SDK or transport failure to the toolkit's typed errors with OpenFGA's numeric code
(``validation_error`` -> :class:`AuthorizationError` code 2000, an unreachable server ->
:class:`ProviderUnavailableError`).

Example:
    >>> from langchain_agent_auth.fga._tuple import TupleKey
    >>> tuple_json(TupleKey("user:anne", "viewer", "document:1"))
    {'user': 'user:anne', 'relation': 'viewer', 'object': 'document:1'}
    >>> map_error(TimeoutError("slow")).__class__.__name__
    'ProviderUnavailableError'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_agent_auth.core.errors import (
    AgentAuthError,
    AuthorizationError,
    ConditionError,
    ConfigurationError,
    ProviderUnavailableError,
    ResolutionDepthError,
    TupleError,
)
from langchain_agent_auth.fga._tuple import TupleKey, coerce_tuples
from langchain_agent_auth.fga._types import coerce_user_filter

_INSTALL_HINT = "pip install 'langchain-agent-auth[openfga]'"
_CODES = {
    "validation_error": 2000,
    "authorization_model_not_found": 2001,
    "authorization_model_resolution_too_complex": 2002,
    "cannot_allow_duplicate_tuples_in_one_request": 2004,
    "write_failed_due_to_invalid_input": 2017,
    "type_not_found": 2021,
    "relation_not_found": 2022,
    "invalid_tuple": 2027,
}


def sdk() -> Any:
    """The ``openfga_sdk`` module, or a ConfigurationError naming the extra to install."""
    try:
        import openfga_sdk
    except ImportError:  # pragma: no cover - exercised without the extra installed
        raise ConfigurationError(
            f"the OpenFGA backend needs openfga-sdk: {_INSTALL_HINT}",
            hint="The authorization service is not configured.",
        ) from None
    return openfga_sdk


def map_error(exc: BaseException) -> AgentAuthError:
    """An SDK or transport error as the toolkit's typed error."""
    if isinstance(exc, AgentAuthError):
        return exc
    exceptions = sdk().exceptions
    if isinstance(exc, exceptions.ApiException):
        status = getattr(exc, "status", None)
        code_name = getattr(exc, "code", None)
        message = getattr(exc, "error_message", None) or str(exc)
        if code_name is None and getattr(exc, "body", None):
            try:
                body = json.loads(exc.body)
                code_name, message = body.get("code"), body.get("message", message)
            except (ValueError, TypeError, AttributeError):
                pass
        if status is not None and (status >= 500 or status == 429):
            return ProviderUnavailableError(f"OpenFGA answered HTTP {status}: {message}", status_code=status)
        if status in (401, 403):
            return ConfigurationError(
                f"OpenFGA rejected the credentials (HTTP {status})",
                hint="The authorization service rejected this agent's credentials.",
            )
        code = _CODES.get(str(code_name), 2000)
        if code == 2002:
            return ResolutionDepthError(str(message))
        if "condition" in str(message) and "missing" in str(message):
            return ConditionError(str(message))
        if code in (2021, 2022, 2027):
            return TupleError(str(message), code=code)
        return AuthorizationError(f"OpenFGA: {message}", code=code)
    if isinstance(exc, (exceptions.FgaValidationException, ValueError, TypeError)):
        return AuthorizationError(f"invalid request for OpenFGA: {exc}", code=2000)
    return ProviderUnavailableError(f"OpenFGA unreachable: {type(exc).__name__}: {exc}")


def tuple_json(t: TupleKey) -> dict[str, Any]:
    out: dict[str, Any] = {"user": t.user, "relation": t.relation, "object": t.object}
    if t.condition:
        out["condition"] = {"name": t.condition, "context": dict(t.context or {})}
    return out


def client_tuple(t: TupleKey) -> Any:
    from openfga_sdk.client.models import ClientTuple
    from openfga_sdk.models import RelationshipCondition

    cond = RelationshipCondition(name=t.condition, context=dict(t.context or {})) if t.condition else None
    return ClientTuple(user=t.user, relation=t.relation, object=t.object, condition=cond)


def _query_extras(context: Mapping[str, Any] | None, contextual_tuples: Sequence[Any] | None) -> dict[str, Any]:
    """The condition context and contextual tuples every query request carries."""
    return {
        "context": dict(context) if context else None,
        "contextual_tuples": [client_tuple(t) for t in coerce_tuples(contextual_tuples)] or None,
    }


def check_body(user: str, relation: str, obj: str, context: Mapping[str, Any] | None,
               contextual_tuples: Sequence[Any] | None) -> Any:
    """The SDK's check request."""
    from openfga_sdk.client.models import ClientCheckRequest

    return ClientCheckRequest(user=user, relation=relation, object=obj, **_query_extras(context, contextual_tuples))


def list_objects_body(user: str, relation: str, type: str, context: Mapping[str, Any] | None,
                      contextual_tuples: Sequence[Any] | None) -> Any:
    """The SDK's list-objects request."""
    from openfga_sdk.client.models import ClientListObjectsRequest

    return ClientListObjectsRequest(user=user, relation=relation, type=type,
                                    **_query_extras(context, contextual_tuples))


def list_users_body(object: str, relation: str, user_filter: Any, context: Mapping[str, Any] | None,
                    contextual_tuples: Sequence[Any] | None) -> Any:
    """The SDK's list-users request (``user_filter``: one filter or a list of them)."""
    from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
    from openfga_sdk.models import FgaObject, UserTypeFilter

    filters = list(user_filter) if isinstance(user_filter, (list, tuple)) else [user_filter]
    parsed = [coerce_user_filter(f) for f in filters]
    otype, _, oid = object.partition(":")
    return ClientListUsersRequest(
        object=FgaObject(type=otype, id=oid),
        relation=relation,
        user_filters=[UserTypeFilter(type=f.type, relation=f.relation or None) for f in parsed],
        **_query_extras(context, contextual_tuples),
    )


def users_of(response: Any) -> list[str]:
    """A list-users answer as sorted user strings (``type:*`` for a wildcard)."""
    out = []
    for u in response.users or []:
        if getattr(u, "object", None) is not None:
            out.append(f"{u.object.type}:{u.object.id}")
        elif getattr(u, "userset", None) is not None:
            out.append(f"{u.userset.type}:{u.userset.id}#{u.userset.relation}")
        elif getattr(u, "wildcard", None) is not None:
            out.append(f"{u.wildcard.type}:*")
    return sorted(out)


def write_args(writes: Iterable[Any], deletes: Iterable[Any]) -> tuple[Any, dict[str, Any]]:
    """The SDK's write request and options (chunked beyond 100 tuples)."""
    from openfga_sdk.client.models import ClientWriteRequest, WriteTransactionOpts

    w = [client_tuple(t) for t in coerce_tuples(writes)]
    d = [client_tuple(TupleKey(t.user, t.relation, t.object)) for t in coerce_tuples(deletes)]
    options: dict[str, Any] = {}
    if len(w) + len(d) > 100:
        # More than OpenFGA accepts in one transaction: chunks (not atomic as a whole).
        options["transaction"] = WriteTransactionOpts(disabled=True, max_per_chunk=100)
    return ClientWriteRequest(writes=w or None, deletes=d or None), options


def raise_chunk_errors(response: Any) -> None:
    """Raise the first error a chunked write reported."""
    for group in (getattr(response, "writes", None) or [], getattr(response, "deletes", None) or []):
        for item in group:
            error = getattr(item, "error", None)
            if error is not None:
                raise (
                    map_error(error) if isinstance(error, BaseException) else AuthorizationError(str(error))
                )
