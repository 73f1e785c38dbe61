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

import re
from collections.abc import Mapping
from typing import Any, ClassVar

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
_REDACTED = "[redacted]"


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
            text = text.replace(secret, _REDACTED)
    text = _JWT_RE.sub(_REDACTED, text)
    text = _KV_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", text)
    text = _OPAQUE_RE.sub(_REDACTED, text)
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
