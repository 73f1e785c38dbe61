"""Client authentication at token, CIBA, introspection and revocation endpoints.

Supports ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt`` (RFC 7523,
signed with joserfc through authlib) and ``none`` (public clients).

Example:
    >>> creds = ClientCredentials("agent", "s3cret-s3cret")
    >>> headers, body = creds.apply("https://idp.test/token", {"grant_type": "client_credentials"})
    >>> headers["Authorization"].startswith("Basic "), body
    (True, 'grant_type=client_credentials')
    >>> "s3cret" in repr(creds)
    False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus, urlencode

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, OKPKey, RSAKey

from langchain_agent_auth.core.errors import ConfigurationError

__all__ = ["AuthMethod", "ClientCredentials"]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


def _import_private_key(key: Any) -> RSAKey | ECKey | OKPKey:
    if isinstance(key, (RSAKey, ECKey, OKPKey)):
        return key
    kty = key.get("kty") if isinstance(key, dict) else None
    try:
        if kty == "EC":
            return ECKey.import_key(key)
        if kty == "OKP":
            return OKPKey.import_key(key)
        if kty == "RSA":
            return RSAKey.import_key(key)
        for cls in (RSAKey, ECKey, OKPKey):
            try:
                return cls.import_key(key)
            except Exception:  # noqa: S112 - try the next key type
                continue
    except Exception as exc:
        raise ConfigurationError(f"private_key_jwt: cannot import the private key ({type(exc).__name__})") from None
    raise ConfigurationError("private_key_jwt: unsupported private key (give a JWK dict or PEM)")


def _default_alg(key: RSAKey | ECKey | OKPKey) -> str:
    if isinstance(key, ECKey):
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(key.curve_name), "ES256")
    if isinstance(key, OKPKey):
        return "EdDSA"
    return "RS256"


@dataclass(frozen=True)
class ClientCredentials:
    """How the agent's OAuth client proves who it is.

    Args:
        client_id: the registered client id.
        client_secret: the secret (``client_secret_basic`` / ``client_secret_post``).
        auth_method: one of ``client_secret_basic`` (default), ``client_secret_post``,
            ``private_key_jwt``, ``none``.
        private_key: for ``private_key_jwt``: a private JWK (dict), PEM, or joserfc key.
        signing_alg: the assertion's ``alg``; derived from the key when omitted.
        assertion_audience: the assertion's ``aud``; the issuer when omitted.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: AuthMethod = "client_secret_basic"
    private_key: Any = field(default=None, repr=False)
    signing_alg: str | None = None
    assertion_audience: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigurationError("client_id is required")
        if self.auth_method not in _METHODS:
            raise ConfigurationError(f"unknown client auth method {self.auth_method!r}; use one of {_METHODS}")
        if self.auth_method in ("client_secret_basic", "client_secret_post") and not self.client_secret:
            raise ConfigurationError(f"{self.auth_method} needs a client_secret")
        if self.auth_method == "private_key_jwt":
            if self.private_key is None:
                raise ConfigurationError("private_key_jwt needs a private_key")
            object.__setattr__(self, "private_key", _import_private_key(self.private_key))

    def apply(
        self, url: str, params: dict[str, Any], *, audience: str | None = None
    ) -> tuple[dict[str, str], str]:
        """Headers and form body for a POST to ``url`` carrying ``params`` plus client auth.

        ``audience`` is the private_key_jwt assertion's ``aud`` (default: the issuer the
        caller passes, else ``url``).
        """
        body = urlencode([(k, v) for k, v in _pairs(params)])
        headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.auth_method == "private_key_jwt":
            key = self.private_key
            signer = PrivateKeyJWT(
                token_endpoint=self.assertion_audience or audience or url,
                alg=self.signing_alg or _default_alg(key),
            )
            auth = ClientAuth(self.client_id, key, signer)
            _, headers, body = auth.prepare("POST", url, headers, body)
            body = body if "client_id=" in body else body + "&" + urlencode({"client_id": self.client_id})
            return headers, body
        if self.auth_method == "client_secret_basic":
            # RFC 6749 section 2.3.1: id and secret are form-encoded before base64.
            auth = ClientAuth(quote_plus(self.client_id), quote_plus(self.client_secret or ""), self.auth_method)
        else:
            auth = ClientAuth(self.client_id, self.client_secret, self.auth_method)
        _, headers, body = auth.prepare("POST", url, headers, body)
        return headers, body


def _pairs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Form pairs; lists become repeated keys (``resource`` may appear several times)."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out.extend((key, str(v)) for v in value)
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        else:
            out.append((key, str(value)))
    return out
