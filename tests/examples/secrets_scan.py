"""What a token looks like in text: the scan every example output and notebook goes through."""

from __future__ import annotations

import re
from collections.abc import Iterable

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# Opaque credentials (the provider's are 43 URL-safe characters): a run of 32+ such characters
# holding both a digit and a letter. Long words like federated_connection_refresh_token_not_found
# have no digit.
OPAQUE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")


def token_shaped(text: str) -> list[str]:
    """Substrings of ``text`` that look like a JWT or an opaque credential."""
    found = JWT.findall(text)
    found += [m for m in OPAQUE.findall(text) if re.search(r"\d", m) and re.search(r"[A-Za-z]", m)]
    return found


def pieces(secret: str, size: int = 16) -> set[str]:
    """Overlapping pieces of ``secret``: printing part of a token counts as printing it."""
    if len(secret) <= size:
        return {secret}
    return {secret[i:i + size] for i in range(0, len(secret) - size + 1, 4)}


def assert_no_secrets(text: str, known: Iterable[str] = ()) -> None:
    """No token-shaped string in ``text``, and no part of the ``known`` secrets (actual
    tokens, client secrets, passwords)."""
    assert not token_shaped(text), f"token-shaped strings in the output: {token_shaped(text)[:3]}"
    leaked = [k for k in known if k and any(p in text for p in pieces(k))]
    assert not leaked, f"{len(leaked)} known secret(s), or part of one, in the output"

