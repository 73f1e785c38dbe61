"""Hostile and malformed input on every endpoint: each gets the spec's error response (JSON
with ``error`` and the right status; an HTML page for the browser pages), never a 500 or a
traceback, and the provider's state stays intact."""

from __future__ import annotations

import json

import httpx
import pytest

from langchain_agent_auth.devserver import LocalProvider
from langchain_agent_auth.errors import InvalidRequestError
from tests.devserver.devserver_helpers import AT_TYPE, CIBA, FEDERATED, RT_TYPE, TE, ProviderHandle

JSON_POST = [
    "/token",
    "/bc-authorize",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/upstream/token",
    "/upstream/introspect",
    "/upstream/revoke",
    "/api/calendar/events",
    "/api/bank/transfers",
    "/admin/approvals/req_x/approve",
    "/admin/approvals/req_x/deny",
    "/admin/users",
    "/admin/clients",
    "/admin/connections",
    "/admin/upstream/outage",
    "/admin/upstream/users/alice/revoke",
]
JSON_GET = [
    "/.well-known/openid-configuration",
    "/jwks",
    "/userinfo",
    "/api/calendar/events",
    "/api/bank/balance",
    "/api/bank/transfers",
    "/admin/approvals",
    "/admin/stats",
    "/admin/connections",
    "/upstream/userinfo",
    "/.well-known/oauth-authorization-server/upstream",
    "/nope",
    "/admin/nope",
]
PAGES = [
    ("GET", "/authorize"),
    ("POST", "/authorize"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/approvals"),
    ("POST", "/approvals/req_x/approve"),
    ("POST", "/approvals/req_x/deny"),
    ("GET", "/connections"),
    ("GET", "/connections/callback"),
    ("GET", "/connections/nope/connect"),
    ("POST", "/connections/nope/disconnect"),
    ("GET", "/upstream/authorize"),
    ("POST", "/upstream/login"),
    ("GET", "/"),
]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODIES: list[tuple[str, bytes, dict[str, str]]] = [
    ("empty", b"", FORM),
    ("not utf-8", b"grant_type=\xff\xfe&scope=\xc3", FORM),
    ("bad percent", b"grant_type=%ZZ&client_id=%FF%FE", FORM),
    ("nul", b"grant_type=client_credentials&scope=a%00b", FORM),
    ("json as form", b'{"grant_type": "client_credentials"}', FORM),
    ("form as json", b"grant_type=client_credentials", {"Content-Type": "application/json"}),
    ("no content type", b"grant_type=client_credentials", {}),
    ("repeated", b"grant_type=client_credentials&grant_type=refresh_token&scope=a&scope=b", FORM),
    ("many params", "&".join(f"p{i}=v" for i in range(400)).encode(), FORM),
    ("long value", b"grant_type=client_credentials&scope=" + b"a" * 60_000, FORM),
    ("json array", b"[1,2,3]", {"Content-Type": "application/json"}),
    ("weird unicode", "client_id=\U0001d51e\U0001d524&client_secret=\u202e&grant_type=\u2603".encode(), FORM),
    ("oversized", b"x=" + b"a" * 70_000, FORM),
]
AUTHS = [
    None,
    "Basic !!!",
    "Basic w6g=",
    "Bearer",
    "Bearer a b c",
    "Bearer " + "x" * 9000,
    "Digest abc",
    "Basic " + "YWdlbnQtY2xpZW50Og==",
]


def _no_crash(r: httpx.Response, *, json_body: bool) -> None:
    assert r.status_code < 500 or r.status_code == 503, (
        r.request.method,
        r.request.url,
        r.status_code,
        r.text,
    )
    assert "Traceback" not in r.text and 'File "' not in r.text
    if json_body and r.status_code >= 400:
        body = r.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], r.text


