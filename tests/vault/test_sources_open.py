"""Open sources and the shared refusal policy.

* A source kind registered with ``register_source`` works end to end (token, status,
  listing, revoke answer) without the vault knowing its class.
* ``on_refusal="raise"`` makes the vault guard raise the typed error instead of answering
  the model; pending connect records are written from their typed model.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.errors import ConfigurationError, CredentialUnavailableError, IdentityError
from langchain_agent_auth.identity import UserIdentity, acting_as
from langchain_agent_auth.vault import (
    AccessToken,
    Connection,
    CredentialSource,
    TokenVault,
    VaultMiddleware,
    get_access_token,
    register_source,
    source_kinds,
    with_vault,
)
from langchain_agent_auth.vault._records import PENDING_NS, PendingRecord
from tests.vault.conftest import ALICE
from tests.vault.graphs import agent, ask, calendar_tools, interrupts


class _ApiKeySource(CredentialSource):
    """Every user gets the same static key (a test double for an in-house secret store)."""

    kind = "test-api-key"

    def token_op(self, query):
        return AccessToken(f"key-for-{query.user_key}", connection=self.connection.name, scopes=query.scopes)
        yield  # pragma: no cover


register_source("test-api-key", _ApiKeySource, replace=True)


def _vault() -> TokenVault:
    conn = Connection("internal", source="test-api-key", issuer="https://internal.example", client_id="agent",
                      auth_method="none")
    return TokenVault([conn], store=InMemoryStore(), keyring=Keyring.generate())


def test_a_registered_source_serves_tokens_sync_and_async():
    vault = _vault()
    bob = UserIdentity(subject="bob")
    assert "test-api-key" in source_kinds()
    assert vault.get_token(bob, "internal", ["read"]).token == f"key-for-{bob.key}"
    assert asyncio.run(vault.aget_token(bob, "internal")).connection == "internal"
    assert vault.status(bob, "internal").status == "active"
    assert [(c.name, c.status) for c in vault.connections(bob)] == [("internal", "external")]
    assert vault.revoke(bob, "internal").deleted is False
    with pytest.raises(ConfigurationError, match="no connect flow"):
        vault.start_connect(bob, "internal")


def test_registering_is_explicit():
    with pytest.raises(ConfigurationError, match="already registered"):
        register_source("oauth", _ApiKeySource)
    with pytest.raises(ConfigurationError, match="unknown source"):
        Connection("x", source="nope", issuer="https://i.example", client_id="agent")


def test_a_registered_source_reaches_a_guarded_tool():
    @tool
    def whoami() -> str:
        """Which key the tool got."""
        return get_access_token().removeprefix("key-for-")

    vault = _vault()
    with acting_as(UserIdentity(subject="carol")):
        assert with_vault(whoami, vault, connection="internal").invoke({}) == UserIdentity(subject="carol").key


def test_on_refusal_raise_raises_the_typed_error(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    wrapped = with_vault(tools["list_events"], vault, connection="calendar", on_refusal="raise")
    with pytest.raises(IdentityError):  # no user: refused, and under "raise" the error propagates
        wrapped.invoke({"day": "monday"})
    assert with_vault(tools["list_events"], vault, connection="calendar").invoke({"day": "monday"}).startswith(
        "I don't know who the user is")


def test_on_refusal_raise_on_cancel(vault, upstream):
    tools = calendar_tools(upstream.api_url)
    middleware = VaultMiddleware(vault, {"list_events": "calendar"}, on_refusal="raise")
    assert all(g.on_refusal == "raise" for g in middleware.guards)
    graph = agent([tools["list_events"]], [middleware], InMemorySaver())
    cfg, ctx = {"configurable": {"thread_id": "r1"}}, {"user": ALICE}
    assert interrupts(graph.invoke({"messages": [ask("list_events", day="monday")]}, cfg, context=ctx))
    from langgraph.types import Command

    with pytest.raises(CredentialUnavailableError):
        graph.invoke(Command(resume={"action": "cancel"}), cfg, context=ctx)


def test_pending_connect_records_are_written_from_their_model(vault):
    request = vault.start_connect(ALICE, "calendar", ["calendar.read"], thread_id="t1", tool_call_id="c1")
    item = vault.store.get(PENDING_NS, request.id)
    record = PendingRecord.model_validate(item.value)
    assert record.status == "pending" and record.identity is not None and record.identity.subject == "alice"
    assert record.to_value() == item.value
    assert "verifier" not in str(item.value)  # sealed
