"""Vault: the agent calls alice's calendar API with alice's token, which neither it nor the model sees.

1. The tool needs a calendar token alice has not given yet: the run pauses with
   ``connect_account`` (the authorize URL of the demo upstream, state bound to alice);
2. alice's browser opens it, she signs in and allows access, the upstream redirects to the
   app's callback (``VaultCallback``), which stores her tokens encrypted;
3. the run resumes and the tool calls the calendar API with the vaulted token;
4. the app lists alice's connections, then revokes the calendar: the next call pauses again.

    python examples/vault_example.py                  # provider in-process
    agent-auth dev &  python examples/vault_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

import pathlib
import sqlite3
import tempfile

import httpx
from _common import Browser, LoopbackServer, Transcript, calls, chat_model, parse_args, provider, say
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from langchain_agent_auth import Connection, TokenVault, UserIdentity, VaultMiddleware, vault_auth
from langchain_agent_auth.vault import callback_app


def calendar_tools(api_url: str) -> list:
    @tool
    def add_event(title: str, start: str) -> str:
        """Add an event to the user's calendar."""
        with httpx.Client(auth=vault_auth(), timeout=10) as http:  # the vault's token, just for this call
            r = http.post(f"{api_url}/calendar/events", json={"title": title, "start": start})
            r.raise_for_status()
        return f"added {title!r} on {start}"

    @tool
    def list_events() -> str:
        """List the user's calendar events."""
        with httpx.Client(auth=vault_auth(), timeout=10) as http:
            r = http.get(f"{api_url}/calendar/events")
            r.raise_for_status()
            body = r.json()
        return f"{body['owner']}'s calendar: " + "; ".join(f"{e['start']} {e['title']}" for e in body["events"])

    return [add_event, list_events]


def main() -> None:
    args = parse_args(__doc__)
    with provider(args) as idp, tempfile.TemporaryDirectory() as tmp, LoopbackServer() as web:
        alice = UserIdentity(subject="alice", issuer=idp.issuer)  # signed in to our app (see identity_example)

        # The calendar lives at the demo upstream (an OAuth server like Google's). The user connects it
        # once; tokens are stored encrypted (AES-GCM) in the vault's store (SQLite in `data_dir`).
        vault = TokenVault(
            [Connection("calendar", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                        client_secret=idp.upstream_client_secret, scopes=["calendar.read", "calendar.write"],
                        redirect_uri=f"{web.url}/callback")],
            data_dir=tmp,
        )
        # Our web app's callback route; resolve_user is "who is signed in to the app" (a session cookie).
        web.start(callback_app(vault, resolve_user=lambda request: alice))

        agent = create_agent(
            chat_model(args, [
                calls(("add_event", {"title": "Lunch with Bob", "start": "2030-01-04T12:00"})),
                calls(("list_events", {})),
                calls(("list_events", {})),
            ]),
            calendar_tools(idp.api_url),
            middleware=[VaultMiddleware(vault, {"add_event": "calendar", "list_events": "calendar"})],
            checkpointer=SqliteSaver(sqlite3.connect(f"{tmp}/checkpoints.sqlite", check_same_thread=False)),
        )
        config = {"configurable": {"thread_id": "vault-demo"}}
        context = {"user": alice}  # the trusted user (an app puts it there, never the model)
        transcript = Transcript("alice")

        # 1. No calendar token yet: the tool does not run, the graph pauses.
        ask = {"messages": [("user", "Put lunch with Bob in my calendar on Jan 4.")]}
        result = transcript.run(agent, ask, config, context=context)
        pause = result["__interrupt__"][0].value
        say("vault", f"connect_account: {pause['connection']} ({pause['status']}), scopes "
                     f"{' '.join(pause['scopes'])}; the app shows alice a link to the upstream")

        # 2. alice's browser: the upstream's sign-in and consent pages, then the app's callback.
        with Browser("alice", idp.users["alice"]) as browser:
            page = browser.open(pause["authorize_url"])
        say("alice", f"signs in at the upstream, allows access; the callback answers HTTP {page.status_code}")

        # 3. Resume: the guard checks the vault again (the resume value alone is never trusted).
        transcript.run(agent, Command(resume={}), config, context=context)
        # The token is in the vault now: no pause.
        transcript.run(agent, {"messages": [("user", "What's in my calendar?")]}, config, context=context)

        # 4. Manage: list (no secrets in there), revoke (at the upstream, then deleted here).
        for info in vault.connections(alice):
            say("vault", f"alice's connection {info.name}: {info.status}, scopes {' '.join(info.scopes)}, "
                         f"refresh token: {info.has_refresh_token}")
        token = vault.get_token(alice, "calendar").token  # only to check the files below
        files = b"".join(p.read_bytes() for p in pathlib.Path(tmp).glob("*.sqlite*"))
        say("vault", f"the token is in no file in plain text (store, checkpoints): {token.encode() not in files}")
        revoked = vault.revoke(alice, "calendar")
        say("vault", f"revoked at the upstream: {revoked.upstream_revoked}, deleted: {revoked.deleted}")

        transcript.run(agent, {"messages": [("user", "What's in my calendar now?")]}, config, context=context)
        say("alice", "does not connect again (resume with action=cancel)")
        transcript.run(agent, Command(resume={"action": "cancel"}), config, context=context)


if __name__ == "__main__":
    main()
