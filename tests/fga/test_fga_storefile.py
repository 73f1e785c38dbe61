"""Store files (``.fga.yaml``) in the fga pillar: ``EmbeddedAuthorizer.from_store_file``,
``load_store_file`` and ``load_tuple_file``, with their typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_agent_auth.cli import main
from langchain_agent_auth.core.errors import ConfigurationError, ModelError, TupleError
from langchain_agent_auth.fga import (
    EmbeddedAuthorizer,
    SQLiteTupleStore,
    StoreFile,
    load_store_file,
    load_tuple_file,
)
from tests.fga._fga_support import DOCS_MODEL

MODEL = """\
model
  schema 1.1
type user
type team
  relations
    define member: [user]
type doc
  relations
    define viewer: [user, team#member]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "model.fga").write_text(MODEL)
    (tmp_path / "people.yaml").write_text("- {user: 'user:anne', relation: member, object: 'team:eng'}\n")
    (tmp_path / "docs.json").write_text(json.dumps([{"user": "team:eng#member", "relation": "viewer",
                                                     "object": "doc:spec"}]))
    (tmp_path / "more.csv").write_text("user_type,user_id,user_relation,relation,object_type,object_id\n"
                                       "user,bob,,viewer,doc,notes\n")
    return tmp_path


def store_file(folder: Path, text: str, name: str = "store.fga.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_model_file_and_every_tuple_source(folder: Path) -> None:
    path = store_file(folder, """
model_file: ./model.fga
tuples:
  - {user: "user:carol", relation: viewer, object: "doc:spec"}
  - {user: "user:carol", relation: viewer, object: "doc:spec"}
tuple_file: people.yaml
tuple_files: [docs.json, more.csv]
tests:
  - name: not run here
    check:
      - {user: "user:carol", object: "doc:spec", assertions: {viewer: false}}
""")
    loaded = load_store_file(path)
    assert isinstance(loaded, StoreFile) and loaded.path == path
    assert sorted(str(t) for t in loaded.tuples) == [
        "doc:notes#viewer@user:bob", "doc:spec#viewer@team:eng#member", "doc:spec#viewer@user:carol",
        "team:eng#member@user:anne"]
    assert [t["name"] for t in loaded.tests] == ["not run here"]

    fga = EmbeddedAuthorizer.from_store_file(path)
    assert fga.list_objects("user:anne", "viewer", "doc") == ["doc:spec"]
    assert fga.check("user:carol", "viewer", "doc:spec")  # the file's own (failing) test is not run
    assert fga.check("user:bob", "viewer", "doc:notes") and not fga.check("user:bob", "viewer", "doc:spec")
    assert main(["fga", "test", str(path)]) == 1  # `agent-auth fga test` runs it, and it fails


def test_inline_model_as_dsl_or_json(folder: Path) -> None:
    path = store_file(folder, "model: |\n" + "".join(f"  {line}\n" for line in MODEL.splitlines())
                      + "tuples: [{user: 'user:anne', relation: viewer, object: 'doc:1'}]\n")
    assert EmbeddedAuthorizer.from_store_file(str(path)).check("user:anne", "viewer", "doc:1")
    as_json = EmbeddedAuthorizer(MODEL).get_model().to_json()
    path = store_file(folder, json.dumps({"model": as_json, "tuples": []}), "json.fga.yaml")
    assert list(load_store_file(path).model.types) == ["user", "team", "doc"]


def test_keyword_arguments_reach_the_authorizer(folder: Path) -> None:
    path = store_file(folder, "model_file: model.fga\ntuple_file: people.yaml\n")
    decisions: list = []
    fga = EmbeddedAuthorizer.from_store_file(path, on_decision=decisions.append, max_depth=7)
    assert fga.max_depth == 7
    assert fga.check("user:anne", "member", "team:eng") and decisions[0].allowed


def test_over_a_sqlite_file_loaded_twice(folder: Path) -> None:
    path = store_file(folder, "model_file: model.fga\ntuple_files: [people.yaml, docs.json]\n")
    db = folder / "fga.sqlite"
    first = EmbeddedAuthorizer.from_store_file(path, db)
    again = EmbeddedAuthorizer.from_store_file(path, db)  # the tuples are there: not written twice
    assert again.model_id == first.model_id
    assert again.check("user:anne", "viewer", "doc:spec")
    reopened = EmbeddedAuthorizer(store=SQLiteTupleStore(db))
    assert sorted(str(t) for t in reopened.read()) == ["doc:spec#viewer@team:eng#member", "team:eng#member@user:anne"]


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        (None, ConfigurationError, "cannot read store file"),
        ("model: [\n", ConfigurationError, "invalid YAML"),
        ("- just a list\n", ConfigurationError, "not a store file"),
        ("tuples: []\n", ModelError, "needs 'model' or 'model_file'"),
        ("model_file: ../outside/model.fga\n", ModelError, "outside the store file's directory"),
        ("model_file: model.fga\ntuple_file: ../people.yaml\n", ConfigurationError, "outside the store file's"),
        ("model_file: model.fga\ntuple_files: [/etc/hostname]\n", ConfigurationError, "outside the store file's"),
        ("model_file: model.fga\ntuple_file: absent.yaml\n", ConfigurationError, "cannot read tuple file"),
        ("model_file: model.fga\ntuple_file: bad.json\n", ConfigurationError, "not a tuple file"),
        ("model_file: model.fga\ntuple_file: bad.csv\n", ConfigurationError, "not a tuple file"),
        ("model_file: model.fga\ntuple_file: bad.yaml\n", ConfigurationError, "invalid YAML"),
        ('model: "model\\n  schema 1.1\\ntype doc\\n  relations\\n    define x: [nobody]\\n"\n', ModelError, "nobody"),
        ("model_file: missing.fga\n", ModelError, "cannot read model file"),
        ("model_file: model.fga\ntests: 3\n", ConfigurationError, "'tests' must be a list"),
        ("model_file: model.fga\ntuples: [{user: 'user:anne', relation: owner, object: 'doc:1'}]\n", TupleError,
         "owner"),
    ],
)
def test_typed_errors(tmp_path: Path, text: str | None, error: type[Exception], words: str) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    (tmp_path / "people.yaml").write_text("[]\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "model.fga").write_text(MODEL)
    (folder / "model.fga").write_text(MODEL)
    (folder / "bad.json").write_text("[{")
    (folder / "bad.csv").write_text("user,relation\nuser:anne,viewer\n")
    (folder / "bad.yaml").write_text("- [\n")
    path = folder / "store.fga.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=words):
        EmbeddedAuthorizer.from_store_file(path)


def test_load_tuple_file_alone(folder: Path) -> None:
    assert [str(t) for t in load_tuple_file(folder / "more.csv")] == ["doc:notes#viewer@user:bob"]
    assert [str(t) for t in load_tuple_file(str(folder / "docs.json"))] == ["doc:spec#viewer@team:eng#member"]


def test_cli_queries_on_a_store_file_keep_to_its_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``agent-auth fga check --tests`` loads through the same loader: same directory rule."""
    (tmp_path / "model.fga").write_text(DOCS_MODEL)
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "store.fga.yaml").write_text("model_file: ../model.fga\n")
    assert main(["fga", "check", "--tests", str(inner / "store.fga.yaml"), "user:a", "viewer", "document:1"]) == 2
    assert "outside the store file's directory" in capsys.readouterr().err
