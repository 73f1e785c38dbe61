"""A thread belongs to its user; every invocation re-resolves who is calling (invariant 7).

Alice starts a run that pauses; Bob then resumes, answers, continues (``invoke(None)``,
``update_state`` + continue) or sends new input on her thread. Each is refused with
``ThreadOwnershipError`` before any model call, guard or tool runs, the pending record and
the pause stay as they were, and afterwards Alice resumes and the tool runs once, as her.
Covered: in-app approval, CIBA against the in-process LocalProvider, vault + approval, the
README quick start (TokenResolver), create_agent and a hand-built StateGraph, sync and async.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth.approval import (
    ApprovalMiddleware,
    ApprovalResumer,
    CIBAApprover,
    InAppApprover,
    approval_guards,
    route_tool_calls,
    with_approval,
)
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.errors import IdentityError, ResumeValueError, ThreadOwnershipError
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import (
    OWNER_NAMESPACE,
    IdentityGuard,
    IdentityMiddleware,
    RuntimeContextResolver,
    TokenResolver,
    UserIdentity,
    UserState,
    acheck_thread_access,
    ashare_thread,
    check_thread_access,
    get_current_user,
    identity_node,
    share_thread,
    thread_owner,
)
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
from tests.approval.helpers import answer, calls, interrupts, scripted, tool_messages

ALICE = UserIdentity(subject="alice", issuer="https://idp.test", name="Alice")
BOB = UserIdentity(subject="bob", issuer="https://idp.test", name="Bob")
CFG = {"configurable": {"thread_id": "t1"}}
RAN: list[tuple[str, int]] = []


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    RAN.clear()
    yield
    RAN.clear()


@tool
def transfer(amount: int, to: str) -> str:
    """Send money."""
    RAN.append((get_current_user().subject, amount))
    return f"{get_current_user().subject} sent {amount} to {to}"


def pay(amount: int = 250, id: str = "c1") -> AIMessage:
    return calls(("transfer", {"amount": amount, "to": "Eve"}, id))


async def run(graph: Any, mode: str, value: Any, config: Any = CFG, **kw: Any) -> Any:
    if mode == "sync":
        return graph.invoke(value, config, **kw)
    return await graph.ainvoke(value, config, **kw)


def snapshot(graph: Any, store: Any) -> tuple[Any, ...]:
    """What a refused caller must not change: pending records, the pause, the next node."""
    state = graph.get_state(CFG)
    records = sorted((i.key, repr(i.value)) for i in store.search(("agent_auth",), limit=1000))
    return records, [(i.id, i.value) for i in state.interrupts], state.next


async def refused_everywhere(graph: Any, store: Any, mode: str, resume: dict[str, Any], bob_ctx: Any) -> None:
    """Bob answers and continues Alice's paused thread; nothing changes."""
    before = snapshot(graph, store)
    for value in (Command(resume=resume), None, Command(resume=resume)):
        with pytest.raises(ThreadOwnershipError) as info:
            await run(graph, mode, value, context=bob_ctx)
        assert info.value.thread_id == "t1" and "another user" in str(info.value)
    assert snapshot(graph, store) == before and RAN == []


