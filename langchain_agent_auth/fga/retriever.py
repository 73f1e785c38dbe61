"""A retriever that keeps only the documents the user may see.

:class:`FGARetriever` wraps any ``BaseRetriever``. For each query it retrieves, builds an
FGA object per document (``<object_type>:<metadata[id_key]>`` by default, or a callable),
and sends **one** ``batch_check`` for the distinct objects: never one call per document,
never keyed by ``doc.id`` (documents without ids do not collapse; duplicates are kept as
they came). It works the same sync and async, over any :class:`Authorizer`.

It fails closed: with no user, or when the authorizer fails, it returns no documents and
records why (``on_decision`` and :meth:`FGARetriever.retrieve_with_decisions`);
``raise_on_error=True`` raises instead.

Optionally it pre-filters: ``prefilter`` receives the ids ``list_objects`` allows and
returns search kwargs for the wrapped vector-store retriever (a metadata filter), so the
store only returns candidates the user may see; the post-filter still runs.

Example:
    >>> from langchain_core.documents import Document
    >>> from langchain_core.retrievers import BaseRetriever
    >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
    >>> from langchain_agent_auth.identity import UserIdentity
    >>> class Static(BaseRetriever):
    ...     docs: list
    ...     def _get_relevant_documents(self, query, *, run_manager):
    ...         return self.docs
    >>> fga = EmbeddedAuthorizer("model\\n  schema 1.1\\ntype user\\ntype doc\\n"
    ...                          "  relations\\n    define viewer: [user]\\n")
    >>> fga.write([("user:anne", "viewer", "doc:a")])
    >>> docs = [Document("A", metadata={"id": "a"}), Document("B", metadata={"id": "b"}), Document("?")]
    >>> r = FGARetriever(retriever=Static(docs=docs), authorizer=fga, object_type="doc",
    ...                  user=UserIdentity(subject="anne"))
    >>> [d.page_content for d in r.invoke("q")]
    ['A']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from langchain_agent_auth.errors import AgentAuthError, AuthorizationError, IdentityError
from langchain_agent_auth.fga._tuple import is_valid_object, split_user
from langchain_agent_auth.fga._types import AuthorizationDecision, DecisionSink, emit, error_text
from langchain_agent_auth.fga.guard import fga_user
from langchain_agent_auth.identity import UserIdentity, get_current_user

__all__ = ["FGARetriever"]

logger = logging.getLogger("langchain_agent_auth.fga")


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
        prefilter: ``ids -> search kwargs`` for the wrapped vector-store retriever.
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
    prefilter: Callable[[list[str]], Mapping[str, Any]] | None = None
    on_decision: DecisionSink | None = None
    raise_on_error: bool = False
    max_documents: int = Field(default=10_000, gt=0)

    # -- plain helpers (sync and async differ only by await) --------------------------------

    def _user(self) -> str:
        user = self.user if self.user is not None else get_current_user(required=False)
        if user is None:
            raise IdentityError("no trusted user identity for this retrieval")
        text = fga_user(user) if isinstance(user, UserIdentity) else str(user)
        split_user(text)
        return text

    def _object(self, doc: Document) -> str | None:
        if self.object_for is not None:
            obj = self.object_for(doc)
        else:
            raw = (doc.metadata or {}).get(self.id_key)
            if raw is None or isinstance(raw, bool) or not isinstance(raw, (str, int)) or str(raw) == "":
                return None
            obj = f"{self.object_type}:{raw}"
        if not isinstance(obj, str) or not is_valid_object(obj) or obj.endswith(":*"):
            return None
        return obj

    def _plan(self, docs: Sequence[Document]) -> tuple[list[str | None], list[str]]:
        if len(docs) > self.max_documents:
            raise AuthorizationError(f"{len(docs)} documents to filter, more than {self.max_documents}")
        objects = [self._object(d) for d in docs]
        unique = list(dict.fromkeys(o for o in objects if o is not None))
        return objects, unique

    def _denied_all(self, user: str, exc: BaseException, started: float) -> list[AuthorizationDecision]:
        decision = AuthorizationDecision(
            user=user,
            relation=self.relation,
            object=f"{self.object_type}:*",
            allowed=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            backend=getattr(self.authorizer, "backend", "unknown"),
            error=error_text(exc),
            error_code=getattr(exc, "code", None),
        )
        emit((self.on_decision,), decision)
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
        decisions: Sequence[AuthorizationDecision],
        user: str,
        started: float,
    ) -> tuple[list[Document], list[AuthorizationDecision]]:
        allowed = {d.object for d in decisions if d.allowed and d.error is None}
        kept = [doc for doc, obj in zip(docs, objects, strict=True) if obj is not None and obj in allowed]
        records = list(decisions)
        missing = sum(1 for o in objects if o is None)
        if missing:
            records.append(
                AuthorizationDecision(
                    user=user,
                    relation=self.relation,
                    object="",
                    allowed=False,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    backend=getattr(self.authorizer, "backend", "unknown"),
                    error=f"{missing} document(s) without a usable id were dropped",
                )
            )
        for d in records:
            emit((self.on_decision,), d)
        failed = [d for d in decisions if d.error]
        if failed and self.raise_on_error:
            raise AuthorizationError(f"{len(failed)} check(s) failed: {failed[0].error}")
        return kept, records

    def _check_batch(self, user: str, unique: list[str]) -> list[tuple[str, str, str]]:
        return [(user, self.relation, obj) for obj in unique]

    def _search_kwargs(self, ids: list[str]) -> dict[str, Any]:
        assert self.prefilter is not None
        return dict(self.prefilter(ids))

    # -- sync ----------------------------------------------------------------------------------

    def retrieve_with_decisions(
        self, query: str, **kwargs: Any
    ) -> tuple[list[Document], list[AuthorizationDecision]]:
        """Like ``invoke`` but also returns the decision records of this query."""
        started = time.perf_counter()
        user = ""
        try:
            user = self._user()
            docs = self._retrieve(query, user, kwargs.get("callbacks"))
            objects, unique = self._plan(docs)
            decisions = (
                self.authorizer.batch_check(self._check_batch(user, unique), context=self.context)
                if unique
                else []
            )
        except Exception as exc:
            return [], self._denied_all(user, exc, started)
        return self._filter(docs, objects, decisions, user, started)

    def _retrieve(self, query: str, user: str, callbacks: Any) -> list[Document]:
        config = {"callbacks": callbacks} if callbacks is not None else None
        if self.prefilter is None:
            return list(self.retriever.invoke(query, config=config))
        ids = self.authorizer.list_objects(user, self.relation, self.object_type, context=self.context)
        return list(self._prefiltered(ids).invoke(query, config=config))

    def _prefiltered(self, objects: list[str]) -> BaseRetriever:
        ids = [o.partition(":")[2] for o in objects]
        extra = self._search_kwargs(ids)
        current = dict(getattr(self.retriever, "search_kwargs", {}) or {})
        if not hasattr(self.retriever, "search_kwargs"):
            raise AuthorizationError(
                "prefilter needs a retriever with search_kwargs (a vector-store retriever)"
            )
        return self.retriever.model_copy(update={"search_kwargs": {**current, **extra}})

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        docs, _ = self.retrieve_with_decisions(query, callbacks=run_manager.get_child())
        return docs

    # -- async ---------------------------------------------------------------------------------

    async def aretrieve_with_decisions(
        self, query: str, **kwargs: Any
    ) -> tuple[list[Document], list[AuthorizationDecision]]:
        """Async :meth:`retrieve_with_decisions`."""
        started = time.perf_counter()
        user = ""
        try:
            user = self._user()
            config = {"callbacks": kwargs["callbacks"]} if kwargs.get("callbacks") is not None else None
            if self.prefilter is None:
                docs = list(await self.retriever.ainvoke(query, config=config))
            else:
                ids = await self.authorizer.alist_objects(
                    user, self.relation, self.object_type, context=self.context
                )
                docs = list(await self._prefiltered(ids).ainvoke(query, config=config))
            objects, unique = self._plan(docs)
            decisions = (
                (await self.authorizer.abatch_check(self._check_batch(user, unique), context=self.context))
                if unique
                else []
            )
        except Exception as exc:
            return [], self._denied_all(user, exc, started)
        return self._filter(docs, objects, decisions, user, started)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        docs, _ = await self.aretrieve_with_decisions(query, callbacks=run_manager.get_child())
        return docs
