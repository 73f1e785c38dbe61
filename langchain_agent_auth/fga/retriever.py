"""A retriever that keeps only the documents the user may see.

:class:`FGARetriever` wraps any ``BaseRetriever``. For each query it retrieves, builds an
FGA object per document (``<object_type>:<metadata[id_key]>`` by default, or a callable),
and sends **one** ``batch_check`` for the distinct objects: never one call per document,
never keyed by ``doc.id`` (documents without ids do not collapse; duplicates are kept as
they came). It works the same sync and async, over any :class:`Authorizer`.

It fails closed: with no user, or when the authorizer fails, it returns no documents and
records why (``on_decision`` and :meth:`FGARetriever.retrieve_with_decisions`);
``raise_on_error=True`` raises instead.

Optionally it filters before the search (``prefilter``): the objects ``list_objects``
allows become the wrapped vector-store retriever's metadata filter, so the store ranks
only what the user may see and the top k are k authorized documents (post-filtering keeps
fewer than k, and shows the search step documents the user may not see). ``"auto"`` picks
the shape: a filter function for LangChain's ``InMemoryVectorStore``, and
``{"filter": {id_key: {"$in": [...]}}}`` for other stores (the common shape); a callable
``ids -> search kwargs`` covers any other store. When the allowed set has
``prefilter_max`` objects or more (or comes back truncated at a server's cap), it
post-filters instead, with the search's ``k`` widened by ``prefilter_widen``. The allowed
set can be cached per user (``prefilter_ttl`` seconds, at most ``prefilter_cache_size``
entries). It fails closed throughout: a failed ``list_objects`` returns no documents, and
the post-filter check still runs on whatever the store returns.

Example (runnable ones on :class:`FGARetriever`)::

    r = FGARetriever(retriever=store.as_retriever(), authorizer=fga, user=identity)
    r.invoke("question")  # only the documents the user may view
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import AgentAuthError, AuthorizationError, ConfigurationError, IdentityError
from langchain_agent_auth.core.identity import UserIdentity, get_current_user
from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
from langchain_agent_auth.fga._integrations import fga_user
from langchain_agent_auth.fga._tuple import is_valid_object, split_user
from langchain_agent_auth.fga._types import AuthorizationDecision, DecisionSink, audit_decision, emit, error_text

__all__ = ["FGARetriever"]

logger = logging.getLogger("langchain_agent_auth.fga")

# What one authorization call gave: the allowed objects, the decision records (none when
# nobody reads them), and the error text of every check that could not be answered.
_Answers = tuple[set[str], list[AuthorizationDecision], list[str]]


class FGARetriever(BaseRetriever):
    """Filter another retriever's documents to those ``user`` has ``relation`` on.

    Attributes:
        retriever: the retriever to filter.
        authorizer: any :class:`Authorizer` (embedded or OpenFGA).
        relation: the relation a document needs (default ``"viewer"``).
        object_type: the FGA type of documents (default ``"document"``).
        id_key: the metadata key holding a document's id (default ``"id"``).
        object_for: a callable ``Document -> "type:id" | None`` replacing the two above.
        user: an explicit :class:`UserIdentity` or FGA user string; otherwise the current
            user from the identity pillar.
        prefilter: filter before the search: ``"auto"``, ``"function"`` (a ``Document -> bool``
            filter, LangChain's ``InMemoryVectorStore``), ``"in"`` (``{id_key: {"$in": ids}}``),
            or a callable ``ids -> search kwargs``; ``None`` (default) post-filters only.
        prefilter_max: from this many allowed objects on, post-filter instead (widened search).
        prefilter_widen: the factor on the search's ``k`` when falling back to post-filtering.
        prefilter_ttl: seconds to cache a user's allowed set (0, the default: no cache).
        prefilter_cache_size: the most allowed sets kept in that cache.
        on_decision: a sink for every :class:`AuthorizationDecision`.
        raise_on_error: raise instead of returning no documents when authorization fails.

    Example (order kept; a document without an id is dropped):
        >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
        >>> class Static(BaseRetriever):
        ...     docs: list
        ...     def _get_relevant_documents(self, query, *, run_manager):
        ...         return self.docs
        >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype document\\n"
        ...                          "  relations\\n    define viewer: [user, user:*]\\n")
        >>> fga.write([("user:*", "viewer", "document:faq")])
        >>> docs = [Document("FAQ", metadata={"id": "faq"}), Document("HR", metadata={"id": "hr"}),
        ...         Document("draft")]
        >>> r = FGARetriever(retriever=Static(docs=docs), authorizer=fga, user="user:bob")
        >>> kept, decisions = r.retrieve_with_decisions("question")
        >>> [d.page_content for d in kept], [(d.object, d.allowed) for d in decisions][:2]
        (['FAQ'], [('document:faq', True), ('document:hr', False)])
        >>> from langchain_agent_auth.identity import UserIdentity  # or the identity itself
        >>> fga.write([("user:anne", "viewer", "document:hr")])
        >>> anne = FGARetriever(retriever=Static(docs=docs), authorizer=fga, user=UserIdentity(subject="anne"))
        >>> [d.page_content for d in anne.invoke("question")]
        ['FAQ', 'HR']

    Example (pre-filter: the store only ranks what the user may see):
        >>> class Store(BaseRetriever):  # takes the common {"id": {"$in": [...]}} filter
        ...     docs: list
        ...     search_kwargs: dict = {}
        ...     def _get_relevant_documents(self, query, *, run_manager):
        ...         allowed = set(self.search_kwargs["filter"]["id"]["$in"])
        ...         return [d for d in self.docs if d.metadata.get("id") in allowed][: self.search_kwargs["k"]]
        >>> pre = FGARetriever(retriever=Store(docs=docs, search_kwargs={"k": 1}), authorizer=fga,
        ...                    user="user:bob", prefilter="auto", prefilter_ttl=60)
        >>> [d.page_content for d in pre.invoke("question")]
        ['FAQ']
        >>> pre.clear_prefilter_cache()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: BaseRetriever
    authorizer: Any
    relation: str = "viewer"
    object_type: str = "document"
    id_key: str = "id"
    object_for: Callable[[Document], str | None] | None = None
    user: UserIdentity | str | None = None
    context: Mapping[str, Any] | None = None
    prefilter: Literal["auto", "function", "in"] | Callable[[list[str]], Mapping[str, Any]] | None = None
    prefilter_max: int = Field(default=1000, gt=0)
    prefilter_widen: int = Field(default=4, ge=1)
    prefilter_ttl: float = Field(default=0.0, ge=0)
    prefilter_cache_size: int = Field(default=256, gt=0)
    on_decision: DecisionSink | None = None
    raise_on_error: bool = False
    max_documents: int = Field(default=10_000, gt=0)

    _allowed_cache: OrderedDict[str, tuple[float, tuple[str, ...]]] = PrivateAttr(default_factory=OrderedDict)
    _cache_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- plain helpers (sync and async differ only by await) --------------------------------

    def _user(self) -> str:
        user = self.user if self.user is not None else get_current_user(required=False)
        if user is None:
            raise IdentityError("no trusted user identity for this retrieval")
        text = fga_user(user) if isinstance(user, UserIdentity) else str(user)
        split_user(text)
        return text

    def _object(self, doc: Document) -> str | None:
        if self.object_for is None:
            return _object_from(doc.metadata, self.id_key, f"{self.object_type}:")
        obj = self.object_for(doc)
        if not isinstance(obj, str) or not is_valid_object(obj) or obj.endswith(":*"):
            return None
        return obj

    def _plan(self, docs: Sequence[Document]) -> tuple[list[str | None], list[str]]:
        if len(docs) > self.max_documents:
            raise AuthorizationError(f"{len(docs)} documents to filter, more than {self.max_documents}")
        if self.object_for is None:
            key, prefix = self.id_key, f"{self.object_type}:"
            objects = [_object_from(d.metadata, key, prefix) for d in docs]
        else:
            objects = [self._object(d) for d in docs]
        unique = list(dict.fromkeys(o for o in objects if o is not None))
        return objects, unique

    def _denial(
        self, user: str, obj: str, started: float, error: str, error_code: int | None = None
    ) -> AuthorizationDecision:
        """A record the retriever makes itself (no check behind it): a denial, and why."""
        return AuthorizationDecision(
            user=user,
            relation=self.relation,
            object=obj,
            allowed=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            backend=getattr(self.authorizer, "backend", "unknown"),
            error=error,
            error_code=error_code,
        )

    def _denied_all(self, user: str, exc: BaseException, started: float) -> list[AuthorizationDecision]:
        decision = self._denial(user, f"{self.object_type}:*", started, error_text(exc), getattr(exc, "code", None))
        emit((self.on_decision,), decision)
        audit_decision(decision)
        logger.warning("FGARetriever denied every document: %s", decision.error)
        if self.raise_on_error:
            if isinstance(exc, AgentAuthError):
                raise exc
            raise AuthorizationError(f"authorization failed: {error_text(exc)}") from exc
        return [decision]

    def _filter(
        self,
        docs: Sequence[Document],
        objects: list[str | None],
        answers: _Answers,
        user: str,
        started: float,
    ) -> tuple[list[Document], list[AuthorizationDecision]]:
        allowed, records, failures = answers
        kept = [doc for doc, obj in zip(docs, objects, strict=True) if obj is not None and obj in allowed]
        missing = sum(1 for o in objects if o is None)
        if missing:
            records.append(self._denial(user, "", started, f"{missing} document(s) without a usable id were dropped"))
            audit_decision(records[-1])  # the checks themselves were audited by the authorizer
        if self.on_decision is not None:
            for d in records:
                emit((self.on_decision,), d)
        if failures and self.raise_on_error:
            raise AuthorizationError(f"{len(failures)} check(s) failed: {failures[0]}")
        return kept, records

    def _check_batch(self, user: str, unique: list[str]) -> list[tuple[str, str, str]]:
        return [(user, self.relation, obj) for obj in unique]

    # -- pre-filter (plain helpers) -------------------------------------------------------------

    def _cache_key(self, user: str) -> str:
        # Per user, and per everything else that changes the answer: never shared across users.
        return json.dumps(
            [id(self.authorizer), user, self.relation, self.object_type, dict(self.context or {})],
            sort_keys=True,
            default=str,
        )

    def _cached_allowed(self, user: str) -> tuple[str, ...] | None:
        if not self.prefilter_ttl:
            return None
        key = self._cache_key(user)
        with self._cache_lock:
            hit = self._allowed_cache.get(key)
            if hit is None or hit[0] <= time.monotonic():
                self._allowed_cache.pop(key, None)
                return None
            self._allowed_cache.move_to_end(key)
            return hit[1]

    def _remember_allowed(self, user: str, objects: tuple[str, ...]) -> None:
        if not self.prefilter_ttl:
            return
        with self._cache_lock:
            self._allowed_cache[self._cache_key(user)] = (time.monotonic() + self.prefilter_ttl, objects)
            self._allowed_cache.move_to_end(self._cache_key(user))
            while len(self._allowed_cache) > self.prefilter_cache_size:
                self._allowed_cache.popitem(last=False)

    def clear_prefilter_cache(self) -> None:
        """Forget every cached allowed set (after writing tuples, for instance)."""
        with self._cache_lock:
            self._allowed_cache.clear()

    def _allowed_from(self, objects: Sequence[str]) -> tuple[str, ...]:
        prefix = f"{self.object_type}:"
        return tuple(dict.fromkeys(o for o in objects if isinstance(o, str) and o.startswith(prefix)))

    def _search_plan(self, objects: tuple[str, ...]) -> tuple[BaseRetriever, int | None]:
        """The retriever to search with, and the ``k`` to trim the kept documents to."""
        if not hasattr(self.retriever, "search_kwargs"):
            raise AuthorizationError("prefilter needs a retriever with search_kwargs (a vector-store retriever)")
        current = dict(getattr(self.retriever, "search_kwargs", {}) or {})
        if len(objects) >= self.prefilter_max:
            # Too many to send as a filter (or truncated at the server's cap): post-filter a
            # wider search, then keep the top k that pass.
            logger.info("FGARetriever: %d allowed objects, post-filtering instead", len(objects))
            k = current.get("k", 4)
            if isinstance(k, int) and not isinstance(k, bool) and self.prefilter_widen > 1:
                current["k"] = k * self.prefilter_widen
                return self.retriever.model_copy(update={"search_kwargs": current}), k
            return self.retriever, None
        extra = self._filter_kwargs(objects)
        return self.retriever.model_copy(update={"search_kwargs": {**current, **extra}}), None

    def _filter_kwargs(self, objects: tuple[str, ...]) -> dict[str, Any]:
        mode = self.prefilter
        if callable(mode):
            return dict(mode([o.partition(":")[2] for o in objects]))
        if mode == "auto":
            mode = "function" if _takes_filter_function(self.retriever) else "in"
        if mode == "function":
            if self.object_for is None:
                # Cheap per document (the store calls it for every one): the raw id against the
                # allowed ids. A looser match is still safe: the post-filter checks what it returns.
                ids = frozenset(o.partition(":")[2] for o in objects)
                key = self.id_key
                return {"filter": lambda doc: str((doc.metadata or {}).get(key)) in ids}
            allowed = frozenset(objects)
            return {"filter": lambda doc: self._object(doc) in allowed}
        if self.object_for is not None:
            raise ConfigurationError('prefilter="in" filters on metadata[id_key]; it cannot use object_for')
        return {"filter": {self.id_key: {"$in": [o.partition(":")[2] for o in objects]}}}

    # -- one flow, run sync (invoke) and async (ainvoke) ---------------------------------------

    def _flow(
        self, query: str, callbacks: Any, records: bool
    ) -> Flow[tuple[list[Document], list[AuthorizationDecision]]]:
        """Search (pre-filtered or not), then one authorization call for the distinct objects.

        ``records``: the caller wants every decision record back; otherwise the embedded
        engine answers without building records nobody reads (sinks and audit still get theirs).
        """
        started = time.perf_counter()
        user = ""
        try:
            user = self._user()
            config = {"callbacks": callbacks} if callbacks is not None else None
            search, k = self.retriever, None
            if self.prefilter is not None:
                search, k = self._search_plan((yield from self._allowed_set(user)))
            docs = list(
                (yield Call(lambda: search.invoke(query, config=config), lambda: search.ainvoke(query, config=config)))
            )
            objects, unique = self._plan(docs)
            answers = (yield from self._authorize(user, unique, records)) if unique else (set(), [], [])
        except Exception as exc:
            return [], self._denied_all(user, exc, started)
        kept, decisions = self._filter(docs, objects, answers, user, started)
        return (kept[:k] if k is not None else kept), decisions

    def _allowed_set(self, user: str) -> Flow[tuple[str, ...]]:
        """The objects ``list_objects`` allows ``user`` (from the cache while fresh)."""
        objects = self._cached_allowed(user)
        if objects is None:
            fga, args = self.authorizer, (user, self.relation, self.object_type)
            found = yield Call(
                lambda: fga.list_objects(*args, context=self.context),
                lambda: fga.alist_objects(*args, context=self.context),
            )
            objects = self._allowed_from(found)
            self._remember_allowed(user, objects)
        return objects

    def _authorize(self, user: str, unique: list[str], records: bool) -> Flow[_Answers]:
        """The allowed objects among ``unique``, the decision records, and the errors met."""
        fga = self.authorizer
        if not records and self.on_decision is None and isinstance(fga, EmbeddedAuthorizer):
            if not self.raise_on_error:  # only the allowed set matters: the engine may prune
                allowed = yield Call(
                    lambda: fga.allowed_objects(user, self.relation, unique, context=self.context),
                    lambda: fga.aallowed_objects(user, self.relation, unique, context=self.context),
                )
                return set(allowed), [], []
            answers = yield Call(
                lambda: fga.check_objects(user, self.relation, unique, context=self.context),
                lambda: fga.acheck_objects(user, self.relation, unique, context=self.context),
            )
            allowed = {obj for obj, answer in zip(unique, answers, strict=True) if answer is True}
            return allowed, [], [error_text(a) for a in answers if isinstance(a, BaseException)]
        checks = self._check_batch(user, unique)
        decisions = yield Call(
            lambda: fga.batch_check(checks, context=self.context),
            lambda: fga.abatch_check(checks, context=self.context),
        )
        allowed = {d.object for d in decisions if d.allowed and d.error is None}
        return allowed, list(decisions), [d.error for d in decisions if d.error]

    def retrieve_with_decisions(self, query: str, **kwargs: Any) -> tuple[list[Document], list[AuthorizationDecision]]:
        """Like ``invoke`` but also returns the decision records of this query."""
        return run(self._flow(query, kwargs.get("callbacks"), records=True))

    async def aretrieve_with_decisions(
        self, query: str, **kwargs: Any
    ) -> tuple[list[Document], list[AuthorizationDecision]]:
        """Async :meth:`retrieve_with_decisions`."""
        return await arun(self._flow(query, kwargs.get("callbacks"), records=True))

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return run(self._flow(query, run_manager.get_child(), records=False))[0]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return (await arun(self._flow(query, run_manager.get_child(), records=False)))[0]


def _object_from(metadata: Mapping[str, Any] | None, key: str, prefix: str) -> str | None:
    """``<prefix><metadata[key]>`` when that is a usable object (a non-empty str or int id)."""
    raw = metadata.get(key) if metadata else None
    if type(raw) is str:  # the common case first
        if not raw:
            return None
    elif raw is None or isinstance(raw, bool) or not isinstance(raw, (str, int)) or str(raw) == "":
        return None
    obj = f"{prefix}{raw}"
    return obj if is_valid_object(obj) and not obj.endswith(":*") else None


def _takes_filter_function(retriever: BaseRetriever) -> bool:
    """Whether the wrapped store's ``filter`` is a ``Document -> bool`` (LangChain's in-memory store)."""
    from langchain_core.vectorstores import InMemoryVectorStore

    return isinstance(getattr(retriever, "vectorstore", None), InMemoryVectorStore)
