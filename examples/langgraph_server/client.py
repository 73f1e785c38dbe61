"""Talk to the deployed agent through langgraph-sdk, as alice, with a real bearer token.

    python examples/langgraph_server/client.py     # starts the provider and `langgraph dev` itself
    python examples/langgraph_server/client.py --url http://127.0.0.1:2024 --dev-dir .agent-auth/dev \
        --resumer external

The second form uses a provider, a server and an `agent-auth resumer` you started (see
README.md); with `--resumer inline` (default) the client resumes the run itself, with the
server's `AGENT_AUTH_ENCRYPTION_KEYS`. The conversation:
who am I (the server's authenticated user), two reads (fga), a payment that waits for alice's
approval on her phone (CIBA) until the RemoteResumer completes the run, and what bob and an
anonymous caller get when they try alice's thread.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import time

import httpx
from langgraph_sdk import get_sync_client

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/_common.py: the provider, the phone, the transcript
from _common import Phone, provider, say  # noqa: E402

from langchain_agent_auth import Keyring, OAuthClient  # noqa: E402
from langchain_agent_auth.approval import CIBAApprover, RemoteResumer  # noqa: E402
from langchain_agent_auth.identity.langgraph_auth import act_as_header  # noqa: E402
from langchain_agent_auth.oauth import ClientCredentialsAuth  # noqa: E402

API = "urn:example:api"  # the audience auth.py accepts


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`langgraph dev` for this directory on a free port (what you would run in a terminal)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = pathlib.Path(sys.executable).with_name("langgraph")
    proc = subprocess.Popen([str(cli), "dev", "--no-browser", "--no-reload", "--port", str(port),
                             "--server-log-level", "WARNING"], cwd=HERE, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("langgraph dev did not start (pip install 'langgraph-cli[inmem]')")


def show(state: dict, printed: int) -> int:
    """Print the thread's messages from index ``printed`` on; returns the new count."""
    messages = state["values"]["messages"]
    for m in messages[printed:]:
        if m["type"] == "human":
            say("alice", m["content"])
        elif m["type"] == "ai" and m.get("tool_calls"):
            for call in m["tool_calls"]:
                say("model", f"calls {call['name']}({call['args']})")
        elif m["type"] == "tool":
            say("tool", f"{m['name']} {'refused:' if m.get('status') == 'error' else '->'} {m['content']}")
        else:
            say("model", m["content"])
    for pause in state.get("interrupts") or ():
        say("paused", f"{pause['value']['type']}: {pause['value'].get('binding_message', '')}")
    return len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running `langgraph dev` for this directory (default: start one)")
    parser.add_argument("--dev-dir", nargs="?", const=".agent-auth/dev", help="a running `agent-auth dev`")
    parser.add_argument("--ciba-interval", type=int, default=1)
    parser.add_argument("--resumer", choices=["inline", "external"], default="inline",
                        help="resume the approved run here (inline) or wait for `agent-auth resumer` (external)")
    args = parser.parse_args()
    args.model = None
    if args.url and args.dev_dir is None:
        # The server trusts the provider it was started with, not a new one in this process.
        args.dev_dir = os.environ.get("AGENT_AUTH_DEV_DIR") or ".agent-auth/dev"
    if args.url and args.resumer == "inline" and not os.environ.get("AGENT_AUTH_ENCRYPTION_KEYS"):
        raise SystemExit("error: --url with --resumer inline needs the server's AGENT_AUTH_ENCRYPTION_KEYS "
                         "(source the keys file you gave the server), or use --resumer external")

    with provider(args) as idp:
        # The keys sealing pending approvals: shared by the server's graph and the resumer.
        keys = os.environ.get("AGENT_AUTH_ENCRYPTION_KEYS") or f"k1:{Keyring.new_key()}"
        server = None
        url = args.url
        if url is None:
            server, url = start_server({
                "AGENT_AUTH_ISSUER": idp.issuer, "AGENT_AUTH_CLIENT_ID": idp.client_id,
                "AGENT_AUTH_CLIENT_SECRET": idp.client_secret, "AGENT_AUTH_ENCRYPTION_KEYS": keys,
                "LANGGRAPH_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"})
            say("server", "`langgraph dev` started with auth.py (the toolkit's langgraph_auth handler)")
        try:
            token = idp.login("alice", scope="openid", resource=API)["access_token"]
            say("alice", "signs in at the provider; the client sends her access token as a bearer token")
            alice = get_sync_client(url=url, headers={"Authorization": f"Bearer {token}"})
            thread = alice.threads.create()
            printed = 0

            def ask(text: str) -> dict:
                nonlocal printed
                alice.runs.wait(thread["thread_id"], "assistant",
                                input={"messages": [{"role": "user", "content": text}]})
                state = alice.threads.get_state(thread["thread_id"])
                printed = show(state, printed)
                return state

            ask("Who am I?")
            ask("Please read the roadmap.")
            ask("Please read the salaries.")
            state = ask("Pay Bob 12 euros.")
            message = state["interrupts"][0]["value"]["binding_message"]
            with Phone(idp.approval_url, "alice", idp.users["alice"]) as phone:
                phone.approve(message)
            say("alice", f"approves {message!r} on her phone")

            # The resumer (`agent-auth resumer` in production) polls the provider with the agent's client
            # and resumes the run through the server's API. It signs in as a trusted service (the agent
            # client's own client-credentials token) and resumes on alice's behalf (act-as header).
            deadline, resumed = time.monotonic() + 60, False
            if args.resumer == "inline":
                agent = OAuthClient(idp.issuer, idp.client_id, idp.client_secret)
                resumer = RemoteResumer(url, approvers=[CIBAApprover(agent, keyring=Keyring.from_string(keys))],
                                        auth=ClientCredentialsAuth(agent, resource=API))
                while not (resumed := bool(resumer.run_once().resumed_items)) and time.monotonic() < deadline:
                    time.sleep(0.25)
            else:  # `agent-auth resumer` resumes it; wait until the thread is idle again
                while not (resumed := alice.threads.get(thread["thread_id"])["status"] == "idle") \
                        and time.monotonic() < deadline:
                    time.sleep(0.25)
            if not resumed:
                raise SystemExit("error: the run was not resumed within 60 s: is the resumer running, with the "
                                 "server's AGENT_AUTH_ENCRYPTION_KEYS? (its log says why)")
            say("resumer", "the approval is in: resumed the run on the server, on alice's behalf")
            show(alice.threads.get_state(thread["thread_id"]), printed)

            bob_token = idp.login("bob", scope="openid", resource=API)["access_token"]
            bob = get_sync_client(url=url, headers={"Authorization": f"Bearer {bob_token}"})
            try:
                bob.threads.get(thread["thread_id"])
            except httpx.HTTPStatusError as exc:
                say("bob", f"opens alice's thread: HTTP {exc.response.status_code} (threads belong to their owner)")
            pretend = httpx.get(f"{url}/threads/{thread['thread_id']}", timeout=10, headers={
                "Authorization": f"Bearer {bob_token}", **act_as_header({"subject": "alice"})})
            say("bob", f"claims to act for alice (act-as header): HTTP {pretend.status_code} (trusted services only)")
            status = httpx.get(f"{url}/threads/{thread['thread_id']}", timeout=10).status_code
            say("nobody", f"calls without a token: HTTP {status}")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
