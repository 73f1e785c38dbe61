"""The embedded authorizer: the engine, a tuple store and a model, in process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_agent_auth.core.errors import (
    AuthorizationError,
    ConfigurationError,
    ModelError,
    TupleError,
)
from langchain_agent_auth.fga._batch import Batch, who
from langchain_agent_auth.fga._engine import (
    DEFAULT_MAX_CONTEXTUAL_TUPLES,
    DEFAULT_MAX_DEPTH,
    Resolver,
    validate_check,
    validate_context,
    validate_query_user,
    validate_tuple,
)
from langchain_agent_auth.fga._model import AuthorizationModel
from langchain_agent_auth.fga._store import MemoryTupleStore, SQLiteTupleStore, TupleStore
from langchain_agent_auth.fga._tuple import TupleKey, coerce_tuples, is_valid_relation
from langchain_agent_auth.fga._types import (
    AuthorizationDecision,
    CheckRequest,
    Context,
    DecisionSink,
    Tuples,
    coerce_check,
    coerce_user_filter,
    decisions_wanted,
    record_decision,
)

__all__ = ["EmbeddedAuthorizer", "coerce_model"]


def coerce_model(model: AuthorizationModel | str | Mapping[str, Any] | Path) -> AuthorizationModel:
    """A model from an :class:`AuthorizationModel`, DSL text, JSON (text or dict) or a file path."""
    if isinstance(model, AuthorizationModel):
        return model
    if isinstance(model, Path):
        from langchain_agent_auth.fga._dsl import load_model_file

        return load_model_file(model)
    if isinstance(model, Mapping):
        return AuthorizationModel.from_json(model)
    if isinstance(model, str):
        text = model.lstrip()
        if text.startswith("{"):
            return AuthorizationModel.from_json(model)
        return AuthorizationModel.from_dsl(model)
    raise ModelError(f"cannot build a model from {type(model).__name__}")


class EmbeddedAuthorizer:
    """OpenFGA-compatible authorization in process: no server, no network.

    Holds a tuple store (in memory by default, or :class:`SQLiteTupleStore`) and the
    model to evaluate against. Writes are validated against the model; every check
    produces a :class:`AuthorizationDecision` for the ``on_decision`` sinks.

    Example:
        >>> fga = EmbeddedAuthorizer('''
        ... model
        ...   schema 1.1
        ... type user
        ... type folder
        ...   relations
        ...     define viewer: [user]
        ... type document
        ...   relations
        ...     define parent: [folder]
        ...     define viewer: [user] or viewer from parent
        ... ''')
        >>> fga.write([("folder:f", "parent", "document:1"), ("user:anne", "viewer", "folder:f")])
        >>> fga.check("user:anne", "viewer", "document:1"), fga.check("user:bob", "viewer", "document:1")
        (True, False)
        >>> fga.list_objects("user:anne", "viewer", "document")
        ['document:1']
    """

    backend = "embedded"
    _eager_cycles = False  # see Resolver: reproduces OpenFGA's other race outcome (tests only)

    def __init__(
        self,
        model: AuthorizationModel | str | Mapping[str, Any] | Path | None = None,
        store: TupleStore | None = None,
        *,
        model_id: str | None = None,
        on_decision: DecisionSink | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_contextual_tuples: int = DEFAULT_MAX_CONTEXTUAL_TUPLES,
        max_batch_size: int = 10_000,
    ) -> None:
        self.store: TupleStore = store if store is not None else MemoryTupleStore()
        self.on_decision = on_decision
        self.max_depth = max_depth
        self.max_contextual_tuples = max_contextual_tuples
        self.max_batch_size = max_batch_size
        self._lock = threading.Lock()
        self._models: dict[str, AuthorizationModel] = {}
        if model is not None:
            parsed = coerce_model(model)
            latest = self.store.read_model()
            if latest is not None and AuthorizationModel.from_json(latest.model_json) == parsed:
                self._use(latest.id, parsed)
            else:
                self.write_model(parsed)
        else:
            stored = self.store.read_model(model_id)
            if stored is None:
                raise ConfigurationError(
                    "no authorization model: pass one, or use a store that has one written",
                    hint="Authorization is not configured.",
                )
            self._use(stored.id, AuthorizationModel.from_json(stored.model_json, id=stored.id))

    @classmethod
    def from_files(
        cls, model_path: str | Path, store_path: str | Path | None = None, **kwargs: Any
    ) -> EmbeddedAuthorizer:
        """A model file (``.fga``, ``.json``, ``fga.mod``) over a SQLite file (or in memory)."""
        store = SQLiteTupleStore(store_path) if store_path else None
        return cls(Path(model_path), store, **kwargs)

    @classmethod
    def from_store_file(
        cls, path: str | Path, store_path: str | Path | None = None, **kwargs: Any
    ) -> EmbeddedAuthorizer:
        """The model and tuples of an OpenFGA store file (``.fga.yaml``, the format of
        ``fga model test`` / ``fga store import``), in memory or over a SQLite file.

        The file's ``tests`` are not run here (``agent-auth fga test`` runs them). Over a
        SQLite file already holding the tuples, they are not written twice. Raises
        ``ConfigurationError`` (``ModelError`` for the model) as :func:`load_store_file`.

        Example:
            >>> import pathlib, tempfile
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> _ = (folder / "model.fga").write_text('''
            ... model
            ...   schema 1.1
            ... type user
            ... type doc
            ...   relations
            ...     define viewer: [user]
            ... ''')
            >>> _ = (folder / "store.fga.yaml").write_text('''
            ... model_file: ./model.fga
            ... tuples:
            ...   - {user: "user:anne", relation: viewer, object: "doc:1"}
            ... ''')
            >>> fga = EmbeddedAuthorizer.from_store_file(folder / "store.fga.yaml")
            >>> fga.check("user:anne", "viewer", "doc:1"), fga.check("user:bob", "viewer", "doc:1")
            (True, False)
        """
        from langchain_agent_auth.fga._storefile import load_store_file, write_tuples

        loaded = load_store_file(path)
        store = SQLiteTupleStore(store_path) if store_path else None
        auth = cls(loaded.model, store, **kwargs)
        write_tuples(auth, loaded.tuples, on_duplicate="ignore")
        return auth

    def __repr__(self) -> str:
        return f"EmbeddedAuthorizer(model_id={self.model_id!r}, store={self.store!r})"

    # -- models ---------------------------------------------------------------------------

    def _use(self, model_id: str, model: AuthorizationModel) -> None:
        model.id = model_id
        self._models[model_id] = model
        self.model = model
        self.model_id = model_id

    def write_model(self, model: AuthorizationModel | str | Mapping[str, Any] | Path) -> str:
        """Validate and store a model; later checks use it. Returns its id."""
        parsed = coerce_model(model)
        with self._lock:
            model_id = self.store.write_model(json.dumps(parsed.to_json(), sort_keys=True))
            self._use(model_id, parsed)
        return model_id

    def get_model(self, model_id: str | None = None) -> AuthorizationModel:
        """The current model, or a stored one by id."""
        if model_id is None or model_id == self.model_id:
            return self.model
        hit = self._models.get(model_id)
        if hit is None:
            stored = self.store.read_model(model_id)
            if stored is None:
                raise AuthorizationError(f"authorization model '{model_id}' not found", code=2001)
            hit = AuthorizationModel.from_json(stored.model_json, id=stored.id)
            self._models[model_id] = hit
        return hit

    # -- writes --------------------------------------------------------------------------------

    def write(
        self,
        writes: Iterable[Any] = (),
        deletes: Iterable[Any] = (),
        *,
        on_duplicate: str = "error",
        on_missing: str = "error",
        model_id: str | None = None,
    ) -> None:
        """Validate against the model, then write and delete atomically.

        Raises :class:`TupleError` (and writes nothing) if any tuple is invalid, duplicated
        in the request, already stored (``on_duplicate="ignore"`` to skip) or, for deletes,
        missing (``on_missing="ignore"``).
        """
        model = self.get_model(model_id)
        w = coerce_tuples(writes)
        d = coerce_tuples(deletes)
        if on_duplicate not in ("error", "ignore") or on_missing not in ("error", "ignore"):
            raise ConfigurationError("on_duplicate / on_missing must be 'error' or 'ignore'")
        seen: set[tuple[str, str, str]] = set()
        for t in w:
            validate_tuple(model, t)
            if t.key in seen:
                raise TupleError(f"duplicate tuple in one write request: {t}", code=2004)
            seen.add(t.key)
        seen_d: set[tuple[str, str, str]] = set()
        for t in d:
            if t.key in seen_d:
                raise TupleError(f"duplicate tuple in one delete request: {t}", code=2004)
            seen_d.add(t.key)
            validate_tuple(model, TupleKey(t.user, t.relation, t.object), check_context=False)
        if seen & seen_d:
            raise TupleError("a tuple cannot be written and deleted in the same request", code=2004)
        self.store.write(w, d, on_duplicate=on_duplicate, on_missing=on_missing)

    def delete(self, tuples: Iterable[Any], *, on_missing: str = "error") -> None:
        """Delete tuples (validated like writes)."""
        self.write((), tuples, on_missing=on_missing)

    async def awrite(self, writes: Iterable[Any] = (), deletes: Iterable[Any] = (), **kwargs: Any) -> None:
        """Async :meth:`write`."""
        await asyncio.to_thread(self.write, list(writes), list(deletes), **kwargs)

    async def adelete(self, tuples: Iterable[Any], **kwargs: Any) -> None:
        """Async :meth:`delete`."""
        await asyncio.to_thread(self.delete, list(tuples), **kwargs)

    def read(
        self, object: str | None = None, relation: str | None = None, user: str | None = None
    ) -> Iterator[TupleKey]:
        """Stored tuples matching a filter (``object`` may be ``"type:"`` for a whole type)."""
        token = None
        while True:
            page, token = self.store.read(object, relation, user, page_size=1000, continuation_token=token)
            for t, _ in page:
                yield t
            if not token:
                return

    # -- queries ---------------------------------------------------------------------------------

    def _snapshot(self) -> contextlib.AbstractContextManager[None]:
        snapshot = getattr(self.store, "read_snapshot", None)
        return snapshot() if snapshot is not None else contextlib.nullcontext()

    def _contextual(
        self, model: AuthorizationModel, contextual_tuples: Sequence[Any] | None
    ) -> list[TupleKey]:
        tuples = coerce_tuples(contextual_tuples)
        if len(tuples) > self.max_contextual_tuples:
            raise TupleError(
                f"{len(tuples)} contextual tuples, more than the limit of {self.max_contextual_tuples}",
                code=2000,
            )
        unique: dict[tuple[str, str, str], TupleKey] = {}
        for t in tuples:
            validate_tuple(model, t, code=2027)
            unique[t.key] = t
        return list(unique.values())

    def _resolver(
        self,
        model: AuthorizationModel,
        context: Context,
        contextual_tuples: Tuples,
    ) -> Resolver:
        return Resolver(
            model,
            self.store,
            contextual_tuples=self._contextual(model, contextual_tuples),
            context=validate_context(context),
            max_depth=self.max_depth,
            eager_cycles=self._eager_cycles,
        )

    def check(self, user: str, relation: str, object: str, *, context: Context = None, contextual_tuples: Tuples = None,
              model_id: str | None = None, on_decision: DecisionSink | None = None) -> bool:
        """Whether ``user`` has ``relation`` on ``object``.

        Raises a typed :class:`AuthorizationError` (with OpenFGA's error code) when the
        request is invalid or the check cannot be answered (missing condition context,
        depth limit); the decision record is emitted either way.
        """
        started = time.perf_counter()
        try:
            model = self.get_model(model_id)
            validate_check(model, user, relation, object)
            resolver = self._resolver(model, context, contextual_tuples)
            with self._snapshot():
                allowed = resolver.check(object, relation, user)
        except AuthorizationError as exc:
            self._decide(user, relation, object, False, started, exc, None, on_decision)
            raise
        self._decide(user, relation, object, allowed, started, None, None, on_decision)
        return allowed

    def _decide(self, user: str, relation: str, obj: str, allowed: bool, started: float, exc: BaseException | None,
                correlation_id: str | None, on_decision: DecisionSink | None) -> AuthorizationDecision:
        return record_decision(self.backend, user, relation, obj, allowed, started, exc, correlation_id,
                               (self.on_decision, on_decision))

    def _batch(
        self,
        size: int,
        model_id: str | None,
        context: Context,
        contextual_tuples: Tuples,
    ) -> Batch:
        if size > self.max_batch_size:
            raise TupleError(f"{size} checks in one batch, more than {self.max_batch_size}", code=2000)
        return Batch(self.get_model(model_id), self._resolver, context, contextual_tuples)

    def batch_check(self, checks: Sequence[Any], *, context: Context = None, contextual_tuples: Tuples = None,
                    model_id: str | None = None,
                    on_decision: DecisionSink | None = None) -> list[AuthorizationDecision]:
        """Many checks in one call, sharing work; one :class:`AuthorizationDecision` per check, in order.

        An item that cannot be answered is a denial whose decision carries the error.
        """
        items = list(checks)
        batch = self._batch(len(items), model_id, context, contextual_tuples)
        out: list[AuthorizationDecision] = []
        with self._snapshot():
            for raw in items:
                started = time.perf_counter()
                req: CheckRequest | None = None
                exc: AuthorizationError | None = None
                try:
                    req = coerce_check(raw)
                    allowed = batch.answer(req.user, req.relation, req.object, req.context, req.contextual_tuples)
                except AuthorizationError as error:
                    allowed, exc = False, error
                correlation_id = req.correlation_id if req else None
                out.append(self._decide(*who(req, raw), allowed, started, exc, correlation_id, on_decision))
        return out

    def check_objects(self, user: str, relation: str, objects: Sequence[str], *, context: Context = None,
                      contextual_tuples: Tuples = None, model_id: str | None = None,
                      on_decision: DecisionSink | None = None) -> list[bool | AuthorizationError]:
        """``batch_check`` of one user and relation over many objects, answers only.

        One answer per object, in order: ``True``, ``False``, or the :class:`AuthorizationError`
        that kept it from being answered (a denial: fail closed). The same answers as
        :meth:`batch_check`; decision records are built only when something reads them (an
        ``on_decision`` sink or the audit trail), so filtering many documents costs little more
        than resolving them.

        Example:
            >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype doc\\n"
            ...                          "  relations\\n    define viewer: [user]\\n")
            >>> fga.write([("user:anne", "viewer", "doc:a")])
            >>> fga.check_objects("user:anne", "viewer", ["doc:a", "doc:b", "doc:*"])[:2]
            [True, False]
        """
        objects = [str(o) for o in objects]
        user, relation = str(user), str(relation)
        batch = self._batch(len(objects), model_id, context, contextual_tuples)
        record = decisions_wanted((self.on_decision, on_decision))
        out: list[bool | AuthorizationError] = []
        with self._snapshot():
            for obj in objects:
                started = time.perf_counter()
                try:
                    out.append(batch.answer(user, relation, obj))
                except AuthorizationError as exc:
                    out.append(exc)
                if record:
                    error = out[-1] if isinstance(out[-1], AuthorizationError) else None
                    self._decide(user, relation, obj, out[-1] is True, started, error, None, on_decision)
        return out

    def allowed_objects(self, user: str, relation: str, objects: Sequence[str], *, context: Context = None,
                        contextual_tuples: Tuples = None, model_id: str | None = None) -> set[str]:
        """The objects among ``objects`` on which ``user`` has ``relation``: exactly those
        :meth:`check` allows (an object whose check cannot be answered is left out: fail closed).

        For a large batch it first walks the user's side of the graph once (the objects the
        user could reach, as ``list_objects`` does), within a budget of tuples, and checks only
        the objects met there; over budget, or when the walk meets an error, it checks every
        object. With an ``on_decision`` sink or the audit trail listening it answers through
        :meth:`check_objects`, so every object gets its decision record.

        Example:
            >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype doc\\n"
            ...                          "  relations\\n    define viewer: [user]\\n")
            >>> fga.write([("user:anne", "viewer", "doc:a")])
            >>> sorted(fga.allowed_objects("user:anne", "viewer", ["doc:a", "doc:b", "nope"]))
            ['doc:a']
        """
        objects = [str(o) for o in objects]
        user, relation = str(user), str(relation)
        if decisions_wanted((self.on_decision,)):
            answers = self.check_objects(user, relation, objects, context=context,
                                         contextual_tuples=contextual_tuples, model_id=model_id)
            return {obj for obj, answer in zip(objects, answers, strict=True) if answer is True}
        batch = self._batch(len(objects), model_id, context, contextual_tuples)
        with self._snapshot():
            return batch.allowed(user, relation, objects)

    def list_objects(self, user: str, relation: str, type: str, *, context: Context = None,
                     contextual_tuples: Tuples = None, model_id: str | None = None,
                     max_results: int | None = None) -> list[str]:
        """Objects of ``type`` on which ``user`` has ``relation`` (sorted)."""
        model = self.get_model(model_id)
        if not model.has_type(type):
            raise TupleError(f"type '{type}' is not defined in the model", code=2021)
        if not is_valid_relation(relation) or model.relation(type, relation) is None:
            raise TupleError(f"relation '{type}#{relation}' is not defined in the model", code=2022)
        validate_query_user(model, user)
        resolver = self._resolver(model, context, contextual_tuples)
        with self._snapshot():
            return resolver.list_objects(user, type, relation, max_results=max_results)

    def list_users(self, object: str, relation: str, user_filter: Any, *, context: Context = None,
                   contextual_tuples: Tuples = None, model_id: str | None = None) -> list[str]:
        """Users (of the filter's type, or usersets ``type#relation``) with ``relation`` on ``object``.

        A public wildcard comes back as ``type:*``.
        """
        model = self.get_model(model_id)
        filters = list(user_filter) if isinstance(user_filter, (list, tuple)) else [user_filter]
        if len(filters) != 1:
            raise TupleError("list_users takes exactly one user filter", code=2000)
        contextual = self._contextual(model, contextual_tuples)
        uf = coerce_user_filter(filters[0])
        if not model.has_type(uf.type):
            raise TupleError(f"type '{uf.type}' is not defined in the model", code=2021)
        if uf.relation and model.relation(uf.type, uf.relation) is None:
            raise TupleError(f"relation '{uf.type}#{uf.relation}' is not defined in the model", code=2022)
        otype, _, oid = str(object).partition(":")
        if not oid or "#" in object or not model.has_type(otype):
            raise TupleError(f"type of object {object!r} is not defined in the model", code=2021)
        if not is_valid_relation(relation) or model.relation(otype, relation) is None:
            raise TupleError(f"relation '{otype}#{relation}' is not defined in the model", code=2022)
        resolver = self._resolver(model, context, contextual)
        with self._snapshot():
            return resolver.list_users(object, relation, uf.type, uf.relation)

    # -- async -------------------------------------------------------------------------------------

    def _inline(self) -> bool:
        return isinstance(self.store, MemoryTupleStore)

    async def acheck(self, user: str, relation: str, object: str, **kwargs: Any) -> bool:
        """Async :meth:`check` (a SQLite store runs in a worker thread)."""
        if self._inline():
            return self.check(user, relation, object, **kwargs)
        return await asyncio.to_thread(self.check, user, relation, object, **kwargs)

    async def abatch_check(self, checks: Sequence[Any], **kwargs: Any) -> list[AuthorizationDecision]:
        """Async :meth:`batch_check`."""
        if self._inline() and len(checks) <= 100:
            return self.batch_check(checks, **kwargs)
        return await asyncio.to_thread(self.batch_check, list(checks), **kwargs)

    async def acheck_objects(
        self, user: str, relation: str, objects: Sequence[str], **kwargs: Any
    ) -> list[bool | AuthorizationError]:
        """Async :meth:`check_objects` (in a worker thread unless small and in memory)."""
        if self._inline() and len(objects) <= 100:
            return self.check_objects(user, relation, objects, **kwargs)
        return await asyncio.to_thread(self.check_objects, user, relation, list(objects), **kwargs)

    async def aallowed_objects(self, user: str, relation: str, objects: Sequence[str], **kwargs: Any) -> set[str]:
        """Async :meth:`allowed_objects` (in a worker thread unless small and in memory)."""
        if self._inline() and len(objects) <= 100:
            return self.allowed_objects(user, relation, objects, **kwargs)
        return await asyncio.to_thread(self.allowed_objects, user, relation, list(objects), **kwargs)

    async def alist_objects(self, user: str, relation: str, type: str, **kwargs: Any) -> list[str]:
        """Async :meth:`list_objects` (in a worker thread)."""
        return await asyncio.to_thread(self.list_objects, user, relation, type, **kwargs)

    async def alist_users(self, object: str, relation: str, user_filter: Any, **kwargs: Any) -> list[str]:
        """Async :meth:`list_users` (in a worker thread)."""
        return await asyncio.to_thread(self.list_users, object, relation, user_filter, **kwargs)
