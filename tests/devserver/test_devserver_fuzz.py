"""Fuzz every route of the local provider: bad values, missing, duplicate and extra parameters,
wrong content types, invalid UTF-8, deep nesting, huge and chunked bodies, wrong methods. With
and without credentials (client, admin, bank token, browser session). Never a 5xx; OAuth
endpoints answer errors in RFC 6749 §5.2 shape. Deterministic (seeded), in-process, bounded.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.routing import Route

from langchain_agent_auth.devserver._app import build_app
from langchain_agent_auth.devserver._core import Provider
from langchain_agent_auth.devserver._store import Store

try:  # the HTTP library Starlette's TestClient uses, so requests go out encoded as with it
    import httpx2 as http
except ModuleNotFoundError:  # pragma: no cover
    import httpx as http  # type: ignore[no-redef]

BASE = "http://127.0.0.1:9"
PROBE_REQUESTS = 3_812  # what the security probe sent to this server
CASES_PER_ROUTE = 100
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
OAUTH_JSON = {
    "/token",
    "/bc-authorize",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/upstream/token",
    "/upstream/introspect",
    "/upstream/revoke",
    "/upstream/userinfo",
}
ERROR_CHARS = re.compile(r"^[\x20\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 §5.2
PARAMS = [
    "grant_type", "client_id", "client_secret", "code", "redirect_uri", "code_verifier", "refresh_token",
    "scope", "resource", "audience", "auth_req_id", "subject_token", "subject_token_type", "actor_token",
    "actor_token_type", "requested_token_type", "login_hint", "binding_message", "authorization_details",
    "requested_expiry", "token", "token_type_hint", "response_type", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "csrf", "username", "password", "next", "decision", "connection",
    "client_assertion", "client_assertion_type", "id_token_hint", "request", "user", "status", "reason",
    "amount", "currency", "creditorName", "creditorAccount", "sub", "email", "name", "realm", "jwks",
    "grant_types", "redirect_uris", "token_endpoint_auth_method", "title", "start", "end", "action",
]
GOOD = {
    "grant_type": ["client_credentials", "authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba",
                   "urn:ietf:params:oauth:grant-type:token-exchange",
                   "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"],
    "scope": ["openid", "api:read", "openid offline_access bank:transfer", "calendar.read"],
    "resource": ["urn:example:api", "urn:agent-auth:demo-api"],
    "response_type": ["code"],
    "login_hint": ["alice", "bob@example.com", '{"format":"iss_sub","iss":"x","sub":"alice"}'],
    "subject_token_type": ["urn:ietf:params:oauth:token-type:access_token",
                           "urn:ietf:params:oauth:token-type:id_token"],
    "client_id": ["agent-client", "vault-connect"],
    "redirect_uri": ["http://127.0.0.1/callback"],
    "code_challenge_method": ["S256", "plain"],
    "decision": ["allow", "deny"],
    "connection": ["demo-upstream"],
}
HOSTILE: list[Any] = [
    "", "x", "a" * 5000, "\x00", "\u202egnp.exe", "\x1b[2J", "%ff", "null", "[]", "{}", "[" * 3000,
    "-1", "0", "1e400", "NaN", "true", "\U0001f642", "'; DROP TABLE users; --", "../../etc/passwd",
    '{"type":"payment_initiation","instructedAmount":{"amount":"1","currency":"EUR"}}',
    json.dumps([{"type": "payment_initiation", "instructedAmount": {"amount": "1e9", "currency": "EUR"}}]),
    json.dumps([[[[[[[[[[{"type": "agent_action"}]]]]]]]]]]),
]
JSON_VALUES: list[Any] = [
    None, True, 0, -1, 10**40, 1.5, "x", "a" * 5000, [], {}, [1, "2", None], {"a": {"b": {"c": []}}},
    "\u202e", [{"type": "payment_initiation"}],
]
PATH_VALUES = ["x", "req_0000000000000000", "alice", "demo-upstream", "revoke", "expire", "a" * 300, "%2e%2e",
               "%00", quote("\u202e")]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


class _Client:
    """A blocking face over one ``AsyncClient`` on the app's ASGI interface: its requests run on
    the module's one event loop, in this thread (Starlette's TestClient hands every request to
    an event-loop thread, several times over). It calls from a loopback address, as a real
    caller of the admin API does (TestClient's default host "testclient" is not one)."""

    def __init__(self, app: Any, runner: asyncio.Runner) -> None:
        transport = http.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 50000))
        self.client = http.AsyncClient(transport=transport, base_url=BASE, follow_redirects=False)
        self.runner = runner

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        content = kwargs.get("content")
        if isinstance(content, Iterator):  # a streamed body, chunk by chunk
            kwargs["content"] = _chunks(content)
        return self.runner.run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)


