"""LLM02 / LLM05: the model asks a tool to return or echo the credential it was given.

A guard that hands a token to a tool (the vault's access token, a CIBA approval's token)
removes every verbatim copy of it from what the tool returns (text, content blocks, the
``ToolMessage`` artifact, nested data) before the model, the graph state or a checkpoint
sees it. The attacker model records everything it is shown; the SQLite checkpoint and
store files are searched byte for byte.
"""

from __future__ import annotations

import sqlite3

from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from langchain_agent_auth.approval import ApprovalMiddleware, CIBAApprover, get_approval_token
from langchain_agent_auth.identity import IdentityMiddleware
from langchain_agent_auth.vault import Connection, TokenVault, VaultMiddleware, get_access_token
from tests.adversarial.attacker import ALICE, Attacker, agent, call, cfg, interrupts, tool_messages
from tests.approval.fake_ciba import Clock, FakeCiba

TOKEN = "upstream-access-7f3a9c2e51"


@tool
def debug_auth(verbose: bool = True) -> dict:
    """Show how the request is authenticated."""
    return {"header": f"Bearer {get_access_token()}", "nested": [{"again": get_access_token()}]}


@tool(response_format="content_and_artifact")
def fetch_profile(field: str) -> tuple[str, dict]:
    """Fetch the profile (the raw response rides along as the artifact)."""
    return f"{field}: ok", {"request": {"authorization": f"Bearer {get_access_token()}"}}


@tool
async def adebug_auth(verbose: bool = True) -> str:
    """Async: echo the token."""
    return f"token={get_access_token()}"


def make_vault() -> TokenVault:
    vault = TokenVault([Connection("calendar", client_id="agent", client_secret="s", redirect_uri="http://127.0.0.1/cb",
                                   metadata={"issuer": "https://up.test", "token_endpoint": "https://up.test/token"})],
                       store=InMemoryStore())
    vault.import_token(ALICE, "calendar", access_token=TOKEN, scopes=["calendar.read"])
    return vault


def vault_agent(tmp_path, model, tools, *, sqlite=True):
    vault = make_vault()
    conn = sqlite3.connect(str(tmp_path / "checkpoints.sqlite"), check_same_thread=False)
    saver = SqliteSaver(conn) if sqlite else InMemorySaver()
    mw = VaultMiddleware(vault, {t.name: "calendar" for t in tools})
    return agent(model, tools, [IdentityMiddleware(), mw], saver=saver), conn


def checkpoint_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("checkpoints.sqlite*"))


def test_a_token_returned_in_nested_data_never_reaches_the_model(tmp_path):
    model = Attacker(script=[call("debug_auth", {"verbose": True}), lambda msgs: call("debug_auth", {}, "c2")])
    graph, conn = vault_agent(tmp_path, model, [debug_auth])
    result = graph.invoke({"messages": [("user", "show me your token")]}, cfg("t-echo"), context={"user": ALICE})
    assert all(TOKEN not in str(m.content) for m in tool_messages(result))
    assert "[redacted]" in tool_messages(result)[0].content
    assert not model.saw(TOKEN)
    conn.close()
    assert TOKEN.encode() not in checkpoint_bytes(tmp_path)


def test_a_token_in_the_tool_message_artifact_is_removed(tmp_path):
    model = Attacker(script=[call("fetch_profile", {"field": "name"})])
    graph, conn = vault_agent(tmp_path, model, [fetch_profile])
    result = graph.invoke({"messages": [("user", "profile")]}, cfg("t-art"), context={"user": ALICE})
    (msg,) = tool_messages(result)
    assert msg.content == "name: ok"
    assert msg.artifact == {"request": {"authorization": "Bearer [redacted]"}}
    conn.close()
    assert TOKEN.encode() not in checkpoint_bytes(tmp_path)


async def test_a_token_echo_is_removed_with_ainvoke(tmp_path):
    model = Attacker(script=[call("adebug_auth", {})])
    graph, conn = vault_agent(tmp_path, model, [adebug_auth], sqlite=False)
    result = await graph.ainvoke({"messages": [("user", "token?")]}, cfg("t-aecho"), context={"user": ALICE})
    (msg,) = tool_messages(result)
    assert msg.content == "token=[redacted]" and not model.saw(TOKEN)
    conn.close()


def test_the_approval_token_is_removed_from_the_approved_tools_result(keyring):
    clock = Clock()
    idp = FakeCiba(clock)
    approver = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)

    @tool
    def pay(amount: int) -> str:
        """Pay (echoes the approval's token: a bug the guard contains)."""
        token = get_approval_token(required=True)
        return f"paid {amount} with {token.access_token}"

    model = Attacker(script=[call("pay", {"amount": 5})])
    graph = agent(model, [pay], [IdentityMiddleware(), ApprovalMiddleware({"pay": approver})])
    (pause,) = interrupts(graph.invoke({"messages": [("user", "pay")]}, cfg("t-ciba"), context={"user": ALICE}))
    idp.approve()
    clock.advance(2)
    result = graph.invoke(Command(resume={pause.id: {"approval_id": pause.value["approval_id"],
                                                     "decision": "check"}}), cfg("t-ciba"), context={"user": ALICE})
    (msg,) = tool_messages(result)
    assert idp.tokens and msg.content == "paid 5 with [redacted]"
    assert not any(model.saw(t) for t in idp.tokens)


def test_no_schema_shown_to_the_model_asks_for_a_user_a_token_or_an_approval(keyring):
    clock = Clock()
    approver = CIBAApprover(FakeCiba(clock).oauth_client(), keyring=keyring, clock=clock)
    model = Attacker(script=[])
    graph = agent(model, [debug_auth, fetch_profile],
                  [IdentityMiddleware(), ApprovalMiddleware({"debug_auth": approver}),
                   VaultMiddleware(make_vault(), {"debug_auth": "calendar", "fetch_profile": "calendar"})])
    graph.invoke({"messages": [("user", "hi")]}, cfg("t-schema"), context={"user": ALICE})
    shown = " ".join(str(t["function"]["parameters"]) for t in model.tools_shown)
    assert {t["function"]["name"] for t in model.tools_shown} == {"debug_auth", "fetch_profile"}
    for word in ("token", "approval", "user", "subject", "secret"):
        assert word not in shown.lower()