@pytest.fixture(scope="module")
def canary(handle: ProviderHandle) -> dict:
    """A pending CIBA request created before the barrage: it must survive untouched."""
    r = handle.bc_authorize(login_hint="alice", scope="openid", binding_message="canary request")
    assert r.status_code == 200
    return {"auth_req_id": r.json()["auth_req_id"], "id": handle.pending_one("alice", "canary request")["id"]}


@pytest.fixture(scope="module")
def barrages_sent() -> set[str]:
    """Which barrages this module has sent: the state check sends any still missing, so it
    proves something in any test order (alone, shuffled, reversed)."""
    return set()


def test_fuzz_json_endpoints(idp: LocalProvider, canary: dict, barrages_sent: set[str]) -> None:
    admin = {"Authorization": f"Bearer {idp.admin_token}"}
    with httpx.Client(base_url=idp.issuer, timeout=10) as http:
        for path in JSON_POST:
            for _, body, headers in BODIES:
                extra = admin if path.startswith("/admin") else {}
                _no_crash(http.post(path, content=body, headers={**headers, **extra}), json_body=True)
            for auth in AUTHS:
                headers = {**FORM, **({"Authorization": auth} if auth else {})}
                _no_crash(
                    http.post(path, content=b"grant_type=client_credentials&token=x", headers=headers),
                    json_body=True,
                )
        for path in JSON_GET:
            extra = admin if path.startswith("/admin") else {}
            for query in ("", "?%ZZ=1", "?user=%00", "?status=bogus", "?" + "a=b&" * 300):
                _no_crash(http.get(path + query, headers=extra), json_body=True)
            for auth in AUTHS:
                _no_crash(http.get(path, headers={"Authorization": auth} if auth else {}), json_body=True)
        for path in ("/token", "/bc-authorize", "/introspect"):
            r = http.get(path)
            assert r.status_code == 405 and r.json()["error"] == "invalid_request"
    barrages_sent.add("json")


def test_fuzz_pages(idp: LocalProvider, barrages_sent: set[str]) -> None:
    with httpx.Client(base_url=idp.issuer, timeout=10) as http:
        for method, path in PAGES:
            for _, body, headers in BODIES:
                r = http.request(
                    method,
                    path + "?client_id=%FF&response_type=code&next=//evil.example",
                    content=body if method == "POST" else None,
                    headers=headers,
                )
                _no_crash(r, json_body=False)
                if r.status_code in (302, 303):
                    assert not r.headers["location"].startswith("//evil"), r.headers["location"]
    barrages_sent.add("pages")


@pytest.mark.parametrize(
    "params,error,status",
    [
        ({}, "invalid_request", 400),
        ({"grant_type": "password", "username": "alice", "password": "x"}, "unsupported_grant_type", 400),
        ({"grant_type": "urn:nope"}, "unsupported_grant_type", 400),
        ({"grant_type": "authorization_code"}, "invalid_request", 400),
        ({"grant_type": "refresh_token"}, "invalid_request", 400),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant", 400),
        ({"grant_type": "client_credentials", "resource": "not a uri"}, "invalid_target", 400),
    ],
)
def test_token_endpoint_errors(handle: ProviderHandle, params: dict, error: str, status: int) -> None:
    r = handle.post("token_endpoint", params)
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"


def test_oversized_bodies(handle: ProviderHandle) -> None:
    r = httpx.post(
        handle.metadata["token_endpoint"], content=b"a=" + b"b" * 70_000, headers=FORM, auth=handle.auth
    )
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"
    r = httpx.post(handle.metadata["token_endpoint"], content=b"a=" + b"b" * 2_000_000, headers=FORM)
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"


