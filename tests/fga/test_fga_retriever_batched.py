"""The embedded engine's batched answers agree with ``check``, object by object.

``EmbeddedAuthorizer.check_objects`` (answers without records) and ``allowed_objects`` (the
allowed set; for large batches it walks the user's side of the graph first and checks only
the objects met there) against one ``check`` per object, on random models and tuple sets
(cycles, conditions, wildcards, intersections and exclusions), with the walk forced on, off
and over budget; and the retriever's answers-only path against its records path.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_agent_auth.core.errors import AuthorizationError, ModelError
from langchain_agent_auth.fga import EmbeddedAuthorizer, FGARetriever, _batch
from langchain_agent_auth.fga._engine import Resolver
from tests.fga._differential import GENERATORS, make_cases
from tests.fga.test_fga_differential import RELATIONS, random_model, random_tuples

USERS = ["user:u1", "user:u2", "user:u3", "user:*", "team:a#member", "folder:b#r1", "doc:a#r0"]
CONTEXTS: list[dict[str, Any] | None] = [None, {"x": 3}, {"x": 15}, {"x": 5, "region": "eu"}]
OBJECTS = [f"{t}:{i}" for t in ("doc", "folder") for i in ("a", "b", "c", "zz")] + ["doc:*", "nope"]


def _random_authorizer(rng: random.Random, n: int) -> EmbeddedAuthorizer:
    while True:  # some random models are invalid (a relation without entrypoints)
        try:
            fga = EmbeddedAuthorizer(random_model(rng))
        except ModelError:
            continue
        fga.write(random_tuples(rng, fga.model, n))
        return fga


def _one_by_one(fga: EmbeddedAuthorizer, user: str, relation: str, objects: list[str], **request: Any) -> list[Any]:
    out: list[Any] = []
    for obj in objects:
        try:
            out.append(fga.check(user, relation, obj, **request))
        except AuthorizationError as exc:
            out.append(type(exc))
    return out


def _agree(fga: EmbeddedAuthorizer, user: str, relation: str, objects: list[str], **request: Any) -> None:
    want = _one_by_one(fga, user, relation, objects, **request)
    answers = fga.check_objects(user, relation, objects, **request)
    assert [a if isinstance(a, bool) else type(a) for a in answers] == want, (user, relation, request)
    allowed = {obj for obj, answer in zip(objects, want, strict=True) if answer is True}
    assert fga.allowed_objects(user, relation, objects, **request) == allowed, (user, relation, request)


@pytest.mark.parametrize("walk", ["always", "never", "over budget"])
@pytest.mark.parametrize("seed", range(12))
def test_batched_answers_match_check_on_random_models(monkeypatch: pytest.MonkeyPatch, seed: int, walk: str) -> None:
    monkeypatch.setattr(_batch, "WALK_FROM", 10**9 if walk == "never" else 0)
    if walk == "over budget":
        monkeypatch.setattr(_batch, "WALK_BUDGET", 0)
    rng = random.Random(seed)
    fga = _random_authorizer(rng, rng.randint(8, 30))
    extra = random_tuples(rng, fga.model, 6)  # contextual tuples: on top of the store, conditions and all
    for i in range(16):
        contextual = [t for t in extra if rng.random() < 0.5] if i % 2 else None
        _agree(fga, rng.choice(USERS), rng.choice(RELATIONS), OBJECTS, context=rng.choice(CONTEXTS),
               contextual_tuples=contextual)


@pytest.mark.parametrize("category", sorted(GENERATORS))
def test_batched_answers_match_check_in_every_differential_category(
    monkeypatch: pytest.MonkeyPatch, category: str
) -> None:
    monkeypatch.setattr(_batch, "WALK_FROM", 0)
    for case in make_cases(range(10), [category]):
        fga = EmbeddedAuthorizer(case.model)
        fga.write(case.test_file()["tuples"])
        objects = sorted({o for _, _, o, _ in case.checks} | {t["object"] for t in case.tuples})
        for user, relation, _, context in case.checks:
            _agree(fga, user, relation, objects, context=context or None)


def test_a_walk_over_budget_falls_back_to_checking_every_object(monkeypatch: pytest.MonkeyPatch) -> None:
    fga = EmbeddedAuthorizer("model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n")
    fga.write([("user:anne", "viewer", f"doc:{i}") for i in range(300)])
    objects = [f"doc:{i}" for i in range(0, 600, 3)]
    walked: list[int | None] = []
    real = Resolver.candidates

    def spy(self: Any, *args: Any, max_tuples: int | None = None) -> Any:
        walked.append(max_tuples)
        return real(self, *args, max_tuples=max_tuples)

    monkeypatch.setattr(Resolver, "candidates", spy)
    assert fga.allowed_objects("user:anne", "viewer", objects) == {o for o in objects if int(o[4:]) < 300}
    assert walked == [2 * len(objects)]  # walked (within budget) ...
    monkeypatch.setattr(_batch, "WALK_BUDGET", 1)  # ... and over it: 300 tuples > 200
    assert fga.allowed_objects("user:anne", "viewer", objects) == {o for o in objects if int(o[4:]) < 300}


def test_records_are_built_only_when_something_reads_them() -> None:
    fga = EmbeddedAuthorizer("model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n")
    fga.write([("user:anne", "viewer", "doc:a")])
    objects = ["doc:a", "doc:b"] * 50
    assert fga.allowed_objects("user:anne", "viewer", objects) == {"doc:a"}
    seen: list[Any] = []
    fga.on_decision = seen.append
    assert fga.allowed_objects("user:anne", "viewer", objects) == {"doc:a"}
    assert len(seen) == 100 and {(d.object, d.allowed) for d in seen} == {("doc:a", True), ("doc:b", False)}
    assert fga.check_objects("user:anne", "viewer", ["doc:a", "bad object"])[1].code == 2000
    assert seen[-1].error and not seen[-1].allowed


class _Static(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return list(self.docs)


@pytest.mark.parametrize("seed", range(6))
async def test_the_retrievers_answers_only_path_keeps_what_its_records_path_keeps(seed: int) -> None:
    rng = random.Random(seed)
    fga = _random_authorizer(rng, 30)
    docs = [Document(f"{i}", metadata={"id": rng.choice(["a", "b", "c", "zz"])}) for i in range(100)]
    for user in USERS[:3]:
        for relation in RELATIONS:
            r = FGARetriever(retriever=_Static(docs=docs), authorizer=fga, user=user, relation=relation,
                             object_type="doc", context={"x": 3})
            kept, _ = r.retrieve_with_decisions("q")
            assert r.invoke("q") == kept and await r.ainvoke("q") == kept
