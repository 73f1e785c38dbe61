"""The pending-grant lifecycle that CIBA and the device grant share.

A client opens a request (``POST /bc-authorize`` or ``POST /device_authorization``) and gets a
bearer credential (``auth_req_id`` / ``device_code``, stored only as a hash); it then polls the
token endpoint and hears ``authorization_pending`` or ``slow_down`` until the user decides on
their device, then ``access_denied``, ``expired_token`` or, once, the tokens. Redeeming the
credential a second time revokes the grant it produced. :class:`PendingKind` says which table
and which words; :class:`PendingEndpoint` is where both are opened and :class:`PendingGrant` the
authlib token grant both use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.endpoint import Endpoint
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.hooks import hooked

from langchain_agent_auth.devserver._issuance import (
    Issuance,
    IssuingGrant,
    check_client_scope,
    grant_client,
    resolve_targets,
    revoke_grant,
)
from langchain_agent_auth.devserver._model import (
    AccessDeniedError,
    AuthContext,
    AuthorizationPendingError,
    Client,
    ExpiredTokenError,
    OAuthRequest,
    SlowDownError,
    UnauthorizedClientError,
    oauth_error,
)
from langchain_agent_auth.devserver._util import dumps, loads, token_hash

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

log = logging.getLogger("langchain_agent_auth.devserver")


@dataclass(frozen=True)
class PendingKind:
    """What differs between the two pending grants: names, table and the denial rule."""

    group: str  # counter group: "ciba" | "device"
    noun: str  # in logs: "CIBA request" | "device request"
    table: str
    credential: str  # the client's bearer credential: "auth_req_id" | "device_code"
    grant_type: str
    grant_name: str  # in "client is not registered for ...": "CIBA" | "the device grant"
    expired: str  # error_description of expired_token
    deny_once: bool  # access_denied is reported once, later polls get invalid_grant
    endpoint: str  # the authlib endpoint that opens a request: "backchannel_authentication" | ...
    opened: str  # the counter (in ``group``) of opened requests
    auth_methods: list[str]  # how its clients authenticate, opening and redeeming alike

    def unregistered(self) -> Exception:
        return oauth_error(UnauthorizedClientError, f"client is not registered for {self.grant_name}")


class PendingEndpoint(Endpoint):
    """Where a client opens a pending request (``/bc-authorize``, ``/device_authorization``):
    the request is counted and the client authenticated (registered for ``KIND``'s grant)
    before :meth:`open` reads it and returns the JSON body."""

    KIND: PendingKind

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.ENDPOINT_NAME = cls.KIND.endpoint

    def create_endpoint_response(self, request: OAuthRequest) -> tuple[int, dict[str, Any], list]:
        provider: Provider = self.server.provider
        kind = self.KIND
        provider.count(kind.group, kind.opened)
        client = self.server.authenticate_client(request, kind.auth_methods, self.ENDPOINT_NAME)
        request.client = client
        if not client.check_grant_type(kind.grant_type):
            raise kind.unregistered()
        return 200, self.open(provider, client, request), default_json_headers

    def open(self, provider: Provider, client: Client, request: OAuthRequest) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def user_targets(provider: Provider, client: Client, request: OAuthRequest, scopes: list[str]) -> list[str]:
        """Check ``client`` may ask for ``scopes``; the audiences of the user's token."""
        check_client_scope(client, scopes)
        return resolve_targets(provider, request, scopes, user_grant=True)


def open_request(
    provider: Provider,
    kind: PendingKind,
    credential: str,
    ttl: int,
    body: dict[str, Any],
    **columns: Any,
) -> dict[str, Any]:
    """Store a pending request (``columns``: id, client_id, sub, data, ...); returns ``body``
    with ``expires_in`` and the poll ``interval`` (left out when 0)."""
    created = provider.now()
    interval = provider.ciba_interval
    row = {
        **columns,
        f"{kind.credential}_hash": token_hash(credential),
        "status": "pending",
        "data": dumps(columns["data"]),
        "created_at": created,
        "expires_at": created + ttl,
        "interval": interval,
    }
    names = ",".join(row)
    marks = ",".join("?" for _ in row)
    provider.store.execute(f"INSERT INTO {kind.table} ({names}) VALUES ({marks})", tuple(row.values()))  # noqa: S608
    body["expires_in"] = ttl
    if interval > 0:
        body["interval"] = interval
    return body


def poll(provider: Provider, kind: PendingKind, row: dict[str, Any]) -> dict[str, Any]:
    """Apply a poll to a stored request: raise the spec's error or return the approved row."""
    row["data"] = loads(row["data"], {})
    status, table, request_id = row["status"], kind.table, row["id"]
    if status == "consumed":
        revoke_grant(provider, row["grant_id"])  # a replayed credential: revoke what it produced
        log.warning("%s %s: %s replayed, grant revoked", kind.noun, request_id, kind.credential)
        raise oauth_error(InvalidGrantError, f"{kind.credential} was already used")
    if status == "denied_reported":
        raise oauth_error(InvalidGrantError, f"{kind.credential} was already used")
    if status == "denied":
        if kind.deny_once:
            provider.store.execute(f"UPDATE {table} SET status='denied_reported' WHERE id=?", (request_id,))  # noqa: S608
        provider.count(kind.group, "access_denied")
        raise oauth_error(AccessDeniedError, row["data"].get("deny_reason") or "the user denied the request")
    if row["expires_at"] <= provider.now():
        if status == "pending":
            provider.store.execute(f"UPDATE {table} SET status='expired' WHERE id=?", (request_id,))  # noqa: S608
        provider.count(kind.group, "expired_token")
        raise oauth_error(ExpiredTokenError, kind.expired)
    _check_interval(provider, kind, row)
    if status == "pending":
        provider.count(kind.group, "authorization_pending")
        raise oauth_error(AuthorizationPendingError, "the user has not answered yet")
    if status != "approved":  # "expired"
        raise oauth_error(ExpiredTokenError, kind.expired)
    return row


def _check_interval(provider: Provider, kind: PendingKind, row: dict[str, Any]) -> None:
    """Record this poll; ``slow_down`` when it comes sooner than the interval after the last."""
    current = provider.clock.time()
    last = row["last_poll_at"]
    provider.store.execute(f"UPDATE {kind.table} SET last_poll_at=? WHERE id=?", (current, row["id"]))  # noqa: S608
    if row["interval"] > 0 and last is not None and current - last < row["interval"]:
        provider.count(kind.group, "slow_down")
        raise oauth_error(SlowDownError, f"poll at most every {row['interval']} seconds")


class PendingGrant(IssuingGrant, BaseGrant, TokenEndpointMixin):
    """The token request redeeming a pending request once the user approved it."""

    KIND: PendingKind
    ACR: str
    AMR: list[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.GRANT_TYPE = cls.KIND.grant_type
        cls.TOKEN_ENDPOINT_AUTH_METHODS = cls.KIND.auth_methods

    def validate_token_request(self) -> None:
        provider: Provider = self.server.provider
        kind = self.KIND
        provider.count(kind.group, "polls")
        client = grant_client(self, f"client is not registered for {kind.grant_name}")
        credential = self.request.form.get(kind.credential)
        if not credential:
            raise oauth_error(InvalidRequestError, f"missing {kind.credential}")
        row = provider.store.one(
            f"SELECT * FROM {kind.table} WHERE {kind.credential}_hash=? AND client_id=?",  # noqa: S608
            (token_hash(credential), client.client_id),
        )
        if row is None:
            raise oauth_error(InvalidGrantError, f"unknown {kind.credential}")
        self.request.pending = poll(provider, kind, dict(row))

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        provider: Provider = self.server.provider
        row = self.request.pending
        user = provider.user(row["sub"])
        if user is None:
            raise oauth_error(InvalidGrantError, "the user no longer exists")
        self.request.user = user
        self.request.authorization_code = AuthContext(
            sub=row["sub"], auth_time=row["decided_at"], acr=self.ACR, amr=list(self.AMR)
        )
        token = self.generate_token(user=user, scope=row["data"]["scope"], include_refresh_token=True)
        self.save_token(token)
        provider.store.execute(
            f"UPDATE {self.KIND.table} SET status='consumed', grant_id=? WHERE id=?",  # noqa: S608
            (self.request.issuance.grant_id, row["id"]),
        )
        provider.count(self.KIND.group, "tokens")
        log.info("%s %s: tokens issued to %s", self.KIND.noun, row["id"], row["client_id"])
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def approved_details(self, data: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The ``authorization_details`` the tokens carry (none unless the grant has them)."""
        return None

    def issuance(self, user: Any, scope: str) -> Issuance:
        row = self.request.pending
        issuance = self.server.user_issuance(
            self.request,
            user,
            scope,
            targets=row["data"].get("resource") or [],
            authorization_details=self.approved_details(row["data"]),
            acr=self.ACR,
            amr=list(self.AMR),
            auth_time=row["decided_at"],
        )
        self.request.issuance = issuance
        return issuance
