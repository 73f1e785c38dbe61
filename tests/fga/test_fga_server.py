"""``agent-auth fga serve``: the OpenFGA HTTP API subset, driven by the real openfga-sdk (sync and async)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from langchain_agent_auth.core.errors import (
    AuthorizationError,
    ConditionError,
    ConfigurationError,
    ProviderUnavailableError,
    TupleError,
)
from langchain_agent_auth.fga import AuthorizationDecision, OpenFGAAuthorizer
from tests.fga._fga_support import SEED_TUPLES, ServerThread, new_store


@pytest.fixture
def remote(fga_server: ServerThread) -> OpenFGAAuthorizer:
    store_id, model_id = new_store(fga_server.url)
    auth = OpenFGAAuthorizer(fga_server.url, store_id, authorization_model_id=model_id)
    auth.write(SEED_TUPLES)
    return auth


def test_sdk_sync_client_end_to_end(fga_server: ServerThread) -> None:
    from openfga_sdk.client import ClientConfiguration
    from openfga_sdk.client.models import ClientCheckRequest, ClientListObjectsRequest, ClientTuple
    from openfga_sdk.models import CreateStoreRequest, ReadRequestTupleKey
    from openfga_sdk.sync import OpenFgaClient

    store_id, model_id = new_store(fga_server.url, "sdk-sync")
    client = OpenFgaClient(
        ClientConfiguration(api_url=fga_server.url, store_id=store_id, authorization_model_id=model_id)
    )
    try:
        client.write_tuples([ClientTuple(user="user:anne", relation="owner", object="document:1")])
        assert client.check(
            ClientCheckRequest(user="user:anne", relation="viewer", object="document:1")
        ).allowed
        assert not client.check(
            ClientCheckRequest(user="user:bob", relation="viewer", object="document:1")
        ).allowed
        objects = client.list_objects(
            ClientListObjectsRequest(user="user:anne", relation="viewer", type="document")
        )
        assert objects.objects == ["document:1"]
        read = client.read(ReadRequestTupleKey(object="document:1"))
        assert [(t.key.user, t.key.relation) for t in read.tuples] == [("user:anne", "owner")]
        assert client.read_latest_authorization_model().authorization_model.id == model_id
        assert any(s.id == store_id for s in client.list_stores().stores)
        assert client.get_store().name == "sdk-sync"
        client.delete_tuples([ClientTuple(user="user:anne", relation="owner", object="document:1")])
        assert not client.check(
            ClientCheckRequest(user="user:anne", relation="viewer", object="document:1")
        ).allowed
        second = client.create_store(CreateStoreRequest(name="to-delete"))
        client.set_store_id(second.id)
        client.delete_store()
    finally:
        client.close()


async def test_sdk_async_client_end_to_end(fga_server: ServerThread) -> None:
    from openfga_sdk import OpenFgaClient
    from openfga_sdk.client import ClientConfiguration
    from openfga_sdk.client.models import ClientBatchCheckItem, ClientBatchCheckRequest, ClientTuple

    store_id, model_id = await asyncio.to_thread(new_store, fga_server.url, "sdk-async")
    async with OpenFgaClient(
        ClientConfiguration(api_url=fga_server.url, store_id=store_id, authorization_model_id=model_id)
    ) as client:
        await client.write_tuples([ClientTuple(user="user:anne", relation="owner", object="document:1")])
        response = await client.batch_check(
            ClientBatchCheckRequest(
                checks=[
                    ClientBatchCheckItem(
                        user="user:anne", relation="viewer", object="document:1", correlation_id="a"
                    ),
                    ClientBatchCheckItem(
                        user="user:bob", relation="viewer", object="document:1", correlation_id="b"
                    ),
                ]
            )
        )
        assert {r.correlation_id: r.allowed for r in response.result} == {"a": True, "b": False}


def test_backend_interface(remote: OpenFGAAuthorizer) -> None:
    sink: list[AuthorizationDecision] = []
    remote.on_decision = sink.append
    assert remote.check("user:anne", "viewer", "document:spec")
    assert not remote.check("user:anne", "viewer", "document:budget")
    assert remote.check(
        "user:zed", "viewer", "document:spec", contextual_tuples=[("user:zed", "member", "group:eng")]
    )
    decisions = remote.batch_check(
        [
            ("user:anne", "viewer", "document:spec"),
            ("user:bob", "viewer", "document:spec"),
            ("user:anne", "nope", "document:spec"),
        ]
    )
    assert [d.allowed for d in decisions] == [True, False, False] and decisions[2].error
    assert all(d.backend == "openfga" for d in sink) and len(sink) == 6
    assert remote.list_objects("user:anne", "viewer", "document") == ["document:handbook", "document:spec"]
    assert remote.list_users("document:spec", "viewer", "user") == ["user:anne"]
    assert remote.list_users("document:handbook", "viewer", "user") == ["user:*"]
    assert remote.list_users("folder:eng", "viewer", "group#member") == ["group:eng#member"]
    remote.write(
        [
            {
                "user": "user:eve",
                "relation": "viewer",
                "object": "document:memo",
                "condition": {"name": "in_hours"},
            }
        ]
    )
    assert remote.check("user:eve", "viewer", "document:memo", context={"hour": 10})
    remote.delete([("user:eve", "viewer", "document:memo")])
    assert not remote.check("user:eve", "viewer", "document:memo", context={"hour": 10})
    remote.write([(f"user:u{i}", "viewer", "document:big") for i in range(150)])  # > 100: chunked
    assert remote.check("user:u149", "viewer", "document:big")


def test_backend_errors_are_typed(remote: OpenFGAAuthorizer) -> None:
    remote.write(
        [
            {
                "user": "user:eve",
                "relation": "viewer",
                "object": "document:memo",
                "condition": {"name": "in_hours"},
            }
        ]
    )
    with pytest.raises(ConditionError, match="missing"):
        remote.check("user:eve", "viewer", "document:memo")
    with pytest.raises(AuthorizationError) as info:
        remote.check("user:anne", "viewer", "nope:1")
    assert info.value.code == 2000
    with pytest.raises(TupleError) as info:
        remote.list_objects("user:anne", "viewer", "nope")
    assert info.value.code == 2021
    with pytest.raises(AuthorizationError):
        remote.write([("user:anne", "viewer", "nope:1")])
    dead = OpenFGAAuthorizer("http://127.0.0.1:9", remote.store_id, timeout_ms=500)
    with pytest.raises(ProviderUnavailableError):
        dead.check("user:anne", "viewer", "document:spec")
    assert all(not d.allowed and d.error for d in dead.batch_check([("user:a", "viewer", "document:spec")]))


async def test_backend_async(remote: OpenFGAAuthorizer) -> None:
    assert await remote.acheck("user:anne", "viewer", "document:spec")
    results = await asyncio.gather(
        *(remote.acheck("user:anne", "viewer", "document:spec") for _ in range(10))
    )
    assert all(results)
    decisions = await remote.abatch_check([(f"user:u{i}", "viewer", "document:handbook") for i in range(120)])
    assert len(decisions) == 120 and all(d.allowed for d in decisions)  # 3 requests of 50, in order
    assert await remote.alist_objects("user:bob", "viewer", "document") == [
        "document:budget",
        "document:handbook",
    ]
    assert await remote.alist_users("document:budget", "viewer", "user") == ["user:bob"]
    await remote.awrite([("user:carl", "owner", "document:x")])
    assert await remote.acheck("user:carl", "viewer", "document:x")
    await remote.adelete([("user:carl", "owner", "document:x")])
    await remote.aclose()


def test_http_errors_and_token(fga_server: ServerThread) -> None:
    with httpx.Client(base_url=fga_server.url) as http:
        assert http.post("/stores/nope/check", json={}).json()["code"] == "store_id_not_found"
        assert http.post("/stores", content=b"{not json").status_code == 400
        store_id, _ = new_store(fga_server.url)
        r = http.post(
            f"/stores/{store_id}/check",
            json={"tuple_key": {"user": "user:a", "relation": "viewer", "object": "ghost:1"}},
        )
        assert r.status_code == 400 and r.json()["code"] == "validation_error"
        r = http.post(
            f"/stores/{store_id}/write",
            json={
                "writes": {
                    "tuple_keys": [
                        {"user": f"user:{i}", "relation": "owner", "object": "document:1"} for i in range(101)
                    ]
                }
            },
        )
        assert r.json()["code"] == "exceeded_entity_limit"
        r = http.post(
            f"/stores/{store_id}/authorization-models",
            json={"schema_version": "1.1", "type_definitions": [{"type": "x"}, {"type": "x"}]},
        )
        assert r.json()["code"] == "invalid_authorization_model"
        assert http.get("/nothing/here").status_code == 404
    locked = ServerThread(api_token="s3cret-token-value")
    try:
        with httpx.Client(base_url=locked.url) as http:
            assert http.get("/stores").status_code == 401
            assert (
                http.get("/stores", headers={"Authorization": "Bearer s3cret-token-value"}).status_code == 200
            )
        store_id, model_id = new_store_with_token(locked.url, "s3cret-token-value")
        auth = OpenFGAAuthorizer(
            locked.url, store_id, authorization_model_id=model_id, api_token="s3cret-token-value"
        )
        auth.write([("user:anne", "owner", "document:1")])
        assert auth.check("user:anne", "viewer", "document:1")
        with pytest.raises(ConfigurationError):
            OpenFGAAuthorizer(locked.url, store_id, api_token="wrong").check(
                "user:anne", "viewer", "document:1"
            )
    finally:
        locked.stop()


def new_store_with_token(url: str, token: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        store_id = http.post("/stores", json={"name": "locked"}).json()["id"]
        from langchain_agent_auth.fga import AuthorizationModel
        from tests.fga._fga_support import DOCS_MODEL

        model = AuthorizationModel.from_dsl(DOCS_MODEL).to_json()
        model_id = http.post(f"/stores/{store_id}/authorization-models", json=model).json()[
            "authorization_model_id"
        ]
        return store_id, model_id


def test_persistent_server_keeps_stores(tmp_path) -> None:
    db = str(tmp_path / "server.sqlite")
    first = ServerThread(db=db)
    try:
        store_id, model_id = new_store(first.url, "kept")
        OpenFGAAuthorizer(first.url, store_id, authorization_model_id=model_id).write(SEED_TUPLES)
    finally:
        first.stop()
    second = ServerThread(db=db)
    try:
        auth = OpenFGAAuthorizer(second.url, store_id, authorization_model_id=model_id)
        assert auth.check("user:anne", "viewer", "document:spec")
    finally:
        second.stop()


def test_cli_serve_port_zero_is_usable() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_agent_auth.cli", "fga", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "listening on http://127.0.0.1:" in line, line
        url = line.strip().rsplit(" ", 1)[-1]
        ready = proc.stdout.readline()  # type: ignore[union-attr]
        assert ready.startswith("READY "), ready
        info = json.loads(ready[len("READY "):])
        assert info["api_url"] == url and info["auth"] == "bearer" and len(info["api_token"]) >= 32
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        # no token, or a wrong one: nothing is written (another local process cannot add tuples)
        for headers in ({}, {"Authorization": "Bearer nope"}):
            refused = httpx.post(f"{url}/stores", json={"name": "mallory"}, headers=headers)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
            assert refused.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {info['api_token']}"}
        store = httpx.post(f"{url}/stores", json={"name": "cli"}, headers=auth).json()
        assert json.loads(httpx.get(f"{url}/stores/{store['id']}", headers=auth).text)["name"] == "cli"
        assert [s["name"] for s in httpx.get(f"{url}/stores", headers=auth).json()["stores"]] == ["cli"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_serve_no_auth_is_explicit() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_agent_auth.cli", "fga", "serve", "--port", "0", "--no-auth"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        proc.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(proc.stdout.readline()[len("READY "):])  # type: ignore[union-attr]
        assert info["auth"] == "none" and info["api_token"] is None
        for _ in range(100):
            try:
                if httpx.get(f"{info['api_url']}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.post(f"{info['api_url']}/stores", json={"name": "open"}).status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_serve_uses_the_shared_nodelay_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from langchain_agent_auth import cli
    from langchain_agent_auth.cli import _fga as _cli
    from langchain_agent_auth.core._serving import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        # asyncio sets TCP_NODELAY on accepted sockets only when the listener says it is TCP
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
    calls = []

    def refuse(host: str, port: int) -> socket.socket:
        calls.append((host, port))
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(_cli, "bind_socket", refuse)
    assert cli.main(["fga", "serve", "--port", "1"]) == 2
    assert calls == [("127.0.0.1", 1)]


def test_missing_sdk_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openfga_sdk", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'langchain-agent-auth\[openfga\]'"):
        OpenFGAAuthorizer("http://127.0.0.1:1", "store")
    with pytest.raises(ConfigurationError, match="api_url and store_id"):
        OpenFGAAuthorizer("", "")


def _batch_case() -> list[object]:
    from langchain_agent_auth.fga import CheckRequest

    checks: list[object] = [(f"user:u{i}", "viewer", "document:handbook") for i in range(60)]
    checks += [
        CheckRequest("user:eve", "viewer", "document:memo", context={"hour": 10}, correlation_id="mine"),
        CheckRequest("user:eve", "viewer", "document:memo", context={"hour": 22}),
        CheckRequest("user:eve", "viewer", "document:memo"),  # the condition misses "hour": an error
        CheckRequest("user:zed", "viewer", "document:spec", contextual_tuples=[("user:zed", "member", "group:eng")]),
        ("user:zed", "viewer", "document:spec"),
        ("user:anne", "nope", "document:spec"),
    ]
    return checks


def _expected(decisions: list[AuthorizationDecision]) -> None:
    assert len(decisions) == 66
    assert all(d.allowed and d.error is None for d in decisions[:60])  # 2 requests, order kept
    tail = decisions[60:]
    assert [d.allowed for d in tail] == [True, False, False, True, False, False]
    assert tail[0].correlation_id == "mine"
    assert tail[2].error and "hour" in tail[2].error and tail[5].error
    assert [d.error is None for d in tail] == [True, True, False, True, True, False]


def test_batch_check_per_item_context_and_tuples_sync_and_async(remote: OpenFGAAuthorizer) -> None:
    remote.write(
        [{"user": "user:eve", "relation": "viewer", "object": "document:memo", "condition": {"name": "in_hours"}}]
    )
    remote.max_batch_size = 50
    _expected(remote.batch_check(_batch_case()))

    async def run() -> list[AuthorizationDecision]:
        try:
            return await remote.abatch_check(_batch_case())
        finally:
            await remote.aclose()

    _expected(asyncio.run(run()))
    shared = remote.batch_check([("user:eve", "viewer", "document:memo")], context={"hour": 11})
    assert shared[0].allowed


def test_batch_check_sends_no_sdk_model_per_item(remote: OpenFGAAuthorizer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fast path: plain JSON bodies through the SDK client, not one ClientBatchCheckItem each.
    import openfga_sdk.client.models as models

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("ClientBatchCheckItem built")

    monkeypatch.setattr(models, "ClientBatchCheckItem", boom)
    decisions = remote.batch_check([(f"user:u{i}", "viewer", "document:handbook") for i in range(120)])
    assert len(decisions) == 120 and all(d.allowed for d in decisions)
