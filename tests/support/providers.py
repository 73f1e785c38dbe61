"""One handle over both providers the protocol tests run against.

``node``: the independent node-oidc-provider; ``local``: this project's LocalProvider.
Both expose the same resource servers (urn:example:api RS256, urn:example:downstream ES256).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey

from tests.support.node_idp import AGENT, API, DOWNSTREAM, PKJWT_CLIENT, POST


@dataclass
class ProviderUnderTest:
    name: str
    issuer: str
    basic: tuple[str, str]
    post: tuple[str, str]
    pkjwt: tuple[str, dict[str, Any]]
    pending_fn: Callable[[str], list[dict[str, Any]]]
    approve_fn: Callable[[str], Any]
    deny_fn: Callable[[str], Any]
    poll_interval: float
    api: str = API
    downstream: str = DOWNSTREAM

    def pending(self, user: str) -> list[dict[str, Any]]:
        return self.pending_fn(user)

    def answer_next(self, user: str, *, deny: bool = False) -> threading.Thread:
        """Play the user's phone from another thread: answer the next pending request."""

        def run() -> None:
            for _ in range(200):
                items = self.pending(user)
                if items:
                    (self.deny_fn if deny else self.approve_fn)(items[-1]["id"])
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def node_provider(node_idp: Any) -> ProviderUnderTest:
    def pending(user: str) -> list[dict[str, Any]]:
        return [{**p, "id": p["auth_req_id"]} for p in node_idp.pending(user)]

    return ProviderUnderTest(
        name="node", issuer=node_idp.issuer, basic=AGENT, post=POST,
        pkjwt=(PKJWT_CLIENT, node_idp.pkjwt_key), pending_fn=pending,
        approve_fn=node_idp.approve, deny_fn=node_idp.deny, poll_interval=node_idp.poll_interval,
    )


def local_provider(idp: Any) -> ProviderUnderTest:
    post = idp.add_client(token_endpoint_auth_method="client_secret_post",
                          grant_types=["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"])
    key = ECKey.generate_key("P-256", parameters={"kid": "pkjwt-1", "alg": "ES256", "use": "sig"})
    pk = idp.add_client(token_endpoint_auth_method="private_key_jwt", grant_types=["client_credentials"],
                        jwks={"keys": [key.as_dict(private=False)]})

    def pending(user: str) -> list[dict[str, Any]]:
        return [{**p, "id": p.get("id") or p.get("request_id")} for p in idp.pending_approvals(user=user)]

    return ProviderUnderTest(
        name="local", issuer=idp.issuer, basic=(idp.client_id, idp.client_secret),
        post=(post["client_id"], post["client_secret"]), pkjwt=(pk["client_id"], key.as_dict(private=True)),
        pending_fn=pending, approve_fn=idp.approve, deny_fn=lambda rid: idp.deny(rid, "not me"),
        poll_interval=idp.info.get("ciba_interval", 1),
    )
