"""The protocol layer: OpenID discovery, JWKS and JWT validation, and token endpoint flows
(client credentials, refresh, authorization code + PKCE, CIBA poll and ping, RFC 8693 token exchange,
Auth0's federated exchange, revocation, introspection), each usable sync and async.

Flows are sans-I/O generators (:mod:`._flow`); :class:`OAuthClient` runs them.

Example:
    >>> from langchain_agent_auth.oauth import OAuthClient
    >>> OAuthClient("https://idp.example", "agent", "secret")
    OAuthClient(issuer='https://idp.example', client_id='agent')
"""

from langchain_agent_auth.oauth._flow import Flow, RetryPolicy, Sleep, run_async, run_sync
from langchain_agent_auth.oauth.auth import ClientCredentialsAuth
from langchain_agent_auth.oauth.client import OAuthClient, Pkce
from langchain_agent_auth.oauth.client_auth import AuthMethod, ClientCredentials
from langchain_agent_auth.oauth.device import DEVICE_CODE_GRANT, DeviceAuthorizationResponse
from langchain_agent_auth.oauth.discovery import MetadataCache, ProviderMetadata, discover
from langchain_agent_auth.oauth.flows import (
    AUTH0_FEDERATED_GRANT,
    AUTH0_FEDERATED_TOKEN_TYPE,
    CIBA_GRANT,
    TOKEN_EXCHANGE_GRANT,
    TOKEN_TYPE_ACCESS,
    TOKEN_TYPE_ID,
    TOKEN_TYPE_JWT,
    TOKEN_TYPE_REFRESH,
    BackchannelAuthResponse,
    FlowSettings,
    iss_sub_login_hint,
)
from langchain_agent_auth.oauth.jwks import JWKSCache
from langchain_agent_auth.oauth.jwt import JWTVerifier
from langchain_agent_auth.oauth.ping import PingReceiver, new_notification_token
from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = [
    "AUTH0_FEDERATED_GRANT",
    "AUTH0_FEDERATED_TOKEN_TYPE",
    "CIBA_GRANT",
    "DEVICE_CODE_GRANT",
    "TOKEN_EXCHANGE_GRANT",
    "TOKEN_TYPE_ACCESS",
    "TOKEN_TYPE_ID",
    "TOKEN_TYPE_JWT",
    "TOKEN_TYPE_REFRESH",
    "AuthMethod",
    "BackchannelAuthResponse",
    "ClientCredentials",
    "ClientCredentialsAuth",
    "DeviceAuthorizationResponse",
    "Flow",
    "FlowSettings",
    "JWKSCache",
    "JWTVerifier",
    "MetadataCache",
    "OAuthClient",
    "PingReceiver",
    "Pkce",
    "ProviderMetadata",
    "RetryPolicy",
    "Sleep",
    "TokenResponse",
    "discover",
    "iss_sub_login_hint",
    "new_notification_token",
    "run_async",
    "run_sync",
]
