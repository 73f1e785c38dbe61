"""The resumer: watches pending approvals in the store and resumes exactly the threads
whose approval completed.

* :class:`ApprovalResumer`: in-process, for a compiled graph with any checkpointer
  (``Command(resume=...)``).
* :class:`RemoteResumer`: a LangGraph server through ``langgraph-sdk`` (``runs.wait``
  with the thread's assistant and the approval's config/context).

Each pass asks every :class:`~._sources.PendingSource` for its *due* items (a store
filter: nothing is scanned per thread), checks each once (a CIBA poll respects
``interval`` and ``slow_down``; a ping makes an item due at once), groups what is ready
by thread, reads the thread's interrupts, and resumes the thread once with a map of
interrupt id to resume value. Everything it needs is in the store, so a restarted
resumer carries on where the last one stopped; a provider outage only moves
``next_check_at`` later.

Scaling out: run N resumers over one shared store (PostgreSQL) with no coordinator. Each
claims an item before it checks it (a compare-and-set lease on the item's current state,
``lease`` seconds), so one resumer polls or resumes it; the poll schedule
(``next_check_at``, ``slow_down``) lives in the item, so the provider sees one poll per
request per interval however many resumers run; a killed resumer's leases run out and the
others take its items over. Each resumer walks the due items in its own random order, so
they rarely contend for the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx
from langgraph.store.base import BaseStore, GetOp, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp

from langchain_agent_auth.approval._approvers import Approver
from langchain_agent_auth.approval._sources import LEASE, ApprovalSource, PendingItem, PendingSource
from langchain_agent_auth.core.crypto import ENV_VAR
from langchain_agent_auth.core.errors import ConfigurationError, VaultDecryptionError
from langchain_agent_auth.oauth.ping import PingReceiver

__all__ = ["ApprovalResumer", "LangGraphServerStore", "RemoteResumer", "ResumeReport"]

log = logging.getLogger("langchain_agent_auth.approval.resumer")

ContextFactory = Callable[[PendingItem], Any]
_Ready = list[tuple[PendingSource, PendingItem]]


@dataclass
class ResumeReport:
    """What one pass did."""

    due: int = 0
    ready: int = 0
    resumed_threads: list[str] = field(default_factory=list)
    resumed_items: int = 0
    deferred: int = 0
    abandoned: int = 0
    claimed_elsewhere: int = 0
    set_aside: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.due or self.ready or self.resumed_items or self.errors)


def _interrupt_list(raw: Any) -> list[tuple[str, Any]]:
    """(id, value) of every interrupt in a StateSnapshot / ThreadState, subgraphs included."""
    out: dict[str, Any] = {}

    def visit(node: Any) -> None:
        if node is None:
            return
        if isinstance(node, Mapping):
            for i in node.get("interrupts") or ():
                if isinstance(i, Mapping) and i.get("id"):
                    out.setdefault(str(i["id"]), i.get("value"))
            for t in node.get("tasks") or ():
                for i in (t.get("interrupts") or ()) if isinstance(t, Mapping) else ():
                    if isinstance(i, Mapping) and i.get("id"):
                        out.setdefault(str(i["id"]), i.get("value"))
                visit(t.get("state") if isinstance(t, Mapping) else None)
            return
        for i in getattr(node, "interrupts", ()) or ():
            out.setdefault(str(i.id), i.value)
        for t in getattr(node, "tasks", ()) or ():
            for i in getattr(t, "interrupts", ()) or ():
                out.setdefault(str(i.id), i.value)
            state = getattr(t, "state", None)
            if state is not None and hasattr(state, "tasks"):
                visit(state)

    visit(raw)
    return list(out.items())


def _stale(item: PendingItem) -> bool:
    """A source may tell that an item was resumed once already (``extra["resumed_at"]``) or
    that its thread was found not paused on it before (``extra["misses"]``): if the thread
    still has no pause naming it, the thread moved on (the call was rewritten)."""
    return bool(item.extra.get("resumed_at") or item.extra.get("misses"))


def _missed(item: PendingItem) -> PendingItem:
    return replace(item, extra={**item.extra, "missed": True})


def _plan(items: Sequence[tuple[PendingSource, PendingItem]], interrupts: list[tuple[str, Any]]
          ) -> tuple[dict[str, Any], list[tuple[PendingSource, PendingItem]], list[tuple[PendingSource, PendingItem]],
                     list[tuple[PendingSource, PendingItem]]]:
    """Map ready items to the thread's interrupts: by payload ref, then tool_call_id, then a
    sibling pause of the same graph task (parallel calls in one ToolNode task).

    Returns (resume map, matched, unmatched, stale): an item resumed once already whose
    thread has no pause naming it (only a sibling's, or none) is stale: set it aside instead
    of resuming the thread with it again on every pass."""
    resume: dict[str, Any] = {}
    matched: list[tuple[PendingSource, PendingItem]] = []
    unmatched: list[tuple[PendingSource, PendingItem]] = []
    stale: list[tuple[PendingSource, PendingItem]] = []
    for src, item in items:
        def ours(value: Any, item: PendingItem = item) -> bool:
            return isinstance(value, Mapping) and value.get("type") == item.interrupt_type

        hit = next((iid for iid, v in interrupts if iid not in resume and ours(v)
                    and v.get(item.ref_field) == item.ref), None)
        if hit is None and item.tool_call_id:
            hit = next((iid for iid, v in interrupts if iid not in resume and ours(v)
                        and v.get("tool_call_id") == item.tool_call_id), None)
        if hit is None and _stale(item):
            stale.append((src, item))
            continue
        if hit is None and item.ref_field == "approval_id":
            prefix = item.ref[:16]
            hit = next((iid for iid, v in interrupts if iid not in resume and isinstance(v, Mapping)
                        and str(v.get("approval_id", "")).startswith(prefix)), None)
        if hit is None:
            unmatched.append((src, item))
        else:
            resume[hit] = dict(item.resume or {})
            matched.append((src, item))
    return resume, matched, unmatched, stale


class _BaseResumer:
    def __init__(
        self,
        *,
        approvers: Sequence[Approver] = (),
        sources: Iterable[PendingSource] = (),
        store: Any = None,
        context: ContextFactory | None = None,
        batch_size: int = 1000,
        concurrency: int = 16,
        tick: float = 0.5,
        retry_delay: float = 2.0,
        give_up_after: float = 600.0,
        retention: float | None = 7 * 86400.0,
        purge_every: float = 3600.0,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
    ) -> None:
        if not lease > 0:
            raise ConfigurationError("lease must be a positive number of seconds")
        srcs: list[PendingSource] = list(sources)
        if approvers:
            srcs.insert(0, ApprovalSource(list(approvers), store))
        if not srcs:
            raise ConfigurationError("a resumer needs approvers=[...] or sources=[...] to watch")
        for s in srcs:
            if not isinstance(s, PendingSource):
                raise ConfigurationError(f"{s!r} is not a PendingSource (due/check/settle, sync and async)")
        self.sources = srcs
        self.context = context
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.tick = tick
        self.retry_delay = retry_delay
        self.give_up_after = give_up_after
        self.retention = retention
        self.purge_every = purge_every
        self._last_purge = clock()
        self.clock = clock
        self.lease = lease
        self._wake = threading.Event()
        self._async_wake: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._busy: set[str] = set()
        self._undecryptable: set[str] = set()
        self._owner = secrets.token_hex(8)  # names this resumer's claims
        self._random = random.Random(self._owner)

    # -- waking (pings)

    def wake(self) -> None:
        """Run the next pass now (thread-safe; used by pings)."""
        self._wake.set()
        for loop, ev in list(self._async_wake):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ev.set)

    def ping_receiver(self, path: str = "/ciba/notify") -> PingReceiver:
        """An ASGI CIBA ping endpoint wired to this resumer: it verifies the notification
        token against the sealed one in the store and makes the approval due at once."""

        async def resolve(auth_req_id: str) -> str | None:
            for s in self.sources:
                finder = getattr(s, "aping_token", None)
                if finder is not None:
                    token = await finder(auth_req_id)
                    if token:
                        return str(token)
            return None

        async def on_ping(auth_req_id: str) -> None:
            for s in self.sources:
                nudge = getattr(s, "anudge", None)
                if nudge is not None and await nudge(auth_req_id):
                    break
            self.wake()

        return PingReceiver(path=path, resolver=resolve, on_ping=on_ping)

    # -- claims: two resumers that see the same due item resume its thread once

    def _claim_kwargs(self, claim: Any) -> dict[str, Any]:
        # Sources written before claims became leases take no ``ttl``: their claims keep
        # whatever lifetime they chose.
        return {"ttl": self.lease} if _takes_ttl(claim) else {}

    def _claim(self, src: PendingSource, item: PendingItem) -> bool:
        claim = getattr(src, "claim", None)
        return True if claim is None else bool(claim(item, self._owner, **self._claim_kwargs(claim)))

    async def _aclaim(self, src: PendingSource, item: PendingItem) -> bool:
        claim = getattr(src, "aclaim", None)
        return True if claim is None else bool(await claim(item, self._owner, **self._claim_kwargs(claim)))

    def _unclaim(self, src: PendingSource, item: PendingItem) -> None:
        # Nothing was sent for this item: whoever looks next may claim it again.
        unclaim = getattr(src, "unclaim", None)
        if unclaim is not None:
            unclaim(item, self._owner)

    async def _aunclaim(self, src: PendingSource, item: PendingItem) -> None:
        unclaim = getattr(src, "aunclaim", None)
        if unclaim is not None:
            await unclaim(item, self._owner)

    def _more(self, report: ResumeReport) -> bool:
        # A full batch that this resumer worked on: more is due now, start the next pass at
        # once. A full batch all claimed by others, or all failing, waits a tick instead of
        # spinning.
        return report.due >= self.batch_size and report.due - report.claimed_elsewhere - len(report.errors) > 0

    def _walk(self, n: int) -> list[int]:
        # Resumers sharing a store list the same due items; each walks them in its own order
        # so that they claim different items instead of queueing behind each other's claims.
        order = list(range(n))
        self._random.shuffle(order)
        return order

    def _context_for(self, item: PendingItem) -> Any:
        return self.context(item) if self.context is not None else item.context

    def _retry_in(self, item: PendingItem, now: float) -> float | None:
        if item.expires_at is not None and now > item.expires_at + self.give_up_after:
            return None
        return self.retry_delay

    # -- subclass hooks

    def _interrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        raise NotImplementedError

    async def _ainterrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def _resume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _aresume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        raise NotImplementedError

    def _purge_due(self, now: float) -> bool:
        if self.retention is None or now - self._last_purge < self.purge_every:
            return False
        self._last_purge = now
        return True

    # -- one pass, sync

    def _check_failed(self, item: PendingItem, exc: Exception, report: ResumeReport) -> None:
        report.errors.append(f"check {item.key[:16]}: {type(exc).__name__}")
        if not isinstance(exc, VaultDecryptionError) and not isinstance(exc.__cause__, VaultDecryptionError):
            log.warning("checking pending item %s failed: %s", item.key[:16], type(exc).__name__)
            return
        # The same record fails on every pass: say it once, with the likely cause.
        if item.key in self._undecryptable:
            return
        if len(self._undecryptable) >= 10_000:
            self._undecryptable.clear()
        self._undecryptable.add(item.key)
        log.error("pending item %s cannot be decrypted: the keys differ from the process that sealed it "
                  "(run this resumer with the same %s as the server or graph that paused)", item.key[:16], ENV_VAR)

    def run_once(self) -> ResumeReport:
        """Check what is due and resume the threads whose wait is over (blocking)."""
        report = ResumeReport()
        now = self.clock()
        if self._purge_due(now):
            for src in self.sources:
                purge = getattr(src, "purge", None)
                if purge is not None:
                    report.purged += purge(now, self.retention)
        found = [(src, item) for src in self.sources for item in src.due(now, self.batch_size)]
        report.due = len(found)
        found_ready: dict[int, tuple[PendingSource, PendingItem]] = {}
        for i in self._walk(len(found)):
            src, item = found[i]
            if not self._claim(src, item):
                report.claimed_elsewhere += 1
                continue
            try:
                checked = src.check(item, now)
            except Exception as exc:  # one bad record must not stop the others
                self._check_failed(item, exc, report)
                self._unclaim(src, item)
                continue
            if checked is not None and checked.claim != item.claim and not self._claim(src, checked):
                report.claimed_elsewhere += 1  # the check moved it on and another resumer took it
                checked = None
            if checked is not None:
                found_ready[i] = (src, checked)
            else:
                self._unclaim(src, item)
        report.ready = len(found_ready)
        ready = [found_ready[i] for i in sorted(found_ready)]
        for thread_id, group in _by_thread(ready).items():
            self._resume_thread(thread_id, group, report)
        return report

    def _resume_thread(self, thread_id: str, group: list[tuple[PendingSource, PendingItem]],
                       report: ResumeReport) -> None:
        now = self.clock()
        first = group[0][1]
        try:
            interrupts = self._interrupts(first)
        except Exception as exc:
            report.errors.append(f"state {thread_id}: {type(exc).__name__}")
            for src, item in group:
                src.settle(item, False, now, self._retry_in(item, now))
                self._unclaim(src, item)
                report.deferred += 1
            return
        resume, matched, unmatched, stale = _plan(group, interrupts)
        for src, item in stale:
            src.settle(item, False, now, None)  # set aside, once
            report.set_aside += 1
            log.info("pending item %s set aside: thread %s no longer waits for it", item.ref[:40], thread_id)
        for src, item in unmatched:
            retry = self._retry_in(item, now)
            src.settle(_missed(item), False, now, retry)
            self._unclaim(src, item)
            report.deferred += retry is not None
            report.abandoned += retry is None
        if not resume:
            return
        try:
            self._resume(matched[0][1], resume)
        except Exception as exc:
            log.warning("resuming thread %s failed: %s: %s", thread_id, type(exc).__name__, exc)
            report.errors.append(f"resume {thread_id}: {type(exc).__name__}")
            for src, item in matched:
                src.settle(item, False, now, self._retry_in(item, now))
                self._unclaim(src, item)
                report.deferred += 1
            return
        report.resumed_threads.append(thread_id)
        for src, item in matched:
            src.settle(item, True, self.clock(), self.retry_delay)
            report.resumed_items += 1

    def run(self, *, stop: threading.Event | None = None, max_passes: int | None = None) -> None:
        """Resume threads until ``stop`` is set (or ``max_passes`` passes ran)."""
        passes = 0
        while not (stop is not None and stop.is_set()):
            report = self.run_once()
            passes += 1
            if max_passes is not None and passes >= max_passes:
                return
            if self._more(report):
                continue
            self._wake.wait(self.tick)
            self._wake.clear()

    # -- one pass, async

    async def arun_once(self) -> ResumeReport:
        """Async :meth:`run_once`: checks and resumes concurrently (``concurrency``)."""
        report = ResumeReport()
        now = self.clock()
        if self._purge_due(now):
            for src in self.sources:
                apurge = getattr(src, "apurge", None)
                if apurge is not None:
                    report.purged += await apurge(now, self.retention)
        sem = asyncio.Semaphore(self.concurrency)
        found_ready: dict[int, tuple[PendingSource, PendingItem]] = {}

        async def check(i: int, src: PendingSource, item: PendingItem) -> None:
            async with sem:
                if not await self._aclaim(src, item):
                    report.claimed_elsewhere += 1
                    return
                try:
                    checked = await src.acheck(item, now)
                except Exception as exc:
                    self._check_failed(item, exc, report)
                    await self._aunclaim(src, item)
                    return
                if checked is not None and checked.claim != item.claim and not await self._aclaim(src, checked):
                    report.claimed_elsewhere += 1
                    checked = None
            if checked is not None:
                found_ready[i] = (src, checked)
            else:
                await self._aunclaim(src, item)

        found = [(src, item) for src in self.sources for item in await src.adue(now, self.batch_size)]
        report.due = len(found)
        await asyncio.gather(*(check(i, *found[i]) for i in self._walk(len(found))))
        report.ready = len(found_ready)
        ready = [found_ready[i] for i in sorted(found_ready)]

        async def resume(thread_id: str, group: list[tuple[PendingSource, PendingItem]]) -> None:
            if thread_id in self._busy:
                for src, item in group:
                    await src.asettle(item, False, self.clock(), self.retry_delay)
                    await self._aunclaim(src, item)
                    report.deferred += 1
                return
            self._busy.add(thread_id)
            try:
                async with sem:
                    await self._aresume_thread(thread_id, group, report)
            finally:
                self._busy.discard(thread_id)

        await asyncio.gather(*(resume(t, g) for t, g in _by_thread(ready).items()))
        return report

    async def _aresume_thread(self, thread_id: str, group: list[tuple[PendingSource, PendingItem]],
                              report: ResumeReport) -> None:
        now = self.clock()
        first = group[0][1]
        try:
            interrupts = await self._ainterrupts(first)
        except Exception as exc:
            report.errors.append(f"state {thread_id}: {type(exc).__name__}")
            for src, item in group:
                await src.asettle(item, False, now, self._retry_in(item, now))
                await self._aunclaim(src, item)
                report.deferred += 1
            return
        resume, matched, unmatched, stale = _plan(group, interrupts)
        for src, item in stale:
            await src.asettle(item, False, now, None)
            report.set_aside += 1
            log.info("pending item %s set aside: thread %s no longer waits for it", item.ref[:40], thread_id)
        for src, item in unmatched:
            retry = self._retry_in(item, now)
            await src.asettle(_missed(item), False, now, retry)
            await self._aunclaim(src, item)
            report.deferred += retry is not None
            report.abandoned += retry is None
        if not resume:
            return
        try:
            await self._aresume(matched[0][1], resume)
        except Exception as exc:
            log.warning("resuming thread %s failed: %s: %s", thread_id, type(exc).__name__, exc)
            report.errors.append(f"resume {thread_id}: {type(exc).__name__}")
            for src, item in matched:
                await src.asettle(item, False, now, self._retry_in(item, now))
                await self._aunclaim(src, item)
                report.deferred += 1
            return
        report.resumed_threads.append(thread_id)
        for src, item in matched:
            await src.asettle(item, True, self.clock(), self.retry_delay)
            report.resumed_items += 1

    async def serve(self, *, stop: asyncio.Event | None = None, max_passes: int | None = None) -> None:
        """Resume threads until ``stop`` is set; a ping (:meth:`wake`) starts a pass at once."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        self._async_wake.append(entry)
        passes = 0
        try:
            while not (stop is not None and stop.is_set()):
                report = None
                try:
                    report = await self.arun_once()
                except Exception as exc:  # keep serving: the store or provider may come back
                    log.warning("resumer pass failed: %s", type(exc).__name__)
                passes += 1
                if max_passes is not None and passes >= max_passes:
                    return
                if report is not None and self._more(report):
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.tick)
                event.clear()
        finally:
            self._async_wake.remove(entry)