async def _chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class Env:
    def __init__(self, tmp: Path) -> None:
        self.store = Store(tmp / "fuzz", busy_timeout=0.5)
        self.provider = Provider(self.store, BASE)
        app = build_app(self.provider)
        self.runner = asyncio.Runner()
        self.anon, self.user = _Client(app, self.runner), _Client(app, self.runner)
        page = self.user.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        password = self.store.secrets.users["alice"]
        signed_in = self.user.post("/login", data={"username": "alice", "password": password, "csrf": csrf})
        assert signed_in.status_code == 303
        secret = self.store.secrets.clients["agent-client"]
        self.basic = ("agent-client", secret)
        bank = self.anon.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "bank:read", "resource": "urn:agent-auth:demo-api"},
            auth=self.basic,
        )
        self.bearers = {
            "admin": self.store.secrets.admin_token,
            "bank": bank.json()["access_token"],
        }

    def close(self) -> None:
        for client in (self.anon, self.user):
            self.runner.run(client.client.aclose())
        self.runner.close()
        self.store.close()


def _routes() -> list[tuple[str, list[str]]]:
    import tempfile

    with tempfile.TemporaryDirectory() as store_dir:  # collection leaves no store behind
        provider = Provider(Store(Path(store_dir)), BASE)
        app = build_app(provider)
        out = [
            (r.path, sorted(r.methods or []))
            for r in app.app.routes  # type: ignore[attr-defined]
            if isinstance(r, Route)
        ]
        provider.store.close()
    return out


ROUTES = _routes()


def _fill(path: str, rng: random.Random) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: rng.choice(PATH_VALUES), path)


def _pairs(rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for name in rng.sample(PARAMS, rng.randint(0, 8)):
        pool = GOOD.get(name, []) + HOSTILE
        pairs.append((name, rng.choice(pool)))
        if rng.random() < 0.15:
            pairs.append((name, rng.choice(pool)))  # duplicated
    if rng.random() < 0.2:
        pairs.append((f"extra_{rng.randint(0, 99)}", rng.choice(HOSTILE)))
    return pairs


def _json_body(rng: random.Random) -> Any:
    if rng.random() < 0.15:
        return rng.choice(JSON_VALUES)  # not an object
    return {name: rng.choice(JSON_VALUES + HOSTILE) for name in rng.sample(PARAMS, rng.randint(0, 6))}


def _auth(rng: random.Random, env: Env) -> dict[str, str]:
    choice = rng.randrange(6)
    if choice == 0:
        return {}
    if choice == 1:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(":".join(env.basic).encode()).decode()}
    if choice == 2:
        return {"Authorization": "Basic !!!not-base64"}
    if choice == 3:
        return {"Authorization": f"Bearer {env.bearers['admin']}"}
    if choice == 4:
        return {"Authorization": f"Bearer {env.bearers['bank']}"}
    return {"Authorization": rng.choice(["Bearer", "Bearer " + "x" * 3000, "Digest abc", "Bearer \x7f"])}


