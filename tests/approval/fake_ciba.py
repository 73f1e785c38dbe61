"""A scriptable CIBA provider behind httpx.MockTransport, with a controllable clock.

It behaves like node-oidc-provider where it matters for the approval pillar: polling
faster than ``interval`` answers ``slow_down``; unknown users get ``unknown_user_id``;
tokens are issued once and carry the approved ``authorization_details``. Tests play the
user's phone with ``approve`` / ``deny``, and can take the provider down.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from langchain_agent_auth.oauth import OAuthClient, RetryPolicy
from tests.support.fake_idp import FakeProvider

CIBA = "urn:openid:params:grant-type:ciba"


class Clock:
    """A manual clock (seconds)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCiba(FakeProvider):
    def __init__(self, clock: Callable[[], float] = time.time, *, interval: float | None = 1,
                 expires_in: int = 120, users: tuple[str, ...] = ("alice", "bob", "alice@example.com")) -> None:
        super().__init__()
        self.clock = clock
        self.interval = interval
        self.expires_in = expires_in
        self.users = set(users)
        self.reqs: dict[str, dict[str, Any]] = {}
        self.counts: Counter[str] = Counter()
        self.down = False
        self.force: list[str] = []  # error codes to answer the next polls with
        self.tokens: list[str] = []

    # -- the user's phone

    def latest(self) -> dict[str, Any]:
        return list(self.reqs.values())[-1]

    def approve(self, rid: str | None = None) -> None:
        self.reqs[rid or self.latest()["rid"]]["status"] = "approved"

    def deny(self, rid: str | None = None) -> None:
        self.reqs[rid or self.latest()["rid"]]["status"] = "denied"

    def fail(self, rid: str | None = None) -> None:
        self.reqs[rid or self.latest()["rid"]]["status"] = "failed"

    def slow_downs(self) -> int:
        return self.counts["slow_down"]

    # -- transport

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self._scripts.get(path):  # scripted answers first (FakeProvider.script)
            return super().handle(request)
        if path == "/bc-authorize":
            self.requests.append(request)
            self.hits[path] += 1
            return self._authorize(self.form(request))
        if path == "/token" and self.form(request).get("grant_type") == CIBA:
            self.requests.append(request)
            self.hits["poll"] += 1
            if self.down:
                raise httpx.ConnectError("provider down", request=request)
            return self._poll(self.form(request))
        return super().handle(request)

    def _error(self, code: str, status: int = 400, description: str | None = None) -> httpx.Response:
        self.counts[code] += 1
        body = {"error": code, **({"error_description": description} if description else {})}
        return httpx.Response(status, json=body)

    def _authorize(self, form: dict[str, str]) -> httpx.Response:
        hint = form.get("login_hint", "")
        try:
            parsed = json.loads(hint)
            who = parsed.get("sub") if isinstance(parsed, dict) else hint
        except ValueError:
            who = hint
        if who not in self.users:
            return self._error("unknown_user_id", description="no such user")
        rid = "rid-" + secrets.token_urlsafe(24)
        details = json.loads(form["authorization_details"]) if form.get("authorization_details") else None
        self.reqs[rid] = {"rid": rid, "form": form, "status": "pending", "polls": [], "user": who,
                          "details": details, "expires_at": self.clock() + self.expires_in,
                          "interval": self.interval or 5}
        body: dict[str, Any] = {"auth_req_id": rid, "expires_in": self.expires_in}
        if self.interval is not None:
            body["interval"] = self.interval
        return httpx.Response(200, json=body)

    def _poll(self, form: dict[str, str]) -> httpx.Response:
        req = self.reqs.get(form.get("auth_req_id", ""))
        if req is None:
            return self._error("invalid_grant", description="unknown auth_req_id")
        now = self.clock()
        last = req["polls"][-1] if req["polls"] else None
        req["polls"].append(now)
        if self.force:
            return self._error(self.force.pop(0))
        if last is not None and now - last < req["interval"] - 1e-6:
            req["interval"] += 5
            return self._error("slow_down")
        if now >= req["expires_at"]:
            return self._error("expired_token")
        status = req["status"]
        if status == "pending":
            return self._error("authorization_pending")
        if status == "denied":
            return self._error("access_denied", description="the user said no")
        if status == "failed":
            return self._error("transaction_failed")
        if status == "issued":
            return self._error("invalid_grant", description="already used")
        req["status"] = "issued"
        token = "AT-" + secrets.token_urlsafe(32)
        self.tokens.append(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "payments"}
        if req["details"] is not None:
            body["authorization_details"] = req["details"]
        return httpx.Response(200, json=body)

    def polls(self) -> int:
        return self.hits["poll"]

    def oauth_client(self, clock: Callable[[], float] | None = None, **kwargs: Any) -> OAuthClient:
        kwargs.setdefault("retry", RetryPolicy(attempts=1))
        return OAuthClient(self.issuer, "agent", "agent-secret-0123456789", http_client=self.client(),
                           async_http_client=self.async_client(), clock=clock or self.clock, **kwargs)