def _by_thread(ready: Sequence[tuple[PendingSource, PendingItem]]) -> dict[str, _Ready]:
    groups: dict[str, _Ready] = defaultdict(list)
    for src, item in ready:
        groups[item.thread_id].append((src, item))
    return groups


# --------------------------------------------------------------------------- in-process


def _as_item_user(item: PendingItem) -> contextlib.AbstractContextManager[Any]:
    """Resume as the user who asked (``acting_as``): this in-process resumer is the
    application's own code, so the graph's identity check sees that user whatever resolvers
    it has (a TokenResolver-only graph has no token to verify on a resume)."""
    from langchain_agent_auth.core.identity import UserIdentity, acting_as

    raw = (item.context or {}).get("user") if isinstance(item.context, Mapping) else None
    try:
        user = UserIdentity.coerce(raw, source="config")
    except ValueError:
        user = None
    return acting_as(user) if user is not None else contextlib.nullcontext()


class ApprovalResumer(_BaseResumer):
    """Resume a compiled graph's threads in this process (any checkpointer).

    Args:
        graph: the compiled graph (the same one the app runs, or one built the same way
            over the same checkpointer and store files).
        approvers: the CIBA approvers whose requests to poll (the graph's configuration).
        sources: more :class:`PendingSource` plug-ins (e.g. the vault's).
        store: where pending approvals live (default: the approvers' store, else the
            graph's store).
        context: ``context(item)`` gives the runtime context to resume with (default:
            ``{"user": <the approval's user>}``); runs do not persist their context.
        tick: seconds between passes when nothing wakes it (pings wake it at once).
        lease: seconds a claim on an item lasts; a resumer that dies holding one delays
            that item by at most this long (other resumers then take it over). Keep it
            longer than a resume of one thread takes.
        retention: finished approval records older than this many seconds are deleted
            (checked every ``purge_every`` seconds; ``None`` keeps them).

    Example:
        >>> from langgraph.graph import StateGraph
        >>> from langgraph.store.memory import InMemoryStore
        >>> from typing_extensions import TypedDict
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> class S(TypedDict):
        ...     x: int
        >>> graph = StateGraph(S).add_node("n", lambda s: s).set_entry_point("n").compile(store=InMemoryStore())
        >>> resumer = ApprovalResumer(graph, approvers=[InAppApprover(keyring=Keyring.generate())])
        >>> resumer.run_once().resumed_items
        0
    """

    def __init__(self, graph: Any, *, approvers: Sequence[Approver] = (), sources: Iterable[PendingSource] = (),
                 store: Any = None, **kwargs: Any) -> None:
        if not hasattr(graph, "invoke") or not hasattr(graph, "get_state"):
            raise ConfigurationError("ApprovalResumer needs a compiled LangGraph graph")
        if store is None and not any(a.store is not None for a in approvers):
            store = getattr(graph, "store", None)
        if approvers and store is None and all(a.store is None for a in approvers):
            raise ConfigurationError("the resumer needs the store the graph writes approvals to "
                                     "(store=..., or compile the graph with store=...)")
        super().__init__(approvers=approvers, sources=sources, store=store, **kwargs)
        self.graph = graph
        self._sync_checkpointer: bool | None = None

    def __repr__(self) -> str:
        return f"ApprovalResumer(sources={self.sources!r})"

    @staticmethod
    def _config(item: PendingItem) -> dict[str, Any]:
        return {"configurable": {"thread_id": item.thread_id}}

    def _interrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        return _interrupt_list(self.graph.get_state(self._config(item), subgraphs=True))

    def _resume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        from langgraph.types import Command

        with _as_item_user(item):
            self.graph.invoke(Command(resume=resume), self._config(item), context=self._context_for(item))

    async def _ainterrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        if self._sync_checkpointer:
            return await asyncio.to_thread(self._interrupts, item)
        try:
            state = await self.graph.aget_state(self._config(item), subgraphs=True)
        except NotImplementedError:  # a sync-only checkpointer (SqliteSaver): use a worker thread
            self._sync_checkpointer = True
            return await asyncio.to_thread(self._interrupts, item)
        self._sync_checkpointer = False
        return _interrupt_list(state)

    async def _aresume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        from langgraph.types import Command

        if self._sync_checkpointer:
            await asyncio.to_thread(self._resume, item, resume)
            return
        with _as_item_user(item):
            await self.graph.ainvoke(Command(resume=resume), self._config(item), context=self._context_for(item))


