"""FGARetriever: one batch check per query, docs without ids, duplicates, async, fail closed, prefilter."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_agent_auth.core.errors import AuthorizationError, IdentityError
from langchain_agent_auth.fga import AuthorizationDecision, EmbeddedAuthorizer, FGARetriever
from langchain_agent_auth.identity import UserIdentity, acting_as
from tests.fga._fga_support import DOCS_MODEL

ANNE = UserIdentity(subject="anne")


class ListRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return list(self.docs)


class FilteringStoreRetriever(BaseRetriever):
    """Like a vector-store retriever: ``search_kwargs`` with ``k`` and a metadata ``filter``."""

    docs: list[Document]
    search_kwargs: dict = {}

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        keep = self.search_kwargs.get("filter") or (lambda doc: True)
        return [d for d in self.docs if keep(d)][: self.search_kwargs.get("k", 4)]


class Counting:
    """Wraps an authorizer and counts the calls the retriever makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


DOCS = [
    Document("spec v1", metadata={"id": "spec"}),
    Document("budget", metadata={"id": "budget"}),
    Document("no id at all"),
    Document("handbook", metadata={"id": "handbook"}),
    Document("spec chunk 2", metadata={"id": "spec"}),  # a duplicate object: both chunks kept
    Document("weird id", metadata={"id": "x#owner"}),
    Document("also no id", id=None),
]


def _texts(docs: list[Document]) -> list[str]:
    return [d.page_content for d in docs]


def test_filters_with_one_batch_check(authorizer: Any) -> None:
    counting = Counting(authorizer)
    sink: list[AuthorizationDecision] = []
    r = FGARetriever(
        retriever=ListRetriever(docs=DOCS), authorizer=counting, user=ANNE, on_decision=sink.append
    )
    assert _texts(r.invoke("q")) == ["spec v1", "handbook", "spec chunk 2"]
    assert counting.calls == {"batch_check": 1}
    checked = sorted(d.object for d in sink if d.object)
    assert checked == ["document:budget", "document:handbook", "document:spec"]  # distinct objects only
    assert any("without a usable id" in (d.error or "") for d in sink)


async def test_async_path(authorizer: Any) -> None:
    counting = Counting(authorizer)
    r = FGARetriever(retriever=ListRetriever(docs=DOCS), authorizer=counting, user=ANNE)
    assert _texts(await r.ainvoke("q")) == ["spec v1", "handbook", "spec chunk 2"]
    assert counting.calls == {"abatch_check": 1}


def test_user_from_the_identity_pillar_and_fail_closed(authorizer: Any) -> None:
    r = FGARetriever(retriever=ListRetriever(docs=DOCS), authorizer=authorizer)
    docs, decisions = r.retrieve_with_decisions("q")
    assert docs == [] and decisions[0].error.startswith("IdentityError")
    with acting_as(UserIdentity(subject="bob")):
        assert _texts(r.invoke("q")) == ["budget", "handbook"]
    strict = r.model_copy(update={"raise_on_error": True})
    with pytest.raises(IdentityError):
        strict.invoke("q")


async def test_authorizer_failures_deny_everything() -> None:
    class Broken:
        backend = "broken"

        def batch_check(self, *a: Any, **k: Any) -> Any:
            raise ConnectionError("down")

        async def abatch_check(self, *a: Any, **k: Any) -> Any:
            raise ConnectionError("down")

    sink: list[AuthorizationDecision] = []
    r = FGARetriever(
        retriever=ListRetriever(docs=DOCS), authorizer=Broken(), user=ANNE, on_decision=sink.append
    )
    assert r.invoke("q") == [] and await r.ainvoke("q") == []
    assert len(sink) == 2 and all(d.error.startswith("ConnectionError") and not d.allowed for d in sink)
    with pytest.raises(AuthorizationError, match="authorization failed"):
        r.model_copy(update={"raise_on_error": True}).invoke("q")


def test_item_errors_deny_the_item_only() -> None:
    fga = EmbeddedAuthorizer(DOCS_MODEL)
    fga.write(
        [
            ("user:anne", "viewer", "document:a"),
            {
                "user": "user:anne",
                "relation": "viewer",
                "object": "document:b",
                "condition": {"name": "in_hours"},
            },
        ]
    )
    docs = [Document("a", metadata={"id": "a"}), Document("b", metadata={"id": "b"})]
    r = FGARetriever(retriever=ListRetriever(docs=docs), authorizer=fga, user=ANNE)
    kept, decisions = r.retrieve_with_decisions("q")
    assert _texts(kept) == ["a"] and any(d.error and "missing" in d.error for d in decisions)
    with_context = r.model_copy(update={"context": {"hour": 10}})
    assert _texts(with_context.invoke("q")) == ["a", "b"]


def test_custom_object_mapping_and_explicit_user_string() -> None:
    fga = EmbeddedAuthorizer(DOCS_MODEL)
    fga.write([("user:anne", "viewer", "folder:f1")])
    docs = [Document("in f1", metadata={"folder": "f1"}), Document("in f2", metadata={"folder": "f2"})]
    r = FGARetriever(
        retriever=ListRetriever(docs=docs),
        authorizer=fga,
        user="user:anne",
        object_for=lambda d: f"folder:{d.metadata['folder']}",
    )
    assert _texts(r.invoke("q")) == ["in f1"]


def test_thousand_documents_one_call() -> None:
    fga = EmbeddedAuthorizer(DOCS_MODEL)
    fga.write([("user:anne", "viewer", f"document:d{i}") for i in range(0, 1000, 3)])
    docs = [Document(f"doc {i}", metadata={"id": f"d{i}"}) for i in range(1000)]
    counting = Counting(fga)
    r = FGARetriever(retriever=ListRetriever(docs=docs), authorizer=counting, user=ANNE)
    assert len(r.invoke("q")) == 334 and counting.calls == {"batch_check": 1}


def test_prefilter_turns_list_objects_into_a_metadata_filter(authorizer: Any) -> None:
    docs = [
        Document(f"text {i}", metadata={"id": name})
        for i, name in enumerate(["x", "budget", "spec", "handbook"])
    ]
    store = FilteringStoreRetriever(docs=docs, search_kwargs={"k": 2})
    counting = Counting(authorizer)
    r = FGARetriever(
        retriever=store,
        authorizer=counting,
        user=ANNE,
        prefilter=lambda ids: {"filter": lambda doc: doc.metadata["id"] in ids},
    )
    kept = r.invoke("text")
    assert sorted(d.metadata["id"] for d in kept) == [
        "handbook",
        "spec",
    ]  # k=2 after the filter: both allowed
    assert counting.calls == {"list_objects": 1, "batch_check": 1}
    plain = FGARetriever(
        retriever=ListRetriever(docs=DOCS), authorizer=authorizer, user=ANNE, prefilter=lambda ids: {}
    )
    docs, decisions = plain.retrieve_with_decisions("q")
    assert docs == [] and "search_kwargs" in decisions[0].error
