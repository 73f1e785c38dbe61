"""The OAuth branch of the error tree: :class:`OAuthError` and one class per spec error code
(the table in :mod:`langchain_agent_auth.core.errors`), and :func:`oauth_error_from_response`
which picks the class for a server's error response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from langchain_agent_auth.core._error_base import AgentAuthError, redact

# --------------------------------------------------------------------------- OAuth


class OAuthError(AgentAuthError):
    """An OAuth 2.0 / OpenID error response.

    Attributes:
        error: the spec's error code (``invalid_grant``...).
        error_description: the server's description, redacted.
        error_uri: the server's error URI, if any.
        status_code: the HTTP status of the response, if any.
    """

    error: ClassVar[str] = "oauth_error"  # type: ignore[misc]
    _by_code: ClassVar[dict[str, type[OAuthError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("error")
        if isinstance(code, str):
            OAuthError._by_code[code] = cls

    def __init__(
        self,
        error_description: str | None = None,
        *,
        error: str | None = None,
        error_uri: str | None = None,
        status_code: int | None = None,
        hint: str | None = None,
    ) -> None:
        if error is not None:
            # Instance attribute shadows the class default for unmapped codes.
            self.error = error  # type: ignore[misc]
        self.error_description = redact(error_description) if error_description else None
        self.error_uri = error_uri
        self.status_code = status_code
        text = self.error if not self.error_description else f"{self.error}: {self.error_description}"
        super().__init__(text, hint=hint)

    def to_dict(self) -> dict[str, str]:
        """The error as a spec error response body."""
        body = {"error": self.error}
        if self.error_description:
            body["error_description"] = self.error_description
        if self.error_uri:
            body["error_uri"] = self.error_uri
        return body


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    error = "invalid_client"
    hint = "The agent's OAuth client was rejected by the provider; check client id and secret."


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    error = "invalid_target"


class AccessDeniedError(OAuthError):
    error = "access_denied"


class AuthorizationPendingError(OAuthError):
    error = "authorization_pending"


class SlowDownError(OAuthError):
    error = "slow_down"


class ExpiredTokenError(OAuthError):
    error = "expired_token"


class TransactionFailedError(OAuthError):
    error = "transaction_failed"


class UnknownUserIdError(OAuthError):
    error = "unknown_user_id"


class ExpiredLoginHintTokenError(OAuthError):
    error = "expired_login_hint_token"


class MissingUserCodeError(OAuthError):
    error = "missing_user_code"


class InvalidUserCodeError(OAuthError):
    error = "invalid_user_code"


class InvalidBindingMessageError(OAuthError):
    error = "invalid_binding_message"


class InvalidAuthorizationDetailsError(OAuthError):
    error = "invalid_authorization_details"


class UnsupportedTokenTypeError(OAuthError):
    error = "unsupported_token_type"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"


class InvalidTokenError(OAuthError):
    error = "invalid_token"


class InsufficientScopeError(OAuthError):
    error = "insufficient_scope"


class LoginRequiredError(OAuthError):
    error = "login_required"


class ConsentRequiredError(OAuthError):
    error = "consent_required"


class InteractionRequiredError(OAuthError):
    error = "interaction_required"


class ServerError(OAuthError):
    error = "server_error"


class TemporarilyUnavailableError(OAuthError):
    error = "temporarily_unavailable"


def oauth_error_from_response(body: Mapping[str, Any], *, status_code: int | None = None) -> OAuthError:
    """Build the :class:`OAuthError` subclass that matches ``body["error"]``.

    Unknown codes give a plain :class:`OAuthError` whose ``.error`` is the code.
    Non-string fields are ignored rather than trusted.

    Example:
        >>> e = oauth_error_from_response({"error": "invalid_grant", "error_description": "used"})
        >>> type(e).__name__, str(e)
        ('InvalidGrantError', 'invalid_grant: used')
    """
    code = body.get("error")
    if not isinstance(code, str) or not code:
        code = "invalid_response"
    code = code[:64]
    description = body.get("error_description")
    uri = body.get("error_uri")
    cls = OAuthError._by_code.get(code, OAuthError)
    return cls(
        description[:1000] if isinstance(description, str) else None,
        error=None if cls is not OAuthError else code,
        error_uri=uri[:1000] if isinstance(uri, str) else None,
        status_code=status_code,
    )
