"""CEL conditions with OpenFGA's semantics.

Which CEL library: ``common-expression-language`` (import name ``cel``, Rust-backed,
already a dependency) rather than ``cel-python``. Both implement the CEL language; what
makes OpenFGA's semantics is the layer around the evaluator, written here: typed
parameters converted from JSON context exactly like OpenFGA's converters (int, uint,
double, bool, string, duration, timestamp, list<T>, map<T>, ipaddress, any), tuple context
overriding request context, a missing parameter being an error, undeclared references and
non-boolean results rejected when the model is written. With that layer in place the
Rust evaluator is the better engine: it evaluates a compiled program in well under a
microsecond (cel-python takes tens), raises typed exceptions instead of returning error
values, and accepts Python callables for OpenFGA's ``ipaddress`` extension.

Known differences from cel-go, documented rather than hidden:

* no static type checker ships with either Python library, so type errors are found by a
  dry run with sample values of each parameter's type when the model is written (this
  catches ``x < "a"`` for an ``int`` x, or a non-boolean result); a branch the dry run does
  not reach is checked when it runs, where a type error is a :class:`ConditionError`;
* ``uint`` values below 2**63 reach CEL as ints: comparisons with ``1u`` literals work,
  arithmetic mixing them with ``u`` literals raises a type error;
* an ``ipaddress`` is a tagged map inside CEL; ``in_cidr`` and ``ipaddress()`` accept only
  such values, as in OpenFGA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import cel

from langchain_agent_auth.core.errors import ConditionError, ModelError
from langchain_agent_auth.fga._model_parts import Condition, ParamType

__all__ = ["CompiledCondition", "compile_condition", "convert_param", "parse_duration"]

_IP_TAG = "__ipaddress__"
_NO_ADDRESS = "0.0.0.0"  # noqa: S104 - an address value, not a socket bind
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)

# cel-go's standard environment plus OpenFGA's ipaddress extension.
_KNOWN_FUNCTIONS = frozenset({
    "size", "contains", "startsWith", "endsWith", "matches",
    "int", "uint", "double", "string", "bytes", "bool", "dyn", "type", "timestamp", "duration",
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    "in_cidr", "ipaddress",
})  # fmt: skip
_TYPE_IDENTIFIERS = frozenset({
    "int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "timestamp", "duration",
})  # fmt: skip
_MACRO_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


# --------------------------------------------------------------------------- conversions


_DURATION_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go duration string (``"1h30m"``, ``"300ms"``, ``"-1.5h"``), as OpenFGA does.

    Example:
        >>> parse_duration("1h30m"), parse_duration("250ms")
        (datetime.timedelta(seconds=5400), datetime.timedelta(microseconds=250000))
    """
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return dt.timedelta(0)
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return dt.timedelta(seconds=sign * total)


def _parse_timestamp(text: str) -> dt.datetime:
    m = _RFC3339_RE.fullmatch(text)
    if not m:
        raise ValueError
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if tz in ("Z", "z"):
        tzinfo = dt.UTC
    else:
        sign = 1 if tz[0] == "+" else -1
        tzinfo = dt.timezone(sign * dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    return dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tzinfo)


