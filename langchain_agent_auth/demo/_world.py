"""What the demo's assistant works with: its three tools, the documents and their
authorization model, the demo calendar's events, and a "browser" for the consent pages.

* ``list_calendar_events`` calls the local provider's demo API (``/api/calendar/events``)
  with the user's *vaulted* upstream token (:func:`~langchain_agent_auth.vault.vault_auth`);
* ``transfer_money`` POSTs to the demo bank (``/api/bank/transfers``) with the token the
  CIBA approval returned (:func:`~langchain_agent_auth.approval.get_approval_token`): the
  bank only executes a transfer its ``payment_initiation`` details cover, once;
* ``search_documents`` retrieves from a small in-memory index through
  :class:`~langchain_agent_auth.fga.FGARetriever`: only documents the signed-in user may
  read come back (users, teams and documents in an OpenFGA model: the store file
  ``world.fga.yaml`` beside this module, model, tuples and tests of who reads what).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, tool

from langchain_agent_auth.approval import get_approval_token
from langchain_agent_auth.core.errors import OAuthError, ProtocolError
from langchain_agent_auth.demo._model import CALENDAR_TOOL, SEARCH_TOOL, TRANSFER_TOOL, format_eur
from langchain_agent_auth.devserver._browser import sign_in as browser_sign_in
from langchain_agent_auth.fga import EmbeddedAuthorizer, FGARetriever
from langchain_agent_auth.identity import get_current_user
from langchain_agent_auth.vault import vault_auth

__all__ = [
    "APPROVAL_THRESHOLD",
    "DOCUMENTS",
    "WORLD_FILE",
    "KeywordRetriever",
    "build_tools",
    "calendar_events",
    "make_authorizer",
    "needs_approval",
    "payment_details",
    "seed_calendar",
    "sign_in_and_consent",
    "transfer_message",
]

Report = Callable[[str, str, "dict[str, Any] | None"], None]

APPROVAL_THRESHOLD = Decimal("100")
CENTS = Decimal("0.01")

#: The documents' authorization model, tuples and the facts they imply (an OpenFGA store file).
WORLD_FILE = Path(__file__).with_name("world.fga.yaml")

#: (id, title, summary)
DOCUMENTS: list[tuple[str, str, str]] = [
    ("handbook", "Employee handbook", "how we work: holidays, expenses and the travel policy"),
    ("q3-budget", "Q3 budget", "finance's plan for Q3 spending, team by team"),
    ("roadmap", "Product roadmap", "what we plan to ship this year, and why"),
    ("oncall-runbook", "On-call runbook", "engineering's steps for incidents and pages"),
    ("salary-bands", "Salary bands", "HR's pay ranges for every role"),
]


def make_authorizer() -> EmbeddedAuthorizer:
    """The embedded OpenFGA-compatible engine with the demo's model and tuples
    (:data:`WORLD_FILE`; ``agent-auth fga test`` checks the facts it states).

    Example:
        >>> fga = make_authorizer()
        >>> fga.list_objects("user:bob", "viewer", "document")
        ['document:handbook', 'document:oncall-runbook', 'document:roadmap']
    """
    return EmbeddedAuthorizer.from_store_file(WORLD_FILE)


class KeywordRetriever(BaseRetriever):
    """A tiny in-memory "vector store": every document, best keyword match first (a
    similarity search returns its top k whatever the query; here k is all of them).

    Example:
        >>> r = KeywordRetriever(documents=[Document("a plan", metadata={"id": "x"}), Document("b")])
        >>> [d.page_content for d in r.invoke("plan")]
        ['a plan', 'b']
    """

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        words = {w for w in re.findall(r"[a-z0-9]+", query.lower()) if len(w) > 2}

        def score(doc: Document) -> int:
            text = (doc.page_content + " " + str(doc.metadata.get("title", ""))).lower()
            return sum(1 for w in words if w in text)

        return sorted(self.documents, key=score, reverse=True)


def _documents() -> list[Document]:
    return [Document(f"{title}: {summary}", metadata={"id": doc_id, "title": title, "summary": summary})
            for doc_id, title, summary in DOCUMENTS]


# --------------------------------------------------------------------------- money


def _amount(args: Mapping[str, Any]) -> Decimal:
    try:
        value = Decimal(str(args.get("amount"))).quantize(CENTS)
    except (InvalidOperation, ValueError):
        raise ValueError("amount must be a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("amount must be positive")
    return value


def needs_approval(args: Mapping[str, Any]) -> bool:
    """Transfers above 100.00 EUR need the user's approval (unreadable amounts too).

    Example:
        >>> needs_approval({"amount": 250}), needs_approval({"amount": 20})
        (True, False)
    """
    try:
        return _amount(args) > APPROVAL_THRESHOLD
    except ValueError:
        return True


def transfer_message(tool_name: str, args: Mapping[str, Any]) -> str:
    """The CIBA binding message: what the user sees on the device.

    Example:
        >>> transfer_message("transfer_money", {"amount": 250, "to": "Bob"})
        'Pay 250.00 EUR to Bob'
    """
    return f"Pay {format_eur(args.get('amount'))} to {str(args.get('to', '?'))[:60]}"


def payment_details(tool_name: str, args: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RAR ``authorization_details`` for the transfer (what the bank API checks).

    Example:
        >>> payment_details("transfer_money", {"amount": 250, "to": "Bob"})[0]["instructedAmount"]
        {'amount': '250.00', 'currency': 'EUR'}
    """
    detail: dict[str, Any] = {
        "type": "payment_initiation",
        "instructedAmount": {"amount": str(_amount(args)), "currency": "EUR"},
        "creditorName": str(args.get("to", ""))[:140],
    }
    if args.get("reference"):
        detail["remittanceInformationUnstructured"] = str(args["reference"])[:140]
    return [detail]


