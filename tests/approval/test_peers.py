"""The shortfalls listed in ../shared/peers.md that concern approvals, one test each where
no other file covers them already. Where another file does, it is named here:

* LangChain/LangGraph 1.x only ............ test_runs_on_langchain_and_langgraph_1x
* wrapped tools async-only ................ test_ciba.py::test_block_mode_sync_tool_outside_a_graph_and_denial,
                                            test_in_app.py::test_approve_runs_the_call_once[sync|async]
* blocking HTTP stalls the event loop ..... test_ciba.py::test_async_block_mode_does_not_block_the_event_loop
* token cache key omits the user .......... test_approval_token_is_per_call_and_per_user
* raised GraphInterrupts, resume ignored .. test_in_app.py::test_resume_values_of_the_wrong_shape_are_refused
* CIBA audience=None, expired_token,
  invalid_request, poll only, no discovery  test_ciba.py::test_pause_payload_and_request (no audience),
                                            ::test_denied_failed_expired_come_back_as_tool_messages,
                                            test_invalid_request_is_reported_as_such,
                                            test_interop.py::test_ping_mode_wakes_the_resumer,
                                            test_ciba.py::test_provider_without_backchannel_endpoint_fails_at_construction
* GraphResumer: empty config, needs a loop,
  re-runs every pending thread ............ test_langgraph_server.py (assistant + context),
                                            test_resumer.py::test_works_without_an_event_loop_and_in_one,
                                            test_resumer.py::test_only_threads_whose_approval_completed_are_resumed
* stacking CIBA around Token Vault
  (InjectedToolCallId clash); MCP tools ... test_stacks_with_a_pausing_credential_guard_in_any_order,
                                            test_in_app.py::test_wrapper_keeps_the_tool_surface_and_works_with_json_schema_tools
* in-memory store only: lost on restart ... test_graphs.py::test_sqlite_saver_and_store_survive_a_restart,
                                            test_interop.py::test_a_restarted_process_is_resumed_by_the_cli
* HITL edit can switch tools (#40166) ..... test_in_app.py::test_bad_decisions_are_refused_and_the_pause_stays
* no approver identity, no expiry ......... test_in_app.py::test_another_user_cannot_answer,
                                            ::test_expired_in_app_approval_is_refused
* interrupt ids hash position, not args ... test_ciba.py::test_changed_arguments_supersede_the_approval
* parallel interrupts misrouted ........... test_in_app.py::test_parallel_calls_are_decided_independently,
                                            test_graphs.py::test_parallel_ciba_calls_in_one_toolnode_task
* duplicate side effects on resume ........ test_ciba.py::test_one_request_per_call_however_often_the_node_reruns
* re-POST on resume, ValueError if pending  test_ciba.py::test_one_request_per_call_however_often_the_node_reruns
* block mode: 17.5x a bare call ........... benchmarks/approval_overhead.py
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, interrupt

from langchain_agent_auth.approval import (
    ApprovalResumer,
    CIBAApprover,
    InAppApprover,
    get_approval_token,
    with_approval,
)
from langchain_agent_auth.core.guards import ToolGuard, guard_tool
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import ALICE, BOB, SIDE_EFFECTS, answer, calls, interrupts, scripted, tool_messages

CFG = {"configurable": {"thread_id": "t1"}}
CTX = {"user": ALICE}


def test_runs_on_langchain_and_langgraph_1x():
    for package in ("langchain", "langchain-core", "langgraph"):
        assert int(version(package).split(".")[0]) >= 1, package


class CredentialGuard(ToolGuard):
    """Like the vault's guard: pauses with connect_account until the user connects, then
    hands the tool a credential (here: a context value)."""

    def _step(self, call: Any) -> Any:
        answer = interrupt({"type": "connect_account", "connection": "bank", "tool_call_id": call.tool_call_id})
        return call.with_args({**call.args}) if answer == {"connected": True} else call.refuse("not connected")

    def wrap(self, call, proceed):
        nxt = self._step(call)
        return nxt if not hasattr(nxt, "args") else proceed(nxt)

    async def awrap(self, call, proceed):
        nxt = self._step(call)
        return nxt if not hasattr(nxt, "args") else await proceed(nxt)


@tool
def wire(amount: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Wire money (injects its tool call id, like tools that return Commands)."""
    SIDE_EFFECTS.append(("wire", {"amount": amount, "id": tool_call_id, "token": bool(get_approval_token())}))
    return f"wired {amount}"


