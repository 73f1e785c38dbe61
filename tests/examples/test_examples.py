"""Every script in examples/ runs, as a newcomer runs it: with the provider in-process (the
default) and against a running ``agent-auth dev`` (``--dev-dir``). Each prints a transcript
with the lines that show its pillar at work, and never a token or a secret.

What a tracer sees carries no token either: the in-process runs (and one run of the demo) go
through a recording callback handler (``trace_recorder.py``), and every credential the
providers issued during a run is looked for in what it recorded. One run of each example
serves both the transcript and the trace assertions.

Each run is its own process, forked from the session's pre-imported Python (``prefork``,
tests/support/prefork.py) rather than started afresh: the same script, arguments,
environment and working directory, without paying LangChain's import each time. The
``agent-auth dev`` the runs talk to is started as a user starts it."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from langchain_core.tools import tool

from tests.conftest import unavailable
from tests.examples.secrets_scan import assert_no_secrets, token_shaped
from tests.support.langgraph_server import langgraph_cli
from tests.support.prefork import Forked, Zygote

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*_example.py"))
RECORDER = pathlib.Path(__file__).with_name("trace_recorder.py")
DEMO = "agent-auth demo"
TRACED = [*SCRIPTS, DEMO]

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
    "approval_example.py": [
        "[paused]     approval_pending: Waiting for the user to approve transfer on their device: Pay 250 EUR to Bob",
        "[approval]   CIBA request on alice's phone: 'Pay 250 EUR to Bob', details: payment_initiation",
        "[alice]      approves on her phone",
        "[tool]       transfer -> sent 250.00 EUR to Bob",
        "[alice]      denies 'Pay 5000 EUR to Mallory'",
        "[tool]       transfer refused: The user denied this transfer call, so it was not run.",
        "[paused]     tool_approval: ",
        "[alice]      edits the recipient: team@example.com",
        "[tool]       send_email -> emailed 'Q3 report' to team@example.com",
        "[audit]      approval_decided transfer approve (ciba) by alice, args sha256:",
        "[audit]      approval_executed transfer done (ciba) by alice",
        "[audit]      approval_decided transfer reject (ciba) by alice",
        "[audit]      approval_decided send_email edit (in_app) by alice",
        "[audit]      approval_executed send_email done (in_app) by alice",
    ],
    "combined_example.py": [
        "[fga]        user:alice viewer document:invoice-42: allowed",
        "[tool]       read_doc -> Invoice 42 from Bob",
        "[identity]   this thread acts for 'alice'",
        "[paused]     approval_pending:",
        "[alice]      approves 'Pay 250 EUR to Bob' on her phone",
        "[tool]       transfer -> sent 250.00 EUR to Bob",
        "[paused]     connect_account:",
        "[alice]      connects her calendar",
        "[tool]       add_event -> added 'Invoice 42 paid' on 2030-01-04T09:00",
        "[fga]        user:bob viewer document:invoice-42: denied",
        "[tool]       read_doc refused: Access denied",
    ],
    "device_example.py": [
        "[progress]   paused device_authorization: code ",
        "[paused]     device_authorization: To sign in, open ",
        "/device and enter the code ",
        "[alice]      approves code ",
        "[identity]   signed in as alice (ID token verified); a token in the checkpoints: False",
        "[bob]        denies code ",
        "[identity]   sign-in refused: AccessDeniedError",
    ],
    "streaming_example.py": [
        "[progress]   waiting approval for transfer (",
        "left, next check scheduled): Waiting for your approval of transfer on your device: Pay 250 EUR to Bob",
        "[alice]      approves 'Pay 250 EUR to Bob' on her phone",
        "[progress]   approved: transfer approved",
        "[tool]       transfer -> sent 250.00 EUR to Bob",
        "[progress]   paused approval for send_email (",
        "left): Waiting for your approval of send_email; the run resumes when you answer",
        "[paused]     tool_approval: the run waits for alice's answer",
    ],
    "toolkit_example.py": [
        "[toolkit]    tools: whoami, list_connections, connect_account, disconnect_account, what_can_i_access, "
        "my_pending_approvals, cancel_approval",
        '[tool]       whoami -> {"subject": "alice", "name": "Alice", "email": "alice@example.com"',
        '[tool]       list_connections -> [{"connection": "calendar", "status": "not_connected"',
        "[paused]     connect_account:",
        '[tool]       connect_account -> {"connection": "calendar", "status": "connected"',
        '"objects": ["document:handbook", "document:roadmap"]',
        "[tool]       what_can_i_access refused: I can't list that. I can list: document: viewer.",
        "[paused]     approval_pending:",
        '[tool]       my_pending_approvals -> [{"handle": "apr_',
        '"tool": "transfer", "channel": "your device", "what": "Pay 250 EUR to Bob"',
        '[tool]       cancel_approval -> {"handle": "apr_',
        '"status": "cancelled"',
        "[alice]      approves on her phone anyway",
        "[tool]       transfer refused: The user withdrew this transfer request, so it was not run.",
        "[bank]       transfers made: 0",
        '[tool]       disconnect_account -> {"connection": "calendar", "disconnected": true',
        "[vault]      alice's calendar now: not_connected",
    ],
}
SERVER_CLIENT = EXAMPLES / "langgraph_server" / "client.py"
SERVER_EXPECTED = [
    "[server]     `langgraph dev` started with auth.py",
    "[tool]       whoami -> You are alice.",
    "[tool]       read_doc -> 2030 roadmap",
    "[tool]       read_doc refused: Access denied: you don't have viewer access to document:salaries.",
    "[paused]     approval_pending: Pay 12 EUR to Bob",
    "[alice]      approves 'Pay 12 EUR to Bob' on her phone",
    "[resumer]    the approval is in: resumed the run on the server, on alice's behalf",
    "[tool]       transfer -> sent 12.00 EUR to Bob from alice's account",
    "[bob]        opens alice's thread: HTTP 404",
    "[bob]        claims to act for alice (act-as header): HTTP 403",
    "[nobody]     calls without a token: HTTP 401",
]


def check(script: str, proc: subprocess.CompletedProcess[str], known_secrets: list[str] = (),
          expected: list[str] | None = None) -> None:
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    rest = proc.stdout
    for line in EXPECTED[script] if expected is None else expected:
        assert line in rest, f"{script}: missing or out of order: {line!r}\n{proc.stdout}"
        rest = rest[rest.index(line) + len(line):]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert_no_secrets(proc.stdout + proc.stderr, known_secrets)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "LANGSMITH_TRACING": "false"}


def start(zygote: Zygote, *args: str | pathlib.Path) -> Forked:
    """``python ARGS`` in the examples' environment, stdin closed: forked from the session's
    pre-imported Python (each run is still its own process and interpreter state)."""
    return zygote.start(args, cwd=ROOT, env=env())


def finish(name: str, proc: Forked) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n{name} timed out"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


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


Runs = dict[tuple[str, str], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def all_runs(dev_server, prefork: Zygote,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Runs, dict[str, pathlib.Path]]:
    """Every example both ways, at once: the in-process runs (each under the trace recorder),
    one traced run of the demo and the server example (which starts its own `langgraph dev`)
    in parallel; alongside, the runs against the one `agent-auth dev`, one after another (they
    share its users). Returns the runs and, per traced run, the recorder's output file."""
    data_dir, _ = dev_server
    tmp = tmp_path_factory.mktemp("traces")
    recorded = {name: tmp / f"{name.replace(' ', '_')}.json" for name in TRACED}
    parallel = {("in-process", script): start(prefork, RECORDER, recorded[script], EXAMPLES / script)
                for script in SCRIPTS}
    parallel["traced", DEMO] = start(prefork, RECORDER, recorded[DEMO], "-m", "langchain_agent_auth.cli", "demo",
                                     "--non-interactive", "--no-color", "--data-dir", tmp / "demo")
    if langgraph_cli() is not None:
        parallel[("server", SERVER_CLIENT.name)] = start(prefork, SERVER_CLIENT)
    results = {("dev", script): finish(script, start(prefork, EXAMPLES / script, "--dev-dir", data_dir))
               for script in SCRIPTS}
    results.update({key: finish(key[1], proc) for key, proc in parallel.items()})
    return results, recorded


