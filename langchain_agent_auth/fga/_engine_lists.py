"""list_objects and list_users over the resolver, with OpenFGA's semantics.

list_objects walks the relationship graph backwards from the user (only through the model
edges that can lead to the requested relation) to find candidate objects, then checks each
candidate, so its answers always agree with check. list_users follows OpenFGA's forward
expansion, including its treatment of wildcards in intersections and exclusions.
:class:`ListQueries` is a base of :class:`~langchain_agent_auth.fga._engine.Resolver`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from langchain_agent_auth.core.errors import AuthorizationError, ConditionError, ResolutionDepthError
from langchain_agent_auth.fga import _model_parts as parts
from langchain_agent_auth.fga._engine_base import HAS, NO, ResolverState, reverse_index, too_deep
from langchain_agent_auth.fga._tuple import TupleKey, split_user

if TYPE_CHECKING:
    pass


class TooManyCandidates(Exception):
    """:meth:`ListQueries.candidates` read more tuples than its ``max_tuples``."""


class ListQueries(ResolverState):
    """list_objects and list_users of a Resolver (one request's state)."""

    _filter: tuple[str, str]
    _wildcard_key: str

    # -- list_objects ------------------------------------------------------------------------

    def candidates(
        self, user: str, object_type: str, relation: str, *, max_tuples: int | None = None
    ) -> tuple[set[str], AuthorizationError | None]:
        """Objects of ``object_type`` the user may have ``relation`` on (a superset).

        Also returns the first error met on the way (a condition that cannot be evaluated).
        ``max_tuples``: raise :class:`TooManyCandidates` once more tuples than that were read
        (a caller with a cheaper plan B stops walking a large graph early).
        """
        utype, uid, urel = split_user(user)
        source = f"{utype}#{urel}" if urel else utype
        index = reverse_index(self.model, source, (object_type, relation))
        relevant = index.relevant((object_type, relation))
        reader = self.reader
        found: set[str] = set()
        seen: set[tuple[str, str]] = set()
        queue: deque[tuple[str, str, str]] = deque()
        errors: list[AuthorizationError] = []
        read = [0]

        def usable(tk: TupleKey, otype: str) -> bool:
            read[0] += 1
            if max_tuples is not None and read[0] > max_tuples:
                raise TooManyCandidates(f"more than {max_tuples} tuples on the way")
            if not self._valid(tk, otype):
                return False
            try:
                return self._condition(tk)
            except ConditionError as exc:
                errors.append(exc)
                return False

        def reach(obj: str, otype: str, rel: str) -> None:
            if (otype, rel) not in relevant or (obj, rel) in seen:
                return
            seen.add((obj, rel))
            queue.append((obj, otype, rel))
            if otype == object_type and rel == relation:
                found.add(obj)

        if urel:
            reach(f"{utype}:{uid}", utype, urel)
        else:
            subjects = [(user, "*" if uid == "*" else "")]
            if uid != "*":
                subjects.append((f"{utype}:*", "*"))
            for subject, shape in subjects:
                for t2, r2 in index.direct_in.get((utype, shape), ()):
                    if (t2, r2) in relevant:
                        for tk in reader.read_objects(subject, t2, r2):
                            if usable(tk, t2):
                                reach(tk.object, t2, r2)
        while queue:
            obj, otype, rel = queue.popleft()
            subject = f"{obj}#{rel}"
            for t2, r2 in index.direct_in.get((otype, rel), ()):
                if (t2, r2) in relevant:
                    for tk in reader.read_objects(subject, t2, r2):
                        if usable(tk, t2):
                            reach(tk.object, t2, r2)
            for r2 in index.computed_in.get((otype, rel), ()):
                reach(obj, otype, r2)
            for t2, tupleset, r2 in index.ttu_in.get((otype, rel), ()):
                if (t2, r2) in relevant:
                    for tk in reader.read_objects(obj, t2, tupleset):
                        if usable(tk, t2):
                            reach(tk.object, t2, r2)
        return found, (errors[0] if errors else None)

    def list_objects(
        self, user: str, object_type: str, relation: str, *, max_results: int | None = None
    ) -> list[str]:
        """Objects of a type the user has the relation on, each confirmed by check.

        As in OpenFGA, a condition that cannot be evaluated anywhere on the way is an error,
        unless ``max_results`` objects were found anyway.
        """
        candidates, error = self.candidates(user, object_type, relation)
        result = []
        for obj in sorted(candidates):
            try:
                allowed = self.check(obj, relation, user)
            except AuthorizationError as exc:
                if isinstance(exc, ResolutionDepthError):
                    raise
                error = error or exc
                continue
            if allowed:
                result.append(obj)
                if max_results is not None and len(result) >= max_results:
                    return result
        if error is not None:
            raise error
        return result

    # -- list_users ---------------------------------------------------------------------------

    def list_users(self, obj: str, relation: str, filter_type: str, filter_relation: str = "") -> list[str]:
        """Users of ``filter_type`` (or usersets ``filter_type#filter_relation``) related to ``obj``."""
        otype = obj.partition(":")[0]
        if (otype, relation) != (filter_type, filter_relation) and not self.model.has_path(
            filter_type, filter_relation, otype, relation
        ):
            return []
        self._filter = (filter_type, filter_relation)
        self._wildcard_key = f"{filter_type}:*"
        try:
            found, _, error = self._expand(obj, otype, relation, 0, set())
        except RecursionError:
            raise too_deep(f"the users of '{obj}#{relation}'") from None
        if error is not None:
            raise error
        return sorted(k for k, status in found.items() if status == HAS)

    def _expand(
        self, obj: str, otype: str, rel: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        if depth >= self.max_depth:
            return (
                {},
                False,
                ResolutionDepthError(
                    f"resolution exceeded the depth limit of {self.max_depth} while listing users of "
                    f"'{obj}#{rel}'"
                ),
            )
        depth += 1
        key = f"{obj}#{rel}"
        if key in visited:
            return {}, True, None
        memo = self._lu_memo.get((obj, rel))
        if memo is not None:
            return memo, False, None
        found: dict[str, int] = {}
        if (otype, rel) == self._filter:
            found[key] = HAS
        relation = self.model.relation(otype, rel)
        if relation is None:
            return found, False, None
        visited.add(key)
        try:
            sub, cycle, error = self._expand_rewrite(relation.rewrite, relation, obj, otype, depth, visited)
        finally:
            visited.discard(key)
        found.update(sub)
        if not cycle and error is None:
            self._lu_memo[(obj, rel)] = found
        return found, cycle, error

    def _expand_rewrite(
        self, rw: parts.Rewrite, relation: parts.Relation, obj: str, otype: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        kind = rw.kind
        if kind == parts.THIS:
            return self._expand_direct(relation, obj, otype, depth, visited)
        if kind == parts.COMPUTED:
            return self._expand(obj, otype, rw.relation, depth, visited)  # type: ignore[attr-defined]
        if kind == parts.TTU:
            found: dict[str, int] = {}
            error: AuthorizationError | None = None
            for t in self.reader.read_users(obj, rw.tupleset):  # type: ignore[attr-defined]
                if "#" in t.user:
                    continue
                holds, failure = self._holds(t, otype)
                error = error or failure
                if not holds:
                    continue
                ptype = t.user.partition(":")[0]
                sub, _, sub_error = self._expand(t.user, ptype, rw.computed, depth, visited)  # type: ignore[attr-defined]
                found.update(sub)
                error = error or sub_error
            return found, False, error
        if kind == parts.UNION:
            found = {}
            error = None
            for child in rw.members:  # type: ignore[attr-defined]
                sub, _, sub_error = self._expand_rewrite(child, relation, obj, otype, depth, visited)
                error = error or sub_error
                for k, status in sub.items():
                    if status == HAS:
                        found[k] = HAS
            return found, False, error
        if kind == parts.INTERSECTION:
            return self._expand_intersection(rw, relation, obj, otype, depth, visited)  # type: ignore[arg-type]
        if kind == parts.DIFFERENCE:
            return self._expand_exclusion(rw, relation, obj, otype, depth, visited)  # type: ignore[arg-type]
        raise AssertionError(rw)  # pragma: no cover

    def _operand_reaches(self, otype: str, relation: parts.Relation, rw: parts.Rewrite) -> bool:
        """Whether an operand may produce users of the filter's shape (static, no reads)."""
        ftype, frel = self._filter
        model = self.model
        if isinstance(rw, parts.This):
            for x in relation.directly_related:
                if x.relation:
                    if (x.type, x.relation) == (ftype, frel) or model.can_reach(
                        ftype, frel, x.type, x.relation
                    ):
                        return True
                elif x.type == ftype and not frel:
                    return True
            return False
        if isinstance(rw, parts.ComputedUserset):
            return model.can_reach(ftype, frel, otype, rw.relation)
        if isinstance(rw, parts.TupleToUserset):
            return any(
                model.can_reach(ftype, frel, p, rw.computed) for p in model.tupleset_types(otype, rw.tupleset)
            )
        return any(self._operand_reaches(otype, relation, c) for c in rw.children())

    def _expand_direct(
        self, relation: parts.Relation, obj: str, otype: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        found: dict[str, int] = {}
        error: AuthorizationError | None = None
        cycle = False
        ftype = self._filter[0]
        for t in self.reader.read_users(obj, relation.name):
            holds, failure = self._holds(t, otype)
            error = error or failure
            if not holds:
                continue
            user_obj, _, user_rel = t.user.partition("#")
            utype = user_obj.partition(":")[0]
            if not user_rel:
                if utype == ftype:
                    found[user_obj] = HAS
                continue
            sub, sub_cycle, sub_error = self._expand(user_obj, utype, user_rel, depth, visited)
            found.update(sub)
            cycle = cycle or sub_cycle
            error = error or sub_error
        return found, cycle, error

    def _expand_intersection(
        self, rw: parts.Intersection, relation: parts.Relation, obj: str, otype: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        """A user is in every operand, or in an operand's public wildcard without being
        explicitly excluded there; the wildcard itself only if every operand has it."""
        error: AuthorizationError | None = None
        wk = self._wildcard_key
        operands: list[tuple[set[str], set[str], bool]] = []
        for child in rw.members:
            sub, _, sub_error = self._expand_rewrite(child, relation, obj, otype, depth, visited)
            error = error or sub_error
            has = {k for k, status in sub.items() if status == HAS}
            no = {k for k, status in sub.items() if status == NO}
            operands.append((has, no, wk in has))
        found: dict[str, int] = {}
        for key in set().union(*(op[0] for op in operands)):
            if key == wk:
                ok = all(op[2] for op in operands)
            else:
                ok = all(key in has or (wildcard and key not in no) for has, no, wildcard in operands)
            if ok:
                found[key] = HAS
        for _, no, _ in operands:
            for key in no:
                found.setdefault(key, NO)
        return found, False, error

    def _expand_exclusion(
        self, rw: parts.Difference, relation: parts.Relation, obj: str, otype: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        base, _, base_error = self._expand_rewrite(rw.base, relation, obj, otype, depth, visited)
        sub, sub_cycle, sub_error = self._expand_rewrite(rw.subtract, relation, obj, otype, depth, visited)
        if sub_cycle:
            return {}, False, None
        wk = self._wildcard_key
        base_wildcard = wk in base
        sub_wildcard = wk in sub
        out: dict[str, int] = {}
        for user_key, status in base.items():
            user_subtracted = user_key in sub
            sub_status = sub.get(user_key, HAS)
            if base_wildcard:
                if not user_subtracted and not sub_wildcard:
                    # A user the base itself excludes (a nested exclusion) stays excluded.
                    out[user_key] = status
                for s_key, s_status in sub.items():
                    if s_key.endswith(":*") and "#" not in s_key:
                        if not user_subtracted:
                            out[user_key] = NO
                        continue
                    out[s_key] = HAS if s_status == NO else NO
            elif sub_wildcard or user_subtracted:
                out[user_key] = NO if sub_status == HAS else HAS
            else:
                out[user_key] = status
        return out, False, base_error or sub_error

