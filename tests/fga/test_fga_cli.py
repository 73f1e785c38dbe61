"""``agent-auth fga``: test, check, list-objects, list-users, write/delete, model."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from langchain_agent_auth.cli import main
from tests.fga._fga_support import CONFORMANCE, DOCS_MODEL, FGA, HAS_FGA

STORE_TEST = """
name: docs
model_file: ./model.fga
tuple_file: ./tuples.yaml
tuples:
  - user: user:carol
    relation: viewer
    object: document:plan
    condition:
      name: in_hours
tests:
  - name: reading
    tuples:
      - user: user:dave
        relation: owner
        object: document:extra
      - user: user:bob
        relation: owner
        object: document:extra
    check:
      - user: user:anne
        object: document:plan
        assertions:
          viewer: true
          editor: false
      - users: [user:bob, user:dave]
        object: document:extra
        assertions:
          viewer: {dave_expected}
      - user: user:carol
        object: document:plan
        context:
          hour: 10
        assertions:
          viewer: true
    list_objects:
      - user: user:anne
        type: document
        assertions:
          viewer: [document:plan]
    list_users:
      - object: document:plan
        user_filter:
          - type: user
        context:
          hour: 12
        assertions:
          viewer:
            users: [user:anne, user:carol]
"""


@pytest.fixture
def store_test(tmp_path: Path) -> Path:
    (tmp_path / "model.fga").write_text(DOCS_MODEL)
    (tmp_path / "tuples.yaml").write_text(
        "- {user: 'user:anne', relation: member, object: 'group:eng'}\n"
        "- {user: 'group:eng#member', relation: viewer, object: 'folder:f'}\n"
        "- {user: 'folder:f', relation: parent, object: 'document:plan'}\n"
    )
    path = tmp_path / "docs.fga.yaml"
    path.write_text(STORE_TEST.replace("{dave_expected}", "true"))
    return path


def test_store_test_file_passes(store_test: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fga", "test", str(store_test)]) == 0
    out = capsys.readouterr().out
    assert "Checks 5/5 passing" in out and "ListObjects 1/1 passing" in out and "ListUsers 1/1 passing" in out


def test_failures_are_listed_and_exit_non_zero(store_test: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_test.write_text(STORE_TEST.replace("{dave_expected}", "false"))
    assert main(["fga", "test", str(store_test)]) == 1
    out = capsys.readouterr().out
    assert "Checks 3/5 passing" in out
    assert "✗ Check(user=user:dave,relation=viewer,object=document:extra): expected=false, got=true" in out
    assert main(["fga", "test", str(store_test), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data[0]["totals"]["Checks"] == [3, 5] and len(data[0]["failures"]) == 2


@pytest.mark.skipif(not HAS_FGA, reason="fga binary not installed")
def test_same_totals_as_fga_model_test(store_test: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_test.write_text(STORE_TEST.replace("{dave_expected}", "false"))
    proc = subprocess.run([FGA, "model", "test", "--tests", str(store_test)], capture_output=True, text=True)
    theirs = dict(
        re.findall(r"^(Checks|ListObjects|ListUsers) (\d+/\d+) passing", proc.stdout + proc.stderr, re.M)
    )
    main(["fga", "test", str(store_test)])
    ours = dict(
        re.findall(r"^(Checks|ListObjects|ListUsers) (\d+/\d+) passing", capsys.readouterr().out, re.M)
    )
    assert ours == theirs == {"Checks": "3/5", "ListObjects": "1/1", "ListUsers": "1/1"}


@pytest.mark.skipif(CONFORMANCE is None, reason="../shared is absent")
def test_conformance_files_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted(CONFORMANCE.glob("*.yaml"))]
    assert main(["fga", "test", *files]) == 0
    out = capsys.readouterr().out
    for line in ("Checks 485/485 passing", "ListObjects 345/345 passing", "ListUsers 386/386 passing"):
        assert line in out


def test_bad_test_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("tests: [\n")
    (tmp_path / "none.yaml").write_text("hello: world\n")
    (tmp_path / "badmodel.fga.yaml").write_text("model: 'model\\n  schema 1.1\\ntype doc\\n'\ntests: []\n")
    (tmp_path / "escape.fga.yaml").write_text("model_file: ../../etc/passwd\ntests: []\n")
    for name in ("bad.yaml", "none.yaml", "missing.yaml", "escape.fga.yaml"):
        assert main(["fga", "test", str(tmp_path / name)]) == 1
    out = capsys.readouterr().out
    assert "not a test file" in out and "outside the test file's directory" in out


def test_one_off_queries(store_test: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors: list[str] = []

    def run(*args: str) -> tuple[int, dict]:
        code = main(["fga", *args])
        captured = capsys.readouterr()
        errors.append(captured.err)
        return code, json.loads(captured.out) if captured.out.strip() else {}

    assert run("check", "--tests", str(store_test), "user:anne", "viewer", "document:plan") == (
        0,
        {"allowed": True},
    )
    assert run(
        "check",
        "--tests",
        str(store_test),
        "user:zed",
        "viewer",
        "document:plan",
        "--contextual-tuple",
        "user:zed,member,group:eng",
    ) == (0, {"allowed": True})
    assert run(
        "check",
        "--tests",
        str(store_test),
        "user:carol",
        "viewer",
        "document:plan",
        "--context",
        '{"hour": 20}',
    ) == (0, {"allowed": False})
    assert run("list-objects", "--tests", str(store_test), "user:anne", "viewer", "document") == (
        0,
        {"objects": ["document:plan"]},
    )
    assert run("list-users", "--tests", str(store_test), "folder:f", "viewer", "group#member") == (
        0,
        {"users": ["group:eng#member"]},
    )
    code, _ = run("check", "--tests", str(store_test), "user:carol", "viewer", "document:plan")
    assert code == 2 and "missing parameters" in errors[-1]

    db = str(tmp_path / "s.sqlite")
    model = str(tmp_path / "model.fga")
    assert run("model", "write", model, "--store", db)[0] == 0
    assert run("write", "--store", db, "user:anne,owner,document:x")[1]["written"] == 1
    assert run("check", "--store", db, "user:anne", "viewer", "document:x") == (0, {"allowed": True})
    assert run("delete", "--store", db, "user:anne,owner,document:x")[1]["deleted"] == 1
    assert run("check", "--store", db, "user:anne", "viewer", "document:x") == (0, {"allowed": False})
    assert run("write", "--store", db, "user:anne,owner,nothing:x")[0] == 2
    assert "not defined" in errors[-1]
    assert run("write", "--store", db, "not-a-tuple")[0] == 2
    assert run("check", "user:anne", "viewer", "document:x")[0] == 2  # no store given


def test_model_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.fga").write_text(DOCS_MODEL)
    (tmp_path / "bad.fga").write_text("model\n  schema 1.1\ntype doc\n  relations\n    define a: [nobody]\n")
    assert main(["fga", "model", "validate", str(tmp_path / "m.fga")]) == 0
    assert json.loads(capsys.readouterr().out) == {"is_valid": True}
    assert main(["fga", "model", "validate", str(tmp_path / "bad.fga")]) == 1
    assert "nobody" in json.loads(capsys.readouterr().out)["error"]
    assert main(["fga", "model", "transform", str(tmp_path / "m.fga")]) == 0
    as_json = capsys.readouterr().out
    (tmp_path / "m.json").write_text(as_json)
    assert main(["fga", "model", "transform", str(tmp_path / "m.json")]) == 0
    assert "define editor: [user] and viewer" in capsys.readouterr().out
