"""The demo protected API on the same server (RFC 6750 bearer tokens).

* ``/api/calendar/events`` (GET needs ``calendar.read``, POST ``calendar.write``): accepts the
  demo upstream's opaque access tokens, like a Google API would.
* ``/api/bank/balance`` and ``GET /api/bank/transfers`` (``bank:read``), and
  ``POST /api/bank/transfers``: accept RFC 9068 JWT access tokens of the MAIN issuer for the
  audience ``urn:agent-auth:demo-api``. A transfer runs only if the token's
  ``authorization_details`` hold a ``payment_initiation`` entry matching it (amount, currency,
  creditor), once per token: what the user approved is exactly what runs.

Errors: 401 + ``WWW-Authenticate: Bearer error="invalid_token"`` for a missing, unknown,
expired or revoked token; 403 + ``error="insufficient_scope"`` when the token does not cover
the call; 400 ``invalid_request`` for a malformed body.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from joserfc import jwt
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_agent_auth.devserver._faults import injected
from langchain_agent_auth.devserver._issuance import find_token
from langchain_agent_auth.devserver._rar import amount_of
from langchain_agent_auth.devserver._store import DEMO_API_AUDIENCE
from langchain_agent_auth.devserver._util import dumps, loads, new_id, printable_ascii, split_scope
from langchain_agent_auth.devserver._web import (
    BadRequest,
    Endpoint,
    Handler,
    RouteTable,
    guarded,
    read_json,
    table_routes,
)

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._core import Provider

REALM = "agent-auth-demo-api"
CENTS = Decimal("0.01")


class Denied(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("denied")
        self.response = response


def _challenge(status: int, error: str | None, description: str | None, scope: str | None = None) -> Response:
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{printable_ascii(description)}"')
    if scope:
        parts.append(f'scope="{scope}"')
    body: dict[str, Any] = {"error": error or "invalid_token"}
    if description:
        body["error_description"] = printable_ascii(description)
    return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)})


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Denied(_challenge(401, None, None))
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value or len(value) > 8192:
        raise Denied(_challenge(401, "invalid_token", "malformed Authorization header"))
    return value


def _upstream_principal(provider: Provider, request: Request, needed: str) -> str:
    value = _bearer(request)
    stored = find_token(provider, "upstream", value, "access_token")
    if stored is None or stored.kind != "access_token" or stored.is_revoked() or stored.is_expired():
        raise Denied(_challenge(401, "invalid_token", "the access token is unknown, expired or revoked"))
    if needed not in split_scope(stored.row["scope"]):
        raise Denied(_challenge(403, "insufficient_scope", f"this call needs {needed}", needed))
    return stored.row["sub"]


def _main_claims(provider: Provider, request: Request, needed: str | None) -> dict[str, Any]:
    value = _bearer(request)
    try:
        token = jwt.decode(value, provider.store.verification_keyset(), algorithms=["RS256", "ES256"])
    except (JoseError, ValueError):
        raise Denied(_challenge(401, "invalid_token", "not a JWT access token of the issuer")) from None
    claims = token.claims
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    exp = claims.get("exp")
    if (
        token.header.get("typ") != "at+jwt"
        or claims.get("iss") != provider.issuer
        or DEMO_API_AUDIENCE not in audiences
        or not isinstance(exp, int | float)
        or exp <= provider.now()
        or not isinstance(claims.get("sub"), str)
    ):
        raise Denied(_challenge(401, "invalid_token", "wrong issuer, audience or type, or expired"))
    stored = find_token(provider, "main", value, "access_token")
    if stored is None or stored.is_revoked():
        raise Denied(_challenge(401, "invalid_token", "the access token was revoked"))
    if needed and needed not in split_scope(claims.get("scope")):
        raise Denied(_challenge(403, "insufficient_scope", f"this call needs {needed}", needed))
    return {**claims, "_grant_id": stored.row["grant_id"]}


def _money(value: Any, name: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(400, "invalid_request", f"{name} must be a decimal amount") from None
    if isinstance(value, bool) or not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENTS):
        raise BadRequest(400, "invalid_request", f"{name} must be positive with at most 2 decimals")
    return amount


def _covers(detail: dict[str, Any], transfer: dict[str, Any]) -> bool:
    if detail.get("type") != "payment_initiation":
        return False
    approved = amount_of(detail)
    if approved is None or approved[0] != transfer["amount"] or approved[1] != transfer["currency"]:
        return False
    for name in ("creditorName", "creditorAccount"):
        if (name in detail or name in transfer["raw"]) and detail.get(name) != transfer["raw"].get(name):
            return False
    return True


def _account(provider: Provider, sub: str) -> tuple[Decimal, str]:
    """The user's demo bank balance and currency (an account of 1,000.00 EUR opens on first use)."""
    row = provider.store.one("SELECT * FROM bank_accounts WHERE sub=?", (sub,))
    if row is None:
        provider.store.execute("INSERT OR IGNORE INTO bank_accounts VALUES (?,?,?)", (sub, 100_000, "EUR"))
        return Decimal("1000.00"), "EUR"
    return (Decimal(row["balance_cents"]) / 100).quantize(CENTS), row["currency"]


