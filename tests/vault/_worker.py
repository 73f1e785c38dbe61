"""A worker process for the cross-process lease test: N threads ask for one user's expired token."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor

from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.vault import Connection, TokenVault


def main() -> None:
    db, keys, issuer, redirect, client_id, client_secret, threads = sys.argv[1:8]
    conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=30)
    vault = TokenVault(
        [Connection("calendar", issuer=issuer, client_id=client_id, client_secret=client_secret,
                    redirect_uri=redirect, scopes=["calendar.read"])],
        store=SqliteStore(conn), keyring=Keyring.from_file(keys, create=False))
    user = UserIdentity(subject="alice", issuer="https://idp.example")
    vault.connection("calendar")
    print("READY", flush=True)
    sys.stdin.readline()
    with ThreadPoolExecutor(int(threads)) as pool:
        tokens = list(pool.map(lambda _: vault.get_token(user, "calendar").token, range(int(threads))))
    print("TOKENS " + " ".join(sorted({hashlib.sha256(t.encode()).hexdigest()[:12] for t in tokens})), flush=True)


if __name__ == "__main__":
    main()
