from __future__ import annotations

import pytest

from langchain_agent_auth.oauth import OAuthClient, RetryPolicy
from tests.support.fake_idp import FakeProvider


@pytest.fixture
def idp() -> FakeProvider:
    return FakeProvider()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


class Both:
    """Calls ``name`` or ``a<name>`` on the client depending on the mode under test."""

    def __init__(self, client: OAuthClient, mode: str) -> None:
        self.client, self.mode = client, mode

    async def __call__(self, name: str, *args, **kwargs):
        if self.mode == "sync":
            return getattr(self.client, name)(*args, **kwargs)
        return await getattr(self.client, "a" + name)(*args, **kwargs)


@pytest.fixture
def make_client(idp: FakeProvider, mode: str):
    def make(**kwargs) -> Both:
        kwargs.setdefault("retry", RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002))
        client = OAuthClient(idp.issuer, kwargs.pop("client_id", "agent"), kwargs.pop("client_secret", "s3cret-value"),
                             http_client=idp.client(), async_http_client=idp.async_client(), **kwargs)
        return Both(client, mode)

    return make
