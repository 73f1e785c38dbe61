"""The provider object every route works with: store (and its clock), both realms' servers, counters."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Coroutine
from typing import Any

from langchain_agent_auth.devserver._ciba import ACR_VALUES_SUPPORTED
from langchain_agent_auth.devserver._faults import Faults
from langchain_agent_auth.devserver._model import AUTH_ALL, AUTH_CONFIDENTIAL, User
from langchain_agent_auth.devserver._oauth import build_main_server, build_upstream_server
from langchain_agent_auth.devserver._rar import SUPPORTED_TYPES
from langchain_agent_auth.devserver._store import (
    AGENT_CLIENT_ID,
    ALL_MAIN_GRANTS,
    DEMO_API_AUDIENCE,
    UPSTREAM_CONNECT_CLIENT_ID,
    UPSTREAM_CONNECTION,
    UPSTREAM_SCOPES,
    Store,
)
from langchain_agent_auth.devserver._util import (
    OIDC_SCOPES,
    Clock,
    split_scope,
)

SIGNING_ALGS = ["RS256", "ES256"]
RECORD_LIMIT = 10_000  # upstream credentials kept for secret scans (oldest dropped first)


class Provider:
    """State and configuration shared by the routes of one running local provider."""

    def __init__(
        self, store: Store, base_url: str, *, ciba_interval: int = 5, record_upstream_tokens: bool = False
    ) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.issuer = self.base_url
        self.upstream_issuer = self.base_url + "/upstream"
        self.api_url = self.base_url + "/api"
        self.default_audience = self.issuer + "/userinfo"
        self.ciba_interval = int(ciba_interval)
        self._stats: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._stats_lock = threading.Lock()
        self.faults = Faults()
        # Opt-in (tests' secret scans): the demo upstream's codes and tokens, in memory only.
        self._recorded: deque[str] | None = deque(maxlen=RECORD_LIMIT) if record_upstream_tokens else None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.issued = 0  # tokens issued by this process (expired rows are purged every few hundred)
        self.main = build_main_server(self)
        self.upstream = build_upstream_server(self)

    # ------------------------------------------------------------------ time
    @property
    def clock(self) -> Clock:
        """The provider's clock (the store's): expiries, poll intervals, ``exp``/``iat``."""
        return self.store.clock

    def now(self) -> int:
        """The provider's current time in whole seconds."""
        return self.store.clock.now()

    # ------------------------------------------------------------------ counters
    def count(self, group: str, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self._stats[group][name] += n

    def stats(self) -> dict[str, dict[str, int]]:
        with self._stats_lock:
            return {group: dict(counter) for group, counter in sorted(self._stats.items())}

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    # ------------------------------------------------------------------ upstream misbehaviour
    def record_issued(self, realm: str, *values: str) -> None:
        """Keep the demo upstream's newly issued credentials when recording is on."""
        if realm == "upstream" and self._recorded is not None:
            with self._stats_lock:
                self._recorded.extend(values)

    def recorded_upstream_tokens(self, *, forget: bool = False) -> list[str] | None:
        """Every code and token the demo upstream issued (``None``: recording is off);
        ``forget`` empties the record after reading it."""
        if self._recorded is None:
            return None
        with self._stats_lock:
            tokens = list(self._recorded)
            if forget:
                self._recorded.clear()
            return tokens

    # ------------------------------------------------------------------ users
    def user(self, sub: str | None) -> User | None:
        if not sub:
            return None
        row = self.store.get_user(sub)
        return User(row["sub"], row["email"], row["name"]) if row else None

    def userinfo_claims(self, sub: str, scope: str) -> dict[str, Any]:
        row = self.store.get_user(sub)
        claims: dict[str, Any] = {"sub": sub}
        scopes = split_scope(scope)
        if row is not None and "profile" in scopes:
            claims["name"] = row["name"]
            claims["preferred_username"] = row["sub"]
        if row is not None and "email" in scopes and row["email"]:
            claims["email"] = row["email"]
            claims["email_verified"] = True
        return claims

    # ------------------------------------------------------------------ background work
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------------ metadata
    def discovery(self) -> dict[str, Any]:
        """OpenID Provider Metadata (OIDC Discovery 1.0 / RFC 8414 / CIBA / RFC 9396)."""
        base = self.issuer
        resource_scopes = [s for row in self.store.resources().values() for s in row["scopes"].split()]
        return {
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "userinfo_endpoint": base + "/userinfo",
            "jwks_uri": base + "/jwks",
            "introspection_endpoint": base + "/introspect",
            "revocation_endpoint": base + "/revoke",
            "backchannel_authentication_endpoint": base + "/bc-authorize",
            "device_authorization_endpoint": base + "/device_authorization",
            "registration_endpoint": base + "/register",
            "client_id_metadata_document_supported": True,
            "scopes_supported": [*OIDC_SCOPES, *resource_scopes],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(ALL_MAIN_GRANTS),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": SIGNING_ALGS,
            "userinfo_signing_alg_values_supported": ["none"],
            "token_endpoint_auth_methods_supported": AUTH_ALL,
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256", "EdDSA"],
            "introspection_endpoint_auth_methods_supported": AUTH_CONFIDENTIAL,
            "revocation_endpoint_auth_methods_supported": AUTH_ALL,
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "azp",
                "name",
                "preferred_username",
                "email",
                "email_verified",
            ],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "acr_values_supported": ACR_VALUES_SUPPORTED,
            "authorization_response_iss_parameter_supported": True,
            "backchannel_token_delivery_modes_supported": ["poll", "ping"],
            "backchannel_user_code_parameter_supported": False,
            "authorization_details_types_supported": list(SUPPORTED_TYPES),
            "resource_indicators_supported": sorted(self.store.resources()),
        }

    def upstream_metadata(self) -> dict[str, Any]:
        """RFC 8414 metadata of the demo upstream authorization server."""
        base = self.upstream_issuer
        return {
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "revocation_endpoint": base + "/revoke",
            "introspection_endpoint": base + "/introspect",
            "userinfo_endpoint": base + "/userinfo",
            "scopes_supported": list(UPSTREAM_SCOPES),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": AUTH_ALL,
            "revocation_endpoint_auth_methods_supported": AUTH_ALL,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def info(self) -> dict[str, Any]:
        """The READY document: where everything is, and the seeded credentials."""
        secrets = self.store.secrets
        return {
            "issuer": self.issuer,
            "discovery_url": self.issuer + "/.well-known/openid-configuration",
            "client_id": AGENT_CLIENT_ID,
            "client_secret": secrets.clients.get(AGENT_CLIENT_ID),
            "users": dict(secrets.users),
            "approval_url": self.base_url + "/approvals",
            "connections_url": self.base_url + "/connections",
            "admin_url": self.base_url + "/admin",
            "admin_token": secrets.admin_token,
            "admin_token_file": str(self.store.data_dir / "secrets.json"),
            "data_dir": str(self.store.data_dir),
            "upstream_issuer": self.upstream_issuer,
            "upstream_client_id": UPSTREAM_CONNECT_CLIENT_ID,
            "upstream_client_secret": secrets.clients.get(UPSTREAM_CONNECT_CLIENT_ID),
            "upstream_connection": UPSTREAM_CONNECTION,
            "api_url": self.api_url,
            "api_audience": DEMO_API_AUDIENCE,
            "ciba_interval": self.ciba_interval,
        }
