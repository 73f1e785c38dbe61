"""Relationship tuples and the strings they are made of (``type:id``, ``type:id#rel``, ``type:*``).

The rules are OpenFGA's: an object is ``type:id`` with exactly one ``:`` and no ``#`` or
whitespace; a user is an object, a typed wildcard ``type:*`` or a userset
``type:id#relation``; a relation has no ``:``, ``#``, ``@`` or whitespace. Lengths are
bounded as in OpenFGA's API (object 256, user 512, relation 50).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_agent_auth.core.errors import TupleError

__all__ = [
    "MAX_OBJECT_LEN",
    "MAX_RELATION_LEN",
    "MAX_USER_LEN",
    "TupleKey",
    "coerce_tuple",
    "coerce_tuples",
    "is_valid_object",
    "is_valid_relation",
    "split_object",
    "split_user",
]

MAX_OBJECT_LEN = 256
MAX_USER_LEN = 512
MAX_RELATION_LEN = 50

_OBJECT_RE = re.compile(r"[^:#\s]+:[^#:\s]+")
_USERSET_RE = re.compile(r"[^:#\s]+:[^#:\s]+#[^:#@\s]+")
_RELATION_RE = re.compile(r"[^:#@\s]+")


def is_valid_object(value: str) -> bool:
    """Whether ``value`` is a well-formed ``type:id`` (wildcards included).

    Example:
        >>> is_valid_object("document:1"), is_valid_object("document:1#viewer"), is_valid_object("a:b:c")
        (True, False, False)
    """
    return isinstance(value, str) and len(value) <= MAX_OBJECT_LEN and _OBJECT_RE.fullmatch(value) is not None


def is_valid_relation(value: str) -> bool:
    """Whether ``value`` is a well-formed relation name."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_RELATION_LEN
        and _RELATION_RE.fullmatch(value) is not None
    )


def split_object(value: str) -> tuple[str, str]:
    """``"document:1"`` -> ``("document", "1")``; raises :class:`TupleError` if malformed."""
    if not is_valid_object(value):
        raise TupleError(f"invalid object {_show(value)}: expected 'type:id'", code=2000)
    t, _, i = value.partition(":")
    return t, i


