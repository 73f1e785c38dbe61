"""The exception tree of langchain-agent-auth.

Every exception the toolkit raises derives from :class:`AgentAuthError`::

    AgentAuthError
    ├── ConfigurationError              wrong or missing settings, found at construction time
    ├── ProtocolError                   a server answered something no spec allows
    │   └── ProviderUnavailableError    network error, timeout or 5xx after the retries
    ├── OAuthError                      an OAuth/OIDC error response: .error, .error_description,
    │   │                               .error_uri, .status_code (one class per spec code)
    │   ├── InvalidRequestError             invalid_request
    │   ├── InvalidClientError              invalid_client
    │   ├── InvalidGrantError               invalid_grant
    │   ├── UnauthorizedClientError         unauthorized_client
    │   ├── UnsupportedGrantTypeError       unsupported_grant_type
    │   ├── InvalidScopeError               invalid_scope
    │   ├── InvalidTargetError              invalid_target            (RFC 8707)
    │   ├── AccessDeniedError               access_denied
    │   ├── AuthorizationPendingError       authorization_pending     (CIBA, RFC 8628)
    │   ├── SlowDownError                   slow_down                 (CIBA, RFC 8628)
    │   ├── ExpiredTokenError               expired_token             (CIBA, RFC 8628)
    │   ├── TransactionFailedError          transaction_failed        (CIBA)
    │   ├── UnknownUserIdError              unknown_user_id           (CIBA)
    │   ├── ExpiredLoginHintTokenError      expired_login_hint_token  (CIBA)
    │   ├── MissingUserCodeError            missing_user_code         (CIBA)
    │   ├── InvalidUserCodeError            invalid_user_code         (CIBA)
    │   ├── InvalidBindingMessageError      invalid_binding_message   (CIBA)
    │   ├── InvalidAuthorizationDetailsError invalid_authorization_details (RFC 9396)
    │   ├── UnsupportedTokenTypeError       unsupported_token_type    (RFC 7009)
    │   ├── UnsupportedResponseTypeError    unsupported_response_type
    │   ├── InvalidTokenError               invalid_token             (RFC 6750)
    │   ├── InsufficientScopeError          insufficient_scope        (RFC 6750)
    │   ├── LoginRequiredError              login_required            (OIDC)
    │   ├── ConsentRequiredError            consent_required          (OIDC)
    │   ├── InteractionRequiredError        interaction_required      (OIDC)
    │   ├── ServerError                     server_error
    │   └── TemporarilyUnavailableError     temporarily_unavailable
    ├── TokenValidationError            a JWT failed validation: .reason says which check
    │   ├── MalformedTokenError             not a JWT, bad base64/JSON, too large
    │   ├── UnknownKeyError                 no key for its kid, even after one JWKS refetch
    │   ├── InvalidSignatureError           signature or algorithm rejected
    │   ├── TokenExpiredError               exp in the past (beyond leeway)
    │   ├── TokenNotYetValidError           nbf/iat in the future (beyond leeway)
    │   └── InvalidClaimError               iss, aud, typ, sub or another required claim
    ├── IdentityError                   no trusted user identity where one is needed
    │   └── ThreadOwnershipError            the thread belongs to another user (not shared)
    ├── VaultError                      credential pillar
    │   ├── ConnectionNotFoundError         unknown connection name
    │   ├── CredentialUnavailableError      not connected / needs reauthorization / missing scopes
    │   │   └── MCPAuthorizationRequired        the user must sign in for an MCP server (.authorize_url)
    │   ├── VaultDecryptionError            a record cannot be decrypted (corrupt, foreign key)
    │   ├── VaultRecordError                a stored record's clear fields are corrupt (wrong types...)
    │   └── CallbackStateError              connect-account callback with a bad or replayed state
    ├── ApprovalError                   approval pillar
    │   ├── ApprovalDeniedError             the user said no (final for that call)
    │   ├── ApprovalExpiredError            the request expired before an answer
    │   ├── ApprovalFailedError             the provider failed the transaction
    │   ├── ApprovalLimitError              too many approvals pending for this user
    │   ├── UnsafeArgumentsError            arguments an approver could misread (hidden or
    │   │                                   bidi characters, mixed-script words, too large)
    │   ├── ApprovalRecordError             a stored approval record is corrupt
    │   ├── ApprovalAlreadyHandledError     already_handled: another delivery of the answer won
    │   └── ResumeValueError                a resume value that does not belong to this call
    └── AuthorizationError              fga pillar: .code is OpenFGA's error code (2000, 2002, 2021...)
        ├── ModelError                      invalid authorization model (with line and column)
        ├── TupleError                      tuple not allowed by the model
        ├── ConditionError                  condition failed to evaluate (missing parameter...)
        ├── ResolutionDepthError            resolution depth limit exceeded
        └── AccessDenied                    a check said no (carries the decision)

The root classes and :func:`redact` live in :mod:`~langchain_agent_auth.core._error_base`, the
OAuth branch (one class per spec code) in :mod:`~langchain_agent_auth.core._oauth_errors`; this
module holds the rest and is the one place to import any of them from.

``str()`` of any of these never contains a token or a secret: messages pass through
:func:`redact` when they are built, so a provider that echoes a token in its
``error_description`` cannot leak it into logs, ToolMessages or traces.

Example:
    >>> from langchain_agent_auth.core.errors import oauth_error_from_response, SlowDownError
    >>> err = oauth_error_from_response({"error": "slow_down"}, status_code=400)
    >>> isinstance(err, SlowDownError), err.error
    (True, 'slow_down')
"""

