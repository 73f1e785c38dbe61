"""``agent-auth approvals``: play the user's phone from a terminal.

::

    agent-auth approvals list [--user alice] [--status pending|approved|denied|all] [--json]
    agent-auth approvals approve REQUEST_ID [--details JSON]
    agent-auth approvals deny REQUEST_ID [--reason TEXT]

It talks to a running ``agent-auth dev`` through its admin API. Where: ``--url`` and
``--admin-token`` (or ``$AGENT_AUTH_DEV_URL`` / ``$AGENT_AUTH_ADMIN_TOKEN``), else what the
server wrote into its data directory (``--data-dir``, default ``$AGENT_AUTH_DEV_DIR`` or
``./.agent-auth/dev``). Requests are shown by their opaque request id, never by the
client's ``auth_req_id``.

Example:
    >>> from langchain_agent_auth.cli import build_parser
    >>> args = build_parser().parse_args(["approvals", "deny", "req_123", "--reason", "not now"])
    >>> (args.request_id, args.reason, args.func.__name__)
    ('req_123', 'not now', 'run_deny')
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import Any

from langchain_agent_auth.cli import shared_options
from langchain_agent_auth.cli._dev import default_data_dir
from langchain_agent_auth.core.errors import AgentAuthError

#: where the running provider is: on ``approvals`` and on each of its sub-commands
_CONNECTION = (
    ("--url", "base URL of the running provider"),
    ("--data-dir", "the provider's data directory"),
    ("--admin-token", "admin token (or $AGENT_AUTH_ADMIN_TOKEN)"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``approvals`` sub-commands to ``parser``."""
    shared_options(parser, _CONNECTION, sub=False)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="approvals_command", metavar="COMMAND")

    listing = sub.add_parser("list", help="list CIBA requests (pending by default)")
    listing.add_argument("--user", help="only this user's requests")
    listing.add_argument(
        "--status", default="pending", choices=["pending", "approved", "denied", "consumed", "expired", "all"]
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    shared_options(listing, _CONNECTION, sub=True, func=run_list)

    approve = sub.add_parser("approve", help="approve a pending request")
    approve.add_argument("request_id")
    approve.add_argument("--details", help="approve narrower authorization_details (JSON array)")
    shared_options(approve, _CONNECTION, sub=True, func=run_approve)

    deny = sub.add_parser("deny", help="deny a pending request")
    deny.add_argument("request_id")
    deny.add_argument("--reason", help="shown to the client as error_description")
    shared_options(deny, _CONNECTION, sub=True, func=run_deny)


def _client(args: argparse.Namespace) -> Any:
    from langchain_agent_auth.devserver._provider import AdminClient

    url = args.url or os.environ.get("AGENT_AUTH_DEV_URL")
    token = args.admin_token or os.environ.get("AGENT_AUTH_ADMIN_TOKEN")
    data_dir = pathlib.Path(args.data_dir or default_data_dir())
    if url is None:
        url = _written(data_dir / "server.json", "url", "no running provider found in {} (pass --url or --data-dir)")
    if token is None:
        token = _written(
            data_dir / "secrets.json",
            "admin_token",
            "no admin token in {} (pass --admin-token or set AGENT_AUTH_ADMIN_TOKEN)",
        )
    return AdminClient(url, token)


def _written(path: pathlib.Path, key: str, missing: str) -> str:
    """``key`` of a JSON file the running server wrote; exits with ``missing`` if absent."""
    try:
        return json.loads(path.read_text())[key]
    except (OSError, ValueError, KeyError):
        raise SystemExit("error: " + missing.format(path.parent)) from None


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    client = _client(args)
    try:
        return client.request(method, path, **kwargs)
    except AgentAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    finally:
        client.close()


def _left(expires_at: int) -> str:
    seconds = max(0, int(expires_at - time.time()))
    return f"{seconds // 60}m{seconds % 60:02d}s"


#: What each stored status means to the person who answers.
STATUS_WORDS = {"pending": "waiting", "approved": "approved", "consumed": "approved, used",
                "denied": "denied", "denied_reported": "denied", "expired": "expired"}


def _status(item: dict[str, Any]) -> str:
    return STATUS_WORDS.get(str(item.get("status")), str(item.get("status")))


def _expires(item: dict[str, Any]) -> str:
    return _left(item["expires_at"]) if item.get("status") == "pending" else "-"


def _summary(item: dict[str, Any]) -> str:
    parts = [item.get("binding_message") or ""]
    parts += [view["title"] for view in item.get("authorization_details_view") or []]
    seen: set[str] = set()
    kept = []
    for part in parts:  # a detail's title often repeats the binding message: say it once
        key = " ".join(part.lower().split())
        if part and key not in seen:
            seen.add(key)
            kept.append(part)
    return " | ".join(kept) or "(no message)"


def run_list(args: argparse.Namespace) -> int:
    """``agent-auth approvals list``."""
    params = {"status": args.status, **({"user": args.user} if args.user else {})}
    body = _call(args, "GET", "/approvals", params=params)
    if body is None:
        return 1
    items = body["requests"]
    if args.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return 0
    if not items:
        print("no requests")
        return 0
    rows = [("ID", "USER", "CLIENT", "STATUS", "EXPIRES", "WHAT")]
    for item in items:
        rows.append(
            (
                item["id"],
                item["user"],
                item["client_id"],
                _status(item),
                _expires(item),
                _summary(item),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
        )
    return 0


def run_approve(args: argparse.Namespace) -> int:
    """``agent-auth approvals approve``."""
    payload: dict[str, Any] = {}
    if args.details:
        try:
            payload["authorization_details"] = json.loads(args.details)
        except ValueError:
            print("error: --details is not valid JSON", file=sys.stderr)
            return 2
    body = _call(args, "POST", f"/approvals/{args.request_id}/approve", json=payload)
    if body is None:
        return 1
    print(f"approved {body['id']} for {body['user']} ({body['client_id']})")
    return 0


def run_deny(args: argparse.Namespace) -> int:
    """``agent-auth approvals deny``."""
    body = _call(
        args,
        "POST",
        f"/approvals/{args.request_id}/deny",
        json={"reason": args.reason} if args.reason else {},
    )
    if body is None:
        return 1
    print(f"denied {body['id']} for {body['user']} ({body['client_id']})")
    return 0
