"""Rich Authorization Requests (RFC 9396): validation and rendering for a person.

Two types are understood:

``payment_initiation``
    ``instructedAmount`` ``{"amount": "250.00", "currency": "EUR"}`` (required),
    ``creditorName``, ``creditorAccount`` (``{"iban": ...}`` or any identifier fields),
    ``remittanceInformationUnstructured`` (optional).
``agent_action``
    a tool call an agent wants to make: ``actions`` (non-empty list of strings, required),
    plus the common RFC 9396 fields (``locations``, ``datatypes``, ``identifier``,
    ``privileges``) and free-form fields (``tool``, ``arguments``, ``description``...).

Example:
    >>> details = parse_authorization_details(
    ...     '[{"type":"payment_initiation","instructedAmount":{"amount":"250.00","currency":"EUR"},'
    ...     '"creditorName":"ACME Corp"}]', allowed_types=SUPPORTED_TYPES)
    >>> describe(details[0])["title"]
    'Pay 250.00 EUR to ACME Corp'
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from langchain_agent_auth.core._serving import JSONLimitError, load_json_bounded

SUPPORTED_TYPES = ("agent_action", "payment_initiation")
# Types whose approval is spent by one use: never refreshable into new tokens (RFC 9396 §6).
ONE_TIME_TYPES = ("payment_initiation",)
MAX_DETAILS = 10
MAX_JSON_BYTES = 16_384
MAX_DEPTH = 6  # an entry (depth 2) plus a few levels of structured fields
MAX_STRING = 2_000
_COMMON_LIST_FIELDS = ("locations", "actions", "datatypes", "privileges")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,4})?$")


class AuthorizationDetailsError(ValueError):
    """``authorization_details`` that RFC 9396 or this provider's types do not accept."""


def parse_authorization_details(
    raw: str | list[Any] | None, *, allowed_types: tuple[str, ...] | list[str]
) -> list[dict[str, Any]] | None:
    """Parse and validate ``authorization_details`` (a JSON array of objects with a ``type``).

    Raises :class:`AuthorizationDetailsError` with a short, ASCII message on any problem.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        if len(raw.encode()) > MAX_JSON_BYTES:
            raise AuthorizationDetailsError("authorization_details is too large")
        try:
            value = load_json_bounded(raw, max_depth=MAX_DEPTH)
        except JSONLimitError:
            raise AuthorizationDetailsError(
                f"authorization_details is not valid JSON nested at most {MAX_DEPTH} levels"
            ) from None
    else:
        value = raw
    _check_strings(value, 1)
    if not isinstance(value, list) or not value:
        raise AuthorizationDetailsError("authorization_details must be a non-empty JSON array")
    if len(value) > MAX_DETAILS:
        raise AuthorizationDetailsError(f"at most {MAX_DETAILS} authorization_details entries")
    out = []
    for detail in value:
        if not isinstance(detail, dict):
            raise AuthorizationDetailsError("each authorization_details entry must be an object")
        kind = detail.get("type")
        if not isinstance(kind, str) or not kind:
            raise AuthorizationDetailsError("each authorization_details entry needs a string 'type'")
        if kind not in SUPPORTED_TYPES:
            raise AuthorizationDetailsError("unknown authorization_details type")
        if kind not in allowed_types:
            raise AuthorizationDetailsError("this client may not use that authorization_details type")
        for name in _COMMON_LIST_FIELDS:
            if name in detail and (
                not isinstance(detail[name], list) or not all(isinstance(v, str) for v in detail[name])
            ):
                raise AuthorizationDetailsError(f"'{name}' must be an array of strings")
        if "identifier" in detail and not isinstance(detail["identifier"], str):
            raise AuthorizationDetailsError("'identifier' must be a string")
        if kind == "payment_initiation":
            _validate_payment(detail)
        elif kind == "agent_action" and not detail.get("actions"):
            raise AuthorizationDetailsError("agent_action requires a non-empty 'actions' array")
        out.append(detail)
    return out


def inert(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` with control, format (bidi overrides, zero-width), surrogate, private-use and
    unassigned characters shown as visible ``\\u`` escapes: a person sees exactly what is signed.

    Example:
        >>> inert("ACME \u202egro.live")
        'ACME \\u202egro.live'
    """

    def show(ch: str) -> str:
        if keep_newlines and ch == "\n":
            return ch
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
        return ch

    return "".join(show(ch) for ch in text)


def _check_strings(value: Any, depth: int) -> None:
    """Bound the depth and the strings (control and bidi characters are accepted: the agent's
    arguments may hold them; every view renders them inert, see :func:`inert`)."""
    if depth > MAX_DEPTH:
        raise AuthorizationDetailsError(f"authorization_details is nested more than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise AuthorizationDetailsError(f"authorization_details strings are at most {MAX_STRING} characters")
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, depth)
            _check_strings(item, depth + 1)
    elif not (value is None or isinstance(value, bool | int | float)):
        raise AuthorizationDetailsError("authorization_details must be JSON values")


def is_one_time(details: list[dict[str, Any]] | None) -> bool:
    """Whether a grant with these ``authorization_details`` authorizes a one-time action.

    Example:
        >>> is_one_time([{"type": "payment_initiation"}]), is_one_time([{"type": "agent_action"}])
        (True, False)
    """
    return any(isinstance(d, dict) and d.get("type") in ONE_TIME_TYPES for d in details or [])


def narrows(approved: list[dict[str, Any]], requested: list[dict[str, Any]] | None) -> bool:
    """Whether ``approved`` asks for no more than ``requested``: each approved entry equals a
    requested one, except that a payment's amount may be lowered (same currency).

    Example:
        >>> pay = lambda a: {"type": "payment_initiation",
        ...                  "instructedAmount": {"amount": a, "currency": "EUR"}}
        >>> narrows([pay("0.50")], [pay("1.00")]), narrows([pay("900.00")], [pay("1.00")])
        (True, False)
    """
    pool = list(requested or [])
    for entry in approved:
        match = next((r for r in pool if _within(entry, r)), None)
        if match is None:
            return False
        pool.remove(match)
    return True


