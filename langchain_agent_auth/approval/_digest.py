"""Canonical digests and bounded previews of tool arguments.

An approval is bound to a digest of the arguments, so the digest must be the same for
the same arguments however they are built (key order, tuple vs list) and different for
anything a person could tell apart. Arguments are encoded as canonical JSON (sorted keys,
no whitespace, UTF-8) and hashed as they are encoded, so huge arguments never build one
huge string. Values JSON cannot express get a tagged, stable encoding; nothing calls an
object's ``__repr__``/``__str__`` (which can have side effects or differ between runs).

Previews (what a person sees in a payload or a binding message) are bounded separately.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import json
import math
import numbers
import pathlib
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_DEPTH", "args_digest", "canonical_json", "preview_args"]

MAX_DEPTH = 64
_CHUNK = 1 << 16
_encode_str = json.JSONEncoder(ensure_ascii=False).encode


class _TooDeep(ValueError):
    pass


class _TooLarge(ValueError):
    pass


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _tokens(value: Any, depth: int, seen: set[int]) -> Iterator[str]:
    """Canonical JSON of ``value``, as a stream of pieces."""
    if depth > MAX_DEPTH:
        raise _TooDeep("arguments nested too deeply")
    if value is None or value is True or value is False:
        yield "null" if value is None else ("true" if value else "false")
    elif isinstance(value, str):
        yield _encode_str(value)
    elif isinstance(value, int) and not isinstance(value, enum.Enum):
        yield str(int(value))
    elif isinstance(value, float) and not isinstance(value, enum.Enum):
        if math.isfinite(value):
            yield repr(float(value))
        else:
            yield from _tagged("$float", "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"), depth, seen)
    elif isinstance(value, Mapping | list | tuple | set | frozenset) or dataclasses.is_dataclass(value) \
            or isinstance(value, BaseModel):
        if id(value) in seen:
            yield from _tagged("$cycle", _type_name(value), depth, seen)
            return
        seen.add(id(value))
        try:
            yield from _container(value, depth, seen)
        finally:
            seen.discard(id(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        yield from _tagged("$bytes", base64.b64encode(bytes(value)).decode(), depth, seen)
    elif isinstance(value, _dt.datetime | _dt.date | _dt.time):
        yield from _tagged("$" + type(value).__name__, value.isoformat(), depth, seen)
    elif isinstance(value, _dt.timedelta):
        yield from _tagged("$timedelta", repr(value.total_seconds()), depth, seen)
    elif isinstance(value, decimal.Decimal):
        yield from _tagged("$decimal", format(value, "f") if value.is_finite() else str(value), depth, seen)
    elif isinstance(value, uuid.UUID):
        yield from _tagged("$uuid", value.hex, depth, seen)
    elif isinstance(value, enum.Enum):
        yield '{"$enum":'
        yield _encode_str(_type_name(value))
        yield ',"value":'
        yield from _tokens(value.value, depth + 1, seen)
        yield "}"
    elif isinstance(value, pathlib.PurePath):
        yield from _tagged("$path", value.as_posix(), depth, seen)
    elif isinstance(value, numbers.Integral):
        yield str(int(value))  # numpy and friends: the same number as a plain int
    elif isinstance(value, numbers.Real):
        yield from _tokens(float(value), depth, seen)
    else:
        # An arbitrary object: its type and its attributes, read without calling any of its
        # methods. An object whose content cannot be read this way cannot be bound to an
        # approval: refuse rather than hash it by type alone.
        state = _object_state(value)
        if state is None:
            raise ValueError(
                f"cannot build a canonical digest of a {_type_name(value)} argument; "
                "pass JSON-compatible values (or a pydantic model / dataclass)"
            )
        yield '{"$object":'
        yield _encode_str(_type_name(value))
        if id(value) in seen:
            yield ',"$cycle":true}'
            return
        seen.add(id(value))
        try:
            yield ',"state":'
            yield from _mapping(state, depth + 1, seen)
        finally:
            seen.discard(id(value))
        yield "}"


def _object_state(value: Any) -> dict[str, Any] | None:
    state: dict[str, Any] = {}
    found = False
    raw = getattr(value, "__dict__", None)
    if isinstance(raw, dict):
        state.update((k, v) for k, v in raw.items() if isinstance(k, str))
        found = True
    for klass in type(value).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            found = True
            try:
                state[name] = object.__getattribute__(value, name)
            except AttributeError:
                state[name] = None
    return state if found else None


def _tagged(tag: str, text: str, depth: int, seen: set[int]) -> Iterator[str]:
    yield '{"' + tag + '":'
    yield _encode_str(text)
    yield "}"


def _container(value: Any, depth: int, seen: set[int]) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield '{"$model":'
        yield _encode_str(_type_name(value))
        yield ',"fields":'
        yield from _mapping({name: getattr(value, name, None) for name in type(value).model_fields}, depth + 1, seen)
        yield "}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield '{"$dataclass":'
        yield _encode_str(_type_name(value))
        yield ',"fields":'
        yield from _mapping({f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}, depth + 1, seen)
        yield "}"
    elif isinstance(value, Mapping):
        yield from _mapping(value, depth, seen)
    elif isinstance(value, set | frozenset):
        # Sets have no order: sort members by their own canonical encoding.
        members = sorted("".join(_tokens(v, depth + 1, seen)) for v in value)
        yield '{"$set":['
        yield ",".join(members)
        yield "]}"
    else:
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _tokens(item, depth + 1, seen)
        yield "]"


def _key_text(key: Any, depth: int, seen: set[int]) -> str:
    if isinstance(key, str):
        # Keys starting with "$" are escaped so no user dict can spell one of our tags.
        return "$" + key if key.startswith("$") else key
    # Non-string keys are spelled by their canonical encoding, so 1 and "1" differ.
    return "$key:" + "".join(_tokens(key, depth + 1, seen))


def _mapping(value: Mapping[Any, Any], depth: int, seen: set[int]) -> Iterator[str]:
    items = sorted(((_key_text(k, depth, seen), v) for k, v in value.items()), key=lambda kv: kv[0])
    yield "{"
    for i, (key, item) in enumerate(items):
        if i:
            yield ","
        yield _encode_str(key)
        yield ":"
        yield from _tokens(item, depth + 1, seen)
    yield "}"


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no whitespace, tagged extras).

    Example:
        >>> canonical_json({"b": 1, "a": [1.5, None, ("x",)]})
        '{"a":[1.5,null,["x"]],"b":1}'
        >>> canonical_json({"when": __import__("datetime").date(2026, 1, 2)})
        '{"when":{"$date":"2026-01-02"}}'
    """
    return "".join(_tokens(value, 0, set()))


