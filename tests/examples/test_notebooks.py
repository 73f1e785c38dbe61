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

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PILLARS = {"identity", "vault", "fga"}

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


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    """Every notebook executed afresh, the way notebooks/refresh.py does (a few at a time)."""
    refresh = _refresh_module()
    with refresh.this_python_kernel() as kernel, ThreadPoolExecutor(max_workers=3) as pool:
        futures = {nb.stem: pool.submit(refresh.execute, nb, kernel) for nb in NOTEBOOKS}
        return {name: future.result() for name, future in futures.items()}


def test_a_notebook_per_pillar() -> None:
    assert {nb.stem for nb in NOTEBOOKS} >= PILLARS
    assert set(KEY_OUTPUTS) == {nb.stem for nb in NOTEBOOKS}


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
    fresh = executed[path.stem]
    committed = nbformat.read(path, as_version=4)
    assert_no_secrets("\n".join(outputs(fresh)))
    for index, (now, then) in enumerate(zip(outputs(fresh), outputs(committed), strict=True)):
        assert now == then, f"{path.name}, code cell {index + 1} prints something else now: run notebooks/refresh.py"
