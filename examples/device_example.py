"""Device authorization (RFC 8628): a CLI agent without a browser signs its user in.

1. The agent's graph starts with a sign-in node. ``DeviceAuthorizer`` asks the provider for a
   user code and the run pauses (``device_authorization``): "open <verification URI> and
   enter <code>". A streaming client also gets a progress event with the time left.
2. alice opens the page on her phone, signs in, checks the code and approves.
3. The resumer (``ApprovalResumer`` with ``DevicePendingSource``) polls the provider,
   respecting its interval, and resumes the run: the node verifies the ID token and the agent
   now acts for alice. The device code and tokens never reach the checkpoint or the payload.
4. A second sign-in that bob denies ends with ``AccessDeniedError`` in the node.

    python examples/device_example.py                  # provider in-process
    agent-auth dev &  python examples/device_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import time

from _common import parse_args, provider, say
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from langchain_agent_auth import JWTVerifier, Keyring, OAuthClient, WaitProgress, is_progress
from langchain_agent_auth.approval import ApprovalResumer
from langchain_agent_auth.errors import AgentAuthError
from langchain_agent_auth.identity import DeviceAuthorizer, DevicePendingSource


class State(TypedDict, total=False):
    user: str
    refused: str


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp:
        store = InMemoryStore()  # shared by the graph and the resumer (a SqliteStore across processes)
        authorizer = DeviceAuthorizer(OAuthClient(idp.issuer, idp.client_id, idp.client_secret),
                                      scope="openid profile", store=store, keyring=Keyring.generate())
        id_tokens = JWTVerifier(idp.issuer, audience=idp.client_id, token_type="id", client_id=idp.client_id)

        def sign_in(state: State) -> State:
            try:
                return {"user": authorizer.sign_in(id_tokens).subject}
            except AgentAuthError as exc:  # the user said no, or the code expired
                return {"refused": type(exc).__name__}

        builder = StateGraph(State)
        builder.add_node("sign_in", sign_in)
        builder.add_edge(START, "sign_in")
        builder.add_edge("sign_in", END)
        cli = builder.compile(checkpointer=InMemorySaver(), store=store)
        resumer = ApprovalResumer(cli, sources=[DevicePendingSource(authorizer)], store=store)

        for n, (who, deny) in enumerate([("alice", False), ("bob", True)], 1):
            thread = {"configurable": {"thread_id": f"cli-{n}"}}
            for mode, chunk in cli.stream({}, thread, stream_mode=["custom", "updates"]):
                if mode == "custom" and is_progress(chunk):
                    event = WaitProgress.model_validate(chunk)
                    say("progress", f"{event.state} {event.kind}: code {event.user_code}, "
                                    f"{(event.seconds_left or 0) // 60} min left")
            pause = cli.get_state(thread).interrupts[0].value
            say("paused", f"{pause['type']}: {pause['message']}")
            idp.approve_device(pause["verification_uri"], pause["user_code"], who, deny=deny)
            say(who, f"{'denies' if deny else 'approves'} code {pause['user_code']} on the provider's device page")
            deadline = time.monotonic() + 60
            while cli.get_state(thread).interrupts and time.monotonic() < deadline:
                if not resumer.run_once().resumed_items:
                    time.sleep(0.2)
            values = cli.get_state(thread).values
            if "user" in values:
                token = authorizer.token(authorizer.get(pause["device_id"]))  # for the node only
                saved = repr(list(cli.get_state_history(thread)))
                say("identity", f"signed in as {values['user']} (ID token verified); a token in the checkpoints: "
                                f"{token.id_token in saved or token.access_token in saved}")
            else:
                say("identity", f"sign-in refused: {values.get('refused')}")


if __name__ == "__main__":
    main()
