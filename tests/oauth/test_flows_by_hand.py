"""Flows driven by hand: no HTTP client at all, just requests out and responses in."""

from __future__ import annotations

import httpx
import pytest

from langchain_agent_auth.core.errors import (
    AccessDeniedError,
    ConfigurationError,
    ExpiredTokenError,
    ProviderUnavailableError,
)
from langchain_agent_auth.oauth import ClientCredentials, RetryPolicy, Sleep, discover
from langchain_agent_auth.oauth import flows as F

CREDS = ClientCredentials("agent", "s3cret-value")
FAST = F.FlowSettings(retry=RetryPolicy(attempts=3, backoff=0.5, max_backoff=4, jitter=0))


def finish(flow, value):
    with pytest.raises(StopIteration) as stop:
        flow.send(value)
    return stop.value.value


def test_discovery_by_hand():
    flow = discover("https://idp.test")
    request = next(flow)
    assert request.method == "GET"
    assert str(request.url) == "https://idp.test/.well-known/openid-configuration"
    meta = finish(flow, httpx.Response(200, json={"issuer": "https://idp.test", "token_endpoint": "https://t"},
                                       request=request))
    assert meta.token_endpoint == "https://t"


def test_discovery_falls_back_to_rfc8414_with_path():
    flow = discover("https://idp.test/tenant1")
    first = next(flow)
    second = flow.send(httpx.Response(404, request=first))
    assert str(second.url) == "https://idp.test/.well-known/oauth-authorization-server/tenant1"
    meta = finish(flow, httpx.Response(200, json={"issuer": "https://idp.test/tenant1"}, request=second))
    assert meta.issuer == "https://idp.test/tenant1"


def test_network_error_then_backoff_then_success():
    flow = F.token_request("https://idp.test/token", CREDS, {"grant_type": "client_credentials"},
                           idempotent=True, settings=FAST)
    request = next(flow)
    step = flow.throw(httpx.ReadTimeout("slow", request=request))
    assert step == Sleep(0.5)
    again = flow.send(None)
    assert again.url == request.url
    step = flow.send(httpx.Response(503, request=again))
    assert step == Sleep(1.0)
    third = flow.send(None)
    token = finish(flow, httpx.Response(200, json={"access_token": "abc"}, request=third))
    assert token.access_token == "abc"


def test_refresh_is_not_repeated_after_it_may_have_been_sent():
    flow = F.token_request("https://idp.test/token", CREDS, {"grant_type": "refresh_token", "refresh_token": "r"},
                           idempotent=False, settings=FAST)
    request = next(flow)
    with pytest.raises(ProviderUnavailableError, match="not retried"):
        flow.throw(httpx.ReadTimeout("slow", request=request))


def test_refresh_is_retried_when_the_connection_never_opened():
    flow = F.token_request("https://idp.test/token", CREDS, {"grant_type": "refresh_token", "refresh_token": "r"},
                           idempotent=False, settings=FAST)
    request = next(flow)
    assert isinstance(flow.throw(httpx.ConnectError("refused", request=request)), Sleep)


def test_5xx_on_a_non_idempotent_request_is_not_retried():
    flow = F.token_request("https://idp.test/token", CREDS, {"grant_type": "authorization_code", "code": "c"},
                           idempotent=False, settings=FAST)
    request = next(flow)
    with pytest.raises(ProviderUnavailableError):
        flow.send(httpx.Response(502, text="bad gateway", request=request))


def test_ciba_wait_respects_interval_and_slow_down():
    clock = [1000.0]
    settings = F.FlowSettings(clock=lambda: clock[0])
    req = F.BackchannelAuthResponse(auth_req_id="id", expires_at=1100.0, interval=2.0)
    flow = F.wait_for_backchannel("https://idp.test/token", CREDS, req, settings=settings)
    sleeps = []
    step = next(flow)
    answers = [
        {"error": "authorization_pending"},
        {"error": "slow_down"},
        {"error": "authorization_pending"},
    ]
    while True:
        assert isinstance(step, Sleep)
        sleeps.append(step.seconds)
        clock[0] += step.seconds
        poll = flow.send(None)
        assert b"grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba" in poll.content
        if answers:
            step = flow.send(httpx.Response(400, json=answers.pop(0), request=poll))
        else:
            token = finish(flow, httpx.Response(200, json={"access_token": "t"}, request=poll))
            break
    assert sleeps == [2.0, 2.0, 7.0, 7.0]
    assert token.access_token == "t"


def test_ciba_wait_stops_at_expiry_and_on_denial():
    clock = [0.0]
    settings = F.FlowSettings(clock=lambda: clock[0])
    req = F.BackchannelAuthResponse(auth_req_id="id", expires_at=3.0, interval=2.0)
    flow = F.wait_for_backchannel("https://t/token", CREDS, req, settings=settings)
    step = next(flow)
    clock[0] += step.seconds
    poll = flow.send(None)
    step = flow.send(httpx.Response(400, json={"error": "authorization_pending"}, request=poll))
    clock[0] += step.seconds
    poll = flow.send(None)
    with pytest.raises(ExpiredTokenError):
        step = flow.send(httpx.Response(400, json={"error": "authorization_pending"}, request=poll))
        clock[0] += 10
        flow.send(None)

    flow = F.wait_for_backchannel("https://t/token", CREDS, F.BackchannelAuthResponse("id", 100.0, 1.0),
                                  settings=settings)
    next(flow)
    poll = flow.send(None)
    with pytest.raises(AccessDeniedError):
        flow.send(httpx.Response(400, json={"error": "access_denied"}, request=poll))


def test_backchannel_authorize_defaults_interval_to_five_and_never_sends_none():
    flow = F.backchannel_authorize("https://t/bc", CREDS, login_hint="alice", binding_message="Pay 5")
    request = next(flow)
    body = request.content.decode()
    assert "audience" not in body and "None" not in body and "scope=openid" in body
    result = finish(flow, httpx.Response(200, json={"auth_req_id": "x" * 20, "expires_in": 60}, request=request))
    assert result.interval == 5.0 and result.interval_given is False
    assert "x" * 20 not in repr(result)


def test_backchannel_authorize_needs_exactly_one_hint():
    with pytest.raises(ConfigurationError):
        next(F.backchannel_authorize("https://t/bc", CREDS))
    with pytest.raises(ConfigurationError):
        next(F.backchannel_authorize("https://t/bc", CREDS, login_hint="a", id_token_hint="b"))