def _number(value: Any, kind: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind} value, but found bool {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite {kind} value, but found {value!r}")
        return Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"expected a {kind} value, but found invalid string value {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"expected a finite {kind} value, but found {value!r}")
        return number
    raise ValueError(f"expected a {kind} value, but found {type(value).__name__}")


def convert_param(ptype: ParamType, value: Any) -> Any:
    """Convert a JSON context value to the parameter's type (OpenFGA's converters).

    Raises ``ValueError`` with a short reason when the value does not fit.

    Example:
        >>> convert_param(ParamType("int"), 10.0), convert_param(ParamType("double"), "1.5")
        (10, 1.5)
    """
    converter = _CONVERTERS.get(ptype.name)
    if converter is None:  # pragma: no cover - ParamType only admits known names
        raise ValueError(f"unsupported parameter type {ptype.name!r}")
    return converter(ptype, value)


def _to_integer(ptype: ParamType, value: Any) -> int:
    name = ptype.name
    number = _number(value, name)
    if number != number.to_integral_value():
        raise ValueError(f"expected an {name} value, but found numeric value {value!r}")
    lo, hi = _INT64 if name == "int" else _UINT64
    as_int = int(number)
    if not lo <= as_int <= hi:
        raise ValueError(f"{value!r} is out of range for {name}")
    return as_int


def _to_double(ptype: ParamType, value: Any) -> float:
    result = float(_number(value, "double"))
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is out of range for double")
    return result


def _exactly(kind: type, label: str) -> Callable[[ParamType, Any], Any]:
    def convert(ptype: ParamType, value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(f"expected type value '{label}', but found {type(value).__name__}")
        return value

    return convert


def _to_duration(ptype: ParamType, value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration string, but found {type(value).__name__}")
    return parse_duration(value)


def _to_timestamp(ptype: ParamType, value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected RFC 3339 formatted timestamp string, but found {type(value).__name__}")
    try:
        return _parse_timestamp(value)
    except ValueError:
        raise ValueError(f"expected RFC 3339 formatted timestamp string, but found {value!r}") from None


def _to_ipaddress(ptype: ParamType, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping) and isinstance(value.get(_IP_TAG), str):
        return dict(value)
    if not isinstance(value, str):
        raise ValueError(f"expected an ipaddress string, but found {type(value).__name__}")
    try:
        return {_IP_TAG: str(ipaddress.ip_address(value.strip()))}
    except ValueError:
        raise ValueError(f"expected a well-formed IP address, but found {value!r}") from None


def _to_list(ptype: ParamType, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"list requires a list, found {type(value).__name__}")
    assert ptype.generic is not None
    out = []
    for i, item in enumerate(value):
        try:
            out.append(convert_param(ptype.generic, item))
        except ValueError as exc:
            raise ValueError(f"found an invalid list item at index {i}: {exc}") from None
    return out


def _to_map(ptype: ParamType, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"map requires a map, found {type(value).__name__}")
    assert ptype.generic is not None
    converted = {}
    for k, item in value.items():
        if not isinstance(k, str):
            raise ValueError("map keys must be strings")
        try:
            converted[k] = convert_param(ptype.generic, item)
        except ValueError as exc:
            raise ValueError(f"found an invalid value for key {k!r}: {exc}") from None
    return converted


def _to_any(ptype: ParamType, value: Any) -> Any:
    _check_json(value)
    return value


_CONVERTERS: dict[str, Callable[[ParamType, Any], Any]] = {
    "int": _to_integer,
    "uint": _to_integer,
    "double": _to_double,
    "bool": _exactly(bool, "bool"),
    "string": _exactly(str, "string"),
    "duration": _to_duration,
    "timestamp": _to_timestamp,
    "ipaddress": _to_ipaddress,
    "list": _to_list,
    "map": _to_map,
    "any": _to_any,
}


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise ValueError("the value is nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_json(v, depth + 1)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("map keys must be strings")
            _check_json(v, depth + 1)
        return
    raise ValueError(f"unsupported value of type {type(value).__name__}")


# --------------------------------------------------------------------------- CEL extension


# A Python exception inside a CEL function would be printed to stderr by the CEL library;
# the extension functions record their error here instead and the caller raises it.
_LOCAL = threading.local()


def _fail(message: str) -> bool:
    if getattr(_LOCAL, "error", None) is None:
        _LOCAL.error = message
    return False


def _in_cidr(ip: Any, cidr: Any) -> bool:
    if not (isinstance(ip, Mapping) and isinstance(ip.get(_IP_TAG), str)):
        return _fail("in_cidr needs an ipaddress value")
    if not isinstance(cidr, str):
        return _fail("a CIDR string is required for comparison")
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return _fail(f"{cidr!r} is a malformed CIDR string")
    addr = ipaddress.ip_address(ip[_IP_TAG])
    return addr.version == network.version and addr in network


def _ipaddress(text: Any) -> dict[str, str]:
    try:
        return {_IP_TAG: str(ipaddress.ip_address(text))}
    except ValueError:
        _fail(f"{text!r} is not a well-formed IP address")
        return {_IP_TAG: _NO_ADDRESS}


_FUNCTIONS = {"in_cidr": _in_cidr, "ipaddress": _ipaddress}


def _sample(ptype: ParamType, variant: int) -> Any:
    """A value of the parameter's type: zero-like (variant 0) or not (variant 1)."""
    if ptype.name == "list":
        assert ptype.generic is not None
        return [] if variant == 0 else [_sample(ptype.generic, variant)]
    if ptype.name == "map":
        assert ptype.generic is not None
        return {} if variant == 0 else {"a": _sample(ptype.generic, variant)}
    zero, one = {
        "int": (0, 1),
        "uint": (0, 1),
        "double": (0.0, 1.5),
        "bool": (False, True),
        "string": ("", "a"),
        "duration": (dt.timedelta(0), dt.timedelta(hours=1)),
        "timestamp": (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, tzinfo=dt.UTC)),
        "ipaddress": ({_IP_TAG: _NO_ADDRESS}, {_IP_TAG: "10.0.0.1"}),
    }[ptype.name]
    return zero if variant == 0 else one


def _uses_any(ptype: ParamType) -> bool:
    return ptype.name == "any" or (ptype.generic is not None and _uses_any(ptype.generic))


# --------------------------------------------------------------------------- compile / evaluate


class CompiledCondition:
    """A condition ready to evaluate many times.

    Example:
        >>> from langchain_agent_auth.fga._model_parts import Condition, ParamType
        >>> c = compile_condition(Condition("lt", "x < 100", {"x": ParamType("int")}))
        >>> c.evaluate({"x": 5}, None), c.evaluate(None, {"x": 500})
        (True, False)
    """

    __slots__ = ("condition", "name", "params", "program")

    def __init__(self, condition: Condition, program: Any) -> None:
        self.condition = condition
        self.name = condition.name
        self.params = tuple(condition.parameters.items())
        self.program = program

    def missing(
        self, tuple_context: Mapping[str, Any] | None, request_context: Mapping[str, Any] | None
    ) -> list[str]:
        """Parameters found in neither context."""
        tc, rc = tuple_context or {}, request_context or {}
        return [p for p, _ in self.params if p not in tc and p not in rc]

    def evaluate(
        self, tuple_context: Mapping[str, Any] | None, request_context: Mapping[str, Any] | None
    ) -> bool:
        """Evaluate with the tuple's context over the request's (the tuple's values win).

        Raises :class:`ConditionError` for a missing parameter, a value of the wrong type,
        or an evaluation failure.
        """
        tc, rc = tuple_context or {}, request_context or {}
        activation: dict[str, Any] = dict(_FUNCTIONS)
        missing = []
        for pname, ptype in self.params:
            if pname in tc:
                raw = tc[pname]
            elif pname in rc:
                raw = rc[pname]
            else:
                missing.append(pname)
                continue
            try:
                activation[pname] = convert_param(ptype, raw)
            except ValueError as exc:
                raise ConditionError(
                    f"failed to evaluate relationship condition '{self.name}': "
                    f"failed to convert context parameter '{pname}': {exc}"
                ) from None
        if missing:
            raise ConditionError(
                f"failed to evaluate relationship condition '{self.name}': "
                f"context is missing parameters {sorted(missing)}",
                hint=f"This action needs more context ({', '.join(sorted(missing))}) to be authorized.",
            )
        _LOCAL.error = None
        try:
            result = self.program.execute(activation)
        except Exception as exc:
            _LOCAL.error = None
            raise ConditionError(
                f"failed to evaluate relationship condition '{self.name}': "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from None
        failure, _LOCAL.error = _LOCAL.error, None
        if failure is not None:
            raise ConditionError(f"failed to evaluate relationship condition '{self.name}': {failure}")
        if not isinstance(result, bool):
            raise ConditionError(f"condition '{self.name}' returned {type(result).__name__}, expected bool")
        return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _dry_run(program: Any, condition: Condition, prefix: str, variant: int) -> None:
    activation: dict[str, Any] = dict(_FUNCTIONS)
    for pname, ptype in condition.parameters.items():
        activation[pname] = _sample(ptype, variant)
    _LOCAL.error = None
    try:
        result = program.execute(activation)
    except TypeError as exc:
        raise ModelError(f"{prefix}: found no matching overload: {_first_line(exc)}") from None
    except RuntimeError as exc:
        if "Undefined variable or function" in str(exc):
            raise ModelError(f"{prefix}: {_first_line(exc)}") from None
        result = None
    except Exception:  # value-dependent failures (division by zero, missing key) are not type errors
        result = None
    finally:
        _LOCAL.error = None
    if result is not None and not isinstance(result, bool):
        raise ModelError(
            f"{prefix}: expected a bool condition expression output, but got '{type(result).__name__}'"
        )


def compile_condition(condition: Condition) -> CompiledCondition:
    """Compile and check a condition as OpenFGA does when a model is written.

    Raises :class:`ModelError` for syntax errors, undeclared references, unknown functions,
    type errors found by the dry run, and non-boolean results.
    """
    prefix = f"failed to compile expression on condition '{condition.name}'"
    expr = condition.expression
    if not expr.strip():
        raise ModelError(f"{prefix}: the expression is empty")
    if len(expr) > 64 * 1024:
        raise ModelError(f"{prefix}: the expression is longer than 64 KiB")
    try:
        program = cel.compile(expr)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{prefix}: {_first_line(exc)}") from None
    refs = program.references()
    bound = set(_MACRO_VAR.findall(expr))
    declared = set(condition.parameters)
    for var in refs.get("variables", []):
        if var not in declared and var not in bound and var not in _TYPE_IDENTIFIERS:
            raise ModelError(f"{prefix}: undeclared reference to '{var}'")
    for fn in refs.get("functions", []):
        if fn[:1] in ("_", "!", "-", "@") or fn in _KNOWN_FUNCTIONS:
            continue
        raise ModelError(f"{prefix}: undeclared reference to function '{fn}'")
    compiled = CompiledCondition(condition, program)
    if not any(_uses_any(t) for t in condition.parameters.values()):
        # Two dry runs (zero-like and non-zero values) so fewer branches hide behind && and ||.
        for variant in (0, 1):
            _dry_run(program, condition, prefix, variant)
    return compiled
