"""Keys on servers and resumers: missing keys fail at start with what to set; no key file is
created implicitly there; a record sealed with other keys is reported once, with the cause."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, InAppApprover
from langchain_agent_auth.core.crypto import ENV_VAR, Keyring, default_keyring, require_key_configuration, server_role
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import ALICE, calls
from tests.approval.test_resumer import build

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def on_a_langgraph_server(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "langgraph_api", types.ModuleType("langgraph_api"))
    return tmp_path


def test_a_langgraph_server_without_keys_fails_with_what_to_set(on_a_langgraph_server):
    assert server_role() == "a LangGraph server"
    with pytest.raises(E.ConfigurationError) as info:
        default_keyring()
    message = str(info.value)
    assert ENV_VAR in message and "Keyring.new_key()" in message and "a LangGraph server" in message
    assert not (on_a_langgraph_server / ".agent-auth").exists()  # no implicit key file


def test_an_approver_built_on_a_server_fails_at_build_not_at_the_first_pause(on_a_langgraph_server):
    with pytest.raises(E.ConfigurationError, match=ENV_VAR):
        InAppApprover()
    assert not (on_a_langgraph_server / ".agent-auth").exists()


def test_a_server_with_keys_uses_them(on_a_langgraph_server, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "k9:" + Keyring.new_key())
    assert InAppApprover().keyring.key_ids == ["k9"]


def test_a_laptop_process_still_gets_a_key_file(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert server_role() is None
    ring = default_keyring(tmp_path)
    assert (tmp_path / "keys").exists() and default_keyring(tmp_path).key_ids == ring.key_ids


def test_require_key_configuration_is_undone_by_passing_back_the_previous_role(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    previous = require_key_configuration("my worker")
    try:
        with pytest.raises(E.ConfigurationError, match="my worker"):
            default_keyring(tmp_path)
    finally:
        require_key_configuration(previous)
    assert not (tmp_path / "keys").exists()


def test_a_record_sealed_with_other_keys_is_reported_once_with_the_cause(caplog):
    clock = Clock()
    idp = FakeCiba(clock)
    sealer = CIBAApprover(idp.oauth_client(), keyring=Keyring.generate(), clock=clock)
    g = build(sealer, calls(("transfer_money", {"amount": 3, "to": "Bob"}, "c3")))
    g.invoke({"messages": [("user", "pay")]}, {"configurable": {"thread_id": "t1"}}, context={"user": ALICE})
    idp.approve()
    other = CIBAApprover(idp.oauth_client(), keyring=Keyring.generate(), clock=clock)
    resumer = ApprovalResumer(g, approvers=[other], clock=clock)
    reports = []
    with caplog.at_level(logging.WARNING, logger="langchain_agent_auth"):
        for _ in range(3):
            clock.advance(10)
            reports.append(resumer.run_once())
    hits = [r for r in caplog.records if "the keys differ from the process that sealed it" in r.getMessage()]
    assert len(hits) == 1 and ENV_VAR in hits[0].getMessage()
    assert all(r.errors and not r.resumed_threads for r in reports)


# -- agent-auth resumer, as a user runs it


APP = textwrap.dedent("""
    from langgraph.graph import START, StateGraph
    from langgraph.store.memory import InMemoryStore
    from typing_extensions import TypedDict

    from langchain_agent_auth.approval import InAppApprover

    class S(TypedDict):
        x: int

    graph = StateGraph(S).add_node("n", lambda s: s).add_edge(START, "n").compile(store=InMemoryStore())
    approver = InAppApprover()
""")


def _resumer(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    environ = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "langchain_agent_auth.cli", "resumer", *args], cwd=tmp_path,
                          env=environ, capture_output=True, text=True, timeout=60)


def test_resumer_without_keys_exits_2_with_one_line_and_creates_no_key_file(tmp_path):
    out = _resumer(tmp_path, "--graph", "app:graph", "--approver", "app:approver", "--once")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agent-auth resumer: error:")
    assert ENV_VAR in lines[0] and "agent-auth resumer" in lines[0]
    assert not (tmp_path / ".agent-auth").exists()


def test_resumer_with_keys_runs_a_pass(tmp_path):
    out = _resumer(tmp_path, "--graph", "app:graph", "--approver", "app:approver", "--once",
                   env={ENV_VAR: "k1:" + Keyring.new_key()})
    assert out.returncode == 0, out.stderr
    assert '"due": 0' in out.stdout


@pytest.mark.parametrize("spec,named", [("app:approvr", "'approvr'"), ("ap:approver", "'ap'"), ("app", "module:attr")])
def test_resumer_typo_in_approver_is_one_line_naming_it(tmp_path, spec, named):
    out = _resumer(tmp_path, "--graph", "app:graph", "--approver", spec, "--once",
                   env={ENV_VAR: "k1:" + Keyring.new_key()})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in out.stderr


