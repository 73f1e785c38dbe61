"""What a tracer sees carries no token: every example and the demo, run in full under a
recording callback handler (``trace_recorder.py``), against every credential the providers
issued during the run."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from langchain_core.tools import tool

from tests.examples.test_examples import EXAMPLES, ROOT, SCRIPTS, env

pytestmark = pytest.mark.slow

RECORDER = pathlib.Path(__file__).with_name("trace_recorder.py")
DEMO = "agent-auth demo"
RUNS = [*SCRIPTS, DEMO]


def parts(token: str) -> list[str]:
    """The token and, for a JWT, its payload and signature (the header is shared by all)."""
    pieces = [token]
    if token.count(".") == 2:
        pieces += [p for p in token.split(".")[1:] if len(p) >= 16]
    return pieces


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[subprocess.CompletedProcess, dict]]]:
    tmp = tmp_path_factory.mktemp("traces")
    procs = {}
    for name in RUNS:
        out = tmp / f"{name.replace(' ', '_')}.json"
        if name == DEMO:
            args = ["-m", "langchain_agent_auth.cli", "demo", "--non-interactive", "--no-color",
                    "--data-dir", str(tmp / "demo")]
        else:
            args = [str(EXAMPLES / name)]
        proc = subprocess.Popen([sys.executable, str(RECORDER), str(out), *args], cwd=ROOT, env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        procs[name] = (proc, out)
    results = {}
    for name, (proc, out) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        results[name] = (done, json.loads(out.read_text()) if out.exists() else {})
    yield results


NO_AGENT = {"device_example.py"}


@pytest.mark.parametrize("name", RUNS)
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
