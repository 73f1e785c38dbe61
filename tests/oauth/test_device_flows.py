"""RFC 8628 device authorization flows by hand (no client) and through MockTransport, sync
and async: the request, interval and slow_down (+5 s), expiry, denial, the device code kept
out of repr, and malformed provider answers refused with a ProtocolError."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from langchain_agent_auth.core.errors import AccessDeniedError, ExpiredTokenError, ProtocolError
from langchain_agent_auth.oauth import ClientCredentials, Sleep, run_async, run_sync
from langchain_agent_auth.oauth import device as D
from langchain_agent_auth.oauth.flows import FlowSettings

PUBLIC = ClientCredentials("cli-app", auth_method="none")
CONFIDENTIAL = ClientCredentials("agent", "s3cret")
START = {"device_code": "DC-0123456789", "user_code": "WDJB-MJHT", "verification_uri": "https://idp.test/device",
         "verification_uri_complete": "https://idp.test/device?user_code=WDJB-MJHT", "expires_in": 600,
         "interval": 2}


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_device_authorization_request_and_answer_by_hand():
    flow = D.device_authorization("https://idp.test/device_authorization", PUBLIC, scope=["openid", "email"],
                                  settings=FlowSettings(clock=lambda: 1000.0))
    request = next(flow)
    assert request.method == "POST" and form(request) == {"client_id": "cli-app", "scope": "openid email"}
    with pytest.raises(StopIteration) as stop:
        flow.send(httpx.Response(200, json=START, request=request))
    started = stop.value.value
    assert (started.user_code, started.interval, started.expires_at) == ("WDJB-MJHT", 2.0, 1600.0)
    assert started.verification_uri_complete.endswith("WDJB-MJHT") and "DC-0123456789" not in repr(started)


def test_wait_respects_interval_and_slow_down_then_returns_the_token():
    clock = [0.0]
    started = D.DeviceAuthorizationResponse("DC", "WDJB-MJHT", "https://idp.test/device", expires_at=100.0,
                                            interval=2.0)
    waits: list[tuple[float, float]] = []
    flow = D.wait_for_device("https://idp.test/token", CONFIDENTIAL, started,
                             settings=FlowSettings(clock=lambda: clock[0]),
                             on_wait=lambda left, nxt: waits.append((left, nxt)))
    step, sleeps = next(flow), []
    answers = [{"error": "authorization_pending"}, {"error": "slow_down"}]
    while True:
        assert isinstance(step, Sleep)
        sleeps.append(step.seconds)
        clock[0] += step.seconds
        poll = flow.send(None)
        assert form(poll) == {"grant_type": D.DEVICE_CODE_GRANT, "device_code": "DC"}
        assert poll.headers["authorization"].startswith("Basic ")
        if not answers:
            break
        step = flow.send(httpx.Response(400, json=answers.pop(0), request=poll))
    with pytest.raises(StopIteration) as stop:
        flow.send(httpx.Response(200, json={"access_token": "t", "token_type": "Bearer"}, request=poll))
    assert stop.value.value.access_token == "t"
    assert sleeps == [2.0, 2.0, 7.0] and [n for _, n in waits] == sleeps and waits[0][0] == 100.0


def test_wait_ends_at_expiry_and_on_denial():
    clock = [0.0]
    settings = FlowSettings(clock=lambda: clock[0])
    started = D.DeviceAuthorizationResponse("DC", "WDJB-MJHT", "https://idp.test/device", expires_at=3.0,
                                            interval=2.0)
    flow = D.wait_for_device("https://t/token", PUBLIC, started, settings=settings)
    clock[0] += next(flow).seconds
    poll = flow.send(None)
    clock[0] += flow.send(httpx.Response(400, json={"error": "authorization_pending"}, request=poll)).seconds
    poll = flow.send(None)
    with pytest.raises(ExpiredTokenError):
        flow.send(httpx.Response(400, json={"error": "authorization_pending"}, request=poll))

    flow = D.wait_for_device("https://t/token", PUBLIC, started, settings=FlowSettings(clock=lambda: 0.0))
    next(flow)
    poll = flow.send(None)
    with pytest.raises(AccessDeniedError):
        flow.send(httpx.Response(400, json={"error": "access_denied"}, request=poll))


@pytest.mark.parametrize("broken", [
    {"device_code": ""}, {"user_code": None}, {"verification_uri": "javascript:alert(1)"},
    {"verification_uri": None}, {"expires_in": 0}, {"expires_in": True}, {"user_code": "x" * 65},
    {"device_code": "bad\ncode"},
])
def test_malformed_answers_are_protocol_errors(broken):
    body = {**START, **broken}
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    with httpx.Client(transport=transport) as http, pytest.raises(ProtocolError):
        run_sync(D.device_authorization("https://idp.test/da", PUBLIC), http)


async def test_through_mock_transport_sync_and_async_and_a_missing_interval_means_5s():
    body = {k: v for k, v in START.items() if k != "interval"}
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    with httpx.Client(transport=transport) as http:
        assert run_sync(D.device_authorization("https://idp.test/da", PUBLIC), http).interval == 5.0
    async with httpx.AsyncClient(transport=transport) as http:
        started = await run_async(D.device_authorization("https://idp.test/da", PUBLIC), http)
    assert started.interval == 5.0 and started.user_code == "WDJB-MJHT"
