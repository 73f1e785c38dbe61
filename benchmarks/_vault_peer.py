"""auth0-ai-langchain 1.0.1, measured in the same run with the same harness, in its own venv
(it needs langchain-core < 0.4): ``$AUTH0_AI_PYTHON``, else ``benchmarks/.peer-venv`` which
``python benchmarks/run.py --peer`` creates. Without it the peer rows say so; no figures
are copied from elsewhere."""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import sys

from benchmarks._util import Row, paired

HERE = pathlib.Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_PACKAGE = "auth0-ai-langchain==1.0.1"
NOT_MEASURED = "peer not measured: run python benchmarks/run.py --peer"


def peer_python() -> str | None:
    python = os.environ.get("AUTH0_AI_PYTHON") or str(PEER_VENV / "bin" / "python")
    return python if os.path.exists(python) else None


def create_peer_venv() -> str:
    """Create ``benchmarks/.peer-venv`` with the peer installed (pip, from the package index)."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_PACKAGE], check=True)
    return str(python)


@functools.lru_cache(maxsize=2)
def peer(quick: bool) -> dict:
    python = peer_python()
    if python is None:
        return {"source": NOT_MEASURED}
    args = [python, str(HERE / "_auth0_peer.py")] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"source": f"peer run failed: {type(exc).__name__}"}
    data["source"] = "auth0-ai-langchain 1.0.1, measured in this run"
    return data


def peer_rows(quick: bool) -> list[Row]:
    theirs = peer(quick)
    if "wrapped_us" not in theirs:
        return [Row("peer: with_token_vault", theirs["source"], float("nan"))]
    rows = [paired("peer: with_token_vault, async", "CPU µs per call, token cached (ainvoke)", theirs["wrapped_us"],
                   theirs["bare_us"], "µs", "its bare async tool.ainvoke", theirs["source"])]
    if not theirs.get("sync_invoke_works"):
        rows.append(Row("peer: with_token_vault, sync", "no sync path (invoke raises)", float("nan")))
    rows.append(paired("peer: 100 concurrent, expired", "max event-loop lag (ms), 1 fetch (2 ms stub)",
                       theirs["lag_ms"], theirs["bare_lag_ms"], "ms", "100 concurrent bare async calls",
                       "Auth0's SDK call is a blocking requests POST, stubbed with time.sleep"))
    return rows
