"""All four pillars in one agent: alice's assistant reads an invoice, pays it and books a reminder.

* identity: alice and bob sign in at the OpenID provider; the agent verifies their tokens
  and every tool acts for the verified user;
* fga: reading a document needs ``viewer`` on it (alice may read the invoice, bob may not);
* approval: paying needs alice's approval on her phone (CIBA, bound to this payment);
* vault: the calendar needs alice's calendar account, connected once through the upstream's
  consent page, its token kept encrypted and handed to the tool only.

One resumer resumes the run after whatever alice completed: an approval or a connected account.

    python examples/combined_example.py                  # provider in-process
    agent-auth dev --ciba-interval 1 &  python examples/combined_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import time

import httpx
from _common import Browser, LoopbackServer, Phone, Transcript, calls, chat_model, parse_args, provider, run_id, say
from langchain.agents import create_agent
from langchain_core.tools import tool

from langchain_agent_auth import (
    AuthContext,
    Connection,
    EmbeddedAuthorizer,
    FGAMiddleware,
    IdentityMiddleware,
    JWTVerifier,
    Keyring,
    OAuthClient,
    TokenResolver,
    TokenVault,
    UserIdentity,
    VaultMiddleware,
    vault_auth,
)
from langchain_agent_auth.approval import ApprovalMiddleware, ApprovalResumer, CIBAApprover, get_approval_token
from langchain_agent_auth.storage import open_storage
from langchain_agent_auth.vault import ConnectPendingSource, callback_app

API = "urn:example:api"
DOCS = {"invoice-42": "Invoice 42 from Bob: 250 EUR for the logo, due 2030-01-04."}
FGA_MODEL = """
model
  schema 1.1
type user
type document
  relations
    define viewer: [user]
"""


def make_tools(api_url: str) -> list:
    @tool
    def read_doc(doc_id: str) -> str:
        """Read one of the user's documents."""
        return DOCS.get(doc_id, "no such document")

    @tool
    def transfer(amount: int, to: str) -> str:
        """Transfer euros from the user's bank account."""
        token = get_approval_token(required=True)
        r = httpx.post(f"{api_url}/bank/transfers", timeout=10,
                       json={"amount": f"{amount}.00", "currency": "EUR", "creditorName": to},
                       headers={"Authorization": f"Bearer {token.access_token}"})
        r.raise_for_status()
        return f"sent {r.json()['amount']} EUR to {to}"

    @tool
    def add_event(title: str, start: str) -> str:
        """Add an event to the user's calendar."""
        with httpx.Client(auth=vault_auth(), timeout=10) as http:
            http.post(f"{api_url}/calendar/events", json={"title": title, "start": start}).raise_for_status()
        return f"added {title!r} on {start}"

    return [read_doc, transfer, add_event]


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp, LoopbackServer() as web, open_storage(args.store) as storage:
        keyring = Keyring.generate()
        alice = UserIdentity(subject="alice", issuer=idp.issuer)
        tokens = {name: idp.login(name, scope="openid", resource=API)["access_token"] for name in ("alice", "bob")}
        say("provider", "alice and bob signed in (authorization code + PKCE); the app holds their tokens")

        fga = EmbeddedAuthorizer(FGA_MODEL, on_decision=lambda d: say(
            "fga", f"{d.user} {d.relation} {d.object}: {'allowed' if d.allowed else 'denied'}"))
        fga.write([("user:alice", "viewer", "document:invoice-42")])
        vault = TokenVault(
            [Connection("calendar", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                        client_secret=idp.upstream_client_secret, scopes=["calendar.write"],
                        redirect_uri=f"{web.url}/callback")],
            store=storage.store, keyring=keyring)
        web.start(callback_app(vault, resolve_user=lambda request: alice))  # alice is signed in to our web app
        ciba = CIBAApprover(
            OAuthClient(idp.issuer, idp.client_id, idp.client_secret), audience=idp.api_audience,
            binding_message="Pay {amount} EUR to {to}", keyring=keyring,
            authorization_details=lambda tool_name, a: [{
                "type": "payment_initiation", "creditorName": a["to"],
                "instructedAmount": {"amount": f"{a['amount']}.00", "currency": "EUR"}}],
        )

        agent = create_agent(
            chat_model(args, [
                calls(("read_doc", {"doc_id": "invoice-42"})),  # alice
                calls(("transfer", {"amount": 250, "to": "Bob"})),  # alice
                calls(("add_event", {"title": "Invoice 42 paid", "start": "2030-01-04T09:00"})),  # alice
                calls(("read_doc", {"doc_id": "invoice-42"})),  # bob
            ]),
            make_tools(idp.api_url),
            middleware=[
                IdentityMiddleware([TokenResolver(JWTVerifier(idp.issuer, audience=API))]),
                FGAMiddleware(fga, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}}),
                ApprovalMiddleware({"transfer": ciba}),
                VaultMiddleware(vault, {"add_event": "calendar"}),
            ],
            context_schema=AuthContext,
            checkpointer=storage.checkpointer,
            store=storage.store,
        )
        # Resumes threads whose approval was decided or whose account got connected (`agent-auth resumer`).
        resumer = ApprovalResumer(agent, approvers=[ciba], sources=[ConnectPendingSource(vault)])

        def resume(config: dict) -> None:
            deadline = time.monotonic() + 30
            while agent.get_state(config).interrupts and time.monotonic() < deadline:
                if not resumer.run_once().resumed_items:
                    time.sleep(0.2)

        config = {"configurable": {"thread_id": f"alice{run_id(args)}"}}
        context = {"access_token": tokens["alice"]}
        transcript = Transcript("alice")
        transcript.run(agent, {"messages": [("user", "What does invoice 42 say?")]}, config, context=context)
        say("identity", f"this thread acts for {agent.get_state(config).values['user']['subject']!r} "
                        "(from the verified token, not from the model)")

        result = transcript.run(agent, {"messages": [("user", "Pay it.")]}, config, context=context)
        message = result["__interrupt__"][0].value["binding_message"]
        with Phone(idp.approval_url, "alice", idp.users["alice"]) as phone:
            phone.approve(message)
        say("alice", f"approves {message!r} on her phone")
        resume(config)
        transcript.show(agent.get_state(config).values)

        result = transcript.run(agent, {"messages": [("user", "Remind me in my calendar.")]}, config,
                                context=context)
        with Browser("alice", idp.users["alice"]) as browser:
            browser.open(result["__interrupt__"][0].value["authorize_url"])
        say("alice", "connects her calendar (upstream sign-in and consent, then our callback)")
        resume(config)
        transcript.show(agent.get_state(config).values)

        Transcript("bob").run(agent, {"messages": [("user", "What does invoice 42 say?")]},
                              {"configurable": {"thread_id": f"bob{run_id(args)}"}},
                              context={"access_token": tokens["bob"]})


if __name__ == "__main__":
    main()
