"""Fixtures of the vault tests: the demo upstream (the local provider's), vaults on real stores, users."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.vault import Connection, TokenVault
from tests.support.demo_upstream import CLIENT_ID, CLIENT_SECRET, DemoUpstream

ALICE = UserIdentity(subject="alice", issuer="https://idp.example", name="Alice")
BOB = UserIdentity(subject="bob", issuer="https://idp.example", name="Bob")
# Same subject, other issuer: a different user as far as any cache is concerned.
ALICE_ELSEWHERE = UserIdentity(subject="alice", issuer="https://other-idp.example")


@pytest.fixture
def upstream(demo_upstream: DemoUpstream) -> DemoUpstream:
    demo_upstream.reset()
    return demo_upstream


def calendar_connection(upstream: DemoUpstream, **kw: Any) -> Connection:
    kw.setdefault("scopes", ["calendar.read"])
    kw.setdefault("timeout", 1.0)
    return Connection("calendar", issuer=upstream.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                      redirect_uri=upstream.redirect_uri, **kw)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("k1")


@pytest.fixture
def sqlite_path(tmp_path) -> str:
    return str(tmp_path / "agent_auth.sqlite")


@pytest.fixture
def sqlite_store(sqlite_path: str) -> Iterator[SqliteStore]:
    conn = sqlite3.connect(sqlite_path, check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    yield store
    conn.close()


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, sqlite_path: str) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    conn = sqlite3.connect(sqlite_path, check_same_thread=False, isolation_level=None)
    s = SqliteStore(conn)
    s.setup()
    yield s
    conn.close()


@pytest.fixture
def vault(upstream: DemoUpstream, sqlite_store: SqliteStore, keyring: Keyring) -> Iterator[TokenVault]:
    v = TokenVault([calendar_connection(upstream)], store=sqlite_store, keyring=keyring)
    yield v
    v.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


class Both:
    """Calls ``name`` or ``a<name>`` on an object depending on the mode under test."""

    def __init__(self, obj: Any, mode: str) -> None:
        self.obj, self.mode = obj, mode

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return getattr(self.obj, name)(*args, **kwargs)
        return await getattr(self.obj, "a" + name)(*args, **kwargs)


def connect(vault: TokenVault, upstream: DemoUpstream, user: UserIdentity, scopes=("calendar.read",),
            login: str | None = None, **kw: Any):
    """Connect ``user``'s calendar the way a person does: link, sign in, consent, callback."""
    from langchain_agent_auth.vault import VaultCallback
    from tests.support.demo_upstream import browse_upstream

    upstream.callback_app = VaultCallback(vault, resolve_user=lambda request: user)
    request = vault.start_connect(user, "calendar", scopes, **kw)
    page = browse_upstream(request.authorize_url, login or user.subject)
    return request, page
