"""``agent-auth audit``: the stored trail, filtered, as text or JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from langchain_agent_auth.audit import StoreAuditSink, audit_sink, emit_audit
from langchain_agent_auth.cli import main
from langchain_agent_auth.vault import open_default_store


@pytest.fixture
def trail(tmp_path):
    path = tmp_path / "agent_auth.sqlite"
    with audit_sink(StoreAuditSink(open_default_store(path))):
        emit_audit("approval_requested", user="-|-|ann", thread_id="t1", tool="send", args_digest="sha256:aa",
                   channel="in_app")
        emit_audit("approval_decided", user="-|-|ann", thread_id="t1", tool="send", args_digest="sha256:aa",
                   outcome="approve", decider="-|-|ann", channel="in_app")
        emit_audit("thread_refused", user="-|-|bob", thread_id="t1")
        emit_audit("token_revoked", user="-|-|bob", connection="calendar")
    return path


def test_json_lines_filtered_by_user_thread_and_kind(trail, capsys):
    assert main(["audit", "--store", str(trail), "--json", "--user=-|-|ann"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in lines] == ["approval_requested", "approval_decided"]
    assert lines[1]["decider"] == "-|-|ann" and lines[1]["args_digest"] == "sha256:aa"
    assert main(["audit", "--store", str(trail), "--json", "--thread", "t1", "--kind", "thread_refused"]) == 0
    (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only["user"] == "-|-|bob"


def test_text_output_and_limit(trail, capsys):
    assert main(["audit", "--store", str(trail), "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "token_revoked" in line and "connection=calendar" in line and "user=-|-|bob" in line


def test_no_match_and_a_missing_store(trail, tmp_path, capsys):
    assert main(["audit", "--store", str(trail), "--user", "nobody"]) == 0
    assert "no audit events match" in capsys.readouterr().err
    assert main(["audit", "--store", str(tmp_path / "missing.sqlite")]) == 1
    assert "no store at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", "--store", str(trail), "--kind", "not_a_kind"])


def test_the_console_script_reads_the_data_dir(trail):
    env = {**os.environ, "AGENT_AUTH_DATA_DIR": str(trail.parent)}
    out = subprocess.run([sys.executable, "-m", "langchain_agent_auth.cli", "audit", "--json", "--kind",
                          "approval_decided"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outcome"] == "approve"


def test_the_kind_choices_are_every_kind():
    from langchain_agent_auth.audit import AUDIT_KINDS
    from langchain_agent_auth.cli._audit import _KINDS

    assert _KINDS == AUDIT_KINDS
