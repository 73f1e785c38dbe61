"""OpenFGA's recursive resolvers, for relations that reach themselves through usersets or parents.

``member: [user, group#member]`` and ``viewer: [user] or viewer from parent`` are resolved
as OpenFGA's weighted-graph strategies do: the closure of the user's memberships (or of
an object's ancestors) is computed once per request, then each check is a lookup.
:class:`RecursiveResolvers` is a base of :class:`~langchain_agent_auth.fga._engine.Resolver`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_agent_auth.core.errors import ConditionError, ResolutionDepthError
from langchain_agent_auth.fga._engine_base import FALSE, TRUE, ResolverState
from langchain_agent_auth.fga._model_parts import TupleToUserset
from langchain_agent_auth.fga._tuple import TupleKey

if TYPE_CHECKING:
    pass


class RecursiveResolvers(ResolverState):
    """The closure-based check strategies of a Resolver (one request's state)."""


    def _closure_member(
        self, obj: str, otype: str, rel: str, user: str, utype: str, plan: tuple[str, ...]
    ) -> int:
        """OpenFGA's recursive userset resolver (``member: [user, group#member]``).

        The user's own memberships, then upwards through nested usersets, once per request;
        each object keeps its distance so a chain longer than the depth limit is still an
        error. (A negative answer does not walk the object's side, so a nesting deeper than
        the limit below an unrelated object is a "no" here where OpenFGA may report the depth.)
        """
        key = (otype, rel, user)
        hit = self._closures.get(key)
        if hit is None:
            found: dict[str, int] = {}
            errors: list[ConditionError] = []
            frontier: list[str] = []
            reader = self.reader

            def add(tk: TupleKey, level: int, into: list[str]) -> None:
                if tk.object in found or not self._valid(tk, otype):
                    return
                try:
                    if not self._condition(tk):
                        return
                except ConditionError as exc:
                    errors.append(exc)
                    return
                found[tk.object] = level
                into.append(tk.object)

            subjects = [user] if user.endswith(":*") else [user, f"{utype}:*"]
            for seed in plan:
                for subject in subjects:
                    for tk in reader.read_objects(subject, otype, seed):
                        add(tk, 0, frontier)
            level = 0
            while frontier:
                level += 1
                nxt: list[str] = []
                for member in frontier:
                    for tk in reader.read_objects(f"{member}#{rel}", otype, rel):
                        add(tk, level, nxt)
                frontier = nxt
            hit = (found, errors[0] if errors else None)
            self._closures[key] = hit
        found, error = hit
        distance = found.get(obj)
        if distance != 0 and not self._nested_usersets(obj, otype, rel):
            # OpenFGA reads the object's own nested usersets first: with none, only the
            # object's direct tuples count, not the user's tuples elsewhere.
            for seed in plan:
                for subject in ([user] if user.endswith(":*") else [user, f"{utype}:*"]):
                    t = self.reader.read_tuple(obj, seed, subject)
                    if t is not None and self._valid(t, otype):
                        self._condition(t)  # raises when it cannot be evaluated
            return FALSE
        if distance is not None:
            if distance > self.max_depth:
                raise ResolutionDepthError(
                    f"resolution exceeded the depth limit of {self.max_depth} while checking "
                    f"'{obj}#{rel}@{user}'",
                    hint="This permission is too complex to evaluate; ask an administrator.",
                )
            return TRUE
        if error is not None:
            raise error
        return FALSE

    def _weight2(self, ref: tuple[str, str], tuples: list[TupleKey], user: str, utype: str) -> bool:
        """OpenFGA's weight-2 userset strategy (``viewer: [team#member]``, ``member: [user]``).

        The object's usersets of that type, then the user's own ``team#member`` tuples: the
        answer is whether they meet. A condition that cannot be evaluated fails a side only
        when nothing on that side passed, and the user's side is read whatever the object's
        usersets are (so its conditions count even on unrelated objects).
        """
        right: set[str] = set()
        right_error: ConditionError | None = None
        for t in tuples:
            try:
                if self._condition(t):
                    right.add(t.user.rpartition("#")[0])
            except ConditionError as exc:
                right_error = right_error or exc
        if not right:
            if right_error is not None:
                raise right_error
            return False
        ttype, trel = ref
        left_error: ConditionError | None = None
        passed = False
        for subject in (user, f"{utype}:*"):
            for tk in self.reader.read_objects(subject, ttype, trel):
                if not self._valid(tk, ttype):
                    continue
                try:
                    ok = self._condition(tk)
                except ConditionError as exc:
                    left_error = left_error or exc
                    continue
                if ok:
                    passed = True
                    if tk.object in right:
                        return True
        if left_error is not None and not passed:
            raise left_error
        return False

    def _nested_usersets(self, obj: str, otype: str, rel: str) -> bool:
        """Whether ``obj#rel`` has a usable ``otype#rel`` userset tuple (a read with only
        failing conditions raises, as OpenFGA's filtered iterator does)."""
        error: ConditionError | None = None
        for t in self.reader.read_usersets(obj, rel):
            sub_obj, _, sub_rel = t.user.rpartition("#")
            if sub_rel != rel or sub_obj.partition(":")[0] != otype or not self._valid(t, otype):
                continue
            try:
                if self._condition(t):
                    return True
            except ConditionError as exc:
                error = error or exc
        if error is not None:
            raise error
        return False

    def _parents(self, obj: str, tupleset: str, otype: str) -> tuple[list[str], ConditionError | None]:
        """The objects a tupleset read leads to, filtered by conditions (OpenFGA's iterator:
        an error only when no tuple of the read passed)."""
        out: list[str] = []
        error: ConditionError | None = None
        for t in self.reader.read_users(obj, tupleset):
            if "#" in t.user or not self._valid(t, otype):
                continue
            try:
                if self._condition(t):
                    out.append(t.user)
            except ConditionError as exc:
                error = error or exc
        return out, (error if not out else None)

    def _ttu_closure(
        self, rw: TupleToUserset, obj: str, otype: str, user: str, utype: str, seeds: tuple[str, ...]
    ) -> int:
        """OpenFGA's recursive tuple-to-userset resolver (``viewer: [user] or viewer from parent``).

        The object's parents first (none: no), then the objects the user is directly related
        to (none: no; a read that fails: an error), then upwards from the parents, level by
        level, until one of those is met. Errors met on the way count only if none is.
        """
        parents, error = self._parents(obj, rw.tupleset, otype)
        if error is not None:
            raise error
        if not parents:
            return FALSE
        key = (otype, "ttu:" + "|".join(seeds), user)
        hit = self._closures.get(key)
        if hit is None:
            found: set[str] = set()
            first: ConditionError | None = None
            subjects = [user] if user.endswith(":*") else [user, f"{utype}:*"]
            for seed in seeds:
                passed, failed = False, None
                for subject in subjects:
                    for tk in self.reader.read_objects(subject, otype, seed):
                        if not self._valid(tk, otype):
                            continue
                        try:
                            if self._condition(tk):
                                passed = True
                                found.add(tk.object)
                        except ConditionError as exc:
                            failed = failed or exc
                if failed is not None and not passed:
                    first = first or failed
            hit = (found, first)
            self._closures[key] = hit  # type: ignore[assignment]
        targets, user_error = hit
        if any(p in targets for p in parents):
            return TRUE
        if user_error is not None:
            raise user_error
        if not targets:
            return FALSE
        seen = set(parents)
        frontier = parents
        level_error: ConditionError | None = None
        while frontier:
            nxt: list[str] = []
            for member in frontier:
                ups, err = self._parents(member, rw.tupleset, otype)
                level_error = level_error or err
                for up in ups:
                    if up in targets:
                        return TRUE
                    if up not in seen:
                        seen.add(up)
                        nxt.append(up)
            frontier = nxt
        if level_error is not None:
            raise level_error
        return FALSE

