"""CIBA additions of the approval pillar: iss_sub login hints, the ping receiver, waits
that survive provider outages."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time

import httpx
import pytest

from langchain_agent_auth import errors as E
from langchain_agent_auth.oauth import ClientCredentials, PingReceiver, Sleep, iss_sub_login_hint
from langchain_agent_auth.oauth import flows as F

CREDS = ClientCredentials("agent", "s3cret-value")


@pytest.mark.parametrize("sub", ['auth0|abc', 'a"b\\c', '","format":"x', "ünï\u202ecode", "x\ny"])
def test_iss_sub_login_hint_is_json_whatever_the_subject(sub):
    hint = iss_sub_login_hint("https://t.auth0.com/", sub)
    assert json.loads(hint) == {"format": "iss_sub", "iss": "https://t.auth0.com/", "sub": sub}


@pytest.mark.parametrize("iss,sub", [("", "a"), ("https://x", ""), (None, "a")])
def test_iss_sub_login_hint_needs_both(iss, sub):
    with pytest.raises(E.ConfigurationError):
        iss_sub_login_hint(iss, sub)


async def ping(app, body, token=None, *, method="POST", path="/ciba/notify", raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://agent") as c:
        if raw is not None:
            return await c.request(method, path, content=raw, headers=headers)
        return await c.request(method, path, json=body, headers=headers)


async def test_ping_receiver_accepts_only_the_expected_token():
    r = PingReceiver()
    token = r.expect("rid-1")
    other = r.expect("rid-2")
    assert (await ping(r, {"auth_req_id": "rid-1"}, other)).status_code == 401  # another request's token
    assert (await ping(r, {"auth_req_id": "rid-1"})).status_code == 401  # no bearer
    assert (await ping(r, {"auth_req_id": "unknown"}, token)).status_code == 401
    assert not r.pinged("rid-1")
    resp = await ping(r, {"auth_req_id": "rid-1"}, token)
    assert resp.status_code == 204 and r.pinged("rid-1") and not r.pinged("rid-2")
    assert r.stats == {"accepted": 1, "rejected": 3, "bad_request": 0}


@pytest.mark.parametrize("kwargs,status", [
    ({"raw": b"not json"}, 400), ({"body": {"auth_req_id": 5}}, 400), ({"body": ["x"]}, 400),
    ({"raw": b"x" * 10_000}, 413), ({"body": {}, "method": "GET"}, 405), ({"body": {}, "path": "/other"}, 404),
])
async def test_ping_receiver_rejects_bad_requests(kwargs, status):
    r = PingReceiver()
    r.expect("rid")
    body = kwargs.pop("body", None)
    assert (await ping(r, body, "t", **kwargs)).status_code == status


async def test_ping_receiver_compares_in_constant_time(monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr("langchain_agent_auth.oauth.ping.hmac.compare_digest", spy)
    r = PingReceiver()
    token = r.expect("rid")
    await ping(r, {"auth_req_id": "rid"}, "wrong")
    await ping(r, {"auth_req_id": "nobody"}, "wrong")  # unknown ids are compared too (same timing)
    await ping(r, {"auth_req_id": "rid"}, token)
    assert len(seen) == 3 and seen[-1] == (token.encode(), token.encode())


async def test_ping_wakes_sync_and_async_waiters_and_uses_a_resolver():
    pinged = []

    async def resolver(rid):
        return "durable-token" if rid == "from-store" else None

    r = PingReceiver(resolver=resolver, on_ping=pinged.append)
    token = r.expect("rid")
    woke = []
    t = threading.Thread(target=lambda: woke.append(r.wait("rid", timeout=5)))
    t.start()
    waiter = asyncio.create_task(r.wait_async("rid", timeout=5))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    assert (await ping(r, {"auth_req_id": "rid"}, token)).status_code == 204
    assert await waiter is True
    t.join(5)
    assert woke == [True] and time.perf_counter() - started < 2
    assert (await ping(r, {"auth_req_id": "from-store"}, "durable-token")).status_code == 204
    assert pinged == ["rid", "from-store"]
    assert await r.wait_async("rid", timeout=0) is True  # late waiters see it
    r2 = PingReceiver()
    r2.expect("slow")
    assert await r2.wait_async("slow", timeout=0.05) is False
    with pytest.raises(KeyError):
        r2.wait("never-expected", timeout=0)


async def test_a_failing_resolver_answers_500_without_details():
    def resolver(rid):
        raise RuntimeError("db password is hunter2")

    resp = await ping(PingReceiver(resolver=resolver), {"auth_req_id": "x"}, "t")
    assert resp.status_code == 500 and "hunter2" not in resp.text


def test_wait_tolerates_outages_until_expiry():
    clock = [0.0]
    settings = F.FlowSettings(clock=lambda: clock[0],
                              retry=F.RetryPolicy(attempts=1))  # type: ignore[attr-defined]
    req = F.BackchannelAuthResponse("rid", expires_at=100.0, interval=2.0)
    flow = F.wait_for_backchannel("https://t/token", CREDS, req, settings=settings, tolerate_outages=True)
    sleeps = []
    step = next(flow)
    for _ in range(3):  # three outages: the waits grow, the flow keeps going
        sleeps.append(step.seconds)
        clock[0] += step.seconds
        poll = flow.send(None)
        step = flow.throw(httpx.ConnectError("down", request=poll))
        assert isinstance(step, Sleep)
    sleeps.append(step.seconds)
    clock[0] += step.seconds
    poll = flow.send(None)
    with pytest.raises(StopIteration) as stop:
        flow.send(httpx.Response(200, json={"access_token": "t"}, request=poll))
    assert stop.value.value.access_token == "t"
    assert sleeps == [2.0, 2.0, 4.0, 8.0]


def test_wait_without_tolerance_still_fails_fast_on_outage():
    settings = F.FlowSettings(retry=F.RetryPolicy(attempts=1))  # type: ignore[attr-defined]
    flow = F.wait_for_backchannel("https://t/token", CREDS, F.BackchannelAuthResponse("rid", time.time() + 60, 0.0),
                                  settings=settings)
    next(flow)
    poll = flow.send(None)
    with pytest.raises(E.ProviderUnavailableError):
        flow.throw(httpx.ConnectError("down", request=poll))
