"""The typed authorization model (OpenFGA schema 1.1 / 1.2) and its validation.

:class:`AuthorizationModel` is built from OpenFGA's JSON shape (what the API and
``fga model transform`` use) or from the DSL (:mod:`._dsl`), validated with OpenFGA's
rules, and precomputes the indexes the engine needs: allowed tuple signatures per
relation, tupleset types, and which user types can reach which relation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_agent_auth.core.errors import ModelError

__all__ = [
    "PARAM_TYPES",
    "AuthorizationModel",
    "ComputedUserset",
    "Condition",
    "Difference",
    "Intersection",
    "ParamType",
    "Relation",
    "RelationRef",
    "Rewrite",
    "This",
    "TupleToUserset",
    "TypeDefinition",
    "Union",
]

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
class Union(Rewrite):
    """``a or b or c``."""

    members: tuple[Rewrite, ...]
    kind: ClassVar[int] = UNION

    def children(self) -> tuple[Rewrite, ...]:
        return self.members


@dataclass(frozen=True, slots=True)
class Intersection(Rewrite):
    """``a and b and c``."""

    members: tuple[Rewrite, ...]
    kind: ClassVar[int] = INTERSECTION

    def children(self) -> tuple[Rewrite, ...]:
        return self.members


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


# --------------------------------------------------------------------------- the model


class AuthorizationModel:
    """A validated OpenFGA authorization model.

    Build it from the DSL, from OpenFGA's JSON, or from typed definitions; it raises
    :class:`~langchain_agent_auth.errors.ModelError` (with line and column when it came
    from the DSL) for anything OpenFGA would reject.

    Example:
        >>> m = AuthorizationModel.from_dsl('''
        ... model
        ...   schema 1.1
        ... type user
        ... type document
        ...   relations
        ...     define owner: [user]
        ...     define viewer: [user] or owner
        ... ''')
        >>> m.to_json()["type_definitions"][1]["relations"]["viewer"]
        {'union': {'child': [{'this': {}}, {'computedUserset': {'relation': 'owner'}}]}}
        >>> print(m.to_dsl().splitlines()[-1])
            define viewer: [user] or owner
    """

    def __init__(
        self,
        types: Mapping[str, TypeDefinition] | list[TypeDefinition],
        conditions: Mapping[str, Condition] | None = None,
        *,
        schema_version: str = "1.1",
        id: str | None = None,
        positions: Mapping[tuple[str, ...], Position] | None = None,
    ) -> None:
        if isinstance(types, Mapping):
            self.types: dict[str, TypeDefinition] = dict(types)
        else:
            self.types = {}
            for td in types:
                if td.name in self.types:
                    raise ModelError(
                        "an authorization model cannot contain duplicate types",
                        **_at(positions, ("type", td.name)),
                    )
                self.types[td.name] = td
        self.conditions: dict[str, Condition] = dict(conditions or {})
        self.schema_version = schema_version
        self.id = id
        self._positions: dict[tuple[str, ...], Position] = dict(positions or {})
        self._relations: dict[tuple[str, str], Relation] = {}
        self._tupleset_types: dict[tuple[str, str], tuple[str, ...]] = {}
        self._compiled_conditions: dict[str, Any] = {}
        self._weights: dict[str, dict[tuple[str, str], float]] = {}
        self._recursive: dict[tuple[str, str, str], bool] = {}
        self._paths: dict[tuple[str, str], dict[tuple[str, str], bool]] = {}
        self._plans: dict[tuple[str, ...], Any] = {}
        try:
            self._validate()
            self._index()
        except RecursionError:
            raise ModelError(
                "the model nests too deeply to validate (a chain of hundreds of relations)"
            ) from None

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_dsl(cls, text: str, *, id: str | None = None) -> AuthorizationModel:
        """Parse OpenFGA DSL (schema 1.1) text."""
        from langchain_agent_auth.fga._dsl import parse_dsl

        return parse_dsl(text, id=id)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str, *, id: str | None = None) -> AuthorizationModel:
        """Build from OpenFGA's JSON model (a dict or a JSON string).

        Accepts the bare model, or an API response wrapping it in ``authorization_model``.
        """
        if isinstance(data, (str, bytes)):
            import json

            try:
                data = json.loads(data)
            except ValueError as exc:
                raise ModelError(f"the model is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ModelError("a JSON model must be an object")
        if "authorization_model" in data and isinstance(data["authorization_model"], Mapping):
            data = data["authorization_model"]
        version = data.get("schema_version")
        if not isinstance(version, str):
            raise ModelError("the model has no schema_version")
        tds = data.get("type_definitions")
        if not isinstance(tds, list):
            raise ModelError("type_definitions must be a list")
        types: list[TypeDefinition] = []
        for i, raw in enumerate(tds):
            where = f"type_definitions[{i}]"
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
            td = TypeDefinition(
                name=name,
                module=meta.get("module") or None,
                source_file=((meta.get("source_info") or {}).get("file") or None),
            )
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
                    source_file=((info.get("source_info") or {}).get("file") or None),
                )
            types.append(td)
        conds: dict[str, Condition] = {}
        raw_conds = data.get("conditions") or {}
        if not isinstance(raw_conds, Mapping):
            raise ModelError("conditions must be an object")
        for key, raw in raw_conds.items():
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
            conds[key] = Condition(
                name=key,
                expression=expression,
                parameters={
                    p: ParamType.from_json(t, f"{where} parameter '{p}'") for p, t in params_raw.items()
                },
                module=(meta.get("module") or None) if isinstance(meta, Mapping) else None,
                source_file=(
                    ((meta.get("source_info") or {}).get("file") or None)
                    if isinstance(meta, Mapping)
                    else None
                ),
            )
        return cls(types, conds, schema_version=version, id=id or data.get("id") or None)

    # -- output ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The model in OpenFGA's JSON shape (what ``fga model transform`` prints)."""
        tds: list[dict[str, Any]] = []
        for td in self.types.values():
            out: dict[str, Any] = {"type": td.name}
            meta = _module_meta(td.module, td.source_file)
            if td.relations:
                out["relations"] = {r.name: rewrite_to_json(r.rewrite) for r in td.relations.values()}
                rmeta: dict[str, Any] = {}
                for r in td.relations.values():
                    entry: dict[str, Any] = {}
                    if r.directly_related:
                        entry["directly_related_user_types"] = [x.to_json() for x in r.directly_related]
                    entry.update(_module_meta(r.module, r.source_file))
                    rmeta[r.name] = entry
                meta["relations"] = rmeta
            if meta:
                out["metadata"] = meta
            tds.append(out)
        result: dict[str, Any] = {"schema_version": self.schema_version, "type_definitions": tds}
        if self.conditions:
            result["conditions"] = {c.name: c.to_json() for c in self.conditions.values()}
        return result

    def to_dsl(self) -> str:
        """The model in OpenFGA DSL."""
        from langchain_agent_auth.fga._dsl import print_dsl

        return print_dsl(self)

    def __repr__(self) -> str:
        return f"AuthorizationModel(types={list(self.types)}, conditions={list(self.conditions)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthorizationModel):
            return NotImplemented
        return _normalise(self.to_json()) == _normalise(other.to_json())

    __hash__ = None  # type: ignore[assignment]

    # -- lookups used by the engine ------------------------------------------------------

    def relation(self, object_type: str, relation: str) -> Relation | None:
        """The relation definition, or ``None``."""
        return self._relations.get((object_type, relation))

    def has_type(self, name: str) -> bool:
        return name in self.types

    def tupleset_types(self, object_type: str, tupleset: str) -> tuple[str, ...]:
        """Object types a tupleset relation may point at (``parent: [folder, document]``)."""
        return self._tupleset_types.get((object_type, tupleset), ())

    def is_tupleset(self, object_type: str, relation: str) -> bool:
        return (object_type, relation) in self._tupleset_types

    def condition_program(self, name: str) -> Any:
        """The compiled condition (see :mod:`._cel`), or ``None`` if undefined."""
        return self._compiled_conditions.get(name)

    def can_reach(self, user_type: str, user_relation: str, object_type: str, relation: str) -> bool:
        """Whether a user of this shape may ever be related (static over-approximation).

        ``user_relation`` is ``""`` for an object, ``"*"`` for a wildcard, or a relation name.
        """
        rel = self._relations.get((object_type, relation))
        if rel is None:
            return False
        leaves = rel.leaves
        if (user_type, user_relation) in leaves:
            return True
        return user_relation == "" and (user_type, "*") in leaves

    def has_path(self, user_type: str, user_relation: str, object_type: str, relation: str) -> bool:
        """Whether users of this shape can be related at all, honouring the operators.

        Every operand of an intersection, and the base of an exclusion, must lead there
        (list_users answers nothing, and evaluates nothing, otherwise).
        """
        key = (user_type, user_relation)
        table = self._paths.get(key)
        if table is None:
            table = self._paths[key] = self._compute_paths(user_type, user_relation)
        return table.get((object_type, relation), False)

    def _compute_paths(self, ftype: str, frel: str) -> dict[tuple[str, str], bool]:
        reach: dict[tuple[str, str], bool] = dict.fromkeys(self._relations, False)

        def rw_reaches(t: str, rel: Relation, rw: Rewrite) -> bool:
            if isinstance(rw, This):
                for x in rel.directly_related:
                    if x.relation:
                        if (x.type, x.relation) == (ftype, frel) or reach.get((x.type, x.relation)):
                            return True
                    elif x.type == ftype and not frel:
                        return True
                return False
            if isinstance(rw, ComputedUserset):
                return (t, rw.relation) == (ftype, frel) or reach[(t, rw.relation)]
            if isinstance(rw, TupleToUserset):
                return any(
                    (p, rw.computed) == (ftype, frel) or reach.get((p, rw.computed), False)
                    for p in self._tupleset_types.get((t, rw.tupleset), ())
                )
            if isinstance(rw, Union):
                return any(rw_reaches(t, rel, c) for c in rw.members)
            if isinstance(rw, Intersection):
                return all(rw_reaches(t, rel, c) for c in rw.members)
            assert isinstance(rw, Difference)
            return rw_reaches(t, rel, rw.base)

        changed = True
        while changed:  # least fixpoint: a recursion only helps once something else reaches
            changed = False
            for (t, r), rel in self._relations.items():
                if not reach[(t, r)] and rw_reaches(t, rel, rel.rewrite):
                    reach[(t, r)] = True
                    changed = True
        return reach

    def tuple_allowed(
        self, object_type: str, relation: str, user_type: str, user_relation: str, condition: str | None
    ) -> bool:
        """Whether a tuple of this shape satisfies the relation's type restrictions."""
        rel = self._relations.get((object_type, relation))
        if rel is None:
            return False
        if condition and condition not in self.conditions:
            return False
        return (user_type, user_relation, condition or "") in rel.signatures

    def position(self, *key: str) -> Position | None:
        """Where a type, relation or condition was defined in the DSL, if known."""
        return self._positions.get(tuple(key))

    # -- OpenFGA's recursive resolvers ---------------------------------------------------

    def _edges(self, t: str, r: str, start: Rewrite | None = None) -> list[tuple[str, str]]:
        """Relation nodes one step away (userset restrictions, computed, tuple-to-userset).

        ``start``: only the edges under that node of the relation's rewrite.
        """
        rel = self._relations[(t, r)]
        out: list[tuple[str, str]] = []
        for node in walk(rel.rewrite if start is None else start):
            if isinstance(node, This):
                out.extend((x.type, x.relation) for x in rel.directly_related if x.relation)
            elif isinstance(node, ComputedUserset):
                out.append((t, node.relation))
            elif isinstance(node, TupleToUserset):
                out.extend(
                    (p, node.computed)
                    for p in self._tupleset_types.get((t, node.tupleset), ())
                    if (p, node.computed) in self._relations
                )
        return out

    def _scc_sizes(self) -> dict[tuple[str, str], int]:
        sizes = getattr(self, "_scc_cache", None)
        if sizes is not None:
            return sizes
        index: dict[tuple[str, str], int] = {}
        low: dict[tuple[str, str], int] = {}
        on_stack: set[tuple[str, str]] = set()
        stack: list[tuple[str, str]] = []
        sizes = {}
        counter = 0
        for root in self._relations:
            if root in index:
                continue
            work = [(root, iter(self._edges(*root)))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, it = work[-1]
                advanced = False
                for nxt in it:
                    if nxt not in index:
                        index[nxt] = low[nxt] = counter
                        counter += 1
                        stack.append(nxt)
                        on_stack.add(nxt)
                        work.append((nxt, iter(self._edges(*nxt))))
                        advanced = True
                        break
                    if nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                if advanced:
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    for member in component:
                        sizes[member] = len(component)
        self._scc_cache = sizes
        return sizes

    def _leaf_weights(self, t: str, r: str, user_key: str) -> list[tuple[str, Any, float | None]]:
        """Each edge of a relation with its weight for ``user_key`` (None: cannot reach it)."""
        weights = self._weights_for(user_key)
        rel = self._relations[(t, r)]
        out: list[tuple[str, Any, float | None]] = []
        for node in walk(rel.rewrite):
            if isinstance(node, This):
                for x in rel.directly_related:
                    if x.relation:
                        w = weights.get((x.type, x.relation))
                        sub = None if w is None else 1 + w
                        if user_key == f"{x.type}#{x.relation}":
                            sub = max(sub or 1, 1)
                        out.append(("userset", (x.type, x.relation), sub))
                    elif not x.wildcard:
                        out.append(("type", x.type, 1 if x.type == user_key else None))
            elif isinstance(node, ComputedUserset):
                out.append(("computed", (t, node.relation), weights.get((t, node.relation))))
            elif isinstance(node, TupleToUserset):
                for p in self._tupleset_types.get((t, node.tupleset), ()):
                    if (p, node.computed) in self._relations:
                        w = weights.get((p, node.computed))
                        out.append(("ttu", (p, node.computed), None if w is None else 1 + w))
        return out

    def _weights_for(self, user_key: str) -> dict[tuple[str, str], float]:
        """Longest number of tuple hops from each relation to ``user_key`` (inf in a cycle)."""
        hit = self._weights.get(user_key)
        if hit is not None:
            return hit
        sizes = self._scc_sizes()
        weights: dict[tuple[str, str], float] = {}
        state: dict[tuple[str, str], int] = {}
        inf = float("inf")

        def visit(node: tuple[str, str]) -> float | None:
            if state.get(node) == 2:
                return weights.get(node)
            if state.get(node) == 1:
                return inf if self._reaches(node, user_key) else None
            state[node] = 1
            best: float | None = None
            rel = self._relations[node]
            t = node[0]
            for n in walk(rel.rewrite):
                cands: list[float | None] = []
                if isinstance(n, This):
                    for x in rel.directly_related:
                        if x.relation:
                            w = visit((x.type, x.relation))
                            sub = None if w is None else 1 + w
                            if user_key == f"{x.type}#{x.relation}":
                                sub = max(sub or 1, 1)
                            cands.append(sub)
                        elif not x.wildcard and x.type == user_key:
                            cands.append(1)
                elif isinstance(n, ComputedUserset):
                    cands.append(visit((t, n.relation)))
                elif isinstance(n, TupleToUserset):
                    for p in self._tupleset_types.get((t, n.tupleset), ()):
                        if (p, n.computed) in self._relations:
                            w = visit((p, n.computed))
                            cands.append(None if w is None else 1 + w)
                for c in cands:
                    if c is not None and (best is None or c > best):
                        best = c
            if best is not None and (sizes.get(node, 1) > 1 or node in self._edges(*node)):
                best = inf
            state[node] = 2
            if best is not None:
                weights[node] = best
            return best

        for node in self._relations:
            visit(node)
        self._weights[user_key] = weights  # published complete: other threads never see a partial table
        return weights

    def _reaches(self, node: tuple[str, str], user_key: str) -> bool:
        leaves = self._relations[node].leaves
        if "#" in user_key:
            t, _, r = user_key.partition("#")
            return (t, r) in leaves
        return (user_key, "") in leaves

    def builds_weighted_graph(self) -> bool:
        """Whether OpenFGA can build its weighted graph of this model.

        It cannot when an intersection or an exclusion lies on a cycle (``owner: ([user] or
        owner from parent) but not blocked``); OpenFGA then has no graph for the whole model
        and uses none of its graph-based strategies (the recursive resolvers), anywhere.
        """
        hit = getattr(self, "_graph_ok", None)
        if hit is None:
            hit = not any(self._operator_on_cycle(t, r) for (t, r) in self._relations)
            self._graph_ok = hit
        return hit

    def _operator_on_cycle(self, t: str, r: str) -> bool:
        for node in walk(self._relations[(t, r)].rewrite):
            if isinstance(node, (Intersection, Difference)):
                for target in self._edges(t, r, node):
                    if target == (t, r) or self._leads_to(target, (t, r)):
                        return True
        return False

    def _leads_to(self, source: tuple[str, str], goal: tuple[str, str]) -> bool:
        seen = {source}
        stack = [source]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            for nxt in self._edges(*node):
                if nxt not in seen and nxt in self._relations:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def recursive_resolvable(self, object_type: str, relation: str, user_key: str) -> bool:
        """Whether OpenFGA resolves this relation with its recursive (fixpoint) strategy.

        True for a relation that recurses onto itself only (``[user, group#member]`` or
        ``[user] or viewer from parent``), is in no larger cycle, and whose other operands
        reach the user type in one hop. OpenFGA answers those by iteration, so a data cycle
        there is a plain "no" rather than a cycle; elsewhere a cycle makes exclusions false.
        """
        key = (object_type, relation, user_key)
        hit = self._recursive.get(key)
        if hit is None:
            hit = self._compute_recursive(object_type, relation, user_key)
            self._recursive[key] = hit
        return hit

    def userset_closure_plan(self, object_type: str, relation: str, user_key: str) -> tuple[str, ...] | None:
        """Relations whose direct tuples seed OpenFGA's recursive userset resolver, or None.

        Applies to ``member: [user, group#member]`` (optionally ``or`` relations that are
        themselves plain direct assignments, like ``or owner`` with ``owner: [user]``): the
        answer is then the set of objects reached upwards from the user's own tuples, which
        is computed once per request instead of searching every nested group downwards.
        """
        key = (object_type, relation, user_key)
        if key in self._plans:
            return self._plans[key]
        plan = self._compute_plan(object_type, relation, user_key)
        self._plans[key] = plan
        return plan

    def weight2_usersets(self, object_type: str, relation: str, user_type: str) -> frozenset[tuple[str, str]]:
        """Userset restrictions of a relation OpenFGA resolves with its weight-2 strategy for a user type.

        Those whose relation is a plain direct assignment reaching the user type in one hop
        (``[team#member]`` with ``member: [user]``), on a relation in no cycle, in a model
        OpenFGA builds its weighted graph for.
        """
        key = ("w2", object_type, relation, user_type)
        hit = self._plans.get(key)
        if hit is None:
            hit = frozenset()
            node = (object_type, relation)
            if (
                node in self._relations
                and self.builds_weighted_graph()
                and self._scc_sizes().get(node, 1) == 1
                and node not in self._edges(*node)
            ):
                weights = self._weights_for(user_type)
                hit = frozenset(
                    (x.type, x.relation)
                    for x in self._relations[node].directly_related
                    if x.relation
                    and weights.get((x.type, x.relation)) == 1
                    and isinstance(self._relations[(x.type, x.relation)].rewrite, This)
                )
            self._plans[key] = hit
        return hit

    def ttu_closure_plan(
        self, object_type: str, relation: str, user_key: str, tupleset: str
    ) -> tuple[str, ...] | None:
        """Relations whose direct tuples seed OpenFGA's recursive tuple-to-userset resolver, or None.

        Applies to ``viewer: [user] or viewer from parent`` (optionally ``or`` relations that
        are plain direct assignments): OpenFGA reads the objects the user is directly related
        to, then walks up from the object's parents until it meets one of them.
        """
        key = ("ttu", object_type, relation, user_key, tupleset)
        if key in self._plans:
            return self._plans[key]
        plan = self._compute_ttu_plan(object_type, relation, user_key, tupleset)
        self._plans[key] = plan
        return plan

    def _compute_ttu_plan(self, t: str, r: str, user_key: str, tupleset: str) -> tuple[str, ...] | None:
        if "#" in user_key or not self.recursive_resolvable(t, r, user_key):
            return None
        if set(self._tupleset_types.get((t, tupleset), ())) != {t}:
            return None
        rel = self._relations[(t, r)]
        if any(x.relation for x in rel.directly_related):
            return None
        members = rel.rewrite.members if isinstance(rel.rewrite, Union) else (rel.rewrite,)
        seeds: list[str] = []
        recursive = False
        for m in members:
            if isinstance(m, This):
                seeds.append(r)
            elif isinstance(m, TupleToUserset) and (m.tupleset, m.computed) == (tupleset, r) and not recursive:
                recursive = True
            elif isinstance(m, ComputedUserset) and isinstance(self._relations[(t, m.relation)].rewrite, This):
                if any(x.relation for x in self._relations[(t, m.relation)].directly_related):
                    return None
                seeds.append(m.relation)
            else:
                return None
        return tuple(seeds) if recursive else None

    def _compute_plan(self, t: str, r: str, user_key: str) -> tuple[str, ...] | None:
        if "#" in user_key or not self.recursive_resolvable(t, r, user_key):
            return None
        rel = self._relations[(t, r)]
        if any(x.relation and (x.type, x.relation) != (t, r) for x in rel.directly_related):
            return None
        if (t, r) not in {(x.type, x.relation) for x in rel.directly_related}:
            return None  # recursive through tuple-to-userset, not a userset
        members = rel.rewrite.members if isinstance(rel.rewrite, Union) else (rel.rewrite,)
        seeds = [r]
        for m in members:
            if isinstance(m, This):
                continue
            if isinstance(m, ComputedUserset):
                other = self._relations[(t, m.relation)]
                if isinstance(other.rewrite, This) and not any(x.relation for x in other.directly_related):
                    seeds.append(m.relation)
                    continue
            return None
        return tuple(seeds)

    def _compute_recursive(self, t: str, r: str, user_key: str) -> bool:
        if (t, r) not in self._relations or not self.builds_weighted_graph():
            return False
        if self._weights_for(user_key).get((t, r)) != float("inf"):
            return False
        if self._scc_sizes().get((t, r), 1) > 1:
            return False
        for mode in ("userset", "ttu"):
            found = False
            ok = True
            for kind, target, w in self._leaf_weights(t, r, user_key):
                if w is None:
                    continue
                if target == (t, r) and kind == mode and not found:
                    found = True
                    continue
                if w > 1:
                    ok = False
                    break
            if ok and found:
                return True
        return False

    # -- validation ----------------------------------------------------------------------

    def _err(self, message: str, *key: str) -> ModelError:
        return ModelError(message, **_at(self._positions, tuple(key)))

    def _validate(self) -> None:
        if self.schema_version not in SCHEMA_VERSIONS:
            raise ModelError(
                f"invalid schema version {self.schema_version!r}: "
                f"supported versions are {', '.join(SCHEMA_VERSIONS)}"
            )
        if not self.types:
            raise ModelError("an authorization model needs at least one type")
        for name, td in self.types.items():
            if name != td.name:
                raise self._err(f"type key {name!r} does not match type name {td.name!r}", "type", name)
            if not _NAME_RE.fullmatch(name) or name in ("self", "this"):
                raise self._err(f"invalid type name {name!r}", "type", name)
            for rname in td.relations:
                if not _RELATION_NAME_RE.fullmatch(rname) or rname in ("self", "this"):
                    raise self._err(
                        f"invalid relation name {rname!r} in type '{name}'", "relation", name, rname
                    )
        for cname, cond in self.conditions.items():
            if not _CONDITION_NAME_RE.fullmatch(cname):
                raise self._err(f"invalid condition name {cname!r}", "condition", cname)
            for p in cond.parameters:
                if not _CONDITION_NAME_RE.fullmatch(p):
                    raise self._err(
                        f"invalid parameter name {p!r} in condition '{cname}'", "condition", cname
                    )
        # Which relations are tuplesets (right side of `x from y`).
        tuplesets: set[tuple[str, str]] = set()
        for td in self.types.values():
            for rel in td.relations.values():
                for node in walk(rel.rewrite):
                    if isinstance(node, TupleToUserset):
                        tuplesets.add((td.name, node.tupleset))
        for tname in sorted(self.types):
            td = self.types[tname]
            for rname in sorted(td.relations):
                self._validate_relation(td, td.relations[rname], tuplesets)
        for tname in sorted(self.types):
            td = self.types[tname]
            for rname in sorted(td.relations):
                rel = td.relations[rname]
                has, loop = self._has_entrypoints(tname, rname, rel.rewrite, {})
                if not has:
                    why = "potential loop" if loop else "no entrypoints defined"
                    raise self._err(
                        f"the definition of relation '{rname}' in object type '{tname}' is invalid: {why}",
                        "relation",
                        tname,
                        rname,
                    )
                if self._has_cycle(tname, rname, rel.rewrite, set()):
                    raise self._err(
                        f"the definition of relation '{rname}' in object type '{tname}' "
                        "is invalid: an authorization model cannot contain a cycle",
                        "relation",
                        tname,
                        rname,
                    )
        from langchain_agent_auth.fga._cel import compile_condition

        for cname in self.conditions:
            try:
                self._compiled_conditions[cname] = compile_condition(self.conditions[cname])
            except ModelError as exc:
                pos = self._positions.get(("condition", cname))
                if pos is not None and exc.line is None:
                    raise ModelError(exc.message, line=pos[0], column=pos[1]) from None
                raise

    def _validate_relation(self, td: TypeDefinition, rel: Relation, tuplesets: set[tuple[str, str]]) -> None:
        tname, rname = td.name, rel.name
        invalid = f"the definition of relation '{rname}' in object type '{tname}' is invalid"
        for node in walk(rel.rewrite):
            if isinstance(node, ComputedUserset):
                if node.relation == rname:
                    raise self._err(
                        f"{invalid}: invalid userset rewrite definition (it refers to itself)",
                        "relation",
                        tname,
                        rname,
                    )
                if node.relation not in td.relations:
                    raise self._err(
                        f"{invalid}: relation '{node.relation}' is not defined in type '{tname}'",
                        "relation",
                        tname,
                        rname,
                    )
            elif isinstance(node, TupleToUserset):
                ts = td.relations.get(node.tupleset)
                if ts is None:
                    raise self._err(
                        f"{invalid}: tupleset relation '{node.tupleset}' is not defined in type '{tname}'",
                        "relation",
                        tname,
                        rname,
                    )
                if not isinstance(ts.rewrite, This):
                    raise self._err(
                        f"the '{tname}#{node.tupleset}' relation is referenced in at least "
                        "one tupleset and thus must be a direct relation",
                        "relation",
                        tname,
                        node.tupleset,
                    )
                types = [r.type for r in ts.directly_related]
                if not any(node.computed in self.types[t].relations for t in types if t in self.types):
                    raise self._err(
                        f"{invalid}: '{node.computed}' does not appear as a relation in any "
                        f"of the types of '{tname}#{node.tupleset}' ({', '.join(types)})",
                        "relation",
                        tname,
                        rname,
                    )
        assignable = any(isinstance(n, This) for n in walk(rel.rewrite))
        if assignable and not rel.directly_related:
            raise self._err(
                f"the assignable relation '{rname}' in object type '{tname}' must contain "
                "at least one relation type",
                "relation",
                tname,
                rname,
            )
        if not assignable and rel.directly_related:
            raise self._err(
                f"the non-assignable relation '{rname}' in object type '{tname}' should "
                "not contain a relation type",
                "relation",
                tname,
                rname,
            )
        for ref in rel.directly_related:
            bad = f"the relation type '{ref}' on '{rname}' in object type '{tname}' is not valid"
            target = self.types.get(ref.type)
            if target is None:
                raise self._err(f"{bad}: type '{ref.type}' is not defined", "relation", tname, rname)
            if ref.relation or ref.wildcard:
                if (tname, rname) in tuplesets:
                    raise self._err(
                        f"{bad}: a relation used as a tupleset (`x from {rname}`) can only "
                        "point at objects, not usersets or wildcards",
                        "relation",
                        tname,
                        rname,
                    )
                if ref.relation and ref.relation not in target.relations:
                    raise self._err(
                        f"{bad}: relation '{ref.relation}' is not defined on type '{ref.type}'",
                        "relation",
                        tname,
                        rname,
                    )
            if ref.condition and ref.condition not in self.conditions:
                raise self._err(
                    f"condition {ref.condition} is undefined for relation {rname}", "relation", tname, rname
                )

    def _rel(self, t: str, r: str) -> Relation | None:
        td = self.types.get(t)
        return td.relations.get(r) if td else None

    def _has_entrypoints(
        self, t: str, r: str, rw: Rewrite, visited: dict[str, dict[str, bool]]
    ) -> tuple[bool, bool]:
        """OpenFGA's entrypoint rule: some path must end at a concrete (or wildcard) type.

        A faithful port, quirks included (the visited map is copied shallowly, so marks on
        one object type are shared between branches): a model OpenFGA rejects must be
        rejected here too, or it would break when moved to an OpenFGA server.
        """
        v = dict(visited)
        if t in v:
            v[t][r] = False
        else:
            v[t] = {r: False}
        rel = self._rel(t, r)
        assert rel is not None
        if isinstance(rw, This):
            for ref in rel.directly_related:
                if not ref.relation:
                    v[t][r] = True
                    return True, False
                if ref.relation in v.get(ref.type, {}):
                    continue
                target = self._rel(ref.type, ref.relation)
                if target is not None and self._has_entrypoints(ref.type, ref.relation, target.rewrite, v)[0]:
                    return True, False
            return False, False
        if isinstance(rw, ComputedUserset):
            if rw.relation in v.get(t, {}):
                return v[t][rw.relation], True
            target = self._rel(t, rw.relation)
            assert target is not None
            return self._has_entrypoints(t, rw.relation, target.rewrite, v)
        if isinstance(rw, TupleToUserset):
            ts = self._rel(t, rw.tupleset)
            assert ts is not None
            for ref in ts.directly_related:
                target = self._rel(ref.type, rw.computed)
                if target is None:
                    continue
                if rw.computed in v.get(ref.type, {}):
                    if v[ref.type][rw.computed]:
                        return True, False
                    continue
                if self._has_entrypoints(ref.type, rw.computed, target.rewrite, v)[0]:
                    return True, False
            return False, False
        if isinstance(rw, Union):
            loop = False
            for child in rw.members:
                has, child_loop = self._has_entrypoints(t, r, child, visited)
                if has:
                    return True, False
                loop = loop or child_loop
            return False, loop
        for child in rw.children():  # intersection and difference: every operand needs one
            has, child_loop = self._has_entrypoints(t, r, child, visited)
            if not has:
                return False, child_loop
        return True, False

    def _has_cycle(self, t: str, r: str, rw: Rewrite, visited: set[tuple[str, str]]) -> bool:
        """A cycle made only of computed usersets on one object (OpenFGA rejects these).

        Ported as OpenFGA does it: ``visited`` is shared with the caller's siblings.
        """
        visited.add((t, r))
        copy = set(visited)
        if isinstance(rw, (This, TupleToUserset)):
            return False
        if isinstance(rw, ComputedUserset):
            if (t, rw.relation) in visited:
                return True
            target = self._rel(t, rw.relation)
            return target is not None and self._has_cycle(t, rw.relation, target.rewrite, copy)
        return any(self._has_cycle(t, r, c, copy) for c in rw.children())

    # -- indexes ---------------------------------------------------------------------------

    def _index(self) -> None:
        for td in self.types.values():
            for rel in td.relations.values():
                self._relations[(td.name, rel.name)] = rel
                sigs = set()
                usersets: list[tuple[str, str]] = []
                wildcards = set()
                objects = set()
                for ref in rel.directly_related:
                    sigs.add(ref.signature)
                    if ref.relation:
                        if (ref.type, ref.relation) not in usersets:
                            usersets.append((ref.type, ref.relation))
                    elif ref.wildcard:
                        wildcards.add(ref.type)
                    else:
                        objects.add(ref.type)
                rel.signatures = frozenset(sigs)
                rel.userset_refs = tuple(usersets)
                rel.wildcard_types = frozenset(wildcards)
                rel.object_types = frozenset(objects)
                for node in walk(rel.rewrite):
                    if isinstance(node, TupleToUserset):
                        ts = td.relations[node.tupleset]
                        self._tupleset_types[(td.name, node.tupleset)] = tuple(
                            dict.fromkeys(x.type for x in ts.directly_related)
                        )
        self._compute_leaves()

    def _compute_leaves(self) -> None:
        """For each relation, the user shapes that may reach it (fixpoint over the graph)."""
        # A relation's own node is a leaf: a userset user (``folder:x#viewer``) reaches it.
        leaves: dict[tuple[str, str], set[tuple[str, str]]] = {k: {k} for k in self._relations}
        deps: dict[tuple[str, str], set[tuple[str, str]]] = {k: set() for k in self._relations}
        for (t, r), rel in self._relations.items():
            for node in walk(rel.rewrite):
                if isinstance(node, This):
                    for ref in rel.directly_related:
                        if ref.relation:
                            leaves[(t, r)].add((ref.type, ref.relation))
                            deps[(t, r)].add((ref.type, ref.relation))
                        else:
                            leaves[(t, r)].add((ref.type, "*" if ref.wildcard else ""))
                elif isinstance(node, ComputedUserset):
                    deps[(t, r)].add((t, node.relation))
                elif isinstance(node, TupleToUserset):
                    for p in self._tupleset_types.get((t, node.tupleset), ()):
                        if (p, node.computed) in self._relations:
                            deps[(t, r)].add((p, node.computed))
        changed = True
        while changed:
            changed = False
            for key, ds in deps.items():
                current = leaves[key]
                before = len(current)
                for d in ds:
                    current |= leaves[d]
                if len(current) != before:
                    changed = True
        for key, rel in self._relations.items():
            rel.leaves = frozenset(leaves[key])


def _at(positions: Mapping[tuple[str, ...], Position] | None, key: tuple[str, ...]) -> dict[str, int]:
    pos = (positions or {}).get(key)
    return {"line": pos[0], "column": pos[1]} if pos else {}


def _normalise(value: Any) -> Any:
    """Drop empty fields so JSON from different producers compares equal."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if k == "wildcard" and v is not None:
                out[k] = {}
                continue
            nv = _normalise(v)
            if nv in (None, "", [], {}) and k not in ("this",):
                continue
            out[k] = nv
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def normalise_model_json(data: Mapping[str, Any]) -> Any:
    """A canonical form of a JSON model for comparisons (empty fields dropped)."""
    return _normalise(data)
