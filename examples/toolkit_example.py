"""Toolkit: ready-made tools the agent uses about its own user (AgentAuthToolkit).

1. ``whoami`` and ``list_connections``: who alice is, which accounts she connected;
2. ``connect_account``: the run pauses with the vault's ``connect_account``; alice's browser
   connects her calendar at the demo upstream; the run resumes;
3. ``what_can_i_access``: the documents alice can view (fga); a type outside the toolkit's
   allow-list is refused;
4. a transfer waits for alice's OK on her phone (CIBA); in another conversation she asks what
   waits (``my_pending_approvals``) and withdraws it (``cancel_approval``); she then approves
   on her phone anyway: the answer is ignored, the transfer never runs;
5. ``disconnect_account``: the calendar is revoked at the upstream and deleted.

Every tool acts for the trusted user of the call (``context={"user": alice}``); none takes a
user id, a token or an approval id from the model.

    python examples/toolkit_example.py                  # provider in-process
    agent-auth dev &  python examples/toolkit_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator

from _common import (
    Browser,
    LoopbackServer,
    Phone,
    ScriptedModel,
    Transcript,
    calls,
    chat_model,
    parse_args,
    provider,
    say,
)
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from langchain_agent_auth import (
    AgentAuthToolkit,
    CIBAApprover,
    Connection,
    EmbeddedAuthorizer,
    Keyring,
    OAuthClient,
    TokenVault,
    UserIdentity,
)
from langchain_agent_auth.approval import ApprovalMiddleware, ApprovalResumer
from langchain_agent_auth.vault import callback_app, open_default_store

DOCS = """
model
  schema 1.1
type user
type document
  relations
    define viewer: [user]
type payroll
  relations
    define viewer: [user]
"""

TRANSFERS: list[str] = []


@tool
def transfer(amount: int, to: str) -> str:
    """Transfer euros from the user's bank account."""
    TRANSFERS.append(to)
    return f"sent {amount} EUR to {to}"


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp, tempfile.TemporaryDirectory() as tmp, LoopbackServer() as web:
        alice = UserIdentity(subject="alice", issuer=idp.issuer, name="Alice", email="alice@example.com")
        keyring = Keyring.generate()
        store = open_default_store(f"{tmp}/agent_auth.sqlite")  # vault records and pending approvals
        vault = TokenVault([Connection("calendar", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                                       client_secret=idp.upstream_client_secret, scopes=["calendar.read"],
                                       redirect_uri=f"{web.url}/callback")], store=store, keyring=keyring)
        web.start(callback_app(vault, resolve_user=lambda request: alice))
        fga = EmbeddedAuthorizer(DOCS)
        fga.write([("user:alice", "viewer", "document:handbook"), ("user:alice", "viewer", "document:roadmap"),
                   ("user:bob", "viewer", "payroll:2030")])
        ciba = CIBAApprover(OAuthClient(idp.issuer, idp.client_id, idp.client_secret),
                            binding_message="Pay {amount} EUR to {to}", keyring=keyring, store=store)

        kit = AgentAuthToolkit(vault=vault, authorizer=fga, access={"document": ["viewer"]}, approvers=[ciba])
        say("toolkit", "tools: " + ", ".join(t.name for t in kit.get_tools()))

        handle: dict[str, str] = {}

        def script() -> Iterator[AIMessage]:
            yield calls(("whoami", {}))
            yield calls(("list_connections", {}))
            yield calls(("connect_account", {"connection": "calendar"}))
            yield calls(("what_can_i_access", {"relation": "viewer", "type": "document"}))
            yield calls(("what_can_i_access", {"relation": "viewer", "type": "payroll"}))
            yield calls(("transfer", {"amount": 250, "to": "Bob"}))
            yield calls(("my_pending_approvals", {}))
            yield calls(("cancel_approval", {"handle": handle["value"]}))  # read when the turn is played
            yield calls(("disconnect_account", {"connection": "calendar"}))

        # the script is played lazily (its cancel turn uses the handle alice was shown)
        model = chat_model(args, []) if args.model else ScriptedModel(messages=script())
        agent = create_agent(model, [*kit.get_tools(), transfer],
                             middleware=[ApprovalMiddleware({"transfer": ciba})],
                             checkpointer=InMemorySaver(), store=store)
        chat = {"configurable": {"thread_id": "chat"}}
        payments = {"configurable": {"thread_id": "payments"}}
        context = {"user": alice}  # the trusted user; the model never names one
        transcript = Transcript("alice")

        # 1. Who am I, what is connected.
        transcript.run(agent, {"messages": [("user", "Who am I?")]}, chat, context=context)
        transcript.run(agent, {"messages": [("user", "Which accounts did I connect?")]}, chat, context=context)

        # 2. Connect: the vault's connect_account pause; alice's browser; resume.
        result = transcript.run(agent, {"messages": [("user", "Connect my calendar.")]}, chat, context=context)
        pause = result["__interrupt__"][0].value
        say("vault", f"connect_account: {pause['connection']} ({pause['status']}); alice opens the link")
        with Browser("alice", idp.users["alice"]) as browser:
            browser.open(pause["authorize_url"])
        transcript.run(agent, Command(resume={}), chat, context=context)

        # 3. What can I access (fga), within the allow-list only.
        transcript.run(agent, {"messages": [("user", "Which documents can I read?")]}, chat, context=context)
        transcript.run(agent, {"messages": [("user", "And the payroll?")]}, chat, context=context)

        # 4. A transfer waits for alice's OK; she withdraws it from the other conversation.
        result = transcript.run(agent, {"messages": [("user", "Pay Bob 250 euros.")]}, payments, context=context)
        waiting = transcript.run(agent, {"messages": [("user", "What waits for my OK?")]}, chat, context=context)
        handle["value"] = json.loads(waiting["messages"][-2].content)[0]["handle"]
        transcript.run(agent, {"messages": [("user", "Withdraw it.")]}, chat, context=context)
        with Phone(idp.approval_url, "alice", idp.users["alice"]) as phone:
            phone.approve(result["__interrupt__"][0].value["binding_message"])
        say("alice", "approves on her phone anyway")
        resumer = ApprovalResumer(agent, approvers=[ciba])
        deadline = time.monotonic() + 30
        while agent.get_state(payments).interrupts and time.monotonic() < deadline:
            if not resumer.run_once().resumed_items:
                time.sleep(0.2)
        transcript.show(agent.get_state(payments).values)
        say("bank", f"transfers made: {len(TRANSFERS)}")

        # 5. Disconnect.
        transcript.run(agent, {"messages": [("user", "Disconnect my calendar.")]}, chat, context=context)
        say("vault", f"alice's calendar now: {vault.status(alice, 'calendar').status}")


if __name__ == "__main__":
    main()
