"""A user's browser and a web app's server for tests: HTML forms, an ASGI app served on
loopback (e.g. the vault's callback), and logs of the browser kept out of the test's capture."""

from __future__ import annotations

import contextlib
import html
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Raise ``names``' loggers to WARNING for a while (the browser is not the agent's process:
    its request log, URLs with authorization codes, stays out of the captured logs)."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)  # children (httpcore.http11...) inherit it
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"')
_INPUT = re.compile(r"<input\b[^>]*>", re.S)


def form_fields(page: str) -> tuple[str | None, dict[str, str]]:
    """The first form's action and its inputs' names and values."""
    m = _FORM.search(page)
    if not m:
        return None, {}
    fields: dict[str, str] = {}
    for tag in _INPUT.findall(page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    return html.unescape(m.group(1)), fields


class ServedApp:
    """Any ASGI app served by uvicorn in a thread on 127.0.0.1 (the vault's callback, a
    protected MCP server). The port is bound at once and handed over to uvicorn, so no other
    process can take it meanwhile; an app that must know its own URL (an MCP server's
    resource metadata) is given later, to :meth:`serve`. ``lifespan="on"`` runs the app's
    startup and shutdown (FastMCP's session manager needs them).

        >>> async def hello(scope, receive, send):
        ...     await send({"type": "http.response.start", "status": 200, "headers": []})
        ...     await send({"type": "http.response.body", "body": b"hello"})
        >>> import httpx
        >>> with ServedApp(hello) as served:
        ...     httpx.get(served.url).text
        'hello'
    """

    def __init__(self, app: Any = None, *, lifespan: Literal["on", "off"] = "off") -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lifespan = lifespan
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        if app is not None:
            self.serve(app)

    def serve(self, app: Any) -> ServedApp:
        """Start serving ``app`` on the bound port; back once uvicorn has started."""
        self.server = server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=self._lifespan,
                                                             access_log=False))
        self.thread = threading.Thread(target=server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test app server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ServedApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
