"""Fixtures of the toolkit tests: the in-process local provider, a SQLite store, a vault on
the provider's demo upstream, an fga model, a CIBA approver, and an agent that makes alice
(or bob) wait for an approval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_agent_auth.approval import ApprovalMiddleware, CIBAApprover, InAppApprover
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.fga import EmbeddedAuthorizer
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.oauth import OAuthClient
from langchain_agent_auth.vault import Connection, TokenVault
from langchain_agent_auth.vault._vault import open_default_store

ALICE = UserIdentity(subject="alice", email="alice@example.com", name="Alice",
                     claims={"preferred_username": "alice", "locale": "en"})
BOB = UserIdentity(subject="bob", email="bob@example.com", name="Bob")

MODEL = """
model
  schema 1.1
type user
type doc
  relations
    define owner: [user]
    define viewer: [user] or owner
type secret
  relations
    define viewer: [user]
"""

#: side effects of the approval-guarded tool, to prove a cancelled approval never runs it
TRANSFERS: list[str] = []


@pytest.fixture(scope="module")
def module_idp() -> Iterator[Any]:
    from langchain_agent_auth.devserver import LocalProvider

    with LocalProvider(ciba_interval=1) as provider:
        yield provider


@pytest.fixture
def idp(module_idp: Any) -> Any:
    """The module's provider with no CIBA request left pending by an earlier test, so a test
    sees only its own requests in any test order."""
    for request in module_idp.pending_approvals():
        module_idp.deny(request["id"], "left by an earlier test")
    return module_idp


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def store(tmp_path) -> Any:
    return open_default_store(tmp_path / "agent_auth.sqlite")


@pytest.fixture
def vault(idp, store, keyring) -> TokenVault:
    return TokenVault([
        Connection("calendar", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                   client_secret=idp.upstream_client_secret, scopes=["calendar.read"],
                   redirect_uri="http://127.0.0.1:8765/callback"),
        Connection("mail", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                   client_secret=idp.upstream_client_secret, scopes=["mail.read"],
                   redirect_uri="http://127.0.0.1:8765/callback"),
    ], store=store, keyring=keyring)


@pytest.fixture
def fga() -> EmbeddedAuthorizer:
    authorizer = EmbeddedAuthorizer(MODEL)
    authorizer.write([("user:alice", "owner", "doc:roadmap"), ("user:alice", "viewer", "doc:handbook"),
                      ("user:bob", "owner", "doc:bob-salary"), ("user:bob", "viewer", "secret:launch-codes")])
    return authorizer


@pytest.fixture
def approver(idp, store, keyring) -> CIBAApprover:
    client = OAuthClient(idp.issuer, idp.client_id, idp.client_secret)
    return CIBAApprover(client, scope="openid", store=store, keyring=keyring, name="phone")


@pytest.fixture
def in_app(store, keyring) -> InAppApprover:
    return InAppApprover(store=store, keyring=keyring, name="in_app")


@tool
def transfer(amount: int, to: str) -> str:
    """Transfer money from the user's bank account."""
    TRANSFERS.append(f"{amount}->{to}")
    return f"sent {amount} to {to}"


def waiting_agent(approver: Any, store: Any) -> Any:
    """An agent whose ``transfer`` needs the user's approval; one call makes it wait."""
    from tests.adversarial.attacker import Attacker, call

    model = Attacker(script=[call("transfer", {"amount": 250, "to": "Carol"}, "t1"), AIMessage("ok")])
    return create_agent(model, [transfer], middleware=[ApprovalMiddleware({"transfer": approver})],
                        checkpointer=InMemorySaver(), store=store)


def start_waiting(agent: Any, user: UserIdentity, thread: str) -> dict[str, Any]:
    cfg = {"configurable": {"thread_id": thread}}
    result = agent.invoke({"messages": [("user", "pay Carol 250")]}, cfg, context={"user": user})
    assert result["__interrupt__"], "the transfer should wait for approval"
    return cfg


def run(tool: Any, args: Any, mode: str, **kwargs: Any) -> Any:
    """Invoke a tool sync or async (one code path: both must give the same answers)."""
    if mode == "sync":
        return tool.invoke(args, **kwargs)
    return asyncio.run(tool.ainvoke(args, **kwargs))


def wait_until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)