def _string(body: dict[str, Any], name: str, *, low: int, high: int, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise BadRequest(400, "invalid_request", f"{name} must be {what}")
    return value


# ---------------------------------------------------------------------------- calendar (upstream tokens)
async def calendar_list(provider: Provider, request: Request) -> Response:
    if (fault := await injected(provider, "api")) is not None:
        return fault
    sub = _upstream_principal(provider, request, "calendar.read")
    rows = provider.store.all("SELECT * FROM calendar_events WHERE sub=? ORDER BY created_at DESC, id", (sub,))
    return JSONResponse({"owner": sub, "events": [{"id": r["id"], **loads(r["data"])} for r in rows]})


async def calendar_create(provider: Provider, request: Request) -> Response:
    if (fault := await injected(provider, "api")) is not None:
        return fault
    sub = _upstream_principal(provider, request, "calendar.write")
    body = await read_json(request)
    event = {
        "title": _string(body, "title", low=1, high=200, what="a string of 1-200 characters"),
        "start": _string(body, "start", low=1, high=64, what="a date-time string"),
    }
    for name in ("end", "location", "description"):
        if name in body:
            event[name] = _string(body, name, low=0, high=1000, what="a string")
    attendees = body.get("attendees", [])
    if not isinstance(attendees, list) or not all(isinstance(a, str) for a in attendees) or len(attendees) > 50:
        raise BadRequest(400, "invalid_request", "attendees must be a list of strings")
    event["attendees"] = attendees
    event_id = new_id("evt")
    provider.store.execute(
        "INSERT INTO calendar_events VALUES (?,?,?,?)", (event_id, sub, dumps(event), provider.now())
    )
    return JSONResponse({"id": event_id, "owner": sub, **event}, status_code=201)


# ---------------------------------------------------------------------------- bank (main-issuer JWTs)
async def balance(provider: Provider, request: Request) -> Response:
    claims = _main_claims(provider, request, "bank:read")
    amount, currency = _account(provider, claims["sub"])
    return JSONResponse({"account": claims["sub"], "balance": str(amount), "currency": currency})


async def transfers_list(provider: Provider, request: Request) -> Response:
    claims = _main_claims(provider, request, "bank:read")
    rows = provider.store.all("SELECT * FROM bank_transfers WHERE sub=? ORDER BY created_at, id", (claims["sub"],))
    return JSONResponse({"transfers": [{"id": r["id"], **loads(r["data"])} for r in rows]})


def _transfer_request(body: dict[str, Any]) -> dict[str, Any]:
    """The transfer a body asks for: ``amount`` (Decimal), ``currency`` and the ``raw`` body."""
    amount = _money(body.get("amount"), "amount")
    currency = body.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise BadRequest(400, "invalid_request", "currency must be an ISO 4217 code")
    if "creditorName" in body and not isinstance(body["creditorName"], str):
        raise BadRequest(400, "invalid_request", "creditorName must be a string")
    if "creditorAccount" in body and not isinstance(body["creditorAccount"], dict):
        raise BadRequest(400, "invalid_request", "creditorAccount must be an object")
    return {"amount": amount, "currency": currency, "raw": body}


async def transfer(provider: Provider, request: Request) -> Response:
    """``POST /api/bank/transfers``: runs once per approved ``payment_initiation`` entry."""
    claims = _main_claims(provider, request, None)
    body = await read_json(request)
    wanted = _transfer_request(body)
    details = claims.get("authorization_details")
    if not isinstance(details, list) or not any(isinstance(d, dict) and _covers(d, wanted) for d in details):
        return _challenge(403, "insufficient_scope", "the token's authorization_details do not cover this transfer")
    record = {
        "amount": str(wanted["amount"]),
        "currency": wanted["currency"],
        "creditorName": body.get("creditorName"),
        "creditorAccount": body.get("creditorAccount"),
        "remittanceInformationUnstructured": body.get("remittanceInformationUnstructured"),
        "status": "executed",
        "approved_by": claims["sub"],
    }
    jti = claims.get("jti")
    if not isinstance(jti, str):
        return _challenge(401, "invalid_token", "the token has no jti")
    # An approved payment runs once per grant (and per approved entry), however many
    # access tokens that grant produced: refreshes and exchanges cannot pay twice.
    index = next(i for i, d in enumerate(details) if isinstance(d, dict) and _covers(d, wanted))
    grant_id = claims.get("_grant_id")
    once = f"grant:{grant_id}:{index}" if grant_id else f"jti:{jti}:{index}"
    # SQLite work off the event loop
    return await run_in_threadpool(_execute, provider, claims["sub"], once, wanted, record)


def _execute(provider: Provider, sub: str, once: str, wanted: dict[str, Any], record: dict[str, Any]) -> Response:
    """Debit the account and record the transfer, unless ``once`` already ran (then replay it)."""
    store, amount, currency = provider.store, wanted["amount"], wanted["currency"]
    with store.transaction():
        existing = store.one("SELECT * FROM bank_transfers WHERE jti=?", (once,))
        if existing is not None:
            previous = loads(existing["data"])
            if all(previous.get(k) == record.get(k) for k in ("amount", "currency", "creditorName", "creditorAccount")):
                return JSONResponse({"id": existing["id"], **previous, "replayed": True})
            return _challenge(403, "insufficient_scope", "this approval was already used for another transfer")
        current, account_currency = _account(provider, sub)
        if currency != account_currency:
            raise BadRequest(400, "invalid_request", f"the account is in {account_currency}")
        if amount > current:
            return JSONResponse({"error": "insufficient_funds"}, status_code=422)
        cents = int((amount * 100).to_integral_value(ROUND_HALF_UP))
        store.execute("UPDATE bank_accounts SET balance_cents=balance_cents-? WHERE sub=?", (cents, sub))
        transfer_id = new_id("trf")
        record["balance_after"] = str((current - amount).quantize(CENTS))
        store.execute(
            "INSERT INTO bank_transfers VALUES (?,?,?,?,?)",
            (transfer_id, sub, once, json.dumps(record), provider.now()),
        )
    return JSONResponse({"id": transfer_id, **record}, status_code=201)


ROUTES: RouteTable = [
    ("/api/calendar/events", calendar_list, ["GET"]),
    ("/api/calendar/events", calendar_create, ["POST"]),
    ("/api/bank/balance", balance, ["GET"]),
    ("/api/bank/transfers", transfers_list, ["GET"]),
    ("/api/bank/transfers", transfer, ["POST"]),
]


def _endpoint(provider: Provider, func: Handler) -> Endpoint:
    """``func`` as a route: a :class:`Denied` token becomes its challenge response."""

    async def wrapper(request: Request) -> Response:
        try:
            return await func(provider, request)
        except Denied as exc:
            return exc.response

    wrapper.__name__ = func.__name__
    return guarded(wrapper)


def api_routes(provider: Provider) -> list[Route]:
    """The demo API's routes (:data:`ROUTES`)."""
    return table_routes(ROUTES, lambda func: _endpoint(provider, func))
