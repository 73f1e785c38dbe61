"""The pieces of an authorization model: types, relations, rewrites, conditions, and their JSON.

:class:`~langchain_agent_auth.fga._model.AuthorizationModel` is made of these: a
:class:`TypeDefinition` holds :class:`Relation` objects, each with a :class:`Rewrite` tree
(:class:`This`, :class:`ComputedUserset`, :class:`TupleToUserset`, :class:`Union`,
:class:`Intersection`, :class:`Difference`) and its directly related user types
(:class:`RelationRef`); a :class:`Condition` has typed parameters (:class:`ParamType`).
The readers here turn OpenFGA's JSON into these pieces, checking its shape.

Example:
    >>> rewrite_to_json(Union((This(), ComputedUserset("owner"))))
    {'union': {'child': [{'this': {}}, {'computedUserset': {'relation': 'owner'}}]}}
    >>> str(ParamType.parse("map<string>"))
    'map<string>'
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_agent_auth.core.errors import ModelError

SCHEMA_VERSIONS = ("1.1", "1.2")
MAX_REWRITE_DEPTH = 64
_NAME_RE = re.compile(r"[^:#@\s]{1,254}")
_RELATION_NAME_RE = re.compile(r"[^:#@\s]{1,50}")
_CONDITION_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,49}")

# DSL keyword -> API enum name.
PARAM_TYPES: dict[str, str] = {
    "any": "TYPE_NAME_ANY",
    "bool": "TYPE_NAME_BOOL",
    "string": "TYPE_NAME_STRING",
    "int": "TYPE_NAME_INT",
    "uint": "TYPE_NAME_UINT",
    "double": "TYPE_NAME_DOUBLE",
    "duration": "TYPE_NAME_DURATION",
    "timestamp": "TYPE_NAME_TIMESTAMP",
    "map": "TYPE_NAME_MAP",
    "list": "TYPE_NAME_LIST",
    "ipaddress": "TYPE_NAME_IPADDRESS",
}
_PARAM_FROM_API = {v: k for k, v in PARAM_TYPES.items()}
_GENERIC = {"map", "list"}

Position = tuple[int, int]


def at_position(positions: Mapping[tuple[str, ...], Position] | None, key: tuple[str, ...]) -> dict[str, int]:
    """``line``/``column`` keyword arguments for a ModelError about ``key``, when known."""
    pos = (positions or {}).get(key)
    return {"line": pos[0], "column": pos[1]} if pos else {}


# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True, slots=True)
class ParamType:
    """A condition parameter type: ``int``, ``list<string>``, ``map<int>``...

    Example:
        >>> str(ParamType.parse("list<string>")), ParamType.parse("int").to_json()
        ('list<string>', {'type_name': 'TYPE_NAME_INT'})
    """

    name: str
    generic: ParamType | None = None

    def __str__(self) -> str:
        return f"{self.name}<{self.generic}>" if self.generic else self.name

    @classmethod
    def parse(cls, text: str) -> ParamType:
        text = text.strip()
        m = re.fullmatch(r"(map|list)\s*<\s*(.+?)\s*>", text)
        if m:
            return cls(m.group(1), cls.parse(m.group(2)))
        if text not in PARAM_TYPES or text in _GENERIC:
            raise ModelError(f"unknown condition parameter type {text!r}")
        return cls(text)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type_name": PARAM_TYPES[self.name]}
        if self.generic is not None:
            out["generic_types"] = [self.generic.to_json()]
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> ParamType:
        if not isinstance(data, Mapping):
            raise ModelError(f"{where}: a parameter type must be an object")
        api = data.get("type_name")
        name = _PARAM_FROM_API.get(api) if isinstance(api, str) else None
        if name is None:
            raise ModelError(f"{where}: unknown parameter type {api!r}")
        generics = data.get("generic_types") or []
        if not isinstance(generics, list):
            raise ModelError(f"{where}: generic_types must be a list")
        if name in _GENERIC:
            if len(generics) != 1:
                raise ModelError(f"{where}: type '{name}' needs exactly one generic type")
            return cls(name, cls.from_json(generics[0], where))
        if generics:
            raise ModelError(f"{where}: type '{name}' takes no generic type")
        return cls(name)


@dataclass(frozen=True, slots=True)
class RelationRef:
    """A directly related user type: ``user``, ``user:*``, ``group#member``, ``user with cond``."""

    type: str
    relation: str | None = None
    wildcard: bool = False
    condition: str | None = None

    def __str__(self) -> str:
        base = self.type + (":*" if self.wildcard else "") + (f"#{self.relation}" if self.relation else "")
        return f"{base} with {self.condition}" if self.condition else base

    @property
    def signature(self) -> tuple[str, str, str]:
        """``(type, relation | '*' | '', condition | '')``: what a tuple's user must look like."""
        return (self.type, "*" if self.wildcard else (self.relation or ""), self.condition or "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.relation:
            out["relation"] = self.relation
        if self.wildcard:
            out["wildcard"] = {}
        if self.condition:
            out["condition"] = self.condition
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> RelationRef:
        if not isinstance(data, Mapping) or not isinstance(data.get("type"), str) or not data["type"]:
            raise ModelError(f"{where}: a directly related user type needs a 'type'")
        rel = data.get("relation") or None
        wildcard = data.get("wildcard") is not None
        cond = data.get("condition") or None
        if rel is not None and not isinstance(rel, str):
            raise ModelError(f"{where}: 'relation' must be a string")
        if cond is not None and not isinstance(cond, str):
            raise ModelError(f"{where}: 'condition' must be a string")
        if rel and wildcard:
            raise ModelError(f"{where}: a type restriction cannot be both a wildcard and a userset")
        return cls(data["type"], rel, wildcard, cond)


# Rewrites ---------------------------------------------------------------------

THIS, COMPUTED, TTU, UNION, INTERSECTION, DIFFERENCE = range(6)


class Rewrite:
    """Base of the userset rewrite tree (``this``, computed, tuple-to-userset, set operators)."""

    __slots__ = ()
    kind: ClassVar[int]

    def children(self) -> tuple[Rewrite, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class This(Rewrite):
    """Direct assignment (``[user, group#member]`` in the DSL)."""

    kind: ClassVar[int] = THIS


@dataclass(frozen=True, slots=True)
class ComputedUserset(Rewrite):
    """Another relation on the same object (``define viewer: editor``)."""

    relation: str
    kind: ClassVar[int] = COMPUTED


@dataclass(frozen=True, slots=True)
class TupleToUserset(Rewrite):
    """``computed from tupleset`` (``define viewer: viewer from parent``)."""

    tupleset: str
    computed: str
    kind: ClassVar[int] = TTU


@dataclass(frozen=True, slots=True)
class _Combination(Rewrite):
    """A rewrite over two or more members: :class:`Union` and :class:`Intersection`."""

    members: tuple[Rewrite, ...]

    def children(self) -> tuple[Rewrite, ...]:
        return self.members


@dataclass(frozen=True, slots=True)
class Union(_Combination):
    """``a or b or c``."""

    kind: ClassVar[int] = UNION


@dataclass(frozen=True, slots=True)
class Intersection(_Combination):
    """``a and b and c``."""

    kind: ClassVar[int] = INTERSECTION


@dataclass(frozen=True, slots=True)
class Difference(Rewrite):
    """``base but not subtract``."""

    base: Rewrite
    subtract: Rewrite
    kind: ClassVar[int] = DIFFERENCE

    def children(self) -> tuple[Rewrite, ...]:
        return (self.base, self.subtract)


def rewrite_to_json(rw: Rewrite) -> dict[str, Any]:
    """A rewrite in OpenFGA's JSON shape."""
    if isinstance(rw, This):
        return {"this": {}}
    if isinstance(rw, ComputedUserset):
        return {"computedUserset": {"relation": rw.relation}}
    if isinstance(rw, TupleToUserset):
        return {
            "tupleToUserset": {
                "tupleset": {"relation": rw.tupleset},
                "computedUserset": {"relation": rw.computed},
            }
        }
    if isinstance(rw, Union):
        return {"union": {"child": [rewrite_to_json(c) for c in rw.members]}}
    if isinstance(rw, Intersection):
        return {"intersection": {"child": [rewrite_to_json(c) for c in rw.members]}}
    if isinstance(rw, Difference):
        return {"difference": {"base": rewrite_to_json(rw.base), "subtract": rewrite_to_json(rw.subtract)}}
    raise TypeError(f"not a rewrite: {rw!r}")  # pragma: no cover


def rewrite_from_json(data: Any, where: str, depth: int = 0) -> Rewrite:
    """Parse OpenFGA's JSON rewrite shape, raising :class:`ModelError` on anything else."""
    if depth > MAX_REWRITE_DEPTH:
        raise ModelError(f"{where}: the rewrite is nested more than {MAX_REWRITE_DEPTH} levels deep")
    if not isinstance(data, Mapping):
        raise ModelError(f"{where}: a rewrite must be an object")
    keys = [k for k, v in data.items() if v is not None]
    if len(keys) != 1:
        raise ModelError(
            f"{where}: a rewrite needs exactly one of this, computedUserset, "
            f"tupleToUserset, union, intersection, difference"
        )
    key = keys[0]
    body = data[key]

    def rel_of(obj: Any, what: str) -> str:
        rel = obj.get("relation") if isinstance(obj, Mapping) else None
        if not isinstance(rel, str) or not rel:
            raise ModelError(f"{where}: {what} needs a relation")
        return rel

    if key == "this":
        return This()
    if key == "computedUserset":
        return ComputedUserset(rel_of(body, "computedUserset"))
    if key == "tupleToUserset":
        if not isinstance(body, Mapping):
            raise ModelError(f"{where}: tupleToUserset must be an object")
        return TupleToUserset(
            rel_of(body.get("tupleset"), "tupleToUserset.tupleset"),
            rel_of(body.get("computedUserset"), "tupleToUserset.computedUserset"),
        )
    if key in ("union", "intersection"):
        children = body.get("child") if isinstance(body, Mapping) else None
        if not isinstance(children, list) or len(children) < 2:
            raise ModelError(f"{where}: {key} needs at least two children")
        parsed = tuple(rewrite_from_json(c, where, depth + 1) for c in children)
        return Union(parsed) if key == "union" else Intersection(parsed)
    if key == "difference":
        if not isinstance(body, Mapping) or body.get("base") is None or body.get("subtract") is None:
            raise ModelError(f"{where}: difference needs a base and a subtract")
        return Difference(
            rewrite_from_json(body["base"], where, depth + 1),
            rewrite_from_json(body["subtract"], where, depth + 1),
        )
    raise ModelError(f"{where}: unknown rewrite {key!r}")


def walk(rw: Rewrite) -> Iterator[Rewrite]:
    """Every node of a rewrite tree, depth first."""
    stack = [rw]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


# Definitions -------------------------------------------------------------------


@dataclass(slots=True)
class Relation:
    """A relation of a type: its rewrite and its directly related user types.

    The engine-facing fields (``signatures``, ``userset_refs``, ``wildcard_types``) are
    filled when the model is built.
    """

    name: str
    rewrite: Rewrite
    directly_related: tuple[RelationRef, ...] = ()
    module: str | None = None
    source_file: str | None = None
    # engine indexes
    signatures: frozenset[tuple[str, str, str]] = frozenset()
    userset_refs: tuple[tuple[str, str], ...] = ()
    wildcard_types: frozenset[str] = frozenset()
    object_types: frozenset[str] = frozenset()
    leaves: frozenset[tuple[str, str]] = frozenset()


@dataclass(slots=True)
class TypeDefinition:
    """An object type and its relations (in definition order)."""

    name: str
    relations: dict[str, Relation] = field(default_factory=dict)
    module: str | None = None
    source_file: str | None = None


@dataclass(slots=True)
class Condition:
    """A named CEL condition with typed parameters."""

    name: str
    expression: str
    parameters: dict[str, ParamType] = field(default_factory=dict)
    module: str | None = None
    source_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "expression": self.expression,
            "parameters": {k: v.to_json() for k, v in self.parameters.items()},
        }
        meta = _module_meta(self.module, self.source_file)
        if meta:
            out["metadata"] = meta
        return out


def _module_meta(module: str | None, source_file: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if module:
        meta["module"] = module
    if source_file:
        meta["source_info"] = {"file": source_file}
    return meta




def _source_file(meta: Any) -> str | None:
    return ((meta.get("source_info") or {}).get("file") or None) if isinstance(meta, Mapping) else None


def type_from_json(raw: Any, where: str) -> TypeDefinition:
    """One entry of OpenFGA's ``type_definitions`` (``where`` names it in errors)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
        raise ModelError(f"{where}: a type definition needs a 'type'")
    name = raw["type"]
    meta = raw.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise ModelError(f"{where}: metadata must be an object")
    rel_meta = meta.get("relations") or {}
    rels_raw = raw.get("relations") or {}
    if not isinstance(rels_raw, Mapping) or not isinstance(rel_meta, Mapping):
        raise ModelError(f"{where}: relations must be an object")
    td = TypeDefinition(name=name, module=meta.get("module") or None, source_file=_source_file(meta))
    for rname, rw in rels_raw.items():
        rwhere = f"relation '{name}#{rname}'"
        info = rel_meta.get(rname) or {}
        if not isinstance(info, Mapping):
            raise ModelError(f"{rwhere}: relation metadata must be an object")
        drt = info.get("directly_related_user_types") or []
        if not isinstance(drt, list):
            raise ModelError(f"{rwhere}: directly_related_user_types must be a list")
        td.relations[rname] = Relation(
            name=rname,
            rewrite=rewrite_from_json(rw, rwhere),
            directly_related=tuple(RelationRef.from_json(r, rwhere) for r in drt),
            module=info.get("module") or None,
            source_file=_source_file(info),
        )
    return td


def condition_from_json(key: str, raw: Any) -> Condition:
    """One entry of OpenFGA's ``conditions`` (its key must be its name)."""
    where = f"condition '{key}'"
    if not isinstance(raw, Mapping):
        raise ModelError(f"{where}: must be an object")
    params_raw = raw.get("parameters") or {}
    if not isinstance(params_raw, Mapping):
        raise ModelError(f"{where}: parameters must be an object")
    meta = raw.get("metadata") or {}
    expression = raw.get("expression")
    if not isinstance(expression, str):
        raise ModelError(f"{where}: needs an expression")
    name = raw.get("name", key)
    if name != key:
        raise ModelError(f"condition key '{key}' does not match condition name '{name}'")
    return Condition(
        name=key,
        expression=expression,
        parameters={p: ParamType.from_json(t, f"{where} parameter '{p}'") for p, t in params_raw.items()},
        module=(meta.get("module") or None) if isinstance(meta, Mapping) else None,
        source_file=_source_file(meta),
    )
