"""Tools the attacker aims at. Each records that it ran, so a test can prove it did not."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool

RAN: list[tuple[str, dict[str, Any]]] = []


@tool
def share_document(doc: str, grant: dict) -> str:
    """Share a document; ``grant`` says with whom and how."""
    RAN.append(("share_document", {"doc": doc, "grant": grant}))
    return f"shared {doc}"


@tool
def account_statement(account_owner: str, month: str) -> str:
    """The account statement of a month."""
    RAN.append(("account_statement", {"account_owner": account_owner, "month": month}))
    return f"statement of {account_owner} for {month}"


@tool
def bulk_share(doc: str, shares: list[dict]) -> str:
    """Share a document with several grants."""
    RAN.append(("bulk_share", {"doc": doc, "shares": shares}))
    return f"shared {doc} {len(shares)} times"


@tool
def post_note(text: str) -> str:
    """Post a note."""
    RAN.append(("post_note", {"text": text}))
    return "posted"


@tool
def transfer(amount: int, to: str, reference: str = "") -> str:
    """Transfer money."""
    RAN.append(("transfer", {"amount": amount, "to": to, "reference": reference}))
    return f"sent {amount} to {to}"


@tool
def submit_form(payload: dict) -> str:
    """Submit a form."""
    RAN.append(("submit_form", {"payload": payload}))
    return "submitted"


def ran(name: str) -> list[dict[str, Any]]:
    return [args for n, args in RAN if n == name]


@tool
def list_files(user_id: str, folder: str) -> str:
    """List a user's files."""
    RAN.append(("list_files", {"user_id": user_id, "folder": folder}))
    return f"files of {user_id} in {folder}"
