"""In-app approvals (``tool_approval``) in real graphs: create_agent + middleware, resume
values of every wrong shape, edits, rejections, expiry, replays, parallel calls."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, StructuredTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth import errors as E
from langchain_agent_auth.approval import (
    ApprovalGuard,
    ApprovalMiddleware,
    ApprovalPolicy,
    InAppApprover,
    args_digest,
    with_approval,
)
from langchain_agent_auth.core.guards import guard_tool
from tests.approval.helpers import (
    ALICE,
    BOB,
    SIDE_EFFECTS,
    answer,
    calls,
    delete_repo,
    interrupts,
    scripted,
    tool_messages,
    transfer_money,
)

CFG = {"configurable": {"thread_id": "t1"}}
CTX = {"user": ALICE}


def agent(approver, *turns, tools=(transfer_money, delete_repo), config=None, store=None, saver=None):
    config = config or {"transfer_money": approver, "delete_repo": approver}
    model = scripted(*turns, AIMessage("all done"))
    return create_agent(model, list(tools), middleware=[ApprovalMiddleware(config)],
                        checkpointer=saver or InMemorySaver(), store=store or InMemoryStore())


@pytest.fixture
def approver(keyring):
    return InAppApprover(keyring=keyring)


def pay(amount=250, to="Bob", id="c1"):
    return calls(("transfer_money", {"amount": amount, "to": to}, id))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_approve_runs_the_call_once(approver, mode):
    a = agent(approver, pay())

    async def go(inp):
        if mode == "sync":
            return a.invoke(inp, CFG, context=CTX)
        return await a.ainvoke(inp, CFG, context=CTX)

    r = await go({"messages": [("user", "pay bob")]})
    (pause,) = interrupts(r)
    v = pause.value
    assert v["type"] == "tool_approval" and v["tool"] == "transfer_money" and v["args"] == {"amount": 250, "to": "Bob"}
    assert v["args_digest"] == args_digest({"amount": 250, "to": "Bob"}) and v["tool_call_id"] == "c1"
    assert v["description"] == "Transfer money to someone."
    assert v["allowed_decisions"] == ["approve", "edit", "reject"]
    assert v["action_requests"] == [{"name": "transfer_money", "args": {"amount": 250, "to": "Bob"},
                                     "description": "Transfer money to someone."}]
    assert v["review_configs"] == [{"action_name": "transfer_money",
                                    "allowed_decisions": ["approve", "edit", "reject"]}]
    assert pause.response_schema["required"] == ["approval_id"]
    assert SIDE_EFFECTS == []
    r = await go(Command(resume=answer(r, transfer_money={"decision": "approve"})))
    assert [m.content for m in tool_messages(r)] == ["transferred 250 to Bob"]
    assert r["messages"][-1].content == "all done" and not interrupts(r)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]


def test_edit_runs_the_edited_arguments(approver):
    a = agent(approver, pay(250))
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    r = a.invoke(Command(resume=answer(r, transfer_money={"decision": "edit", "args": {"amount": 25, "to": "Bob"},
                                                           "message": "less"})), CFG, context=CTX)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 25, "to": "Bob"})]
    assert tool_messages(r)[0].content == "transferred 25 to Bob"


@pytest.mark.parametrize("decision,match", [
    ({"decision": "edit", "name": "delete_repo", "args": {"name": "prod"}}, "switch the tool"),
    ({"decision": "edit", "args": {"amount": "lots", "to": "Bob"}}, "do not fit"),
    ({"decision": "edit", "args": {"amount": 1, "to": "Bob", "user_id": "bob"}}, "do not fit"),
    ({"decision": "edit"}, "needs 'args'"),
    ({"decision": "approve", "args": {"amount": 1, "to": "x"}}, "only allowed"),
    ({"decision": "approve", "args_digest": "sha256:" + "0" * 64}, "other arguments"),
    ({"decision": "check"}, "not allowed"),
])
def test_bad_decisions_are_refused_and_the_pause_stays(approver, decision, match):
    a = agent(approver, pay())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    with pytest.raises(E.ResumeValueError, match=match):
        a.invoke(Command(resume=answer(r, transfer_money=decision)), CFG, context=CTX)
    assert SIDE_EFFECTS == []
    # the same pause can still be answered properly
    state = a.get_state(CFG)
    assert [i.value["tool"] for i in state.interrupts] == ["transfer_money"]
    r = a.invoke(Command(resume=answer(state.interrupts, transfer_money={"decision": "approve"})), CFG, context=CTX)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]


@pytest.mark.parametrize("value", ["yes", None, 42, {}, {"decision": "approve"}, {"approval_id": ""},
                                   {"approval_id": "x" * 500}, {"approval_id": "a", "decision": "maybe"},
                                   {"approval_id": "a", "decision": "approve", "extra": 1}])
def test_resume_values_of_the_wrong_shape_are_refused(approver, value):
    a = agent(approver, pay())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    (pause,) = interrupts(r)
    with pytest.raises(E.ResumeValueError):
        a.invoke(Command(resume={pause.id: value}), CFG, context=CTX)
    assert SIDE_EFFECTS == []
    assert a.get_state(CFG).interrupts  # still paused


def test_approval_of_another_thread_is_refused(approver):
    store = InMemoryStore()
    a = agent(approver, pay(), pay(id="c1"), store=store)
    other = {"configurable": {"thread_id": "t2"}}
    r1 = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    r2 = a.invoke({"messages": [("user", "pay")]}, other, context=CTX)
    (p1,), (p2,) = interrupts(r1), interrupts(r2)
    with pytest.raises(E.ResumeValueError, match="another thread"):
        a.invoke(Command(resume={p1.id: {"approval_id": p2.value["approval_id"], "decision": "approve"}}), CFG,
                 context=CTX)
    assert SIDE_EFFECTS == []


def test_replayed_approval_for_a_later_call_is_refused(approver):
    a = agent(approver, pay(250, id="c1"), pay(250, id="c2"))
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    first = answer(r, transfer_money={"decision": "approve"})
    (old_value,) = first.values()
    r = a.invoke(Command(resume=first), CFG, context=CTX)
    (second,) = interrupts(r)  # the model asked again: a new call, a new approval
    assert second.value["tool_call_id"] == "c2" and second.value["approval_id"] != old_value["approval_id"]
    with pytest.raises(E.ResumeValueError):
        a.invoke(Command(resume={second.id: old_value}), CFG, context=CTX)
    assert len(SIDE_EFFECTS) == 1


def test_another_user_cannot_answer(approver):
    a = agent(approver, pay())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    with pytest.raises(E.ResumeValueError, match="another user"):
        a.invoke(Command(resume=answer(r, transfer_money={"decision": "approve"})), CFG, context={"user": BOB})
    assert SIDE_EFFECTS == []
    r = a.invoke(Command(resume=answer(a.get_state(CFG).interrupts, transfer_money={"decision": "approve"})), CFG,
                 context=CTX)
    assert len(SIDE_EFFECTS) == 1


def test_reject_comes_back_to_the_model_and_the_agent_continues(approver):
    a = agent(approver, pay())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    r = a.invoke(Command(resume=answer(r, transfer_money={"decision": "reject", "message": "not today"})), CFG,
                 context=CTX)
    (msg,) = tool_messages(r)
    assert msg.status == "error" and "denied" in msg.content and "not today" in msg.content
    assert r["messages"][-1].content == "all done" and SIDE_EFFECTS == []


def test_on_denied_raise(keyring):
    approver = InAppApprover(keyring=keyring)
    a = agent(approver, pay(), config={"transfer_money": {"approver": approver, "on_refusal": "raise"}})
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    with pytest.raises(E.ApprovalDeniedError):
        a.invoke(Command(resume=answer(r, transfer_money={"decision": "reject"})), CFG, context=CTX)


def test_expired_in_app_approval_is_refused(keyring):
    now = [1000.0]
    approver = InAppApprover(keyring=keyring, expires_in=60, clock=lambda: now[0])
    a = agent(approver, pay())
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    assert interrupts(r)[0].value["expires_at"] == 1060.0
    now[0] = 1061.0
    r = a.invoke(Command(resume=answer(r, transfer_money={"decision": "approve"})), CFG, context=CTX)
    (msg,) = tool_messages(r)
    assert "expired" in msg.content and msg.status == "error" and SIDE_EFFECTS == []


def test_when_predicate_decides_which_calls_pause(keyring):
    approver = InAppApprover(keyring=keyring)
    policy = ApprovalPolicy(approver, when=lambda args: args["amount"] > 100)
    a = agent(approver, pay(50, id="c1"), pay(500, id="c2"), config={"transfer_money": policy})
    r = a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 50, "to": "Bob"})]
    assert [i.value["args"]["amount"] for i in interrupts(r)] == [500]
    failing = ApprovalGuard(approver, when=lambda args: args["missing"] > 1)
    assert failing.needs_approval({"amount": 1}) is True  # a broken predicate fails closed


def test_parallel_calls_are_decided_independently(approver):
    a = agent(approver, calls(("transfer_money", {"amount": 250, "to": "Bob"}, "c1"),
                              ("delete_repo", {"name": "prod"}, "c2")))
    r = a.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    pauses = interrupts(r)
    assert sorted(p.value["tool_call_id"] for p in pauses) == ["c1", "c2"]
    assert len({p.value["approval_id"] for p in pauses}) == 2
    # answer only one: the other pauses again, nothing runs twice
    r = a.invoke(Command(resume=answer(r, delete_repo={"decision": "reject"})), CFG, context=CTX)
    assert [p.value["tool"] for p in interrupts(r)] == ["transfer_money"]
    assert SIDE_EFFECTS == []
    r = a.invoke(Command(resume=answer(r, transfer_money={"decision": "approve"})), CFG, context=CTX)
    contents = sorted(m.content for m in tool_messages(r))
    assert contents[1] == "transferred 250 to Bob" and "denied" in contents[0]
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 250, "to": "Bob"})]


def test_parallel_calls_answered_together(approver):
    a = agent(approver, calls(("transfer_money", {"amount": 1, "to": "A"}, "c1"),
                              ("transfer_money", {"amount": 2, "to": "B"}, "c2")))
    r = a.invoke({"messages": [("user", "go")]}, CFG, context=CTX)
    resume = {}
    for p in interrupts(r):
        decision = "approve" if p.value["args"]["to"] == "A" else "reject"
        resume[p.id] = {"approval_id": p.value["approval_id"], "decision": decision}
    r = a.invoke(Command(resume=resume), CFG, context=CTX)
    assert SIDE_EFFECTS == [("transfer_money", {"amount": 1, "to": "A"})]
    by_id = {m.tool_call_id: m for m in tool_messages(r)}
    assert by_id["c1"].content == "transferred 1 to A" and by_id["c2"].status == "error"


def test_injected_arguments_are_not_part_of_the_approval(approver):
    seen = {}

    @tool
    def refund(amount: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Refund."""
        seen["id"] = tool_call_id
        return f"refunded {amount}"

    a = agent(approver, calls(("refund", {"amount": 3}, "c9")), tools=[refund], config={"refund": approver})
    r = a.invoke({"messages": [("user", "refund")]}, CFG, context=CTX)
    (p,) = interrupts(r)
    assert p.value["args"] == {"amount": 3} and p.value["args_digest"] == args_digest({"amount": 3})
    r = a.invoke(Command(resume=answer(r, refund={"decision": "approve"})), CFG, context=CTX)
    assert seen == {"id": "c9"} and tool_messages(r)[0].content == "refunded 3"


