"""Fixtures for the local provider's tests.

Protocol tests talk to a provider through :class:`ProviderHandle` (issuer, metadata, client
credentials, keys, and the user's "phone": ``pending`` / ``approve`` / ``deny``), so the same
test can later be parametrized over this provider and node-oidc-provider (whose admin hook
approves by ``auth_req_id``; ours by an opaque request id found through ``pending``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import CIBA, LogCapture, PingReceiver, ProviderHandle


@pytest.fixture(scope="session")
def provider_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    logger = logging.getLogger("langchain_agent_auth.devserver")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    yield capture
    logger.removeHandler(capture)
    logger.setLevel(old_level)


@pytest.fixture(scope="session")
def idp(provider_logs: LogCapture) -> Iterator[LocalProvider]:
    with LocalProvider(ciba_interval=1) as provider:
        yield provider


@pytest.fixture(scope="session")
def handle(idp: LocalProvider) -> ProviderHandle:
    meta = httpx.get(idp.issuer + "/.well-known/openid-configuration").json()
    return ProviderHandle("local", idp.issuer, idp.client_id, idp.client_secret, idp, meta)


@pytest.fixture(scope="session")
def ping_receiver() -> Iterator[PingReceiver]:
    receiver = PingReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def ping_client(idp: LocalProvider, ping_receiver: PingReceiver) -> dict[str, Any]:
    return idp.add_client(
        client_id="agent-ping",
        client_name="Ping agent",
        grant_types=[CIBA, "refresh_token"],
        backchannel_token_delivery_mode="ping",
        backchannel_client_notification_endpoint=ping_receiver.url,
    )
