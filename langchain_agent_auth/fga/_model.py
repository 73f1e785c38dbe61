"""The typed authorization model (OpenFGA schema 1.1 / 1.2): :class:`AuthorizationModel`.

It is built from OpenFGA's JSON shape (what the API and ``fga model transform`` use) or
from the DSL (:mod:`._dsl`), validated with OpenFGA's rules (:mod:`._model_validate`), and
precomputes the indexes the engine needs: allowed tuple signatures per relation, tupleset
types, and which user types can reach which relation; the relation-graph queries of the
engine's resolvers are in :mod:`._model_graph`, the pieces it is made of in :mod:`._model_parts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_agent_auth.core.errors import ModelError
from langchain_agent_auth.fga._model_graph import ModelGraph
from langchain_agent_auth.fga._model_parts import (
    ComputedUserset,
    Condition,
    Position,
    Relation,
    This,
    TupleToUserset,
    TypeDefinition,
    _module_meta,
    at_position,
    condition_from_json,
    rewrite_to_json,
    type_from_json,
    walk,
)
from langchain_agent_auth.fga._model_validate import ModelValidation

__all__ = ["AuthorizationModel", "normalise_model_json"]


# --------------------------------------------------------------------------- the model


class AuthorizationModel(ModelGraph, ModelValidation):
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
                        **at_position(positions, ("type", td.name)),
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
        types = [type_from_json(raw, f"type_definitions[{i}]") for i, raw in enumerate(tds)]
        raw_conds = data.get("conditions") or {}
        if not isinstance(raw_conds, Mapping):
            raise ModelError("conditions must be an object")
        conds = {key: condition_from_json(key, raw) for key, raw in raw_conds.items()}
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
        from langchain_agent_auth.fga._dsl_print import print_dsl

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

