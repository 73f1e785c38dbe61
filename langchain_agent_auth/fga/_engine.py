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

list_objects walks the relationship graph backwards from the user (only through the
model edges that can lead to the requested relation) to find candidate objects, then
checks each candidate, so its answers always agree with check. list_users follows
OpenFGA's forward expansion, including its treatment of wildcards in intersections and
exclusions.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_agent_auth.core.errors import (
    AuthorizationError,
    ConditionError,
    ResolutionDepthError,
    TupleError,
)
from langchain_agent_auth.fga._model import (
    COMPUTED,
    DIFFERENCE,
    INTERSECTION,
    THIS,
    TTU,
    UNION,
    AuthorizationModel,
    ComputedUserset,
    Difference,
    Intersection,
    Relation,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from langchain_agent_auth.fga._store import TupleStore
from langchain_agent_auth.fga._tuple import (
    TupleKey,
    is_valid_object,
    is_valid_relation,
    split_user,
)

__all__ = [
    "DEFAULT_MAX_CONTEXTUAL_TUPLES",
    "DEFAULT_MAX_DEPTH",
    "Resolver",
    "TooManyCandidates",
    "validate_context",
    "validate_query_user",
    "validate_tuple",
]

DEFAULT_MAX_DEPTH = 25
DEFAULT_MAX_CONTEXTUAL_TUPLES = 100
MAX_CONTEXT_BYTES = 64 * 1024

# A check result is a small bit set: ALLOWED, OpenFGA's "cycle detected" flag, and TAINTED
# (the answer depends on the path that led here, so it must not be memoized).
ALLOWED, CYCLE_FLAG, TAINTED = 1, 2, 4
FALSE, TRUE = 0, ALLOWED
CYCLE = CYCLE_FLAG | TAINTED  # OpenFGA's cycle: false, and false for exclusions/intersections too
MFALSE = TAINTED  # a cycle inside a recursively resolved relation: a plain "no" (fixpoint)
HAS, NO = 0, 1  # list_users relationship status


# --------------------------------------------------------------------------- validation


def _user_shape(user: str) -> tuple[str, str]:
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
    shape = _user_shape(t.user)
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


# --------------------------------------------------------------------------- reading


def _too_deep(what: str) -> ResolutionDepthError:
    # A chain of computed relations does not count towards OpenFGA's dispatch depth, so a
    # pathological model can exhaust Python's stack first: still a typed error.
    return ResolutionDepthError(
        f"resolution of {what} nests too deeply to evaluate",
        hint="This permission is too complex to evaluate; ask an administrator.",
    )


class _Reader:
    """The store seen through one request: contextual tuples on top, reads cached."""

    __slots__ = ("_by_obj", "_by_user", "_cache", "_ctx_keys", "_usersets", "reads", "store")

    def __init__(self, store: TupleStore, contextual: Sequence[TupleKey]) -> None:
        self.store = store
        self.reads = 0
        self._cache: dict[tuple[Any, ...], Sequence[TupleKey]] = {}
        self._by_obj: dict[tuple[str, str], dict[str, TupleKey]] = {}
        self._usersets: dict[tuple[str, str], dict[str, TupleKey]] = {}
        self._by_user: dict[tuple[str, str, str], dict[str, TupleKey]] = {}
        self._ctx_keys: set[tuple[str, str, str]] = set()
        for t in contextual:
            self._ctx_keys.add(t.key)
            self._by_obj.setdefault((t.object, t.relation), {})[t.user] = t
            if "#" in t.user:
                self._usersets.setdefault((t.object, t.relation), {})[t.user] = t
            self._by_user.setdefault((t.user, t.object_type, t.relation), {})[t.object] = t

    def read_tuple(self, obj: str, rel: str, user: str) -> TupleKey | None:
        if self._ctx_keys:
            bucket = self._by_obj.get((obj, rel))
            if bucket and user in bucket:
                return bucket[user]
        self.reads += 1
        return self.store.read_tuple(obj, rel, user)

    def _merged(
        self, key: tuple[Any, ...], stored: Sequence[TupleKey], extra: dict[str, TupleKey] | None, member: str
    ) -> Sequence[TupleKey]:
        if not extra:
            return stored
        out = [t for t in stored if getattr(t, member) not in extra]
        out.extend(extra.values())
        return out

    def read_users(self, obj: str, rel: str) -> Sequence[TupleKey]:
        key = ("u", obj, rel)
        hit = self._cache.get(key)
        if hit is None:
            self.reads += 1
            hit = self._merged(key, self.store.read_users(obj, rel), self._by_obj.get((obj, rel)), "user")
            self._cache[key] = hit
        return hit

    def read_usersets(self, obj: str, rel: str) -> Sequence[TupleKey]:
        key = ("s", obj, rel)
        hit = self._cache.get(key)
        if hit is None:
            self.reads += 1
            hit = self._merged(
                key, self.store.read_usersets(obj, rel), self._usersets.get((obj, rel)), "user"
            )
            self._cache[key] = hit
        return hit

    def read_objects(self, user: str, otype: str, rel: str) -> Sequence[TupleKey]:
        key = ("o", user, otype, rel)
        hit = self._cache.get(key)
        if hit is None:
            self.reads += 1
            hit = self._merged(
                key,
                self.store.read_objects(user, otype, rel),
                self._by_user.get((user, otype, rel)),
                "object",
            )
            self._cache[key] = hit
        return hit


# --------------------------------------------------------------------------- reverse graph


class _ReverseIndex:
    """Model edges walked backwards by list_objects for one kind of user, pruned per target.

    Which edges are walked follows OpenFGA's reverse expansion, so the same tuples (and
    conditions) are visited: every operand of a union, the base of an exclusion, and for an
    intersection its direct type restrictions if they lead to the user, else its cheapest
    operand (the others are confirmed by check). ``legacy``: OpenFGA's expansion without its
    weighted graph (a model it cannot build one for, or a target in a cycle), which takes
    an intersection's first operand.
    """

    def __init__(self, model: AuthorizationModel, source: str, legacy: bool = False) -> None:
        self.model = model
        self.legacy = legacy
        self.weights = model._weights_for(source)
        self.direct_in: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.computed_in: dict[tuple[str, str], list[str]] = {}
        self.ttu_in: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        self._preds: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._relevant: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
        for td in model.types.values():
            for rel in td.relations.values():
                self._collect(td.name, rel, rel.rewrite)

    def _weight(self, t: str, rel: Relation, rw: Rewrite) -> float | None:
        w = self.weights
        if isinstance(rw, This):
            cands = [
                1.0
                if not x.relation
                else (None if w.get((x.type, x.relation)) is None else 1 + w[(x.type, x.relation)])
                for x in rel.directly_related
            ]
        elif isinstance(rw, ComputedUserset):
            cands = [w.get((t, rw.relation))]
        elif isinstance(rw, TupleToUserset):
            cands = [
                None if w.get((p, rw.computed)) is None else 1 + w[(p, rw.computed)]
                for p in self.model.tupleset_types(t, rw.tupleset)
            ]
        else:
            cands = [self._weight(t, rel, c) for c in rw.children()]
        known = [c for c in cands if c is not None]
        return max(known) if known else None

    def _collect(self, t: str, rel: Relation, rw: Rewrite) -> None:
        node = (t, rel.name)
        model = self.model
        if isinstance(rw, This):
            for sig in {(s[0], s[1]) for s in rel.signatures}:
                self.direct_in.setdefault(sig, []).append(node)
                if sig[1] not in ("", "*"):
                    self._preds.setdefault(node, set()).add(sig)
        elif isinstance(rw, ComputedUserset):
            self.computed_in.setdefault((t, rw.relation), []).append(rel.name)
            self._preds.setdefault(node, set()).add((t, rw.relation))
        elif isinstance(rw, TupleToUserset):
            for p in model.tupleset_types(t, rw.tupleset):
                if model.relation(p, rw.computed) is not None:
                    self.ttu_in.setdefault((p, rw.computed), []).append((t, rw.tupleset, rel.name))
                    self._preds.setdefault(node, set()).add((p, rw.computed))
        elif isinstance(rw, Union):
            for child in rw.members:
                self._collect(t, rel, child)
        elif isinstance(rw, Difference):
            self._collect(t, rel, rw.base)
        elif isinstance(rw, Intersection):
            direct = [c for c in rw.members if isinstance(c, This)]
            if self.legacy:
                self._collect(t, rel, rw.members[0])
                return
            if direct and self._weight(t, rel, direct[0]) is not None:
                chosen: list[Rewrite] = direct
            else:
                best: Rewrite | None = None
                best_w: float | None = None
                for child in rw.members:
                    w = self._weight(t, rel, child)
                    if w is not None and (best_w is None or w < best_w):
                        best, best_w = child, w
                chosen = [best] if best is not None else []
            for child in chosen:
                self._collect(t, rel, child)

    def relevant(self, target: tuple[str, str]) -> frozenset[tuple[str, str]]:
        """Relations from which ``target`` can be reached."""
        hit = self._relevant.get(target)
        if hit is None:
            seen = {target}
            queue = [target]
            while queue:
                for p in self._preds.get(queue.pop(), ()):
                    if p not in seen:
                        seen.add(p)
                        queue.append(p)
            hit = self._relevant[target] = frozenset(seen)
        return hit


def _reverse_index(model: AuthorizationModel, source: str, target: tuple[str, str]) -> _ReverseIndex:
    # OpenFGA expands with its weighted graph unless it has none for the model or the target
    # relation's weight for this kind of user is infinite (a cycle): then its older expansion.
    legacy = not model.builds_weighted_graph() or model._weights_for(source).get(target) == float("inf")
    cache = getattr(model, "_reverse_indexes", None)
    if cache is None:
        cache = model._reverse_indexes = {}  # type: ignore[attr-defined]
    index = cache.get((source, legacy))
    if index is None:
        index = cache[(source, legacy)] = _ReverseIndex(model, source, legacy)
    return index


# --------------------------------------------------------------------------- the resolver


class TooManyCandidates(Exception):
    """:meth:`Resolver.candidates` read more tuples than its ``max_tuples``."""


class Resolver:
    """One request's evaluation state: model, reader, context, memo and limits."""

    def __init__(
        self,
        model: AuthorizationModel,
        store: TupleStore,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        context: Mapping[str, Any] | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        eager_cycles: bool = False,
    ) -> None:
        # OpenFGA evaluates the operands of an intersection or exclusion concurrently, and a
        # cycle found in one of them can beat a plain "false" in another; which one wins is
        # timing-dependent there. This engine answers deterministically (the "false" wins);
        # ``eager_cycles`` reproduces the other outcome, for differential tests.
        self.eager_cycles = eager_cycles
        self.model = model
        self.reader = _Reader(store, contextual_tuples)
        self.context = context or {}
        self.max_depth = max_depth
        self.dispatches = 0
        self._memo: dict[tuple[str, str, str], int] = {}
        self._prelude: dict[tuple[str, str, str], tuple[Relation, str, str, bool, tuple[str, ...] | None]] = {}
        self._conditions: dict[tuple[str, str], bool | ConditionError] = {}
        self._lu_memo: dict[tuple[str, str], dict[str, int]] = {}
        self._closures: dict[tuple[str, str, str], tuple[set[str], ConditionError | None]] = {}

    # -- tuples -----------------------------------------------------------------------

    def _valid(self, t: TupleKey, otype: str) -> bool:
        utype, urel = _user_shape(t.user)
        return self.model.tuple_allowed(otype, t.relation, utype, urel, t.condition)

    def _condition(self, t: TupleKey) -> bool:
        """Whether the tuple's condition holds (raises ConditionError)."""
        name = t.condition
        if not name:
            return True
        key = (name, t.context_json() or "")
        hit = self._conditions.get(key)
        if hit is None:
            program = self.model.condition_program(name)
            try:
                if program is None:
                    raise ConditionError(f"condition '{name}' was not found")
                hit = program.evaluate(t.context, self.context)
            except ConditionError as exc:
                hit = ConditionError(f"{exc.message} (tuple '{t}')", hint=exc.hint)
            self._conditions[key] = hit
        if isinstance(hit, ConditionError):
            raise hit
        return hit

    # -- check ----------------------------------------------------------------------------

    def check(self, obj: str, relation: str, user: str) -> bool:
        """Whether ``user`` has ``relation`` on ``obj`` (the request must be validated)."""
        try:
            return bool(self.resolve(obj, relation, user, 0, set()) & ALLOWED)
        except RecursionError:
            raise _too_deep(f"'{obj}#{relation}@{user}'") from None

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
            utype, urel = _user_shape(user)
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
            utype, urel = _user_shape(user)
            reach = self._may_reach(utype, urel, otype, rel)
            plan = self.model.userset_closure_plan(otype, rel, utype) if reach and not urel else None
            pre = self._prelude[(otype, rel, user)] = (relation, utype, urel, reach, plan)
        relation, utype, urel, reach, plan = pre
        if not reach:
            return FALSE
        if plan is not None:
            return self._closure_member(obj, otype, rel, user, utype, plan)
        visited.add(key)
        try:
            result = self._rewrite(relation.rewrite, relation, obj, otype, user, utype, urel, depth, visited)
        finally:
            visited.discard(key)
        if not result & TAINTED:
            self._memo[key] = result
        return result

    def _may_reach(self, utype: str, urel: str, otype: str, rel: str) -> bool:
        # OpenFGA prunes a check whose user cannot reach the relation; for ``user:*`` it asks
        # whether the type ``user`` can reach it (its wildcard, or any user of the type), so
        # the tuples on the way are still read (and their conditions evaluated).
        can_reach = self.model.can_reach
        return can_reach(utype, urel, otype, rel) or (urel == "*" and can_reach(utype, "", otype, rel))

    def _rewrite(
        self,
        rw: Rewrite,
        relation: Relation,
        obj: str,
        otype: str,
        user: str,
        utype: str,
        urel: str,
        depth: int,
        visited: set[tuple[str, str, str]],
    ) -> int:
        kind = rw.kind
        if kind == THIS:
            return self._direct(relation, obj, otype, user, utype, urel, depth, visited)
        if kind == COMPUTED:
            return self.resolve(obj, rw.relation, user, depth, visited)  # type: ignore[attr-defined]
        if kind == TTU:
            return self._ttu(rw, relation, obj, otype, user, utype, urel, depth, visited)  # type: ignore[arg-type]
        if kind == UNION:
            # OpenFGA's union: true wins; otherwise an error; otherwise false (with the flags seen).
            union_error: AuthorizationError | None = None
            union_flags = 0
            for c in rw.members:  # type: ignore[attr-defined]
                try:
                    r = self._rewrite(c, relation, obj, otype, user, utype, urel, depth, visited)
                except AuthorizationError as exc:
                    union_error = union_error or exc
                    continue
                if r & ALLOWED:
                    return r
                union_flags |= r
            if union_error is not None:
                raise union_error
            return union_flags
        if kind == INTERSECTION:
            error: AuthorizationError | None = None
            flags = taint = 0
            for child in rw.members:  # type: ignore[attr-defined]
                try:
                    r = self._rewrite(child, relation, obj, otype, user, utype, urel, depth, visited)
                except AuthorizationError as exc:
                    error = error or exc
                    continue
                if r & ALLOWED:
                    taint |= r & TAINTED
                elif r == FALSE and not self.eager_cycles:
                    return FALSE
                else:
                    flags |= r | TAINTED
            if flags:
                return flags if flags & CYCLE_FLAG or not self.eager_cycles else FALSE
            if error is not None:
                raise error
            return TRUE | taint
        if kind == DIFFERENCE:
            base_error: AuthorizationError | None = None
            try:
                base = self._rewrite(
                    rw.base,
                    relation,
                    obj,
                    otype,
                    user,
                    utype,
                    urel,  # type: ignore[attr-defined]
                    depth,
                    visited,
                )
            except AuthorizationError as exc:
                base_error, base = exc, TRUE
            if not base & ALLOWED:
                if self.eager_cycles and base == FALSE:
                    try:
                        sub = self._rewrite(
                            rw.subtract,
                            relation,
                            obj,
                            otype,
                            user,
                            utype,
                            urel,  # type: ignore[attr-defined]
                            depth,
                            visited,
                        )
                    except AuthorizationError:
                        return base
                    if sub & CYCLE_FLAG:
                        return CYCLE
                return base
            try:
                sub = self._rewrite(
                    rw.subtract,
                    relation,
                    obj,
                    otype,
                    user,
                    utype,
                    urel,  # type: ignore[attr-defined]
                    depth,
                    visited,
                )
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
        raise AssertionError(rw)  # pragma: no cover

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

    def _direct(
        self,
        relation: Relation,
        obj: str,
        otype: str,
        user: str,
        utype: str,
        urel: str,
        depth: int,
        visited: set[tuple[str, str, str]],
    ) -> int:
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
                try:
                    self.dispatches += 1
                    r = self.resolve(sub_obj, sub_rel, user, depth + 1, visited)
                except AuthorizationError as exc:
                    error = error or exc
                    continue
                if r & ALLOWED:
                    return r
                flags |= r
            for ref, tuples in groups.items():
                try:
                    if self._weight2(ref, tuples, user, utype):
                        return TRUE
                except ConditionError as exc:
                    error = error or exc
        if error is not None:
            raise error
        if read_error is not None and not passed:
            raise read_error
        return flags

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

    def _ttu(
        self,
        rw: TupleToUserset,
        relation: Relation,
        obj: str,
        otype: str,
        user: str,
        utype: str,
        urel: str,
        depth: int,
        visited: set[tuple[str, str, str]],
    ) -> int:
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
            ptype = parent.partition(":")[0]
            if "#" in parent or not self._valid(t, otype):
                continue
            try:
                if not self._condition(t):
                    continue
            except ConditionError as exc:
                read_error = read_error or exc
                continue
            passed = True
            if model.relation(ptype, rw.computed) is None:
                continue
            try:
                self.dispatches += 1
                r = self.resolve(parent, rw.computed, user, depth + 1, visited)
            except AuthorizationError as exc:
                error = error or exc
                continue
            if r & ALLOWED:
                return r
            flags |= r
        if error is not None:
            raise error
        if read_error is not None and not passed:
            raise read_error
        return flags

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
        index = _reverse_index(self.model, source, (object_type, relation))
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
            raise _too_deep(f"the users of '{obj}#{relation}'") from None
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
        self, rw: Rewrite, relation: Relation, obj: str, otype: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        kind = rw.kind
        if kind == THIS:
            return self._expand_direct(relation, obj, otype, depth, visited)
        if kind == COMPUTED:
            return self._expand(obj, otype, rw.relation, depth, visited)  # type: ignore[attr-defined]
        if kind == TTU:
            found: dict[str, int] = {}
            error: AuthorizationError | None = None
            for t in self.reader.read_users(obj, rw.tupleset):  # type: ignore[attr-defined]
                if "#" in t.user or not self._valid(t, otype):
                    continue
                try:
                    if not self._condition(t):
                        continue
                except ConditionError as exc:
                    error = error or exc
                    continue
                ptype = t.user.partition(":")[0]
                sub, _, sub_error = self._expand(t.user, ptype, rw.computed, depth, visited)  # type: ignore[attr-defined]
                found.update(sub)
                error = error or sub_error
            return found, False, error
        if kind == UNION:
            found = {}
            error = None
            for child in rw.members:  # type: ignore[attr-defined]
                sub, _, sub_error = self._expand_rewrite(child, relation, obj, otype, depth, visited)
                error = error or sub_error
                for k, status in sub.items():
                    if status == HAS:
                        found[k] = HAS
            return found, False, error
        if kind == INTERSECTION:
            return self._expand_intersection(rw, relation, obj, otype, depth, visited)  # type: ignore[arg-type]
        if kind == DIFFERENCE:
            return self._expand_exclusion(rw, relation, obj, otype, depth, visited)  # type: ignore[arg-type]
        raise AssertionError(rw)  # pragma: no cover

    def _operand_reaches(self, otype: str, relation: Relation, rw: Rewrite) -> bool:
        """Whether an operand may produce users of the filter's shape (static, no reads)."""
        ftype, frel = self._filter
        model = self.model
        if isinstance(rw, This):
            for x in relation.directly_related:
                if x.relation:
                    if (x.type, x.relation) == (ftype, frel) or model.can_reach(
                        ftype, frel, x.type, x.relation
                    ):
                        return True
                elif x.type == ftype and not frel:
                    return True
            return False
        if isinstance(rw, ComputedUserset):
            return model.can_reach(ftype, frel, otype, rw.relation)
        if isinstance(rw, TupleToUserset):
            return any(
                model.can_reach(ftype, frel, p, rw.computed) for p in model.tupleset_types(otype, rw.tupleset)
            )
        return any(self._operand_reaches(otype, relation, c) for c in rw.children())

    def _expand_direct(
        self, relation: Relation, obj: str, otype: str, depth: int, visited: set[str]
    ) -> tuple[dict[str, int], bool, AuthorizationError | None]:
        found: dict[str, int] = {}
        error: AuthorizationError | None = None
        cycle = False
        ftype = self._filter[0]
        for t in self.reader.read_users(obj, relation.name):
            if not self._valid(t, otype):
                continue
            try:
                if not self._condition(t):
                    continue
            except ConditionError as exc:
                error = error or exc
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
        self, rw: Intersection, relation: Relation, obj: str, otype: str, depth: int, visited: set[str]
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
        self, rw: Difference, relation: Relation, obj: str, otype: str, depth: int, visited: set[str]
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
