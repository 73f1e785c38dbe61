"""The modeling language: DSL <-> JSON, OpenFGA's validation rules, modules, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from langchain_agent_auth.core.errors import ModelError
from langchain_agent_auth.fga import AuthorizationModel, load_model_file
from langchain_agent_auth.fga._dsl import combine_modules, parse_dsl
from langchain_agent_auth.fga._dsl_print import print_dsl
from langchain_agent_auth.fga._model import normalise_model_json
from tests.fga import _fga_support as _support

HAS_FGA = _support.HAS_FGA
FGA = _support.FGA
CONFORMANCE = _support.CONFORMANCE

H = "model\n  schema 1.1\ntype user\n"
D = "type doc\n  relations\n"

FULL = """
model
  schema 1.1

type user

type group
  relations
    define member: [user, user:*, group#member, user with in_range]

type folder
  relations
    define owner: [user]
    define parent: [folder]
    define viewer: [user] or owner or viewer from parent

type document
  relations
    define parent: [folder]
    define blocked: [user]
    define editor: [user] and viewer
    define viewer: ([user, group#member] or viewer from parent) but not blocked
    define x: (editor and viewer) or blocked

condition in_range(x: int, allowed: list<string>, limits: map<int>, ip: ipaddress) {
  x < 10 && ip.in_cidr("10.0.0.0/8")
}
"""


def _conformance_models() -> list[str]:
    if CONFORMANCE is None:
        return []
    models = []
    for path in sorted(CONFORMANCE.glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            models.extend(stage["model"] for stage in test["stages"])
    return models


def test_dsl_to_json_has_openfgas_shape() -> None:
    m = parse_dsl(FULL)
    data = m.to_json()
    assert data["schema_version"] == "1.1"
    doc = next(t for t in data["type_definitions"] if t["type"] == "document")
    assert doc["relations"]["viewer"] == {
        "difference": {
            "base": {
                "union": {
                    "child": [
                        {"this": {}},
                        {
                            "tupleToUserset": {
                                "tupleset": {"relation": "parent"},
                                "computedUserset": {"relation": "viewer"},
                            }
                        },
                    ]
                }
            },
            "subtract": {"computedUserset": {"relation": "blocked"}},
        }
    }
    group = next(t for t in data["type_definitions"] if t["type"] == "group")
    assert group["metadata"]["relations"]["member"]["directly_related_user_types"] == [
        {"type": "user"},
        {"type": "user", "wildcard": {}},
        {"type": "group", "relation": "member"},
        {"type": "user", "condition": "in_range"},
    ]
    params = data["conditions"]["in_range"]["parameters"]
    assert params["allowed"] == {
        "type_name": "TYPE_NAME_LIST",
        "generic_types": [{"type_name": "TYPE_NAME_STRING"}],
    }
    assert params["ip"] == {"type_name": "TYPE_NAME_IPADDRESS"}


def test_round_trips() -> None:
    m = parse_dsl(FULL)
    assert parse_dsl(print_dsl(m)) == m
    assert AuthorizationModel.from_json(json.dumps(m.to_json())) == m
    assert AuthorizationModel.from_json({"authorization_model": m.to_json()}) == m
    assert "define viewer: ([user, group#member] or viewer from parent) but not blocked" in m.to_dsl()


@pytest.mark.skipif(not HAS_FGA, reason="fga binary not installed")
@pytest.mark.skipif(CONFORMANCE is None, reason="../shared is absent")
def test_every_conformance_model_transforms_like_openfga(tmp_path: Path) -> None:
    models = _conformance_models()
    assert len(models) == 186
    # One fga call per model is slow; check a spread of them (every 7th, plus the full model).
    for i, text in enumerate([*models[::7], FULL]):
        path = tmp_path / f"m{i}.fga"
        path.write_text(text)
        ref = json.loads(
            subprocess.run(
                [FGA, "model", "transform", "--file", str(path)], capture_output=True, text=True, check=True
            ).stdout
        )
        assert normalise_model_json(parse_dsl(text).to_json()) == normalise_model_json(ref), text
    for text in models:  # and every one round-trips through our printer
        m = parse_dsl(text)
        assert parse_dsl(print_dsl(m)) == m


def test_modules_combine_like_fga_mod(tmp_path: Path) -> None:
    (tmp_path / "core.fga").write_text(
        "module core\n\ntype user\n\ntype organization\n  relations\n"
        "    define member: [user]\n    define admin: [user]\n"
    )
    (tmp_path / "tracker.fga").write_text(
        "module issue-tracker\n\nextend type organization\n  relations\n"
        "    define can_create_project: admin\n\n"
        "type project\n  relations\n    define organization: [organization]\n"
        "    define viewer: [user with c] or member from organization\n\n"
        "condition c(x: int) {\n  x > 1\n}\n"
    )
    (tmp_path / "fga.mod").write_text("schema: '1.2'\ncontents:\n  - core.fga\n  - tracker.fga\n")
    m = load_model_file(tmp_path / "fga.mod")
    data = m.to_json()
    assert data["schema_version"] == "1.2"
    org = next(t for t in data["type_definitions"] if t["type"] == "organization")
    assert org["metadata"]["module"] == "core"
    assert org["metadata"]["relations"]["can_create_project"]["module"] == "issue-tracker"
    assert data["conditions"]["c"]["metadata"] == {
        "module": "issue-tracker",
        "source_info": {"file": "tracker.fga"},
    }
    if HAS_FGA:
        ref = json.loads(
            subprocess.run(
                [FGA, "model", "transform", "--file", str(tmp_path / "fga.mod")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert normalise_model_json(data) == normalise_model_json(ref)
    assert "# extended by: module: issue-tracker, file: tracker.fga" in m.to_dsl()
    with pytest.raises(ModelError, match="extends a type no module defines"):
        combine_modules([("a.fga", "module a\n\nextend type ghost\n  relations\n    define x: [ghost]\n")])


@pytest.mark.parametrize(
    "text,message,line,column",
    [
        ("model\n  schema 1.1\ntype doc\n  relations\n    define a: [user] or", "expected a relation", 5, 24),
        (H + "type doc\n  relations\n    define a [user]", "expected ':'", 6, 14),
        (
            H + "type doc\n  relations\n    define a: [user] or b and c\n"
            "    define b: [user]\n    define c: [user]",
            "cannot mix 'or' and 'and'",
            6,
            27,
        ),
        (
            H + "type doc\n  relations\n    define b: [user]\n    define a: b or [user]",
            "must come first",
            7,
            20,
        ),
        (H + "type doc\n  relations\n    define a: [user\n", "expected ',' or ']'", 7, 1),
        (H + "type doc\n  relations\n    define a: [user]\n    define a: [user]", "already defined", 7, 12),
        (H + "  relations\n", "at least one 'define'", 4, 3),
        ("modle\n  schema 1.1\n", "starts with 'model'", 1, 1),
        (H + "condition c(x: integer) {\n  x < 1\n}\n", "unknown parameter type", 4, 16),
        (H + "condition c(x: int) {\n  x < 1\n", "no closing", 4, 22),
        (
            H + "type doc\n  relations\n    define a: [user] but not b but not c\n"
            "    define b: [user]\n    define c: [user]",
            "only one 'but not'",
            6,
            32,
        ),
    ],
)
def test_syntax_errors_have_line_and_column(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(ModelError, match=message) as info:
        parse_dsl(text)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)


@pytest.mark.parametrize(
    "body,message",
    [
        (D + "    define a: [usr]", "relation type 'usr'"),
        (D + "    define a: [user#nope]", "relation 'nope' is not defined"),
        (D + "    define a: b", "relation 'b' is not defined"),
        (D + "    define a: a", "refers to itself"),
        (D + "    define a: b\n    define b: a", "potential loop"),
        (D + "    define a: [user] or b\n    define b: [user] but not a", "cannot contain a cycle"),
        (D + "    define a: [doc#a]", "no entrypoints"),
        (
            D + "    define p: [doc]\n    define parent: p\n    define a: [user] or a from parent",
            "must be a direct relation",
        ),
        (
            D + "    define parent: [doc#a]\n    define a: [user] or a from parent",
            "can only point at objects",
        ),
        (
            D + "    define parent: [user]\n    define a: [user] or a from parent",
            "does not appear as a relation",
        ),
        (D + "    define a: [user with nope]", "condition nope is undefined"),
        (D + '    define a: [user with c]\ncondition c(x: int) {\n  x < "a"\n}', "no matching overload"),
        (D + "    define a: [user with c]\ncondition c(x: int) {\n  x + 1\n}", "expected a bool"),
        (D + "    define a: [user with c]\ncondition c(x: int) {\n  y < 1\n}", "undeclared reference to 'y'"),
        (
            D + "    define a: [user with c]\ncondition c(x: int) {\n  lowerAscii(x) < 1\n}",
            "undeclared reference to function",
        ),
        (D + "    define a: [user with c]\ncondition c(x: int) {\n  x <\n}", "Syntax error"),
    ],
)
def test_semantic_errors_name_the_problem_and_where(body: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as info:
        parse_dsl(f"model\n  schema 1.1\ntype user\n{body}\n")
    assert info.value.line is not None and info.value.line >= 4


def test_json_models_are_validated_too() -> None:
    with pytest.raises(ModelError, match="schema version"):
        AuthorizationModel.from_json({"schema_version": "1.0", "type_definitions": [{"type": "user"}]})
    with pytest.raises(ModelError, match="duplicate types"):
        AuthorizationModel.from_json(
            {"schema_version": "1.1", "type_definitions": [{"type": "u"}, {"type": "u"}]}
        )
    with pytest.raises(ModelError, match="exactly one"):
        AuthorizationModel.from_json(
            {
                "schema_version": "1.1",
                "type_definitions": [
                    {"type": "d", "relations": {"a": {"this": {}, "computedUserset": {"relation": "b"}}}}
                ],
            }
        )
    with pytest.raises(ModelError, match="not valid JSON"):
        AuthorizationModel.from_json("{nope")
    with pytest.raises(ModelError, match=r"reserved|invalid type name"):
        AuthorizationModel.from_json({"schema_version": "1.1", "type_definitions": [{"type": "this"}]})
    with pytest.raises(ModelError, match="at least two children"):
        AuthorizationModel.from_json(
            {
                "schema_version": "1.1",
                "type_definitions": [
                    {"type": "user"},
                    {
                        "type": "d",
                        "relations": {"a": {"union": {"child": [{"this": {}}]}}},
                        "metadata": {"relations": {"a": {"directly_related_user_types": [{"type": "user"}]}}},
                    },
                ],
            }
        )


def test_hostile_models_fail_cleanly() -> None:
    deep = (
        H + "type doc\n  relations\n    define b: [user]\n    define a: " + "(" * 500 + "b" + ")" * 500 + "\n"
    )
    with pytest.raises(ModelError, match="nest more than"):
        parse_dsl(deep)
    with pytest.raises(ModelError, match="larger than"):
        parse_dsl("model\n  schema 1.1\n" + "type t\n" * 200_000)
    deep_json: dict = {"computedUserset": {"relation": "b"}}
    for _ in range(200):
        deep_json = {"union": {"child": [deep_json, {"computedUserset": {"relation": "b"}}]}}
    with pytest.raises(ModelError, match="nested more than"):
        AuthorizationModel.from_json(
            {
                "schema_version": "1.1",
                "type_definitions": [{"type": "d", "relations": {"a": deep_json, "b": {"this": {}}}}],
            }
        )
    with pytest.raises(ModelError):
        parse_dsl(None)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="unexpected character"):
        parse_dsl("model\n  schema 1.1\ntype user\ntype d\n  relations\n    define a: [user] ; drop\n")


def test_comments_and_layout_are_tolerated() -> None:
    text = """# leading comment
model
  schema 1.1
# a user
type user   # trailing comment
type doc
  relations
    define viewer: [
      user,
      user:*
    ] # multi-line restrictions
    define owner: [user] # owner
"""
    m = parse_dsl(text)
    assert [str(r) for r in m.relation("doc", "viewer").directly_related] == ["user", "user:*"]
