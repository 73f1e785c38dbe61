"""Bounded load on a real ``agent-auth dev`` process: 50 concurrent clients get no errors, and a
``kill -9`` in the middle of the load loses nothing the server acknowledged (WAL + commit before
the answer). Counts only, no timing: the figures live in ``benchmarks/devserver_load.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

CIBA = "urn:openid:params:grant-type:ciba"
CC = {"grant_type": "client_credentials", "scope": "api:read", "resource": "urn:example:api"}


def start(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_agent_auth.cli", "dev", "--port", "0", "--data-dir", str(data_dir),
         "--ciba-interval", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("READY "), line
    return proc, json.loads(line[len("READY "):])


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


async def test_fifty_concurrent_clients_get_no_errors(tmp_path: Path) -> None:
    proc, info = start(tmp_path / "load")
    statuses: list[int] = []
    try:
        auth = (info["client_id"], info["client_secret"])
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=info["issuer"], auth=auth, limits=limits, timeout=60) as client:

            async def one_client() -> None:
                for _ in range(2):
                    statuses.append((await client.post("/token", data=CC)).status_code)

            await asyncio.gather(*(one_client() for _ in range(50)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(statuses) == 100 and set(statuses) == {200}, sorted(set(statuses))


async def test_kill_9_mid_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "crash"
    proc, info = start(data_dir)
    auth = (info["client_id"], info["client_secret"])
    tokens: list[str] = []
    requests: list[str] = []
    killed = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=info["issuer"], auth=auth, timeout=30) as client:

            async def tokens_worker() -> None:
                while not killed.is_set():
                    try:
                        r = await client.post("/token", data=CC)
                    except httpx.TransportError:
                        return  # the server died under us: that answer was never acknowledged
                    if r.status_code == 200:
                        tokens.append(r.json()["access_token"])
                    if len(tokens) >= 60 and not killed.is_set():
                        os.kill(proc.pid, signal.SIGKILL)  # in the middle of the other workers' requests
                        killed.set()

            async def ciba_worker(user: str) -> None:
                while not killed.is_set() and len(requests) < 20:
                    try:
                        r = await client.post("/bc-authorize", data={"login_hint": user, "scope": "openid"})
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        requests.append(r.json()["auth_req_id"])

            await asyncio.gather(*(tokens_worker() for _ in range(8)), ciba_worker("alice"), ciba_worker("bob"))
    finally:
        proc.wait(timeout=10)
    assert killed.is_set() and len(tokens) >= 60 and requests

    proc, info = start(data_dir)
    try:
        with httpx.Client(base_url=info["issuer"], auth=auth, timeout=30) as client:
            lost = [t for t in tokens if client.post("/introspect", data={"token": t}).json().get("active") is not True]
            assert not lost, f"{len(lost)} of {len(tokens)} acknowledged tokens lost"
            jtis = {_jti(t) for t in tokens}
            assert len(jtis) == len(tokens)
            for auth_req_id in requests:
                r = client.post("/token", data={"grant_type": CIBA, "auth_req_id": auth_req_id})
                assert r.json()["error"] == "authorization_pending", r.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