from __future__ import annotations

from typing import Any

from langchain_agent_auth.core._error_base import (
    AgentAuthError,
    ConfigurationError,
    ProtocolError,
    ProviderUnavailableError,
    redact,
)
from langchain_agent_auth.core._oauth_errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ConsentRequiredError,
    ExpiredLoginHintTokenError,
    ExpiredTokenError,
    InsufficientScopeError,
    InteractionRequiredError,
    InvalidAuthorizationDetailsError,
    InvalidBindingMessageError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenError,
    InvalidUserCodeError,
    LoginRequiredError,
    MissingUserCodeError,
    OAuthError,
    ServerError,
    SlowDownError,
    TemporarilyUnavailableError,
    TransactionFailedError,
    UnauthorizedClientError,
    UnknownUserIdError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
    UnsupportedTokenTypeError,
    oauth_error_from_response,
)

__all__ = [
    "AccessDenied",
    "AccessDeniedError",
    "AgentAuthError",
    "ApprovalDeniedError",
    "ApprovalError",
    "ApprovalExpiredError",
    "ApprovalFailedError",
    "ApprovalLimitError",
    "ApprovalRecordError",
    "AuthorizationError",
    "AuthorizationPendingError",
    "CallbackStateError",
    "ConditionError",
    "ConfigurationError",
    "ConnectionNotFoundError",
    "ConsentRequiredError",
    "CredentialUnavailableError",
    "ExpiredLoginHintTokenError",
    "ExpiredTokenError",
    "IdentityError",
    "InsufficientScopeError",
    "InteractionRequiredError",
    "InvalidAuthorizationDetailsError",
    "InvalidBindingMessageError",
    "InvalidClaimError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidSignatureError",
    "InvalidTargetError",
    "InvalidTokenError",
    "InvalidUserCodeError",
    "LoginRequiredError",
    "MCPAuthorizationRequired",
    "MalformedTokenError",
    "MissingUserCodeError",
    "ModelError",
    "OAuthError",
    "ProtocolError",
    "ProviderUnavailableError",
    "ResolutionDepthError",
    "ResumeValueError",
    "ServerError",
    "SlowDownError",
    "TemporarilyUnavailableError",
    "ThreadOwnershipError",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "TokenValidationError",
    "TransactionFailedError",
    "TupleError",
    "UnauthorizedClientError",
    "UnknownKeyError",
    "UnknownUserIdError",
    "UnsafeArgumentsError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "UnsupportedTokenTypeError",
    "VaultDecryptionError",
    "VaultError",
    "VaultRecordError",
    "oauth_error_from_response",
    "redact",
]

# --------------------------------------------------------------------------- tokens


class TokenValidationError(AgentAuthError):
    """A JWT failed validation. ``reason`` names the failed check (e.g. ``"aud"``)."""

    def __init__(self, message: str = "", *, reason: str = "invalid", hint: str | None = None):
        self.reason = reason
        super().__init__(message, hint=hint)


class MalformedTokenError(TokenValidationError):
    """Not a JWT: bad structure, base64 or JSON, or larger than the size limit."""


class UnknownKeyError(TokenValidationError):
    """No key matches the token's ``kid``, even after one JWKS refetch."""


class InvalidSignatureError(TokenValidationError):
    """The signature does not verify, or the algorithm is not allowed."""


class TokenExpiredError(TokenValidationError):
    """``exp`` is in the past, beyond the leeway."""


class TokenNotYetValidError(TokenValidationError):
    """``nbf`` or ``iat`` is in the future, beyond the leeway."""


class InvalidClaimError(TokenValidationError):
    """A claim check failed: iss, aud, typ, sub or another required claim."""


# --------------------------------------------------------------------------- pillars


class IdentityError(AgentAuthError):
    """No trusted user identity is available where one is required."""

    hint = "I don't know who the user is, so I can't do this on their behalf."


