"""OpenFGA's rules for a valid authorization model, ported faithfully (quirks included).

:class:`ModelValidation` is a base of
:class:`~langchain_agent_auth.fga._model.AuthorizationModel`: names, references between
relations, tuplesets, assignable relations and their user types, entrypoints and cycles,
and the conditions' CEL. A model OpenFGA rejects is rejected here with the same message, so
a model that works embedded also works on an OpenFGA server.
"""

from __future__ import annotations

from typing import Any

from langchain_agent_auth.core.errors import ModelError
from langchain_agent_auth.fga._model_parts import (
    _CONDITION_NAME_RE,
    _NAME_RE,
    _RELATION_NAME_RE,
    SCHEMA_VERSIONS,
    ComputedUserset,
    Condition,
    Position,
    Relation,
    Rewrite,
    This,
    TupleToUserset,
    TypeDefinition,
    Union,
    at_position,
    walk,
)


class ModelValidation:
    """Validation of an authorization model (a base of AuthorizationModel)."""

    types: dict[str, TypeDefinition]
    conditions: dict[str, Condition]
    schema_version: str
    _positions: dict[tuple[str, ...], Position]
    _compiled_conditions: dict[str, Any]

    # -- validation ----------------------------------------------------------------------

    def _err(self, message: str, *key: str) -> ModelError:
        return ModelError(message, **at_position(self._positions, tuple(key)))

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
        self._validate_rewrite_refs(td, rel)
        self._validate_direct_types(td, rel, tuplesets)

    def _validate_rewrite_refs(self, td: TypeDefinition, rel: Relation) -> None:
        """Relations named in the rewrite exist, and tuplesets are direct relations."""
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

    def _validate_direct_types(self, td: TypeDefinition, rel: Relation, tuplesets: set[tuple[str, str]]) -> None:
        """An assignable relation lists valid user types (objects only under a tupleset)."""
        tname, rname = td.name, rel.name
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
