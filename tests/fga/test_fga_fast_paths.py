"""The engine's shortcuts give the answers of the general path they skip.

``Resolver.resolve`` reads only the exact tuple for a relation of direct tuples alone
(``blocked: [user]``, the subtrahend of the retriever benchmark's ``but not blocked``): on
random models, tuple sets, contexts and users, and in every differential category, every
check answers (or fails) the same with the shortcut on and off.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from langchain_agent_auth.core.errors import AuthorizationError, ConditionError
from langchain_agent_auth.fga import EmbeddedAuthorizer, _engine
from tests.fga._differential import GENERATORS, make_cases
from tests.fga.test_fga_differential import RELATIONS
from tests.fga.test_fga_retriever_batched import CONTEXTS, OBJECTS, USERS, _random_authorizer


def _answers(fga: EmbeddedAuthorizer, checks: list[tuple[str, str, str, Any]]) -> list[Any]:
    out: list[Any] = []
    for user, relation, obj, context in checks:
        try:
            out.append(fga.check(user, relation, obj, context=context))
        except AuthorizationError as exc:
            out.append((type(exc), exc.message))
    return out


def _same_without_shortcut(monkeypatch: pytest.MonkeyPatch, fga: EmbeddedAuthorizer, checks: list[Any]) -> None:
    fast = _answers(fga, checks)
    with monkeypatch.context() as m:
        m.setattr(_engine, "_direct_only", lambda *_: False)
        assert _answers(fga, checks) == fast


@pytest.mark.parametrize("seed", range(12))
def test_the_exact_tuple_shortcut_answers_like_the_general_path(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    fga = _random_authorizer(rng, rng.randint(8, 30))
    checks = [(u, r, o, c) for u in USERS for r in RELATIONS for o in OBJECTS[:-2] for c in CONTEXTS[:2]]
    _same_without_shortcut(monkeypatch, fga, checks)


@pytest.mark.parametrize("category", sorted(GENERATORS))
def test_the_exact_tuple_shortcut_in_every_differential_category(
    monkeypatch: pytest.MonkeyPatch, category: str
) -> None:
    for case in make_cases(range(10), [category]):
        fga = EmbeddedAuthorizer(case.model)
        fga.write(case.test_file()["tuples"])
        _same_without_shortcut(monkeypatch, fga, [(u, r, o, c or None) for u, r, o, c in case.checks])


MODEL = """
model
  schema 1.1
type user
type doc
  relations
    define owner: [user]
    define blocked: [user, user with over]
    define viewer: owner but not blocked
condition over(x: int, limit: int) {
  x > limit
}
"""


def test_an_exclusion_of_direct_tuples_with_conditions() -> None:
    fga = EmbeddedAuthorizer(MODEL)
    fga.write([("user:anne", "owner", "doc:a"), ("user:bob", "owner", "doc:a"), ("user:carl", "owner", "doc:a"),
               ("user:bob", "blocked", "doc:a"), ("user:carl", "blocked", "doc:a", "over", {"limit": 5})])
    assert fga.check("user:anne", "viewer", "doc:a")
    assert not fga.check("user:bob", "viewer", "doc:a")
    assert fga.check("user:carl", "viewer", "doc:a", context={"x": 3})
    assert not fga.check("user:carl", "viewer", "doc:a", context={"x": 9})
    with pytest.raises(ConditionError):
        fga.check("user:carl", "viewer", "doc:a")
    objects = [f"doc:{c}" for c in "ab"] * 40
    assert fga.allowed_objects("user:anne", "viewer", objects) == {"doc:a"}
    assert fga.allowed_objects("user:carl", "viewer", objects, context={"x": 9}) == set()