def test_authorize_errors(idp: LocalProvider) -> None:
    base = {
        "response_type": "code",
        "client_id": idp.client_id,
        "redirect_uri": "http://127.0.0.1/callback",
        "scope": "openid",
        "state": "xyz",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=idp.issuer, follow_redirects=False) as http:
        # no trustworthy redirect URI: an error page, never a redirect
        for change in (
            {"response_type": 'co"de'},
            {"response_type": "c\u00f6de"},
            {"redirect_uri": "http://127.0.0.1/c\u00e9"},
            {"client_id": "back\\slash"},
            {"client_id": "nobody"},
            {"redirect_uri": "https://evil.example/cb"},
            {"client_id": None},
            {"redirect_uri": "http://127.0.0.1/other-path"},
        ):
            params = {k: v for k, v in {**base, **change}.items() if v is not None}
            r = http.get("/authorize", params=params)
            assert r.status_code == 400 and "text/html" in r.headers["content-type"], change
            assert "evil" not in r.headers.get("location", "")
        # a trustworthy redirect URI: the error goes back to the client with state and iss (RFC 9207)
        for change, error in (
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"scope": "openid nope:read"}, "invalid_scope"),
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"code_challenge": "short"}, "invalid_request"),
            ({"resource": "urn:nope"}, "invalid_target"),
            ({"authorization_details": "[{}]"}, "invalid_authorization_details"),
            ({"prompt": "none"}, "login_required"),
        ):
            r = http.get("/authorize", params={**base, **change})
            assert r.status_code == 302, (change, r.text)
            location = r.headers["location"]
            assert location.startswith("http://127.0.0.1/callback?")
            assert f"error={error}" in location and "state=xyz" in location and "iss=" in location, location


def test_binding_message_is_escaped_on_the_page(handle: ProviderHandle, idp: LocalProvider) -> None:
    import re

    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    details = [{"type": "agent_action", "actions": ["<b>delete</b>"], "note": "<i>it</i>"}]
    handle.bc_authorize(
        login_hint="bob", scope="openid", binding_message=hostile, authorization_details=json.dumps(details)
    )
    with httpx.Client(base_url=idp.issuer, follow_redirects=True) as browser:
        login = browser.get("/approvals")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        nxt = re.search(r'name="next" value="([^"]+)"', login.text).group(1)
        page = browser.post(
            "/login", data={"csrf": csrf, "next": nxt, "username": "bob", "password": idp.users["bob"]}
        )
    assert page.status_code == 200 and "Pending approvals" in page.text
    assert "<script>" not in page.text and "<img src=x" not in page.text and "<b>delete</b>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;delete&lt;/b&gt;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert page.headers["x-frame-options"] == "DENY"
    for item in handle.pending("bob", hostile):
        idp.deny(item["id"])


