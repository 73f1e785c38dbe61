"""Start the independent node-oidc-provider (tests/interop/oidc_provider) on loopback."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
from typing import Any

import httpx

from tests.support.tls import make_loopback_cert

NODE_DIR = pathlib.Path(__file__).resolve().parents[1] / "interop" / "oidc_provider"

AGENT = ("agent-client", "agent-client-secret-0123456789abcdef")
PING = ("agent-ping", "agent-ping-secret-0123456789abcdef")
POST = ("agent-post", "agent-post-secret-0123456789abcdef")
PKJWT_CLIENT = "agent-pkjwt"
API = "urn:example:api"
DOWNSTREAM = "urn:example:downstream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_available() -> str | None:
    """Why node-oidc-provider cannot run here, or None if it can."""
    if shutil.which(os.environ.get("NODE_BIN", "node")) is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "oidc-provider").exists():
        if shutil.which("npm") is None:
            return "npm is not installed"
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr[-500:]}"
    return None


class NodeIdP:
    """A running node-oidc-provider. ``admin()`` plays the user's phone for CIBA."""

    def __init__(self, workdir: pathlib.Path, *, poll_interval: int | None = 1) -> None:
        self.fixtures = workdir / "fixtures"
        self.cert, self.cert_key = make_loopback_cert(self.fixtures)
        self.ping_port = free_port()
        self.ping_url = f"https://127.0.0.1:{self.ping_port}/ciba/notify"
        env = {**os.environ, "PORT": "0", "FIXTURES": str(self.fixtures), "PING_ENDPOINT": self.ping_url,
               "NODE_EXTRA_CA_CERTS": str(self.cert)}
        if poll_interval:
            env["CIBA_POLL_INTERVAL"] = str(poll_interval)
        self.poll_interval = poll_interval
        started = time.perf_counter()
        self.proc = subprocess.Popen([os.environ.get("NODE_BIN", "node"), "server.mjs"], cwd=NODE_DIR, env=env,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.log: list[str] = []
        info = None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)
            if line.startswith("READY "):
                info = json.loads(line[6:])
                break
        if info is None:
            raise RuntimeError("node-oidc-provider failed to start:\n" + "".join(self.log))
        self.ready_seconds = time.perf_counter() - started
        threading.Thread(target=self._drain, daemon=True).start()
        self.issuer: str = info["issuer"]
        self.pkjwt_key: dict[str, Any] = json.loads((self.fixtures / "client-pkjwt.private.jwk.json").read_text())

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.issuer}/__admin/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def pending(self, account: str | None = None) -> list[dict[str, Any]]:
        params = {"status": "pending", **({"account_id": account} if account else {})}
        return self.admin("GET", "ciba", params=params)

    def approve(self, auth_req_id: str, **body: Any) -> Any:
        return self.admin("POST", f"ciba/{auth_req_id}/approve", json=body)

    def deny(self, auth_req_id: str, description: str | None = None) -> Any:
        body = {"error_description": description} if description else {}
        return self.admin("POST", f"ciba/{auth_req_id}/deny", json=body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