def args_digest(args: Any, *, max_size: int | None = None) -> str:
    """``sha256:<hex>`` over the canonical JSON of ``args``, hashed as it is encoded.

    The same arguments give the same digest whatever their key order or container types;
    values JSON cannot express are encoded by type and content, never through
    ``__repr__``. Raises ``ValueError`` for arguments nested deeper than ``MAX_DEPTH``
    or (with ``max_size``) longer than ``max_size`` characters of canonical JSON; the
    encoding stops there, so a huge argument costs no more than ``max_size``.

    Example:
        >>> args_digest({"amount": 250, "to": "Bob"}) == args_digest({"to": "Bob", "amount": 250})
        True
        >>> args_digest({"amount": 250}) == args_digest({"amount": 251})
        False
        >>> args_digest({"amount": 250})[:7]
        'sha256:'
    """
    h = hashlib.sha256()
    buffer: list[str] = []
    size = total = 0
    for piece in _tokens(args, 0, set()):
        buffer.append(piece)
        size += len(piece)
        total += len(piece)
        if max_size is not None and total > max_size:
            raise _TooLarge(f"arguments larger than {max_size} characters")
        if size >= _CHUNK:
            h.update("".join(buffer).encode("utf-8", "surrogatepass"))
            buffer, size = [], 0
    h.update("".join(buffer).encode("utf-8", "surrogatepass"))
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- previews


class _Budget:
    __slots__ = ("left", "max_items", "max_str", "truncated")

    def __init__(self, left: int, max_str: int, max_items: int) -> None:
        self.left, self.max_str, self.max_items, self.truncated = left, max_str, max_items, False

    def clip(self, text: str, limit: int | None = None) -> str:
        limit = min(limit or self.max_str, max(self.left, 16))
        if len(text) > limit:
            self.truncated = True
            text = text[:limit] + f"...(+{len(text) - limit} chars)"
        self.left -= len(text) + 2
        return text


def _preview(value: Any, depth: int, b: _Budget) -> Any:
    if b.left <= 0:
        b.truncated = True
        return "..."
    if value is None or isinstance(value, bool):
        b.left -= 5
        return value
    if isinstance(value, int | float) and not isinstance(value, enum.Enum):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) and abs(value) > 10**30:
            return b.clip(str(value), 40)
        b.left -= 8
        return value
    if isinstance(value, str):
        return b.clip(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, _dt.datetime | _dt.date | _dt.time | decimal.Decimal | uuid.UUID | pathlib.PurePath):
        return b.clip(value.isoformat() if hasattr(value, "isoformat") else format(value))
    if isinstance(value, _dt.timedelta):
        return f"{value.total_seconds()}s"
    if isinstance(value, enum.Enum):
        return _preview(value.value, depth, b)
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name, None) for name in type(value).model_fields}
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= 6:
        b.truncated = True
        return "{...}" if isinstance(value, Mapping) else "[...]"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= b.max_items or b.left <= 0:
                out["..."] = f"{len(value) - i} more"
                b.truncated = True
                break
            key = b.clip(k, 64) if isinstance(k, str) else b.clip(f"<{type(k).__name__}>", 64)
            out[key] = _preview(v, depth + 1, b)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        out_list: list[Any] = []
        for i, v in enumerate(value):
            if i >= b.max_items or b.left <= 0:
                out_list.append(f"... {len(value) - i} more")
                b.truncated = True
                break
            out_list.append(_preview(v, depth + 1, b))
        return out_list
    # Anything else: its type only (never repr(), which may have side effects).
    b.truncated = True
    return {"$object": _type_name(value)}


def preview_args(args: Mapping[str, Any], *, max_chars: int = 2000, max_str: int = 200,
                 max_items: int = 20) -> tuple[dict[str, Any], bool]:
    """A JSON-safe, size-bounded copy of ``args`` for people to read; and whether it was cut.

    Example:
        >>> preview_args({"note": "x" * 300}, max_str=10)
        ({'note': 'xxxxxxxxxx...(+290 chars)'}, True)
        >>> preview_args({"amount": 250, "to": "Bob"})
        ({'amount': 250, 'to': 'Bob'}, False)
    """
    b = _Budget(max_chars, max_str, max_items)
    out = _preview(dict(args), 0, b)
    return out, b.truncated
