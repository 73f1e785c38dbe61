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

from benchmarks._util import Row, per_second, print_table
from langchain_agent_auth.guards import guard_tool
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
    seconds = 0.5 if quick else 1.5
    bare_agent = create_agent(Model(messages=_turns()), [lookup])
    id_agent = create_agent(Model(messages=_turns()), [lookup], middleware=[IdentityMiddleware()])
    inputs = {"messages": [HumanMessage("hi")]}
    ctx = {"user": ALICE}
    bare_runs = per_second(lambda: bare_agent.invoke(inputs, context=ctx), seconds=seconds)
    id_runs = per_second(lambda: id_agent.invoke(inputs, context=ctx), seconds=seconds)

    guarded = guard_tool(lookup, IdentityGuard())
    call = {"type": "tool_call", "name": "lookup", "args": {"day": "mon"}, "id": "c1"}
    bare_calls = per_second(lambda: lookup.invoke(call), seconds=seconds)
    with acting_as(ALICE):
        id_calls = per_second(lambda: guarded.invoke(call), seconds=seconds)
    return [
        Row("identity: agent run", "runs/s with IdentityMiddleware", id_runs, bare_runs, "/s",
            "same agent without it", "ratio < 1 = slower"),
        Row("identity: tool call", "calls/s through IdentityGuard", id_calls, bare_calls, "/s", "bare tool.invoke"),
    ]


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
