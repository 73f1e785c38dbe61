"""AgentAuthToolkit: every tool, sync and async, against the in-process local provider and a
SQLite store; the tool schemas a model sees; secret scans of every output."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseToolkit
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_agent_auth import AgentAuthToolkit
from langchain_agent_auth.approval import ApprovalResumer
from langchain_agent_auth.core.errors import ConfigurationError, ConnectionNotFoundError
from langchain_agent_auth.identity import acting_as
from tests.toolkit.conftest import ALICE, BOB, TRANSFERS, run, start_waiting, wait_until, waiting_agent

MODES = ["sync", "async"]
SECRETS = ["opaque-access-alice-1", "opaque-refresh-alice-1", "opaque-access-bob-1"]


def tools(kit: AgentAuthToolkit) -> dict[str, Any]:
    return {t.name: t for t in kit.get_tools()}


def choices(prop: dict[str, Any]) -> list[Any]:
    return prop["enum"] if "enum" in prop else [prop["const"]]


def scan(*outputs: Any, extra: tuple[str, ...] = ()) -> None:
    text = json.dumps([o.content if isinstance(o, ToolMessage) else o for o in outputs], default=str)
    for secret in (*SECRETS, *extra):
        assert secret not in text


# --------------------------------------------------------------------------- the toolkit object


def test_a_langchain_toolkit_built_from_the_pillars_given(vault, fga, approver):
    assert isinstance(AgentAuthToolkit(), BaseToolkit)
    assert [t.name for t in AgentAuthToolkit().get_tools()] == ["whoami"]
    kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"doc": ["viewer", "owner"]}, approvers=[approver])
    assert list(tools(kit)) == ["whoami", "list_connections", "connect_account", "disconnect_account",
                                "what_can_i_access", "my_pending_approvals", "cancel_approval"]
    only = AgentAuthToolkit(vault=vault, include=["list_connections"])
    assert list(tools(only)) == ["list_connections"]


def test_bad_configuration_fails_at_construction(vault, fga):
    with pytest.raises(ConfigurationError, match="access="):
        AgentAuthToolkit(authorizer=fga)
    with pytest.raises(ConfigurationError, match="needs an authorizer"):
        AgentAuthToolkit(access={"doc": ["viewer"]})
    with pytest.raises(ConfigurationError, match="at least one relation"):
        AgentAuthToolkit(authorizer=fga, access={"doc": []})
    with pytest.raises(ConfigurationError, match="TokenVault"):
        AgentAuthToolkit(vault=object())
    with pytest.raises(ConnectionNotFoundError):
        AgentAuthToolkit(vault=vault, connect_scopes={"nope": ["x"]})
    with pytest.raises(ConfigurationError, match="cannot build"):
        AgentAuthToolkit(include=["list_connections"])
    with pytest.raises(ConfigurationError, match="not an approver"):
        AgentAuthToolkit(approvers=[object()])


def test_no_schema_lets_the_model_name_a_user_a_token_or_an_approval(vault, fga, approver):
    kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"doc": ["viewer"]}, approvers=[approver])
    forbidden = ("user", "subject", "sub", "email", "token", "access_token", "approval_id", "user_id", "thread")
    for t in kit.get_tools():
        props = t.tool_call_schema.model_json_schema().get("properties", {})
        assert not any(any(f in name.lower() for f in forbidden) for name in props), (t.name, props)
    schema = tools(kit)["what_can_i_access"].tool_call_schema.model_json_schema()
    assert choices(schema["properties"]["type"]) == ["doc"]
    assert choices(schema["properties"]["relation"]) == ["viewer"]
    connect = tools(kit)["connect_account"].tool_call_schema.model_json_schema()
    assert connect["properties"]["connection"]["enum"] == ["calendar", "mail"]


# --------------------------------------------------------------------------- whoami


@pytest.mark.parametrize("mode", MODES)
def test_whoami_answers_with_the_trusted_users_public_claims(mode):
    kit = AgentAuthToolkit()
    whoami = tools(kit)["whoami"]
    with acting_as(ALICE):
        out = json.loads(run(whoami, {}, mode))
    assert out["subject"] == "alice" and out["email"] == "alice@example.com"
    assert out["claims"] == {"preferred_username": "alice", "locale": "en"}
    # an argument the model adds cannot change the user
    with acting_as(ALICE):
        out = json.loads(run(whoami, {"user": "bob", "subject": "bob"}, mode))
    assert out["subject"] == "alice"


@pytest.mark.parametrize("mode", MODES)
def test_without_a_trusted_user_every_tool_refuses(mode, vault, fga, approver):
    kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"doc": ["viewer"]}, approvers=[approver])
    args = {"whoami": {}, "list_connections": {}, "connect_account": {"connection": "calendar"},
            "disconnect_account": {"connection": "calendar"}, "what_can_i_access": {"relation": "viewer",
                                                                                  "type": "doc"},
            "my_pending_approvals": {}, "cancel_approval": {"handle": "apr_x"}}
    for name, t in tools(kit).items():
        call = {"name": name, "args": args[name], "id": "c1", "type": "tool_call"}
        msg = run(t, call, mode)
        assert isinstance(msg, ToolMessage) and msg.status == "error", name
        assert "who you are" in msg.content


def test_whoami_from_a_token_verified_at_the_local_provider(idp):
    """The user comes from a real access token (TokenResolver); the answer holds no token."""
    from langchain_agent_auth.core.identity import IdentitySource
    from langchain_agent_auth.identity import TokenResolver
    from langchain_agent_auth.oauth import JWTVerifier

    raw = idp.login("alice", audience=idp.api_audience)["access_token"]
    user = TokenResolver(JWTVerifier(idp.issuer, audience=idp.api_audience)).resolve(
        IdentitySource(context={"access_token": raw}))
    with acting_as(user):
        out = run(tools(AgentAuthToolkit())["whoami"], {}, "sync")
    view = json.loads(out)
    assert view["subject"] == user.subject and view["issuer"] == idp.issuer and view["source"] == "token"
    assert raw not in out and raw.split(".")[2] not in out


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize("mode", MODES)
def test_list_connections_shows_each_status(mode, vault):
    kit = AgentAuthToolkit(vault=vault)
    listing = tools(kit)["list_connections"]

    def statuses() -> dict[str, dict[str, Any]]:
        with acting_as(ALICE):
            out = run(listing, {}, mode)
        scan(out)
        return {c["connection"]: c for c in json.loads(out)}

    now = statuses()
    assert now["calendar"]["status"] == "not_connected" and now["calendar"]["missing_scopes"] == ["calendar.read"]
    vault.import_token(ALICE, "calendar", access_token=SECRETS[0], refresh_token=SECRETS[1],
                       scopes=["calendar.read"], expires_at=time.time() + 3600)
    vault.import_token(ALICE, "mail", access_token="opaque-mail-alice", scopes=[], expires_at=time.time() + 3600)
    now = statuses()
    assert now["calendar"]["status"] == "connected" and now["calendar"]["scopes"] == ["calendar.read"]
    assert now["mail"]["status"] == "missing_scopes" and now["mail"]["missing_scopes"] == ["mail.read"]
    vault.import_token(ALICE, "calendar", access_token=SECRETS[0], refresh_token=SECRETS[1],
                       scopes=["calendar.read"], expires_at=time.time() - 10)
    assert statuses()["calendar"]["status"] == "expired"
    vault.import_token(ALICE, "calendar", access_token=SECRETS[0], scopes=["calendar.read"],
                       expires_at=time.time() + 3600)
    vault.reject(ALICE, "calendar", SECRETS[0])
    assert statuses()["calendar"]["status"] == "needs_reauthorization"
    # bob sees his own (empty) connections, not alice's
    with acting_as(BOB):
        bob = {c["connection"]: c["status"] for c in json.loads(run(listing, {}, mode))}
    assert bob == {"calendar": "not_connected", "mail": "not_connected"}


@pytest.mark.parametrize("mode", MODES)
def test_connect_account_pauses_with_the_vaults_connect_account_pause(mode, vault, idp):
    from langchain.agents import create_agent

    from tests.adversarial.attacker import Attacker, call

    kit = AgentAuthToolkit(vault=vault)
    model = Attacker(script=[call("connect_account", {"connection": "calendar"}, "c1"), AIMessage("done")])
    agent = create_agent(model, kit.get_tools(), checkpointer=InMemorySaver(), store=vault.store)
    cfg = {"configurable": {"thread_id": f"connect-{mode}"}}
    ctx = {"user": ALICE}
    first = (agent.invoke({"messages": [("user", "connect my calendar")]}, cfg, context=ctx) if mode == "sync"
             else _arun(agent.ainvoke({"messages": [("user", "connect my calendar")]}, cfg, context=ctx)))
    (pause,) = first["__interrupt__"]
    payload = pause.value
    assert payload["type"] == "connect_account" and payload["connection"] == "calendar"
    assert payload["missing_scopes"] == ["calendar.read"] and payload["tool_call_id"] == "c1"
    assert payload["authorize_url"].startswith(idp.upstream_issuer)
    assert idp.upstream_client_secret not in json.dumps(payload)
    # the user connects (the vault's callback would store the token); the run resumes
    vault.import_token(ALICE, "calendar", access_token=SECRETS[0], scopes=["calendar.read"],
                       expires_at=time.time() + 3600)
    done = (agent.invoke(Command(resume={}), cfg, context=ctx) if mode == "sync"
            else _arun(agent.ainvoke(Command(resume={}), cfg, context=ctx)))
    (msg,) = [m for m in done["messages"] if m.type == "tool"]
    assert json.loads(msg.content) == {"connection": "calendar", "status": "connected", "scopes": ["calendar.read"]}
    scan(*done["messages"], payload)
    assert not model.saw(SECRETS[0])


@pytest.mark.parametrize("mode", MODES)
def test_connect_account_outside_a_graph_and_bad_scopes_are_refused(mode, vault):
    connect = tools(AgentAuthToolkit(vault=vault, connect_scopes={"calendar": ["calendar.write"]}))["connect_account"]
    with acting_as(ALICE):
        msg = run(connect, {"name": "connect_account", "args": {"connection": "calendar"}, "id": "c1",
                            "type": "tool_call"}, mode)
        assert msg.status == "error" and "calendar" in msg.content
        msg = run(connect, {"name": "connect_account", "args": {"connection": "bank"}, "id": "c2",
                            "type": "tool_call"}, mode)
        assert msg.status == "error" and "calendar, mail" in msg.content
        msg = run(connect, {"name": "connect_account", "args": {"connection": "calendar", "scopes": ["admin"]},
                            "id": "c3", "type": "tool_call"}, mode)
        assert msg.status == "error" and "calendar.read, calendar.write" in msg.content
        vault.import_token(ALICE, "calendar", access_token=SECRETS[0], scopes=["calendar.read", "calendar.write"],
                           expires_at=time.time() + 3600)
        out = run(connect, {"connection": "calendar", "scopes": ["calendar.write"]}, mode)
    assert json.loads(out)["status"] == "connected"
    scan(out)


@pytest.mark.parametrize("mode", MODES)
def test_disconnect_account_removes_only_the_users_own_connection(mode, vault):
    kit = AgentAuthToolkit(vault=vault)
    vault.import_token(ALICE, "calendar", access_token=SECRETS[0], scopes=["calendar.read"],
                       expires_at=time.time() + 3600)
    vault.import_token(BOB, "calendar", access_token=SECRETS[2], scopes=["calendar.read"],
                       expires_at=time.time() + 3600)
    with acting_as(ALICE):
        out = json.loads(run(tools(kit)["disconnect_account"], {"connection": "calendar"}, mode))
        again = json.loads(run(tools(kit)["disconnect_account"], {"connection": "calendar"}, mode))
    assert out["disconnected"] is True and again["disconnected"] is False
    assert vault.status(ALICE, "calendar").status == "not_connected"
    assert vault.status(BOB, "calendar").status == "active"


# --------------------------------------------------------------------------- fga


@pytest.mark.parametrize("mode", MODES)
def test_what_can_i_access_lists_the_users_objects_for_allowed_pairs_only(mode, fga):
    kit = AgentAuthToolkit(authorizer=fga, access={"doc": ["viewer", "owner"]}, max_objects=1)
    what = tools(kit)["what_can_i_access"]
    with acting_as(ALICE):
        out = json.loads(run(what, {"relation": "owner", "type": "doc"}, mode))
        assert out == {"relation": "owner", "type": "doc", "objects": ["doc:roadmap"], "truncated": False}
        out = json.loads(run(what, {"relation": "viewer", "type": "doc"}, mode))
        assert out["objects"] == ["doc:handbook"] and out["truncated"] is True  # max_objects=1
        for args in ({"relation": "viewer", "type": "secret"}, {"relation": "owner", "type": "user"}):
            msg = run(what, {"name": "what_can_i_access", "args": args, "id": "x", "type": "tool_call"}, mode)
            assert msg.status == "error" and "doc: viewer, owner" in msg.content
            assert "launch-codes" not in msg.content
    with acting_as(BOB):
        out = json.loads(run(what, {"relation": "owner", "type": "doc"}, mode))
    assert out["objects"] == ["doc:bob-salary"]


def test_a_relation_allowed_on_one_type_is_refused_on_another(fga):
    kit = AgentAuthToolkit(authorizer=fga, access={"doc": ["owner"], "secret": ["viewer"]})
    what = tools(kit)["what_can_i_access"]
    with acting_as(BOB):
        msg = what.invoke({"name": "what_can_i_access", "args": {"relation": "owner", "type": "secret"}, "id": "x",
                           "type": "tool_call"})
    assert msg.status == "error" and "secret: viewer" in msg.content


# --------------------------------------------------------------------------- approvals


def _arun(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


@pytest.mark.parametrize("mode", MODES)
def test_pending_approvals_are_the_users_own_and_cancel_marks_a_ciba_request(mode, idp, approver, store):
    TRANSFERS.clear()
    agent = waiting_agent(approver, store)
    cfg_alice = start_waiting(agent, ALICE, f"alice-{mode}")
    start_waiting(agent, BOB, f"bob-{mode}")
    wait_until(lambda: idp.pending_approvals("alice") and idp.pending_approvals("bob"))
    kit = AgentAuthToolkit(approvers=[approver])
    t = tools(kit)
    with acting_as(ALICE):
        (mine,) = json.loads(run(t["my_pending_approvals"], {}, mode))
    with acting_as(BOB):
        (bobs,) = json.loads(run(t["my_pending_approvals"], {}, mode))
    assert mine["tool"] == "transfer" and mine["channel"] == "your device" and mine["handle"] != bobs["handle"]
    assert set(mine) <= {"handle", "tool", "channel", "what", "requested_at", "expires_at"}

    # bob cannot cancel alice's request with her handle
    with acting_as(BOB):
        msg = run(t["cancel_approval"], {"name": "cancel_approval", "args": {"handle": mine["handle"]}, "id": "x",
                                         "type": "tool_call"}, mode)
    assert msg.status == "error" and "no pending approval" in msg.content
    with acting_as(ALICE):
        assert len(json.loads(run(t["my_pending_approvals"], {}, mode))) == 1
        out = json.loads(run(t["cancel_approval"], {"handle": mine["handle"]}, mode))
        assert out["status"] == "cancelled" and out["cancelled_at_provider"] is False
        assert json.loads(run(t["my_pending_approvals"], {}, mode)) == []
        msg = run(t["cancel_approval"], {"name": "cancel_approval", "args": {"handle": mine["handle"]}, "id": "y",
                                         "type": "tool_call"}, mode)
        assert msg.status == "error"
    with acting_as(BOB):
        assert len(json.loads(run(t["my_pending_approvals"], {}, mode))) == 1  # bob's still waits

    # the local provider cannot cancel: alice approves on her phone anyway; the answer is ignored
    (pending,) = idp.pending_approvals("alice")
    idp.approve(pending["id"])
    resumer = ApprovalResumer(agent, approvers=[approver])
    for _ in range(3):
        resumer.run_once()
    state = agent.get_state(cfg_alice)
    assert not state.interrupts
    (msg,) = [m for m in state.values["messages"] if m.type == "tool"]
    assert msg.status == "error" and "The user withdrew this transfer request" in msg.content
    assert TRANSFERS == []


@pytest.mark.parametrize("mode", MODES)
def test_cancel_reaches_the_provider_through_the_hook(mode, idp, approver, store):
    seen: list[str] = []

    def cancel_at_provider(who: Any, auth_req_id: str) -> bool:
        assert who is approver
        seen.append(auth_req_id)
        return True

    agent = waiting_agent(approver, store)
    start_waiting(agent, ALICE, f"hook-{mode}")
    kit = AgentAuthToolkit(approvers=[approver], ciba_cancel=cancel_at_provider)
    with acting_as(ALICE):
        (mine,) = json.loads(run(tools(kit)["my_pending_approvals"], {}, mode))
        out = run(tools(kit)["cancel_approval"], {"handle": mine["handle"]}, mode)
    assert json.loads(out)["cancelled_at_provider"] is True and len(seen) == 1
    scan(out, mine, extra=tuple(seen))  # the auth_req_id reaches the hook, never the model


@pytest.mark.parametrize("mode", MODES)
def test_cancelled_in_app_approval_is_not_run_when_approved_later(mode, in_app, store):
    TRANSFERS.clear()
    agent = waiting_agent(in_app, store)
    cfg = start_waiting(agent, ALICE, f"inapp-{mode}")
    (pause,) = agent.get_state(cfg).interrupts
    kit = AgentAuthToolkit(approvers=[in_app])
    with acting_as(ALICE):
        (mine,) = json.loads(run(tools(kit)["my_pending_approvals"], {}, mode))
        assert mine["channel"] == "this app"
        run(tools(kit)["cancel_approval"], {"handle": mine["handle"]}, mode)
    approve = {"approval_id": pause.value["approval_id"], "decision": "approve"}
    result = agent.invoke(Command(resume=approve), cfg, context={"user": ALICE})
    (msg,) = [m for m in result["messages"] if m.type == "tool"]
    assert msg.status == "error" and "withdrew" in msg.content and TRANSFERS == []


def test_the_graphs_store_is_used_when_no_approver_is_given(in_app, store):
    from langchain.agents import create_agent

    from tests.adversarial.attacker import Attacker, call

    agent = waiting_agent(in_app, store)
    start_waiting(agent, ALICE, "graph-store")
    kit = AgentAuthToolkit(approval_store=None, include=None, approvers=[])
    assert "my_pending_approvals" not in tools(kit)  # nothing configured
    kit = AgentAuthToolkit(approval_store=store)
    model = Attacker(script=[call("my_pending_approvals", {}, "c1"), AIMessage("done")])
    lister = create_agent(model, kit.get_tools(), checkpointer=InMemorySaver(), store=store)
    result = lister.invoke({"messages": [("user", "what waits?")]}, {"configurable": {"thread_id": "l"}},
                           context={"user": ALICE})
    (msg,) = [m for m in result["messages"] if m.type == "tool"]
    assert [a["tool"] for a in json.loads(msg.content)] == ["transfer"]


@pytest.mark.parametrize("mode", MODES)
def test_no_secret_in_any_tool_output_or_log(mode, idp, vault, fga, approver, store, caplog):
    caplog.set_level("DEBUG")
    vault.import_token(ALICE, "calendar", access_token=SECRETS[0], refresh_token=SECRETS[1],
                       scopes=["calendar.read"], expires_at=time.time() + 3600)
    agent = waiting_agent(approver, store)
    start_waiting(agent, ALICE, f"scan-{mode}")
    kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"doc": ["viewer"]}, approvers=[approver])
    (record,) = [r for r, _ in kit._pending(ALICE)]
    auth_req_id = approver.approval_store(store).open(record)["auth_req_id"]
    t = tools(kit)
    outputs = []
    with acting_as(ALICE):
        outputs.append(run(t["whoami"], {}, mode))
        outputs.append(run(t["list_connections"], {}, mode))
        outputs.append(run(t["connect_account"], {"connection": "calendar"}, mode))
        outputs.append(run(t["what_can_i_access"], {"relation": "viewer", "type": "doc"}, mode))
        (pending,) = json.loads(run(t["my_pending_approvals"], {}, mode))
        outputs.append(pending)
        outputs.append(run(t["cancel_approval"], {"handle": pending["handle"]}, mode))
        outputs.append(run(t["disconnect_account"], {"connection": "calendar"}, mode))
    assert json.loads(outputs[2])["status"] == "connected" and json.loads(outputs[-1])["disconnected"] is True
    secrets_ = (auth_req_id, record.approval_id, idp.client_secret, idp.upstream_client_secret)
    scan(*outputs, extra=secrets_)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(s in logged for s in (*SECRETS, *secrets_))


def test_concurrent_cancels_and_an_in_app_answer_decide_once(in_app, store):
    """The cancel takes the approval's ``decide`` step by compare-and-set: of several
    deliveries at once, one cancels; an in-app answer arriving after it is not applied."""
    from concurrent.futures import ThreadPoolExecutor

    TRANSFERS.clear()
    agent = waiting_agent(in_app, store)
    cfg = start_waiting(agent, ALICE, "race")
    (pause,) = agent.get_state(cfg).interrupts
    kit = AgentAuthToolkit(approvers=[in_app])
    t = tools(kit)
    with acting_as(ALICE):
        (mine,) = json.loads(t["my_pending_approvals"].invoke({}))

    def cancel(i: int) -> Any:
        with acting_as(ALICE):
            return t["cancel_approval"].invoke({"name": "cancel_approval", "args": {"handle": mine["handle"]},
                                                "id": f"k{i}", "type": "tool_call"})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(cancel, range(6)))
    assert sum(1 for m in answers if m.status != "error") == 1
    agent.invoke(Command(resume={"approval_id": pause.value["approval_id"], "decision": "approve"}), cfg,
                 context={"user": ALICE})
    assert TRANSFERS == []
    slot = in_app.approval_store(store).cas.read(f"approval|{pause.value['approval_id']}|decide")
    assert slot is not None and slot.state == "decide"


@pytest.mark.parametrize("mode", MODES)
def test_hostile_and_malformed_arguments_get_a_refusal_not_a_crash(mode, vault, fga, in_app, store):
    agent = waiting_agent(in_app, store)
    start_waiting(agent, ALICE, f"hostile-{mode}")
    kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"doc": ["viewer"]}, approvers=[in_app])
    t = tools(kit)
    bad = [
        ("cancel_approval", {"handle": ""}), ("cancel_approval", {"handle": "apr_' OR 1=1 --"}),
        ("cancel_approval", {"handle": "apr_\u202e\u0000"}), ("cancel_approval", {"handle": "*"}),
        ("what_can_i_access", {"relation": None, "type": {"$ne": 1}}),
        ("what_can_i_access", {"relation": "viewer", "type": "doc\u200b"}),
        ("what_can_i_access", {"relation": "viewer" * 50, "type": "x" * 5000}),
        ("connect_account", {"connection": {"name": "calendar"}}), ("connect_account", {"connection": "../mail"}),
        ("connect_account", {"connection": "calendar", "scopes": "calendar.read admin"}),
    ]
    with acting_as(ALICE):
        for name, args in bad:
            msg = run(t[name], {"name": name, "args": args, "id": "h", "type": "tool_call"}, mode)
            assert isinstance(msg, ToolMessage) and msg.status == "error", (name, args)
            assert len(msg.content) < 300 and "x" * 100 not in msg.content
        # nothing was cancelled by any of it
        assert len(json.loads(run(t["my_pending_approvals"], {}, mode))) == 1


def test_an_answer_written_over_a_cancel_still_never_runs_the_tool(in_app, store):
    """A poll that read the record before the cancel may write its (approved) answer after
    it: the cancel holds the approval's ``run`` step for good, so the tool still never runs."""
    TRANSFERS.clear()
    agent = waiting_agent(in_app, store)
    cfg = start_waiting(agent, ALICE, "stale-write")
    (pause,) = agent.get_state(cfg).interrupts
    kit = AgentAuthToolkit(approvers=[in_app])
    t = tools(kit)
    with acting_as(ALICE):
        (mine,) = json.loads(t["my_pending_approvals"].invoke({}))
        (record,) = [r for r, _ in kit._pending(ALICE)]
        t["cancel_approval"].invoke({"handle": mine["handle"]})
    approvals = in_app.approval_store(store)
    approvals.put(record.update(status="approved", decision="approve", decided_at=time.time()))  # the stale write
    result = agent.invoke(Command(resume={"approval_id": pause.value["approval_id"], "decision": "approve"}), cfg,
                          context={"user": ALICE})
    (msg,) = [m for m in result["messages"] if m.type == "tool"]
    assert msg.status == "error" and "withdrew" in msg.content and TRANSFERS == []
