"""The MCP project's own conformance suite (``@modelcontextprotocol/conformance@0.1.13``, the
newest that runs on Node 20) against ``tests/mcp/conformance_client.py``: every auth scenario
of its ``auth``, ``backcompat`` and ``extensions`` (client credentials) suites (the three
hold the suite's 19 auth scenarios and nothing else). The suite starts the client once per
scenario, each time through the proxy of ``tests/support/prefork.py``: the client is forked
from the session's pre-imported Python (``prefork``, with the ``mcp`` SDK imported too), so
its imports are done once."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import unavailable
from tests.support import prefork
from tests.support.prefork import Zygote

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITE_DIR = ROOT / "tests" / "mcp" / "conformance"
CLI = SUITE_DIR / "node_modules" / ".bin" / "conformance"
CLIENT = ROOT / "tests" / "mcp" / "conformance_client.py"
# what the client imports beyond the session's preloaded modules
CLIENT_IMPORTS = ("mcp", "mcp.client.streamable_http")

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
def client_command(request: pytest.FixtureRequest) -> str:
    """The suite's ``--command`` (the server URL appended, ``MCP_CONFORMANCE_*`` in the
    environment): ``python CLIENT`` run by the session's pre-imported Python."""
    _suite_available()
    zygote: Zygote = request.getfixturevalue("prefork")
    zygote.preload(*CLIENT_IMPORTS)
    # -I -S: the proxy needs only the standard library, so its own start stays cheap
    return f"{sys.executable} -I -S {prefork.__file__} {zygote.path} {CLIENT}"


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
