"""Fuzz every route of ``agent-auth fga serve``'s app: hostile JSON shapes in every field, deep
nesting, invalid UTF-8, wrong content types, huge and chunked bodies, wrong methods, missing or
wrong bearer tokens. Never a 5xx; every error is OpenFGA's ``{"code", "message"}``.
Deterministic (seeded), in-process, bounded.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from langchain_agent_auth.cli._fga_server import MAX_BODY_BYTES, create_app

PROBE_REQUESTS = 588  # what the security probe sent to this server
CASES_PER_ROUTE = 50
TOKEN = "fuzz-token-0123456789"
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
MODEL = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "document",
            "relations": {"viewer": {"this": {}}},
            "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}},
        },
    ],
}
FIELDS = [
    "tuple_key", "tuple_keys", "writes", "deletes", "checks", "user", "relation", "object", "type",
    "context", "contextual_tuples", "authorization_model_id", "page_size", "continuation_token",
    "user_filters", "correlation_id", "name", "schema_version", "type_definitions", "conditions",
    "consistency", "on_duplicate", "on_missing",
]
VALUES: list[Any] = [
    None, True, 0, -1, 10**40, 1.5, "", "x", "a" * 5000, "user:anne", "document:1", "viewer", "document",
    [], {}, [1, "2", None], {"tuple_keys": "x"}, {"tuple_keys": [{"user": 1}]}, {"user": [], "object": {}},
    {"user": "user:anne", "relation": "viewer", "object": "document:1"}, [{"type": "user"}],
    {"type": "document", "id": 5}, [{"tuple_key": "x", "correlation_id": 1}], "\u202e", "\x00",
    {"a": {"b": {"c": {"d": []}}}},
]
PATH_VALUES = ["missing", "%00", "a" * 300, "..", "01HZZZZZZZZZZZZZZZZZZZZZZZ"]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def _routes() -> list[tuple[str, list[str]]]:
    app = create_app()
    return [(r.path, sorted(r.methods or [])) for r in app.routes if isinstance(r, Route)]


ROUTES = _routes()


def cases(path: str, methods: list[str], store_id: str, model_id: str) -> Iterator[dict[str, Any]]:
    rng = random.Random(path)
    n = 0

    def url(method: str = "GET") -> str:
        if method != "DELETE" and rng.random() < 0.7:  # keep the store alive for the other routes
            filled = path.replace("{store_id}", store_id).replace("{model_id}", model_id)
        else:
            filled = path
        return re.sub(r"\{[^}]+\}", lambda _: rng.choice(PATH_VALUES), filled)

    for method in METHODS:
        if method not in methods:
            n += 1
            yield {"method": method, "url": url(method)}
    body_method = "POST" if "POST" in methods else methods[0]
    structural: list[dict[str, Any]] = [
        {"content": _deep(1000).encode()},
        {"content": json.dumps({"tuple_key": json.loads(_deep(300))}).encode()},
        {"content": b"\xff\xfe{"},
        {"content": b"{not json"},
        {"content": b"[]"},
        {"content": b'"string"'},
        {"content": b"x" * (MAX_BODY_BYTES + 10)},
        {"chunked": True},
        {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
        {"content": b"{}", "headers": {"Authorization": "Bearer wrong"}},
        {"content": b"{}", "headers": {"Authorization": ""}},
    ]
    for extra in structural:
        n += 1
        yield {"method": body_method, "url": url(body_method), **extra}
    while n < CASES_PER_ROUTE:
        n += 1
        method = rng.choice(methods)
        case: dict[str, Any] = {"method": method, "url": url(method)}
        if case["method"] == "POST":
            body = {name: rng.choice(VALUES) for name in rng.sample(FIELDS, rng.randint(0, 5))}
            case["content"] = json.dumps(body).encode()
        elif rng.random() < 0.5:
            case["params"] = {rng.choice(FIELDS): str(rng.choice(VALUES))[:200]}
        yield case


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[TestClient, str, str]]:
    client = TestClient(create_app(api_token=TOKEN), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    store_id = client.post("/stores", json={"name": "fuzz"}).json()["id"]
    model_id = client.post(f"/stores/{store_id}/authorization-models", json=MODEL).json()["authorization_model_id"]
    client.post(
        f"/stores/{store_id}/write",
        json={"writes": {"tuple_keys": [{"user": "user:anne", "relation": "viewer", "object": "document:1"}]}},
    )
    yield client, store_id, model_id
    client.close()


def test_the_fuzz_covers_at_least_the_probe() -> None:
    total = sum(1 for path, methods in ROUTES for _ in cases(path, methods, "s", "m"))
    assert total >= PROBE_REQUESTS, total


@pytest.mark.parametrize("path,methods", ROUTES, ids=[p for p, _ in ROUTES])
def test_no_route_answers_5xx(server: tuple[TestClient, str, str], path: str, methods: list[str]) -> None:
    client, store_id, model_id = server
    failures = []
    for case in cases(path, methods, store_id, model_id):
        method, target = case.pop("method"), case.pop("url")
        headers = case.pop("headers", {"Content-Type": "application/json"})
        if case.pop("chunked", False):
            case["content"] = iter([b"[" * 65536] * ((MAX_BODY_BYTES // 65536) + 4))
        response = client.request(method, target, headers=headers, **case)
        if response.status_code >= 500:
            failures.append((response.status_code, method, target[:80], response.text[:200]))
        elif response.status_code >= 400 and method != "HEAD":
            body = response.json()
            if not (isinstance(body.get("code"), str) and isinstance(body.get("message"), str)):
                failures.append((response.status_code, method, target[:80], response.text[:200]))
    assert not failures, failures[:5]
    if "{store_id}" in path:
        assert client.get(f"/stores/{store_id}").status_code == 200  # the cases reached a live store


async def test_a_huge_chunked_body_is_refused_without_reading_it_all() -> None:
    app = create_app()
    received: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        if len(received) > 10_000:  # 640 MB: the probe's 400 MB upload and more
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": b" " * 65536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/stores", "raw_path": b"/stores", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["code"] == "validation_error"
    assert len(received) <= MAX_BODY_BYTES // 65536 + 2  # stopped at the limit, not at the end


def test_deep_json_and_wrong_types_are_400_on_every_post_route(server: tuple[TestClient, str, str]) -> None:
    client, store_id, _ = server
    posts = [
        path.replace("{store_id}", store_id) for path, methods in ROUTES if "POST" in methods and "{path" not in path
    ]
    assert len(posts) == 8
    for path in posts:
        r = client.post(path, content=_deep(1000), headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "validation_error", (path, r.text)
    r = client.post(f"/stores/{store_id}/read", json={"tuple_key": {"object": ["document:1"]}})
    assert r.status_code == 400 and "tuple_key.object" in r.json()["message"]
