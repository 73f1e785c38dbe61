"""The demo's authorization world, ``demo/world.fga.yaml``: an OpenFGA store file shipped
with the package, whose tests state the facts the demo's transcript relies on."""

from __future__ import annotations

import re
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from langchain_agent_auth.cli import main
from langchain_agent_auth.cli._fga_testfile import run_test_file
from langchain_agent_auth.demo._world import DOCUMENTS, WORLD_FILE, make_authorizer
from tests.fga._fga_support import FGA, HAS_FGA

ROOT = Path(__file__).resolve().parents[2]


def test_every_assertion_of_the_shipped_world_passes(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_test_file(WORLD_FILE)
    assert report.error is None and report.results and all(r.passed for r in report.results), [
        r.describe() for r in report.results if not r.passed]
    assert main(["fga", "test", str(WORLD_FILE)]) == 0
    assert "Tests 1/1 passing" in capsys.readouterr().out


def test_the_transcripts_facts_are_among_the_tests() -> None:
    asked = {(r.request, str(r.expected)) for r in run_test_file(WORLD_FILE).results}
    for user, titles in {"alice": "handbook q3-budget roadmap", "bob": "handbook oncall-runbook roadmap"}.items():
        objects = [f"document:{t}" for t in titles.split()]
        assert (f"ListObjects(user=user:{user},relation=viewer,type=document)", str(objects)) in asked
    fga = make_authorizer()
    assert fga.list_objects("user:alice", "viewer", "document") == [
        "document:handbook", "document:q3-budget", "document:roadmap"]
    assert {f"document:{doc_id}" for doc_id, _, _ in DOCUMENTS} == {t.object for t in fga.read()
                                                                   if t.object.startswith("document:")}


@pytest.mark.skipif(not HAS_FGA, reason="fga binary not installed")
def test_openfgas_cli_agrees() -> None:
    proc = subprocess.run([FGA, "model", "test", "--tests", str(WORLD_FILE)], capture_output=True, text=True,
                          timeout=60)
    found = re.findall(r"^(Tests|Checks|ListObjects|ListUsers) (\d+)/(\d+) passing", proc.stdout + proc.stderr, re.M)
    totals = {kind: passed == total != "0" for kind, passed, total in found}
    assert proc.returncode == 0 and totals == dict.fromkeys(("Tests", "Checks", "ListObjects", "ListUsers"), True)


def test_the_world_ships_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    relative = WORLD_FILE.relative_to(ROOT / "langchain_agent_auth").as_posix()
    assert any(fnmatch(relative, p) for p in patterns["langchain_agent_auth"])
    assert WORLD_FILE.parent == Path(make_authorizer.__code__.co_filename).parent
