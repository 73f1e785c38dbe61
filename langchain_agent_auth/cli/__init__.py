"""The ``agent-auth`` command line.

Each subcommand lives next to the pillar it belongs to, in a module exposing
``configure(parser)``; the module sets ``parser.set_defaults(func=...)`` where ``func``
takes the parsed namespace and returns an exit code.

Example:
    $ agent-auth --help
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

from langchain_agent_auth._version import __version__

__all__ = ["build_parser", "main"]

# (name, module, one-line help). A module that does not exist yet is left out.
_COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "langchain_agent_auth.demo", "run the end-to-end demo on embedded defaults"),
    ("dev", "langchain_agent_auth.cli._dev", "run the local identity provider"),
    (
        "approvals",
        "langchain_agent_auth.cli._approvals",
        "list, approve or deny pending CIBA requests on a running local provider",
    ),
    ("vault", "langchain_agent_auth.cli._vault", "list or revoke a user's connected accounts"),
    ("resumer", "langchain_agent_auth.cli._resumer", "resume threads whose approval completed"),
    ("fga", "langchain_agent_auth.cli._fga", "test models, check relations, serve the OpenFGA API"),
    ("audit", "langchain_agent_auth.cli._audit", "show the stored audit trail (by user, thread, kind)"),
]


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def shared_options(
    parser: argparse.ArgumentParser, options: Sequence[tuple[str, str]], *, sub: bool, func: Any = None
) -> None:
    """Add ``options`` (``(flag, help)`` pairs) that a command and each of its sub-commands take.

    On a sub-command (``sub``) they default to ``SUPPRESS``, so a value given before the
    sub-command's name survives; ``func`` is what runs the sub-command.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> shared_options(parser, [("--url", "where")], sub=False)
        >>> sub = parser.add_subparsers()
        >>> shared_options(sub.add_parser("go"), [("--url", "where")], sub=True, func=print)
        >>> parser.parse_args(["--url", "u", "go"]).url, parser.parse_args(["go", "--url", "v"]).url
        ('u', 'v')
    """
    if func is not None:
        parser.set_defaults(func=func)
    default = argparse.SUPPRESS if sub else None
    for flag, help_text in options:
        parser.add_argument(flag, default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``agent-auth`` argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="agent-auth",
        description="Identity, credentials, approvals and fine-grained authorization "
        "for LangChain and LangGraph agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in _COMMANDS:
        if not _available(module):
            continue
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).configure(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agent-auth`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    from langchain_agent_auth.core.logs import install_log_redaction

    install_log_redaction()
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from langchain_agent_auth.core.errors import AgentAuthError

        if not isinstance(exc, AgentAuthError):
            raise
        # A setup mistake: one line saying what to change, not a traceback.
        print(f"agent-auth {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2

