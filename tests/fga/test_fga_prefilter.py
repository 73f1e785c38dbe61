"""FGARetriever pre-filter mode: the top k of what the user may see, in a real InMemoryVectorStore.

The property test compares the pre-filtered top k with brute force (rank every document,
keep those ``check`` allows, take k) over random tuple sets, users, queries and k.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_agent_auth.fga import EmbeddedAuthorizer, FGARetriever
from tests.fga.test_fga_retriever import Counting

MODEL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent
type document
  relations
    define parent: [folder]
    define blocked: [user]
    define viewer: ([user, user:*, group#member] or viewer from parent) but not blocked
"""
USERS = [f"user:u{i}" for i in range(5)]
WORDS = ["budget", "plan", "roadmap", "hiring", "launch", "audit", "memo", "draft", "notes", "review"]


class DollarInStore(InMemoryVectorStore):
    """A store that takes the common ``{"id": {"$in": [...]}}`` metadata filter (as Chroma, Pinecone... do)."""

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        spec = kwargs.pop("filter", None)
        if spec is not None:
            assert isinstance(spec, dict) and set(spec) == {"id"} and set(spec["id"]) == {"$in"}
            allowed = set(spec["id"]["$in"])
            kwargs["filter"] = lambda doc: doc.metadata.get("id") in allowed
        return super().similarity_search(query, k=k, **kwargs)


def _world(seed: int, store_cls: type[InMemoryVectorStore] = InMemoryVectorStore) -> tuple[Any, Any, list[str]]:
    rng = random.Random(seed)
    n = rng.randint(20, 60)
    texts = [" ".join(rng.choice(WORDS) for _ in range(3)) + f" #{i}" for i in range(n)]
    store = store_cls(DeterministicFakeEmbedding(size=16))
    store.add_documents([Document(t, metadata={"id": f"d{i}"}, id=f"d{i}") for i, t in enumerate(texts)])
    fga = EmbeddedAuthorizer(MODEL)
    rows = set()
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            rows.add((rng.choice(USERS), "viewer", f"document:d{i}"))
        elif r < 0.5:
            rows.add((f"folder:f{rng.randint(0, 3)}", "parent", f"document:d{i}"))
        elif r < 0.55:
            rows.add(("user:*", "viewer", f"document:d{i}"))
        elif r < 0.65:
            rows.add(("group:g#member", "viewer", f"document:d{i}"))
        if rng.random() < 0.1:
            rows.add((rng.choice(USERS), "blocked", f"document:d{i}"))
    for f in range(4):
        if rng.random() < 0.5:
            rows.add((rng.choice(USERS), "viewer", f"folder:f{f}"))
        if rng.random() < 0.3:
            rows.add((f"folder:f{f}", "parent", f"folder:f{(f + 1) % 4}"))
    for u in USERS:
        if rng.random() < 0.4:
            rows.add((u, "member", "group:g"))
    fga.write(sorted(rows))
    return store, fga, texts


def _brute_force(store: InMemoryVectorStore, fga: EmbeddedAuthorizer, user: str, query: str, k: int) -> list[str]:
    ranked = store.similarity_search(query, k=len(store.store))
    return [d.metadata["id"] for d in ranked if fga.check(user, "viewer", f"document:{d.metadata['id']}")][:k]


@pytest.mark.parametrize("seed", range(30))
def test_prefiltered_top_k_is_brute_force(seed: int) -> None:
    rng = random.Random(1000 + seed)
    store, fga, _ = _world(seed)
    for _ in range(4):
        user, k = rng.choice(USERS), rng.randint(1, 8)
        query = " ".join(rng.choice(WORDS) for _ in range(2))
        r = FGARetriever(
            retriever=store.as_retriever(search_kwargs={"k": k}),
            authorizer=fga,
            object_type="document",
            user=user,
            prefilter="auto",
        )
        expected = _brute_force(store, fga, user, query, k)
        assert [d.metadata["id"] for d in r.invoke(query)] == expected
        if seed % 5 == 0:
            assert [d.metadata["id"] for d in asyncio.run(r.ainvoke(query))] == expected


@pytest.mark.parametrize("seed", range(10))
def test_dollar_in_filter_shape_is_brute_force(seed: int) -> None:
    store, fga, _ = _world(seed, DollarInStore)
    for user in USERS[:3]:
        r = FGARetriever(
            retriever=store.as_retriever(search_kwargs={"k": 5}), authorizer=fga, user=user, prefilter="in"
        )
        assert [d.metadata["id"] for d in r.invoke("plan budget")] == _brute_force(store, fga, user, "plan budget", 5)