@pytest.mark.parametrize("order", ["approval-outside", "approval-inside"])
def test_stacks_with_a_pausing_credential_guard_in_any_order(keyring, order):
    clock = Clock()
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    if order == "approval-outside":
        guarded = with_approval(guard_tool(wire, CredentialGuard()), ciba)
    else:
        guarded = guard_tool(with_approval(wire, ciba), CredentialGuard())
    assert guarded.args == {"amount": {"title": "Amount", "type": "integer"}}  # no injected id in the schema
    a = create_agent(scripted(calls(("wire", {"amount": 9}, "c1")), AIMessage("all done")), [guarded],
                     checkpointer=InMemorySaver(), store=InMemoryStore())
    r = a.invoke({"messages": [("user", "wire")]}, CFG, context=CTX)
    resumer = ApprovalResumer(a, approvers=[ciba], clock=clock)
    for _ in range(4):
        pending = interrupts(r)
        if not pending:
            break
        if pending[0].value["type"] == "connect_account":
            r = a.invoke(Command(resume={pending[0].id: {"connected": True}}), CFG, context=CTX)
        else:
            idp.approve()
            clock.advance(1)
            resumer.run_once()
            r = a.get_state(CFG).values | {"__interrupt__": a.get_state(CFG).interrupts}
    assert SIDE_EFFECTS == [("wire", {"amount": 9, "id": "c1", "token": True})]  # once, with both
    assert idp.hits["/bc-authorize"] == 1
    assert tool_messages(a.get_state(CFG).values)[0].content == "wired 9"


def test_approval_token_is_per_call_and_per_user(keyring):
    """Two users on one thread: each approval's token reaches only its own call."""
    clock = Clock()
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    seen: dict[str, str] = {}

    @tool
    def whoami_pay(amount: int) -> str:
        """Pay."""
        seen[str(amount)] = get_approval_token(required=True).access_token
        return "ok"

    guarded = with_approval(whoami_pay, ciba)
    for user, amount, thread in ((ALICE, 1, "ta"), (BOB, 2, "tb")):
        a = create_agent(scripted(calls(("whoami_pay", {"amount": amount}, "c1")), AIMessage("done")), [guarded],
                         checkpointer=InMemorySaver(), store=InMemoryStore())
        cfg = {"configurable": {"thread_id": thread}}
        a.invoke({"messages": [("user", "pay")]}, cfg, context={"user": user})
        assert idp.latest()["user"] == user.subject  # the push went to the right person
        idp.approve()
        clock.advance(1)
        ApprovalResumer(a, approvers=[ciba], clock=clock).run_once()
    assert seen["1"] != seen["2"] and set(seen.values()) == set(idp.tokens)
    assert get_approval_token() is None


def test_invalid_request_is_reported_as_such(keyring):
    """A provider's invalid_request is not misreported (e.g. as 'no push notifications')."""
    clock = Clock()
    idp = FakeCiba(clock)
    import httpx

    idp.script("/bc-authorize", httpx.Response(400, json={"error": "invalid_request",
                                                         "error_description": "binding_message too long"}))
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    a = create_agent(scripted(calls(("wire", {"amount": 1}, "c1")), AIMessage("done")), [with_approval(wire, ciba)],
                     checkpointer=InMemorySaver(), store=InMemoryStore())
    r = a.invoke({"messages": [("user", "wire")]}, CFG, context=CTX)
    (msg,) = tool_messages(r)
    assert "invalid_request" in msg.content and SIDE_EFFECTS == []
    raising = with_approval(wire, ciba, on_refusal="raise")
    idp.script("/bc-authorize", httpx.Response(400, json={"error": "invalid_request",
                                                         "error_description": "binding_message too long"}))
    b = create_agent(scripted(calls(("wire", {"amount": 1}, "c1")), AIMessage("done")), [raising],
                     checkpointer=InMemorySaver(), store=InMemoryStore())
    from langchain_agent_auth import errors as E

    with pytest.raises(E.ApprovalFailedError, match="invalid_request: binding_message too long"):
        b.invoke({"messages": [("user", "wire")]}, {"configurable": {"thread_id": "t9"}}, context=CTX)


def test_in_app_approval_composes_with_itself_and_ciba(keyring):
    """Two approval guards on one tool (in-app review, then the bank's CIBA): both bind
    their own records, so neither can satisfy the other."""
    clock = Clock()
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    guarded = with_approval(with_approval(wire, ciba), InAppApprover(keyring=keyring))
    a = create_agent(scripted(calls(("wire", {"amount": 3}, "c1")), AIMessage("done")), [guarded],
                     checkpointer=InMemorySaver(), store=InMemoryStore())
    r = a.invoke({"messages": [("user", "wire")]}, CFG, context=CTX)
    assert interrupts(r)[0].value["type"] == "tool_approval" and idp.hits["/bc-authorize"] == 0
    r = a.invoke(Command(resume=answer(r, wire={"decision": "approve"})), CFG, context=CTX)
    assert interrupts(r)[0].value["type"] == "approval_pending" and SIDE_EFFECTS == []
    idp.approve()
    clock.advance(1)
    ApprovalResumer(a, approvers=[ciba], clock=clock).run_once()
    assert [e[0] for e in SIDE_EFFECTS] == ["wire"]
