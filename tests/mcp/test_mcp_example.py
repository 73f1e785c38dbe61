"""examples/mcp runs as written: a protected FastMCP server and an agent that uses it for two
users, offline against the in-process local provider; its transcript shows each step and no
token or secret."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from tests.examples.secrets_scan import assert_no_secrets

ROOT = pathlib.Path(__file__).resolve().parents[2]

EXPECTED = [
    "[mcp]        notes server protected by the toolkit at http://127.0.0.1:",
    "[alice]      signs in and allows the agent; the app's callback answers HTTP 200",
    "[mcp]        tools: list_notes, add_note",
    "[tool]       list_notes -> alice's notes: none yet",
    "[paused]     connect_account: sign in at the notes server's provider (scopes notes:read notes:write)",
    "[tool]       add_note -> added 'buy milk' to alice's notes",
    "[tool]       list_notes -> alice's notes: buy milk",
    "[paused]     connect_account: sign in at the notes server's provider (scopes notes:read)",
    "[tool]       list_notes -> bob's notes: none yet",
]


def test_the_mcp_example_runs_for_two_users_and_prints_no_secret():
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LANGSMITH_TRACING": "false", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "agent.py"], cwd=ROOT / "examples" / "mcp", env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rest = proc.stdout
    for line in EXPECTED:
        assert line in rest, f"missing or out of order: {line!r}\n{proc.stdout}"
        rest = rest[rest.index(line) + len(line):]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert_no_secrets(proc.stdout + proc.stderr, [])
