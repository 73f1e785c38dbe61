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
from typing import Any

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
    """Any ASGI app served by uvicorn in a thread on 127.0.0.1 (e.g. the vault's callback)."""

    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # bound here and handed over: no other process can take the port meanwhile
        self.url, self._sock = f"http://127.0.0.1:{sock.getsockname()[1]}", sock
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test app server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self._sock.close()
