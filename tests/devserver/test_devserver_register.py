"""Clients an MCP client brings itself: RFC 7591 dynamic registration and Client ID Metadata
Documents at the local provider, and every way to misuse them."""

from __future__ import annotations

import httpx
import pytest

from langchain_agent_auth.devserver import _register
from langchain_agent_auth.devserver._register import is_cimd_url, redirect_uri_ok
from tests.support.browser import ServedApp

GOOD = {"client_name": "notes agent", "redirect_uris": ["http://127.0.0.1:8976/callback"],
        "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}


def test_metadata_advertises_registration_and_metadata_documents(idp):
    meta = httpx.get(idp.issuer + "/.well-known/oauth-authorization-server").json()
    assert meta["registration_endpoint"] == idp.issuer + "/register"
    assert meta["client_id_metadata_document_supported"] is True


@pytest.mark.parametrize("method", ["none", "client_secret_basic", "client_secret_post"])
def test_a_client_registers_and_gets_what_it_asked_for(idp, method):
    r = httpx.post(idp.issuer + "/register", json={**GOOD, "token_endpoint_auth_method": method})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["client_id"].startswith("dyn-") and body["token_endpoint_auth_method"] == method
    assert body["redirect_uris"] == GOOD["redirect_uris"] and "client_id_issued_at" in body
    assert ("client_secret" in body) == (method != "none")
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("change,error", [
    ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"redirect_uris": "http://127.0.0.1/cb"}, "invalid_redirect_uri"),
    ({"redirect_uris": [f"http://127.0.0.1/{i}" for i in range(11)]}, "invalid_redirect_uri"),
    ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ({"grant_types": ["authorization_code", "urn:openid:params:grant-type:ciba"]}, "invalid_client_metadata"),
    ({"grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"]}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
    ({"response_types": ["token"]}, "invalid_client_metadata"),
    ({"client_name": "a\u202eb"}, "invalid_client_metadata"),
    ({"client_name": "x" * 500}, "invalid_client_metadata"),
    ({"scope": 7}, "invalid_client_metadata"),
])
def test_what_a_dynamic_client_may_not_ask_for_is_refused(idp, change, error):
    r = httpx.post(idp.issuer + "/register", json={**GOOD, **change})
    assert r.status_code == 400 and r.json()["error"] == error, r.text


@pytest.mark.parametrize("body", [b"[]", b"not json", b"{" * 2000, b'{"a": ' * 300 + b"1" + b"}" * 300])
def test_malformed_bodies_are_400(idp, body):
    r = httpx.post(idp.issuer + "/register", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_registrations_are_capped(idp, monkeypatch):
    existing = idp._store.one("SELECT COUNT(*) AS n FROM clients WHERE client_id LIKE 'dyn-%'")["n"] \
        if getattr(idp, "_store", None) is not None else None
    if existing is None:
        pytest.skip("provider store not reachable in-process")
    monkeypatch.setattr(_register, "MAX_DYNAMIC_CLIENTS", existing + 1)
    assert httpx.post(idp.issuer + "/register", json=GOOD).status_code == 201
    r = httpx.post(idp.issuer + "/register", json=GOOD)
    assert r.status_code == 400 and "limit" in r.json()["error_description"]


def test_url_rules():
    assert redirect_uri_ok("https://app.example/cb") and redirect_uri_ok("http://localhost:1/cb")
    assert not redirect_uri_ok("http://app.example/cb") and not redirect_uri_ok("javascript:alert(1)")
    assert is_cimd_url("https://agent.example/cimd.json") and is_cimd_url("http://127.0.0.1:9/c.json")
    assert not is_cimd_url("https://agent.example/") and not is_cimd_url("http://agent.example/c.json")
    assert not is_cimd_url("https://agent.example/c.json?x=1") and not is_cimd_url("agent-client")


class _Docs:
    """Serves metadata documents on loopback: path -> (status, JSON body or raw bytes)."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        self.docs: dict[str, tuple[int, object]] = {}

        async def serve(request):
            status, body = self.docs.get(request.url.path, (404, {}))
            if isinstance(body, bytes):
                return Response(body, status_code=status, media_type="application/json")
            return JSONResponse(body, status_code=status)

        self._served = ServedApp(Starlette(routes=[Route("/{p:path}", serve)]))

    def url(self, path: str) -> str:
        return self._served.url + path

    def close(self) -> None:
        self._served.stop()


@pytest.fixture(scope="module")
def docs():
    server = _Docs()
    yield server
    server.close()


def _authorize(idp, client_id: str) -> httpx.Response:
    return httpx.get(idp.issuer + "/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": GOOD["redirect_uris"][0],
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
        "state": "s1", "scope": "openid"})


def test_a_metadata_document_becomes_a_public_client(idp, docs):
    url = docs.url("/good/cimd.json")
    docs.docs["/good/cimd.json"] = (200, {**GOOD, "client_id": url})
    r = _authorize(idp, url)
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]  # known client: sign-in next


@pytest.mark.parametrize("path,doc", [
    ("/other-id/cimd.json", {**GOOD, "client_id": "https://someone.else/cimd.json"}),
    ("/secret/cimd.json", {**GOOD, "token_endpoint_auth_method": "client_secret_basic"}),
    ("/ciba/cimd.json", {**GOOD, "grant_types": ["urn:openid:params:grant-type:ciba"]}),
    ("/evil-redirect/cimd.json", {**GOOD, "redirect_uris": ["http://evil.example/cb"]}),
    ("/missing/cimd.json", None),
    ("/huge/cimd.json", b'{"client_id": "' + b"x" * 70_000 + b'"}'),
    ("/deep/cimd.json", b"[" * 5000 + b"]" * 5000),
])
def test_a_bad_metadata_document_is_no_client(idp, docs, path, doc):
    url = docs.url(path)
    if doc is not None:
        docs.docs[path] = (200, doc if isinstance(doc, bytes) else {**doc, **({} if "client_id" in doc and
                                                                             path == "/other-id/cimd.json"
                                                                             else {"client_id": url})})
    r = _authorize(idp, url)
    assert r.status_code == 400, (r.status_code, r.headers.get("location"))
