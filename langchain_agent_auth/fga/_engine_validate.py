"""Checking a query or a tuple against the model before the engine evaluates anything.

Users, objects and relations must be well formed and defined by the model, a tuple must
satisfy its relation's type restrictions (OpenFGA's error codes and messages), and a
request context must be JSON of bounded size. The embedded authorizer calls these before
it hands a request to the :class:`~langchain_agent_auth.fga._engine.Resolver`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langchain_agent_auth.core.errors import ConditionError, TupleError
from langchain_agent_auth.fga._tuple import TupleKey, is_valid_object, is_valid_relation, split_user

if TYPE_CHECKING:
    from langchain_agent_auth.fga._model import AuthorizationModel

DEFAULT_MAX_CONTEXTUAL_TUPLES = 100
MAX_CONTEXT_BYTES = 64 * 1024



def user_shape(user: str) -> tuple[str, str]:
    """``(type, '' | '*' | relation)`` of a well-formed user string."""
    head, _, rel = user.partition("#")
    t, _, i = head.partition(":")
    if rel:
        return t, rel
    return t, ("*" if i == "*" else "")


def validate_query_user(model: AuthorizationModel, user: str, *, code: int = 2000) -> tuple[str, str, str]:
    """OpenFGA's ValidateUser: well-formed, type (and userset relation) defined."""
    utype, uid, urel = split_user(user)
    if not model.has_type(utype):
        raise TupleError(f"type '{utype}' of user '{user}' is not defined in the model", code=code)
    if urel and model.relation(utype, urel) is None:
        raise TupleError(f"relation '{utype}#{urel}' of user '{user}' is not defined in the model", code=code)
    return utype, uid, urel


def _validate_object(model: AuthorizationModel, obj: str, *, code: int) -> str:
    if not is_valid_object(obj):
        raise TupleError(f"invalid object {obj!r}: expected 'type:id'", code=code)
    otype, _, oid = obj.partition(":")
    if oid == "*":
        raise TupleError(f"the object cannot be a wildcard: {obj!r}", code=code)
    if not model.has_type(otype):
        raise TupleError(f"type '{otype}' is not defined in the model", code=code)
    return otype


def validate_check(model: AuthorizationModel, user: str, relation: str, obj: str) -> None:
    """OpenFGA's ValidateUserObjectRelation (error code 2000)."""
    validate_query_user(model, user)
    otype = _validate_object(model, obj, code=2000)
    if not is_valid_relation(relation):
        raise TupleError(f"invalid relation {relation!r}", code=2000)
    if model.relation(otype, relation) is None:
        raise TupleError(f"relation '{otype}#{relation}' is not defined in the model", code=2000)


def validate_tuple(
    model: AuthorizationModel, t: TupleKey, *, code: int = 2027, check_context: bool = True
) -> None:
    """OpenFGA's ValidateTuple: well-formed and allowed by the model's type restrictions."""
    prefix = f"invalid tuple '{t}'"
    try:
        utype, _, urel = split_user(t.user)
    except TupleError as exc:
        raise TupleError(f"{prefix}: {exc.message}", code=code) from None
    if not model.has_type(utype):
        raise TupleError(f"{prefix}: type '{utype}' is not defined", code=code)
    if urel and model.relation(utype, urel) is None:
        raise TupleError(f"{prefix}: relation '{utype}#{urel}' is not defined", code=code)
    if not is_valid_object(t.object) or t.object.endswith(":*"):
        raise TupleError(f"{prefix}: invalid object {t.object!r}", code=code)
    otype = t.object_type
    if not model.has_type(otype):
        raise TupleError(f"{prefix}: type '{otype}' is not defined", code=code)
    if not is_valid_relation(t.relation):
        raise TupleError(f"{prefix}: invalid relation {t.relation!r}", code=code)
    if model.relation(otype, t.relation) is None:
        raise TupleError(f"{prefix}: relation '{otype}#{t.relation}' is not defined", code=code)
    if t.user == f"{t.object}#{t.relation}":
        raise TupleError(f"{prefix}: cannot write a tuple that is implicit (a userset of itself)", code=code)
    shape = user_shape(t.user)
    if model.is_tupleset(otype, t.relation) and shape[1]:
        raise TupleError(
            f"{prefix}: '{otype}#{t.relation}' is used in 'x from {t.relation}', so its "
            "users must be objects, not usersets or wildcards",
            code=code,
        )
    if t.condition:
        cond = model.conditions.get(t.condition)
        if cond is None:
            raise TupleError(f"{prefix}: condition '{t.condition}' is not defined", code=code)
        if check_context and t.context:
            from langchain_agent_auth.fga._cel import convert_param

            for key, value in t.context.items():
                ptype = cond.parameters.get(key)
                if ptype is None:
                    raise TupleError(
                        f"{prefix}: '{key}' is not a parameter of condition '{t.condition}'", code=code
                    )
                try:
                    convert_param(ptype, value)
                except ValueError as exc:
                    raise TupleError(f"{prefix}: context parameter '{key}': {exc}", code=code) from None
    if not model.tuple_allowed(otype, t.relation, shape[0], shape[1], t.condition):
        what = {"": f"type '{shape[0]}'", "*": f"the typed wildcard '{shape[0]}:*'"}.get(
            shape[1], f"'{shape[0]}#{shape[1]}'"
        )
        cond = f" with condition '{t.condition}'" if t.condition else " without a condition"
        raise TupleError(
            f"{prefix}: {what}{cond} is not an allowed type restriction for '{otype}#{t.relation}'", code=code
        )


def validate_context(context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A request context must be a JSON object of bounded size."""
    if context is None:
        return None
    if not isinstance(context, Mapping):
        raise ConditionError("the request context must be a mapping")
    try:
        size = len(json.dumps(context, allow_nan=False, default=_no_default))
    except (TypeError, ValueError) as exc:
        raise ConditionError(f"the request context is not valid JSON: {exc}") from None
    if size > MAX_CONTEXT_BYTES:
        raise ConditionError(f"the request context is larger than {MAX_CONTEXT_BYTES // 1024} KiB")
    return dict(context)


def _no_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


