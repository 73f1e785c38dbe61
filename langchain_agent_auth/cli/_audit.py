"""``agent-auth audit``: the audit trail a :class:`StoreAuditSink` kept, filtered, as text or JSON.

Imports only the standard library at the top; the store and the event model load when the
command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

_KINDS = (
    "identity_resolved", "token_obtained", "token_refreshed", "token_revoked", "token_refused",
    "approval_requested", "approval_decided", "approval_executed", "approval_expired", "approval_refused",
    "fga_decision", "thread_refused",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``audit`` options to ``parser``."""
    parser.add_argument("--data-dir", type=pathlib.Path, help="embedded defaults' directory (default ./.agent-auth)")
    parser.add_argument("--store", type=pathlib.Path, help="SQLite store file (default <data dir>/agent_auth.sqlite)")
    parser.add_argument("--user", help="only this user key, issuer|tenant|subject (--user=-|-|ann if it starts with -)")
    parser.add_argument("--thread", help="only this thread id")
    parser.add_argument("--kind", choices=_KINDS, help="only this kind of event")
    parser.add_argument("--limit", type=int, default=200, help="show at most the newest N events (default 200)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.set_defaults(func=run)


def _store_path(args: argparse.Namespace) -> pathlib.Path:
    if args.store is not None:
        return args.store
    data_dir = args.data_dir or pathlib.Path(os.environ.get("AGENT_AUTH_DATA_DIR") or ".agent-auth")
    return data_dir / "agent_auth.sqlite"


def _line(event: dict) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.pop("timestamp", 0)))
    kind = event.pop("kind")
    rest = " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in event.items())
    return f"{stamp}Z  {kind:<18}  {rest}"


def run(args: argparse.Namespace) -> int:
    """Print the stored trail; 1 if the store file does not exist."""
    path = _store_path(args)
    if not path.exists():
        print(f"agent-auth audit: no store at {path} (pass --store or --data-dir)", file=sys.stderr)
        return 1
    from langchain_agent_auth.core.audit._sinks import read_audit
    from langchain_agent_auth.vault import open_default_store

    store = open_default_store(path)
    events = read_audit(store, user=args.user, thread_id=args.thread, kind=args.kind, limit=args.limit)
    for event in events:
        data = event.to_json_dict()
        print(json.dumps(data) if args.json else _line(data))
    if not args.json and not events:
        print("no audit events match", file=sys.stderr)
    return 0
