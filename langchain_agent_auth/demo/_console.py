"""The demo's terminal: a readable transcript, a status line while waiting, and answers
typed by the user, read without blocking the waiting loops.

Everything written goes through :func:`~langchain_agent_auth.errors.redact` and the
known secrets of the run (client secrets, the admin token...) are removed exactly, so a
token cannot reach the terminal even by mistake. URLs the user must open are written
with :meth:`Console.url`, which only removes the known secrets (a ``state`` parameter is
not a credential, but it looks like one to the shape-based redaction).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import TextIO

from langchain_agent_auth.core.errors import redact

__all__ = ["Answers", "Console", "Status"]

_COLORS = {
    "identity": "36",  # cyan
    "vault": "35",  # magenta
    "approval": "33",  # yellow
    "fga": "32",  # green
    "setup": "2",  # dim
    "demo": "1",  # bold
    "user": "1;34",  # bold blue
    "assistant": "1;32",  # bold green
    "tool": "2",
    "error": "1;31",
    "dim": "2",
}
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Console:
    """Writes the transcript. Colors and the animated status line only on a terminal.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> c = Console(out, color=False, secrets=["s3cret-value"])
        >>> c.label("vault", "stored s3cret-value safely")
        >>> out.getvalue()
        '[vault] stored [redacted] safely\\n'
    """

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None,
                 secrets: list[str] | None = None, err: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        tty = _isatty(self.stream)
        self.tty = tty
        self.color = tty and not os.environ.get("NO_COLOR") if color is None else color
        self.secrets: list[str] = [s for s in (secrets or []) if s]
        self.safe: list[str] = []
        self._lock = threading.Lock()
        self._status_shown = False

    # -- plumbing

    def add_secrets(self, *values: str | None) -> None:
        """Remember values that must never be written (exact match)."""
        self.secrets.extend(v for v in values if v and len(v) >= 4)

    def add_safe(self, *values: str) -> None:
        """Text that is never a credential though it may look like one (the data directory's
        path): kept as is by the shape-based redaction."""
        self.safe.extend(v for v in values if v and v not in self.safe)
        self.safe.sort(key=len, reverse=True)

    def _paint(self, kind: str, text: str) -> str:
        code = _COLORS.get(kind)
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    def _clean(self, text: str) -> str:
        for index, value in enumerate(self.safe):
            text = text.replace(value, f"\x00{index}\x00")
        text = redact(text, *self.secrets)
        for index, value in enumerate(self.safe):
            text = text.replace(f"\x00{index}\x00", value)
        return text

    def _write(self, text: str, stream: TextIO | None = None) -> None:
        target = stream or self.stream
        with self._lock:
            self._clear_status()
            target.write(text + "\n")
            target.flush()

    def _clear_status(self) -> None:
        """Erase the status line (caller holds the lock)."""
        if self._status_shown and self.tty:
            self.stream.write("\r\x1b[2K" if self.color else "\r" + " " * 79 + "\r")
            self.stream.flush()
        self._status_shown = False

    # -- the transcript

    def line(self, text: str = "") -> None:
        """A plain line."""
        self._write(self._clean(text))

    def blank(self) -> None:
        self._write("")

    def label(self, kind: str, text: str) -> None:
        """``[kind] text``: which pillar (or setup) acted."""
        self._write(f"{self._paint(kind, f'[{kind}]')} {self._clean(text)}")

    def url(self, kind: str, caption: str, url: str) -> None:
        """A URL the user may open: only the run's known secrets are removed from it."""
        for secret in self.secrets:
            url = url.replace(secret, "[redacted]")
        self._write(f"{self._paint(kind, f'[{kind}]')} {self._clean(caption)} {url}")

    def say(self, who: str, text: str, *, kind: str | None = None) -> None:
        """A chat line: ``user (alice): ...`` or ``assistant: ...``."""
        head = self._paint(kind or who.split(" ")[0], f"{who}:")
        body = self._clean(text)
        pad = " " * (len(who) + 2)
        self._write(head + " " + body.replace("\n", "\n" + pad))

    def dim(self, text: str) -> None:
        self._write(self._paint("dim", self._clean(text)))

    def heading(self, text: str) -> None:
        self._write(self._paint("demo", self._clean(text)))

    def error(self, text: str) -> None:
        """An error for the user, on stderr."""
        self._write(f"{self._paint('error', 'error:')} {self._clean(text)}", self.err)

    def notice(self, text: str) -> None:
        """A message on stderr that is not an error (e.g. after Ctrl-C)."""
        self._write(self._clean(text), self.err)

    def prompt(self, text: str) -> None:
        """A question; the answer comes from :class:`Answers`."""
        with self._lock:
            self._clear_status()
            self.stream.write(self._paint("demo", self._clean(text)) + ("" if self.tty else "\n"))
            self.stream.flush()

    def status(self, text: str) -> Status:
        """A status line for a wait: a spinner on a terminal, plain lines otherwise."""
        return Status(self, text)

    def _draw_status(self, text: str) -> None:
        with self._lock:
            self.stream.write("\r\x1b[2K" + text if self.color else "\r" + text)
            self.stream.flush()
            self._status_shown = True


class Status:
    """Progress while waiting: call :meth:`tick` often; :meth:`close` when done.

    On a terminal it redraws one line (spinner, text, seconds waited); elsewhere it writes
    the text once and then a short line every ``every`` seconds.
    """

    def __init__(self, console: Console, text: str, *, every: float = 10.0) -> None:
        self.console = console
        self.text = text
        self.started = time.monotonic()
        self.every = every
        self._frame = 0
        self._last_plain = self.started
        self._closed = False
        if not console.tty:
            console.dim(f"... {text}")
        else:
            self.tick()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, text: str) -> None:
        """Change the text (on a terminal at once; elsewhere it is written as a new line)."""
        if text == self.text:
            return
        self.text = text
        if not self.console.tty:
            self.console.dim(f"... {text}")
        else:
            self.tick()

    def tick(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if self.console.tty:
            frame = _SPINNER[self._frame % len(_SPINNER)] if self.console.color else "-\\|/"[self._frame % 4]
            self._frame += 1
            self.console._draw_status(f"{frame} {self.console._clean(self.text)} ({now - self.started:.0f}s)")
        elif now - self._last_plain >= self.every:
            self._last_plain = now
            self.console.dim(f"... still waiting ({now - self.started:.0f}s)")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.console.tty:
            with self.console._lock:
                self.console._clear_status()

    def __enter__(self) -> Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Answers:
    """Lines typed by the user, read by a daemon thread so waiting loops stay responsive.

    Example:
        >>> import io
        >>> a = Answers(io.StringIO("a\\n"))
        >>> a.get(timeout=2.0)
        'a'
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.closed = False
        self._thread = threading.Thread(target=self._read, name="agent-auth-demo-input", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in iter(self.stream.readline, ""):
                self._lines.put(raw.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def get(self, timeout: float) -> str | None:
        """The next line, or ``None`` when nothing was typed within ``timeout`` seconds.

        Raises ``EOFError`` once the input is closed and every line was read.
        """
        if self.closed:
            raise EOFError
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self.closed = True
            raise EOFError
        return line


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