def test_admin_api_requires_token(idp: LocalProvider) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {idp.admin_token}"}):
        r = httpx.get(idp.issuer + "/admin/approvals", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = httpx.post(
        idp.issuer + "/admin/clients",
        headers={"Authorization": f"Bearer {idp.admin_token}"},
        json={"grant_types": "client_credentials"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"
    r = httpx.post(
        idp.issuer + "/admin/clients",
        headers={"Authorization": f"Bearer {idp.admin_token}"},
        json={"client_id": "agent-client"},
    )
    assert r.status_code == 400  # already exists
    r = httpx.post(
        idp.issuer + "/admin/upstream/users/alice/explode",
        headers={"Authorization": f"Bearer {idp.admin_token}"},
    )
    assert r.status_code == 400



@pytest.mark.parametrize("seconds", [-1, "60", True, None, float("inf"), 10**8])
def test_the_clock_only_moves_forward_by_a_sane_number(idp: LocalProvider, seconds: object) -> None:
    before = idp.now()
    with pytest.raises(InvalidRequestError, match="seconds must be a number"):
        idp.advance(seconds)  # type: ignore[arg-type]
    assert before <= idp.now() < before + 60  # nothing moved (beyond wall time)
    if not isinstance(seconds, float):  # the admin API checks too, for clients in other languages
        r = httpx.post(idp.issuer + "/admin/clock", headers={"Authorization": f"Bearer {idp.admin_token}"},
                       json={"seconds": seconds})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"

FUZZ_NAMES = [
    "grant_type",
    "scope",
    "resource",
    "audience",
    "login_hint",
    "id_token_hint",
    "binding_message",
    "requested_expiry",
    "authorization_details",
    "client_notification_token",
    "auth_req_id",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "connection",
    "code",
    "code_verifier",
    "redirect_uri",
    "refresh_token",
    "token",
    "token_type_hint",
    "response_type",
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "state",
    "nonce",
    "prompt",
    "client_assertion",
    "client_assertion_type",
    "acr_values",
    "request_context",
]
FUZZ_VALUES = [
    "",
    "a",
    "openid",
    "openid offline_access api:read",
    "urn:example:api",
    "urn:nope",
    "\x00",
    "\ud7ff",
    "é" * 300,
    "x" * 5000,
    "-1",
    "0",
    "99999999999999999999",
    "1.5",
    '{"format":"iss_sub"}',
    '"quoted"',
    "back\\slash",
    '[{"type":"agent_action","actions":["x"]}]',
    '[{"type":"payment_initiation","instructedAmount":{"amount":1e400,"currency":"EUR"}}]',
    "null",
    "[]",
    "{}",
    "eyJhbGciOiJub25lIn0.e30.",
    "S256",
    "plain",
    "code",
    "token",
    "http://127.0.0.1/callback",
    "javascript:alert(1)",
    "alice",
    "bob@example.com",
    CIBA,
    TE,
    FEDERATED,
    AT_TYPE,
    RT_TYPE,
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "demo-upstream",
    "none",
    "login",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
]


def test_random_parameter_fuzz(idp: LocalProvider, barrages_sent: set[str]) -> None:
    """Random mixes of real parameter names and hostile values: never a 500."""
    import random

    rng = random.Random(20261128)
    tokens = idp.login("alice", scope="openid offline_access api:read", resource="urn:example:api")
    values = [*FUZZ_VALUES, tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]
    auths = [(idp.client_id, idp.client_secret), None, ("x", "y")]
    targets = [
        ("/token", "POST"),
        ("/bc-authorize", "POST"),
        ("/introspect", "POST"),
        ("/revoke", "POST"),
        ("/authorize", "GET"),
        ("/authorize", "POST"),
        ("/upstream/authorize", "GET"),
        ("/upstream/token", "POST"),
    ]
    with httpx.Client(base_url=idp.issuer, timeout=10) as http:
        for _ in range(600):
            params = [(rng.choice(FUZZ_NAMES), rng.choice(values)) for _ in range(rng.randint(0, 8))]
            path, method = rng.choice(targets)
            auth = rng.choice(auths)
            if method == "GET":
                r = http.get(path, params=params, auth=auth)
            else:
                r = http.post(path, data=dict(params), auth=auth)
            _no_crash(r, json_body=path not in ("/authorize", "/upstream/authorize"))
    barrages_sent.add("random")


def test_state_intact_after_barrage(
    handle: ProviderHandle, idp: LocalProvider, canary: dict, barrages_sent: set[str]
) -> None:
    if "json" not in barrages_sent:
        test_fuzz_json_endpoints(idp, canary, barrages_sent)
    if "pages" not in barrages_sent:
        test_fuzz_pages(idp, barrages_sent)
    if "random" not in barrages_sent:
        test_random_parameter_fuzz(idp, barrages_sent)
    stats = idp.stats()
    assert not [key for key in stats.get("errors", {}) if key.endswith(" 500")], stats["errors"]
    assert canary["id"] in {item["id"] for item in handle.pending("alice", "canary request")}
    assert handle.poll(canary["auth_req_id"]) == (None, "authorization_pending")
    handle.approve(canary["id"])
    idp.advance(1.05)
    tok, err = handle.poll(canary["auth_req_id"])
    assert err is None and tok["access_token"]
    assert handle.post("token_endpoint", {"grant_type": "client_credentials"}).status_code == 200