# --------------------------------------------------------------------------- calendar


def calendar_events(today: _dt.date | None = None) -> list[dict[str, Any]]:
    """The events the demo puts into the user's demo calendar (the coming week).

    Example:
        >>> [e["title"] for e in calendar_events(_dt.date(2025, 5, 12))]
        ['Team stand-up', 'Lunch with Bob', 'Quarterly review']
    """
    day = today or _dt.date.today()

    def at(days: int, hour: int, minute: int) -> str:
        moment = _dt.datetime.combine(day + _dt.timedelta(days=days), _dt.time(hour, minute))
        return moment.isoformat(timespec="minutes")

    return [
        {"title": "Team stand-up", "start": at(1, 9, 30), "end": at(1, 9, 45), "location": "Room 4"},
        {"title": "Lunch with Bob", "start": at(2, 12, 30), "end": at(2, 13, 30), "location": "Cafe Central"},
        {"title": "Quarterly review", "start": at(4, 15, 0), "end": at(4, 16, 0), "location": "Board room"},
    ]


def _when(start: Any) -> str:
    try:
        moment = _dt.datetime.fromisoformat(str(start))
    except ValueError:
        return str(start)
    return moment.strftime("%a %d %b %H:%M")


# --------------------------------------------------------------------------- tools


def build_tools(api_url: str, fga: EmbeddedAuthorizer, report: Report) -> list[BaseTool]:
    """The assistant's three tools (the approval and vault guards are added by the caller).

    ``report(pillar, text)`` tells the transcript what a tool did (no token ever).
    """
    retriever = FGARetriever(retriever=KeywordRetriever(documents=_documents()), authorizer=fga,
                             relation="viewer", object_type="document")

    @tool(CALENDAR_TOOL)
    def list_calendar_events(days: int = 7) -> str:
        """List the signed-in user's calendar events for the next `days` days (their connected calendar)."""
        user = get_current_user()
        with httpx.Client(auth=vault_auth("calendar"), timeout=10) as http:
            response = http.get(f"{api_url}/calendar/events")
        if response.status_code != 200:
            report("vault", f"GET /api/calendar/events -> HTTP {response.status_code}", None)
            return json.dumps({"error": f"the calendar API answered HTTP {response.status_code}"})
        body = response.json()
        horizon = _dt.datetime.now() + _dt.timedelta(days=max(1, min(int(days or 7), 366)))
        events = []
        for event in sorted(body.get("events") or [], key=lambda e: str(e.get("start"))):
            try:
                if _dt.datetime.fromisoformat(str(event.get("start"))) > horizon:
                    continue
            except ValueError:
                pass
            events.append({"title": event.get("title"), "when": _when(event.get("start")),
                           "location": event.get("location")})
        report("vault", f"GET /api/calendar/events with {user.subject if user else '?'}'s vaulted token "
                        f"-> 200, {len(events)} events (owner: {body.get('owner')})", {"calendar_events": len(events)})
        return json.dumps({"owner": body.get("owner"), "events": events})

    @tool(TRANSFER_TOOL)
    def transfer_money(amount: float, to: str, reference: str = "") -> str:
        """Send money (EUR) from the signed-in user's bank account to a person.

        Transfers over 100 EUR are sent to the user's device for approval first.
        """
        approval = get_approval_token()
        try:
            value = _amount({"amount": amount})
        except ValueError as exc:
            return json.dumps({"status": "not_sent", "error": str(exc)})
        if approval is None:
            report("approval", f"no approval token for {format_eur(value)} to {to}: not sent", None)
            return json.dumps({"status": "not_sent", "error": "the demo bank only accepts transfers the user "
                               "approved on their device (over 100.00 EUR)"})
        body: dict[str, Any] = {"amount": str(value), "currency": "EUR", "creditorName": to}
        if reference:
            body["remittanceInformationUnstructured"] = reference
        response = httpx.post(f"{api_url}/bank/transfers", json=body, timeout=10,
                              headers={"Authorization": f"{approval.token_type or 'Bearer'} {approval.access_token}"})
        try:
            data = response.json()
        except ValueError:
            data = {}
        status = data.get("status") or data.get("error") or f"HTTP {response.status_code}"
        report("approval", f"POST /api/bank/transfers with the approval's access token "
                           f"({format_eur(value)} to {to}) -> {response.status_code} {status}", None)
        if response.status_code >= 400:
            return json.dumps({"status": "failed", "error": data.get("error_description") or status})
        keep = ("id", "status", "amount", "currency", "creditorName", "remittanceInformationUnstructured")
        return json.dumps({k: data.get(k) for k in keep if data.get(k) is not None})

    @tool(SEARCH_TOOL)
    def search_documents(query: str) -> str:
        """Search the company documents the signed-in user is allowed to read."""
        user = get_current_user()
        kept, decisions = retriever.retrieve_with_decisions(query)
        checked = [d for d in decisions if d.object.startswith("document:") and d.object != "document:*"]
        titles = ", ".join(str(d.metadata.get("title")) for d in kept) or "none"
        who = user.subject if user else "?"
        report("fga", f"{who} may read {len(kept)} of {len(checked)} documents (one batch_check, embedded "
                      f"OpenFGA engine): {titles}",
               {"fga": {who: [str(d.metadata.get("title")) for d in kept]}, "documents": len(checked)})
        return json.dumps({"documents": [{"id": d.metadata["id"], "title": d.metadata["title"],
                                          "summary": d.metadata["summary"]} for d in kept]})

    return [list_calendar_events, transfer_money, search_documents]


