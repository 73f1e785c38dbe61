"""Live progress: what a streaming client sees while the agent waits for the user.

Guards that wait write typed ``agent_auth_progress`` events to LangGraph's custom stream
(``stream_mode="custom"``): what is awaited, for which tool, until when, and when the
provider is asked next. A chat UI (or ``langgraph dev``'s) shows them as a spinner with the
time left. No token, secret or CIBA ``auth_req_id`` is ever in them.

1. "Pay Bob 250 euros" with a CIBA approval in ``block`` mode: the tool call waits inline,
   polling the provider; each poll streams a ``waiting`` event; alice approves on her phone;
   the last event says ``approved`` and the transfer runs, all in one streamed run.
2. "Email the report" with an in-app approval (``interrupt`` mode), streamed with
   ``astream``: one ``paused`` event with the request's expiry, then the run pauses.

    python examples/streaming_example.py                  # provider in-process
    agent-auth dev --ciba-interval 1 &  python examples/streaming_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
from _common import Phone, calls, chat_model, parse_args, provider, say
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth import Keyring, OAuthClient, UserIdentity, WaitProgress, is_progress
from langchain_agent_auth.approval import ApprovalMiddleware, CIBAApprover, InAppApprover, get_approval_token


def payment(tool_name: str, args: dict) -> list[dict]:
    """RAR authorization_details: the exact payment alice approves (the bank API checks it)."""
    return [{"type": "payment_initiation", "instructedAmount": {"amount": f"{args['amount']}.00", "currency": "EUR"},
             "creditorName": args["to"]}]


def tools(api_url: str) -> list:
    @tool
    def transfer(amount: int, to: str) -> str:
        """Transfer euros from the user's bank account."""
        token = get_approval_token(required=True)
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


def time_left(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def show(chunk: dict) -> None:
    """What a UI does with a progress event: a status line with the time left."""
    if not is_progress(chunk):
        return
    event = WaitProgress.model_validate(chunk)
    if event.state in ("waiting", "paused"):
        left = time_left(event.seconds_left)
        poll = ", next check scheduled" if event.next_check_at else ""
        say("progress", f"{event.state} {event.kind} for {event.tool} ({left} left{poll}): {event.message}")
    else:
        say("progress", f"{event.state}: {event.message}")


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp:
        alice = UserIdentity(subject="alice", issuer=idp.issuer)
        keyring = Keyring.generate()
        ciba = CIBAApprover(OAuthClient(idp.issuer, idp.client_id, idp.client_secret), audience=idp.api_audience,
                            authorization_details=payment, binding_message="Pay {amount} EUR to {to}", keyring=keyring)
        agent = create_agent(
            chat_model(args, [calls(("transfer", {"amount": 250, "to": "Bob"})),
                              calls(("send_email", {"to": "team@example.com", "subject": "Q3 report"}))]),
            tools(idp.api_url),
            middleware=[ApprovalMiddleware({"transfer": {"approver": ciba, "mode": "block"},
                                            "send_email": InAppApprover(keyring=keyring)})],
            checkpointer=InMemorySaver(), store=InMemoryStore())
        config = {"configurable": {"thread_id": "streaming-demo"}}

        # 1. block mode: the run waits inline and streams its progress.
        def phone() -> None:
            with Phone(idp.approval_url, "alice", idp.users["alice"]) as device:
                device.wait_for("Pay 250 EUR to Bob", timeout=30)
                time.sleep(1.5)  # let a poll or two happen first
                device.approve("Pay 250 EUR to Bob")
            say("alice", "approves 'Pay 250 EUR to Bob' on her phone")

        say("alice", "Pay Bob 250 euros.")
        approver = threading.Thread(target=phone)
        approver.start()
        for mode, chunk in agent.stream({"messages": [("user", "Pay Bob 250 euros.")]}, config,
                                        context={"user": alice}, stream_mode=["custom", "updates"]):
            if mode == "custom":
                show(chunk)
            elif "tools" in chunk:
                for message in chunk["tools"]["messages"]:
                    say("tool", f"{message.name} -> {message.content}")
        approver.join()

        # 2. interrupt mode, async: one "paused" event, then the run stops until alice answers.
        async def email() -> None:
            say("alice", "Email the Q3 report to the team.")
            async for mode, chunk in agent.astream({"messages": [("user", "Email the Q3 report.")]}, config,
                                                   context={"user": alice}, stream_mode=["custom", "updates"]):
                if mode == "custom":
                    show(chunk)
                elif "__interrupt__" in chunk:
                    say("paused", f"{chunk['__interrupt__'][0].value['type']}: the run waits for alice's answer")

        asyncio.run(email())


if __name__ == "__main__":
    main()
