"""RFC 8628 device authorization against two providers, the independent node-oidc-provider
(its ``deviceFlow`` feature) and this project's LocalProvider, sync and async: the user
approves on the provider's own verification pages, the client gets tokens for that user;
pending, denial and single use behave the same on both."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from langchain_agent_auth import errors as E
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
from tests.support.node_idp import AGENT

pytestmark = pytest.mark.interop


def _forms(html: str) -> list[dict[str, Any]]:
    from langchain_agent_auth.devserver._browser import forms as parse

    return [f for f in parse(html) if f["method"] == "post"]


def node_browser(verification_uri: str, user_code: str, login: str, *, deny: bool = False) -> None:
    """The user's browser on node-oidc-provider's pages: type the code, confirm (or abort),
    sign in (devInteractions: any known account), consent."""
    with httpx.Client(follow_redirects=True, timeout=15) as browser:
        page = browser.get(verification_uri)
        for _ in range(6):
            forms = _forms(page.text)
            if not forms:
                break
            form = forms[0]
            data = {name: value for name, value, _ in form["fields"]}
            if "user_code" in data and "confirm" not in data:
                data["user_code"] = user_code
            if "confirm" in data and deny:
                data = {"xsrf": data["xsrf"], "user_code": data["user_code"], "abort": "yes"}
            if "login" in data:
                data.update(login=login, password="any")
            page = browser.post(httpx.URL(str(page.url)).join(form["action"] or str(page.url)), data=data)
        if not deny:
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
            assert "Sign-in Success" in text, text[-300:]


@pytest.fixture(scope="module")
def local_idp():
    from langchain_agent_auth.devserver import LocalProvider

    with LocalProvider(ciba_interval=1) as idp:
        yield idp


@pytest.fixture(params=["node", "local"])
def device_provider(request) -> tuple[str, tuple[str, str], Callable[..., None]]:
    """(issuer, client credentials, the user's browser approving a code)."""
    if request.param == "node":
        idp = request.getfixturevalue("node_idp")
        return idp.issuer, AGENT, node_browser
    idp = request.getfixturevalue("local_idp")
    return idp.issuer, (idp.client_id, idp.client_secret), idp.approve_device


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


class ProviderTime:
    """Let time pass for the provider under test: the LocalProvider's clock (and this client
    clock) move forward at once; node-oidc-provider needs real seconds."""

    def __init__(self, request) -> None:
        local = request.node.callspec.params.get("device_provider") == "local"
        self.idp = request.getfixturevalue("local_idp") if local else None
        self.offset = 0.0

    def clock(self) -> float:
        return time.time() + self.offset

    def wait(self, seconds: float) -> None:
        if self.idp is None:
            time.sleep(seconds)
        else:
            self.idp.advance(seconds)
            self.offset += seconds


@pytest.fixture
def provider_time(request) -> ProviderTime:
    return ProviderTime(request)


async def call(client: OAuthClient, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return await asyncio.to_thread(getattr(client, name), *args, **kwargs)
    return await getattr(client, "a" + name)(*args, **kwargs)


async def test_device_sign_in_approved_on_the_providers_pages(device_provider, mode, provider_time):
    issuer, creds, browser = device_provider
    client = OAuthClient(issuer, *creds)
    assert (await call(client, mode, "metadata")).device_authorization_endpoint
    started = await call(client, mode, "device_authorize", scope="openid email")
    assert started.user_code and started.verification_uri.startswith(issuer.split("/", 3)[0])
    assert started.interval > 0 and started.device_code not in repr(started)
    with pytest.raises(E.AuthorizationPendingError):
        await call(client, mode, "device_poll", started.device_code)
    await asyncio.to_thread(browser, started.verification_uri, started.user_code, "alice")
    token = None
    for _ in range(3):  # a poll right after the first may get slow_down; the flow would wait
        try:
            token = await call(client, mode, "device_poll", started.device_code)
            break
        except E.SlowDownError:
            await asyncio.to_thread(provider_time.wait, started.interval)
    assert token is not None
    claims = JWTVerifier(issuer, audience=creds[0], token_type="id", client_id=creds[0]).verify(token.id_token)
    assert claims["sub"] == "alice"
    with pytest.raises((E.InvalidGrantError, E.SlowDownError)):  # single use
        await call(client, mode, "device_poll", started.device_code)


async def test_device_denied_on_the_providers_pages(device_provider, mode):
    issuer, creds, browser = device_provider
    client = OAuthClient(issuer, *creds)
    started = await call(client, mode, "device_authorize", scope="openid")
    await asyncio.to_thread(browser, started.verification_uri, started.user_code, "alice", deny=True)
    with pytest.raises(E.AccessDeniedError):
        await call(client, mode, "device_poll", started.device_code)


def test_device_authorization_pause_resumed_after_approval(device_provider, provider_time):
    """The toolkit's pause (DeviceAuthorizer) on both providers: pause, approve on the
    provider's pages, resume: the node gets the user from the verified ID token."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.store.memory import InMemoryStore
    from langgraph.types import Command
    from typing_extensions import TypedDict

    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.identity import DeviceAuthorizer

    class State(TypedDict, total=False):
        user: str

    issuer, creds, browser = device_provider
    store = InMemoryStore()
    authorizer = DeviceAuthorizer(OAuthClient(issuer, *creds), scope="openid email", store=store,
                                  keyring=Keyring.generate(), clock=provider_time.clock)
    verifier = JWTVerifier(issuer, audience=creds[0], token_type="id", client_id=creds[0])
    graph = StateGraph(State)
    graph.add_node("sign_in", lambda state: {"user": authorizer.sign_in(verifier).subject})
    graph.add_edge(START, "sign_in")
    graph.add_edge("sign_in", END)
    app = graph.compile(checkpointer=InMemorySaver(), store=store)
    cfg = {"configurable": {"thread_id": "device-interop"}}
    pause = app.invoke({}, cfg)["__interrupt__"][0].value
    assert pause["type"] == "device_authorization" and pause["user_code"]
    browser(pause["verification_uri"], pause["user_code"], "alice")
    deadline = time.monotonic() + 60
    while True:  # what the resumer does: look again once the provider's interval has passed
        out = app.invoke(Command(resume={"device_id": pause["device_id"], "action": "check"}), cfg)
        if "__interrupt__" not in out or time.monotonic() > deadline:
            break
        provider_time.wait(0.25 if provider_time.idp is None else pause["interval"])
    assert out == {"user": "alice"}
    assert 0 < pause["interval"] <= 5 and not authorizer.pending()
