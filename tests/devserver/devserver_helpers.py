"""Shared helpers of the local provider's tests (constants, the provider handle, a ping receiver)."""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from langchain_agent_auth.devserver import LocalProvider

CIBA = "urn:openid:params:grant-type:ciba"
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
FEDERATED = "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"
AT_TYPE = "urn:ietf:params:oauth:token-type:access_token"
RT_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"
FEDERATED_TYPE = "http://auth0.com/oauth/token-type/federated-connection-access-token"
API = "urn:example:api"
DOWN = "urn:example:downstream"
RAR = [{"type": "agent_action", "actions": ["send_email"], "locations": [API], "identifier": "draft-42"}]
# A JWT, or a run of 32+ URL-safe characters (every opaque credential the provider mints).
TOKEN_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{8,}|(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")
PAYMENT = [
    {
        "type": "payment_initiation",
        "instructedAmount": {"amount": "250.00", "currency": "EUR"},
        "creditorName": "ACME Corp",
        "creditorAccount": {"iban": "DE89370400440532013000"},
    }
]


@dataclass
class ProviderHandle:
    """What a protocol test needs from a provider (this one or node-oidc-provider)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str
    idp: LocalProvider
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret)

    def keyset(self) -> KeySet:
        return KeySet.import_key_set(httpx.get(self.metadata["jwks_uri"]).json())

    def post(
        self, endpoint: str, data: dict[str, Any] | list[tuple[str, str]], auth: Any = "default", **kw: Any
    ) -> httpx.Response:
        auth = self.auth if auth == "default" else auth
        return httpx.post(self.metadata[endpoint], data=data, auth=auth, **kw)

    def bc_authorize(self, auth: Any = "default", **params: Any) -> httpx.Response:
        return self.post("backchannel_authentication_endpoint", params, auth=auth)

    def poll(self, auth_req_id: str, auth: Any = "default") -> tuple[dict[str, Any] | None, str | None]:
        r = self.post("token_endpoint", {"grant_type": CIBA, "auth_req_id": auth_req_id}, auth=auth)
        body = r.json()
        return (body, None) if r.status_code == 200 else (None, body.get("error"))

    def pending(self, user: str, binding_message: str | None = None) -> list[dict[str, Any]]:
        items = self.idp.pending_approvals(user=user)
        return [i for i in items if binding_message is None or i["binding_message"] == binding_message]

    def pending_one(self, user: str, binding_message: str | None = None) -> dict[str, Any]:
        items = self.pending(user, binding_message)
        assert len(items) == 1, items
        return items[0]

    def approve(self, pending_id: str, **kw: Any) -> dict[str, Any]:
        return self.idp.approve(pending_id, **kw)

    def deny(self, pending_id: str, reason: str | None = None) -> dict[str, Any]:
        return self.idp.deny(pending_id, reason)


def verify(handle: ProviderHandle, token: str, aud: str, typ: str | None = None) -> tuple[dict, dict]:
    """Signature via the JWKS (kid lookup) + iss/aud/exp/sub checks, as a resource server would."""
    decoded = jwt.decode(token, handle.keyset(), algorithms=["RS256", "ES256"])
    JWTClaimsRegistry(
        iss={"essential": True, "value": handle.issuer},
        aud={"essential": True, "value": aud},
        exp={"essential": True},
        sub={"essential": True},
    ).validate(decoded.claims)
    if typ:
        assert decoded.header["typ"] == typ
    return decoded.header, decoded.claims


class LogCapture(logging.Handler):
    """Keep every record of the provider's logger (the log-scanning test reads them)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class PingReceiver:
    """A client's ``backchannel_client_notification_endpoint`` (CIBA ping mode)."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                events.put(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("authorization"),
                        "content_type": self.headers.get("content-type"),
                        "body": json.loads(raw or b"{}"),
                    }
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ciba/notify"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()
