"""examples/langgraph_server/README.md, terminal by terminal, as documented.

The README's shell blocks run with bash in a copy of the example (the keys file, then the
provider, the server and `agent-auth resumer` as background processes, then the client).
Only the two fixed ports are replaced by free ones, so the test can run beside others.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.langgraph_server import langgraph_cli
from tests.support.node_idp import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "langgraph_server"
README = EXAMPLE / "README.md"


def shell_blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M)


def block(containing: str) -> str:
    (found,) = [b for b in shell_blocks() if containing in b]
    return found


class Terminals:
    """Background terminals (bash, each in its own session) started in ``cwd``."""

    def __init__(self, cwd: Path, env: dict[str, str], ports: dict[str, str]) -> None:
        self.cwd, self.env, self.ports = cwd, env, ports
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def command(self, text: str) -> str:
        for documented, used in self.ports.items():
            text = text.replace(documented, used)
        return text

    def run(self, text: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-ec", self.command(text)], cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, name: str, text: str) -> Path:
        log = self.cwd / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["bash", "-ec", self.command(text)], cwd=self.cwd, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))
        return log

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{log.read_text(errors='replace')[-3000:]}" for name, _, log in self.procs)

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wait_for(what: str, ready, terminals: Terminals, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for _, proc, _ in terminals.procs):
            raise AssertionError(f"a terminal exited while waiting for {what}:\n{terminals.logs()}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{what} not ready:\n{terminals.logs()}")


@pytest.fixture
def terminals(tmp_path: Path) -> Iterator[Terminals]:
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "langgraph_server",
                    ignore=shutil.ignore_patterns(".langgraph_api", "__pycache__", ".agent-auth"))
    shutil.copy(ROOT / "examples" / "_common.py", tmp_path / "examples" / "_common.py")
    bin_dir = str(Path(sys.executable).parent)
    drop = ("AGENT_AUTH_ENCRYPTION_KEYS", "AGENT_AUTH_DEV_DIR", "AGENT_AUTH_DATA_DIR", "AGENT_AUTH_ISSUER",
            "AGENT_AUTH_CLIENT_ID", "AGENT_AUTH_CLIENT_SECRET", "AGENT_MODEL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
               LANGSMITH_TRACING="false", LANGGRAPH_NO_ANALYTICS="1")
    t = Terminals(tmp_path, env, {"9000": str(free_port()), "2024": str(free_port())})
    try:
        yield t
    finally:
        t.stop()


def test_readme_documents_each_terminal():
    assert block("Keyring.new_key()") and block("agent-auth dev --port 9000")
    for terminal in ("langgraph dev", "agent-auth resumer"):
        assert ". .agent-auth/keys.env" in block(terminal)
    resumer = block("agent-auth resumer")
    assert "--url http://127.0.0.1:2024" in resumer and "--approver graph:ciba" in resumer


@pytest.mark.langgraph_server
def test_the_readme_terminals_run_as_documented(terminals: Terminals):
    if langgraph_cli() is None:
        pytest.skip("langgraph-cli[inmem] is not installed")
    keys = terminals.run(block("Keyring.new_key()"), timeout=60)
    assert keys.returncode == 0, keys.stderr
    assert (terminals.cwd / ".agent-auth" / "keys.env").read_text().startswith("export AGENT_AUTH_ENCRYPTION_KEYS=k1:")

    terminals.start("provider", block("agent-auth dev --port 9000"))
    provider = f"http://127.0.0.1:{terminals.ports['9000']}"
    wait_for("the provider", lambda: (terminals.cwd / ".agent-auth/dev/server.json").exists()
             and httpx.get(f"{provider}/.well-known/openid-configuration", timeout=2).status_code == 200, terminals)
    terminals.start("server", block("langgraph dev"))
    server = f"http://127.0.0.1:{terminals.ports['2024']}"
    wait_for("the server", lambda: httpx.get(f"{server}/ok", timeout=2).status_code == 200, terminals)
    # The resumer without its sign-in: the server refuses it; one line naming the options, exit 2.
    anonymous = terminals.run(block("agent-auth resumer").replace(" --auth graph:service_auth", ""), timeout=120)
    lines = anonymous.stderr.strip().splitlines()
    assert anonymous.returncode == 2 and len(lines) == 1, anonymous.stderr
    assert "HTTP 401" in lines[0] and "missing bearer token" in lines[0] and "--service-issuer" in lines[0]

    resumer_log = terminals.start("resumer", block("agent-auth resumer"))
    wait_for("the resumer", lambda: "resumer running" in resumer_log.read_text(), terminals)

    client = terminals.run(block("client.py --url"), timeout=240)
    assert client.returncode == 0, f"{client.stdout}\n{client.stderr}\n{terminals.logs()}"
    rest = client.stdout
    for line in ["[tool]       whoami -> You are alice.", "[paused]     approval_pending: Pay 12 EUR to Bob",
                 "[resumer]    the approval is in", "[tool]       transfer -> sent 12.00 EUR to Bob from alice's",
                 "[bob]        opens alice's thread: HTTP 404", "[nobody]     calls without a token: HTTP 401"]:
        assert line in rest, f"missing or out of order: {line!r}\n{client.stdout}"
        rest = rest[rest.index(line) + len(line):]
    assert "Traceback" not in resumer_log.read_text() and "keys differ" not in resumer_log.read_text()


def test_the_resumer_without_the_keys_file_stops_at_once(terminals: Terminals):
    """The documented resumer command, with the `. keys.env` step left out: one line, exit 2."""
    command = block("agent-auth resumer").replace(". .agent-auth/keys.env && ", "")
    (terminals.cwd / ".agent-auth" / "dev").mkdir(parents=True)
    (terminals.cwd / ".agent-auth" / "dev" / "server.json").write_text('{"url": "http://127.0.0.1:9"}')
    (terminals.cwd / ".agent-auth" / "dev" / "secrets.json").write_text('{"clients": {"agent-client": "x"}}')
    out = terminals.run(command, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "AGENT_AUTH_ENCRYPTION_KEYS" in lines[0] and "agent-auth resumer" in lines[0]
