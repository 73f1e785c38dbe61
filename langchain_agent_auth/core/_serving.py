"""Helpers shared by the two servers the package runs (``agent-auth dev`` and ``agent-auth fga
serve``): one listening-socket helper and bounded JSON parsing.

Example:
    >>> load_json_bounded('{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> load_json_bounded("[" * 40 + "]" * 40)
    Traceback (most recent call last):
    ...
    langchain_agent_auth.core._serving.JSONLimitError: JSON nested deeper than 32 levels
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from typing import Any

MAX_JSON_DEPTH = 32

# Strings are skipped when measuring depth (a "[" inside a string is not nesting).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class JSONLimitError(ValueError):
    """JSON text that is not JSON, or nested deeper than the server accepts."""


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in ``text`` (without building anything).

    Example:
        >>> json_depth('{"a": ["[[[", {"b": 1}]}')
        3
    """
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json_bounded(raw: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting beyond ``max_depth`` before parsing (no RecursionError,
    no deep structure reaching code that walks it recursively).

    Raises :class:`JSONLimitError` (a ``ValueError``) for invalid or too deeply nested JSON.
    """
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise JSONLimitError("the JSON text is not UTF-8") from None
    if json_depth(raw) > max_depth:
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise JSONLimitError("not valid JSON") from None


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket (``port=0``: a free port chosen by the OS).

    Example:
        >>> sock = bind_socket("127.0.0.1", 0)
        >>> sock.getsockname()[1] > 0
        True
        >>> sock.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
