"""JWT validation for ID tokens and RFC 9068 access tokens (joserfc underneath).

Checks, in order: size, structure, header JSON, an explicitly allowed asymmetric ``alg``
(never ``none``, never HS* against a public key), the key for ``kid`` from the issuer's
JWKS, the signature, then ``iss``, ``aud``, ``exp`` / ``nbf`` / ``iat`` with leeway, ``typ``
for access tokens, ``sub`` and any other required claims. Each failure raises its own
:class:`~langchain_agent_auth.errors.TokenValidationError` subclass.

Example:
    >>> import time
    >>> from joserfc import jwt as jose_jwt
    >>> from joserfc.jwk import RSAKey
    >>> key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    >>> now = int(time.time())
    >>> token = jose_jwt.encode({"alg": "RS256", "kid": "k1", "typ": "at+jwt"},
    ...     {"iss": "https://idp.test", "aud": "api", "sub": "alice", "exp": now + 60,
    ...      "iat": now}, key)
    >>> verifier = JWTVerifier("https://idp.test", audience="api",
    ...                        jwks={"keys": [key.as_dict(private=False)]})
    >>> verifier.verify(token)["sub"]
    'alice'
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import httpx
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError

from langchain_agent_auth.core._http import HTTPClients
from langchain_agent_auth.core.effects import arun, run
from langchain_agent_auth.core.errors import (
    ConfigurationError,
    InvalidClaimError,
    InvalidSignatureError,
    MalformedTokenError,
    TokenExpiredError,
    TokenNotYetValidError,
)
from langchain_agent_auth.oauth._flight import FlightAbandoned, SingleFlight
from langchain_agent_auth.oauth._flow import Flow, RetryPolicy
from langchain_agent_auth.oauth.discovery import MetadataCache
from langchain_agent_auth.oauth.jwks import JWKSCache

__all__ = ["ACCESS_TOKEN_TYPES", "DEFAULT_ALGORITHMS", "JWTVerifier"]

DEFAULT_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)
ACCESS_TOKEN_TYPES: tuple[str, ...] = ("at+jwt", "application/at+jwt")
_FORBIDDEN_ALGS = {"none", "HS256", "HS384", "HS512"}


def _b64json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MalformedTokenError(f"the token's {what} is not base64url-encoded JSON", reason="format") from None
    if not isinstance(value, dict):
        raise MalformedTokenError(f"the token's {what} is not a JSON object", reason="format")
    return value


class JWTVerifier:
    """Validates JWTs issued by one issuer.

    Args:
        issuer: the expected ``iss`` (also where discovery finds ``jwks_uri``).
        audience: accepted ``aud`` value(s); ``None`` skips the audience check (only do
            that for tokens you obtained yourself).
        token_type: ``"access"`` (RFC 9068: ``typ`` must be ``at+jwt``), ``"id"`` (ID token:
            ``azp`` checked against ``client_id`` when several audiences) or ``"any"``.
        algorithms: accepted asymmetric algorithms. ``none`` and HS* are always refused.
        leeway: seconds of clock skew tolerated for ``exp``, ``nbf`` and ``iat``.
        required_claims: claims that must be present (``sub`` and ``exp`` by default).
        typ: override the accepted ``typ`` header values (``None``: no check).
        jwks_uri / jwks: where keys come from (default: the issuer's discovery document).
        max_token_bytes: longer input is refused before any parsing.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str | Sequence[str] | None = None,
        token_type: Literal["access", "id", "any"] = "access",
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway: float = 60.0,
        required_claims: Collection[str] = ("sub", "exp"),
        typ: str | Sequence[str] | Literal["default"] | None = "default",
        client_id: str | None = None,
        jwks_uri: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_cache: JWKSCache | None = None,
        max_token_bytes: int = 16 * 1024,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        metadata_cache: MetadataCache | None = None,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ConfigurationError("JWTVerifier needs an issuer")
        bad = _FORBIDDEN_ALGS.intersection(algorithms)
        if bad:
            raise ConfigurationError(
                f"algorithms {sorted(bad)} are refused: 'none' is unsigned and HS* would let "
                "anyone holding the public key forge tokens"
            )
        unknown = set(algorithms) - set(DEFAULT_ALGORITHMS)
        if unknown or not algorithms:
            raise ConfigurationError(f"unsupported algorithms: {sorted(unknown) or 'none given'}")
        if token_type not in ("access", "id", "any"):
            raise ConfigurationError("token_type must be 'access', 'id' or 'any'")
        self.issuer = issuer
        self.audience: tuple[str, ...] | None = (
            None if audience is None else ((audience,) if isinstance(audience, str) else tuple(audience))
        )
        self.token_type = token_type
        self.algorithms = frozenset(algorithms)
        self.leeway = float(leeway)
        self.required_claims = tuple(required_claims)
        if typ == "default":
            self.typ: tuple[str, ...] | None = ACCESS_TOKEN_TYPES if token_type == "access" else None
        else:
            self.typ = None if typ is None else ((typ,) if isinstance(typ, str) else tuple(typ))
        self.client_id = client_id
        self.max_token_bytes = max_token_bytes
        self._clock = clock
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self.jwks = jwks_cache or JWKSCache(jwks_uri, jwks=jwks, timeout=timeout, retry=self._retry)
        self._meta = metadata_cache or MetadataCache()
        self._http = HTTPClients(http_client, async_http_client, timeout)
        self._discovery = SingleFlight()

    # -- public

    def verify(self, token: str) -> dict[str, Any]:
        """Validate ``token`` and return its claims (raises ``TokenValidationError``)."""
        return run(self._verified(token), http=self._http.sync_on_demand)

    async def averify(self, token: str) -> dict[str, Any]:
        """Async :meth:`verify`; fetches keys without blocking the event loop."""
        return await arun(self._verified(token), http=self._http.async_on_demand)

    def close(self) -> None:
        self._http.close()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the flow

    def verify_flow(self, token: str) -> Flow[dict[str, Any]]:
        """Validation as a flow (key fetches are its only I/O)."""
        header, compact, alg, kid = self._prepare(token)
        key = yield from self._key_flow(kid, alg)
        return self._finish(header, compact, alg, key)

    def _prepare(self, token: Any) -> tuple[dict[str, Any], str, str, str | None]:
        header, compact = self._parse_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            shown = alg if isinstance(alg, str) else type(alg).__name__
            raise InvalidSignatureError(f"algorithm {shown[:20]!r} is not allowed", reason="alg")
        if "crit" in header:
            raise InvalidSignatureError("critical header extensions are not supported", reason="crit")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise MalformedTokenError("the token's kid is not a string", reason="format")
        return header, compact, alg, kid

    def _key_flow(self, kid: str | None, alg: str) -> Flow[Any]:
        yield from self._discovery_flow()
        return (yield from self.jwks.key_for(kid, alg))

    def _needs_discovery(self) -> bool:
        return self.jwks.jwks_uri is None and not self.jwks.static

    def _discovery_flow(self) -> Flow[None]:
        if self._needs_discovery():
            meta = yield from self._meta.cached(self.issuer, timeout=self._timeout, retry=self._retry)
            self.jwks.jwks_uri = meta.require("jwks_uri")

    def _verified(self, token: str) -> Flow[dict[str, Any]]:
        """:meth:`verify_flow` with discovery and key fetches shared by concurrent callers."""
        header, compact, alg, kid = self._prepare(token)
        key = self.jwks.peek(kid, alg)
        if key is None:
            yield from self._shared_discovery()
            key = yield from self.jwks.shared_key(kid, alg)
        return self._finish(header, compact, alg, key)

    # Discovery is single-flight too: a cold verifier hit by many tokens asks once.
    def _shared_discovery(self) -> Flow[None]:
        while self._needs_discovery():
            flight, lead = self._discovery.begin(self._needs_discovery)
            if flight is None:
                return
            try:
                yield from (self._discovery.leading(flight, self._discovery_flow()) if lead else flight.joined())
            except FlightAbandoned:
                continue

    def _finish(self, header: dict[str, Any], compact: str, alg: str, key: Any) -> dict[str, Any]:
        try:
            signed = jws.deserialize_compact(compact, key, algorithms=[alg])
        except BadSignatureError:
            raise InvalidSignatureError("the token's signature does not verify", reason="signature") from None
        except JoseError as exc:
            raise InvalidSignatureError(f"the token was rejected ({exc.error})", reason="signature") from None
        try:
            claims = json.loads(signed.payload)
        except (ValueError, UnicodeDecodeError):
            raise MalformedTokenError("the token's payload is not JSON", reason="format") from None
        if not isinstance(claims, dict):
            raise MalformedTokenError("the token's payload is not a JSON object", reason="format")
        self._check_claims(header, claims)
        return claims

    def _parse_header(self, token: Any) -> tuple[dict[str, Any], str]:
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedTokenError("the token is not ASCII", reason="format") from None
        if not isinstance(token, str):
            raise MalformedTokenError("the token must be a string", reason="format")
        if len(token) > self.max_token_bytes:
            raise MalformedTokenError(
                f"the token is {len(token)} bytes, over the {self.max_token_bytes}-byte limit", reason="size"
            )
        token = token.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        parts = token.split(".")
        if len(parts) == 5:
            raise MalformedTokenError("encrypted tokens (JWE) are not supported", reason="format")
        if len(parts) != 3 or not all(parts[:2]):
            raise MalformedTokenError("the token is not a JWS compact serialization", reason="format")
        return _b64json(parts[0], "header"), token

    def _check_claims(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
        now = self._clock()
        if claims.get("iss") != self.issuer:
            raise InvalidClaimError(_issuer_mismatch(self.issuer, claims.get("iss")), reason="iss")
        if self.audience is not None:
            aud = claims.get("aud")
            auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not any(a in self.audience for a in auds if isinstance(a, str)):
                raise InvalidClaimError("the token was not issued for this audience", reason="aud")
            if self.token_type == "id" and len(auds) > 1 and self.client_id is not None \
                    and claims.get("azp") != self.client_id:
                raise InvalidClaimError("the ID token's azp is not this client", reason="azp")
        for name in self.required_claims:
            if name not in claims:
                raise InvalidClaimError(f"the token has no '{name}' claim", reason=name)
        for name in ("exp", "nbf", "iat"):
            if name in claims and (not isinstance(claims[name], (int, float)) or isinstance(claims[name], bool)):
                raise InvalidClaimError(f"the token's '{name}' is not a number", reason=name)
        if "exp" in claims and now > claims["exp"] + self.leeway:
            raise TokenExpiredError("the token has expired", reason="exp")
        if "nbf" in claims and now + self.leeway < claims["nbf"]:
            raise TokenNotYetValidError("the token is not valid yet (nbf)", reason="nbf")
        if "iat" in claims and now + self.leeway < claims["iat"]:
            raise TokenNotYetValidError("the token was issued in the future (iat)", reason="iat")
        if "sub" in claims and (not isinstance(claims["sub"], str) or not claims["sub"]):
            raise InvalidClaimError("the token's 'sub' is not a non-empty string", reason="sub")
        if self.typ is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in self.typ:
                raise InvalidClaimError(
                    f"the token's typ header is {_short(typ)}, not one of {list(self.typ)}"
                    " (a provider that does not mark its access tokens 'at+jwt', such as Keycloak or Auth0's"
                    " default profile, needs typ=None to skip this check, or its typ value)", reason="typ"
                )


def _short(value: Any) -> str:
    """A claim value for an error message: repr'd, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _issuer_mismatch(expected: str, received: Any) -> str:
    message = f"the token's issuer is {_short(received)}, expected {expected!r}"
    if isinstance(received, str) and received.rstrip("/") == expected.rstrip("/"):
        message += (" (they differ only by a trailing slash: set the issuer exactly as the provider's"
                    " discovery document spells it; Auth0's ends with '/')")
    return message
