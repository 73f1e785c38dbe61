"""The demo upstream's faults (``inject_fault`` / ``/admin/upstream/faults``), its per-endpoint
counters, refresh-token reuse counting and the opt-in record of issued upstream credentials."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from langchain_agent_auth.core.errors import OAuthError
from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import wait_until


@pytest.fixture
def faulty(idp: LocalProvider) -> Iterator[LocalProvider]:
    idp.clear_faults()
    idp.reset_stats()
    yield idp
    idp.clear_faults()


def _refresh(idp: LocalProvider, refresh_token: str = "not-a-token", timeout: float = 10) -> httpx.Response:
    return httpx.post(idp.upstream_issuer + "/token", timeout=timeout,
                      data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                      auth=(idp.upstream_client_id, idp.upstream_client_secret))


@pytest.mark.parametrize("kind,status,error", [
    ("500", 500, None), ("503", 503, "temporarily_unavailable"), ("invalid_grant", 400, "invalid_grant"),
    ("invalid_scope", 400, "invalid_scope"), ("unauthorized", 401, "invalid_token"),
])
def test_each_fault_answers_one_token_request(faulty, kind, status, error):
    faulty.inject_fault("token", kind)
    answer = _refresh(faulty)
    assert answer.status_code == status
    if error is None:
        assert answer.text == "upstream exploded"
    else:
        assert answer.json()["error"] == error and answer.headers["cache-control"] == "no-store"
    if kind == "503":
        assert answer.headers["retry-after"] == "1"
    if kind == "unauthorized":
        assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # consumed: the next request is the real endpoint's answer (an unknown refresh token)
    assert _refresh(faulty).json()["error"] == "invalid_grant"
    stats = faulty.stats()
    assert stats["upstream_calls"]["token"] == 2 and stats["upstream_faults"] == {kind: 1}
    assert stats["upstream_grants"]["refresh_token"] == 2


def test_faults_are_served_in_order_and_html_is_a_page(faulty):
    armed = faulty.inject_fault("token", "html", "503")
    assert armed["token"] == {"queued": ["html", "503"], "delay": 0.0}
    assert armed["revoke"] == armed["api"] == {"queued": [], "delay": 0.0}
    page = _refresh(faulty)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert _refresh(faulty).status_code == 503
    assert faulty.admin.request("GET", "/upstream/faults")["token"]["queued"] == []


def test_slow_answers_after_the_clients_time_limit(faulty):
    faulty.inject_fault("token", "slow", "slow")
    with pytest.raises(httpx.ReadTimeout):
        _refresh(faulty, timeout=0.5)
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        slow = pool.submit(_refresh, faulty)
        assert wait_until(lambda: faulty.stats().get("upstream_faults", {}).get("slow") == 2)
        # the provider is not blocked meanwhile: the next request is answered while it waits
        assert _refresh(faulty).json()["error"] == "invalid_grant" and not slow.done()
        assert slow.result().status_code == 503 and time.monotonic() - started >= 3.0


def test_delay_holds_every_request_until_cleared(faulty):
    faulty.inject_fault("api", delay=0.3)
    started = time.monotonic()
    assert httpx.get(faulty.api_url + "/calendar/events").status_code == 401
    assert time.monotonic() - started >= 0.3
    faulty.clear_faults()
    assert faulty.admin.request("GET", "/upstream/faults")["api"] == {"queued": [], "delay": 0.0}


def test_faults_at_the_api_and_revocation(faulty):
    tokens = faulty.login("alice", scope="calendar.read", upstream=True)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    events = faulty.api_url + "/calendar/events"
    faulty.inject_fault("api", "unauthorized")
    faulty.inject_fault("revoke", "500")
    assert httpx.get(events, headers=bearer).status_code == 401
    assert httpx.get(events, headers=bearer).json()["owner"] == "alice"
    auth = (faulty.upstream_client_id, faulty.upstream_client_secret)
    revoke = faulty.upstream_issuer + "/revoke"
    assert httpx.post(revoke, data={"token": tokens["access_token"]}, auth=auth).status_code == 500
    assert httpx.get(events, headers=bearer).status_code == 200  # the faulted revocation did nothing
    assert httpx.post(revoke, data={"token": tokens["access_token"]}, auth=auth).status_code == 200
    assert httpx.get(events, headers=bearer).status_code == 401
    calls = faulty.stats()["upstream_calls"]
    assert calls["api"] == 4 and calls["revoke"] == 2


def test_bad_faults_are_refused(faulty):
    for args, kwargs in [(("mail", "500"), {}), (("token", "boom"), {}), (("token",), {"delay": -1}),
                         (("token",), {"delay": 31}), (("token",), {"delay": True})]:
        with pytest.raises(OAuthError) as exc:
            faulty.inject_fault(*args, **kwargs)
        assert exc.value.status_code == 400 and exc.value.error == "invalid_request"
    with pytest.raises(OAuthError):
        faulty.inject_fault("token", *["500"] * 101)
    for body in ({"endpoint": "token", "faults": "500"}, {"endpoint": "token", "faults": [5]}, {"faults": []}):
        with pytest.raises(OAuthError):
            faulty.admin.request("POST", "/upstream/faults", json=body)
    assert faulty.admin.request("GET", "/upstream/faults")["token"]["queued"] == []


def test_faults_need_the_admin_token(faulty):
    url = faulty.issuer + "/admin/upstream/faults"
    answer = httpx.post(url, json={"endpoint": "token", "faults": ["500"]})
    assert answer.status_code == 401
    assert httpx.delete(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert faulty.admin.request("GET", "/upstream/faults")["token"]["queued"] == []


def test_refresh_token_reuse_is_counted(faulty):
    first = faulty.login("bob", scope="calendar.read", upstream=True)
    assert _refresh(faulty, first["refresh_token"]).status_code == 200
    reused = _refresh(faulty, first["refresh_token"])
    assert reused.json()["error"] == "invalid_grant"
    assert faulty.stats()["refresh_reuse"] == {"upstream": 1}


def test_recording_upstream_credentials_is_off_by_default(idp):
    with pytest.raises(OAuthError) as exc:
        idp.upstream_tokens_issued()
    assert exc.value.status_code == 404


def test_recorded_upstream_credentials(demo_upstream):
    idp = demo_upstream.idp
    idp.forget_upstream_tokens_issued()
    upstream = idp.login("alice", scope="calendar.read", upstream=True)
    main = idp.login("alice", scope="openid offline_access")
    recorded = idp.upstream_tokens_issued()
    assert len(recorded) == 3  # the code, the access token, the refresh token
    assert upstream["access_token"] in recorded and upstream["refresh_token"] in recorded
    assert main["access_token"] not in recorded and main["refresh_token"] not in recorded
    idp.forget_upstream_tokens_issued()
    assert idp.upstream_tokens_issued() == []