def _within(entry: dict[str, Any], requested: dict[str, Any]) -> bool:
    if entry == requested:
        return True
    if entry.get("type") != "payment_initiation" or requested.get("type") != "payment_initiation":
        return False
    mine, theirs = amount_of(entry), amount_of(requested)
    if mine is None or theirs is None or mine[1] != theirs[1] or mine[0] > theirs[0]:
        return False
    rest = {k: v for k, v in entry.items() if k != "instructedAmount"}
    return rest == {k: v for k, v in requested.items() if k != "instructedAmount"}


def _validate_payment(detail: dict[str, Any]) -> None:
    amount = detail.get("instructedAmount")
    if not isinstance(amount, dict):
        raise AuthorizationDetailsError("payment_initiation requires instructedAmount {amount, currency}")
    value, currency = amount.get("amount"), amount.get("currency")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not _AMOUNT.match(str(value)):
        raise AuthorizationDetailsError("instructedAmount.amount must be a positive decimal like '250.00'")
    if Decimal(str(value)) <= 0:
        raise AuthorizationDetailsError("instructedAmount.amount must be positive")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise AuthorizationDetailsError("instructedAmount.currency must be an ISO 4217 code like 'EUR'")
    for name in ("creditorName", "remittanceInformationUnstructured"):
        if name in detail and not isinstance(detail[name], str):
            raise AuthorizationDetailsError(f"'{name}' must be a string")
    if "creditorAccount" in detail and not isinstance(detail["creditorAccount"], dict):
        raise AuthorizationDetailsError("'creditorAccount' must be an object")


def amount_of(detail: dict[str, Any]) -> tuple[Decimal, str] | None:
    """``(amount, currency)`` of a ``payment_initiation`` entry, or None."""
    try:
        amount = detail["instructedAmount"]
        return Decimal(str(amount["amount"])), str(amount["currency"])
    except (KeyError, TypeError, InvalidOperation):
        return None


_ACRONYMS = {"iban": "IBAN", "bic": "BIC", "bban": "BBAN", "pan": "PAN", "url": "URL", "id": "ID"}


def _humanize(name: str) -> str:
    if name.lower() in _ACRONYMS:
        return _ACRONYMS[name.lower()]
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ")
    return words[:1].upper() + words[1:]


NBSP = "\u00a0"


def group_iban(value: str) -> str:
    """An IBAN in groups of four joined by no-break spaces, so it reads (and never wraps) as
    one number.

    Example:
        >>> group_iban("DE89370400440532013000").replace(NBSP, " ")
        'DE89 3704 0044 0532 0130 00'
    """
    compact = re.sub(r"\s+", "", value)
    return NBSP.join(compact[i:i + 4] for i in range(0, len(compact), 4))


def _field(key: str, value: Any, siblings: dict[str, Any], depth: int) -> str:
    name = key.lower()
    if name == "iban" and isinstance(value, str):
        return group_iban(value)
    if name in ("amount", "value") and isinstance(value, int | float | str) and not isinstance(value, bool) \
            and not any(k.lower() == "currency" for k in siblings):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return _plain(value, depth)
        text = f"{number:,}" if number == number.to_integral_value() else f"{number:,.2f}"
        return f"{text} (no currency given)"
    return _plain(value, depth)


def _plain(value: Any, depth: int = 0) -> str:
    if depth > MAX_DEPTH:  # rows stored before the parse-time limit existed
        return "..."
    if isinstance(value, list):
        return ", ".join(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{_humanize(str(k))}: {_field(str(k), v, value, depth + 1)}" for k, v in value.items())
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def describe(detail: dict[str, Any]) -> dict[str, Any]:
    """A person-readable view of one entry: ``{"title": str, "rows": [(label, text), ...]}``.

    Values are plain text (the page escapes them); nothing is dropped: every field of
    the entry appears either in the title or in a row.
    """
    kind = detail.get("type")
    rows: list[tuple[str, str]] = []
    shown = {"type"}
    if kind == "payment_initiation":
        amount = detail.get("instructedAmount") or {}
        creditor = detail.get("creditorName")
        title = f"Pay {amount.get('amount')} {amount.get('currency')}"
        if creditor:
            title += f" to {creditor}"
        shown |= {"instructedAmount", "creditorName"}
        account = detail.get("creditorAccount")
        if isinstance(account, dict):
            rows.append(("To account", _plain(account)))
            shown.add("creditorAccount")
        if detail.get("remittanceInformationUnstructured"):
            rows.append(("Reference", str(detail["remittanceInformationUnstructured"])))
            shown.add("remittanceInformationUnstructured")
    elif kind == "agent_action":
        actions = [str(a).replace("_", " ") for a in detail.get("actions") or []]
        title = "Let the agent " + ", ".join(actions)
        shown.add("actions")
        if detail.get("description"):
            rows.append(("What", str(detail["description"])))
            shown.add("description")
    else:  # pragma: no cover - unknown types are rejected before they are stored
        title = str(kind)
    labels = {"locations": "Where", "datatypes": "Data", "identifier": "Item", "privileges": "Privileges"}
    for name, label in labels.items():
        if name in detail:
            rows.append((label, _plain(detail[name])))
            shown.add(name)
    for name, value in detail.items():
        if name not in shown:
            rows.append((_humanize(name), _plain(value)))
    return {
        "type": inert(str(kind)),
        "title": inert(title),
        "rows": [(inert(label), inert(text)) for label, text in rows],
    }
