"""Helpers shared by the benchmarks: start node-oidc-provider and ``agent-auth dev`` as
subprocesses (each in its own process, so neither shares the load generator's GIL), and a
small keep-alive HTTP/1.1 load generator fast enough not to be the bottleneck."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_CLIENT = ("agent-client", "agent-client-secret-0123456789abcdef")  # from the reference server.mjs


def find_oidc_provider(path: str | None) -> pathlib.Path | None:
    """Where the node-oidc-provider setup is: ``path``, else tests/interop/oidc_provider, else
    ../shared/interop/oidc-provider."""
    candidates = [pathlib.Path(path)] if path else []
    candidates.append(ROOT / "tests" / "interop" / "oidc_provider")
    # ../shared next to the checkout (a git worktree may sit one level deeper)
    candidates += [
        base / "shared" / "interop" / "oidc-provider" for base in (ROOT.parent, ROOT.parent.parent)
    ]
    for candidate in candidates:
        if (candidate / "server.mjs").exists() and (candidate / "package.json").exists():
            return candidate
    return None


def prepare_oidc_provider(source: pathlib.Path) -> pathlib.Path:
    """Copy the setup into a cache directory (keyed by its lock file) and ``npm install`` it once."""
    lock = (source / "package-lock.json").read_bytes() + (source / "server.mjs").read_bytes()
    target = (
        pathlib.Path(tempfile.gettempdir()) / f"agent-auth-bench-oidc-{hashlib.sha256(lock).hexdigest()[:12]}"
    )
    if not (target / "node_modules" / "oidc-provider").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns("node_modules", "fixtures", "venv", "tests")
        )
        for path in target.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        target.chmod(target.stat().st_mode | 0o200)
        command = ["npm", "ci"] if (target / "package-lock.json").exists() else ["npm", "install"]
        subprocess.run([*command, "--no-audit", "--no-fund", "--silent"], cwd=target, check=True, timeout=300)
    return target


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[str]
    info: dict[str, Any]
    ready_s: float

    @property
    def issuer(self) -> str:
        return self.info["issuer"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wait_ready(name: str, proc: subprocess.Popen[str], started: float) -> Server:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY "):
            ready = time.perf_counter() - started
            info = json.loads(line[len("READY ") :])
            _drain(proc)
            return Server(name, proc, info, ready)
    proc.wait(timeout=5)
    raise RuntimeError(f"{name} did not start (exit {proc.returncode})")


def _drain(proc: subprocess.Popen[str]) -> None:
    import threading

    def run() -> None:
        for _ in proc.stdout or []:
            pass

    threading.Thread(target=run, daemon=True).start()


def start_node(setup: pathlib.Path, fixtures: pathlib.Path) -> Server:
    env = {**os.environ, "PORT": "0", "FIXTURES": str(fixtures)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["node", "server.mjs"],
        cwd=setup,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    return _wait_ready("node-oidc-provider", proc, started)


def start_devserver(data_dir: pathlib.Path, *extra: str) -> Server:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "langchain_agent_auth.cli",
            "dev",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    return _wait_ready("agent-auth dev", proc, started)


# ---------------------------------------------------------------------------- load generator
async def _worker(host: str, port: int, request: bytes, stop_at: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            counts["ok" if status == 200 else "failed"] += 1
    finally:
        writer.close()


async def _load(host: str, port: int, request: bytes, seconds: float, concurrency: int) -> dict[str, int]:
    counts = {"ok": 0, "failed": 0}
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(*(_worker(host, port, request, stop_at, counts) for _ in range(concurrency)))
    return counts


def token_request(host: str, port: int, client: tuple[str, str], body: str) -> bytes:
    import base64

    basic = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
    data = body.encode()
    return (
        f"POST /token HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {basic}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def measure(
    issuer: str, client: tuple[str, str], body: str, *, seconds: float, concurrency: int, warmup: float = 1.0
) -> tuple[float, int]:
    """Requests per second of 200 answers, and the count of non-200 answers."""
    from urllib.parse import urlsplit

    parts = urlsplit(issuer)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = token_request(host, port, client, body)
    asyncio.run(_load(host, port, request, warmup, concurrency))
    counts = asyncio.run(_load(host, port, request, seconds, concurrency))
    return counts["ok"] / seconds, counts["failed"]
