"""``agent-auth vault list|revoke``: a user's connected accounts in a store, without secrets.

By default it opens the embedded store (``<data dir>/agent_auth.sqlite``) and keys
(``$AGENT_AUTH_ENCRYPTION_KEYS`` or ``<data dir>/keys``). ``--vault module:attribute``
loads your application's :class:`TokenVault` instead (its store, keys and connection
declarations), which lets ``revoke`` call the upstream's revocation endpoint too.

Example:
    $ agent-auth vault list --user alice
    $ agent-auth vault revoke --user alice calendar
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pathlib
import sys
import time
from typing import TYPE_CHECKING, Any

from langchain_agent_auth.core.errors import AgentAuthError, ConfigurationError

if TYPE_CHECKING:
    from langchain_agent_auth.vault import ConnectionInfo, TokenVault

# mirrors langchain_agent_auth.crypto.ENV_VAR; the vault modules load only when a command runs
_KEYS_ENV = "AGENT_AUTH_ENCRYPTION_KEYS"

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``vault`` subcommands to ``parser``."""
    parser.set_defaults(func=lambda args: (parser.print_help(), 0)[1])
    sub = parser.add_subparsers(dest="vault_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--user", help="a user key (issuer|tenant|subject) or a subject")
        p.add_argument("--data-dir", type=pathlib.Path, help="embedded defaults' directory (default ./.agent-auth)")
        p.add_argument("--store", type=pathlib.Path, help="SQLite store file (default <data dir>/agent_auth.sqlite)")
        p.add_argument("--keys", type=pathlib.Path, help=f"key file (default ${_KEYS_ENV} or <data dir>/keys)")
        p.add_argument("--vault", metavar="MODULE:ATTR", help="load your app's TokenVault instead")
        p.add_argument("--json", action="store_true", help="print JSON")

    lister = sub.add_parser("list", help="list connected accounts (no secrets)")
    common(lister)
    lister.set_defaults(func=_list)
    revoker = sub.add_parser("revoke", help="revoke a connected account and delete its record")
    common(revoker)
    revoker.add_argument("connection", help="the connection name")
    revoker.set_defaults(func=_revoke)


def _load_vault(spec: str) -> TokenVault:
    from langchain_agent_auth.vault import TokenVault

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError("--vault takes MODULE:ATTRIBUTE, e.g. myapp.agent:vault")
    sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, TokenVault):
        obj = obj()
    if not isinstance(obj, TokenVault):
        raise ConfigurationError(f"{spec} is not a TokenVault")
    return obj


def _open(args: argparse.Namespace, *, need_keys: bool) -> tuple[TokenVault, bool]:
    """The vault to work on, and whether it holds real keys (to tell unreadable records)."""
    from langchain_agent_auth.core.crypto import ENV_VAR, Keyring
    from langchain_agent_auth.vault import TokenVault, default_data_dir, open_default_store

    if args.vault:
        return _load_vault(args.vault), True
    base = args.data_dir or default_data_dir()
    path = args.store or base / "agent_auth.sqlite"
    if not path.exists():
        raise ConfigurationError(f"no store at {path} (use --store or --data-dir)")
    keyring: Keyring | None = None
    if args.keys:
        keyring = Keyring.from_file(args.keys, create=False)
    elif os.environ.get(ENV_VAR):
        keyring = Keyring.from_env()
    elif (base / "keys").exists():
        keyring = Keyring.from_file(base / "keys", create=False)
    elif need_keys:
        raise ConfigurationError(f"no keys: set {ENV_VAR} or pass --keys")
    vault = TokenVault([], store=open_default_store(path), keyring=keyring or Keyring.generate("unused"))
    return vault, keyring is not None


def _records(vault: TokenVault, user: str | None, has_keys: bool) -> list[ConnectionInfo]:
    from langgraph.store.base import ListNamespacesOp, MatchCondition, SearchOp

    from langchain_agent_auth.vault._records import USERS_NS, decode_user
    from langchain_agent_auth.vault._vault import record_info

    [namespaces] = vault.store.batch([ListNamespacesOp(
        match_conditions=(MatchCondition(match_type="prefix", path=USERS_NS),), max_depth=None,
        limit=100_000, offset=0)])
    out: list[ConnectionInfo] = []
    now = time.time()
    for ns in namespaces:
        key = decode_user(ns[-1]) if len(ns) == len(USERS_NS) + 1 else None
        if key is None or (user is not None and user not in (key, key.rsplit("|", 1)[-1])):
            continue
        [items] = vault.store.batch([SearchOp(tuple(ns), None, 10_000, 0)])
        for item in items:
            out.append(record_info(item.value, item.key, key, vault.keyring if has_keys else None, now))
    return sorted(out, key=lambda i: (i.user or "", i.name))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    try:
        vault, has_keys = _open(args, need_keys=False)
        infos = _records(vault, args.user, has_keys)
    except AgentAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print("no connected accounts" + (f" for {args.user}" if args.user else ""))
        return 0
    rows = [("USER", "CONNECTION", "STATUS", "SCOPES", "EXPIRES", "KEY")]
    rows += [(i.user or "?", i.name, i.status, " ".join(i.scopes) or "-", _when(i.expires_at), i.key_id or "-")
             for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if not args.user:
        print("error: --user is required", file=sys.stderr)
        return 2
    try:
        vault, has_keys = _open(args, need_keys=False)
        matches = sorted({i.user for i in _records(vault, args.user, has_keys)
                          if i.name == args.connection and i.user})
        if not matches:
            print(f"no {args.connection} connection for {args.user}")
            return 1
        if len(matches) > 1:
            print(f"error: {args.user} matches several users; pass the full key: {', '.join(matches)}",
                  file=sys.stderr)
            return 2
        user_key = matches[0]
        if args.connection in vault.connection_names:
            result = vault.revoke(user_key, args.connection)
        else:
            from langchain_agent_auth.vault._records import user_ns

            vault.store.delete(user_ns(user_key), args.connection)
            result = None
    except AgentAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"user": user_key, "connection": args.connection, "deleted": True,
                          "upstream_revoked": bool(result and result.upstream_revoked),
                          "error": result.error if result else "connection not declared here"}))
    elif result is None:
        print(f"deleted {args.connection} for {user_key} (not revoked upstream: the connection is not declared "
              "here; use --vault MODULE:ATTR to revoke at the provider too)")
    else:
        note = "revoked upstream and deleted" if result.upstream_revoked else "deleted"
        print(f"{note} {args.connection} for {user_key}" + (f" ({result.error})" if result.error else ""))
    return 0
