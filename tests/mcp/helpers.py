"""A protected FastMCP server on loopback, and a scripted browser for the local provider's
sign-in pages (the user's part of an authorization code flow)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from langchain_agent_auth.devserver._provider import _forms


def sign_in(authorize_url: str, username: str, password: str, redirect_uri: str) -> str:
    """Play the user's browser: sign in, allow, and return the URL the provider redirects to."""
    target = urlsplit(redirect_uri)
    with httpx.Client(follow_redirects=False, timeout=15) as browser:
        response = browser.get(authorize_url)
        for _ in range(12):
            if response.status_code in (301, 302, 303, 307):
                location = urljoin(str(response.url), response.headers["location"])
                parts = urlsplit(location)
                if (parts.scheme, parts.hostname, parts.path) == (target.scheme, target.hostname, target.path):
                    return location
                response = browser.get(location)
                continue
            forms = [f for f in _forms(response.text) if f["method"] == "post"]
            login = next((f for f in forms if any(n == "password" for n, _, _ in f["fields"])), None)
            consent = next((f for f in forms if any(n == "decision" for n, _, _ in f["buttons"])), None)
            if login is not None:
                data = {n: v for n, v, _ in login["fields"]}
                data.update(username=username, password=password)
                response = browser.post(urljoin(str(response.url), login["action"]), data=data)
            elif consent is not None:
                pairs = [(n, v) for n, v, _ in consent["fields"]] + [("decision", "allow")]
                response = browser.post(urljoin(str(response.url), consent["action"]), content=urlencode(pairs),
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
            else:
                raise AssertionError(f"unexpected page during sign-in: HTTP {response.status_code}")
    raise AssertionError("sign-in did not reach the redirect URI")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedApp:
    """An ASGI app served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the MCP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
