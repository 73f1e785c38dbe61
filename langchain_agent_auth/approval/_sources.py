"""What a resumer watches: :class:`PendingSource` (the plug-in protocol) and
:class:`ApprovalSource` (pending CIBA approvals in a store).

A pending source lists the records that are due (a store filter, never a scan of
threads), checks one (e.g. polls the provider once, respecting ``interval`` and
``slow_down``), and is told the outcome. Any pillar that pauses a thread until something
happens outside it (the vault's ``connect_account`` waits for the user to connect an
account) implements the protocol and registers with the same resumer::

    resumer = ApprovalResumer(graph, approvers=[ciba], sources=[my_vault_source])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from langchain_agent_auth.approval._approvers import Approver, CIBAApprover
from langchain_agent_auth.approval._records import DECIDED, ApprovalRecord, ApprovalStore, ping_key
from langchain_agent_auth.core.store_cas import compare_and_set

__all__ = ["ApprovalSource", "PendingItem", "PendingSource", "claim_item"]

# A claim is a lease: held while one resumer checks an item and resumes its thread; if that
# resumer dies (SIGKILL, lost machine), the lease runs out and another resumer takes the item
# over. The item's own state (next_check_at, polls) is shared by all resumers, so polling stays
# at one request per interval however many resumers run.
LEASE = 120.0


def _claim_name(item: Any) -> str:
    return f"resume|{item.source}|{item.key}|{item.ref}|{item.claim}"


def claim_item(store: Any, item: Any, owner: str, ttl: float = LEASE) -> bool:
    """Claim ``item`` (a :class:`PendingItem`) in the state it was seen in, on ``store``'s
    compare-and-set: ``True`` for exactly one of any number of resumers. The claim is a
    lease of ``ttl`` seconds: once it runs out (its holder died), another resumer may claim
    the item in the same state.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> store = InMemoryStore()
        >>> item = PendingItem(source="approval", key="k", ref="k.1", thread_id="t1", claim="0.0|0")
        >>> claim_item(store, item, "resumer-a"), claim_item(store, item, "resumer-b")
        (True, False)
    """
    return compare_and_set(store).swap(_claim_name(item), "claimed", owner=owner, ttl=ttl)


async def aclaim_item(store: Any, item: Any, owner: str, ttl: float = LEASE) -> bool:
    """Async :func:`claim_item`."""
    return await compare_and_set(store).aswap(_claim_name(item), "claimed", owner=owner, ttl=ttl)


def unclaim_item(store: Any, item: Any, owner: str) -> None:
    """Give back a claim taken by ``owner`` (it resumed nothing)."""
    compare_and_set(store).release(_claim_name(item), owner)


async def aunclaim_item(store: Any, item: Any, owner: str) -> None:
    """Async :func:`unclaim_item`."""
    await compare_and_set(store).arelease(_claim_name(item), owner)


@dataclass(frozen=True)
class PendingItem:
    """One paused tool call a source watches.

    Attributes:
        source: the name of the source that owns it.
        key: the source's own key for it (e.g. its store key).
        ref: the value of ``ref_field`` in the interrupt payload that pauses for it (the
            resumer matches interrupts by it, then by ``tool_call_id``).
        thread_id / checkpoint_ns / tool_call_id: where the pause is.
        interrupt_type: the payload ``type`` (``approval_pending``, ``connect_account``).
        resume: the resume value, set by ``check`` once the thread may continue.
        assistant_id / graph_id: for a LangGraph server (``runs.create`` needs one).
        context: the runtime context to resume with (runs do not persist it), e.g. the user.
        config: plain ``configurable`` values to resume with on a server.
        expires_at: when the wait is pointless (the resumer gives up on it after that).
        ref_field: the payload field holding ``ref`` (default ``approval_id``).
        extra: the source's own data (opaque to the resumer).
        claim: names the state the source saw the item in (it changes whenever the item is
            checked or settled): resumers that saw the same state resume the thread once
            (sources with ``claim`` / ``aclaim``, see :class:`PendingSource`).
    """

    source: str
    key: str
    ref: str
    thread_id: str
    checkpoint_ns: str = ""
    tool_call_id: str | None = None
    interrupt_type: str = "approval_pending"
    resume: Mapping[str, Any] | None = None
    assistant_id: str | None = None
    graph_id: str | None = None
    context: Any = None
    config: Mapping[str, Any] = field(default_factory=dict)
    expires_at: float | None = None
    ref_field: str = "approval_id"
    extra: Mapping[str, Any] = field(default_factory=dict)
    claim: str = ""


@runtime_checkable
class PendingSource(Protocol):
    """The resumer's plug-in point (sync and async twins).

    * ``due(now, limit)``: items whose next check is due (``next_check_at <= now``).
    * ``check(item, now)``: look once (poll the provider, read the store); return the item
      with ``resume`` set when its thread may continue, else ``None`` (the source records
      when to look again, e.g. ``now + interval``).
    * ``settle(item, resumed, now, retry_in)``: the resumer's outcome: ``resumed=True``
      means the thread got the resume value (the source may stop watching, or look again
      after ``retry_in`` seconds if it cannot tell whether the thread consumed it);
      ``False`` with ``retry_in`` looks again later; ``False`` with ``retry_in=None`` gives
      up (the thread is gone or moved on).

    Optional: ``claim(item, owner, ttl=...) -> bool`` / ``aclaim``, and ``unclaim`` /
    ``aunclaim``: an atomic claim on the item in the state it was seen in, a lease of ``ttl``
    seconds (see :func:`claim_item`), so that resumers running side by side resume each
    thread once and a dead resumer's items are taken over. A resumer claims before it
    checks, and gives the claim back when it resumed nothing; ``check`` must then act only
    if the item is still in the state it was claimed in (a resumer that listed it earlier
    may claim it after the first one released it).
    """

    name: str

    def due(self, now: float, limit: int) -> Sequence[PendingItem]: ...

    async def adue(self, now: float, limit: int) -> Sequence[PendingItem]: ...

    def check(self, item: PendingItem, now: float) -> PendingItem | None: ...

    async def acheck(self, item: PendingItem, now: float) -> PendingItem | None: ...

    def settle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None: ...

    async def asettle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None: ...


class ApprovalSource:
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

    # -- sync

    def due(self, now: float, limit: int) -> list[PendingItem]:
        out: list[PendingItem] = []
        for name, store in self._stores.items():
            for rec in store.due(now, limit=limit - len(out), sources=[name]):
                if rec.thread_id:
                    out.append(self._item(rec))
            if len(out) >= limit:
                break
        return out

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

    def check(self, item: PendingItem, now: float) -> PendingItem | None:
        owner = self._owner(item)
        if owner is None:
            return None
        approver, store = owner
        rec = store.get(item.key)
        if self._moved_on(item, rec):
            return None
        assert rec is not None
        if rec.status == "pending" and isinstance(approver, CIBAApprover):
            rec = approver.poll(rec, store)
        elif rec.status not in DECIDED and rec.watch:
            store.put(rec.update(watch=False))  # consumed, superseded or not ours to poll
        return self._ready(item, rec)

    def settle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None:
        owner = self._owner(item)
        rec = owner[1].get(item.key) if owner else None
        if owner and rec is not None and rec.approval_id == item.ref:
            owner[1].put(_settled(rec, resumed, now, retry_in, bool(item.extra.get("missed"))))

    def claim(self, item: PendingItem, owner: str, ttl: float = LEASE) -> bool:
        """Claim ``item`` for one resumer, a lease of ``ttl`` seconds (see :func:`claim_item`)."""
        return claim_item(self.store, item, owner, ttl)

    async def aclaim(self, item: PendingItem, owner: str, ttl: float = LEASE) -> bool:
        """Async :meth:`claim`."""
        return await aclaim_item(self.store, item, owner, ttl)

    def unclaim(self, item: PendingItem, owner: str) -> None:
        """Give back ``owner``'s claim on ``item``."""
        unclaim_item(self.store, item, owner)

    async def aunclaim(self, item: PendingItem, owner: str) -> None:
        """Async :meth:`unclaim`."""
        await aunclaim_item(self.store, item, owner)

    def ping_token(self, auth_req_id: str) -> str | None:
        """The notification token expected for a ping about ``auth_req_id`` (or ``None``)."""
        for _, store in self._pairs():
            rec = store.by_ping_key(ping_key(auth_req_id))
            if rec is not None:
                return _ping_token(store, rec, auth_req_id)
        return None

    def nudge(self, auth_req_id: str, now: float | None = None) -> bool:
        """A verified ping arrived: make the record due now."""
        for _, store in self._pairs():
            rec = store.by_ping_key(ping_key(auth_req_id))
            if rec is not None and rec.status == "pending":
                store.put(rec.update(next_check_at=0.0))
                return True
        return False

    # -- async

    async def adue(self, now: float, limit: int) -> list[PendingItem]:
        out: list[PendingItem] = []
        for name, store in self._stores.items():
            for rec in await store.adue(now, limit=limit - len(out), sources=[name]):
                if rec.thread_id:
                    out.append(self._item(rec))
            if len(out) >= limit:
                break
        return out

    async def acheck(self, item: PendingItem, now: float) -> PendingItem | None:
        owner = self._owner(item)
        if owner is None:
            return None
        approver, store = owner
        rec = await store.aget(item.key)
        if self._moved_on(item, rec):
            return None
        assert rec is not None
        if rec.status == "pending" and isinstance(approver, CIBAApprover):
            rec = await approver.apoll(rec, store)
        elif rec.status not in DECIDED and rec.watch:
            await store.aput(rec.update(watch=False))
        return self._ready(item, rec)

    async def asettle(self, item: PendingItem, resumed: bool, now: float, retry_in: float | None) -> None:
        owner = self._owner(item)
        rec = await owner[1].aget(item.key) if owner else None
        if owner and rec is not None and rec.approval_id == item.ref:
            await owner[1].aput(_settled(rec, resumed, now, retry_in, bool(item.extra.get("missed"))))

    async def aping_token(self, auth_req_id: str) -> str | None:
        """Async :meth:`ping_token`."""
        for _, store in self._pairs():
            rec = await store.aby_ping_key(ping_key(auth_req_id))
            if rec is not None:
                return _ping_token(store, rec, auth_req_id)
        return None

    async def anudge(self, auth_req_id: str, now: float | None = None) -> bool:
        """Async :meth:`nudge`."""
        for _, store in self._pairs():
            rec = await store.aby_ping_key(ping_key(auth_req_id))
            if rec is not None and rec.status == "pending":
                await store.aput(rec.update(next_check_at=0.0))
                return True
        return False

    def purge(self, now: float, retention: float) -> int:
        """Delete finished approval records older than ``retention`` seconds."""
        stores = {id(s.store): s for _, s in self._pairs()}
        compare_and_set(self.store).purge(now)  # lapsed claims
        return sum(s.purge(now - retention) for s in stores.values())

    async def apurge(self, now: float, retention: float) -> int:
        """Async :meth:`purge`."""
        stores = {id(s.store): s for _, s in self._pairs()}
        await compare_and_set(self.store).apurge(now)
        return sum([await s.apurge(now - retention) for s in stores.values()])

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
    import hmac

    try:
        secrets = store.open(rec)
    except Exception:
        return None
    rid, cnt = secrets.get("auth_req_id"), secrets.get("cnt")
    if not isinstance(rid, str) or not isinstance(cnt, str) or not hmac.compare_digest(rid, auth_req_id):
        return None
    return cnt