def split_user(value: str) -> tuple[str, str, str]:
    """Split a user string into ``(type, id, relation)``.

    ``relation`` is ``""`` for an object, and ``id`` is ``"*"`` for a typed wildcard.

    Example:
        >>> split_user("group:eng#member"), split_user("user:*"), split_user("user:anne")
        (('group', 'eng', 'member'), ('user', '*', ''), ('user', 'anne', ''))
    """
    if not isinstance(value, str) or len(value) > MAX_USER_LEN:
        raise TupleError(f"invalid user {_show(value)}", code=2000)
    if _OBJECT_RE.fullmatch(value):
        t, _, i = value.partition(":")
        return t, i, ""
    if _USERSET_RE.fullmatch(value):
        obj, _, rel = value.partition("#")
        t, _, i = obj.partition(":")
        if i == "*":
            raise TupleError(f"invalid user {_show(value)}: a userset cannot be a wildcard", code=2000)
        return t, i, rel
    raise TupleError(
        f"invalid user {_show(value)}: expected 'type:id', 'type:*' or 'type:id#relation'", code=2000
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


@dataclass(frozen=True, slots=True, eq=False)
class TupleKey:
    """One relationship tuple: ``user`` has ``relation`` on ``object``, optionally under a condition.

    Identity (equality and hashing) is ``(object, relation, user)``, as in OpenFGA: a
    store holds at most one tuple per key.

    Example:
        >>> t = TupleKey("user:anne", "viewer", "document:1")
        >>> str(t), t.object_type, t.user_type
        ('document:1#viewer@user:anne', 'document', 'user')
        >>> TupleKey.from_dict({"user": "user:b", "relation": "r", "object": "doc:1",
        ...                     "condition": {"name": "c", "context": {"x": 1}}}).condition
        'c'
    """

    user: str
    relation: str
    object: str
    condition: str | None = None
    context: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """``(object, relation, user)``."""
        return (self.object, self.relation, self.user)

    @property
    def object_type(self) -> str:
        return self.object.partition(":")[0]

    @property
    def user_type(self) -> str:
        return self.user.partition(":")[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TupleKey):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return f"{self.object}#{self.relation}@{self.user}"

    def same_as(self, other: TupleKey) -> bool:
        """Equal key, condition and context."""
        return (
            self.key == other.key
            and (self.condition or None) == (other.condition or None)
            and dict(self.context or {}) == dict(other.context or {})
        )

    def to_dict(self) -> dict[str, Any]:
        """The OpenFGA API shape: ``{"user", "relation", "object", "condition"?}``."""
        out: dict[str, Any] = {"user": self.user, "relation": self.relation, "object": self.object}
        if self.condition:
            cond: dict[str, Any] = {"name": self.condition}
            if self.context:
                cond["context"] = dict(self.context)
            out["condition"] = cond
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TupleKey:
        """Build from the OpenFGA API shape (or ``condition`` as a plain name)."""
        if not isinstance(data, Mapping):
            raise TupleError(f"a tuple must be a mapping with user, relation, object; got {_show(data)}")
        user, relation, obj = data.get("user"), data.get("relation"), data.get("object")
        for name, value in (("user", user), ("relation", relation), ("object", obj)):
            if not isinstance(value, str) or not value:
                raise TupleError(f"tuple field {name!r} must be a non-empty string, got {_show(value)}")
        cond = data.get("condition")
        name: str | None = None
        context: Mapping[str, Any] | None = None
        if isinstance(cond, str):
            name = cond or None
            context = data.get("context") if isinstance(data.get("context"), Mapping) else None
        elif isinstance(cond, Mapping):
            raw_name = cond.get("name")
            if raw_name is not None and not isinstance(raw_name, str):
                raise TupleError("tuple condition name must be a string")
            name = raw_name or None
            ctx = cond.get("context")
            if ctx is not None and not isinstance(ctx, Mapping):
                raise TupleError("tuple condition context must be a mapping")
            context = ctx or None
        elif cond is not None:
            raise TupleError(f"tuple condition must be a mapping or a name, got {_show(cond)}")
        if context is not None and name is None:
            raise TupleError("a tuple context needs a condition name")
        return cls(user, relation, obj, name, dict(context) if context else None)

    def context_json(self) -> str | None:
        """The context as canonical JSON (for storage), or ``None``."""
        if not self.context:
            return None
        return json.dumps(self.context, sort_keys=True, separators=(",", ":"))


def coerce_tuple(value: Any) -> TupleKey:
    """Accept a :class:`TupleKey`, an API-shaped mapping, a ``(user, relation, object)``
    sequence, or an object with ``user``/``relation``/``object`` attributes (SDK models).

    Example:
        >>> coerce_tuple(("user:anne", "viewer", "document:1")).object
        'document:1'
    """
    if isinstance(value, TupleKey):
        return value
    if isinstance(value, Mapping):
        return TupleKey.from_dict(value)
    if isinstance(value, (tuple, list)) and len(value) in (3, 4, 5):
        user, relation, obj = value[0], value[1], value[2]
        cond = value[3] if len(value) > 3 else None
        ctx = value[4] if len(value) > 4 else None
        return TupleKey.from_dict(
            {"user": user, "relation": relation, "object": obj, "condition": cond, "context": ctx}
        )
    if all(hasattr(value, a) for a in ("user", "relation", "object")):
        cond = getattr(value, "condition", None)
        if cond is not None and not isinstance(cond, (str, Mapping)):
            cond = {"name": getattr(cond, "name", None), "context": getattr(cond, "context", None)}
        return TupleKey.from_dict(
            {"user": value.user, "relation": value.relation, "object": value.object, "condition": cond}
        )
    raise TupleError(f"not a tuple: {_show(value)}")


def coerce_tuples(values: Iterable[Any] | None) -> list[TupleKey]:
    """:func:`coerce_tuple` over an iterable (``None`` gives an empty list)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, Mapping)):
        raise TupleError("expected a list of tuples")
    return [coerce_tuple(v) for v in values]
