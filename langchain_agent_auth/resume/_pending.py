"""What a resumer watches: :class:`PendingItem` (one paused call), :class:`PendingSource`
(the plug-in protocol every pillar implements), the claims that make N resumers resume each
thread once, and the registry through which a pillar turns its own objects (the approval
pillar's approvers) into a source.

A pending source lists the records that are due (a store filter, never a scan of threads),
checks one (e.g. polls the provider once, respecting ``interval`` and ``slow_down``), and is
told the outcome. Any pillar that pauses a thread until something happens outside it (an
approval on the user's phone, the vault's ``connect_account`` waiting for the user to connect
an account) implements the protocol and hands it to the same resumer::

    resumer = ApprovalResumer(graph, approvers=[ciba], sources=[vault_source])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from langchain_agent_auth.core.store_cas import compare_and_set

__all__ = [
    "LEASE",
    "PendingItem",
    "PendingSource",
    "StoreClaims",
    "aclaim_item",
    "aunclaim_item",
    "claim_item",
    "register_source",
    "source_for",
    "unclaim_item",
]

# A claim is a lease: held while one resumer checks an item and resumes its thread; if that
# resumer dies (SIGKILL, lost machine), the lease runs out and another resumer takes the item
# over. The item's own state (next_check_at, polls) is shared by all resumers, so polling stays
# at one request per interval however many resumers run.
LEASE = 120.0


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

    Example:
        >>> PendingItem(source="vault", key="c1", ref="c1", thread_id="t1",
        ...             interrupt_type="connect_account", ref_field="connect_id").ref_field
        'connect_id'
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
    """The resumer's plug-in point (sync and async forms).

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


# --------------------------------------------------------------------------- claims


def _claim_name(item: PendingItem) -> str:
    return f"resume|{item.source}|{item.key}|{item.ref}|{item.claim}"


def claim_item(store: Any, item: PendingItem, owner: str, ttl: float = LEASE) -> bool:
    """Claim ``item`` in the state it was seen in, on ``store``'s compare-and-set: ``True``
    for exactly one of any number of resumers. The claim is a lease of ``ttl`` seconds: once
    it runs out (its holder died), another resumer may claim the item in the same state.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> store = InMemoryStore()
        >>> item = PendingItem(source="approval", key="k", ref="k.1", thread_id="t1", claim="0.0|0")
        >>> claim_item(store, item, "resumer-a"), claim_item(store, item, "resumer-b")
        (True, False)
    """
    return compare_and_set(store).swap(_claim_name(item), "claimed", owner=owner, ttl=ttl)


async def aclaim_item(store: Any, item: PendingItem, owner: str, ttl: float = LEASE) -> bool:
    """Async :func:`claim_item`."""
    return await compare_and_set(store).aswap(_claim_name(item), "claimed", owner=owner, ttl=ttl)


def unclaim_item(store: Any, item: PendingItem, owner: str) -> None:
    """Give back a claim taken by ``owner`` (it resumed nothing)."""
    compare_and_set(store).release(_claim_name(item), owner)


async def aunclaim_item(store: Any, item: PendingItem, owner: str) -> None:
    """Async :func:`unclaim_item`."""
    await compare_and_set(store).arelease(_claim_name(item), owner)


class StoreClaims:
    """The claim half of :class:`PendingSource`, on a store's compare-and-set: a source mixes
    it in and says which store holds its claims (:meth:`claims_store`) and, if it wants,
    another default lease (``claim_ttl``; a resumer passes its own ``ttl`` anyway).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> class Source(StoreClaims):
        ...     def __init__(self, store):
        ...         self.store = store
        ...     def claims_store(self):
        ...         return self.store
        >>> src, item = Source(InMemoryStore()), PendingItem(source="s", key="k", ref="k", thread_id="t")
        >>> src.claim(item, "a"), src.claim(item, "b")
        (True, False)
    """

    claim_ttl: float = LEASE

    def claims_store(self) -> Any:
        """The store whose compare-and-set holds this source's claims."""
        raise NotImplementedError

    def claim(self, item: PendingItem, owner: str, ttl: float | None = None) -> bool:
        """Claim ``item`` in the state it was seen in, a lease of ``ttl`` seconds (see
        :func:`claim_item`): one of several resumers resumes it."""
        return claim_item(self.claims_store(), item, owner, self.claim_ttl if ttl is None else ttl)

    async def aclaim(self, item: PendingItem, owner: str, ttl: float | None = None) -> bool:
        """Async :meth:`claim`."""
        return await aclaim_item(self.claims_store(), item, owner, self.claim_ttl if ttl is None else ttl)

    def unclaim(self, item: PendingItem, owner: str) -> None:
        """Give back ``owner``'s claim on ``item`` (nothing was resumed)."""
        unclaim_item(self.claims_store(), item, owner)

    async def aunclaim(self, item: PendingItem, owner: str) -> None:
        """Async :meth:`unclaim`."""
        await aunclaim_item(self.claims_store(), item, owner)


# --------------------------------------------------------------------------- registry

SourceFactory = Callable[[Sequence[Any], Any], PendingSource]
_FACTORIES: list[tuple[type, SourceFactory]] = []


def register_source(kind: type, factory: SourceFactory) -> None:
    """Let a resumer build a :class:`PendingSource` from objects of ``kind``.

    The approval pillar registers its ``Approver``: ``ApprovalResumer(graph, approvers=[...])``
    then watches those approvers' pending requests without the resumer importing the pillar.

    Example:
        >>> class Watcher: ...
        >>> register_source(Watcher, lambda objs, store: ("a source for", len(objs)))
        >>> source_for([Watcher(), Watcher()], None)
        ('a source for', 2)
    """
    _FACTORIES[:] = [(k, f) for k, f in _FACTORIES if k is not kind]
    _FACTORIES.append((kind, factory))


def source_for(objects: Sequence[Any], store: Any) -> PendingSource:
    """The pending source a registered pillar makes of ``objects`` (all of one registered kind)."""
    for kind, factory in _FACTORIES:
        if all(isinstance(o, kind) for o in objects):
            return factory(list(objects), store)
    names = sorted({type(o).__name__ for o in objects})
    raise TypeError(f"no pending source is registered for {names}")
