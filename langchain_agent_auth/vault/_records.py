"""How the vault lays out its data in a LangGraph ``BaseStore``.

::

    ("agent_auth", "vault", "users", <user key, base64url>)   key: connection name
        {"v": 1, "user": <user key>, "connection": ..., "source": "oauth", "issuer": ...,
         "scopes": [...], "token_type": "Bearer", "expires_at": <epoch s | null>,
         "status": "active" | "needs_reauthorization", "rev": <int>, "has_refresh_token": bool,
         "kid": <key id>, "connected_at": ..., "updated_at": ...,
         "secret": <Keyring.seal({"access_token", "refresh_token"}),
                    AAD = "agent_auth/vault/v1|token|<user key>|<connection>">}

    ("agent_auth", "vault", "pending")   key: connect flow id
        {"v": 1, "user": ..., "connection": ..., "scopes": [...], "thread_id": ...,
         "checkpoint_ns": ..., "tool_call_id": ..., "status": "pending" | "completed" | "failed",
         "created_at": ..., "expires_at": ..., "completed_at": ..., "resumed": bool,
         "state_hash": sha256(state secret), "error": <oauth error code | null>,
         "secret": <Keyring.seal({"verifier", "authorize_url"}),
                    AAD = "agent_auth/vault/v1|pending|<id>|<user key>|<connection>">}

    ("agent_auth", "vault", "leases")    key: what is leased (see ``_lease``)

Metadata is in clear (for listing and for the CLI); token material is sealed with AES-256-GCM
(:class:`~langchain_agent_auth.crypto.Keyring`), bound by the AAD to the user and the
connection: a sealed blob copied into another user's record does not open.

Every record read back is validated (:class:`StoredToken`, :class:`PendingRecord`, strict
types): a damaged one raises :class:`~langchain_agent_auth.errors.VaultRecordError` naming
the fields at fault, never their values, instead of a ``TypeError`` deep in the vault.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.errors import VaultDecryptionError, VaultRecordError

log = logging.getLogger("langchain_agent_auth.vault")

ROOT = ("agent_auth", "vault")
USERS_NS = (*ROOT, "users")
PENDING_NS = (*ROOT, "pending")
VERSION = 1


def encode_user(user_key: str) -> str:
    """A namespace label for a user key (namespace labels may not contain dots)."""
    return base64.urlsafe_b64encode(user_key.encode()).rstrip(b"=").decode()


def decode_user(label: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(label + "=" * (-len(label) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def user_ns(user_key: str) -> tuple[str, ...]:
    return (*USERS_NS, encode_user(user_key))


def token_aad(user_key: str, connection: str) -> bytes:
    return f"agent_auth/vault/v1|token|{user_key}|{connection}".encode()


def pending_aad(pending_id: str, user_key: str, connection: str) -> bytes:
    return f"agent_auth/vault/v1|pending|{pending_id}|{user_key}|{connection}".encode()


def seal_json(keyring: Keyring, data: dict[str, Any], aad: bytes) -> dict[str, Any]:
    return keyring.seal(json.dumps(data, separators=(",", ":")).encode(), aad=aad)


def open_json(keyring: Keyring, box: Any, aad: bytes, *, what: str) -> dict[str, Any]:
    try:
        plain = keyring.open(box, aad=aad)
    except VaultDecryptionError as exc:
        raise VaultDecryptionError(f"{what}: {exc}",
                                   hint="The stored credential cannot be read; reconnect the account.") from None
    try:
        data = json.loads(plain)
    except (ValueError, UnicodeDecodeError):
        raise VaultDecryptionError(f"{what}: decrypted data is not valid") from None
    if not isinstance(data, dict):
        raise VaultDecryptionError(f"{what}: decrypted data is not valid")
    return data


class StoredToken(BaseModel):
    """The clear fields of a stored credential, as validated on every read."""

    model_config = ConfigDict(strict=True, extra="ignore")

    v: Literal[1]
    source: str = "oauth"
    issuer: str | None = None
    scopes: list[str]
    token_type: str = "Bearer"
    expires_at: float | None = None
    status: str = "active"
    rev: int = 0
    has_refresh_token: bool = False
    kid: str | None = None
    connected_at: float | None = None
    updated_at: float | None = None
    secret: dict[str, Any]


class StoredIdentity(BaseModel):
    """Who a pending connect flow resumes the thread as."""

    model_config = ConfigDict(strict=True, extra="ignore")

    subject: str
    issuer: str | None = None
    tenant: str | None = None


class PendingRecord(BaseModel):
    """A pending connect flow as stored: written from this model and validated on every read.

    ``secret`` is the sealed PKCE verifier and authorize URL (``None`` once the link is spent).
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    v: Literal[1] = VERSION
    user: str
    connection: str
    scopes: list[str]
    status: str
    state_hash: str
    created_at: float = 0.0
    expires_at: float
    completed_at: float | None = None
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    tool_call_id: str | None = None
    redirect_uri: str | None = None
    resumed: bool = False
    abandoned: bool = False
    next_check_at: float = 0.0
    error: str | None = None
    identity: StoredIdentity | None = None
    secret: dict[str, Any] | None = None
    #: The flow whose grant also satisfied this one (see the vault's sibling settlement).
    completed_by: str | None = None

    def to_value(self) -> dict[str, Any]:
        """The record as the store keeps it (plain JSON types)."""
        return self.model_dump(mode="json")

    def updated(self, **changes: Any) -> PendingRecord:
        """A copy with ``changes`` applied (validated like a read)."""
        return PendingRecord.model_validate({**self.to_value(), **changes})


