"""Removing the credentials a guard handed to a tool from what the tool returns.

A guard that gives a tool a token (the vault's access token, an approval's CIBA token)
knows exactly which strings it handed out. Whatever the tool returns goes to the model,
into graph state and into checkpoints, so the guard replaces those strings wherever they
appear in the result: plain text, a ``ToolMessage``'s content blocks and its ``artifact``,
and nested dicts, lists and tuples. Only verbatim copies are found: a tool that encodes
the token (base64, reversed...) or sends it elsewhere is not something a guard can see.

Example:
    >>> scrub({"ok": True, "auth": "Bearer tok-1234567"}, {"tok-1234567"})
    {'ok': True, 'auth': 'Bearer [redacted]'}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from langchain_core.messages import ToolMessage

from langchain_agent_auth.core._error_base import REDACTED

__all__ = ["REDACTED", "scrub"]

log = logging.getLogger("langchain_agent_auth")

_MAX_DEPTH = 32
_MIN_SECRET = 8  # shorter strings would match ordinary text; no real token is this short


def _text(text: str, secrets: tuple[str, ...], found: list[bool]) -> str:
    for secret in secrets:
        if secret in text:
            found[0] = True
            text = text.replace(secret, REDACTED)
    return text


def _walk(value: Any, secrets: tuple[str, ...], found: list[bool], depth: int) -> Any:
    if isinstance(value, str):
        return _text(value, secrets, found)
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, ToolMessage):
        content = _walk(value.content, secrets, found, depth + 1)
        artifact = _walk(value.artifact, secrets, found, depth + 1)
        if content is value.content and artifact is value.artifact:
            return value
        return value.model_copy(update={"content": content, "artifact": artifact})
    if isinstance(value, dict):
        pairs = [(_walk(k, secrets, found, depth + 1), _walk(v, secrets, found, depth + 1), k, v)
                 for k, v in value.items()]
        if all(k2 is k and v2 is v for k2, v2, k, v in pairs):
            return value
        return {k2: v2 for k2, v2, _, _ in pairs}
    if isinstance(value, list | tuple):
        items = [_walk(v, secrets, found, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


def scrub(result: Any, secrets: Iterable[str | None]) -> Any:
    """``result`` with every verbatim occurrence of ``secrets`` replaced by ``[redacted]``.

    Strings, ``ToolMessage`` content and artifact, and nested dicts / lists / tuples are
    searched; the result is returned unchanged (the same object) when nothing was found.

    Example:
        >>> scrub("your token is tok-123456", ["tok-123456"])
        'your token is [redacted]'
        >>> scrub(42, ["tok-123456"])
        42
    """
    wanted = tuple(sorted({s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET}, key=len,
                          reverse=True))
    if not wanted:
        return result
    found = [False]
    out = _walk(result, wanted, found, 0)
    if found[0]:
        log.warning("a tool returned a credential it was given; removed before the model sees it")
    return out