# --------------------------------------------------------------------------- LangGraph server


class LangGraphServerStore(BaseStore):
    """A LangGraph ``BaseStore`` over a LangGraph server's store API (langgraph-sdk), so
    the resumer reads the approvals the server's graphs wrote.

    Example:
        >>> LangGraphServerStore(url="http://127.0.0.1:2024")
        LangGraphServerStore(url='http://127.0.0.1:2024')
    """

    def __init__(self, client: Any = None, sync_client: Any = None, *, url: str | None = None,
                 api_key: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        try:
            import langgraph_sdk
        except ImportError:  # pragma: no cover - optional dependency
            raise ConfigurationError("the LangGraph server resumer needs langgraph-sdk: "
                                     "pip install 'langchain-agent-auth[server]'") from None
        self.url = url
        self._client = client or langgraph_sdk.get_client(url=url, api_key=api_key, headers=headers)
        self._sync = sync_client or langgraph_sdk.get_sync_client(url=url, api_key=api_key, headers=headers)

    def __repr__(self) -> str:
        return f"LangGraphServerStore(url={self.url!r})"

    @staticmethod
    def _item(data: Mapping[str, Any], search: bool = False) -> Item:
        def ts(value: Any) -> datetime:
            if isinstance(value, datetime):
                return value
            try:
                return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                return datetime.now()

        kwargs = {"value": data["value"], "key": data["key"], "namespace": tuple(data["namespace"]),
                  "created_at": ts(data.get("created_at")), "updated_at": ts(data.get("updated_at"))}
        return SearchItem(**kwargs, score=data.get("score")) if search else Item(**kwargs)

    def batch(self, ops: Iterable[Any]) -> list[Any]:
        out: list[Any] = []
        api = self._sync.store
        for op in ops:
            if isinstance(op, GetOp):
                try:
                    data = api.get_item(list(op.namespace), op.key)
                except Exception as exc:
                    if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                        out.append(None)
                        continue
                    raise
                out.append(self._item(data) if data else None)
            elif isinstance(op, PutOp):
                if op.value is None:
                    api.delete_item(list(op.namespace), op.key)
                else:
                    api.put_item(list(op.namespace), op.key, op.value, index=op.index)
                out.append(None)
            elif isinstance(op, SearchOp):
                res = api.search_items(list(op.namespace_prefix), filter=op.filter, limit=op.limit,
                                       offset=op.offset, query=op.query)
                out.append([self._item(i, True) for i in res.get("items", [])])
            elif isinstance(op, ListNamespacesOp):  # pragma: no cover - not used by the resumer
                res = api.list_namespaces(limit=op.limit, offset=op.offset, max_depth=op.max_depth)
                out.append([tuple(n) for n in res.get("namespaces", [])])
            else:  # pragma: no cover
                raise TypeError(f"unsupported store op {type(op).__name__}")
        return out

    async def abatch(self, ops: Iterable[Any]) -> list[Any]:
        out: list[Any] = []
        api = self._client.store
        for op in ops:
            if isinstance(op, GetOp):
                try:
                    data = await api.get_item(list(op.namespace), op.key)
                except Exception as exc:
                    if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                        out.append(None)
                        continue
                    raise
                out.append(self._item(data) if data else None)
            elif isinstance(op, PutOp):
                if op.value is None:
                    await api.delete_item(list(op.namespace), op.key)
                else:
                    await api.put_item(list(op.namespace), op.key, op.value, index=op.index)
                out.append(None)
            elif isinstance(op, SearchOp):
                res = await api.search_items(list(op.namespace_prefix), filter=op.filter, limit=op.limit,
                                             offset=op.offset, query=op.query)
                out.append([self._item(i, True) for i in res.get("items", [])])
            elif isinstance(op, ListNamespacesOp):  # pragma: no cover
                res = await api.list_namespaces(limit=op.limit, offset=op.offset, max_depth=op.max_depth)
                out.append([tuple(n) for n in res.get("namespaces", [])])
            else:  # pragma: no cover
                raise TypeError(f"unsupported store op {type(op).__name__}")
        return out


class RemoteResumer(_BaseResumer):
    """Resume threads of a LangGraph server (``langgraph dev`` / LangGraph Platform).

    Reads pending approvals from the server's store, polls the provider, and resumes a
    thread with ``runs.wait(thread_id, assistant_id, command={"resume": {...}})`` using the
    thread's assistant and the approval's context (the user) or config.

    Args:
        url / api_key / headers: the server (or pass ``client`` / ``sync_client`` from
            ``langgraph_sdk.get_client`` / ``get_sync_client``).
        auth: an ``httpx.Auth`` for every request to the server, e.g.
            :class:`~langchain_agent_auth.oauth.ClientCredentialsAuth` for a service client the
            server's :func:`~langchain_agent_auth.identity.langgraph_auth.langgraph_auth` lists in
            ``trusted_services``.
        act_as: send the approval's user in the act-as header when resuming, so the resumed
            run acts for that user on a server with auth (ignored by servers without it).
        approvers / sources / context / tick: as :class:`ApprovalResumer`.
        assistant_id: used when neither the approval nor the thread names one.

    Example:
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> RemoteResumer("http://127.0.0.1:2024", approvers=[InAppApprover(keyring=Keyring.generate())])
        RemoteResumer(url='http://127.0.0.1:2024')
    """

    def __init__(self, url: str | None = None, *, client: Any = None, sync_client: Any = None,
                 api_key: str | None = None, headers: Mapping[str, str] | None = None,
                 approvers: Sequence[Approver] = (), sources: Iterable[PendingSource] = (), store: Any = None,
                 assistant_id: str | None = None, auth: httpx.Auth | None = None, act_as: bool = True,
                 **kwargs: Any) -> None:
        if store is None:
            store = LangGraphServerStore(client, sync_client, url=url, api_key=api_key, headers=headers)
        if isinstance(store, LangGraphServerStore):
            client, sync_client = store._client, store._sync
        else:
            import langgraph_sdk

            client = client or langgraph_sdk.get_client(url=url, api_key=api_key, headers=headers)
            sync_client = sync_client or langgraph_sdk.get_sync_client(url=url, api_key=api_key, headers=headers)
        if auth is not None:
            for sdk_client in (client, sync_client):
                sdk_client.http.client.auth = auth
        super().__init__(approvers=approvers, sources=sources, store=store, **kwargs)
        self.url = url
        self.client = client
        self.sync_client = sync_client
        self.assistant_id = assistant_id
        self.act_as = act_as

    def __repr__(self) -> str:
        return f"RemoteResumer(url={self.url!r})"

    def _assistant(self, item: PendingItem, thread: Mapping[str, Any] | None) -> str:
        meta = (thread or {}).get("metadata") or {}
        found = item.assistant_id or meta.get("assistant_id") or item.graph_id or meta.get("graph_id") \
            or self.assistant_id
        if not found:
            raise ConfigurationError(f"no assistant for thread {item.thread_id}; pass assistant_id=")
        return str(found)

    def _run_kwargs(self, item: PendingItem, resume: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"command": {"resume": resume}}
        user = (item.context or {}).get("user") if isinstance(item.context, Mapping) else None
        if self.act_as and isinstance(user, Mapping) and user.get("subject"):
            from langchain_agent_auth.identity.langgraph_auth import act_as_header

            kwargs["headers"] = act_as_header(dict(user))
        context = self._context_for(item)
        if context:
            kwargs["context"] = _jsonable(context)
        elif item.config:
            kwargs["config"] = {"configurable": dict(item.config)}
        return kwargs

    def _interrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        return _interrupt_list(self.sync_client.threads.get_state(item.thread_id, subgraphs=True))

    async def _ainterrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        return _interrupt_list(await self.client.threads.get_state(item.thread_id, subgraphs=True))

    def _resume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        thread = None if item.assistant_id else self.sync_client.threads.get(item.thread_id)
        self.sync_client.runs.wait(item.thread_id, self._assistant(item, thread), **self._run_kwargs(item, resume))

    async def _aresume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        thread = None if item.assistant_id else await self.client.threads.get(item.thread_id)
        await self.client.runs.wait(item.thread_id, self._assistant(item, thread), **self._run_kwargs(item, resume))


def _jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=256)
def _takes_ttl_cached(func: Any) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "ttl" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _takes_ttl(claim: Any) -> bool:
    """Whether a source's ``claim`` accepts ``ttl=`` (bound methods are cached by function)."""
    return _takes_ttl_cached(getattr(claim, "__func__", claim))
