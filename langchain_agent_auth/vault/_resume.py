"""What a resumer needs from the vault: threads waiting on ``connect_account`` that can go on.

The approval pillar's resumer watches "pending sources". This one reads the connect flows
the vault keeps in the store (never the checkpoints): a flow that completed, or that the
user refused at the provider, belongs to a thread that can be resumed; after resuming, the
resumer marks it so it is resumed once.
"""

from __future__ import annotations

from typing import Any

from langchain_agent_auth.vault._model import PendingConnect
from langchain_agent_auth.vault._vault import TokenVault

__all__ = ["ConnectPendingSource"]


class ConnectPendingSource:
    """Pending ``connect_account`` pauses whose thread can be resumed now.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.crypto import Keyring
        >>> source = ConnectPendingSource(TokenVault([], store=InMemoryStore(), keyring=Keyring.generate()))
        >>> source.ready()
        []
    """

    kind = "connect_account"

    def __init__(self, vault: TokenVault) -> None:
        self.vault = vault

    @staticmethod
    def _select(items: list[PendingConnect]) -> list[PendingConnect]:
        return [p for p in items if p.status in ("completed", "failed") and not p.resumed and p.thread_id]

    def ready(self) -> list[PendingConnect]:
        """Finished flows (completed or refused) whose thread was not resumed yet."""
        return self._select(self.vault.pending_connects())

    async def aready(self) -> list[PendingConnect]:
        """Async :meth:`ready`."""
        return self._select(await self.vault.apending_connects())

    @staticmethod
    def resume_value(item: PendingConnect) -> dict[str, Any]:
        """The ``Command(resume=...)`` value for ``item``'s pause (the guard re-checks the store)."""
        return {"action": "connected" if item.status == "completed" else "cancel"}

    def mark_resumed(self, item: PendingConnect) -> bool:
        """Remember that ``item``'s thread was resumed (``False`` if another resumer did it)."""
        return self.vault.mark_resumed(item.id)

    async def amark_resumed(self, item: PendingConnect) -> bool:
        """Async :meth:`mark_resumed`."""
        return await self.vault.amark_resumed(item.id)
