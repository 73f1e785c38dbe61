"""Identity from a bearer token verified against an issuer."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import ConfigurationError
from langchain_agent_auth.core.identity import DEFAULT_CLAIMS, IdentitySource, UserIdentity
from langchain_agent_auth.oauth.jwt import JWTVerifier

__all__ = ["TokenResolver"]

TokenGetter = Callable[[IdentitySource], "str | None"]


def _from_context(key: str) -> TokenGetter:
    def get(source: IdentitySource) -> str | None:
        ctx = source.context
        if ctx is None:
            return None
        value = ctx.get(key) if isinstance(ctx, Mapping) else getattr(ctx, key, None)
        return value if isinstance(value, str) and value else None

    return get


class TokenResolver:
    """The user a bearer token vouches for, verified with a :class:`JWTVerifier`.

    The token is read from the runtime context (``context={"access_token": ...}`` by
    default; the runtime context is not checkpointed) or by a callable you give. Verified
    identities are cached by token digest until the token expires, so resolving once per
    run and once per tool call costs one verification.

    Example:
        >>> from langchain_agent_auth.oauth import JWTVerifier
        >>> resolver = TokenResolver(JWTVerifier("https://idp.example", audience="api"))
        >>> resolver.resolve(IdentitySource(context={})) is None
        True
    """

    def __init__(
        self,
        verifier: JWTVerifier,
        *,
        token: str | TokenGetter = "access_token",
        include_claims: Sequence[str] = DEFAULT_CLAIMS,
        cache_size: int = 1024,
    ) -> None:
        if not isinstance(verifier, JWTVerifier):
            raise ConfigurationError("TokenResolver needs a JWTVerifier")
        self.verifier = verifier
        self._get = _from_context(token) if isinstance(token, str) else token
        self._include = tuple(include_claims)
        self._cache: OrderedDict[bytes, tuple[float, UserIdentity]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _cached(self, digest: bytes) -> UserIdentity | None:
        with self._lock:
            item = self._cache.get(digest)
            if item is None:
                return None
            if item[0] <= time.time():
                del self._cache[digest]
                return None
            self._cache.move_to_end(digest)
            return item[1]

    def _remember(self, digest: bytes, claims: Mapping[str, Any]) -> UserIdentity:
        user = UserIdentity.from_claims(claims, source="token", include=self._include)
        exp = claims.get("exp")
        if isinstance(exp, (int, float)):
            with self._lock:
                self._cache[digest] = (float(exp), user)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return user

    def resolve(self, source: IdentitySource) -> UserIdentity | None:
        return run(self._resolved(source))

    async def aresolve(self, source: IdentitySource) -> UserIdentity | None:
        return await arun(self._resolved(source))

    def _resolved(self, source: IdentitySource) -> Flow[UserIdentity | None]:
        token = self._get(source)
        if token is None:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        claims = yield Call(lambda: self.verifier.verify(token), lambda: self.verifier.averify(token))
        return self._remember(digest, claims)
