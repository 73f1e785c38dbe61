"""The embedded engine: check, list_objects and list_users with OpenFGA's semantics.

Check follows OpenFGA's resolution: direct tuples, typed wildcards and userset tuples for
``this``; computed usersets; tuple-to-userset; union, intersection and exclusion with
OpenFGA's rules for errors and cycles (a cycle is a "false that is not sure": an
intersection or an exclusion with a cycle on either side is false, a union ignores it
unless nothing is true). Each tuple is checked against the current model's type
restrictions when read, so tuples written under an older model are ignored, and its
condition is evaluated with the tuple's context over the request's.

Resolution is bounded: a path-based visited set ends cycles, and the dispatch depth is
limited (25, as in OpenFGA) with a :class:`ResolutionDepthError`, never a RecursionError.
Results that no cycle touched are memoized for the whole request (a batch check or a
list_objects call shares them).

The :class:`Resolver` composes the check below with OpenFGA's recursive resolvers
(:mod:`._engine_recursive`) and list_objects / list_users (:mod:`._engine_lists`); requests
are validated first (:mod:`._engine_validate`); flags, reader and reverse graph are in
:mod:`._engine_base`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from langchain_agent_auth.core.errors import AuthorizationError, ConditionError, ResolutionDepthError, TupleError
from langchain_agent_auth.fga._engine_base import (
    ALLOWED,
    CYCLE,
    CYCLE_FLAG,
    DEFAULT_MAX_DEPTH,
    FALSE,
    MFALSE,
    TAINTED,
    TRUE,
    too_deep,
)
from langchain_agent_auth.fga._engine_lists import ListQueries, TooManyCandidates
from langchain_agent_auth.fga._engine_recursive import RecursiveResolvers
from langchain_agent_auth.fga._engine_validate import (
    DEFAULT_MAX_CONTEXTUAL_TUPLES,
    user_shape,
    validate_check,
    validate_context,
    validate_query_user,
    validate_tuple,
)
from langchain_agent_auth.fga._model_parts import (
    COMPUTED,
    DIFFERENCE,
    INTERSECTION,
    THIS,
    TTU,
    UNION,
    Relation,
    Rewrite,
    TupleToUserset,
)
from langchain_agent_auth.fga._tuple import TupleKey

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_MAX_CONTEXTUAL_TUPLES",
    "DEFAULT_MAX_DEPTH",
    "Resolver",
    "TooManyCandidates",
    "validate_check",
    "validate_context",
    "validate_query_user",
    "validate_tuple",
]

# One check as every strategy below ``resolve`` sees it: (relation, object, object type,
# user, user type, user relation, depth, visited); built once per resolved relation.
At = tuple[Relation, str, str, str, str, str, int, set[tuple[str, str, str]]]



# --------------------------------------------------------------------------- the resolver


class Resolver(RecursiveResolvers, ListQueries):
    """One request's evaluation state: model, reader, context, memo and limits."""

    # -- check ----------------------------------------------------------------------------

    def check(self, obj: str, relation: str, user: str) -> bool:
        """Whether ``user`` has ``relation`` on ``obj`` (the request must be validated)."""
        try:
            return bool(self.resolve(obj, relation, user, 0, set()) & ALLOWED)
        except RecursionError:
            raise too_deep(f"'{obj}#{relation}@{user}'") from None

    def resolve(self, obj: str, rel: str, user: str, depth: int, visited: set[tuple[str, str, str]]) -> int:
        if depth >= self.max_depth:
            raise ResolutionDepthError(
                f"resolution exceeded the depth limit of {self.max_depth} while checking "
                f"'{obj}#{rel}@{user}'",
                hint="This permission is too complex to evaluate; ask an administrator.",
            )
        key = (obj, rel, user)
        if key in visited:
            otype = obj.partition(":")[0]
            utype, urel = user_shape(user)
            user_key = f"{utype}#{urel}" if urel not in ("", "*") else utype
            return MFALSE if self.model.recursive_resolvable(otype, rel, user_key) else CYCLE
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        if "#" in user and user == f"{obj}#{rel}":
            return TRUE
        otype = obj.partition(":")[0]
        # What depends only on (type, relation, user) is looked up once per request: a batch
        # check over many objects of one type asks the same questions for each.
        pre = self._prelude.get((otype, rel, user))
        if pre is None:
            relation = self.model.relation(otype, rel)
            if relation is None:
                raise TupleError(f"relation '{otype}#{rel}' is not defined", code=2000)
            utype, urel = user_shape(user)
            reach = self._may_reach(utype, urel, otype, rel)
            plan = self.model.userset_closure_plan(otype, rel, utype) if reach and not urel else None
            pre = self._prelude[(otype, rel, user)] = (
                relation, utype, urel, reach, plan, plan is None and _direct_only(relation, utype, urel)
            )
        relation, utype, urel, reach, plan, direct_only = pre
        if not reach:
            return FALSE
        if direct_only:
            return self._exact_tuple(obj, otype, rel, user, utype, urel)
        if plan is not None:
            return self._closure_member(obj, otype, rel, user, utype, plan)
        visited.add(key)
        try:
            result = self._rewrite(relation.rewrite, (relation, obj, otype, user, utype, urel, depth, visited))
        finally:
            visited.discard(key)
        if not result & TAINTED:
            self._memo[key] = result
        return result

    def _exact_tuple(self, obj: str, otype: str, rel: str, user: str, utype: str, urel: str) -> int:
        """:meth:`_direct` for a relation that is only direct tuples, none of them a wildcard
        or userset of the user: the one exact tuple (no recursion, so no cycle nor memo)."""
        t = self.reader.read_tuple(obj, rel, user)
        if t is None or not self.model.tuple_allowed(otype, rel, utype, urel, t.condition):
            return FALSE
        return TRUE if self._condition(t) else FALSE

    def _may_reach(self, utype: str, urel: str, otype: str, rel: str) -> bool:
        # OpenFGA prunes a check whose user cannot reach the relation; for ``user:*`` it asks
        # whether the type ``user`` can reach it (its wildcard, or any user of the type), so
        # the tuples on the way are still read (and their conditions evaluated).
        can_reach = self.model.can_reach
        return can_reach(utype, urel, otype, rel) or (urel == "*" and can_reach(utype, "", otype, rel))

    def _rewrite(self, rw: Rewrite, at: At) -> int:
        """Evaluate one node of the relation's rewrite for the check ``at``."""
        kind = rw.kind
        if kind == THIS:
            return self._direct(at)
        if kind == COMPUTED:
            return self.resolve(at[1], rw.relation, at[3], at[6], at[7])  # type: ignore[attr-defined]
        if kind == TTU:
            return self._ttu(rw, at)  # type: ignore[arg-type]
        if kind == UNION:
            return self._union(rw.members, at)  # type: ignore[attr-defined]
        if kind == INTERSECTION:
            return self._intersection(rw.members, at)  # type: ignore[attr-defined]
        if kind == DIFFERENCE:
            return self._difference(rw.base, rw.subtract, at)  # type: ignore[attr-defined]
        raise AssertionError(rw)  # pragma: no cover

    def _results(self, members: Sequence[Rewrite], at: At, errors: list[AuthorizationError]) -> Iterator[int]:
        """Each member's result, in order and only as far as the caller reads; a member that
        raises an :class:`AuthorizationError` is skipped and its error kept in ``errors``."""
        for member in members:
            try:
                yield self._rewrite(member, at)
            except AuthorizationError as exc:
                errors.append(exc)

    def _union(self, members: Sequence[Rewrite], at: At) -> int:
        """OpenFGA's union: true wins; otherwise an error; otherwise false (with the flags seen)."""
        errors: list[AuthorizationError] = []
        union_flags = 0
        for r in self._results(members, at, errors):
            if r & ALLOWED:
                return r
            union_flags |= r
        if errors:
            raise errors[0]
        return union_flags

    def _intersection(self, members: Sequence[Rewrite], at: At) -> int:
        """OpenFGA's intersection: false wins (cycles aside); otherwise an error; otherwise true."""
        errors: list[AuthorizationError] = []
        flags = taint = 0
        for r in self._results(members, at, errors):
            if r & ALLOWED:
                taint |= r & TAINTED
            elif r == FALSE and not self.eager_cycles:
                return FALSE
            else:
                flags |= r | TAINTED
        if flags:
            return flags if flags & CYCLE_FLAG or not self.eager_cycles else FALSE
        if errors:
            raise errors[0]
        return TRUE | taint

    def _difference(self, base_rw: Rewrite, subtract: Rewrite, at: At) -> int:
        base_error: AuthorizationError | None = None
        try:
            base = self._rewrite(base_rw, at)
        except AuthorizationError as exc:
            base_error, base = exc, TRUE
        if not base & ALLOWED:
            if self.eager_cycles and base == FALSE:
                try:
                    sub = self._rewrite(subtract, at)
                except AuthorizationError:
                    return base
                if sub & CYCLE_FLAG:
                    return CYCLE
            return base
        try:
            sub = self._rewrite(subtract, at)
        except AuthorizationError as exc:
            if base_error is not None:
                raise base_error from None
            raise exc from None
        if sub & ALLOWED:
            return FALSE | (sub & TAINTED)
        if sub & CYCLE_FLAG:
            return CYCLE
        if base_error is not None:
            raise base_error
        return TRUE | ((base | sub) & TAINTED)

    def _direct(self, at: At) -> int:
        relation, obj, otype, user, utype, urel, _, _ = at
        reader, model = self.reader, self.model
        rel = relation.name
        error: AuthorizationError | None = None
        flags = 0
        # 1. the exact tuple
        t = reader.read_tuple(obj, rel, user)
        if t is not None and model.tuple_allowed(otype, rel, utype, urel, t.condition):
            try:
                if self._condition(t):
                    return TRUE
            except ConditionError as exc:
                error = exc
        # 2 and 3 are one read in OpenFGA (the wildcard and userset tuples of the relation),
        # filtered by condition: a condition that cannot be evaluated only makes the read
        # fail when no tuple of that read passed (OpenFGA's conditions-filtered iterator).
        read_error: ConditionError | None = None
        passed = False
        # 2. a typed wildcard for the user's type
        if urel == "" and utype in relation.wildcard_types:
            t = reader.read_tuple(obj, rel, f"{utype}:*")
            if t is not None and model.tuple_allowed(otype, rel, utype, "*", t.condition):
                try:
                    if self._condition(t):
                        return TRUE
                except ConditionError as exc:
                    read_error = exc
        # 3. usersets (group:eng#member): dispatch, or OpenFGA's weight-2 strategy
        if relation.userset_refs:
            usersets = reader.read_usersets(obj, rel)
            fast = model.weight2_usersets(otype, rel, utype) if urel == "" and usersets else frozenset()
            groups: dict[tuple[str, str], list[TupleKey]] = {}
            for t in usersets:
                sub_obj, _, sub_rel = t.user.rpartition("#")
                sub_type = sub_obj.partition(":")[0]
                if not model.tuple_allowed(otype, rel, sub_type, sub_rel, t.condition):
                    continue
                if (sub_type, sub_rel) in fast:
                    groups.setdefault((sub_type, sub_rel), []).append(t)
                    continue
                try:
                    if not self._condition(t):
                        continue
                except ConditionError as exc:
                    read_error = read_error or exc
                    continue
                passed = True
                if t.user != user and not self._may_reach(utype, urel, sub_type, sub_rel):
                    continue
                r = self._dispatch(sub_obj, sub_rel, at)
                if type(r) is int and r & ALLOWED:
                    return r
                flags, error = _gather(r, flags, error)
            for ref, tuples in groups.items():
                try:
                    if self._weight2(ref, tuples, user, utype):
                        return TRUE
                except ConditionError as exc:
                    error = error or exc
        return _settle(flags, error, read_error, passed)

    def _ttu(self, rw: TupleToUserset, at: At) -> int:
        relation, obj, otype, user, utype, urel, _, _ = at
        if rw.computed == relation.name and urel in ("", "*"):
            seeds = self.model.ttu_closure_plan(otype, relation.name, utype, rw.tupleset)
            if seeds is not None:
                return self._ttu_closure(rw, obj, otype, user, utype, seeds)
        model = self.model
        error: AuthorizationError | None = None
        read_error: ConditionError | None = None  # as in _direct: only if no tuple of the read passed
        passed = False
        flags = 0
        for t in self.reader.read_users(obj, rw.tupleset):
            parent = t.user
            if "#" in parent:
                continue
            holds, condition_error = self._holds(t, otype)
            if not holds:
                read_error = read_error or condition_error
                continue
            passed = True
            if model.relation(parent.partition(":")[0], rw.computed) is None:
                continue
            r = self._dispatch(parent, rw.computed, at)
            if type(r) is int and r & ALLOWED:
                return r
            flags, error = _gather(r, flags, error)
        return _settle(flags, error, read_error, passed)

    def _dispatch(self, obj: str, rel: str, at: At) -> int | AuthorizationError:
        """Resolve ``obj#rel`` one level deeper for the user of ``at``: its flags, or the
        error it raised (the caller keeps the first, raised only if nothing allowed)."""
        self.dispatches += 1
        try:
            return self.resolve(obj, rel, at[3], at[6] + 1, at[7])
        except AuthorizationError as exc:
            return exc


def _direct_only(relation: Relation, utype: str, urel: str) -> bool:
    """Whether checking ``relation`` for this kind of user reads only the exact tuple: a
    relation of direct tuples alone (``blocked: [user]``), no usersets, no wildcard of the type."""
    return (
        relation.rewrite.kind == THIS
        and not relation.userset_refs
        and not (urel == "" and utype in relation.wildcard_types)
    )


def _gather(r: int | AuthorizationError, flags: int,
            error: AuthorizationError | None) -> tuple[int, AuthorizationError | None]:
    """Add a dispatch that allowed nothing to what a read has gathered: its flags, or its
    error (the first error is the one kept)."""
    if isinstance(r, AuthorizationError):
        return flags, error or r
    return flags | r, error


def _settle(flags: int, error: AuthorizationError | None, read_error: ConditionError | None, passed: bool) -> int:
    """The outcome of a read that allowed nothing: its first dispatch error, else its condition
    error when no tuple of it passed (OpenFGA's filtered iterator), else the flags gathered."""
    if error is not None:
        raise error
    if read_error is not None and not passed:
        raise read_error
    return flags
