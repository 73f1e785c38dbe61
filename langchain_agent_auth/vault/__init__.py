"""The vault pillar: upstream API credentials for the user, handed to tools just before they run.

Declare connections once, build a :class:`TokenVault`, and guard tools with it::

    vault = TokenVault([Connection("calendar", issuer=UPSTREAM, client_id=..., client_secret=...,
                                   scopes=["calendar.read"], redirect_uri=CALLBACK_URL)])
    tool = with_vault(list_events, vault, connection="calendar", scopes=["calendar.read"])
    # or: create_agent(..., middleware=[VaultMiddleware(vault, {"list_events": "calendar"})])
    # or: builder.add_node("tools", vault_tool_node([list_events], vault, {"list_events": "calendar"}))

Inside the tool, :func:`get_access_token` or :func:`vault_auth` reach the token. When the
user has no usable credential the graph pauses with a ``connect_account`` interrupt
(:class:`ConnectAccountPayload`) carrying the authorize URL; the :class:`VaultCallback`
route finishes the flow and the run resumes.

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from langchain_agent_auth.crypto import Keyring
    >>> from langchain_agent_auth.identity import UserIdentity
    >>> vault = TokenVault([Connection("calendar", issuer="https://up.example", client_id="agent",
    ...     client_secret="s3cret-value", redirect_uri="http://127.0.0.1:8765/callback")],
    ...     store=InMemoryStore(), keyring=Keyring.generate())
    >>> alice = UserIdentity(subject="alice")
    >>> vault.import_token(alice, "calendar", access_token="opaque-token-1", scopes=["calendar.read"])
    >>> vault.get_token(alice, "calendar", ["calendar.read"]).connection
    'calendar'
    >>> [(c.name, c.status) for c in vault.connections(alice)]
    [('calendar', 'active')]
"""

from langchain_agent_auth.vault._callback import VaultCallback, callback_app
from langchain_agent_auth.vault._guard import (
    ConnectAccountPayload,
    ConnectAccountResume,
    VaultAuth,
    VaultGuard,
    VaultMiddleware,
    aget_access_token,
    arefresh_access_token,
    get_access_token,
    refresh_access_token,
    vault_auth,
    vault_guards,
    vault_tool_node,
    with_vault,
)
from langchain_agent_auth.vault._lease import Lease, SqliteLease, StoreLease
from langchain_agent_auth.vault._model import (
    AccessToken,
    Connection,
    ConnectionInfo,
    ConnectRequest,
    ConnectResult,
    CredentialStatus,
    PendingConnect,
    RevokeResult,
    normalize_scopes,
)
from langchain_agent_auth.vault._resume import ConnectPendingSource
from langchain_agent_auth.vault._sources import (
    Auth0TokenVaultSource,
    CredentialSource,
    LocalOAuthSource,
    TokenExchangeSource,
    TokenQuery,
)
from langchain_agent_auth.vault._vault import TokenVault, default_data_dir, open_default_store

__all__ = [
    "AccessToken",
    "Auth0TokenVaultSource",
    "ConnectAccountPayload",
    "ConnectAccountResume",
    "ConnectPendingSource",
    "ConnectRequest",
    "ConnectResult",
    "Connection",
    "ConnectionInfo",
    "CredentialSource",
    "CredentialStatus",
    "Lease",
    "LocalOAuthSource",
    "PendingConnect",
    "RevokeResult",
    "SqliteLease",
    "StoreLease",
    "TokenExchangeSource",
    "TokenQuery",
    "TokenVault",
    "VaultAuth",
    "VaultCallback",
    "VaultGuard",
    "VaultMiddleware",
    "aget_access_token",
    "arefresh_access_token",
    "callback_app",
    "default_data_dir",
    "get_access_token",
    "normalize_scopes",
    "open_default_store",
    "refresh_access_token",
    "vault_auth",
    "vault_guards",
    "vault_tool_node",
    "with_vault",
]
