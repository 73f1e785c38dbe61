"""Where :class:`~langchain_agent_auth.mcp.MCPAuth` keeps the MCP tokens it obtained, per user
and server: :class:`MemoryTokenStore` (this process) or :class:`SealedTokenStore` (sealed with
the vault's keyring in a LangGraph store, durable and shared by workers; it also keeps the
sign-ins under way, so the callback may reach another worker than the one that paused).

A store says whether its calls block (``blocking``): the auth flow runs a blocking store's
calls in a worker thread under asyncio, and an in-memory one inline.

Example:
    >>> store = MemoryTokenStore()
    >>> isinstance(store, MCPTokenStore), store.blocking
    (True, False)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any, Protocol, runtime_checkable

from langchain_agent_auth.oauth.tokens import TokenResponse

__all__ = ["MCPTokenStore", "MemoryTokenStore", "SealedTokenStore"]

log = logging.getLogger("langchain_agent_auth.mcp")


@runtime_checkable
class MCPTokenStore(Protocol):
    """Where :class:`MCPAuth` keeps tokens, keyed by user and server."""

    def get(self, key: str) -> TokenResponse | None: ...

    def put(self, key: str, token: TokenResponse) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryTokenStore:
    """Tokens in this process's memory (the default).

    Example:
        >>> store = MemoryTokenStore()
        >>> store.put("alice|https://mcp.example/mcp", TokenResponse("t0k3n"))
        >>> store.get("alice|https://mcp.example/mcp").access_token
        't0k3n'
        >>> store.get("bob|https://mcp.example/mcp") is None
        True
    """

    blocking = False  # no I/O: called inline, also from async code

    def __init__(self) -> None:
        self._items: dict[str, TokenResponse] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> TokenResponse | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, token: TokenResponse) -> None:
        with self._lock:
            self._items[key] = token

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class SealedTokenStore:
    """MCP tokens sealed with the vault's :class:`~langchain_agent_auth.crypto.Keyring`
    (AES-256-GCM, key ids for rotation) in a LangGraph ``BaseStore`` (SQLite, PostgreSQL…),
    under ``("agent_auth", "mcp", "tokens")``: durable across restarts and shared by workers,
    per user and server. Each box is bound (AAD) to its key, so a box copied under another user
    does not open; a box that does not open is no token (the user signs in again).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> tokens = SealedTokenStore(InMemoryStore(), Keyring.generate())
        >>> tokens.put("alice|https://mcp.example/mcp", TokenResponse("t0k3n", scope=("notes:read",)))
        >>> tokens.get("alice|https://mcp.example/mcp").scope
        ('notes:read',)
        >>> tokens.get("bob|https://mcp.example/mcp") is None
        True
    """

    NAMESPACE = ("agent_auth", "mcp", "tokens")
    blocking = True

    def __init__(self, store: Any, keyring: Any = None) -> None:
        from langchain_agent_auth.core.crypto import default_keyring

        self.store = store
        self.keyring = keyring if keyring is not None else default_keyring()

    @staticmethod
    def _id(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str) -> TokenResponse | None:
        item = self.store.get(self.NAMESPACE, self._id(key))
        if item is None:
            return None
        try:
            data = json.loads(self.keyring.open(item.value["sealed"], aad=b"agent_auth/mcp|" + key.encode()))
            return TokenResponse(data["access_token"], token_type=data.get("token_type", "Bearer"),
                                 expires_at=data.get("expires_at"), refresh_token=data.get("refresh_token"),
                                 scope=tuple(data["scope"]) if data.get("scope") is not None else None)
        except Exception as exc:  # damaged, foreign key, other user's box: no usable token
            log.warning("MCP token record for %s cannot be opened (%s): the user signs in again",
                        self._id(key)[:12], type(exc).__name__)
            return None

    def put(self, key: str, token: TokenResponse) -> None:
        data = {"access_token": token.access_token, "token_type": token.token_type, "expires_at": token.expires_at,
                "refresh_token": token.refresh_token, "scope": list(token.scope) if token.scope else None}
        sealed = self.keyring.seal(json.dumps(data).encode(), aad=b"agent_auth/mcp|" + key.encode())
        self.store.put(self.NAMESPACE, self._id(key), {"sealed": sealed, "expires_at": token.expires_at})

    def delete(self, key: str) -> None:
        self.store.delete(self.NAMESPACE, self._id(key))

    # -- sign-ins under way: the callback may reach another worker than the one that paused

    PENDING = ("agent_auth", "mcp", "pending")

    def save_pending(self, state: str, data: dict[str, Any]) -> None:
        """Keep a sign-in under way (PKCE verifier, client) sealed, bound to its ``state``."""
        sealed = self.keyring.seal(json.dumps(data).encode(), aad=b"agent_auth/mcp-pending|" + state.encode())
        self.store.put(self.PENDING, self._id(state), {"sealed": sealed, "created": data.get("created")})

    def take_pending(self, state: str) -> dict[str, Any] | None:
        """The sign-in for ``state``, once: one compare-and-set decides which caller gets it."""
        from langchain_agent_auth.core.store_cas import compare_and_set

        if not compare_and_set(self.store).swap(f"mcp|pending|{self._id(state)}", "taken"):
            return None
        item = self.store.get(self.PENDING, self._id(state))
        self.store.delete(self.PENDING, self._id(state))
        if item is None:
            return None
        try:
            data = json.loads(self.keyring.open(item.value["sealed"], aad=b"agent_auth/mcp-pending|" + state.encode()))
        except Exception as exc:
            log.warning("a pending MCP sign-in cannot be opened (%s)", type(exc).__name__)
            return None
        return data if isinstance(data, dict) else None
