"""Token responses: what a token endpoint returns, with tokens kept out of repr/str.

Example:
    >>> t = TokenResponse.from_json({"access_token": "abc.def", "token_type": "Bearer",
    ...                              "expires_in": 60}, now=1000.0)
    >>> t.expires_at, "abc" in repr(t)
    (1060.0, False)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from langchain_agent_auth.core.errors import ProtocolError

__all__ = ["TokenResponse"]

_KNOWN = {
    "access_token", "token_type", "expires_in", "refresh_token", "id_token", "scope",
    "issued_token_type", "authorization_details",
}


@dataclass(frozen=True, repr=False)
class TokenResponse:
    """A successful token endpoint answer (RFC 6749 §5.1 and extensions).

    ``repr()`` and ``str()`` never show the tokens themselves.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: tuple[str, ...] | None = None
    issued_token_type: str | None = None
    authorization_details: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, now: float | None = None) -> TokenResponse:
        """Validate a token endpoint JSON body (raises :class:`ProtocolError` when invalid)."""
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("token response has no access_token")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str):
            raise ProtocolError("token response has a non-string token_type")
        expires_in = data.get("expires_in")
        expires_at = None
        if expires_in is not None:
            try:
                seconds = float(expires_in)
            except (TypeError, ValueError):
                raise ProtocolError("token response has a non-numeric expires_in") from None
            expires_at = (time.time() if now is None else now) + max(0.0, seconds)
        scope = data.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise ProtocolError("token response has a non-string scope")
        details = data.get("authorization_details")
        if details is not None and not (
            isinstance(details, list) and all(isinstance(d, dict) for d in details)
        ):
            raise ProtocolError("token response has malformed authorization_details")
        for name in ("refresh_token", "id_token", "issued_token_type"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ProtocolError(f"token response has a non-string {name}")
        return cls(
            access_token=token,
            token_type=token_type,
            expires_at=expires_at,
            refresh_token=data.get("refresh_token"),
            id_token=data.get("id_token"),
            scope=tuple(s for s in scope.split(" ") if s) if scope is not None else None,
            issued_token_type=data.get("issued_token_type"),
            authorization_details=details,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds left before expiry (negative once expired), or ``None`` if unknown."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def is_expired(self, leeway: float = 30.0, now: float | None = None) -> bool:
        """Whether the token expires within ``leeway`` seconds."""
        left = self.expires_in(now)
        return left is not None and left <= leeway

    def __repr__(self) -> str:
        parts = [f"token_type={self.token_type!r}", f"expires_at={self.expires_at!r}",
                 f"scope={self.scope!r}"]
        if self.refresh_token:
            parts.append("refresh_token=[redacted]")
        if self.id_token:
            parts.append("id_token=[redacted]")
        if self.issued_token_type:
            parts.append(f"issued_token_type={self.issued_token_type!r}")
        return f"TokenResponse(access_token=[redacted], {', '.join(parts)})"

    __str__ = __repr__