def cases(path: str, methods: list[str], env: Env | None) -> Iterator[dict[str, Any]]:
    """Deterministic requests for one route (``env`` None: only count them)."""
    rng = random.Random(path)
    n = 0
    for method in METHODS:
        if method not in methods:
            n += 1
            yield {"method": method, "url": _fill(path, rng)}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    structural: list[dict[str, Any]] = [
        {"content": b"", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b"a=%ff%fe&b=\xff\xfe", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b"\xff\xfe\xfd", "headers": {"Content-Type": "application/json"}},
        {"content": b"grant_type=client_credentials", "headers": {"Content-Type": "text/plain"}},
        {"content": b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
         "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
        {"content": _deep(5000).encode(), "headers": {"Content-Type": "application/json"}},
        {"content": ("authorization_details=" + quote(_deep(1000))).encode(),
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b"x=" + b"a" * (2 * 1024 * 1024), "headers": form},
        {"content": iter([b"x=" + b"a" * 65536] * 40), "headers": form},  # chunked, no length
        {"content": b"a=1&a=2&a=3&" + b"&".join(b"k%d=v" % i for i in range(300)),
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"raw_query": "a=%zz&b=%ff%fe&c=\u202e&" + "d=1&" * 300},
        {"content": ("login_hint=alice&scope=openid&grant_type=client_credentials&authorization_details="
                     + quote(_deep(1000))).encode(),
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": json.dumps({"authorization_details": json.loads(_deep(350)), "user": "alice",
                                "amount": "1", "currency": "EUR"}).encode(),
         "headers": {"Content-Type": "application/json"}},
    ]
    body_method = "POST" if "POST" in methods else methods[0]
    for auth in ("none", "basic", "admin", "bank"):
        for extra in structural:
            n += 1
            case = {"method": body_method, "url": _fill(path, rng), "auth": auth, **extra}
            if isinstance(extra.get("content"), Iterator):
                case["content"] = iter([b"x=" + b"a" * 65536] * 40)  # a fresh stream per request
            yield case
    while n < CASES_PER_ROUTE:
        n += 1
        method = rng.choice(methods)
        case: dict[str, Any] = {"method": method, "url": _fill(path, rng), "session": rng.random() < 0.5}
        if env is not None:
            case["headers"] = _auth(rng, env)
        if method in ("GET", "HEAD") or rng.random() < 0.2:
            case["params"] = _pairs(rng)
        if method == "POST":
            if rng.random() < 0.6:
                case["data"] = _pairs(rng)
            else:
                case["json"] = _json_body(rng)
        yield case


def _send(env: Env, case: dict[str, Any]) -> Any:
    client = env.user if case.pop("session", False) else env.anon
    method, url = case.pop("method"), case.pop("url")
    raw_query = case.pop("raw_query", None)
    if raw_query is not None:
        url = url + "?" + raw_query
    headers = case.pop("headers", {})
    auth = case.pop("auth", "none")
    if auth == "basic":
        import base64

        headers = {**headers, "Authorization": "Basic " + base64.b64encode(":".join(env.basic).encode()).decode()}
    elif auth in env.bearers:
        headers = {**headers, "Authorization": f"Bearer {env.bearers[auth]}"}
    if "data" in case:
        from urllib.parse import urlencode

        case["content"] = urlencode(case.pop("data")).encode()
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    return client.request(method, url, headers=headers, **case)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    created = Env(tmp_path_factory.mktemp("fuzz"))
    yield created
    created.close()


def test_admin_requests_get_past_the_loopback_check(env: Env) -> None:
    """The admin bearer cases reach the admin API's handlers, not only its loopback refusal."""
    answer = env.anon.get("/admin/health", headers={"Authorization": f"Bearer {env.bearers['admin']}"})
    assert answer.status_code == 200, answer.text


def test_the_fuzz_covers_at_least_the_probe() -> None:
    total = sum(1 for path, methods in ROUTES for _ in cases(path, methods, None))
    assert len(ROUTES) >= 45 and total >= PROBE_REQUESTS, (len(ROUTES), total)


@pytest.mark.parametrize("path,methods", ROUTES, ids=[p for p, _ in ROUTES])
def test_no_route_answers_5xx(env: Env, path: str, methods: list[str]) -> None:
    failures = []
    for case in cases(path, methods, env):
        shown = {k: (v if not isinstance(v, bytes | str) or len(v) < 80 else f"<{len(v)}>") for k, v in case.items()
                 if k != "content" or isinstance(v, bytes | str)}
        method = case["method"]
        response = _send(env, case)
        if response.status_code >= 500:
            failures.append((response.status_code, shown, response.text[:200]))
            continue
        if path in OAUTH_JSON and response.status_code >= 400 and method != "HEAD":
            body = response.json()
            description = body.get("error_description", "x")
            if not (isinstance(body.get("error"), str) and ERROR_CHARS.match(body["error"])
                    and isinstance(description, str) and ERROR_CHARS.match(description)):
                failures.append((response.status_code, shown, response.text[:200]))
    assert not failures, failures[:5]
