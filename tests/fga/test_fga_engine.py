"""The embedded engine over both stores: semantics, conditions, limits, bad input, decisions, async."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from langchain_agent_auth.core.errors import (
    AuthorizationError,
    ConditionError,
    ConfigurationError,
    ModelError,
    ResolutionDepthError,
    TupleError,
)
from langchain_agent_auth.fga import (
    AuthorizationDecision,
    AuthorizationModel,
    CheckRequest,
    EmbeddedAuthorizer,
    MemoryTupleStore,
    SQLiteTupleStore,
    TupleKey,
)
from tests.fga._fga_support import DOCS_MODEL

TUPLES = [
    ("user:anne", "member", "group:eng"),
    ("group:eng#member", "member", "group:all"),
    ("group:all#member", "viewer", "folder:root"),
    ("folder:root", "parent", "folder:projects"),
    ("folder:projects", "parent", "document:plan"),
    ("user:bob", "owner", "document:plan"),
    ("user:carol", "viewer", "document:plan"),
    ("user:carol", "blocked", "document:plan"),
    ("user:*", "viewer", "document:public"),
    ("user:dave", "editor", "document:plan"),
]


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def fga(request: pytest.FixtureRequest, tmp_path: Path) -> EmbeddedAuthorizer:
    if request.param == "memory":
        store = MemoryTupleStore()
    elif request.param == "sqlite-memory":
        store = SQLiteTupleStore(":memory:")
    else:
        store = SQLiteTupleStore(tmp_path / "fga.sqlite")
    auth = EmbeddedAuthorizer(DOCS_MODEL, store)
    auth.write(TUPLES)
    return auth


def test_check_semantics(fga: EmbeddedAuthorizer) -> None:
    assert fga.check("user:anne", "viewer", "document:plan")  # nested groups, folder ttu, 2 levels
    assert fga.check("user:bob", "viewer", "document:plan")  # owner
    assert not fga.check("user:carol", "viewer", "document:plan")  # blocked
    assert fga.check("user:anyone", "viewer", "document:public")  # wildcard
    assert fga.check("user:*", "viewer", "document:public")
    assert not fga.check("user:anyone", "viewer", "document:plan")
    assert not fga.check("user:dave", "editor", "document:plan")  # intersection: editor and viewer
    assert fga.check("group:eng#member", "viewer", "document:plan")  # a userset as the user
    assert fga.check("folder:root#viewer", "viewer", "folder:root")  # self-defining userset


def test_list_objects_and_users(fga: EmbeddedAuthorizer) -> None:
    assert fga.list_objects("user:anne", "viewer", "document") == ["document:plan", "document:public"]
    assert fga.list_objects("user:carol", "viewer", "document") == ["document:public"]
    assert fga.list_objects("user:anne", "viewer", "folder") == ["folder:projects", "folder:root"]
    assert fga.list_users("document:plan", "viewer", "user") == ["user:anne", "user:bob"]
    assert fga.list_users("document:public", "viewer", "user") == ["user:*"]
    assert fga.list_users("folder:root", "viewer", "group#member") == ["group:all#member", "group:eng#member"]
    folder_filter = {"type": "folder", "relation": "viewer"}
    assert fga.list_users("folder:root", "viewer", folder_filter) == ["folder:root#viewer"]
    for obj in fga.list_objects("user:anne", "viewer", "document"):
        assert fga.check("user:anne", "viewer", obj)


def test_conditions_tuple_context_wins_and_missing_context_is_an_error(fga: EmbeddedAuthorizer) -> None:
    fga.write(
        [
            {
                "user": "user:erin",
                "relation": "viewer",
                "object": "document:memo",
                "condition": {"name": "in_hours"},
            },
            {
                "user": "user:finn",
                "relation": "viewer",
                "object": "document:memo",
                "condition": {"name": "in_hours", "context": {"hour": 3}},
            },
        ]
    )
    assert fga.check("user:erin", "viewer", "document:memo", context={"hour": 10})
    assert not fga.check("user:erin", "viewer", "document:memo", context={"hour": 20})
    assert not fga.check("user:finn", "viewer", "document:memo", context={"hour": 10})  # tuple's 3 wins
    with pytest.raises(ConditionError, match=r"missing parameters \['hour'\]") as info:
        fga.check("user:erin", "viewer", "document:memo")
    assert info.value.code == 2000 and "more context" in info.value.for_model()
    with pytest.raises(ConditionError, match="failed to convert"):
        fga.check("user:erin", "viewer", "document:memo", context={"hour": "noon"})
    assert fga.list_objects("user:erin", "viewer", "document", context={"hour": 9}) == [
        "document:memo",
        "document:public",
    ]
    with pytest.raises(ConditionError):
        fga.list_users("document:memo", "viewer", "user")
    assert fga.list_users("document:memo", "viewer", "user", context={"hour": 12}) == ["user:erin"]


def test_contextual_tuples_extend_the_store_for_one_request(fga: EmbeddedAuthorizer) -> None:
    ctx = [("user:zed", "member", "group:eng")]
    assert fga.check("user:zed", "viewer", "document:plan", contextual_tuples=ctx)
    assert not fga.check("user:zed", "viewer", "document:plan")
    assert fga.list_objects("user:zed", "viewer", "folder", contextual_tuples=ctx) == [
        "folder:projects",
        "folder:root",
    ]
    with pytest.raises(TupleError, match="not an allowed type restriction") as info:
        fga.check(
            "user:zed", "viewer", "document:plan", contextual_tuples=[("group:eng", "member", "group:x")]
        )
    assert info.value.code == 2027
    with pytest.raises(TupleError, match="contextual tuples, more than the limit") as info:
        fga.check(
            "user:zed",
            "viewer",
            "document:plan",
            contextual_tuples=[(f"user:u{i}", "viewer", "document:x") for i in range(101)],
        )


@pytest.mark.parametrize(
    "user,relation,obj,code",
    [
        ("user:anne", "viewer", "nope:1", 2000),
        ("user:anne", "nope", "document:1", 2000),
        ("ghost:1", "viewer", "document:1", 2000),
        ("a:b:c", "viewer", "document:1", 2000),
        ("user:anne", "viewer", "document:*", 2000),
        ("user:anne", "viewer", "document", 2000),
        ("user:anne#member", "viewer", "document:1", 2000),
        ("group:eng#nope", "viewer", "document:1", 2000),
        ("user:with space", "viewer", "document:1", 2000),
        ("user:" + "x" * 600, "viewer", "document:1", 2000),
    ],
)
def test_invalid_checks_are_typed_errors(
    fga: EmbeddedAuthorizer, user: str, relation: str, obj: str, code: int
) -> None:
    with pytest.raises(TupleError) as info:
        fga.check(user, relation, obj)
    assert info.value.code == code


def test_invalid_list_requests_use_openfgas_codes(fga: EmbeddedAuthorizer) -> None:
    with pytest.raises(TupleError) as info:
        fga.list_objects("user:anne", "viewer", "nope")
    assert info.value.code == 2021
    with pytest.raises(TupleError) as info:
        fga.list_objects("user:anne", "nope", "document")
    assert info.value.code == 2022
    with pytest.raises(TupleError) as info:
        fga.list_users("document:plan", "viewer", "ghost")
    assert info.value.code == 2021
    with pytest.raises(TupleError) as info:
        fga.list_users("document:plan", "viewer", ["user", "group#member"])
    assert info.value.code == 2000


@pytest.mark.parametrize(
    "bad",
    [
        ("user:x", "viewer", "nope:1"),
        ("user:x", "nope", "document:1"),
        ("ghost:x", "viewer", "document:1"),
        ("group:eng", "viewer", "document:1"),  # type restriction wants group#member
        ("folder:a#viewer", "parent", "document:1"),  # tupleset relations take objects only
        ("user:*", "parent", "document:1"),
        ("user:x", "viewer", "document:*"),
        ("document:1#viewer", "viewer", "document:1"),  # implicit tuple
        {"user": "user:x", "relation": "viewer", "object": "document:1", "condition": {"name": "nope"}},
        {
            "user": "user:x",
            "relation": "viewer",
            "object": "document:1",
            "condition": {"name": "in_hours", "context": {"minute": 1}},
        },
        {
            "user": "user:x",
            "relation": "viewer",
            "object": "document:1",
            "condition": {"name": "in_hours", "context": {"hour": "nine"}},
        },
        {"user": "user:x", "relation": "owner", "object": "document:1", "condition": {"name": "in_hours"}},
        ("", "viewer", "document:1"),
        42,
    ],
)
def test_invalid_writes_leave_the_store_unchanged(fga: EmbeddedAuthorizer, bad: object) -> None:
    before = sorted(str(t) for t in fga.read())
    with pytest.raises(TupleError):
        fga.write([("user:new", "viewer", "document:ok"), bad])
    assert sorted(str(t) for t in fga.read()) == before


def test_write_rules(fga: EmbeddedAuthorizer) -> None:
    with pytest.raises(TupleError, match="already exists"):
        fga.write([TUPLES[0]])
    fga.write([TUPLES[0]], on_duplicate="ignore")
    with pytest.raises(TupleError, match="duplicate tuple in one write"):
        fga.write([("user:q", "viewer", "document:q"), ("user:q", "viewer", "document:q")])
    with pytest.raises(TupleError, match="does not exist"):
        fga.delete([("user:nobody", "viewer", "document:plan")])
    fga.delete([("user:nobody", "viewer", "document:plan")], on_missing="ignore")
    fga.delete([("user:bob", "owner", "document:plan")])
    assert not fga.check("user:bob", "viewer", "document:plan")
    fga.write([("user:bob", "owner", "document:plan")], [("user:carol", "blocked", "document:plan")])
    assert fga.check("user:carol", "viewer", "document:plan")
    page, token = fga.store.read("document:", page_size=2)
    assert len(page) == 2 and token
    rest, _ = fga.store.read("document:", page_size=100, continuation_token=token)
    assert {str(t) for t, _ in page}.isdisjoint(str(t) for t, _ in rest)
    with pytest.raises(AuthorizationError, match="continuation token"):
        fga.store.read(continuation_token="garbage!")


def test_batch_check_is_ordered_and_fails_per_item(fga: EmbeddedAuthorizer) -> None:
    sink: list[AuthorizationDecision] = []
    results = fga.batch_check(
        [
            ("user:anne", "viewer", "document:plan"),
            CheckRequest("user:carol", "viewer", "document:plan"),
            {"user": "user:anne", "relation": "nope", "object": "document:plan"},
            {
                "user": "user:erin",
                "relation": "viewer",
                "object": "document:plan",
                "correlation_id": "c4",
                "contextual_tuples": [("user:erin", "owner", "document:plan")],
            },
            "garbage",
        ],
        on_decision=sink.append,
    )
    assert [d.allowed for d in results] == [True, False, False, True, False]
    assert results[2].error and results[2].error_code == 2000 and results[4].error
    assert results[3].correlation_id == "c4"
    assert sink == results and all(d.backend == "embedded" and d.latency_ms >= 0 for d in results)


def test_decisions_go_to_sinks_and_hold_no_context(fga: EmbeddedAuthorizer) -> None:
    seen: list[AuthorizationDecision] = []
    fga.on_decision = seen.append
    fga.check("user:anne", "viewer", "document:plan", context={"secret_hour": 3})
    with pytest.raises(TupleError):
        fga.check("user:anne", "viewer", "nope:1")
    assert [d.allowed for d in seen] == [True, False]
    assert seen[1].error.startswith("TupleError") and seen[1].error_code == 2000
    assert "secret_hour" not in json.dumps([d.to_dict() for d in seen])
    fga.on_decision = lambda d: 1 / 0  # a broken sink never breaks a check
    assert fga.check("user:anne", "viewer", "document:plan")


def test_cycles_terminate_and_depth_is_bounded() -> None:
    model = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type doc
  relations
    define viewer: [user, group#member] but not blocked
    define blocked: [user, doc#viewer]
"""
    fga = EmbeddedAuthorizer(model)
    chain = [(f"group:g{i + 1}#member", "member", f"group:g{i}") for i in range(200)]
    ring = [
        ("group:r1#member", "member", "group:r2"),
        ("group:r2#member", "member", "group:r3"),
        ("group:r3#member", "member", "group:r1"),
    ]
    fga.write(
        [
            *chain,
            *ring,
            ("user:deep", "member", "group:g200"),
            ("user:jon", "viewer", "doc:1"),
            ("doc:1#viewer", "blocked", "doc:1"),
        ]
    )
    assert fga.check("user:jon", "member", "group:r1") is False  # a data cycle: terminates
    fga.write([("user:jon", "member", "group:r3")])
    assert fga.check("user:jon", "member", "group:r1") and fga.check("user:jon", "member", "group:r2")
    assert fga.list_objects("user:jon", "member", "group") == ["group:r1", "group:r2", "group:r3"]
    assert fga.list_users("group:r2", "member", "user") == ["user:jon"]
    with pytest.raises(ResolutionDepthError) as info:
        fga.check("user:deep", "member", "group:g0")  # 200 levels: a typed error, no RecursionError
    assert info.value.code == 2002
    assert fga.check("user:deep", "member", "group:g190")
    assert not fga.check("user:jon", "viewer", "doc:1")  # viewer but not (blocked via viewer): cycle = no
    shallow = EmbeddedAuthorizer(model, max_depth=5)
    shallow.write([*chain[:10], ("user:x", "member", "group:g10")])
    with pytest.raises(ResolutionDepthError):
        shallow.check("user:x", "member", "group:g0")


