"""The demo's vocabulary and plumbing: the scripted conversation (:func:`script`, :class:`Step`),
its errors, the app's callback server for the vault's connect flow, text helpers for the
transcript, and signal handling (Ctrl-C and SIGTERM keep the state for a rerun).

Example:
    >>> [s.decision for s in script("bob")][2:4]
    ['approve', 'deny']
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTO_TIMEOUT",
    "CIBA_INTERVAL",
    "STATE_VERSION",
    "SYSTEM_PROMPT",
    "CallbackServer",
    "DemoError",
    "ProviderStopped",
    "Step",
    "StopSignals",
    "StopWaiting",
    "args_text",
    "ignore_sigint",
    "isatty",
    "jwt_header",
    "port_free",
    "script",
    "short",
    "time_left",
]

STATE_VERSION = 1
CIBA_INTERVAL = 1
#: How long an unattended run waits for a paused run to resume before it gives up.
AUTO_TIMEOUT = 60.0
SYSTEM_PROMPT = (
    "You are a helpful assistant in a demo of langchain-agent-auth. Use the tools to read the user's "
    "calendar, send bank transfers in EUR and search the company documents. Say plainly when something "
    "was not approved or not allowed. Keep answers short."
)


class DemoError(Exception):
    """Something the user can fix; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class ProviderStopped(DemoError):
    """The local identity provider stopped answering during the run."""

    def __init__(self, message: str = "the local identity provider stopped") -> None:
        super().__init__(message, code=1)


@dataclass(frozen=True)
class Step:
    """One user message of the conversation, and how an approval it raises is answered
    in ``--approve auto`` mode."""

    user: str
    text: str
    decision: str | None = None
    reason: str | None = None


def script(user: str) -> list[Step]:
    """The conversation: ``user`` talks to the assistant; the other user shows the fga difference.

    Example:
        >>> [s.user for s in script("alice")]
        ['alice', 'alice', 'alice', 'alice', 'alice', 'bob']
    """
    other = "bob" if user == "alice" else "alice"
    payee = other.capitalize()
    question = "Search the documents for our plans."
    return [
        Step(user, "Hi! Who am I talking to?"),
        Step(user, "What's on my calendar this week?"),
        Step(user, f"Please pay {payee} 250 EUR for the concert tickets.", decision="approve"),
        Step(user, "Also send 5,000 EUR to Mallory.", decision="deny",
             reason="I don't know any Mallory. Not me!"),
        Step(user, question),
        Step(other, question),
    ]


def time_left(seconds: float) -> str:
    """``4m05s``, ``1h02m``: the time left before a request expires.

    Example:
        >>> time_left(245.2), time_left(3720), time_left(-3)
        ('4m05s', '1h02m', '0m00s')
    """
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def jwt_header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def short(value: Any, limit: int = 160) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())


class CallbackServer:
    """The app's web server for the vault's connect-account callback (a thread, loopback)."""

    def __init__(self, port: int = 0) -> None:
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            if not port:
                raise
            self.sock.bind(("127.0.0.1", 0))  # the saved port is taken: links of the earlier run break
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any) -> None:
        import asyncio

        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        server, sock = self._server, self.sock
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                        name="agent-auth-demo-callback", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise DemoError("the demo's callback server did not start", code=1)
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()


class StopWaiting(Exception):
    """The user chose to stop waiting for the browser (the demo signs in instead)."""


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the provider binds: TIME_WAIT is fine
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def ignore_sigint() -> Iterator[None]:
    """Let the clean-up finish even if Ctrl-C is pressed again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM end the demo the same way (state kept), and are remembered.

    Python raises ``KeyboardInterrupt`` wherever the main thread is; inside a library's callback
    a library may turn it into its own error (a checkpoint's msgpack ``ext_hook`` raises
    ``ValueError: ext_hook failed``). :attr:`seen` tells the run that such an error was an
    interruption. Outside the main thread it does nothing (signals reach only that thread).

    Example:
        >>> stops = StopSignals.install()
        >>> stops.seen
        False
        >>> stops.restore()
    """

    def __init__(self) -> None:
        self.seen = False
        self._previous: dict[int, Any] = {}

    @classmethod
    def install(cls) -> StopSignals:
        stops = cls()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                stops._previous[signum] = signal.signal(signum, stops._handler)
        return stops

    def _handler(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