# --------------------------------------------------------------------------- a browser


def sign_in_and_consent(url: str, username: str, password: str, *, timeout: float = 15.0) -> str:
    """Do what the user's browser does with an authorize URL: sign in and allow. Returns
    the URL the provider redirects the browser to (the app's callback, with ``code`` and
    ``state``), without following it: the caller delivers it. The pages are the local
    provider's, so its scripted browser (:func:`~langchain_agent_auth.devserver._browser.sign_in`)
    plays them; its errors are told in the demo's words."""
    redirect_uri = parse_qs(urlsplit(url).query).get("redirect_uri", [""])[0]
    try:
        return browser_sign_in(url, username, password, redirect_uri=redirect_uri, timeout=timeout)
    except OAuthError as exc:
        raise ProtocolError("the demo upstream refused the user's password", status_code=401) from exc
    except ProtocolError as exc:
        raise ProtocolError(f"signing in at the demo upstream did not come back to the app (HTTP {exc.status_code})",
                            status_code=exc.status_code) from exc


def seed_calendar(upstream_token: str, api_url: str, events: Sequence[Mapping[str, Any]]) -> int:
    """Put ``events`` into the user's demo calendar (setup, with a calendar.write token)."""
    created = 0
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {upstream_token}"}) as http:
        existing = http.get(f"{api_url}/calendar/events")
        existing.raise_for_status()
        titles = {(e.get("title"), e.get("start")) for e in existing.json().get("events") or []}
        for event in events:
            if (event["title"], event["start"]) in titles:
                continue
            http.post(f"{api_url}/calendar/events", json=dict(event)).raise_for_status()
            created += 1
    return created