# --------------------------------------------------------------------------- in-app, create_agent


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_in_app_approval_another_user_cannot_resume_continue_or_answer(mode):
    store = InMemoryStore()
    approver = InAppApprover(keyring=Keyring.generate())
    agent = create_agent(scripted(pay(), AIMessage("done")), [transfer],
                         middleware=[IdentityMiddleware(), ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=store)
    r = await run(agent, mode, {"messages": [HumanMessage("pay eve")]}, context={"user": ALICE})
    approve = answer(r, transfer={"decision": "approve"})
    assert thread_owner(store, "t1").user_key == ALICE.key
    await refused_everywhere(agent, store, mode, approve, {"user": BOB})
    out = await run(agent, mode, Command(resume=approve), context={"user": ALICE})
    assert RAN == [("alice", 250)] and tool_messages(out)[0].content == "alice sent 250 to Eve"
    assert out["user"]["subject"] == "alice"
    # New input from Bob: refused before any model or tool call.
    with pytest.raises(ThreadOwnershipError):
        await run(agent, mode, {"messages": [HumanMessage("pay me instead")]}, context={"user": BOB})
    assert RAN == [("alice", 250)] and thread_owner(store, "t1").user_key == ALICE.key


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_update_state_then_continue_by_another_user_is_refused_before_the_model(mode):
    store = InMemoryStore()
    model_calls: list[str] = []

    class Counting(type(scripted())):
        def _generate(self, messages, *a, **k):
            model_calls.append("x")
            return super()._generate(messages, *a, **k)

    approver = InAppApprover(keyring=Keyring.generate())
    agent = create_agent(Counting(messages=iter([pay(), AIMessage("done")])), [transfer],
                         middleware=[IdentityMiddleware(), ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=store)
    await run(agent, mode, {"messages": [HumanMessage("pay")]}, context={"user": ALICE})
    # The application answers the pending call itself; the next node is the model.
    agent.update_state(CFG, {"messages": [HumanMessage("never mind")]}, as_node="tools")
    assert agent.get_state(CFG).next == ("model",)
    with pytest.raises(ThreadOwnershipError):
        await run(agent, mode, None, context={"user": BOB})
    assert model_calls == ["x"] and agent.get_state(CFG).next == ("model",)
    out = await run(agent, mode, None, context={"user": ALICE})
    assert model_calls == ["x", "x"] and out["messages"][-1].content == "done" and RAN == []


def test_a_caller_with_no_identity_cannot_resume_as_the_recorded_user():
    store = InMemoryStore()
    approver = InAppApprover(keyring=Keyring.generate())
    agent = create_agent(scripted(pay(), AIMessage("done")), [transfer],
                         middleware=[IdentityMiddleware(), ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=store)
    r = agent.invoke({"messages": [HumanMessage("pay")]}, CFG, context={"user": ALICE})
    before = snapshot(agent, store)
    with pytest.raises(IdentityError, match="no trusted user identity"):  # state["user"] is not a source
        agent.invoke(Command(resume=answer(r, transfer={"decision": "approve"})), CFG)
    assert snapshot(agent, store) == before and RAN == []


def test_sharing_a_thread_lets_the_other_user_act_as_themselves():
    store = InMemoryStore()
    approver = InAppApprover(keyring=Keyring.generate())
    agent = create_agent(scripted(pay(), AIMessage("done")), [transfer],
                         middleware=[IdentityMiddleware(), ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=store)
    r = agent.invoke({"messages": [HumanMessage("pay")]}, CFG, context={"user": ALICE})
    with pytest.raises(ThreadOwnershipError):
        share_thread(store, "t1", BOB, owner=BOB)  # only the owner shares
    share_thread(store, "t1", BOB, owner=ALICE)
    # Bob may now use the thread, but Alice's pending approval is still hers to answer.
    with pytest.raises(ResumeValueError, match="another user"):
        agent.invoke(Command(resume=answer(r, transfer={"decision": "approve"})), CFG, context={"user": BOB})
    assert RAN == [] and thread_owner(store, "t1").user_key == ALICE.key
    agent.invoke(Command(resume=answer(r, transfer={"decision": "approve"})), CFG, context={"user": ALICE})
    assert RAN == [("alice", 250)]


def test_an_allow_hook_admits_an_approver_group_and_fails_closed():
    store = InMemoryStore()
    approvers = {BOB.key}

    def allow(thread_id, user, owner):
        if user.subject == "mallory":
            raise RuntimeError("the check is down")
        return user.key in approvers

    mw = IdentityMiddleware(allow=allow)
    agent = create_agent(scripted(calls(("transfer", {"amount": 5, "to": "Eve"}, "c1")), AIMessage("a"),
                                  calls(("transfer", {"amount": 6, "to": "Eve"}, "c2")), AIMessage("b")),
                         [transfer], middleware=[mw], checkpointer=InMemorySaver(), store=store)
    agent.invoke({"messages": [HumanMessage("1")]}, CFG, context={"user": ALICE})
    with pytest.raises(ThreadOwnershipError):
        agent.invoke({"messages": [HumanMessage("2")]}, CFG, context={"user": UserIdentity(subject="mallory")})
    agent.invoke({"messages": [HumanMessage("2")]}, CFG, context={"user": BOB})
    assert RAN == [("alice", 5), ("bob", 6)]


# --------------------------------------------------------------------------- hand-built StateGraph


class State(MessagesState, UserState):
    pass


def hand_built(store: Any, approver: Any, tools_guards: list[Any]) -> Any:
    model = scripted(pay(), AIMessage("done"))

    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    return (StateGraph(State).add_node("identity", identity_node()).add_node("model", call_model)
            # handle_tool_errors=True: a refusal must still stop the run, not become a ToolMessage
            .add_node("tools", guarded_tool_node([transfer], *tools_guards, handle_tool_errors=True))
            .add_edge(START, "identity").add_edge("identity", "model")
            .add_conditional_edges("model", route_tool_calls, ["tools", END]).add_edge("tools", "model")
            .compile(checkpointer=InMemorySaver(), store=store))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_hand_built_graph_identity_node_and_guard(mode):
    store = InMemoryStore()
    approver = InAppApprover(keyring=Keyring.generate())
    graph = hand_built(store, approver, [IdentityGuard(), *approval_guards({"transfer": approver})])
    r = await run(graph, mode, {"messages": [HumanMessage("pay")]}, context={"user": ALICE})
    approve = answer(r, transfer={"decision": "approve"})
    await refused_everywhere(graph, store, mode, approve, {"user": BOB})
    out = await run(graph, mode, Command(resume=approve), context={"user": ALICE})
    assert RAN == [("alice", 250)] and out["user"]["subject"] == "alice"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_state_user_never_outranks_the_caller_of_a_resume(mode):
    # No IdentityGuard in the tool node: the approval guard sees the caller of this
    # invocation (Bob), not state["user"] (Alice), and refuses his answer to her approval.
    store = InMemoryStore()
    approver = InAppApprover(keyring=Keyring.generate())
    graph = hand_built(store, approver, list(approval_guards({"transfer": approver})))
    r = await run(graph, mode, {"messages": [HumanMessage("pay")]}, context={"user": ALICE})
    assert graph.get_state(CFG).values["user"]["subject"] == "alice"
    with pytest.raises(ResumeValueError, match="another user"):
        await run(graph, mode, Command(resume=answer(r, transfer={"decision": "approve"})), context={"user": BOB})
    assert RAN == []


# --------------------------------------------------------------------------- vault + approval


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_vault_and_approval_bob_never_gets_alices_upstream_token(local_idp, mode):
    from langchain_agent_auth.vault import Connection, TokenVault, VaultMiddleware, get_access_token

    store, keyring = InMemoryStore(), Keyring.generate()
    vault = TokenVault([Connection("calendar", issuer=local_idp.upstream_issuer,
                                   client_id=local_idp.upstream_client_id,
                                   client_secret=local_idp.upstream_client_secret,
                                   redirect_uri=f"{local_idp.url}/app/callback", scopes=["calendar.write"])],
                       store=store, keyring=keyring)
    owners = {"opaque-upstream-alice-1": "alice", "opaque-upstream-bob-1": "bob"}
    for user, token in ((ALICE, "opaque-upstream-alice-1"), (BOB, "opaque-upstream-bob-1")):
        vault.import_token(user, "calendar", access_token=token, scopes=["calendar.write"],
                           expires_at=time.time() + 3600)

    @tool
    def create_event(title: str) -> str:
        """Create an event in the user's calendar."""
        RAN.append((owners[get_access_token()], len(title)))
        return f"created for {get_current_user().subject}"

    approver = InAppApprover(keyring=keyring)
    agent = create_agent(scripted(calls(("create_event", {"title": "standup"}, "c1")), AIMessage("done")),
                         [create_event],
                         middleware=[IdentityMiddleware(), ApprovalMiddleware({"create_event": approver}),
                                     VaultMiddleware(vault, {"create_event": "calendar"})],
                         checkpointer=InMemorySaver(), store=store)
    r = await run(agent, mode, {"messages": [HumanMessage("add standup")]}, context={"user": ALICE})
    approve = answer(r, create_event={"decision": "approve"})
    await refused_everywhere(agent, store, mode, approve, {"user": BOB})
    out = await run(agent, mode, Command(resume=approve), context={"user": ALICE})
    assert RAN == [("alice", 7)] and tool_messages(out)[0].content == "created for alice"


# --------------------------------------------------------------------------- CIBA + README quick start


@pytest.fixture(scope="module")
def local_idp() -> Iterator[Any]:
    devserver = pytest.importorskip("langchain_agent_auth.devserver", reason="devserver not available")
    with devserver.LocalProvider(ciba_interval=1) as idp:
        yield idp


def resume_until_done(resumer: Any, agent: Any, config: Any) -> None:
    for _ in range(80):  # bounded: the provider's interval is 1 s
        resumer.run_once()
        if not agent.get_state(config).interrupts:
            return
        time.sleep(0.1)
    raise AssertionError("the resumer did not finish the run")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_ciba_another_user_cannot_consume_the_approved_token(local_idp, mode):
    store = InMemoryStore()
    client = OAuthClient(local_idp.issuer, local_idp.client_id, local_idp.client_secret)
    approver = CIBAApprover(client, scope="openid", keyring=Keyring.generate())
    agent = create_agent(scripted(pay(), AIMessage("done")), [transfer],
                         middleware=[IdentityMiddleware(), ApprovalMiddleware({"transfer": approver})],
                         checkpointer=InMemorySaver(), store=store)
    alice = UserIdentity(subject="alice")
    r = await run(agent, mode, {"messages": [HumanMessage("pay")]}, context={"user": alice})
    (pending,) = local_idp.wait_for_pending("alice")
    local_idp.approve(pending["id"])  # approved on Alice's device; not yet collected
    check = answer(r, transfer={"decision": "check"})
    await refused_everywhere(agent, store, mode, check, {"user": UserIdentity(subject="bob")})
    resume_until_done(ApprovalResumer(agent, approvers=[approver]), agent, CFG)
    assert RAN == [("alice", 250)]


@pytest.mark.parametrize("with_context_resolver", [True, False])
def test_readme_quick_start_bob_with_his_verified_token_is_refused(local_idp, with_context_resolver):
    """The README set-up: a TokenResolver, with_approval + CIBA, the in-process resumer (which
    resumes as the user who asked, also when the graph only accepts verified tokens)."""
    store = InMemoryStore()
    tokens = {u: local_idp.login(u, scope="openid profile api:read", resource="urn:example:api")["access_token"]
              for u in ("alice", "bob")}
    verifier = JWTVerifier(local_idp.issuer, audience="urn:example:api")
    verified = 0
    real_verify = verifier.verify

    def counting_verify(token: str, *a: Any, **k: Any) -> Any:
        nonlocal verified
        verified += 1
        return real_verify(token, *a, **k)

    verifier.verify = counting_verify  # type: ignore[method-assign]
    approver = CIBAApprover(OAuthClient(local_idp.issuer, local_idp.client_id, local_idp.client_secret),
                            keyring=Keyring.generate())
    resolvers = [TokenResolver(verifier), *([RuntimeContextResolver()] if with_context_resolver else [])]
    agent = create_agent(scripted(pay(), AIMessage("done")),
                         [with_approval(transfer, approver, when=lambda args: args["amount"] > 100)],
                         middleware=[IdentityMiddleware(resolvers)],
                         checkpointer=InMemorySaver(), store=store)
    r = agent.invoke({"messages": [("user", "send 250 to Eve")]}, CFG, context={"access_token": tokens["alice"]})
    assert interrupts(r)[0].value["type"] == "approval_pending"
    assert verified == 1  # resolved at the start, the model call and the tool call: one verification
    owner = thread_owner(store, "t1")
    assert owner.subject == "alice" and owner.issuer == local_idp.issuer
    (pending,) = local_idp.wait_for_pending("alice")
    local_idp.approve(pending["id"])
    check = answer(r, transfer={"decision": "check"})
    before = snapshot(agent, store)
    for value in (Command(resume=check), None):
        with pytest.raises(ThreadOwnershipError):
            agent.invoke(value, CFG, context={"access_token": tokens["bob"]})
    assert snapshot(agent, store) == before and RAN == []
    resume_until_done(ApprovalResumer(agent, approvers=[approver]), agent, CFG)
    assert RAN == [("alice", 250)]
    assert tokens["alice"] not in repr(store.search(OWNER_NAMESPACE))


# --------------------------------------------------------------------------- the owner record


def test_owner_record_claim_refuse_share_revoke():
    store = InMemoryStore()
    assert check_thread_access(store, "t", ALICE).user_key == ALICE.key
    assert check_thread_access(store, "t", ALICE).user_key == ALICE.key  # idempotent
    with pytest.raises(ThreadOwnershipError):
        check_thread_access(store, "t", BOB)
    other_issuer = UserIdentity(subject="alice", issuer="https://elsewhere.test")
    with pytest.raises(ThreadOwnershipError):  # same subject, another issuer: another user
        check_thread_access(store, "t", other_issuer)
    share_thread(store, "t", BOB, owner=ALICE)
    assert check_thread_access(store, "t", BOB).user_key == ALICE.key
    share_thread(store, "t", BOB, owner=ALICE, revoke=True)
    with pytest.raises(ThreadOwnershipError):
        check_thread_access(store, "t", BOB)
    with pytest.raises(ThreadOwnershipError):
        share_thread(store, "never-claimed", BOB, owner=ALICE)


def test_an_unreadable_owner_record_refuses_everyone():
    store = InMemoryStore()
    store.put(OWNER_NAMESPACE, "t", {"garbage": True})
    for user in (ALICE, BOB):
        with pytest.raises(ThreadOwnershipError):
            check_thread_access(store, "t", user)


def test_the_state_record_refuses_when_there_is_no_store_or_no_owner_record():
    with pytest.raises(ThreadOwnershipError):
        check_thread_access(None, "t", BOB, recorded=ALICE)
    assert check_thread_access(None, "t", ALICE, recorded=ALICE).user_key == ALICE.key
    store = InMemoryStore()  # a thread from before owner records: its state names Alice
    with pytest.raises(ThreadOwnershipError):
        check_thread_access(store, "t", BOB, recorded=ALICE)
    assert thread_owner(store, "t") is None
    assert check_thread_access(store, "t", ALICE, recorded=ALICE).user_key == ALICE.key


async def test_async_owner_record():
    store = InMemoryStore()
    assert (await acheck_thread_access(store, "t", ALICE)).subject == "alice"
    with pytest.raises(ThreadOwnershipError):
        await acheck_thread_access(store, "t", BOB)
    await ashare_thread(store, "t", BOB, owner=ALICE)
    assert (await acheck_thread_access(store, "t", BOB)).subject == "alice"


def test_concurrent_first_callers_get_one_owner():
    from concurrent.futures import ThreadPoolExecutor

    store = InMemoryStore()
    users = [UserIdentity(subject=f"u{i}") for i in range(16)]

    def attempt(user: UserIdentity) -> bool:
        try:
            check_thread_access(store, "race", user)
            return True
        except ThreadOwnershipError:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, users))
    assert results.count(True) == 1
    assert thread_owner(store, "race").user_key == users[results.index(True)].key


async def test_concurrent_first_callers_get_one_owner_async():
    import asyncio
    import itertools

    turns = itertools.count()

    class YieldingStore(InMemoryStore):  # async calls that suspend a varying number of times, like I/O
        async def aget(self, *a, **k):
            for _ in range(next(turns) % 4):
                await asyncio.sleep(0)
            return self.get(*a, **k)

        async def aput(self, *a, **k):
            for _ in range(next(turns) % 3):
                await asyncio.sleep(0)
            return self.put(*a, **k)

    store = YieldingStore()
    users = [UserIdentity(subject=f"u{i}") for i in range(16)]

    async def attempt(user: UserIdentity) -> bool:
        try:
            await acheck_thread_access(store, "race", user)
            return True
        except ThreadOwnershipError:
            return False

    results = await asyncio.gather(*(attempt(u) for u in users))
    assert results.count(True) == 1
    assert thread_owner(store, "race").user_key == users[results.index(True)].key