def test_wrapper_keeps_the_tool_surface_and_works_with_json_schema_tools(approver):
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

    def _rm(**kwargs: Any) -> str:
        SIDE_EFFECTS.append(("rm", kwargs))
        return f"removed {kwargs['path']}"

    mcp_like = StructuredTool(name="rm", description="Remove a file.", args_schema=schema, func=_rm,
                              return_direct=True, response_format="content")
    guarded = with_approval(mcp_like, approver)
    assert (guarded.name, guarded.description, guarded.args_schema, guarded.return_direct) == \
        ("rm", "Remove a file.", schema, True)
    a = create_agent(scripted(calls(("rm", {"path": "/tmp/x"}, "c1"))), [guarded], checkpointer=InMemorySaver(),
                     store=InMemoryStore())
    r = a.invoke({"messages": [("user", "rm")]}, CFG, context=CTX)
    with pytest.raises(E.ResumeValueError, match="do not fit"):
        a.invoke(Command(resume=answer(r, rm={"decision": "edit", "args": {"file": "/etc"}})), CFG, context=CTX)
    r = a.invoke(Command(resume=answer(a.get_state(CFG).interrupts, rm={"decision": "edit",
                                                                         "args": {"path": "/tmp/y"}})),
                 CFG, context=CTX)
    assert SIDE_EFFECTS == [("rm", {"path": "/tmp/y"})]
    assert isinstance(r["messages"][-1], ToolMessage)  # return_direct kept


