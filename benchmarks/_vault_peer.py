"""auth0-ai-langchain's figures for the vault benchmarks: measured side by side when its venv
exists (``$AUTH0_AI_PYTHON`` or ``/tmp/a0/bin/python``; create it with
``python -m venv /tmp/a0 && /tmp/a0/bin/pip install auth0-ai-langchain==1.0.1``), else the
figures from ../shared/peers.md, labelled as such."""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parent

# ../shared/peers.md, "Measured figures to beat" (auth0-ai-langchain 1.0.1, 2-core machine).
PEERS_MD = {"ratio": 2.22, "extra_us": 380.0, "concurrent_fetches": 1, "source": "peers.md figure"}


@functools.lru_cache(maxsize=2)
def peer(quick: bool) -> dict:
    python = os.environ.get("AUTH0_AI_PYTHON", "/tmp/a0/bin/python")
    if not os.path.exists(python):
        return dict(PEERS_MD)
    args = [python, str(HERE / "_auth0_peer.py")] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return dict(PEERS_MD)
    data["ratio"] = data["wrapped_us"] / data["bare_us"]
    data["extra_us"] = data["wrapped_us"] - data["bare_us"]
    data["source"] = "auth0-ai-langchain 1.0.1, measured in this run"
    return data
