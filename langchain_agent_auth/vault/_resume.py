"""What a resumer needs from the vault: threads waiting on ``connect_account`` that can go on.

:class:`ConnectPendingSource` is the vault's :class:`~langchain_agent_auth.resume.PendingSource`
for the shared resumer (:mod:`langchain_agent_auth.resume`): pass it in ``sources=[...]``. It
reads the connect flows the vault keeps in the store, never the checkpoints: a flow that
finished belongs to a thread that can be resumed. The pause is matched by the payload's
``connect_id``, then by ``tool_call_id``.

Resume values: ``{"action": "connected"}`` when the flow completed (the guard still checks
the store) or failed for a reason other than the user's refusal (the guard then pauses again
with a fresh link); ``{"action": "cancel"}`` when the user refused at the provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.resume._pending import PendingItem, StoreClaims
from langchain_agent_auth.vault._model import PendingConnect
from langchain_agent_auth.vault._vault import TokenVault

__all__ = ["ConnectItem", "ConnectPendingSource"]

_FINISHED = ("completed", "failed")
_CLAIM_TTL = 86400.0

#: The resumer's item, as this source makes it (``interrupt_type="connect_account"``,
#: ``ref_field="connect_id"``); the name is kept for code that imported it.
ConnectItem = PendingItem


class ConnectPendingSource(StoreClaims):
    """Finished connect flows whose thread was not resumed yet.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> source = ConnectPendingSource(TokenVault([], store=InMemoryStore(), keyring=Keyring.generate()))
        >>> source.name, source.due(0.0, 10)
        ('vault', [])
    """

    name = "vault"
    claim_ttl = _CLAIM_TTL

    def __init__(self, vault: TokenVault) -> None:
        self.vault = vault

    # -- plain helpers

    @staticmethod
    def resume_value(item: PendingConnect) -> dict[str, Any]:
        """The ``Command(resume=...)`` value for ``item``'s pause (the guard re-checks the store)."""
        refused = item.status == "failed" and item.error == "access_denied"
        return {"action": "cancel" if refused else "connected"}

    def _item(self, p: PendingConnect) -> PendingItem:
        user = None
        if p.identity and p.identity.get("subject"):
            # Plain JSON (a remote resumer sends it to a LangGraph server); validated here.
            user = UserIdentity(subject=p.identity["subject"], issuer=p.identity.get("issuer"),
                                tenant=p.identity.get("tenant")).model_dump(include={"subject", "issuer", "tenant"})
        return PendingItem(
            source=self.name, key=p.id, ref=p.id, thread_id=p.thread_id or "", checkpoint_ns=p.checkpoint_ns or "",
            tool_call_id=p.tool_call_id, interrupt_type="connect_account", ref_field="connect_id",
            context={"user": user} if user else None, expires_at=p.expires_at,
            resume=self.resume_value(p), extra={"connection": p.connection, "status": p.status},
            claim=f"{p.status}|{p.next_check_at!r}|{p.resumed}",
        )

    @staticmethod
    def _select(items: Sequence[PendingConnect], now: float | None = None) -> list[PendingConnect]:
        return [p for p in items if p.status in _FINISHED and not p.resumed and not p.abandoned and p.thread_id
                and (now is None or p.next_check_at <= now)]

    # -- the pending source protocol

    def due(self, now: float, limit: int) -> list[PendingItem]:
        """Finished flows to resume now (at most ``limit``)."""
        return [self._item(p) for p in self._select(self.vault.pending_connects(), now)[:limit]]

    async def adue(self, now: float, limit: int) -> list[PendingItem]:
        """Async :meth:`due`."""
        return [self._item(p) for p in self._select(await self.vault.apending_connects(), now)[:limit]]

    def check(self, item: Any, now: float) -> Any:
        """The item with its resume value: a finished flow's thread may always continue."""
        return replace(item, resume=dict(item.resume or {"action": "connected"}))

    async def acheck(self, item: Any, now: float) -> Any:
        """Async :meth:`check`."""
        return self.check(item, now)

    def settle(self, item: Any, resumed: bool, now: float, retry_in: float | None) -> None:
        """Record the resumer's outcome (resumed, retry later, or give up)."""
        self.vault.mark_resumed(item.key, resumed=resumed, retry_at=None if retry_in is None else now + retry_in)

    async def asettle(self, item: Any, resumed: bool, now: float, retry_in: float | None) -> None:
        """Async :meth:`settle`."""
        await self.vault.amark_resumed(item.key, resumed=resumed,
                                       retry_at=None if retry_in is None else now + retry_in)

    def claims_store(self) -> Any:
        """Claims live in the vault's store."""
        return self.vault.store

    # -- simple use without a resumer

    def ready(self) -> list[PendingConnect]:
        """Finished flows (completed or refused) whose thread was not resumed yet."""
        return self._select(self.vault.pending_connects())

    async def aready(self) -> list[PendingConnect]:
        """Async :meth:`ready`."""
        return self._select(await self.vault.apending_connects())

    def mark_resumed(self, item: PendingConnect) -> bool:
        """Remember that ``item``'s thread was resumed (``False`` if another resumer did it)."""
        return self.vault.mark_resumed(item.id)

    async def amark_resumed(self, item: PendingConnect) -> bool:
        """Async :meth:`mark_resumed`."""
        return await self.vault.amark_resumed(item.id)
