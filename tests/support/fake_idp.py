"""A small scriptable OpenID provider behind ``httpx.MockTransport`` (unit tests of flows)."""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://idp.test"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeProvider:
    """Discovery, JWKS and a token endpoint whose answers tests script.

    ``script(path, *responses)`` queues answers for a path (a callable or an
    ``httpx.Response`` or an exception instance to raise); unscripted token requests get a
    fresh access token. Every request is recorded in ``requests``.
    """

    def __init__(self, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS256", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "alg": "ES256", "use": "sig"})
        self.metadata: dict[str, Any] = {
            "issuer": issuer,
            "token_endpoint": f"{issuer}/token",
            "authorization_endpoint": f"{issuer}/authorize",
            "jwks_uri": f"{issuer}/jwks",
            "revocation_endpoint": f"{issuer}/revoke",
            "introspection_endpoint": f"{issuer}/introspect",
            "backchannel_authentication_endpoint": f"{issuer}/bc-authorize",
            "grant_types_supported": ["client_credentials", "refresh_token", "urn:openid:params:grant-type:ciba"],
        }
        self.requests: list[httpx.Request] = []
        self.hits: Counter[str] = Counter()
        self._scripts: dict[str, deque[Any]] = {}
        self.transport = httpx.MockTransport(self.handle)
        self.async_transport = httpx.MockTransport(self.handle)

    # -- scripting

    def script(self, path: str, *answers: Any) -> None:
        self._scripts.setdefault(path, deque()).extend(answers)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.rsa.as_dict(private=False), self.ec.as_dict(private=False)]}

    def sign(self, claims: dict[str, Any] | None = None, *, key: Any = None, header: dict[str, Any] | None = None,
             **overrides: Any) -> str:
        key = key or self.rsa
        now = int(time.time())
        body = {"iss": self.issuer, "aud": "api", "sub": "alice", "iat": now, "exp": now + 300,
                **(claims or {}), **overrides}
        alg = "ES256" if isinstance(key, ECKey) else "RS256"
        head = {"alg": alg, "kid": key.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(head, {k: v for k, v in body.items() if v is not None}, key)

    # -- transport

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        self.hits[path] += 1
        queue = self._scripts.get(path)
        if queue:
            answer = queue.popleft()
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer):
                return answer(request)
            # A fresh copy: one Response object cannot be sent twice (or to sync and async).
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.metadata)
        if path == "/jwks":
            return httpx.Response(200, json=self.jwks())
        if path == "/token":
            form = self.form(request)
            body = {"access_token": f"at-{len(self.requests)}", "token_type": "Bearer", "expires_in": 300}
            if form.get("grant_type") == "refresh_token":
                body["refresh_token"] = f"rt-{len(self.requests)}"
            return httpx.Response(200, json=body)
        if path == "/bc-authorize":
            return httpx.Response(200, json={"auth_req_id": "req-123456", "expires_in": 120, "interval": 2})
        if path == "/revoke":
            return httpx.Response(200)
        if path == "/introspect":
            return httpx.Response(200, json={"active": True, "sub": "alice"})
        return httpx.Response(404, json={"error": "not_found"})

    @staticmethod
    def form(request: httpx.Request) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}

    @staticmethod
    def form_multi(request: httpx.Request) -> dict[str, list[str]]:
        return parse_qs(request.content.decode())

    def last(self, path: str) -> httpx.Request:
        return [r for r in self.requests if r.url.path == path][-1]

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport)

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.async_transport)


def error(status: int, code: str | None = None, description: str | None = None, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {}
    if code:
        body["error"] = code
    if description:
        body["error_description"] = description
    return httpx.Response(status, content=json.dumps(body).encode() if body else b"",
                          headers={"content-type": "application/json", **headers})
