"""Approval: the agent asks the user before it acts, on their phone (CIBA) or in the app.

1. "Pay Bob 250 euros": the transfer needs alice's approval. The agent sends an OpenID CIBA
   request (a binding message and RAR ``authorization_details``: exactly this payment) and
   the run pauses (``approval_pending``). alice approves on her phone (the provider's
   approval page); the resumer sees the approval and resumes the run; the tool pays with the
   approval's token, which the bank API honours for this payment only, once.
2. "Pay Mallory 5000 euros": alice denies, with a reason (here through the provider's admin
   API, as ``agent-auth approvals deny`` does); the tool never runs.
3. "Email the report to everyone": an in-app approval (``tool_approval`` pause); the app shows
   the call, alice narrows the recipients, and the edited call is what runs.
4. The audit trail the store kept: who decided what, for which arguments (their digest), and
   what ran (``docs/audit.md``).

    python examples/approval_example.py                  # provider in-process
    agent-auth dev --ciba-interval 1 &  python examples/approval_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import time

import httpx
from _common import Phone, Transcript, calls, chat_model, parse_args, provider, run_id, say
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.types import Command

from langchain_agent_auth import Keyring, OAuthClient, StoreAuditSink, UserIdentity, audit_sink, read_audit
from langchain_agent_auth.approval import (
    ApprovalMiddleware,
    ApprovalResumer,
    CIBAApprover,
    InAppApprover,
    get_approval_token,
)
from langchain_agent_auth.storage import open_storage


def payment(tool_name: str, args: dict) -> list[dict]:
    """RAR authorization_details: what the user approves, and all the token will allow."""
    return [{"type": "payment_initiation", "instructedAmount": {"amount": f"{args['amount']}.00", "currency": "EUR"},
             "creditorName": args["to"]}]


def tools(api_url: str) -> list:
    @tool
    def transfer(amount: int, to: str) -> str:
        """Transfer euros from the user's bank account."""
        token = get_approval_token(required=True)  # issued with the approval, reachable only here
        r = httpx.post(f"{api_url}/bank/transfers", json={"amount": f"{amount}.00", "currency": "EUR",
                                                           "creditorName": to},
                       headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
        r.raise_for_status()
        return f"sent {r.json()['amount']} EUR to {to}"

    @tool
    def send_email(to: str, subject: str) -> str:
        """Send an email."""
        return f"emailed {subject!r} to {to}"

    return [transfer, send_email]


def wait_and_resume(resumer: ApprovalResumer, agent, config: dict) -> None:
    """What `agent-auth resumer` does in production: poll the provider, resume waiting threads."""
    deadline = time.monotonic() + 30
    while agent.get_state(config).interrupts and time.monotonic() < deadline:
        if not resumer.run_once().resumed_items:
            time.sleep(0.2)


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp, open_storage(args.store) as storage, audit_sink(StoreAuditSink(storage.store)):
        alice = UserIdentity(subject="alice", issuer=idp.issuer)  # signed in to our app
        keyring = Keyring.generate()  # seals pending approvals in the store (default: a key file)
        ciba = CIBAApprover(
            OAuthClient(idp.issuer, idp.client_id, idp.client_secret),
            audience=idp.api_audience,  # the approval's token is for the bank API...
            authorization_details=payment,  # ...and covers this payment only
            binding_message="Pay {amount} EUR to {to}",
            keyring=keyring,
        )
        agent = create_agent(
            chat_model(args, [
                calls(("transfer", {"amount": 250, "to": "Bob"})),
                calls(("transfer", {"amount": 5000, "to": "Mallory"})),
                calls(("send_email", {"to": "everyone@example.com", "subject": "Q3 report"})),
            ]),
            tools(idp.api_url),
            middleware=[ApprovalMiddleware({"transfer": ciba, "send_email": InAppApprover(keyring=keyring)})],
            checkpointer=storage.checkpointer,
            store=storage.store,  # pending approvals (one CIBA request per call, however often it re-runs)
        )
        resumer = ApprovalResumer(agent, approvers=[ciba])
        config = {"configurable": {"thread_id": f"approval-demo{run_id(args)}"}}
        context = {"user": alice}
        transcript = Transcript("alice")

        # 1. CIBA, approved on the phone.
        result = transcript.run(agent, {"messages": [("user", "Pay Bob 250 euros.")]}, config, context=context)
        pending = result["__interrupt__"][0].value
        say("approval", f"CIBA request on alice's phone: {pending['binding_message']!r}, "
                        f"details: {pending['authorization_details'][0]['type']}")
        with Phone(idp.approval_url, "alice", idp.users["alice"]) as phone:
            phone.approve(pending["binding_message"])
        say("alice", "approves on her phone (the provider's approval page)")
        wait_and_resume(resumer, agent, config)
        transcript.show(agent.get_state(config).values)

        # 2. CIBA, denied.
        result = transcript.run(agent, {"messages": [("user", "Pay Mallory 5000 euros.")]}, config, context=context)
        message = result["__interrupt__"][0].value["binding_message"]
        [request] = [r for r in idp.pending_approvals("alice") if r["binding_message"] == message]
        idp.deny(request["id"], "I don't know Mallory")
        say("alice", f"denies {message!r}: I don't know Mallory")
        wait_and_resume(resumer, agent, config)
        transcript.show(agent.get_state(config).values)

        # 3. In-app: the app shows the call; alice edits it; the edited call runs.
        result = transcript.run(agent, {"messages": [("user", "Email the Q3 report to everyone.")]}, config,
                                context=context)
        pause = result["__interrupt__"][0]
        say("app", f"asks alice: {pause.value['tool']}({pause.value['args']})? "
                   f"({' / '.join(pause.value['allowed_decisions'])})")
        edited = {**pause.value["args"], "to": "team@example.com"}
        say("alice", f"edits the recipient: {edited['to']}")
        answer = {pause.id: {"approval_id": pause.value["approval_id"], "decision": "edit", "args": edited}}
        transcript.run(agent, Command(resume=answer), config, context=context)

        # 4. The audit trail: the store sink kept every decision (a SqliteStore in an app:
        # `agent-auth audit` shows it).
        for event in read_audit(storage.store, thread_id=config["configurable"]["thread_id"]):
            if event.kind in ("approval_decided", "approval_executed"):
                say("audit", f"{event.kind} {event.tool} {event.outcome} ({event.channel}) "
                             f"by {event.user.rsplit('|', 1)[-1]}, args {event.args_digest[:19]}")


if __name__ == "__main__":
    main()
