"""One batch of checks on the embedded engine: the work its items share.

:class:`Batch` validates each (user, relation, object type) once, builds one resolver (its
memo and cached reads) for every item without a context of its own, and, for a large batch
of one user's objects, walks the user's side of the graph once (``list_objects``'
candidates, within a budget of tuples) so that only the objects met there need a check.
``EmbeddedAuthorizer.batch_check``, ``check_objects`` and ``allowed_objects`` run on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_agent_auth.core.errors import AuthorizationError
from langchain_agent_auth.fga._engine import Resolver, validate_check
from langchain_agent_auth.fga._model import AuthorizationModel
from langchain_agent_auth.fga._tuple import is_valid_object
from langchain_agent_auth.fga._types import CheckRequest, Context, Tuples

__all__ = ["WALK_BUDGET", "WALK_FROM", "Batch", "who"]

# The walk runs from this many objects on (below, checking each is cheap), and gives up
# (checking every object instead) after reading WALK_BUDGET tuples per object.
WALK_FROM = 64
WALK_BUDGET = 2

ResolverFactory = Callable[[AuthorizationModel, Context, Tuples], Resolver]


class Batch:
    """The checks of one batch request, sharing validation, a resolver and the user's walk.

    Example:
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype doc\\n"
        ...                          "  relations\\n    define viewer: [user]\\n")
        >>> fga.write([("user:anne", "viewer", "doc:a")])
        >>> batch = Batch(fga.model, fga._resolver, None, None)
        >>> batch.answer("user:anne", "viewer", "doc:a"), batch.answer("user:anne", "viewer", "doc:b")
        (True, False)
    """

    __slots__ = ("_make", "_shared", "context", "contextual_tuples", "model", "validated")

    def __init__(self, model: AuthorizationModel, make_resolver: ResolverFactory, context: Context,
                 contextual_tuples: Tuples) -> None:
        self.model = model
        self._make = make_resolver
        self.context = context
        self.contextual_tuples = contextual_tuples
        self.validated: set[tuple[str, str, str]] = set()
        self._shared: Resolver | AuthorizationError | None = None

    def answer(
        self, user: str, relation: str, obj: str, context: Context = None, contextual_tuples: Tuples = None
    ) -> bool:
        """Whether ``user`` has ``relation`` on ``obj`` (raises :class:`AuthorizationError`).

        ``context`` / ``contextual_tuples``: the item's own, merged over the batch's.
        """
        seen = (user, relation, obj.partition(":")[0])
        if seen not in self.validated or not is_valid_object(obj) or obj.endswith(":*"):
            validate_check(self.model, user, relation, obj)
            self.validated.add(seen)
        if context is None and contextual_tuples is None:
            resolver = self.shared()
        else:
            merged = {**(self.context or {}), **(context or {})}
            extra = list(self.contextual_tuples or ()) + list(contextual_tuples or ())
            resolver = self._make(self.model, merged, extra)
        return resolver.check(obj, relation, user)

    def shared(self) -> Resolver:
        """The resolver of the batch's own context (built once; raises what building it raised)."""
        resolver = self._shared
        if resolver is None:
            try:
                resolver = self._make(self.model, self.context, self.contextual_tuples)
            except AuthorizationError as exc:
                resolver = exc
            self._shared = resolver
        if isinstance(resolver, AuthorizationError):
            raise resolver
        return resolver

    def allowed(self, user: str, relation: str, objects: Sequence[str]) -> set[str]:
        """The objects among ``objects`` that ``check`` allows (errors leave an object out)."""
        reachable = self.reachable(user, relation, objects)
        allowed: set[str] = set()
        if reachable is not None:
            return self._allowed_among(user, relation, [o for o in objects if o in reachable])
        for obj in objects:
            try:
                if self.answer(user, relation, obj):
                    allowed.add(obj)
            except AuthorizationError:
                continue
        return allowed

    def _allowed_among(self, user: str, relation: str, objects: Sequence[str]) -> set[str]:
        """:meth:`allowed` for objects the walk met: each is the object of a stored or
        contextual tuple (so well formed, never a wildcard), and the request was validated by
        the walk, so after one validated answer per type the shared resolver checks the rest."""
        allowed: set[str] = set()
        check = None
        for obj in objects:
            try:
                if check is None or (user, relation, obj.partition(":")[0]) not in self.validated:
                    ok = self.answer(user, relation, obj)
                    check = self.shared().check
                else:
                    ok = check(obj, relation, user)
            except AuthorizationError:
                continue
            if ok:
                allowed.add(obj)
        return allowed

    def reachable(self, user: str, relation: str, objects: Sequence[str]) -> set[str] | None:
        """The objects the user could have ``relation`` on, of the types in ``objects`` (a
        superset of those ``check`` allows), or ``None`` when every object must be checked."""
        if len(objects) < WALK_FROM:
            return None
        found: set[str] = set()
        try:
            resolver = self.shared()
            for otype in {obj.partition(":")[0] for obj in objects}:
                candidates, error = resolver.candidates(user, otype, relation, max_tuples=WALK_BUDGET * len(objects))
                if error is not None:
                    return None
                found |= candidates
        except Exception:  # over budget, an invalid request, anything: check every object instead
            return None
        return found


def who(req: CheckRequest | None, raw: Any) -> tuple[str, str, str]:
    """The (user, relation, object) to record for a batch item, even one that is not a check."""
    if req is not None:
        return req.user, req.relation, req.object
    if isinstance(raw, Mapping):
        return str(raw.get("user", "")), str(raw.get("relation", "")), str(raw.get("object", ""))
    if isinstance(raw, (tuple, list)) and len(raw) == 3:
        return str(raw[0]), str(raw[1]), str(raw[2])
    return "", "", ""
