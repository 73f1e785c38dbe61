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

Layout: ``_vault`` (``TokenVault``: token retrieval, status, listing, import, revoke),
``_connect`` (the connect flow and its pending records), ``_sources`` (credential sources and
their registry), ``_integrations`` (the guard, ``with_vault``, ``VaultMiddleware``, the node
form, the ``connect_account`` pause, the accessors a tool uses), ``_callback`` (the ASGI
callback), ``_records`` / ``_cache`` / ``_lease`` (storage layout, in-memory cache, leases),
``_examples`` (the throwaway vault the doctests share).
Provider specifics (Auth0 Token Vault's parameters) are in :mod:`langchain_agent_auth.oauth.profiles`.

Design notes:

* **Sources.** ``Connection(source="oauth")`` keeps the user's upstream tokens, sealed with
  AES-256-GCM (:class:`~langchain_agent_auth.crypto.Keyring`, key id on every record, AAD =
  user key + connection) in a LangGraph ``BaseStore`` (``SqliteStore`` by default; layout in
  ``_records``). ``"token_exchange"`` (RFC 8693) and ``"auth0_token_vault"`` store nothing:
  they exchange the user's token at the main issuer on a cache miss. Other kinds plug in with
  :func:`register_source` (a :class:`CredentialSource` per connection).
* **The user's own token** (the exchange's ``subject_token``) is read from the LangGraph
  runtime context (``context={"user": ..., "subject_token": ...}``) or from
  ``Connection(subject_token=f)``. The runtime context is never checkpointed, so the token
  stays out of state, checkpoints and payloads; the price is that the app passes it again on
  every ``invoke`` and on resume (it has it: it authenticated the request). Storing it in the
  vault instead would keep a long-lived user credential at rest for the agent's sake.
* **Caching.** In memory, keyed by (user key = issuer|tenant|subject, connection, sorted
  scopes[, linked account]), honouring expiry minus ``leeway``; concurrent misses share one
  fetch (threads and asyncio alike). Across processes a short lease in the store keeps two
  workers from spending one rotating refresh token: the store's compare-and-set
  (:class:`CasLease`: strict on ``InMemoryStore``, ``SqliteStore`` and ``PostgresStore``), best
  effort on other stores (see :class:`StoreLease`).
* **Pauses.** ``connect_account`` payloads carry the connection, scopes, missing scopes and the
  authorize URL, never a token; the PKCE verifier and the state's binding to (user, thread,
  connection, scopes, expiry) live in the store. On resume the guard checks the store again.

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from langchain_agent_auth.core.crypto import Keyring
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

from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
    from langchain_agent_auth.vault._callback import VaultCallback, callback_app
    from langchain_agent_auth.vault._integrations import (
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
    from langchain_agent_auth.vault._lease import CasLease, Lease, SqliteLease, StoreLease
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
    from langchain_agent_auth.vault._resume import ConnectItem, ConnectPendingSource
    from langchain_agent_auth.vault._sources import (
        Auth0TokenVaultSource,
        CredentialSource,
        LocalOAuthSource,
        SourceEnv,
        TokenExchangeSource,
        TokenQuery,
        register_source,
        source_kinds,
    )
    from langchain_agent_auth.vault._vault import TokenVault, default_data_dir, open_default_store

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)



