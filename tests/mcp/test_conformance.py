"""The MCP project's own conformance suite (``@modelcontextprotocol/conformance@0.1.13``, the
newest that runs on Node 20) against ``tests/mcp/conformance_client.py``: every auth scenario
of its ``auth``, ``backcompat`` and ``extensions`` (client credentials) suites (the three
hold the suite's 19 auth scenarios and nothing else). The client starts through
``tests/mcp/prefork.py``: its imports are done once, each scenario forks a fresh process."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.conftest import unavailable

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITE_DIR = ROOT / "tests" / "mcp" / "conformance"
CLI = SUITE_DIR / "node_modules" / ".bin" / "conformance"
PREFORK = "tests/mcp/prefork.py"

# Scenario names as the suite reports them; each must pass (no expected-failure entries).
SCENARIOS = {
    "auth": ["auth/metadata-default", "auth/metadata-var1", "auth/metadata-var2", "auth/metadata-var3",
             "auth/basic-cimd", "auth/scope-from-www-authenticate", "auth/scope-from-scopes-supported",
             "auth/scope-omitted-when-undefined", "auth/scope-step-up", "auth/scope-retry-limit",
             "auth/token-endpoint-auth-basic", "auth/token-endpoint-auth-post", "auth/token-endpoint-auth-none",
             "auth/resource-mismatch", "auth/pre-registration"],
    "backcompat": ["auth/2025-03-26-oauth-metadata-backcompat", "auth/2025-03-26-oauth-endpoint-fallback"],
    "extensions": ["auth/client-credentials-jwt", "auth/client-credentials-basic"],
}


def _suite_available() -> None:
    if shutil.which("node") is None:
        unavailable("node is not installed", "AGENT_AUTH_REQUIRE_INTEROP")
    if not CLI.exists():
        unavailable(f"the MCP conformance suite is not installed (cd {SUITE_DIR} && npm ci)",
                    "AGENT_AUTH_REQUIRE_INTEROP")


@pytest.fixture(scope="module")
def client_command() -> Iterator[str]:
    """The suite's ``--command``: a launcher asking a pre-forked server to run the client."""
    _suite_available()
    socket_path = os.path.join(tempfile.mkdtemp(prefix="mcp-conf-"), "client.sock")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "tests.mcp.prefork", "serve", socket_path], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path):
            assert server.poll() is None and time.monotonic() < deadline, "the client's fork server did not start"
            time.sleep(0.05)
        yield f"{sys.executable} -I -S {PREFORK} launch {socket_path}"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:  # a client hung past the suite's timeout
            server.kill()
            server.wait()
        shutil.rmtree(os.path.dirname(socket_path), ignore_errors=True)


def _run(suite: str, command: str) -> str:
    proc = subprocess.run([str(CLI), "client", "--suite", suite, "--command", command],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return proc.stdout + proc.stderr


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(SCENARIOS))
def test_every_auth_scenario_passes(suite, client_command):
    out = _run(suite, client_command)
    results = dict(re.findall(r"[✓✗] (auth/[\w.-]+): (\d+ passed, \d+ failed)", out))
    for scenario in SCENARIOS[suite]:
        assert scenario in results, f"{scenario} did not run:\n{out[-3000:]}"
        assert results[scenario].endswith(" 0 failed"), f"{scenario}: {results[scenario]}\n{out[-4000:]}"
