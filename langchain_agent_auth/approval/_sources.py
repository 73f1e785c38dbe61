"""The approval pillar's pending source: :class:`ApprovalSource` lists the CIBA approvals a
resumer must check (a store filter, never a scan of threads), polls each once when due and
tells the resumer which threads may continue. It plugs into the shared resumer
(:mod:`langchain_agent_auth.resume`), which builds it from ``approvers=[...]`` through the
source registry (the approver module registers it, see
:func:`~langchain_agent_auth.resume.register_source`).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from langchain_agent_auth.approval._approvers import Approver, CIBAApprover
from langchain_agent_auth.approval._records import DECIDED, ApprovalRecord, ApprovalStore, ping_key
from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.store_cas import compare_and_set
from langchain_agent_auth.resume._pending import PendingItem, StoreClaims

__all__ = ["ApprovalSource"]


def _get(store: ApprovalStore, key: str) -> Call:
    return Call(lambda: store.get(key), lambda: store.aget(key))


def _put(store: ApprovalStore, rec: ApprovalRecord) -> Call:
    return Call(lambda: store.put(rec), lambda: store.aput(rec))


class ApprovalSource(StoreClaims):
    """Pending CIBA approvals of some approvers, in one store.

    Args:
        approvers: the :class:`CIBAApprover` objects whose requests to poll (matched to
            records by ``approver.name``); the same configuration the graph uses.
        store: the ``BaseStore`` the graph writes approvals to (default: the approvers'
            own ``store``).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> src = ApprovalSource([InAppApprover(keyring=Keyring.generate())], InMemoryStore())
        >>> src.due(0.0, 10)
        []
    """

    name = "approval"

    def __init__(self, approvers: Sequence[Approver], store: Any = None) -> None:
        if not approvers:
            raise ValueError("ApprovalSource needs at least one approver")
        self.approvers = {a.name: a for a in approvers}
        first = approvers[0]
        self.store = store if store is not None else first.store
        self._stores = {name: a.approval_store(self.store) for name, a in self.approvers.items()}

    def __repr__(self) -> str:
        return f"ApprovalSource({list(self.approvers)!r})"

    def _item(self, rec: ApprovalRecord) -> PendingItem:
        return PendingItem(
            source=self.name, key=rec.key, ref=rec.approval_id, thread_id=rec.thread_id or "",
            checkpoint_ns=rec.checkpoint_ns, tool_call_id=rec.tool_call_id, interrupt_type="approval_pending",
            assistant_id=rec.assistant_id, graph_id=rec.graph_id,
            context={"user": rec.user} if rec.user else None, config=dict(rec.resume_config),
            expires_at=rec.expires_at, extra={"approver": rec.source, "resumed_at": rec.resumed_at,
                                             "misses": rec.misses},
            claim=f"{rec.status}|{rec.next_check_at!r}|{rec.polls}|{rec.resumed_at!r}",
        )

    def _due(self, now: float, limit: int) -> Flow[list[PendingItem]]:
        out: list[PendingItem] = []
        for name, store in self._stores.items():
            left = limit - len(out)
            records = yield Call(lambda s=store, n=name, k=left: s.due(now, limit=k, sources=[n]),
                                 lambda s=store, n=name, k=left: s.adue(now, limit=k, sources=[n]))
            out += [self._item(rec) for rec in records if rec.thread_id]
            if len(out) >= limit:
                break
        return out

    def due(self, now: float, limit: int) -> list[PendingItem]:
        """Watched approvals whose next check is due (at most ``limit``)."""
        return run(self._due(now, limit))

    async def adue(self, now: float, limit: int) -> list[PendingItem]:
        """Async :meth:`due`."""
        return await arun(self._due(now, limit))

    def _ready(self, item: PendingItem, rec: ApprovalRecord | None) -> PendingItem | None:
        if rec is None or rec.approval_id != item.ref or rec.status not in DECIDED:
            return None
        # Named by the state the check left it in: the resumer claims that state too, so a
        # resumer that lists the item now (approved and due at once) leaves it alone.
        return replace(item, resume={"approval_id": rec.approval_id, "decision": "check"},
                       claim=self._item(rec).claim if item.claim else "")

    def _owner(self, item: PendingItem) -> tuple[Approver, ApprovalStore] | None:
        name = item.extra.get("approver")
        if name not in self.approvers:
            return None
        return self.approvers[name], self._stores[name]

    def _moved_on(self, item: PendingItem, rec: ApprovalRecord | None) -> bool:
        # Claimed in state S, but the record left S: another resumer checked or resumed it
        # after this one listed it (its claim on S was released or ran out). Polling again
        # now would break the interval; resuming again would resume the thread twice.
        if rec is None or rec.approval_id != item.ref:
            return True
        return bool(item.claim) and self._item(rec).claim != item.claim

    def _check(self, item: PendingItem) -> Flow[PendingItem | None]:
        owner = self._owner(item)
        if owner is None:
            return None
        approver, store = owner
        rec = yield _get(store, item.key)
        if self._moved_on(item, rec):
            return None
        assert rec is not None
        if rec.status == "pending" and isinstance(approver, CIBAApprover):
            rec = yield Call(lambda: approver.poll(rec, store), lambda: approver.apoll(rec, store))
        elif rec.status not in DECIDED and rec.watch:
            yield _put(store, rec.update(watch=False))  # consumed, superseded or not ours to poll
        return self._ready(item, rec)

    def check(self, item: PendingItem, now: float) -> PendingItem | None:
        """Poll ``item``'s request once if it is pending: the item with its resume value once decided."""
        return run(self._check(item))

    async def acheck(self, item: PendingItem, now: float) -> PendingItem | None:
        """Async :meth:`check`."""
        return await arun(self._check(item))

    def _settle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> Flow[None]:
        owner = self._owner(item)
        if owner is None:
            return
        rec = yield _get(owner[1], item.key)
        if rec is not None and rec.approval_id == item.ref:
            yield _put(owner[1], _settled(rec, resumed, now, retry_in, bool(item.extra.get("missed"))))

    def settle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None:
        """Record the resumer's outcome on ``item``'s record."""
        run(self._settle(item, resumed, now, retry_in))

    async def asettle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None:
        """Async :meth:`settle`."""
        await arun(self._settle(item, resumed, now, retry_in))

    def claims_store(self) -> Any:
        """Claims live in the approvals' store."""
        return self.store

    def _by_ping(self, auth_req_id: str) -> Flow[tuple[ApprovalStore, ApprovalRecord] | None]:
        key = ping_key(auth_req_id)
        for _, store in self._pairs():
            rec = yield Call(lambda s=store: s.by_ping_key(key), lambda s=store: s.aby_ping_key(key))
            if rec is not None:
                return store, rec
        return None

    def _ping_token(self, auth_req_id: str) -> Flow[str | None]:
        found = yield from self._by_ping(auth_req_id)
        return None if found is None else _ping_token(*found, auth_req_id)

    def ping_token(self, auth_req_id: str) -> str | None:
        """The notification token expected for a ping about ``auth_req_id`` (or ``None``)."""
        return run(self._ping_token(auth_req_id))

    async def aping_token(self, auth_req_id: str) -> str | None:
        """Async :meth:`ping_token`."""
        return await arun(self._ping_token(auth_req_id))

    def _nudge(self, auth_req_id: str) -> Flow[bool]:
        found = yield from self._by_ping(auth_req_id)
        if found is None or found[1].status != "pending":
            return False
        yield _put(found[0], found[1].update(next_check_at=0.0))
        return True

    def nudge(self, auth_req_id: str, now: float | None = None) -> bool:
        """A verified ping arrived: make the record due now."""
        return run(self._nudge(auth_req_id))

    async def anudge(self, auth_req_id: str, now: float | None = None) -> bool:
        """Async :meth:`nudge`."""
        return await arun(self._nudge(auth_req_id))

    def _purge(self, now: float, retention: float) -> Flow[int]:
        stores = {id(s.store): s for _, s in self._pairs()}
        cas = compare_and_set(self.store)
        yield Call(lambda: cas.purge(now), lambda: cas.apurge(now))  # lapsed claims
        removed = 0
        for s in stores.values():
            removed += yield Call(lambda s=s: s.purge(now - retention), lambda s=s: s.apurge(now - retention))
        return removed

    def purge(self, now: float, retention: float) -> int:
        """Delete finished approval records older than ``retention`` seconds."""
        return run(self._purge(now, retention))

    async def apurge(self, now: float, retention: float) -> int:
        """Async :meth:`purge`."""
        return await arun(self._purge(now, retention))

    def _pairs(self) -> list[tuple[Approver, ApprovalStore]]:
        return [(self.approvers[name], store) for name, store in self._stores.items()]


def _settled(rec: ApprovalRecord, resumed: bool, now: float, retry_in: float | None,
             missed: bool = False) -> ApprovalRecord:
    if resumed:
        # The guard stops watching when it consumes the decision; if the resumed run never
        # reached it (or paused on it again), look again after retry_in.
        return rec.update(resumed_at=now, next_check_at=now + (retry_in or 2.0))
    if retry_in is None:
        return rec.update(watch=False)
    return rec.update(next_check_at=now + retry_in, misses=rec.misses + missed)


def _ping_token(store: ApprovalStore, rec: ApprovalRecord, auth_req_id: str) -> str | None:
    try:
        secrets = store.open(rec)
    except Exception:
        return None
    rid, cnt = secrets.get("auth_req_id"), secrets.get("cnt")
    if not isinstance(rid, str) or not isinstance(cnt, str) or not hmac.compare_digest(rid, auth_req_id):
        return None
    return cnt