class ThreadOwnershipError(IdentityError):
    """The caller of this invocation is not the thread's owner and the thread is not shared
    with them: their resume, answer, continuation or new input is refused before any tool,
    model call or pending record is touched. ``.thread_id`` names the thread."""

    hint = "This conversation belongs to another user; start a new conversation."

    def __init__(self, message: str = "", *, thread_id: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.thread_id = thread_id


# -- vault


class VaultError(AgentAuthError):
    """Base class of the vault pillar's errors."""


class ConnectionNotFoundError(VaultError, ConfigurationError):
    """A connection name that was never declared."""


class CredentialUnavailableError(VaultError):
    """No usable credential: not connected, needs reauthorization, or missing scopes.

    ``status`` is one of ``"not_connected"``, ``"needs_reauthorization"``,
    ``"missing_scopes"``; ``missing_scopes`` lists what is missing.
    """

    def __init__(
        self,
        message: str = "",
        *,
        connection: str,
        status: str,
        missing_scopes: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        self.connection = connection
        self.status = status
        self.missing_scopes = tuple(missing_scopes)
        super().__init__(message, hint=hint)


class MCPAuthorizationRequired(CredentialUnavailableError):
    """The user must authorize the agent at an MCP server's authorization server first.

    ``authorize_url`` is where to send the user's browser (it carries PKCE's challenge and
    a one-time ``state``, never a secret); ``connection`` is the MCP server's URL.
    """

    hint = "The user has not authorized access to this MCP server yet; they were asked to sign in."

    def __init__(self, message: str = "", *, connection: str, status: str = "not_connected",
                 missing_scopes: tuple[str, ...] = (), authorize_url: str, hint: str | None = None) -> None:
        self.authorize_url = authorize_url
        super().__init__(message, connection=connection, status=status, missing_scopes=missing_scopes, hint=hint)


class VaultDecryptionError(VaultError):
    """A stored record cannot be decrypted: corrupted, or encrypted with an unknown key."""


class VaultRecordError(VaultError):
    """A stored vault record whose clear fields are corrupt (wrong types, missing fields).

    The message names the record and the fields at fault, never their values. The vault
    treats the credential as needing reauthorization: connecting again overwrites it.
    """


class CallbackStateError(VaultError):
    """A connect-account callback whose ``state`` is unknown, replayed, expired or another user's."""


# -- approval


class ApprovalError(AgentAuthError):
    """Base class of the approval pillar's errors."""


class ApprovalDeniedError(ApprovalError):
    """The user denied the action. A denial is final for that tool call."""


class ApprovalExpiredError(ApprovalError):
    """The approval request expired before the user answered."""


class ApprovalFailedError(ApprovalError):
    """The provider could not complete the approval (transaction_failed, outage...)."""


class ApprovalLimitError(ApprovalError):
    """This user already has ``max_pending`` approvals waiting: no new request is sent
    until one is answered or expires (a flood of requests trains people to tap "approve")."""


class UnsafeArgumentsError(ApprovalError):
    """The arguments cannot be shown faithfully to the person who approves them.

    ``reason`` says why: ``"hidden_characters"`` (bidi controls, zero-width or other
    format/control characters), ``"mixed_script"`` (a word mixing look-alike scripts, such
    as a Cyrillic letter in a Latin name), ``"too_large"`` or ``"too_deep"``.
    """

    def __init__(self, message: str = "", *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class ApprovalRecordError(ApprovalError):
    """A stored approval record is corrupt (not a dict, wrong types, missing fields).

    The message names the fields at fault, never their values. The guard asks for a new
    approval rather than trusting the damaged one.
    """


class ApprovalAlreadyHandledError(ApprovalError):
    """This answer (or this approved call) was already handled by another delivery: a
    duplicate ``Command(resume=...)`` from another thread, task, process or resumer lost the
    store's compare-and-set. The tool ran (or is running) once, in the winning run; the
    duplicate run stops with this error so it writes nothing to the thread."""

    error = "already_handled"
    hint = "This approved call was already handled; it was not run again."


class ResumeValueError(ApprovalError):
    """A resume value that does not match the pending call (other call, user, args, expired)."""


# -- fga


class AuthorizationError(AgentAuthError):
    """Base class of the fga pillar's errors.

    ``code`` is OpenFGA's numeric error code for the same failure (2000 validation_error,
    2002 authorization_model_resolution_too_complex, 2021 type_not_found,
    2022 relation_not_found, 2027 invalid_tuple...), so callers and the OpenFGA-API
    server report what OpenFGA would.
    """

    code: int = 2000

    def __init__(self, message: str = "", *, code: int | None = None, hint: str | None = None):
        if code is not None:
            self.code = code
        super().__init__(message, hint=hint)


class ModelError(AuthorizationError, ConfigurationError):
    """An invalid authorization model. ``line`` and ``column`` point at the problem (1-based)."""

    def __init__(
        self,
        message: str = "",
        *,
        line: int | None = None,
        column: int | None = None,
        code: int | None = None,
    ):
        self.line = line
        self.column = column
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(f"{message}{where}", code=code)


class TupleError(AuthorizationError):
    """A relationship tuple the model does not allow, or a malformed user/object string."""

    code = 2027


class ConditionError(AuthorizationError):
    """A condition could not be evaluated (missing parameter, type error)."""


class ResolutionDepthError(AuthorizationError):
    """Resolution exceeded the depth limit (a very deep or pathological model)."""

    code = 2002


class AccessDenied(AuthorizationError):
    """A relationship check said no. ``decision`` holds what was checked."""

    def __init__(self, message: str = "", *, decision: Any = None, hint: str | None = None):
        self.decision = decision
        super().__init__(message, hint=hint)


# Tracebacks and pickles name the public path (``langchain_agent_auth.errors``), not the core module.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = "langchain_agent_auth.errors"
del _name, _value
