"""Keep tokens and secrets out of log records, ours and the libraries' we run.

:class:`RedactingFilter` rewrites a record whose formatted message carries a credential:
JWTs, long opaque tokens, ``name=value`` / ``"name": "value"`` pairs with a secret name
(``access_token``, ``refresh_token``, ``id_token``, ``client_secret``, ``auth_req_id``,
``code``, ``code_verifier``, ``subject_token``, ``assertion``...) and ``Bearer`` values.
Records are formatted lazily, so the filter formats the message once, and only when it
changed replaces ``msg`` and drops ``args``: handlers never see the token.

:func:`install_log_redaction` puts the filter on the loggers that can carry a token in a
process the toolkit runs (authlib logs ``Issue token {...}`` at DEBUG; httpx, httpcore,
uvicorn, langgraph, langsmith and our own) and, optionally, on handlers. ``agent-auth``,
:class:`~langchain_agent_auth.LocalProvider`, the resumer and the demo call it; call it in
your own application after configuring logging to get the same guarantee.

Example:
    >>> import logging
    >>> record = logging.LogRecord("authlib", logging.DEBUG, __file__, 1, "Issue token %r to %r",
    ...                            ({"access_token": "at-1234", "token_type": "Bearer"}, "agent"), None)
    >>> RedactingFilter().filter(record)
    True
    >>> record.getMessage()
    "Issue token {'access_token': '[redacted]', 'token_type': 'Bearer'} to 'agent'"
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from langchain_agent_auth.core._error_base import REDACTED, redact

__all__ = ["LOGGERS", "RedactingFilter", "install_log_redaction", "redact_log_text"]

#: Logger name prefixes whose records can carry credentials in a toolkit process.
LOGGERS: tuple[str, ...] = (
    "langchain_agent_auth", "authlib", "httpx", "httpcore", "uvicorn", "starlette", "langgraph",
    "langgraph_api", "langsmith", "openfga_sdk", "mcp",
)

# Loggers that may not exist yet when the filter is installed (created when their module is
# imported or their server starts): created now, so the filter is on them from the start.
_KNOWN_LEAVES: tuple[str, ...] = (
    "authlib.oauth2.rfc6749.authenticate_client",
    "authlib.oauth2.rfc6749.grants.authorization_code",
    "authlib.oauth2.rfc6749.grants.client_credentials",
    "authlib.oauth2.rfc6749.grants.implicit",
    "authlib.oauth2.rfc6749.grants.refresh_token",
    "authlib.oauth2.rfc6749.grants.resource_owner_password_credentials",
    "authlib.oauth2.rfc7523.jwt_bearer",
    "authlib.oauth2.rfc8628.device_code",
    "authlib.oidc.core.grants.code",
    "authlib.oidc.core.grants.hybrid",
    "authlib.oidc.core.grants.implicit",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "uvicorn.access",
    "uvicorn.error",
)

# In logs (not in error messages) a bare ``token`` field and ``Bearer``/``Basic`` credentials
# are secrets too: introspection and revocation take ``token=...``, headers carry the rest.
_LOG_KV_RE = re.compile(r"(?i)(?<![A-Za-z0-9_])(token|state|session|cookie)([\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;}]+)")
_AUTH_RE = re.compile(r"(?i)\b(bearer|basic|dpop)\s+[A-Za-z0-9._~+/=-]{6,}")


def redact_log_text(text: str) -> str:
    """:func:`~langchain_agent_auth.errors.redact`, plus the fields only logs carry.

    Example:
        >>> redact_log_text("POST /revoke token=abc123 Authorization: Bearer xyz-987654")
        'POST /revoke token=[redacted] Authorization: [redacted] [redacted]'
    """
    text = _AUTH_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _LOG_KV_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return redact(text)


class RedactingFilter(logging.Filter):
    """A filter (for loggers or handlers) that removes credentials from each record.

    It never drops a record; it rewrites the message (and the exception text) in place.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is for logging itself to report
            return True
        clean = redact_log_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        return True


_FILTER = RedactingFilter()


def _add(target: logging.Logger | logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(_FILTER)


def install_log_redaction(
    *, prefixes: Iterable[str] = LOGGERS, handlers: Iterable[logging.Handler] = ()
) -> None:
    """Put :class:`RedactingFilter` on every logger under ``prefixes`` and on ``handlers``.

    A logger's filters apply only to records logged on it, not to those its children pass
    up, so every existing logger under a prefix gets the filter; call this again after
    importing more modules (it is idempotent and cheap). A filter on a handler covers every
    record the handler receives: the toolkit's own command-line tools add one to theirs.

    Example:
        >>> import logging
        >>> install_log_redaction(prefixes=("example_lib",))
        >>> any(isinstance(f, RedactingFilter) for f in logging.getLogger("example_lib").filters)
        True
    """
    names = tuple(prefixes)
    for name in (*names, *(leaf for leaf in _KNOWN_LEAVES if leaf.startswith(tuple(p + "." for p in names)))):
        _add(logging.getLogger(name))
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith(tuple(p + "." for p in names)):
            _add(logger)
    for handler in handlers:
        _add(handler)
