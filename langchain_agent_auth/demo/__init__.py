"""``agent-auth demo``: one short conversation with an assistant that acts for a person,
through every pillar of the toolkit, against real HTTP and nothing outside this machine.

It starts the local identity provider in-process (:class:`~langchain_agent_auth.LocalProvider`:
OpenID, CIBA, a demo upstream OAuth server and a demo API, SQLite under a data directory),
builds an assistant with ``langchain.agents.create_agent`` and this toolkit's middleware
and wrappers, and talks to it:

1. **identity**: the user signs in (authorization code + PKCE through the provider's login
   page); :class:`~langchain_agent_auth.identity.IdentityMiddleware` verifies the ID token
   (it travels in the runtime context, never in graph state) and the assistant greets the
   user by the name in the verified token;
2. **vault**: the calendar tool needs the user's account at the demo upstream: the run
   pauses with ``connect_account``, the account is connected (authorization code + PKCE,
   :class:`~langchain_agent_auth.vault.VaultCallback`), the run resumes and the tool reads
   the demo calendar API with the vaulted token;
3. **approval**: a transfer above 100 EUR sends a CIBA request (binding message and RAR
   ``payment_initiation`` details) to the user's "device" (the provider's approval page);
   once approved the run resumes and the bank API executes exactly the approved transfer,
   once; a second transfer is denied and the assistant says so;
4. **fga**: a document search returns only what the user may read (an OpenFGA model of
   users, teams and documents); a second user sees different documents.

By default the assistant is a scripted chat model (no API key); ``--model provider:model``
uses a real one through ``init_chat_model``. In a terminal you approve or deny yourself
(here or on the approval page); ``--approve auto`` (``--non-interactive``) decides through
the provider's API, for CI. ``--data-dir DIR`` keeps the state: after Ctrl-C (or a stopped
provider) the same command resumes the paused conversation.

Only this module is imported by ``agent-auth --help``; LangChain loads when the demo runs.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="agent-auth demo")
    >>> configure(parser)
    >>> args = parser.parse_args(["--non-interactive", "--user", "bob"])
    >>> args.approve, args.user, args.func.__name__
    ('auto', 'bob', 'run')
"""

from __future__ import annotations

import argparse

__all__ = ["configure", "run"]


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free port), not {port}")
    return port


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options to ``parser`` (``func`` runs the demo)."""
    parser.add_argument(
        "--approve", choices=["interactive", "auto"], default=None,
        help="who answers approval requests: you (interactive; the default in a terminal) or the demo "
             "through the provider's API (auto; the default when stdin is not a terminal)",
    )
    parser.add_argument("--non-interactive", dest="approve", action="store_const", const="auto",
                        help="same as --approve auto (for CI)")
    parser.add_argument("--model", metavar="PROVIDER:MODEL", default=None,
                        help="a real chat model through init_chat_model (e.g. openai:gpt-4o-mini); "
                             "default: a scripted assistant that needs no API key")
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="keep the demo's state here (provider, vault, checkpoints); a rerun resumes a "
                             "paused conversation. Default: a fresh temporary directory")
    parser.add_argument("--store", metavar="URL", default=None,
                        help="where checkpoints, the vault and pending approvals live: postgresql://USER@HOST:PORT/DB, "
                             "sqlite:///DIR or memory: (default: $AGENT_AUTH_STORE, else SQLite in the data directory)")
    parser.add_argument("--port", type=_port, default=0,
                        help="port of the local identity provider on 127.0.0.1 (default: a free one)")
    parser.add_argument("--user", choices=["alice", "bob"], default="alice",
                        help="who talks to the assistant (the other one shows the fga difference)")
    parser.add_argument("--no-color", action="store_true", help="plain text output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed options; returns the exit code."""
    from langchain_agent_auth.demo._runner import main

    return main(args)
