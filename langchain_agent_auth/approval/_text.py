"""What the user reads on their device: binding messages and authorization_details.

Both are built from the tool name and its arguments. The arguments come from the model,
which may have copied hostile text from a web page or an email, so every piece is
normalised (NFKC), stripped to a safe character set, and clipped; the whole message is
limited to what providers accept (64 characters of letters, digits and ``.,:;!?#+-_/()``
and spaces by default: the rule of node-oidc-provider, stricter than most).
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_agent_auth.approval._digest import preview_args
from langchain_agent_auth.errors import ConfigurationError

__all__ = [
    "BINDING_MESSAGE_MAX",
    "BindingMessage",
    "default_authorization_details",
    "sanitize_binding_text",
]

BINDING_MESSAGE_MAX = 64
_ALLOWED_PUNCT = frozenset(" .,:;!?#+-_/()")
_MAX_DETAILS_BYTES = 8000


def _allowed(ch: str) -> bool:
    return ch in _ALLOWED_PUNCT or unicodedata.category(ch)[0] in "LN"


def sanitize_binding_text(text: str, max_length: int = BINDING_MESSAGE_MAX,
                          allowed: Callable[[str], bool] = _allowed) -> str:
    """``text`` reduced to the allowed characters, whitespace collapsed, clipped with ``...``.

    Example:
        >>> sanitize_binding_text("Pay <script>alert(1)</script>\\n\\u202eBob")
        'Pay script alert(1) /script Bob'
        >>> len(sanitize_binding_text("x" * 500))
        64
    """
    text = unicodedata.normalize("NFKC", str(text))
    cleaned = "".join(ch if allowed(ch) else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > max_length:
        cut = cleaned[: max(1, max_length - 3)].rstrip()
        space = cut.rfind(" ")
        if space >= max_length // 2:
            cut = cut[:space].rstrip(" ,;:")
        cleaned = cut + "..."
    return cleaned


def _value_text(value: Any, limit: int = 24) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, int | float):
        text = format(value, "g") if isinstance(value, float) else str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple | set | frozenset):
        text = "..."
    else:
        text = type(value).__name__
    text = sanitize_binding_text(text, max_length=limit)
    return text or "?"


class BindingMessage:
    """Builds the CIBA ``binding_message`` for a tool call.

    Args:
        template: ``None`` for the default ("Approve transfer (amount: 250, to: Bob)"), a
            ``str.format`` template over ``{tool}``, ``{args}`` and the argument names
            (``"Pay {amount} EUR to {to}"``), or a callable ``(tool, args) -> str``.
            Whatever it gives is sanitized and clipped, so hostile argument text cannot
            break the message or the provider's rules.
        max_length: the provider's limit (64 by default).

    Example:
        >>> BindingMessage()("transfer", {"amount": 250, "to": "Bob"})
        'Approve transfer (amount: 250, to: Bob)'
        >>> BindingMessage("Pay {amount} EUR to {to}")("transfer", {"amount": 250, "to": "Bob\\x00;DROP"})
        'Pay 250 EUR to Bob ;DROP'
    """

    def __init__(self, template: str | Callable[[str, Mapping[str, Any]], str] | None = None, *,
                 max_length: int = BINDING_MESSAGE_MAX) -> None:
        if not isinstance(max_length, int) or max_length < 8:
            raise ConfigurationError("binding message max_length must be an integer >= 8")
        if isinstance(template, str):
            for _, field, _, _ in string.Formatter().parse(template):
                if field is not None and (not field or not field.isidentifier()):
                    raise ConfigurationError(
                        f"binding message template fields must be plain names, got {{{field}}}"
                    )
        elif template is not None and not callable(template):
            raise ConfigurationError("binding_message must be a template string or a callable")
        self.template = template
        self.max_length = max_length

    def __call__(self, tool: str, args: Mapping[str, Any]) -> str:
        if self.template is None:
            text = self._default(tool, args)
        elif isinstance(self.template, str):
            values = _FormatValues({k: _value_text(v) for k, v in args.items() if isinstance(k, str)})
            values["tool"] = _value_text(tool, 40)
            values["args"] = self._args_text(args, self.max_length)
            text = self.template.format_map(values)
        else:
            text = str(self.template(tool, args))
        return sanitize_binding_text(text, self.max_length) or sanitize_binding_text(f"Approve {tool}",
                                                                                      self.max_length)

    def _args_text(self, args: Mapping[str, Any], budget: int) -> str:
        parts: list[str] = []
        remaining = budget
        for key, value in args.items():
            if not isinstance(key, str):
                continue
            name, text = _value_text(key, 16), _value_text(value)
            sep = 2 if parts else 0
            part = f"{name}: {text}"
            if sep + len(part) <= remaining:
                parts.append(part)
                remaining -= sep + len(part)
                continue
            room = remaining - sep - len(name) - 2
            if room >= 7:  # clip this value to what is left rather than dropping it
                parts.append(f"{name}: {sanitize_binding_text(text, room)}")
            elif remaining >= sep + 3:
                parts.append("...")
            break
        return ", ".join(parts)

    def _default(self, tool: str, args: Mapping[str, Any]) -> str:
        head = f"Approve {_value_text(tool, 40)}"
        if not args:
            return head
        return f"{head} ({self._args_text(args, self.max_length - len(head) - 3)})"


class _FormatValues(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "?"


def default_authorization_details(tool: str, args: Mapping[str, Any], digest: str, *,
                                  max_chars: int = 1500) -> list[dict[str, Any]]:
    """The default RAR ``authorization_details``: one ``agent_action`` naming the tool, its
    (bounded) arguments and their digest.

    Example:
        >>> default_authorization_details("transfer", {"amount": 250}, "sha256:ab")[0]["actions"]
        ['transfer']
    """
    preview, truncated = preview_args(args, max_chars=max_chars, max_str=200)
    detail: dict[str, Any] = {
        "type": "agent_action",
        "actions": [tool],
        "tool": tool,
        "arguments": preview,
        "args_digest": digest,
    }
    if truncated:
        detail["arguments_truncated"] = True
    return [detail]


def check_authorization_details(details: Any) -> list[dict[str, Any]]:
    """Validate developer-supplied ``authorization_details`` (RFC 9396 section 2)."""
    if not isinstance(details, Sequence) or isinstance(details, str | bytes) or not details:
        raise ConfigurationError("authorization_details must be a non-empty list of objects")
    out: list[dict[str, Any]] = []
    for item in details:
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str) or not item["type"]:
            raise ConfigurationError("every authorization_details entry needs a string 'type'")
        out.append(dict(item))
    try:
        size = len(json.dumps(out, separators=(",", ":")))
    except (TypeError, ValueError):
        raise ConfigurationError("authorization_details must be JSON-serializable") from None
    if size > _MAX_DETAILS_BYTES:
        raise ConfigurationError(f"authorization_details too large ({size} bytes > {_MAX_DETAILS_BYTES})")
    return out
