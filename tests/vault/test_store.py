"""Encryption at rest, key rotation, damaged and foreign records, listing, the CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from langchain_agent_auth import errors as E
from langchain_agent_auth.cli import main as cli
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.vault import ConnectPendingSource, TokenVault, open_default_store
from langchain_agent_auth.vault._records import PENDING_NS, user_ns
from tests.support.demo_upstream import CLIENT_SECRET
from tests.vault.conftest import ALICE, BOB, calendar_connection, connect
from tests.vault.test_concurrency import age


def _db_bytes(path) -> bytes:
    from pathlib import Path

    p = Path(path)
    return b"".join(f.read_bytes() for f in p.parent.glob(p.name + "*"))


def test_sqlite_file_holds_no_token_plaintext(upstream, tmp_path, keyring):
    db = tmp_path / "agent_auth.sqlite"
    vault = TokenVault([calendar_connection(upstream)], store=open_default_store(db), keyring=keyring)
    connect(vault, upstream, ALICE)
    connect(vault, upstream, BOB)
    age(vault, ALICE)
    vault.get_token(ALICE, "calendar")  # refresh: rotated tokens written too
    vault.start_connect(BOB, "calendar", ["calendar.write"])  # a pending flow with a PKCE verifier
    secrets_ = [*upstream.issued(), CLIENT_SECRET]
    raw = _db_bytes(db)
    assert b"calendar.read" in raw and b"agent_auth" in raw  # we are looking at the right file
    for s in secrets_:
        assert s.encode() not in raw
    # the user key and the connection name are authenticated data: records decrypt only in place
    assert upstream.is_live_access_token(vault.get_token(ALICE, "calendar").token, "alice")


def test_key_rotation_keeps_old_records_readable(upstream, store, keyring):
    old = TokenVault([calendar_connection(upstream)], store=store, keyring=keyring)
    connect(old, upstream, ALICE)
    connect(old, upstream, BOB)
    rotated = keyring.with_new_active_key("k2")
    new = TokenVault([calendar_connection(upstream)], store=store, keyring=rotated)
    assert new.get_token(ALICE, "calendar").token == old.get_token(ALICE, "calendar").token
    assert {c.key_id for u in (ALICE, BOB) for c in new.connections(u)} == {"k1"}
    age(new, ALICE)
    new.get_token(ALICE, "calendar")  # a refresh re-seals with the active key
    assert [c.key_id for c in new.connections(ALICE)] == ["k2"]
    assert new.reencrypt() == 1  # Bob's record
    assert {c.key_id for u in (ALICE, BOB) for c in new.connections(u)} == {"k2"}


def test_retired_key_reads_after_reencrypt(upstream):
    import secrets

    k1, k2 = secrets.token_bytes(32), secrets.token_bytes(32)
    store = InMemoryStore()
    v1 = TokenVault([calendar_connection(upstream)], store=store, keyring=Keyring({"k1": k1}))
    v1.import_token(ALICE, "calendar", access_token="opaque-access-1", scopes=["calendar.read"])
    both = Keyring({"k2": k2, "k1": k1}, active="k2")
    assert TokenVault([calendar_connection(upstream)], store=store, keyring=both).reencrypt() == 1
    only_k2 = TokenVault([calendar_connection(upstream)], store=store, keyring=Keyring({"k2": k2}))
    assert only_k2.get_token(ALICE, "calendar").token == "opaque-access-1"
    only_k1 = TokenVault([calendar_connection(upstream)], store=store, keyring=Keyring({"k1": k1}))
    with pytest.raises(E.VaultDecryptionError, match="'k2'"):
        only_k1.get_token(ALICE, "calendar")


def test_corrupted_and_foreign_records(upstream, store, keyring):
    vault = TokenVault([calendar_connection(upstream)], store=store, keyring=keyring)
    vault.import_token(ALICE, "calendar", access_token="opaque-alice-1", scopes=["calendar.read"])
    vault.import_token(BOB, "calendar", access_token="opaque-bob-1", scopes=["calendar.read"])
    ns = user_ns(ALICE.key)
    value = store.get(ns, "calendar").value
    # 1. corrupted ciphertext
    broken = {**value, "secret": {**value["secret"], "ct": value["secret"]["ct"][:-4] + "AAAA"}}
    store.put(ns, "calendar", broken)
    vault.invalidate(ALICE, "calendar")
    with pytest.raises(E.VaultDecryptionError, match="cannot be decrypted") as exc:
        vault.get_token(ALICE, "calendar")
    assert "opaque" not in str(exc.value)
    assert vault.get_token(BOB, "calendar").token == "opaque-bob-1"  # others unaffected
    assert [c.status for c in vault.connections(ALICE)] == ["unreadable"]
    # 2. sealed with a key this keyring does not hold
    stranger = TokenVault([calendar_connection(upstream)], store=InMemoryStore(), keyring=Keyring.generate("zz"))
    stranger.import_token(ALICE, "calendar", access_token="opaque-alice-2", scopes=["calendar.read"])
    store.put(ns, "calendar", stranger.store.get(ns, "calendar").value)
    with pytest.raises(E.VaultDecryptionError, match="'zz'"):
        vault.get_token(ALICE, "calendar")
    # 3. Bob's record copied into Alice's namespace: bound to Bob, does not open as Alice's
    store.put(ns, "calendar", store.get(user_ns(BOB.key), "calendar").value)
    with pytest.raises(E.VaultDecryptionError):
        vault.get_token(ALICE, "calendar")
    # 4. garbage
    store.put(ns, "calendar", {"v": 99})
    with pytest.raises(E.VaultDecryptionError, match="format"):
        vault.get_token(ALICE, "calendar")
    # revoke cleans it up (nothing to revoke upstream), connecting again works
    result = vault.revoke(ALICE, "calendar")
    assert result.deleted and not result.upstream_revoked and "decrypted" in (result.error or "")
    connect(vault, upstream, ALICE)
    assert vault.status(ALICE, "calendar").ok


def test_corrupted_record_in_a_graph_is_refused_clearly(vault, upstream):
    from langgraph.checkpoint.memory import InMemorySaver

    from langchain_agent_auth.vault import VaultMiddleware
    from tests.vault.graphs import agent, ask, calendar_tools, interrupts, last_tool_message

    vault.import_token(ALICE, "calendar", access_token="opaque-alice-1", scopes=["calendar.read"])
    value = vault.store.get(user_ns(ALICE.key), "calendar").value
    vault.store.put(user_ns(ALICE.key), "calendar", {**value, "secret": {**value["secret"], "n": "AAAA"}})
    graph = agent([calendar_tools(upstream.api_url)["list_events"]],
                  [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, {"configurable": {"thread_id": "x"}},
                          context={"user": ALICE})
    assert not interrupts(result)
    msg = last_tool_message(result)
    assert msg.status == "error" and "reconnect" in msg.content


def test_listing_has_no_secrets_and_pending_records(vault, upstream):
    connect(vault, upstream, ALICE, thread_id="t1", tool_call_id="call-9")
    infos = vault.connections(ALICE)
    assert [(i.name, i.status, i.scopes, i.has_refresh_token) for i in infos] == \
        [("calendar", "active", ("calendar.read",), True)]
    dumped = json.dumps([i.to_dict() for i in infos])
    assert all(t not in dumped for t in upstream.issued())
    [p] = vault.pending_connects(ALICE)
    assert (p.status, p.thread_id, p.tool_call_id, p.resumed) == ("completed", "t1", "call-9", False)
    raw = vault.store.get(PENDING_NS, p.id).value
    assert raw["secret"] is None  # verifier and link dropped once used
    source = ConnectPendingSource(vault)
    [ready] = source.ready()
    assert source.resume_value(ready) == {"action": "connected"}
    assert source.mark_resumed(ready) and not source.mark_resumed(ready)
    assert source.ready() == []


def test_cli_list_and_revoke(upstream, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AGENT_AUTH_ENCRYPTION_KEYS", raising=False)
    data = tmp_path / "data"
    vault = TokenVault([calendar_connection(upstream)], data_dir=data)
    connect(vault, upstream, ALICE)
    vault.import_token(BOB, "calendar", access_token="opaque-bob-1", scopes=["calendar.read"])
    assert cli(["vault", "list", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "https://idp.example|-|alice" in out and "calendar.read" in out and "active" in out
    assert all(t not in out for t in upstream.issued())
    assert cli(["vault", "list", "--data-dir", str(data), "--user", "bob", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["user"].endswith("|bob") and row["status"] == "active" and "opaque" not in json.dumps(row)
    # revoke without the app's declarations: deleted locally, says so
    assert cli(["vault", "revoke", "--data-dir", str(data), "--user", "bob", "calendar"]) == 0
    assert "not revoked upstream" in capsys.readouterr().out
    assert cli(["vault", "revoke", "--data-dir", str(data), "--user", "bob", "calendar"]) == 1
    # with --vault MODULE:ATTR the upstream is called too
    module = tmp_path / "myapp_vault.py"
    module.write_text(
        "from langchain_agent_auth.vault import TokenVault, Connection\n"
        f"vault = TokenVault([Connection('calendar', issuer={upstream.issuer!r}, client_id='vault-client', "
        f"client_secret={CLIENT_SECRET!r}, redirect_uri={upstream.redirect_uri!r})], data_dir={str(data)!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = upstream.stats().get("revoke", 0)
    assert cli(["vault", "revoke", "--vault", "myapp_vault:vault", "--user", "alice", "calendar"]) == 0
    assert "revoked upstream" in capsys.readouterr().out and upstream.stats()["revoke"] > before
    assert cli(["vault", "list", "--data-dir", str(data)]) == 0
    assert "no connected accounts" in capsys.readouterr().out
    assert cli(["vault", "list", "--store", str(tmp_path / "missing.sqlite")]) == 2


def test_default_embedded_store_and_keys(tmp_path, monkeypatch, upstream):
    monkeypatch.delenv("AGENT_AUTH_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("AGENT_AUTH_DATA_DIR", str(tmp_path / "dd"))
    vault = TokenVault([calendar_connection(upstream)])
    assert isinstance(vault.store, SqliteStore)
    assert (tmp_path / "dd" / "agent_auth.sqlite").exists() and (tmp_path / "dd" / "keys").exists()
    assert oct((tmp_path / "dd" / "keys").stat().st_mode)[-3:] == "600"
    vault.import_token(ALICE, "calendar", access_token="opaque-alice-1", scopes=["calendar.read"])
    again = TokenVault([calendar_connection(upstream)])  # same files: same data
    assert again.get_token(ALICE, "calendar").token == "opaque-alice-1"
    conn = sqlite3.connect(tmp_path / "dd" / "agent_auth.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
