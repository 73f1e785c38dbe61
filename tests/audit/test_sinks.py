"""The three sinks (JSON lines on a logger, OpenTelemetry spans, the store), the emitter's
contract (nothing without a sink, a failing sink or a bad event never breaks a call), and a
secret scan over everything the sinks wrote for real runs against the local provider."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import pytest
from langgraph.types import Command
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from langchain_agent_auth.audit import (
    LoggingAuditSink,
    OpenTelemetryAuditSink,
    StoreAuditSink,
    aread_audit,
    audit_call,
    audit_enabled,
    audit_sink,
    emit_audit,
    read_audit,
)
from langchain_agent_auth.core.errors import ConfigurationError, CredentialUnavailableError
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.vault import open_default_store
from tests.approval.helpers import answer
from tests.audit.helpers import approval_agent
from tests.examples.secrets_scan import assert_no_secrets

ALICE = UserIdentity(subject="alice", issuer="https://idp.test")
CFG = {"configurable": {"thread_id": "t-sink"}}


async def run(graph: Any, mode: str, value: Any, cfg: Any = CFG, **kw: Any) -> Any:
    if mode == "sync":
        return graph.invoke(value, cfg, **kw)
    return await graph.ainvoke(value, cfg, **kw)


async def approve_once(mode: str, cfg: Any = CFG) -> None:
    agent = approval_agent()
    r = await run(agent, mode, {"messages": [("user", "mail bob")]}, cfg, context={"user": ALICE})
    await run(agent, mode, Command(resume=answer(r, send_email={"decision": "approve"})), cfg,
              context={"user": ALICE})


# ------------------------------------------------------------------ the emitter


def test_without_a_sink_nothing_is_built(monkeypatch):
    import langchain_agent_auth.core.audit._event as event_module

    class Boom:
        def __init__(self, **kw: Any) -> None:
            raise AssertionError("an event was built with no sink")

    monkeypatch.setattr(event_module, "AuditEvent", Boom)
    assert not audit_enabled()
    emit_audit("token_obtained", user="u", connection="c")
    with audit_call("tool", "t1") as info:
        assert info is None


def test_a_failing_sink_or_a_bad_event_never_breaks_the_caller(caplog):
    seen: list[Any] = []

    def broken(event: Any) -> None:
        raise RuntimeError("disk full")

    with audit_sink(broken), audit_sink(seen.append), caplog.at_level(logging.WARNING, "langchain_agent_auth.audit"):
        emit_audit("token_obtained", user="u", connection="c")
        emit_audit("no_such_kind", user="u")
        emit_audit("token_obtained", not_a_field="x")
    assert [e.kind for e in seen] == ["token_obtained"]
    assert "a sink failed" in caplog.text and "dropped an invalid no_such_kind event" in caplog.text


def test_detail_is_redacted_at_construction():
    seen: list[Any] = []
    with audit_sink(seen.append):
        emit_audit("token_refused", user="u", detail="upstream said access_token=SECRETVALUE123456 Bearer eyJabc.def")
    assert "SECRETVALUE123456" not in seen[0].model_dump_json()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_events_in_a_guarded_call_carry_the_call(mode):
    seen: list[Any] = []
    with audit_sink(seen.append):
        await approve_once(mode)
    in_call = [e for e in seen if e.kind.startswith("approval_")]
    assert in_call and all(e.thread_id == "t-sink" and e.tool == "send_email" for e in in_call)


# ------------------------------------------------------------------ logging


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_logging_sink_writes_one_json_object_per_event(caplog, mode):
    with caplog.at_level(logging.INFO, "langchain_agent_auth.audit"), audit_sink(LoggingAuditSink()):
        await approve_once(mode)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "langchain_agent_auth.audit"]
    kinds = [line["kind"] for line in lines]
    assert {"identity_resolved", "approval_requested", "approval_decided", "approval_executed"} <= set(kinds)
    assert all(None not in line.values() and isinstance(line["timestamp"], float) for line in lines)


def test_logging_sink_is_silent_when_the_level_is_off(caplog):
    with caplog.at_level(logging.WARNING, "langchain_agent_auth.audit"), audit_sink(LoggingAuditSink()):
        emit_audit("token_obtained", user="u")
    assert not [r for r in caplog.records if r.name == "langchain_agent_auth.audit"]


# ------------------------------------------------------------------ OpenTelemetry


@pytest.fixture
def spans() -> Any:
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with audit_sink(OpenTelemetryAuditSink(tracer_provider=provider)):
        yield exporter


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_otel_a_span_per_guarded_call_with_an_event_per_decision(spans, mode):
    await approve_once(mode)
    tool_spans = [s for s in spans.get_finished_spans() if s.name == "agent_auth.tool send_email"]
    assert len(tool_spans) == 2  # the call that paused, and the resumed call
    paused, resumed = tool_spans
    assert paused.attributes["agent_auth.paused"] is True and paused.attributes["agent_auth.thread_id"] == "t-sink"
    assert "approval_requested" in [e.name for e in paused.events]
    assert [e.name for e in resumed.events if e.name.startswith("approval_")] == [
        "approval_decided", "approval_executed"]
    decided = next(e for e in resumed.events if e.name == "approval_decided")
    assert decided.attributes["agent_auth.outcome"] == "approve" and decided.attributes["agent_auth.args_digest"]
    assert paused.status.is_ok and resumed.status.is_ok


def test_otel_an_event_outside_a_call_gets_its_own_span(spans):
    emit_audit("token_revoked", user="u", connection="calendar", scopes=("a", "b"))
    (span,) = spans.get_finished_spans()
    assert span.name == "agent_auth.token_revoked"
    assert span.events[0].attributes["agent_auth.scopes"] == ("a", "b")


def test_otel_a_failing_tool_marks_the_span_as_an_error(spans):
    from langchain_core.tools import tool

    from langchain_agent_auth.core.guards import ToolGuard, guard_tool

    class Pass(ToolGuard):
        def wrap(self, call, proceed):
            return proceed(call)

        async def awrap(self, call, proceed):
            return await proceed(call)

    @tool
    def fails(x: int) -> int:
        """Always fails."""
        raise ValueError("nope")

    with pytest.raises(ValueError):
        guard_tool(fails, Pass()).invoke({"x": 1})
    (span,) = spans.get_finished_spans()
    assert span.name == "agent_auth.tool fails" and not span.status.is_ok


def test_otel_missing_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"langchain-agent-auth\[otel\]"):
        OpenTelemetryAuditSink()


# ------------------------------------------------------------------ the store


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_store_sink_keeps_decisions_durably_and_filters(tmp_path, mode):
    path = tmp_path / "agent_auth.sqlite"
    with audit_sink(StoreAuditSink(open_default_store(path))):
        await approve_once(mode, {"configurable": {"thread_id": "t-a"}})
        await approve_once(mode, {"configurable": {"thread_id": "t-b"}})
        emit_audit("token_revoked", user="-|-|bob", connection="calendar")
    reopened = open_default_store(path)  # another process would see the same
    decided = read_audit(reopened, kind="approval_decided")
    assert [(e.thread_id, e.outcome, e.decider) for e in decided] == [("t-a", "approve", ALICE.key),
                                                                    ("t-b", "approve", ALICE.key)]
    assert all(e.args_digest and e.timestamp for e in decided)
    only_b = read_audit(reopened, thread_id="t-b")
    assert only_b and {e.thread_id for e in only_b} == {"t-b"}
    assert [e.kind for e in read_audit(reopened, user="-|-|bob")] == ["token_revoked"]
    everything = read_audit(reopened)
    assert [e.timestamp for e in everything] == sorted(e.timestamp for e in everything)
    assert read_audit(reopened, limit=2) == everything[-2:]


async def test_aread_audit_reads_an_async_store():
    from langgraph.store.memory import InMemoryStore

    store = InMemoryStore()
    with audit_sink(StoreAuditSink(store)):
        emit_audit("thread_refused", user="-|-|eve", thread_id="t1")
        emit_audit("thread_refused", user="-|-|eve", thread_id="t2")
    assert [e.thread_id for e in await aread_audit(store, thread_id="t2")] == ["t2"]


def test_store_sink_can_keep_only_some_kinds():
    from langgraph.store.memory import InMemoryStore

    store = InMemoryStore()
    with audit_sink(StoreAuditSink(store, kinds=["approval_decided"])):
        emit_audit("token_obtained", user="u")
        emit_audit("approval_decided", user="u", outcome="reject")
    assert [e.kind for e in read_audit(store)] == ["approval_decided"]


# ------------------------------------------------------------------ no secret in any sink


def test_no_secret_reaches_any_sink(idp, keyring, tmp_path, caplog):
    from langchain_agent_auth.vault import Connection, TokenVault

    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = open_default_store(tmp_path / "audit.sqlite")
    conn = Connection(idp.upstream_connection, issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                      client_secret=idp.upstream_client_secret, redirect_uri="http://127.0.0.1:1/callback")
    from langgraph.store.memory import InMemoryStore

    vault = TokenVault([conn], store=InMemoryStore(), keyring=keyring)
    alice = UserIdentity(subject="alice", issuer=idp.issuer)
    tokens = idp.login("alice", upstream=True, scope="calendar.read")
    with caplog.at_level(logging.INFO, "langchain_agent_auth.audit"), \
            audit_sink(LoggingAuditSink()), audit_sink(StoreAuditSink(store)), \
            audit_sink(OpenTelemetryAuditSink(tracer_provider=provider)):
        vault.import_token(alice, conn.name, access_token=tokens["access_token"],
                           refresh_token=tokens["refresh_token"], scopes=["calendar.read"], expires_at=time.time() - 1)
        fresh = vault.get_token(alice, conn.name, "calendar.read")
        with pytest.raises(CredentialUnavailableError):
            vault.get_token(alice, conn.name, "calendar.write")
        vault.revoke(alice, conn.name)
    written = [caplog.text, json.dumps([e.to_json_dict() for e in read_audit(store)])]
    for span in exporter.get_finished_spans():
        written.append(json.dumps({"attrs": dict(span.attributes or {}),
                                   "events": [[e.name, dict(e.attributes or {})] for e in span.events]},
                                  default=list))
    blob = "\n".join(written)
    assert "token_refreshed" in blob and "token_revoked" in blob and "token_refused" in blob
    assert_no_secrets(blob, [tokens["access_token"], tokens["refresh_token"], fresh.token,
                             idp.upstream_client_secret])


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_no_secret_in_an_approval_trail(caplog, tmp_path, mode):
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = open_default_store(tmp_path / "audit.sqlite")
    with caplog.at_level(logging.INFO, "langchain_agent_auth.audit"), \
            audit_sink(LoggingAuditSink()), audit_sink(StoreAuditSink(store)), \
            audit_sink(OpenTelemetryAuditSink(tracer_provider=provider)):
        await approve_once(mode)
    events = read_audit(store)
    digests = {e.args_digest for e in events if e.args_digest}
    assert digests  # the digest is there: a hash of the arguments, not a credential
    spans = [[dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]]
             for s in exporter.get_finished_spans()]
    blob = caplog.text + json.dumps([e.to_json_dict() for e in events]) + json.dumps(spans, default=list)
    for digest in digests:
        blob = blob.replace(digest, "<digest>")
    assert "bob@example.com" not in blob and "hello" not in blob  # the arguments themselves are not kept
    assert_no_secrets(blob)
