"""The root of the error tree (:mod:`langchain_agent_auth.core.errors` documents the whole
tree and re-exports every class) and the redaction every error message goes through.

Example:
    >>> str(ProtocolError("bad answer with access_token=abc123"))
    'bad answer with access_token=[redacted]'
"""

from __future__ import annotations

import re

__all__ = [
    "REDACTED",
    "AgentAuthError",
    "ConfigurationError",
    "ProtocolError",
    "ProviderUnavailableError",
    "redact",
]

# --------------------------------------------------------------------------- redaction

# A JWT / JWS / JWE compact serialization: base64url segments separated by dots.
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){1,4}")
# Long opaque credentials (OAuth tokens, auth_req_ids, secrets): 32+ url-safe chars with
# both letters and digits. Plain words, URLs and error codes do not match.
_OPAQUE_RE = re.compile(
    r"(?<![A-Za-z0-9_\-./:])"
    r"(?=[A-Za-z0-9_\-~+/]*\d)(?=[A-Za-z0-9_\-~+/]*[A-Za-z])"
    r"[A-Za-z0-9_\-~+/]{32,}={0,2}"
    r"(?![A-Za-z0-9_\-./])"
)
# key=value pairs whose key names a secret.
_KV_RE = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|client_secret|subject_token|actor_token|"
    r"auth_req_id|client_notification_token|code_verifier|code|password|assertion|"
    r"client_assertion|authorization)([\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;}]+)"
)
#: What every redaction in the toolkit puts in place of a secret.
REDACTED = "[redacted]"


def redact(text: str, *secrets: str | None) -> str:
    """Remove tokens and secrets from ``text``.

    Known secret values passed in ``secrets`` are removed exactly; JWTs, long opaque
    credentials and ``name=value`` pairs with a secret-sounding name are removed by shape.

    Example:
        >>> redact("bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here")
        'bad token [redacted] here'
        >>> redact("refresh_token=abc123", )
        'refresh_token=[redacted]'
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _JWT_RE.sub(REDACTED, text)
    text = _KV_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _OPAQUE_RE.sub(REDACTED, text)
    return text


# --------------------------------------------------------------------------- base


class AgentAuthError(Exception):
    """Base class of every error raised by langchain-agent-auth.

    ``message`` is redacted on construction; ``hint`` is a short, actionable sentence
    suitable for a ToolMessage shown to the model.
    """

    hint: str | None = None

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        self.message = redact(str(message))
        if hint is not None:
            self.hint = redact(hint)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def for_model(self) -> str:
        """A short message for the model: what failed and, when known, what to do."""
        return self.hint or self.message


class ConfigurationError(AgentAuthError):
    """Wrong or missing settings. Raised at construction time where possible."""


class ProtocolError(AgentAuthError):
    """A server answered something no spec allows (HTML, empty body, missing fields...)."""

    def __init__(self, message: str = "", *, status_code: int | None = None, hint: str | None = None):
        self.status_code = status_code
        super().__init__(message, hint=hint)


class ProviderUnavailableError(ProtocolError):
    """The server could not be reached, timed out, or kept answering 5xx after retries."""