@pytest.fixture(scope="module")
def runs(all_runs) -> Runs:
    return all_runs[0]


@pytest.fixture(scope="module")
def traces(all_runs) -> dict[str, tuple[subprocess.CompletedProcess[str], dict]]:
    """Per traced run: the run and what the recorder kept (events and issued credentials)."""
    results, recorded = all_runs
    done = {name: results["traced" if name == DEMO else "in-process", name] for name in TRACED}
    return {name: (done[name], json.loads(recorded[name].read_text()) if recorded[name].exists() else {})
            for name in TRACED}


def test_every_example_has_expectations() -> None:
    assert SCRIPTS and set(SCRIPTS) == set(EXPECTED)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_with_the_provider_in_process(runs, script: str) -> None:
    check(script, runs["in-process", script])
    assert "started in-process" in runs["in-process", script].stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_against_a_running_agent_auth_dev(runs, dev_server, script: str) -> None:
    _, info = dev_server
    secrets = [info["client_secret"], info["admin_token"], info["upstream_client_secret"], *info["users"].values()]
    check(script, runs["dev", script], secrets)
    assert "using the running `agent-auth dev`" in runs["dev", script].stdout


@pytest.mark.langgraph_server
def test_langgraph_server_example(runs) -> None:
    """The client starts a provider and `langgraph dev` with auth.py, talks to the graph with a
    bearer token, and the RemoteResumer completes the approved run."""
    if ("server", SERVER_CLIENT.name) not in runs:
        unavailable("langgraph-cli[inmem] is not installed", "AGENT_AUTH_REQUIRE_INTEROP")
    check(SERVER_CLIENT.name, runs["server", SERVER_CLIENT.name], expected=SERVER_EXPECTED)


