"""The local identity provider: ``agent-auth dev``, the embedded default for every pillar.

A local OpenID provider built on authlib's server components, served by Starlette + uvicorn,
with its state in SQLite under a data directory (a restart loses nothing). It speaks what a
production provider speaks: discovery, JWKS, authorization code + PKCE with login and
consent pages, refresh tokens with rotation, client credentials, ID tokens, RFC 9068 JWT
access tokens, introspection, revocation, OpenID CIBA (poll and ping, with RAR
``authorization_details``), RFC 8693 token exchange and Auth0 Token Vault's
federated-connection exchange. It also hosts the user's "device" (an approval page), a demo
upstream OAuth server and a small demo API.

Example:
    >>> from langchain_agent_auth.devserver import LocalProvider
    >>> with LocalProvider() as idp:
    ...     sorted(idp.users)
    ['alice', 'bob']
"""

import logging
from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
    from langchain_agent_auth.devserver._provider import AdminClient, LocalProvider

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)

# A library stays quiet unless the application configures logging (``agent-auth dev`` does).
logging.getLogger(__name__).addHandler(logging.NullHandler())



