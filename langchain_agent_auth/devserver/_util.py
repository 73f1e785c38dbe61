"""Small helpers shared by the local provider's modules (no I/O here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

# OpenID Connect scopes: about the user, not about a resource server.
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")

GT_CIBA = "urn:openid:params:grant-type:ciba"
GT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
GT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GT_FEDERATED = "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"
TT_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
TT_ID = "urn:ietf:params:oauth:token-type:id_token"
TT_JWT = "urn:ietf:params:oauth:token-type:jwt"
TT_FEDERATED = "http://auth0.com/oauth/token-type/federated-connection-access-token"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Clock:
    """The provider's time: a base clock (``time.time``) plus an offset that only moves forward.

    Every expiry, poll interval and ``exp``/``iat`` of one provider reads this clock, so tests
    and notebooks can :meth:`advance` it instead of sleeping.

    Example:
        >>> clock = Clock(lambda: 1000.0)
        >>> clock.advance(5.5)
        >>> clock.time(), clock.now()
        (1005.5, 1005)
    """

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """Current time in seconds (float), offset included."""
        return self._base() + self._offset

    def now(self) -> int:
        """Current time in whole seconds (what every ``exp``/``iat`` uses)."""
        return int(self.time())

    def advance(self, seconds: float) -> None:
        """Move this clock forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds


def new_token(nbytes: int = 32) -> str:
    """A fresh random opaque credential (URL-safe)."""
    return secrets.token_urlsafe(nbytes)


def new_id(prefix: str) -> str:
    """A random identifier that is not a credential (request ids, grant ids)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def token_hash(value: str) -> str:
    """SHA-256 of an opaque credential: what the database stores instead of the value."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented secret against its stored hash."""
    if not stored_hash:
        return False
    return hmac.compare_digest(token_hash(value), stored_hash)


def hash_password(password: str) -> str:
    """scrypt hash of a user password, ``scrypt$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str | None) -> bool:
    """Verify ``password`` against :func:`hash_password` output."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    try:
        _, salt_b64, digest_b64 = stored.split("$")
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
    except (ValueError, TypeError):
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return hmac.compare_digest(digest, expected)


def dumps(value: Any) -> str | None:
    """JSON text for a database column (None stays NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(value: str | None, default: Any = None) -> Any:
    """Inverse of :func:`dumps`."""
    if value is None:
        return default
    return json.loads(value)


def split_scope(scope: str | None) -> list[str]:
    """Scope string to a list without duplicates, order kept."""
    seen: dict[str, None] = {}
    for item in (scope or "").split():
        seen.setdefault(item, None)
    return list(seen)


def join_scope(scopes: list[str] | tuple[str, ...] | set[str]) -> str:
    """List of scopes to a scope string (order kept, duplicates dropped)."""
    return " ".join(dict.fromkeys(scopes))


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names the loopback interface (``localhost``, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_http_url(url: str) -> bool:
    """An ``http://`` URL on a loopback address (RFC 8252 §7.3 native-app redirect)."""
    try:
        parts = urlsplit(url)
        return parts.scheme == "http" and is_loopback_host(parts.hostname) and not parts.fragment
    except ValueError:
        return False


def same_uri_ignoring_loopback_port(registered: str, presented: str) -> bool:
    """RFC 8252 §7.3: for loopback redirect URIs the port may vary; the rest must match."""
    try:
        a, b = urlsplit(registered), urlsplit(presented)
        _ = b.port  # raises ValueError on a bad port
    except ValueError:
        return False
    if not (is_loopback_http_url(registered) and is_loopback_http_url(presented)):
        return False
    return (a.scheme, a.hostname, a.path or "/", a.query) == (b.scheme, b.hostname, b.path or "/", b.query)


def printable_ascii(text: str, limit: int = 300) -> str:
    """Make ``text`` safe for an OAuth ``error_description`` (RFC 6749 §5.2 charset)."""
    out = "".join(ch if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\' else "?" for ch in text)
    return out[:limit]
