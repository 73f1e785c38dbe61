"""Identity: the agent acts for the user a verified token names, never for whom the model says.

1. alice signs in at the OpenID provider (authorization code + PKCE through its login page);
2. the agent verifies her access token (signature, issuer, audience, expiry) on every run;
3. tools read the user with ``get_current_user()``;
4. when the model tries to act for bob, the identity guard refuses the call; with bob's
   token the same agent acts for bob;
5. a forged token gets no run at all.

    python examples/identity_example.py                  # provider in-process
    agent-auth dev &  python examples/identity_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import json

from _common import Transcript, calls, chat_model, parse_args, provider, say
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_agent_auth import (
    AuthContext,
    IdentityMiddleware,
    JWTVerifier,
    TokenResolver,
    get_current_user,
)
from langchain_agent_auth.errors import AgentAuthError

API = "urn:example:api"  # the audience our agent's access tokens are issued for
ORDERS = {"alice": ["3 notebooks", "1 desk lamp"], "bob": ["1 espresso machine"]}


@tool
def whoami() -> str:
    """Say who the signed-in user is."""
    user = get_current_user()  # from the verified token, put into the run by IdentityMiddleware
    return f"You are {user.subject} (signed in at the provider, scopes: {' '.join(user.scopes)})."


@tool
def list_orders(user_id: str) -> str:
    """List a user's orders."""
    return json.dumps(ORDERS.get(user_id, []))


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp:
        # 1. alice signs in through the provider's pages; the app keeps her tokens (we never print them).
        tokens = idp.login("alice", scope="openid profile email", resource=API)
        say("alice", "signs in at the provider (authorization code + PKCE); the app gets an access token")

        # 2. The agent trusts the issuer's signature, not the caller: verify every token.
        verifier = JWTVerifier(idp.issuer, audience=API)
        claims = verifier.verify(tokens["access_token"])
        say("identity", f"token verified: sub={claims['sub']} aud={claims['aud']} acr={claims['acr']}")

        checkpointer = InMemorySaver()
        agent = create_agent(
            chat_model(args, [
                calls(("whoami", {})),
                calls(("list_orders", {"user_id": "alice"})),
                calls(("list_orders", {"user_id": "bob"})),  # a confused (or prompt-injected) model
                calls(("whoami", {})),
            ]),
            [whoami, list_orders],
            middleware=[IdentityMiddleware([TokenResolver(verifier)])],  # user_id must be the verified user
            context_schema=AuthContext,
            checkpointer=checkpointer,
        )
        # 3. Tools act for the verified user; a user_id the model made up for someone else is refused.
        config = {"configurable": {"thread_id": "identity-demo"}}
        context = {"access_token": tokens["access_token"]}  # runtime context: never checkpointed
        transcript = Transcript("alice")
        for question in ("Who am I?", "What did I order?", "And what did bob order?"):
            transcript.run(agent, {"messages": [("user", question)]}, config, context=context)

        user = agent.get_state(config).values["user"]
        checkpoints = str(list(checkpointer.list(config)))
        say("identity", f"state['user'] holds {user['subject']!r} (source {user['source']!r}); "
                        f"the token is in no checkpoint: {tokens['access_token'] not in checkpoints}")

        # 4. Same agent, bob's token: the same tool now acts for bob.
        bob = idp.login("bob", scope="openid profile email", resource=API)
        say("bob", "signs in at the provider")
        Transcript("bob").run(agent, {"messages": [("user", "Who am I?")]}, {"configurable": {"thread_id": "bob"}},
                              context={"access_token": bob["access_token"]})

        # 5. Someone calls the agent with a token they made up: the run does not start.
        forged = tokens["access_token"][:-8] + "AAAAAAAA"
        try:
            agent.invoke({"messages": [("user", "Who am I?")]}, {"configurable": {"thread_id": "forged"}},
                         context={"access_token": forged})
        except AgentAuthError as exc:
            say("identity", f"forged token refused: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
