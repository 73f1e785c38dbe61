"""Every script in examples/ runs, as a newcomer runs it: with the provider in-process (the
default) and against a running ``agent-auth dev`` (``--dev-dir``). Each prints a transcript
with the lines that show its pillar at work, and never a token or a secret."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.examples.secrets_scan import assert_no_secrets, token_shaped

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*_example.py"))

# The lines each example must print (substrings, in this order).
EXPECTED: dict[str, list[str]] = {
    "identity_example.py": [
        "[identity]   token verified: sub=alice aud=urn:example:api",
        "[tool]       whoami -> You are alice",
        "[model]      calls list_orders(user_id='bob')",
        "[tool]       list_orders refused: This tool acts only for the signed-in user",
        "the token is in no checkpoint: True",
        "[tool]       whoami -> You are bob",
        "[identity]   forged token refused: InvalidSignatureError",
    ],
    "vault_example.py": [
        "[paused]     connect_account",
        "[vault]      connect_account: calendar (not_connected)",
        "the callback answers HTTP 200",
        "[tool]       add_event -> added 'Lunch with Bob' on 2030-01-04T12:00",
        "[tool]       list_events -> alice's calendar: ",
        "Lunch with Bob",
        "[vault]      alice's connection calendar: active, scopes calendar.read calendar.write, refresh token: True",
        "(store, checkpoints): True",
        "[vault]      revoked at the upstream: True, deleted: True",
        "[paused]     connect_account",
        "[tool]       list_events refused: The user did not connect their calendar account",
    ],
    "fga_example.py": [
        "[fga]        user:alice viewer document:salaries: denied",
        "[tool]       search_docs -> found handbook, roadmap",
        "[tool]       search_docs -> found handbook, salaries",
        "[tool]       read_doc refused: Access denied: you don't have viewer access to document:roadmap.",
        "[fga]        user:alice owner document:roadmap: allowed",
        "[tool]       read_doc -> 2030 roadmap",
        "[tool]       share_doc refused: Access denied: you don't have owner access to document:salaries.",
    ],
}


def check(script: str, proc: subprocess.CompletedProcess[str], known_secrets: list[str] = ()) -> None:
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    rest = proc.stdout
    for line in EXPECTED[script]:
        assert line in rest, f"{script}: missing or out of order: {line!r}\n{proc.stdout}"
        rest = rest[rest.index(line) + len(line):]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert_no_secrets(proc.stdout + proc.stderr, known_secrets)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "LANGSMITH_TRACING": "false"}


def run_all(extra: list[str], *, parallel: bool) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every example (concurrently when ``parallel``), each with ``extra`` arguments."""
    def start(script: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(EXAMPLES / script), *extra], cwd=ROOT, env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(script: str, proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n{script} timed out"
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    if parallel:
        procs = {script: start(script) for script in SCRIPTS}
        return {script: finish(script, proc) for script, proc in procs.items()}
    return {script: finish(script, start(script)) for script in SCRIPTS}


@pytest.fixture(scope="module")
def in_process() -> dict[str, subprocess.CompletedProcess[str]]:
    return run_all([], parallel=True)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pathlib.Path, dict]]:
    """``agent-auth dev`` as a user starts it, in its own process."""
    data_dir = tmp_path_factory.mktemp("dev") / "dev"
    log = data_dir.parent / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "langchain_agent_auth.cli", "dev", "--data-dir",
                                 str(data_dir), "--ciba-interval", "1"], stdout=out, stderr=subprocess.STDOUT,
                                env=env())
    try:
        deadline = time.monotonic() + 30
        while not log.read_text().startswith("READY ") or "\n" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        info = json.loads(log.read_text().splitlines()[0][len("READY "):])
        yield data_dir, info
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_every_example_has_expectations() -> None:
    assert SCRIPTS and set(SCRIPTS) == set(EXPECTED)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_with_the_provider_in_process(in_process, script: str) -> None:
    check(script, in_process[script])


def test_examples_against_a_running_agent_auth_dev(dev_server) -> None:
    data_dir, info = dev_server
    secrets = [info["client_secret"], info["admin_token"], info["upstream_client_secret"], *info["users"].values()]
    results = run_all(["--dev-dir", str(data_dir)], parallel=False)  # one provider: one at a time
    for script, proc in results.items():
        check(script, proc, secrets)
        assert "using the running `agent-auth dev`" in proc.stdout


def test_a_missing_dev_server_is_a_clear_error(tmp_path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "identity_example.py"), "--dev-dir", str(tmp_path)],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no running `agent-auth dev` found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_scan_finds_tokens() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    assert token_shaped(f"token: {jwt}") == [jwt]
    assert token_shaped("refresh Wc0sJ1f3m2Gk7Q_-pXbYtR9uZ4aL8nDvE6hKjS5oMq1 ok")
    assert not token_shaped("error federated_connection_refresh_token_not_found at 127.0.0.1:8000")
    with pytest.raises(AssertionError):
        assert_no_secrets("password alice-116c992d", ["alice-116c992d"])