def _fields_at_fault(exc: ValidationError) -> str:
    names = sorted({".".join(str(p) for p in e["loc"][:1]) or "record" for e in exc.errors(include_input=False)})
    return ", ".join(names)


def stored_token(value: Any, connection: str) -> StoredToken:
    """Validate a stored credential's clear fields (:class:`VaultRecordError` if damaged).

    Example:
        >>> try:
        ...     stored_token({"v": 1, "scopes": 7, "rev": "seven", "secret": {}}, "mail")
        ... except VaultRecordError as exc:
        ...     print(exc)
        stored credential for connection 'mail' is damaged (rev, scopes)
    """
    what = f"stored credential for connection {connection!r}"
    if isinstance(value, dict) and "v" in value and value["v"] != VERSION:
        raise VaultDecryptionError(f"{what}: unknown record format")
    try:
        return StoredToken.model_validate(value)
    except ValidationError as exc:
        raise VaultRecordError(
            f"{what} is damaged ({_fields_at_fault(exc)})",
            hint=f"The stored {connection} credential is damaged; the user must reconnect the account.",
        ) from None


def stored_pending(value: Any, pending_id: str) -> PendingRecord | None:
    """A pending connect flow's clear fields, or ``None`` (logged) if the record is damaged."""
    try:
        return PendingRecord.model_validate(value)
    except ValidationError as exc:
        log.warning("vault: damaged pending connect record id=%s (%s) ignored", pending_id[:64], _fields_at_fault(exc))
        return None


@dataclass(repr=False)
class TokenRecord:
    """A stored credential, opened. ``repr()`` hides the secrets."""

    user: str
    connection: str
    source: str
    issuer: str | None
    scopes: tuple[str, ...]
    access_token: str
    refresh_token: str | None
    token_type: str = "Bearer"
    expires_at: float | None = None
    status: str = "active"
    rev: int = 0
    connected_at: float | None = None
    updated_at: float | None = None
    kid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"TokenRecord(user={self.user!r}, connection={self.connection!r}, scopes={self.scopes!r}, "
                f"status={self.status!r}, rev={self.rev}, access_token=[redacted], refresh_token=[redacted])")

    def to_value(self, keyring: Keyring) -> dict[str, Any]:
        secret = {"access_token": self.access_token}
        if self.refresh_token:
            secret["refresh_token"] = self.refresh_token
        box = seal_json(keyring, secret, token_aad(self.user, self.connection))
        return {
            "v": VERSION, "user": self.user, "connection": self.connection, "source": self.source,
            "issuer": self.issuer, "scopes": list(self.scopes), "token_type": self.token_type,
            "expires_at": self.expires_at, "status": self.status, "rev": self.rev,
            "has_refresh_token": bool(self.refresh_token), "kid": box["kid"],
            "connected_at": self.connected_at, "updated_at": self.updated_at, "secret": box,
        }

    @classmethod
    def from_value(cls, keyring: Keyring, value: dict[str, Any], *, user: str, connection: str) -> TokenRecord:
        """Open a stored record; :class:`VaultDecryptionError` if it is corrupt or foreign."""
        what = f"stored credential for connection {connection!r}"
        clear = stored_token(value, connection)
        # The AAD uses where the record *is*, not what it claims: a record moved to another
        # user's namespace fails to open even if its clear fields were edited to match.
        secret = open_json(keyring, clear.secret, token_aad(user, connection), what=what)
        access = secret.get("access_token")
        if not isinstance(access, str) or not access:
            raise VaultDecryptionError(f"{what}: no access token in the record")
        refresh = secret.get("refresh_token")
        kid = clear.secret.get("kid")
        return cls(
            user=user, connection=connection, source=clear.source or "oauth", issuer=clear.issuer,
            scopes=tuple(clear.scopes), access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            token_type=clear.token_type or "Bearer", expires_at=clear.expires_at,
            status=clear.status or "active", rev=clear.rev,
            connected_at=clear.connected_at, updated_at=clear.updated_at,
            kid=kid if isinstance(kid, str) else None,
        )
