"""Records damaged field by field give typed errors, a reconnect pause, never a crash or plaintext."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langchain_agent_auth import errors as E
from langchain_agent_auth.vault import TokenVault, VaultMiddleware
from langchain_agent_auth.vault._records import PENDING_NS, user_ns
from tests.vault.conftest import ALICE, BOB, connect
from tests.vault.graphs import agent, ask, calendar_tools, interrupts

SECRET = "opaque-alice-secret-1"

# (name, how the clear fields are damaged)
DAMAGE: list[tuple[str, Any]] = [
    ("scopes-int", lambda v: {**v, "scopes": 7}),
    ("scopes-items", lambda v: {**v, "scopes": ["calendar.read", 3]}),
    ("rev-str", lambda v: {**v, "rev": "seven"}),
    ("rev-bool", lambda v: {**v, "rev": True}),
    ("expires-str", lambda v: {**v, "expires_at": "tomorrow"}),
    ("status-junk", lambda v: {**v, "status": {"x": 1}}),
    ("secret-list", lambda v: {**v, "secret": ["nope"]}),
    ("missing-scopes", lambda v: {k: x for k, x in v.items() if k != "scopes"}),
    ("missing-secret", lambda v: {k: x for k, x in v.items() if k != "secret"}),
    ("missing-v", lambda v: {k: x for k, x in v.items() if k != "v"}),
    ("not-a-dict", lambda v: [SECRET]),
    ("a-string", lambda v: SECRET),
]


def damage(vault: TokenVault, how: Any) -> None:
    vault.import_token(ALICE, "calendar", access_token=SECRET, scopes=["calendar.read"])
    ns = user_ns(ALICE.key)
    put_raw(vault, ns, "calendar", how(vault.store.get(ns, "calendar").value))
    vault.invalidate(ALICE, "calendar")


def put_raw(vault: TokenVault, ns: tuple[str, ...], key: str, value: Any) -> None:
    """Write any JSON value, the way a damaged database row holds it (SqliteStore.put takes dicts only)."""
    if isinstance(value, dict):
        vault.store.put(ns, key, value)
        return
    with vault.store.conn:
        cur = vault.store.conn.execute("UPDATE store SET value = ? WHERE prefix = ? AND key = ?",
                                       (json.dumps(value), ".".join(ns), key))
    assert cur.rowcount == 1


@pytest.mark.parametrize("name,how", DAMAGE, ids=[d[0] for d in DAMAGE])
async def test_damaged_token_record_typed_everywhere(vault: TokenVault, upstream, name, how, mode):
    damage(vault, how)
    vault.import_token(BOB, "calendar", access_token="opaque-bob-1", scopes=["calendar.read"])
    with pytest.raises(E.CredentialUnavailableError) as exc:
        vault.get_token(ALICE, "calendar") if mode == "sync" else await vault.aget_token(ALICE, "calendar")
    assert exc.value.status == "needs_reauthorization" and "reconnect" in exc.value.for_model()
    status = vault.status(ALICE, "calendar") if mode == "sync" else await vault.astatus(ALICE, "calendar")
    assert status.status == "needs_reauthorization"
    infos = vault.connections(ALICE) if mode == "sync" else await vault.aconnections(ALICE)
    assert [(i.name, i.status) for i in infos] == [("calendar", "unreadable")]
    assert vault.get_token(BOB, "calendar").token == "opaque-bob-1"  # others unaffected
    for text in (str(exc.value), exc.value.for_model(), repr(status), repr(infos)):
        assert SECRET not in text and "seven" not in text and "tomorrow" not in text
    # connecting again overwrites the damaged record
    connect(vault, upstream, ALICE)
    assert vault.status(ALICE, "calendar").ok
    # and revoke of a damaged record deletes it, explaining why
    damage(vault, how)
    result = vault.revoke(ALICE, "calendar")
    assert result.deleted and not result.upstream_revoked and "damaged" in (result.error or "")


def test_error_names_the_fields_not_the_values(vault: TokenVault):
    from langchain_agent_auth.vault._records import TokenRecord

    damage(vault, lambda v: {**v, "scopes": 7, "rev": "seven"})
    value = vault.store.get(user_ns(ALICE.key), "calendar").value
    with pytest.raises(E.VaultRecordError) as exc:
        TokenRecord.from_value(vault.keyring, value, user=ALICE.key, connection="calendar")
    assert str(exc.value) == "stored credential for connection 'calendar' is damaged (rev, scopes)"
    assert isinstance(exc.value, E.VaultError)


def test_extra_fields_are_ignored(vault: TokenVault):
    damage(vault, lambda v: {**v, "junk": {"nested": [1, 2]}, "from_the_future": True})
    assert vault.get_token(ALICE, "calendar").token == SECRET
    assert [i.status for i in vault.connections(ALICE)] == ["active"]


def test_damaged_record_in_a_graph_pauses_to_reconnect(vault: TokenVault, upstream):
    damage(vault, lambda v: {**v, "scopes": 7})
    graph = agent([calendar_tools(upstream.api_url)["list_events"]],
                  [VaultMiddleware(vault, {"list_events": "calendar"})], InMemorySaver())
    result = graph.invoke({"messages": [ask("list_events", day="mon")]}, {"configurable": {"thread_id": "t"}},
                          context={"user": ALICE})
    [payload] = interrupts(result)
    assert payload["type"] == "connect_account" and payload["connection"] == "calendar"
    assert SECRET not in repr(result)


PENDING_DAMAGE: list[tuple[str, Any]] = [
    ("expires-str", lambda v: {**v, "expires_at": "soon"}),
    ("user-int", lambda v: {**v, "user": 5}),
    ("scopes-int", lambda v: {**v, "scopes": 7}),
    ("state-hash-missing", lambda v: {k: x for k, x in v.items() if k != "state_hash"}),
    ("resumed-str", lambda v: {**v, "resumed": "yes"}),
    ("identity-subject-int", lambda v: {**v, "identity": {"subject": 5}}),
    ("not-a-dict", lambda v: "junk"),
]


@pytest.mark.parametrize("name,how", PENDING_DAMAGE, ids=[d[0] for d in PENDING_DAMAGE])
def test_damaged_pending_connect_is_ignored_and_typed(vault: TokenVault, upstream, name, how):
    request = vault.start_connect(ALICE, "calendar", thread_id="t1", tool_call_id="c1")
    value = vault.store.get(PENDING_NS, request.id).value
    put_raw(vault, PENDING_NS, request.id, how(value))
    assert vault.pending_connects(ALICE) == []
    assert vault.mark_resumed(request.id) is False
    state = parse_qs(urlsplit(request.authorize_url).query)["state"][0]
    with pytest.raises(E.CallbackStateError):
        vault.complete_connect(state, "some-code", user=ALICE)
    # starting again makes a fresh, working flow under the same id
    again = vault.start_connect(ALICE, "calendar", thread_id="t1", tool_call_id="c1")
    assert [p.id for p in vault.pending_connects(ALICE)] == [again.id]
    assert vault.purge_pending(older_than=-10**9) == 1


@pytest.mark.parametrize("junk", [{"owner": 5, "expires_at": "later"}, {"expires_at": 10**12}, {"owner": "w0"}])
def test_a_damaged_lease_is_taken_over(junk):
    import httpx
    from langgraph.store.memory import InMemoryStore

    from langchain_agent_auth.core.effects import run
    from langchain_agent_auth.vault._lease import LEASE_NS, StoreLease

    store, lease = InMemoryStore(), StoreLease(settle=0)
    store.put(LEASE_NS, "alice|calendar", junk)
    with httpx.Client() as client:
        assert run(lease.acquire("alice|calendar", "w1", 5), http=client, store=store) is True
        assert run(lease.acquire("alice|calendar", "w2", 5), http=client, store=store) is False
        run(lease.release("alice|calendar", "w1"), http=client, store=store)
        assert store.get(LEASE_NS, "alice|calendar") is None