def test_without_a_user_the_call_is_refused(approver):
    a = agent(approver, pay())
    r = a.invoke({"messages": [("user", "pay")]}, CFG)
    (msg,) = tool_messages(r)
    assert "don't know who you are" in msg.content and SIDE_EFFECTS == []


def test_configuration_errors(approver):
    with pytest.raises(E.ConfigurationError, match="block"):
        ApprovalGuard(approver, mode="block")
    with pytest.raises(E.ConfigurationError):
        ApprovalGuard(approver, mode="later")  # type: ignore[arg-type]
    with pytest.raises(E.ConfigurationError), pytest.warns(DeprecationWarning):
        ApprovalGuard(approver, on_denied="shrug")  # type: ignore[arg-type]
    with pytest.raises(E.ConfigurationError):
        ApprovalGuard(approver, on_refusal="shrug")  # type: ignore[arg-type]
    with pytest.raises(E.ConfigurationError):
        ApprovalMiddleware({"t": {"approver": approver, "whenn": None}})
    with pytest.raises(E.ConfigurationError):
        ApprovalMiddleware({"t": "yes"})  # type: ignore[dict-item]
    with pytest.raises(E.ConfigurationError):
        InAppApprover(allowed_decisions=("reject",))
    with pytest.raises(E.ConfigurationError):
        InAppApprover(allowed_decisions=("approve", "shrug"))
    guarded = guard_tool(transfer_money, ApprovalGuard(approver))
    call = {"type": "tool_call", "name": "transfer_money", "args": {"amount": 1, "to": "x"}, "id": "c1"}
    from langchain_agent_auth.identity import acting_as

    with acting_as(ALICE), pytest.raises(E.ConfigurationError, match="checkpointer"):
        guarded.invoke(call)  # interrupt mode outside a graph


def test_interrupt_mode_needs_a_store(approver):
    a = create_agent(scripted(pay()), [transfer_money], middleware=[ApprovalMiddleware({"transfer_money": approver})],
                     checkpointer=InMemorySaver())
    with pytest.raises(E.ConfigurationError, match="store"):
        a.invoke({"messages": [("user", "pay")]}, CFG, context=CTX)


def test_on_denied_is_a_deprecated_alias_of_on_refusal(approver):
    with pytest.warns(DeprecationWarning, match="on_refusal"):
        guard = ApprovalGuard(approver, on_denied="raise")
    assert guard.on_refusal == "raise" and guard.on_denied == "raise"
    assert ApprovalGuard(approver, on_refusal="raise").on_refusal == "raise"

