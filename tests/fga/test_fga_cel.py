"""CEL conditions: OpenFGA's typed parameters, context precedence, errors."""

from __future__ import annotations

import datetime as dt

import pytest

from langchain_agent_auth.core.errors import ConditionError, ModelError
from langchain_agent_auth.fga import EmbeddedAuthorizer
from langchain_agent_auth.fga._cel import compile_condition, convert_param, parse_duration
from langchain_agent_auth.fga._model_parts import Condition, ParamType

P = ParamType


@pytest.mark.parametrize(
    "ptype,value,expected",
    [
        (P("int"), 10.0, 10),
        (P("int"), "42", 42),
        (P("int"), -3, -3),
        (P("uint"), 7, 7),
        (P("double"), "1.5", 1.5),
        (P("double"), 2, 2.0),
        (P("bool"), True, True),
        (P("string"), "x", "x"),
        (P("duration"), "1h30m", dt.timedelta(minutes=90)),
        (P("duration"), "-1.5h", dt.timedelta(minutes=-90)),
        (P("timestamp"), "2023-10-11T10:00:00.000Z", dt.datetime(2023, 10, 11, 10, tzinfo=dt.UTC)),
        (P("timestamp"), "2023-10-11T12:00:00+02:00", dt.datetime(2023, 10, 11, 10, tzinfo=dt.UTC)),
        (P("list", P("int")), [1, 2.0, "3"], [1, 2, 3]),
        (P("map", P("string")), {"a": "b"}, {"a": "b"}),
        (P("any"), {"nested": [1, "x", None]}, {"nested": [1, "x", None]}),
    ],
)
def test_context_values_are_converted_like_openfga(ptype: ParamType, value: object, expected: object) -> None:
    assert convert_param(ptype, value) == expected


@pytest.mark.parametrize(
    "ptype,value",
    [
        (P("int"), 1.5),
        (P("int"), True),
        (P("int"), "ten"),
        (P("int"), 2**64),
        (P("uint"), -1),
        (P("double"), float("inf")),
        (P("double"), "1.79769313486231570814527423731704356798070e+309"),
        (P("bool"), "true"),
        (P("string"), 5),
        (P("duration"), "ten minutes"),
        (P("duration"), 60),
        (P("timestamp"), "2023-10-11"),
        (P("timestamp"), "2023-10-11T10:00:00"),
        (P("ipaddress"), "999.1.1.1"),
        (P("list", P("int")), [1, "x"]),
        (P("list", P("int")), "1,2"),
        (P("map", P("int")), {"a": "b"}),
        (P("any"), {"x": float("nan")}),
    ],
)
def test_values_that_do_not_fit_are_rejected(ptype: ParamType, value: object) -> None:
    with pytest.raises(ValueError):
        convert_param(ptype, value)


def test_durations() -> None:
    assert parse_duration("0") == dt.timedelta(0)
    assert parse_duration("300ms") == dt.timedelta(milliseconds=300)
    assert parse_duration("2h45m") == dt.timedelta(hours=2, minutes=45)
    for bad in ("", "h", "1x", "1.h2"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _cond(expr: str, **params: str) -> object:
    return compile_condition(Condition("c", expr, {k: ParamType.parse(v) for k, v in params.items()}))


def test_evaluation_rules() -> None:
    c = _cond("x < limit", x="int", limit="int")
    assert c.evaluate({"limit": 10}, {"x": 5}) is True
    assert c.evaluate({"limit": 10, "x": 50}, {"x": 5}) is False  # the tuple's value wins
    with pytest.raises(ConditionError, match=r"missing parameters \['limit'\]"):
        c.evaluate(None, {"x": 1})
    ip = _cond('ip.in_cidr(net) && ip != ipaddress("10.0.0.9")', ip="ipaddress", net="string")
    assert ip.evaluate(None, {"ip": "10.1.2.3", "net": "10.0.0.0/8"}) is True
    assert ip.evaluate(None, {"ip": "10.0.0.9", "net": "10.0.0.0/8"}) is False
    assert ip.evaluate(None, {"ip": "192.168.0.1", "net": "10.0.0.0/8"}) is False
    with pytest.raises(ConditionError, match="malformed CIDR"):
        ip.evaluate(None, {"ip": "10.1.2.3", "net": "not-a-cidr"})
    ts = _cond(
        'now < expires && now - issued < duration("1h")',
        now="timestamp",
        expires="timestamp",
        issued="timestamp",
    )
    assert (
        ts.evaluate(
            {"expires": "2030-01-01T00:00:00Z", "issued": "2029-12-31T23:30:00Z"},
            {"now": "2029-12-31T23:45:00Z"},
        )
        is True
    )
    lists = _cond('"admin" in roles && limits["gb"] >= 10u', roles="list<string>", limits="map<uint>")
    assert lists.evaluate(None, {"roles": ["admin"], "limits": {"gb": 12}}) is True
    div = _cond("x / y > 1", x="int", y="int")
    with pytest.raises(ConditionError, match="ZeroDivisionError"):
        div.evaluate(None, {"x": 1, "y": 0})


def test_model_time_checks() -> None:
    with pytest.raises(ModelError, match="undeclared reference to 'y'"):
        _cond("y > 1", x="int")
    with pytest.raises(ModelError, match="no matching overload"):
        _cond("x == 1 && s > 3", x="int", s="string")
    with pytest.raises(ModelError, match="expected a bool"):
        _cond("x + 1", x="int")
    with pytest.raises(ModelError, match=r"Syntax error|Failed to parse"):
        _cond("x >", x="int")
    with pytest.raises(ModelError, match="empty"):
        _cond("   ", x="int")
    assert _cond("items.exists(i, i > 2)", items="list<int>") is not None  # macro variables are fine
    assert _cond("type(x) == int", x="int") is not None


def test_conditions_in_the_engine_through_usersets_and_ttu() -> None:
    fga = EmbeddedAuthorizer("""
model
  schema 1.1
type user
type group
  relations
    define member: [user, user with from_office]
type doc
  relations
    define viewer: [group#member with before_deadline]
condition from_office(ip: ipaddress) {
  ip.in_cidr("10.0.0.0/8")
}
condition before_deadline(now: timestamp, deadline: timestamp) {
  now < deadline
}
""")
    fga.write(
        [
            {
                "user": "user:amy",
                "relation": "member",
                "object": "group:eng",
                "condition": {"name": "from_office"},
            },
            {
                "user": "group:eng#member",
                "relation": "viewer",
                "object": "doc:1",
                "condition": {"name": "before_deadline", "context": {"deadline": "2030-01-01T00:00:00Z"}},
            },
        ]
    )
    ok = {"ip": "10.2.3.4", "now": "2029-06-01T00:00:00Z"}
    assert fga.check("user:amy", "viewer", "doc:1", context=ok)
    assert not fga.check("user:amy", "viewer", "doc:1", context={**ok, "ip": "8.8.8.8"})
    assert not fga.check("user:amy", "viewer", "doc:1", context={**ok, "now": "2031-01-01T00:00:00Z"})
    with pytest.raises(ConditionError, match="ip"):
        fga.check("user:amy", "viewer", "doc:1", context={"now": "2029-06-01T00:00:00Z"})
    assert fga.list_objects("user:amy", "viewer", "doc", context=ok) == ["doc:1"]
