"""What the user reads on their device: binding messages and authorization_details.

Both are built from the tool name and its arguments. The arguments come from the model,
which may have copied hostile text from a web page or an email, so every piece is
normalised (NFKC), stripped to a safe character set, and clipped; the whole message is
limited to what providers accept (64 characters of letters, digits and ``.,:;!?#+-_/()``
and spaces by default: the rule of node-oidc-provider, stricter than most).

Before any of that, :func:`display_hazard` looks for text meant to mislead the person who
approves: bidi controls, zero-width and other invisible characters, and words mixing
look-alike scripts (a Cyrillic ``\u0430`` in a Latin IBAN or name). The guard refuses such
arguments (:class:`~langchain_agent_auth.errors.UnsafeArgumentsError`) before any
approval is requested, for CIBA and in-app alike, so what the approver reads is what runs.
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_agent_auth.approval._digest import preview_args
from langchain_agent_auth.core.errors import ConfigurationError

__all__ = [
    "BINDING_MESSAGE_MAX",
    "BindingMessage",
    "default_authorization_details",
    "display_hazard",
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


# Scripts whose letters pass for one another (Unicode TR 39 confusables are mostly
# between these); a word mixing two of them is how homoglyph spoofing looks. Mixing
# others (Latin with Katakana, Han with Hiragana) is ordinary writing.
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "FULLWIDTH",
                                "MATHEMATICAL", "HALFWIDTH"})
_ZWJ = "\u200d"
_VISIBLE_CONTROLS = frozenset("\t\n\r")
_PICTO = ("So", "Sk")  # pictographs and emoji modifiers (skin tones)


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def _hidden(text: str, i: int) -> bool:
    ch = text[i]
    cat = unicodedata.category(ch)
    if cat == "Cc":
        return ch not in _VISIBLE_CONTROLS
    if ch == _ZWJ:
        # Emoji sequences (family, flags...) join pictographs with ZWJ: harmless between
        # two symbols, invisible between letters.
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        return not (before and after and (before == "\ufe0f" or unicodedata.category(before) in _PICTO)
                    and unicodedata.category(after) in _PICTO)
    return cat in ("Cf", "Co", "Cs", "Cn")


def _text_hazard(text: str) -> tuple[str, str] | None:
    for i, ch in enumerate(text):
        if _hidden(text, i):
            return "hidden_characters", f"U+{ord(ch):04X}"
    scripts: set[str] = set()
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "L":
            script = _script(ch)
            if script in _LOOKALIKE_SCRIPTS:
                scripts.add(script)
                if len(scripts) > 1:
                    return "mixed_script", "+".join(sorted(scripts))
        elif cat[0] != "M":
            scripts.clear()  # a word ends at anything that is not a letter or a mark
    return None


def display_hazard(args: Any, *, _depth: int = 0) -> tuple[str, str, str] | None:
    """The first piece of ``args`` that could mislead an approver, or ``None``.

    Returns ``(reason, where, what)``: ``reason`` is ``"hidden_characters"`` (a bidi
    control, zero-width or other invisible/control character; tab and newline are fine,
    and so is a zero-width joiner inside an emoji sequence) or ``"mixed_script"`` (one
    word mixing look-alike scripts: Latin, Cyrillic, Greek, Armenian, Cherokee, Coptic,
    fullwidth or mathematical letters); ``where`` is the argument path; ``what`` names
    the character or the scripts. Keys are checked as well as values.

    Example:
        >>> display_hazard({"to": "Bob", "note": "lunch \U0001F355"}) is None
        True
        >>> display_hazard({"iban": "DE89 3704 0044 0532 0130 00\u202e"})
        ('hidden_characters', 'iban', 'U+202E')
        >>> display_hazard({"to": {"name": "P\u0430ypal"}})
        ('mixed_script', 'to.name', 'CYRILLIC+LATIN')
    """
    if _depth > 64:
        return None  # deeper arguments are refused by the digest first
    if isinstance(args, str):
        found = _text_hazard(args)
        return None if found is None else (found[0], "", found[1])
    if isinstance(args, Mapping):
        items: Any = args.items()
    elif isinstance(args, list | tuple | set | frozenset):
        items = enumerate(args)
    else:
        return None
    for key, value in items:
        label = str(key) if isinstance(key, str | int) else "?"
        if isinstance(key, str):
            found = _text_hazard(key)
            if found is not None:
                return found[0], f"{label} (name)", found[1]
        inner = display_hazard(value, _depth=_depth + 1)
        if inner is not None:
            return inner[0], f"{label}.{inner[1]}" if inner[1] else label, inner[2]
    return None


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
