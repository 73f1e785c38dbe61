"""ClientCredentialsAuth: one cached token shared by sync and async clients, fetched again on a 401."""

from __future__ import annotations

import httpx

from langchain_agent_auth.oauth import ClientCredentialsAuth, OAuthClient
from tests.support.fake_idp import FakeProvider


def api(seen: list[str], reject: set[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        seen.append(token)
        return httpx.Response(401 if token in reject else 200)
    return httpx.MockTransport(handle)


async def test_sync_and_async_share_one_token_and_refetch_once_on_401():
    idp = FakeProvider()
    oauth = OAuthClient(idp.issuer, "svc", "s3cret-value", http_client=idp.client(),
                        async_http_client=idp.async_client())
    auth = ClientCredentialsAuth(oauth, scope="api:read")
    seen: list[str] = []
    with httpx.Client(transport=api(seen, set()), auth=auth) as http:
        assert http.get("https://api.test/a").status_code == 200
    async with httpx.AsyncClient(transport=api(seen, set()), auth=auth) as http:
        assert (await http.get("https://api.test/b")).status_code == 200
    assert len(set(seen)) == 1 and idp.hits["/token"] == 1
    assert FakeProvider.form(idp.last("/token"))["scope"] == "api:read"

    rejected = {seen[0]}
    async with httpx.AsyncClient(transport=api(seen, rejected), auth=auth) as http:
        assert (await http.get("https://api.test/c")).status_code == 200
    assert idp.hits["/token"] == 2 and seen[-1] != seen[0]
    assert seen[0] not in repr(auth)