def test_auto_sends_the_dollar_in_shape_to_other_stores() -> None:
    seen: list[Any] = []

    class Other(BaseRetriever):
        search_kwargs: dict = {}

        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            seen.append(self.search_kwargs)
            return [Document("a", metadata={"id": "a"}), Document("b", metadata={"id": "b"})]

    fga = EmbeddedAuthorizer(MODEL)
    fga.write([("user:anne", "viewer", "document:a")])
    r = FGARetriever(retriever=Other(search_kwargs={"k": 2}), authorizer=fga, user="user:anne", prefilter="auto")
    assert [d.metadata["id"] for d in r.invoke("q")] == ["a"]
    assert seen == [{"k": 2, "filter": {"id": {"$in": ["a"]}}}]


def test_post_filter_returns_fewer_than_k_where_pre_filter_returns_k() -> None:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents([Document(f"doc {i}", metadata={"id": f"d{i}"}) for i in range(200)])
    fga = EmbeddedAuthorizer(MODEL)
    fga.write([("user:anne", "viewer", f"document:d{i}") for i in range(0, 200, 20)])
    kwargs: dict[str, Any] = {"authorizer": fga, "user": "user:anne"}
    post = FGARetriever(retriever=store.as_retriever(search_kwargs={"k": 5}), **kwargs)
    pre = FGARetriever(retriever=store.as_retriever(search_kwargs={"k": 5}), prefilter="auto", **kwargs)
    assert len(post.invoke("doc 3")) < 5
    got = pre.invoke("doc 3")
    assert len(got) == 5 and all(int(d.metadata["id"][1:]) % 20 == 0 for d in got)


def test_too_many_allowed_falls_back_to_a_widened_post_filter() -> None:
    store, fga, _ = _world(3)
    counting = Counting(fga)
    r = FGARetriever(
        retriever=store.as_retriever(search_kwargs={"k": 3}),
        authorizer=counting,
        user="user:u1",
        prefilter="auto",
        prefilter_max=1,
        prefilter_widen=5,
    )
    got = [d.metadata["id"] for d in r.invoke("memo")]
    widened = [d.metadata["id"] for d in store.similarity_search("memo", k=15)]
    expected = [i for i in widened if fga.check("user:u1", "viewer", f"document:{i}")][:3]
    assert got == expected and counting.calls == {"list_objects": 1, "batch_check": 1}


def test_fails_closed_when_list_objects_fails_and_checks_what_the_store_returns() -> None:
    store, fga, _ = _world(4)

    class Broken(Counting):
        def list_objects(self, *a: Any, **k: Any) -> Any:
            raise RuntimeError("down")

    r = FGARetriever(retriever=store.as_retriever(), authorizer=Broken(fga), user="user:u0", prefilter="auto")
    docs, decisions = r.retrieve_with_decisions("memo")
    assert docs == [] and "down" in (decisions[0].error or "")

    # A store that ignores the filter: the post-filter check still removes what the user may not see.
    class Ignoring(InMemoryVectorStore):
        def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
            kwargs.pop("filter", None)
            return super().similarity_search(query, k=k, **kwargs)

    leaky = Ignoring(DeterministicFakeEmbedding(size=16))
    leaky.add_documents([Document(f"doc {i}", metadata={"id": f"d{i}"}) for i in range(30)])
    fga2 = EmbeddedAuthorizer(MODEL)
    fga2.write([("user:anne", "viewer", "document:d1")])
    r = FGARetriever(
        retriever=leaky.as_retriever(search_kwargs={"k": 30}), authorizer=fga2, user="user:anne", prefilter="in"
    )
    assert [d.metadata["id"] for d in r.invoke("doc")] == ["d1"]


def test_in_shape_cannot_use_object_for_and_denies() -> None:
    store, fga, _ = _world(5)
    r = FGARetriever(
        retriever=store.as_retriever(),
        authorizer=fga,
        user="user:u0",
        prefilter="in",
        object_for=lambda d: f"document:{d.metadata['id']}",
    )
    docs, decisions = r.retrieve_with_decisions("memo")
    assert docs == [] and "object_for" in (decisions[0].error or "")


def test_allowed_set_cache_is_per_user_bounded_and_clearable() -> None:
    store, fga, _ = _world(6)
    counting = Counting(fga)
    r = FGARetriever(
        retriever=store.as_retriever(search_kwargs={"k": 4}),
        authorizer=counting,
        user="user:u0",
        prefilter="auto",
        prefilter_ttl=3600,
        prefilter_cache_size=1,
    )
    first = r.invoke("memo")
    assert r.invoke("memo") == first and counting.calls["list_objects"] == 1  # cached
    other = r.model_copy(update={"user": "user:u1"})
    other._allowed_cache = r._allowed_cache  # the same cache: another user must not reuse u0's set
    other.invoke("memo")
    assert counting.calls["list_objects"] == 2 and len(r._allowed_cache) == 1  # bounded: u0 evicted
    r.invoke("memo")
    assert counting.calls["list_objects"] == 3
    r.clear_prefilter_cache()
    r.invoke("memo")
    assert counting.calls["list_objects"] == 4
