"""Provider profiles: what one kind of OpenID provider needs beyond the standards, as data.

The protocol code is written against the standards (discovery, RFC 8693, CIBA). Where a
provider departs from them or fills a gap its own way (Auth0's ``/bc-authorize`` missing from
discovery, its Token Vault exchange with its own grant and token types, the ``iss_sub`` login
hint its CIBA expects), the difference is a field of that provider's :class:`ProviderProfile`
and the code reads it, instead of branching on the provider's name:

* :data:`AUTH0`: an Auth0 tenant (``OAuthClient.for_auth0``, ``CIBAApprover.for_auth0``, the
  vault's ``"auth0_token_vault"`` source);
* :data:`OKTA`: an Okta org (custom authorization server ``default``; CIBA by username);
* :data:`LOCAL`: the toolkit's own provider (``agent-auth dev``), which speaks Auth0's Token
  Vault exchange and accepts every login hint format;
* :data:`GENERIC_OIDC`: any provider that follows the standards (discovery gives everything).

This module is part of the protocol layer and imports only ``core``.

Example:
    >>> AUTH0.issuer_for("tenant.us.auth0.com")
    'https://tenant.us.auth0.com/'
    >>> AUTH0.metadata_overrides("https://tenant.us.auth0.com/")
    {'backchannel_authentication_endpoint': 'https://tenant.us.auth0.com/bc-authorize'}
    >>> AUTH0.ciba_login_hint, profile("okta").issuer_for("acme.okta.com")
    ('iss_sub', 'https://acme.okta.com/oauth2/default')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_agent_auth.core.errors import ConfigurationError, IdentityError
from langchain_agent_auth.core.identity import UserIdentity

__all__ = [
    "AUTH0",
    "AUTH0_TOKEN_VAULT",
    "GENERIC_OIDC",
    "LOCAL",
    "OKTA",
    "FederatedExchange",
    "LoginHintFormat",
    "ProviderProfile",
    "iss_sub_login_hint",
    "login_hint_for",
    "profile",
]

#: How a CIBA request names the user: their subject, their email, or Auth0's JSON ``iss_sub``.
LoginHintFormat = Literal["subject", "email", "iss_sub"]

TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"


@dataclass(frozen=True)
class FederatedExchange:
    """A provider's exchange of the user's token for an upstream API token it keeps for them
    (Auth0 Token Vault): its grant, token types, parameter names and "not connected" errors."""

    grant_type: str
    requested_token_type: str
    #: ``Connection.subject_token_type`` -> the ``subject_token_type`` URN the provider takes.
    subject_token_types: Mapping[str, str]
    #: The parameter naming the upstream connection (``google-oauth2``...).
    connection_param: str = "connection"
    #: Error codes meaning "the user never linked this account" (not "reconnect").
    not_connected_errors: tuple[str, ...] = ()

    def params(self, subject_token: str, subject_token_type: str, connection: str, *,
               login_hint: str | None = None, scope: str | None = None) -> dict[str, Any]:
        """The token request's parameters (``None`` values are not sent).

        Example:
            >>> p = AUTH0_TOKEN_VAULT.params("rt", "refresh_token", "google-oauth2")
            >>> p["subject_token_type"], p["connection"]
            ('urn:ietf:params:oauth:token-type:refresh_token', 'google-oauth2')
        """
        try:
            token_type = self.subject_token_types[subject_token_type]
        except KeyError:
            raise ConfigurationError(
                f"this exchange takes a subject token of type {' or '.join(self.subject_token_types)}") from None
        return {"grant_type": self.grant_type, "subject_token": subject_token, "subject_token_type": token_type,
                "requested_token_type": self.requested_token_type, self.connection_param: connection,
                "login_hint": login_hint, "scope": scope}


@dataclass(frozen=True)
class ProviderProfile:
    """One kind of OpenID provider: where its issuer is, what discovery leaves out, how its
    CIBA names the user, and its federated token exchange if it has one."""

    name: str
    #: The issuer URL for a domain: ``{domain}`` is replaced (``https://{domain}/``).
    issuer_template: str = "https://{domain}/"
    #: Endpoints discovery does not announce, as paths under the issuer.
    endpoint_paths: Mapping[str, str] = field(default_factory=dict)
    #: The login hint format its CIBA endpoint expects.
    ciba_login_hint: LoginHintFormat = "subject"
    federated_exchange: FederatedExchange | None = None

    def issuer_for(self, domain: str) -> str:
        """The issuer URL of the tenant or org at ``domain`` (a bare host or an https URL)."""
        host = domain.removeprefix("https://").rstrip("/")
        return self.issuer_template.format(domain=host)

    def metadata_overrides(self, issuer: str) -> dict[str, str]:
        """The endpoints to set after discovery (``OAuthClient(metadata_overrides=...)``)."""
        base = issuer if issuer.endswith("/") else issuer + "/"
        return {name: base + path for name, path in self.endpoint_paths.items()}


#: Auth0 Token Vault's federated-connection exchange (the local provider speaks it too).
AUTH0_TOKEN_VAULT = FederatedExchange(
    grant_type="urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token",
    requested_token_type="http://auth0.com/oauth/token-type/federated-connection-access-token",
    subject_token_types={"refresh_token": TOKEN_TYPE_REFRESH, "access_token": TOKEN_TYPE_ACCESS},
    not_connected_errors=("federated_connection_refresh_token_not_found",),
)

AUTH0 = ProviderProfile(
    "auth0",
    endpoint_paths={"backchannel_authentication_endpoint": "bc-authorize"},
    ciba_login_hint="iss_sub",
    federated_exchange=AUTH0_TOKEN_VAULT,
)
# Okta's CIBA names the user by username, which is the email address in most orgs.
OKTA = ProviderProfile("okta", issuer_template="https://{domain}/oauth2/default", ciba_login_hint="email")
LOCAL = ProviderProfile("local", issuer_template="http://{domain}/", federated_exchange=AUTH0_TOKEN_VAULT)
GENERIC_OIDC = ProviderProfile("oidc")

_PROFILES = {p.name: p for p in (AUTH0, OKTA, LOCAL, GENERIC_OIDC)}


def profile(name: str) -> ProviderProfile:
    """The profile called ``name`` (``auth0``, ``okta``, ``local``, ``oidc``).

    Example:
        >>> profile("auth0") is AUTH0
        True
    """
    try:
        return _PROFILES[name]
    except KeyError:
        raise ConfigurationError(f"unknown provider profile {name!r} (known: {', '.join(_PROFILES)})") from None


def iss_sub_login_hint(issuer: str, subject: str) -> str:
    """A ``login_hint`` naming the user by issuer and subject, as Auth0's CIBA expects.

    Built with a JSON encoder, so quotes or backslashes in the subject cannot change the
    structure of the hint.

    Example:
        >>> print(iss_sub_login_hint("https://t.auth0.com/", 'auth0|a"b'))
        {"format":"iss_sub","iss":"https://t.auth0.com/","sub":"auth0|a\\"b"}
    """
    if not isinstance(issuer, str) or not issuer or not isinstance(subject, str) or not subject:
        raise ConfigurationError("an iss_sub login_hint needs a non-empty issuer and subject")
    return json.dumps({"format": "iss_sub", "iss": issuer, "sub": subject}, separators=(",", ":"),
                      ensure_ascii=False)


def login_hint_for(fmt: LoginHintFormat, user: UserIdentity, issuer: str) -> str:
    """``user`` as a CIBA ``login_hint`` of format ``fmt`` (``issuer``: for ``iss_sub``).

    Example:
        >>> login_hint_for("subject", UserIdentity(subject="alice"), "https://idp.example/")
        'alice'
    """
    if fmt == "email":
        if not user.email:
            raise IdentityError("the user has no email address to send the approval request to",
                                hint="I can't ask you for approval: your account has no email address.")
        return user.email
    if fmt == "iss_sub":
        return iss_sub_login_hint(issuer, user.subject)
    return user.subject
