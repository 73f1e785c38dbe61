"""What the resolver stands on: its result flags, the tuple reader and the reverse graph.

A check result is a small bit set (``ALLOWED``, OpenFGA's cycle flag, ``TAINTED``).
:class:`TupleReader` reads tuples from the store merged with a request's contextual
tuples; :class:`ReverseIndex` is the model's relationship graph walked backwards from a
user shape, which list_objects follows to find candidate objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_agent_auth.core.errors import ConditionError, ResolutionDepthError
from langchain_agent_auth.fga import _model_parts as parts
from langchain_agent_auth.fga._engine_validate import user_shape
from langchain_agent_auth.fga._store import TupleStore
from langchain_agent_auth.fga._tuple import TupleKey

if TYPE_CHECKING:
    from langchain_agent_auth.fga._model import AuthorizationModel

# A check result is a small bit set: ALLOWED, OpenFGA's "cycle detected" flag, and TAINTED
# (the answer depends on the path that led here, so it must not be memoized).
ALLOWED, CYCLE_FLAG, TAINTED = 1, 2, 4
FALSE, TRUE = 0, ALLOWED
CYCLE = CYCLE_FLAG | TAINTED  # OpenFGA's cycle: false, and false for exclusions/intersections too
MFALSE = TAINTED  # a cycle inside a recursively resolved relation: a plain "no" (fixpoint)
HAS, NO = 0, 1  # list_users relationship status
DEFAULT_MAX_DEPTH = 25
# What a check needs that depends only on (object type, relation, user): see Resolver.resolve.
Prelude = tuple["parts.Relation", str, str, bool, "tuple[str, ...] | None", bool]



def too_deep(what: str) -> ResolutionDepthError:
    # A chain of computed relations does not count towards OpenFGA's dispatch depth, so a
    # pathological model can exhaust Python's stack first: still a typed error.
    return ResolutionDepthError(
        f"resolution of {what} nests too deeply to evaluate",
        hint="This permission is too complex to evaluate; ask an administrator.",
    )


class TupleReader:
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

    def _cached(
        self, key: tuple[str, ...], stored: Sequence[TupleKey], extra: dict[str, TupleKey] | None, member: str
    ) -> Sequence[TupleKey]:
        """Cache one store read under ``key``, with the request's contextual tuples (``extra``,
        keyed by their ``member``) replacing the stored tuples they match."""
        self.reads += 1
        if extra:
            merged = [t for t in stored if getattr(t, member) not in extra]
            merged.extend(extra.values())
            stored = merged
        self._cache[key] = stored
        return stored

    def read_users(self, obj: str, rel: str) -> Sequence[TupleKey]:
        hit = self._cache.get(key := ("u", obj, rel))
        if hit is None:
            hit = self._cached(key, self.store.read_users(obj, rel), self._by_obj.get((obj, rel)), "user")
        return hit

    def read_usersets(self, obj: str, rel: str) -> Sequence[TupleKey]:
        hit = self._cache.get(key := ("s", obj, rel))
        if hit is None:
            hit = self._cached(key, self.store.read_usersets(obj, rel), self._usersets.get((obj, rel)), "user")
        return hit

    def read_objects(self, user: str, otype: str, rel: str) -> Sequence[TupleKey]:
        hit = self._cache.get(key := ("o", user, otype, rel))
        if hit is None:
            by_user = self._by_user.get((user, otype, rel))
            hit = self._cached(key, self.store.read_objects(user, otype, rel), by_user, "object")
        return hit


# --------------------------------------------------------------------------- reverse graph


class ReverseIndex:
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

    def _weight(self, t: str, rel: parts.Relation, rw: parts.Rewrite) -> float | None:
        w = self.weights
        if isinstance(rw, parts.This):
            cands = [
                1.0
                if not x.relation
                else (None if w.get((x.type, x.relation)) is None else 1 + w[(x.type, x.relation)])
                for x in rel.directly_related
            ]
        elif isinstance(rw, parts.ComputedUserset):
            cands = [w.get((t, rw.relation))]
        elif isinstance(rw, parts.TupleToUserset):
            cands = [
                None if w.get((p, rw.computed)) is None else 1 + w[(p, rw.computed)]
                for p in self.model.tupleset_types(t, rw.tupleset)
            ]
        else:
            cands = [self._weight(t, rel, c) for c in rw.children()]
        known = [c for c in cands if c is not None]
        return max(known) if known else None

    def _collect(self, t: str, rel: parts.Relation, rw: parts.Rewrite) -> None:
        node = (t, rel.name)
        model = self.model
        if isinstance(rw, parts.This):
            for sig in {(s[0], s[1]) for s in rel.signatures}:
                self.direct_in.setdefault(sig, []).append(node)
                if sig[1] not in ("", "*"):
                    self._preds.setdefault(node, set()).add(sig)
        elif isinstance(rw, parts.ComputedUserset):
            self.computed_in.setdefault((t, rw.relation), []).append(rel.name)
            self._preds.setdefault(node, set()).add((t, rw.relation))
        elif isinstance(rw, parts.TupleToUserset):
            for p in model.tupleset_types(t, rw.tupleset):
                if model.relation(p, rw.computed) is not None:
                    self.ttu_in.setdefault((p, rw.computed), []).append((t, rw.tupleset, rel.name))
                    self._preds.setdefault(node, set()).add((p, rw.computed))
        elif isinstance(rw, parts.Union):
            for child in rw.members:
                self._collect(t, rel, child)
        elif isinstance(rw, parts.Difference):
            self._collect(t, rel, rw.base)
        elif isinstance(rw, parts.Intersection):
            direct = [c for c in rw.members if isinstance(c, parts.This)]
            if self.legacy:
                self._collect(t, rel, rw.members[0])
                return
            if direct and self._weight(t, rel, direct[0]) is not None:
                chosen: list[parts.Rewrite] = direct
            else:
                best: parts.Rewrite | None = None
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


def reverse_index(model: AuthorizationModel, source: str, target: tuple[str, str]) -> ReverseIndex:
    # OpenFGA expands with its weighted graph unless it has none for the model or the target
    # relation's weight for this kind of user is infinite (a cycle): then its older expansion.
    legacy = not model.builds_weighted_graph() or model._weights_for(source).get(target) == float("inf")
    cache = getattr(model, "_reverse_indexes", None)
    if cache is None:
        cache = model._reverse_indexes = {}  # type: ignore[attr-defined]
    index = cache.get((source, legacy))
    if index is None:
        index = cache[(source, legacy)] = ReverseIndex(model, source, legacy)
    return index


class ResolverState:
    """One request's evaluation state: model, reader, context, memos and limits, and the
    tuple checks every strategy shares (type restrictions, conditions)."""

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
        self.reader = TupleReader(store, contextual_tuples)
        self.context = context or {}
        self.max_depth = max_depth
        self.dispatches = 0
        self._memo: dict[tuple[str, str, str], int] = {}
        # (relation, user type, user relation, reachable, closure plan, exact tuple only)
        self._prelude: dict[tuple[str, str, str], Prelude] = {}
        self._conditions: dict[tuple[str, str], bool | ConditionError] = {}
        self._lu_memo: dict[tuple[str, str], dict[str, int]] = {}
        self._closures: dict[tuple[str, str, str], tuple[set[str], ConditionError | None]] = {}

    # -- tuples -----------------------------------------------------------------------

    def _valid(self, t: TupleKey, otype: str) -> bool:
        utype, urel = user_shape(t.user)
        return self.model.tuple_allowed(otype, t.relation, utype, urel, t.condition)

    def _holds(self, t: TupleKey, otype: str) -> tuple[bool, ConditionError | None]:
        """Whether ``t`` counts (valid under the model, its condition true); a condition that
        cannot be evaluated comes back as the error, for the caller to report later."""
        if not self._valid(t, otype):
            return False, None
        try:
            return self._condition(t), None
        except ConditionError as exc:
            return False, exc

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