def test_request_context_is_bounded_and_json(fga: EmbeddedAuthorizer) -> None:
    with pytest.raises(ConditionError, match="larger than"):
        fga.check("user:anne", "viewer", "document:plan", context={"blob": "x" * 70_000})
    with pytest.raises(ConditionError, match="not valid JSON"):
        fga.check("user:anne", "viewer", "document:plan", context={"x": float("nan")})
    with pytest.raises(ConditionError, match="mapping"):
        fga.check("user:anne", "viewer", "document:plan", context=["hour"])  # type: ignore[arg-type]


def test_models_are_versioned_in_the_store(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    first = EmbeddedAuthorizer(DOCS_MODEL, SQLiteTupleStore(path))
    first.write(TUPLES)
    reopened = EmbeddedAuthorizer(store=SQLiteTupleStore(path))
    assert reopened.model_id == first.model_id and reopened.check("user:anne", "viewer", "document:plan")
    same = EmbeddedAuthorizer(DOCS_MODEL, SQLiteTupleStore(path))
    assert same.model_id == first.model_id  # an unchanged model is not written again
    changed = DOCS_MODEL.replace(
        "define owner: [user]\n    define blocked", "define owner: [user, group#member]\n    define blocked"
    )
    new_id = reopened.write_model(changed)
    assert new_id != first.model_id and reopened.get_model(first.model_id).id == first.model_id
    with pytest.raises(AuthorizationError) as info:
        reopened.get_model("01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert info.value.code == 2001
    with pytest.raises(ConfigurationError, match="no authorization model"):
        EmbeddedAuthorizer(store=SQLiteTupleStore(tmp_path / "empty.sqlite"))
    with pytest.raises(ModelError):
        EmbeddedAuthorizer("model\n  schema 1.1\ntype doc\n  relations\n    define a: [nobody]\n")
    other_store = SQLiteTupleStore(path, store_id="other")
    assert other_store.count() == 0 and SQLiteTupleStore(path).count() == len(TUPLES)


def test_tuples_from_an_old_model_are_ignored_not_fatal() -> None:
    header = "model\n  schema 1.1\ntype user\ntype doc\n  relations\n"
    fga = EmbeddedAuthorizer(header + "    define viewer: [user, user:*]\n")
    fga.write([("user:*", "viewer", "doc:1"), ("user:a", "viewer", "doc:2")])
    fga.write_model(header + "    define viewer: [user]\n")
    assert not fga.check("user:b", "viewer", "doc:1")  # the wildcard tuple is no longer allowed
    assert fga.check("user:a", "viewer", "doc:2")
    assert fga.list_users("doc:1", "viewer", "user") == []


async def test_async_api_matches_sync(fga: EmbeddedAuthorizer) -> None:
    assert await fga.acheck("user:anne", "viewer", "document:plan")
    decisions = await fga.abatch_check(
        [("user:anne", "viewer", "document:plan"), ("user:carol", "viewer", "document:plan")]
    )
    assert [d.allowed for d in decisions] == [True, False]
    assert await fga.alist_objects("user:anne", "viewer", "document") == ["document:plan", "document:public"]
    assert await fga.alist_users("document:plan", "viewer", "user") == ["user:anne", "user:bob"]
    await fga.awrite([("user:new", "viewer", "document:n")])
    assert await fga.acheck("user:new", "viewer", "document:n")
    await fga.adelete([("user:new", "viewer", "document:n")])
    results = await asyncio.gather(*(fga.acheck("user:anne", "viewer", "document:plan") for _ in range(20)))
    assert all(results)


def test_tuple_key_shapes() -> None:
    t = TupleKey.from_dict(
        {"user": "user:a", "relation": "r", "object": "o:1", "condition": {"name": "c", "context": {"x": 1}}}
    )
    assert t.to_dict() == {
        "user": "user:a",
        "relation": "r",
        "object": "o:1",
        "condition": {"name": "c", "context": {"x": 1}},
    }
    assert t == TupleKey("user:a", "r", "o:1") and hash(t) == hash(TupleKey("user:a", "r", "o:1"))
    for bad in (
        {"user": 1, "relation": "r", "object": "o:1"},
        {"relation": "r"},
        {"user": "u:1", "relation": "r", "object": "o:1", "condition": 5},
    ):
        with pytest.raises(TupleError):
            TupleKey.from_dict(bad)  # type: ignore[arg-type]


def test_authorization_model_json_is_stable() -> None:
    m = AuthorizationModel.from_dsl(DOCS_MODEL)
    assert AuthorizationModel.from_json(m.to_json()).to_json() == m.to_json()


def test_pathological_models_are_typed_errors_not_crashes() -> None:
    def chain(n: int) -> str:
        lines = ["model", "  schema 1.1", "type user", "type doc", "  relations", "    define r0: [user]"]
        lines += [f"    define r{i}: r{i - 1}" for i in range(1, n)]
        return "\n".join(lines) + "\n"

    with pytest.raises(ModelError, match="nests too deeply"):
        EmbeddedAuthorizer(chain(1500))
    fga = EmbeddedAuthorizer(chain(250))
    fga.write([("user:a", "r0", "doc:1")])
    assert fga.check("user:a", "r10", "doc:1")
    for call in (
        lambda: fga.check("user:a", "r249", "doc:1"),
        lambda: fga.list_users("doc:1", "r249", "user"),
    ):
        try:
            call()
        except ResolutionDepthError as exc:
            assert exc.code == 2002
