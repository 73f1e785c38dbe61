"""The throwaway vault the pillar's runnable examples (doctests) share.

One ``calendar`` connection, an in-memory store and a fresh random key: the examples show
what a call does, not how to set a vault up (the package docstring and :class:`TokenVault`
show that). An application's vault keeps tokens in a persistent store, under a key it keeps.

Example:
    >>> example_vault().connection_names
    ['calendar']
"""

from __future__ import annotations

from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.vault._model import Connection
from langchain_agent_auth.vault._vault import TokenVault

__all__ = ["example_vault"]


def example_vault() -> TokenVault:
    """A vault with one ``calendar`` connection (an OAuth client of ``https://up.example``)."""
    calendar = Connection("calendar", issuer="https://up.example", client_id="agent",
                          client_secret="s3cret-value", redirect_uri="http://127.0.0.1:8765/callback")
    return TokenVault([calendar], store=InMemoryStore(), keyring=Keyring.generate())