def test_a_missing_dev_server_is_a_clear_error(prefork: Zygote, tmp_path) -> None:
    proc = prefork.run([EXAMPLES / "identity_example.py", "--dev-dir", tmp_path], cwd=ROOT, env=env(), timeout=60)
    assert proc.returncode != 0 and "no running `agent-auth dev` found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_scan_finds_tokens() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    assert token_shaped(f"token: {jwt}") == [jwt]
    assert token_shaped("refresh Wc0sJ1f3m2Gk7Q_-pXbYtR9uZ4aL8nDvE6hKjS5oMq1 ok")
    assert not token_shaped("error federated_connection_refresh_token_not_found at 127.0.0.1:8000")
    with pytest.raises(AssertionError):
        assert_no_secrets("password alice-116c992d", ["alice-116c992d"])


def parts(token: str) -> list[str]:
    """The token and, for a JWT, its payload and signature (the header is shared by all)."""
    pieces = [token]
    if token.count(".") == 2:
        pieces += [p for p in token.split(".")[1:] if len(p) >= 16]
    return pieces


NO_AGENT = {"device_example.py"}


@pytest.mark.parametrize("name", TRACED)
def test_a_full_run_shows_a_tracer_no_token(traces, name: str) -> None:
    done, seen = traces[name]
    assert done.returncode == 0, f"{name}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    events, tokens = seen["events"], seen["tokens"]
    kinds = {json.loads(e)["event"] for e in events}
    # the recorder saw the run (tools, the model, the graph) and the providers issued tokens;
    # the device example is a graph with one sign-in node and no model or tool
    expected = {"on_chain_start", "on_chain_end"} | (
        set() if name in NO_AGENT else {"on_tool_start", "on_tool_end", "on_chat_model_start"})
    assert expected <= kinds
    assert tokens, "no credential was issued during the run: the scan would prove nothing"
    text = "\n".join(events)
    leaked = [t for t in tokens if any(p in text for p in parts(t))]
    assert not leaked, f"{len(leaked)} of {len(tokens)} issued credentials reached the callbacks of {name}"


def test_the_recorder_would_see_a_token_in_a_tool_result() -> None:
    """The same handler, given a run that does leak, finds the token (the scan can fail)."""
    from tests.examples.trace_recorder import Recorder

    @tool
    def leaky(x: str) -> str:
        """Returns a credential (what must never happen)."""
        return "access_token=" + x

    recorder = Recorder()
    leaky.invoke({"x": "tok-0123456789abcdef"}, config={"callbacks": [recorder]})
    text = "\n".join(recorder.events)
    assert "tok-0123456789abcdef" in text and '"on_tool_end"' in text
