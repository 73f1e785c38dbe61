"""What an approver writes into a record besides the request itself: the plain, non-secret
``configurable`` values a remote resume sends again, bounded provider text, and the approval
error a failed backchannel request becomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_agent_auth.core.errors import (
    AccessDeniedError,
    AgentAuthError,
    ApprovalDeniedError,
    ApprovalError,
    ApprovalFailedError,
    ConfigurationError,
    IdentityError,
    OAuthError,
    ProviderUnavailableError,
    UnknownUserIdError,
)


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


_SECRETISH = ("secret", "token", "password", "passwd", "key", "auth", "credential", "cookie", "session")


def _resume_config(configurable: Mapping[str, Any]) -> dict[str, Any]:
    """Plain, non-secret ``configurable`` entries worth sending again on a remote resume."""
    out: dict[str, Any] = {}
    for k, v in configurable.items():
        if not isinstance(k, str) or k.startswith(("__", "langgraph_", "x-", "checkpoint")):
            continue
        if k in ("thread_id", "run_id", "assistant_id", "graph_id", "user_id", "cron_id") or any(
                s in k.lower() for s in _SECRETISH):
            continue
        if isinstance(v, str | int | float | bool) and len(str(v)) <= 256:
            out[k] = v
        if len(out) >= 32:
            break
    return out


def _bounded(text: str | None, n: int = 300) -> str | None:
    if not text:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _start_error(exc: AgentAuthError) -> ApprovalError:
    """Map a failed backchannel request to the approval error the model/developer sees."""
    if isinstance(exc, UnknownUserIdError):
        err: ApprovalError = ApprovalFailedError(
            "the identity provider does not know this user (unknown_user_id)",
            hint="I couldn't ask you for approval: your account is not known to the approval service.")
    elif isinstance(exc, AccessDeniedError):
        err = ApprovalDeniedError(f"the provider denied the approval request ({exc.error})")
    elif isinstance(exc, ProviderUnavailableError):
        err = ApprovalFailedError(f"the approval service could not be reached: {exc}",
                                  hint="The approval service is unavailable right now; try again later.")
    elif isinstance(exc, OAuthError):
        err = ApprovalFailedError(f"the approval request was rejected: {exc}",
                                  hint=f"The approval request could not be sent ({exc.error}).")
    elif isinstance(exc, IdentityError | ConfigurationError):
        err = ApprovalFailedError(str(exc), hint=exc.for_model())
    else:
        err = ApprovalFailedError(f"the approval request failed: {exc}",
                                  hint="The approval request could not be sent; try again later.")
    err.__cause__ = exc
    err.error = getattr(exc, "error", None)  # type: ignore[attr-defined]
    return err
