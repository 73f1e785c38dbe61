"""Identity resolution + injection overhead: per agent run and per tool call, vs the same
graph / tool without it. Run: python benchmarks/identity_overhead.py
"""

from __future__ import annotations

import sys

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from benchmarks._util import CPU, Row, interleaved, paired, print_table, rounds_for
from langchain_agent_auth.core.guards import guard_tool
from langchain_agent_auth.identity import IdentityGuard, IdentityMiddleware, UserIdentity, acting_as

ALICE = UserIdentity(subject="alice", name="Alice")


@tool
def lookup(day: str) -> str:
    """Look something up."""
    return f"ok {day}"


class Model(GenericFakeChatModel):
    def bind_tools(self, tools, **kw):
        return self


def _turns():
    while True:
        yield AIMessage("", tool_calls=[{"name": "lookup", "args": {"day": "mon"}, "id": "c1"}])
        yield AIMessage("done")


def run(quick: bool = False) -> list[Row]:
    rounds, round_s = rounds_for(quick)
    bare_agent = create_agent(Model(messages=_turns()), [lookup])
    id_agent = create_agent(Model(messages=_turns()), [lookup], middleware=[IdentityMiddleware()])
    inputs = {"messages": [HumanMessage("hi")]}
    ctx = {"user": ALICE}
    runs = interleaved({"bare": lambda: bare_agent.invoke(inputs, context=ctx),
                        "ours": lambda: id_agent.invoke(inputs, context=ctx)}, rounds=rounds, round_s=round_s,
                       clock=CPU)

    guarded = guard_tool(lookup, IdentityGuard())
    call = {"type": "tool_call", "name": "lookup", "args": {"day": "mon"}, "id": "c1"}
    with acting_as(ALICE):
        calls = interleaved({"bare": lambda: lookup.invoke(call), "ours": lambda: guarded.invoke(call)},
                            rounds=rounds, round_s=round_s, clock=CPU)
    return [
        paired("identity: agent run", "CPU µs per run with IdentityMiddleware", runs["ours"], runs["bare"], "µs",
               "same agent without it, same scripted model"),
        paired("identity: tool call", "CPU µs per call through IdentityGuard", calls["ours"], calls["bare"], "µs",
               "bare sync tool.invoke"),
    ]


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
