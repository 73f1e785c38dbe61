"""Every ```python block of README.md, CONTRIBUTING.md and docs/*.md runs as written.

Each Markdown file runs in its own process (forked from the session's pre-imported Python,
``tests/support/prefork.py``), its blocks in order in one namespace (a reader's
session), in an empty directory, with the placeholders of ``tests/support/doc_snippets.py``
(a local provider, a scripted model...). A block is skipped only with a visible
"*Not runnable as is: <reason>*" line above it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from langchain_agent_auth.core.crypto import ENV_VAR
from tests.support.doc_snippets import snippets
from tests.support.prefork import Zygote

ROOT = Path(__file__).resolve().parents[1]
DOCS = [p for p in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))] if snippets(p)]

# The scripted model's turns, per file (what a reader's model would do with the prompts there).
SCRIPTS: dict[str, list] = {
    "audit.md": [[["send_email", {"to": "bob@example.com", "body": "late"}]],
                 [["send_email", {"to": "bob@example.com", "body": "late"}]]],
    "approval.md": [[["transfer", {"amount": 250, "to": "Bob"}]], [["transfer", {"amount": 250, "to": "Bob"}]],
                    [["transfer", {"amount": 250, "to": "Bob"}]]],
    "identity.md": [[["my_calendar", {"day": "monday"}]], [["my_calendar", {"day": "monday"}]]],
    "vault.md": [[["list_events", {"day": "monday"}]]],
}


def run_doc(zygote: Zygote, path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "AGENT_MODEL", "AGENT_AUTH_DATA_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    env["DOC_SCRIPT"] = json.dumps(SCRIPTS.get(path.name, []))
    return zygote.run(["-m", "tests.support.doc_snippets", path], cwd=cwd, env=env, timeout=180)


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_python_snippet_runs(prefork: Zygote, path: Path, tmp_path: Path):
    out = run_doc(prefork, path, tmp_path)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    reported = re.findall(r"^(RAN|SKIPPED) (\S+?):(\d+)", out.stdout, re.M)
    assert [int(line) for _, _, line in reported] == [s.line for s in snippets(path)]


def test_a_block_is_skipped_only_with_a_visible_reason(prefork: Zygote, tmp_path: Path):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n*Not runnable as is: needs an account.*\n\n```python\nraise SystemExit(3)\n```\n\n"
                   "Not runnable as is:\n```python\nx = 1\n```\n\n"
                   "<!-- skip -->\n```python\nraise ValueError('ran')\n```\n")
    blocks = snippets(doc)
    assert [b.skip_reason for b in blocks] == ["needs an account.", None, None]
    out = run_doc(prefork, doc, tmp_path)
    assert out.returncode == 1 and "FAILED doc.md:16" in out.stdout and "ValueError: ran" in out.stdout
    assert "SKIPPED doc.md:6: needs an account." in out.stdout and "RAN doc.md:11" in out.stdout


def test_docs_hold_no_internal_notes():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert "../shared" not in text and "peer notes" not in text, path.name


def test_the_quick_starts_cli_hint_works(prefork: Zygote, tmp_path: Path):
    """The README prints `agent-auth approvals approve ID --url URL --data-dir DIR` for an
    in-process provider: that command line approves the request."""
    from langchain_agent_auth import LocalProvider, OAuthClient

    with LocalProvider(ciba_interval=1) as idp:
        OAuthClient(idp.issuer, idp.client_id, idp.client_secret).ciba_authorize(login_hint="alice",
                                                                                  binding_message="Pay 5 EUR")
        (request,) = idp.pending_approvals("alice")
        out = prefork.run(["-m", "langchain_agent_auth.cli", "approvals", "approve", request["id"], "--url", idp.url,
                           "--data-dir", idp.data_dir], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=60)
        assert out.returncode == 0, out.stderr
        assert idp.pending_approvals("alice") == []
        assert [r["status"] for r in idp.approvals("alice")] == ["approved"]
