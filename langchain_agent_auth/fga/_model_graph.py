"""What the engine asks of a model's relation graph: reachability and OpenFGA's resolver plans.

:class:`ModelGraph` is a base of
:class:`~langchain_agent_auth.fga._model.AuthorizationModel`: which user shapes can reach a
relation honouring the operators (:meth:`ModelGraph.has_path`), and which relations OpenFGA
resolves with its recursive (weighted-graph) strategies: userset and tuple-to-userset
closure plans, weights, strongly connected components. Results are cached per model.
"""

from __future__ import annotations

from typing import Any

from langchain_agent_auth.fga import _model_parts as parts


class ModelGraph:
    """The relation-graph queries of an authorization model (a base of AuthorizationModel)."""

    _relations: dict[tuple[str, str], parts.Relation]
    _tupleset_types: dict[tuple[str, str], tuple[str, ...]]
    _weights: dict[str, dict[tuple[str, str], float]]
    _recursive: dict[tuple[str, str, str], bool]
    _paths: dict[tuple[str, str], dict[tuple[str, str], bool]]
    _plans: dict[tuple[str, ...], Any]

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

        def rw_reaches(t: str, rel: parts.Relation, rw: parts.Rewrite) -> bool:
            if isinstance(rw, parts.This):
                for x in rel.directly_related:
                    if x.relation:
                        if (x.type, x.relation) == (ftype, frel) or reach.get((x.type, x.relation)):
                            return True
                    elif x.type == ftype and not frel:
                        return True
                return False
            if isinstance(rw, parts.ComputedUserset):
                return (t, rw.relation) == (ftype, frel) or reach[(t, rw.relation)]
            if isinstance(rw, parts.TupleToUserset):
                return any(
                    (p, rw.computed) == (ftype, frel) or reach.get((p, rw.computed), False)
                    for p in self._tupleset_types.get((t, rw.tupleset), ())
                )
            if isinstance(rw, parts.Union):
                return any(rw_reaches(t, rel, c) for c in rw.members)
            if isinstance(rw, parts.Intersection):
                return all(rw_reaches(t, rel, c) for c in rw.members)
            assert isinstance(rw, parts.Difference)
            return rw_reaches(t, rel, rw.base)

        changed = True
        while changed:  # least fixpoint: a recursion only helps once something else reaches
            changed = False
            for (t, r), rel in self._relations.items():
                if not reach[(t, r)] and rw_reaches(t, rel, rel.rewrite):
                    reach[(t, r)] = True
                    changed = True
        return reach


    # -- OpenFGA's recursive resolvers ---------------------------------------------------

    def _edges(self, t: str, r: str, start: parts.Rewrite | None = None) -> list[tuple[str, str]]:
        """Relation nodes one step away (userset restrictions, computed, tuple-to-userset).

        ``start``: only the edges under that node of the relation's rewrite.
        """
        rel = self._relations[(t, r)]
        out: list[tuple[str, str]] = []
        for node in parts.walk(rel.rewrite if start is None else start):
            if isinstance(node, parts.This):
                out.extend((x.type, x.relation) for x in rel.directly_related if x.relation)
            elif isinstance(node, parts.ComputedUserset):
                out.append((t, node.relation))
            elif isinstance(node, parts.TupleToUserset):
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
        for node in parts.walk(rel.rewrite):
            if isinstance(node, parts.This):
                for x in rel.directly_related:
                    if x.relation:
                        w = weights.get((x.type, x.relation))
                        sub = None if w is None else 1 + w
                        if user_key == f"{x.type}#{x.relation}":
                            sub = max(sub or 1, 1)
                        out.append(("userset", (x.type, x.relation), sub))
                    elif not x.wildcard:
                        out.append(("type", x.type, 1 if x.type == user_key else None))
            elif isinstance(node, parts.ComputedUserset):
                out.append(("computed", (t, node.relation), weights.get((t, node.relation))))
            elif isinstance(node, parts.TupleToUserset):
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
            for n in parts.walk(rel.rewrite):
                cands: list[float | None] = []
                if isinstance(n, parts.This):
                    for x in rel.directly_related:
                        if x.relation:
                            w = visit((x.type, x.relation))
                            sub = None if w is None else 1 + w
                            if user_key == f"{x.type}#{x.relation}":
                                sub = max(sub or 1, 1)
                            cands.append(sub)
                        elif not x.wildcard and x.type == user_key:
                            cands.append(1)
                elif isinstance(n, parts.ComputedUserset):
                    cands.append(visit((t, n.relation)))
                elif isinstance(n, parts.TupleToUserset):
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
        for node in parts.walk(self._relations[(t, r)].rewrite):
            if isinstance(node, (parts.Intersection, parts.Difference)):
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
                    and isinstance(self._relations[(x.type, x.relation)].rewrite, parts.This)
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
        members = rel.rewrite.members if isinstance(rel.rewrite, parts.Union) else (rel.rewrite,)
        seeds: list[str] = []
        recursive = False
        for m in members:
            if isinstance(m, parts.This):
                seeds.append(r)
            elif isinstance(m, parts.TupleToUserset) and (m.tupleset, m.computed) == (tupleset, r) and not recursive:
                recursive = True
            elif isinstance(m, parts.ComputedUserset) and isinstance(
                self._relations[(t, m.relation)].rewrite, parts.This
            ):
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
        members = rel.rewrite.members if isinstance(rel.rewrite, parts.Union) else (rel.rewrite,)
        seeds = [r]
        for m in members:
            if isinstance(m, parts.This):
                continue
            if isinstance(m, parts.ComputedUserset):
                other = self._relations[(t, m.relation)]
                if isinstance(other.rewrite, parts.This) and not any(x.relation for x in other.directly_related):
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

