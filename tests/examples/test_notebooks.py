"""The notebooks run top to bottom offline (nbclient, a kernel on this Python), and what is
committed is what they print today: executed, in order, without errors, with no token, no
secret and nothing that changes from run to run (ports, temporary paths)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from tests.examples.secrets_scan import JWT, assert_no_secrets
from tests.support import prefork as prefork_module
from tests.support.prefork import Zygote

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOTEBOOK_NAMES = {"identity", "vault", "approval", "fga", "combined", "mcp"}

# What each committed notebook must show (substrings of its outputs).
KEY_OUTPUTS: dict[str, list[str]] = {
    "identity": [
        "{'sub': 'alice', 'aud': 'urn:example:api'",
        "InvalidSignatureError: the token's signature does not verify",
        "tool (success): You are alice.",
        "tool (error): This tool acts only for the signed-in user; it cannot act for another user.",
        "tool (success): You are bob.",
        "access token in a checkpoint: False",
        "no token: IdentityError",
        "progress: paused device_authorization - a user code to enter: True",
        "paused: device_authorization - open <provider>/device",
        "signed in as: alice",
        "a token in the checkpoints: False",
    ],
    "vault": [
        "not_connected - missing: ('calendar.read', 'calendar.write')",
        "paused: connect_account",
        "callback page: 200 - True",
        "tool (success): added 'Lunch with Bob' on 2030-01-04T12:00",
        "alice's calendar: 2030-01-04T12:00 Lunch with Bob",
        "upstream_revoked=True",
        "tool (error): The user did not connect their calendar account",
        "AccessToken(token=[redacted]",
    ],
    "approval": [
        "paused: approval_pending",
        "'binding_message': 'Pay 250 EUR to Bob'",
        "auth_req_id in the payload: False",
        "Pay 250 EUR to Bob | ['Pay 250.00 EUR to Bob']",
        "tool (success): sent 250.00 EUR to Bob",
        "tool (error): The user denied this transfer call",
        "paused: tool_approval",
        "ResumeValueError: an approval cannot switch the tool",
        "still paused: True",
        "tool (success): emailed 'Q3 report' to team@example.com",
        "approval_decided transfer approve ciba sha256:",
        "approval_decided transfer reject ciba sha256:",
        "approval_refused send_email invalid_resume",
        "approval_executed send_email done in_app sha256:",
    ],
    "combined": [
        "tool (success): Invoice 42 from Bob",
        "acting for: alice",
        "paused: approval_pending",
        "tool (success): sent 250.00 EUR to Bob",
        "paused: connect_account",
        "callback: 200",
        "tool (success): added 'Invoice 42 paid' on 2030-01-04T09:00",
        "tool (error): Access denied: you don't have viewer access to document:invoice-42.",
        "whoami: {'subject': 'alice', 'source': 'token'}",
        "list_connections: [{'connection': 'calendar', 'status': 'connected'",
        "what_can_i_access: {'relation': 'viewer', 'type': 'document', 'objects': ['document:invoice-42']",
    ],
    "mcp": [
        "401 Bearer",
        "MCPAuthorizationRequired - scopes: ('notes:read',)",
        "PKCE and resource in the URL: True",
        "tools: ['list_notes', 'add_note']",
        "tool: alice's notes: none yet",
        "paused: connect_account - scopes: notes:read notes:write",
        "tool: added 'buy milk' to alice's notes",
        "tool: bob's notes: none yet",
        "one token each: True",
    ],
    "fga": [
        "bob views the roadmap:   False",
        "TupleError 2027",
        "bob: ['handbook', 'salaries']",
        "tool (error): Access denied: you don't have viewer access to document:roadmap.",
        "fga: user:bob viewer document:roadmap -> allowed",
        "tool (error): Access denied: you don't have owner access to document:salaries.",
    ],
}


def _refresh_module():
    spec = importlib.util.spec_from_file_location("notebooks_refresh", ROOT / "notebooks" / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outputs(nb: nbformat.NotebookNode) -> list[str]:
    """The text each code cell printed or returned (streams joined), one entry per code cell."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.get("data", {}).get("text/plain", ""))
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
        texts.append("".join(parts))
    return texts


# Run after a notebook, in its kernel: the credentials it held (every token-shaped string in its
# variables, the provider's client secrets, admin token and passwords), so the test can check
# that no output shows any of them, even in part.
PROBE = """
import json as _json, re as _re
def _strings(value, depth=0):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict) and depth < 3:
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 3:
        for item in value:
            yield from _strings(item, depth + 1)
_held = {s for name, v in list(globals().items()) if not name.startswith("_") for s in _strings(v)
         if _re.fullmatch(r"[A-Za-z0-9_.-]{32,}", s) and _re.search(r"[0-9]", s)}
if "idp" in globals():
    _held |= {idp.info[k] for k in ("client_secret", "admin_token", "upstream_client_secret")}
    _held |= set(idp.info["users"].values())
print(_json.dumps(sorted(_held)))
"""


def execute_with_probe(refresh, path: pathlib.Path, kernel: str, tmp: pathlib.Path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    copy = tmp / path.name
    nbformat.write(nb, copy)
    fresh = refresh.execute(copy, kernel)
    probe = fresh.cells.pop()
    return fresh, json.loads(probe.outputs[0].text)


@pytest.fixture(scope="module")
def executed(prefork: Zygote, tmp_path_factory) -> dict[str, tuple[nbformat.NotebookNode, list[str]]]:
    """Every notebook executed afresh the way notebooks/refresh.py does (a few at a time),
    with the credentials its kernel held. Each kernel is forked from the session's
    pre-imported Python (the kernelspec runs ``tests/support/prefork.py`` as its launcher)."""
    refresh = _refresh_module()
    tmp = tmp_path_factory.mktemp("notebooks")
    launcher = [prefork_module.__file__, prefork.path]
    with refresh.this_python_kernel(launcher) as kernel, ThreadPoolExecutor(max_workers=3) as pool:
        futures = {nb.stem: pool.submit(execute_with_probe, refresh, nb, kernel, tmp) for nb in NOTEBOOKS}
        return {name: future.result() for name, future in futures.items()}


def test_a_notebook_per_pillar() -> None:
    assert {nb.stem for nb in NOTEBOOKS} == NOTEBOOK_NAMES == set(KEY_OUTPUTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_and_clean(path: pathlib.Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run notebooks/refresh.py"
    assert "LocalProvider" in "".join(c.source for c in code)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code) // 2, "explain each step"
    text = "\n".join(outputs(nb))
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    for line in KEY_OUTPUTS[path.stem]:
        assert line in text, f"{path.name}: missing output {line!r}"
    assert "127.0.0.1:" not in text and "/tmp" not in text and "Traceback" not in text
    assert_no_secrets(text)
    assert not JWT.search(path.read_text()), "a JWT in the notebook file"
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_prints_what_is_committed(executed, path: pathlib.Path) -> None:
    fresh, held = executed[path.stem]
    committed = nbformat.read(path, as_version=4)
    assert len(held) >= 3, "the probe found the provider's credentials"
    assert_no_secrets("\n".join(outputs(fresh)), held)
    for index, (now, then) in enumerate(zip(outputs(fresh), outputs(committed), strict=True)):
        assert now == then, f"{path.name}, code cell {index + 1} prints something else now: run notebooks/refresh.py"
