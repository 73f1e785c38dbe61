"""Audit trail overhead per guarded tool call (IdentityGuard + FGAGuard on the embedded
engine: each call emits identity_resolved and fga_decision inside one call scope), for each
sink against the same call with no sink configured; and the cost of ``emit_audit`` with no
sink against an empty function taking the same arguments. Interleaved rounds, process CPU
time (no I/O on these paths except the store's, which is in memory here).

Run: python benchmarks/audit_overhead.py [--quick]
"""

from __future__ import annotations

import sys

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from benchmarks._util import CPU, Row, interleaved, paired, print_table, rounds_for
from langchain_agent_auth.audit import LoggingAuditSink, StoreAuditSink, emit_audit
from langchain_agent_auth.core.audit import _emit
from langchain_agent_auth.core.guards import guard_tool
from langchain_agent_auth.fga import EmbeddedAuthorizer, FGAGuard
from langchain_agent_auth.identity import IdentityGuard, UserIdentity, acting_as

ALICE = UserIdentity(subject="alice")
MODEL = "model\n  schema 1.1\ntype user\ntype document\n  relations\n    define viewer: [user]\n"


@tool
def read_doc(doc_id: str) -> str:
    """Read a document."""
    return f"contents of {doc_id}"


def _otel_sink() -> object | None:
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return None
    from langchain_agent_auth.audit import OpenTelemetryAuditSink

    return OpenTelemetryAuditSink(tracer_provider=TracerProvider())  # spans made and ended, not exported


def run(quick: bool = False) -> list[Row]:
    rounds, round_s = rounds_for(quick)
    fga = EmbeddedAuthorizer(MODEL)
    fga.write([("user:alice", "viewer", "document:1")])
    guarded = guard_tool(read_doc, IdentityGuard(), FGAGuard(fga, relation="viewer", object="document:{doc_id}"))
    call = {"type": "tool_call", "name": "read_doc", "args": {"doc_id": "1"}, "id": "c1"}
    config = {"configurable": {"thread_id": "bench"}}
    sinks: dict[str, tuple] = {
        "none": (),
        "list": ([].append,),  # events built and handed over, nothing written
        "logging": (LoggingAuditSink(),),  # the logger's level is WARNING: the JSON is never formatted
        "store": (StoreAuditSink(InMemoryStore()),),
    }
    otel = _otel_sink()
    if otel is not None:
        sinks["otel"] = (otel,)

    def side(chosen: tuple):
        def call_once() -> object:
            _emit._SINKS = chosen  # the same assignment on every side, sink or not
            return guarded.invoke(call, config)
        return call_once

    try:
        with acting_as(ALICE):
            samples = interleaved({name: side(s) for name, s in sinks.items()}, rounds=rounds, round_s=round_s,
                                  clock=CPU)
    finally:
        _emit._SINKS = ()

    def empty(kind: str, **fields: object) -> None:
        return None

    fields = {"subject": "user:alice", "relation": "viewer", "object": "document:1", "outcome": "allowed",
              "channel": "embedded", "latency_ms": 0.01}
    emits = interleaved({"emit": lambda: emit_audit("fga_decision", **fields),
                         "empty": lambda: empty("fga_decision", **fields)}, rounds=rounds, round_s=round_s,
                        clock=CPU)
    rows = [paired("audit: emit, no sink", "CPU µs per emit_audit call", emits["emit"], emits["empty"], "µs",
                   "an empty function, same arguments")]
    notes = {"list": "events built, kept in a list", "logging": "LoggingAuditSink, level off",
             "store": "StoreAuditSink on InMemoryStore", "otel": "OpenTelemetryAuditSink, SDK, no exporter"}
    for name, note in notes.items():
        if name in samples:
            rows.append(paired(f"audit: {name} sink", "CPU µs per guarded call", samples[name],
                               samples["none"], "µs", "same call, no sink", note))
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
