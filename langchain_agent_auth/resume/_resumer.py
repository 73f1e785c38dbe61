"""The one resumer every pillar shares: it watches what paused threads wait for (pending
approvals, account connections) and resumes exactly the threads whose wait is over.

* :class:`ApprovalResumer`: in-process, for a compiled graph with any checkpointer
  (``Command(resume=...)``).
* :class:`RemoteResumer`: a LangGraph server through ``langgraph-sdk`` (``runs.wait``
  with the thread's assistant and the approval's config/context).

Each pass asks every :class:`~._pending.PendingSource` (each pillar registers its own) for its *due* items (a store
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain_agent_auth.core.crypto import ENV_VAR
from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import ConfigurationError, VaultDecryptionError
from langchain_agent_auth.oauth.ping import PingReceiver
from langchain_agent_auth.resume._pending import LEASE, PendingItem, PendingSource, source_for
from langchain_agent_auth.resume._plan import ResumeReport, _by_thread, _interrupt_list, _missed, _plan, _Ready

__all__ = ["ApprovalResumer"]

log = logging.getLogger("langchain_agent_auth.approval.resumer")

ContextFactory = Callable[[PendingItem], Any]


class _BaseResumer:
    def __init__(
        self,
        *,
        approvers: Sequence[Any] = (),
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
            srcs.insert(0, source_for(approvers, store))
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

    # -- talking to sources: one step, run by whichever driver runs the pass

    def _claim_kwargs(self, claim: Any) -> dict[str, Any]:
        # Sources written before claims became leases take no ``ttl``: their claims keep
        # whatever lifetime they chose.
        return {"ttl": self.lease} if _takes_ttl(claim) else {}

    def _ask(self, src: PendingSource, name: str, *args: Any, default: Any = None) -> Call:
        """``src.<name>(*args)`` under :func:`run`, ``src.a<name>(*args)`` under :func:`arun`
        (``default`` when the source has no such method: claims are optional)."""

        def call(method_name: str) -> Any:
            method = getattr(src, method_name, None)
            if method is None:
                return default
            kwargs = self._claim_kwargs(method) if name == "claim" else {}
            return method(*args, **kwargs)

        return Call(lambda: call(name), lambda: call("a" + name))

    def _claiming(self, src: PendingSource, item: PendingItem) -> Flow[bool]:
        # Two resumers that see the same due item resume its thread once.
        return bool((yield self._ask(src, "claim", item, self._owner, default=True)))

    def _claim(self, src: PendingSource, item: PendingItem) -> bool:
        return run(self._claiming(src, item))

    async def _aclaim(self, src: PendingSource, item: PendingItem) -> bool:
        return await arun(self._claiming(src, item))

    def _giving_back(self, src: PendingSource, item: PendingItem) -> Call:
        # Nothing was sent for this item: whoever looks next may claim it again.
        return self._ask(src, "unclaim", item, self._owner)

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

    # -- one pass, written once

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

    def _listing(self, now: float, report: ResumeReport) -> Flow[list[tuple[PendingSource, PendingItem]]]:
        """Purge when due, then list every source's due items."""
        if self._purge_due(now):
            for src in self.sources:
                report.purged += yield self._ask(src, "purge", now, self.retention, default=0)
        found = []
        for src in self.sources:
            found += [(src, item) for item in (yield self._ask(src, "due", now, self.batch_size))]
        report.due = len(found)
        return found

    def _checking(self, src: PendingSource, item: PendingItem, now: float,
                  report: ResumeReport) -> Flow[PendingItem | None]:
        """Claim ``item`` and check it once: the item to resume, or ``None`` (claim given back)."""
        if not (yield from self._claiming(src, item)):
            report.claimed_elsewhere += 1
            return None
        try:
            checked = yield self._ask(src, "check", item, now)
        except Exception as exc:  # one bad record must not stop the others
            self._check_failed(item, exc, report)
            yield self._giving_back(src, item)
            return None
        if checked is not None and checked.claim != item.claim and not (yield from self._claiming(src, checked)):
            report.claimed_elsewhere += 1  # the check moved it on and another resumer took it
            checked = None
        if checked is None:
            yield self._giving_back(src, item)
        return checked

    def _deferring(self, group: _Ready, now: float, report: ResumeReport, retry: float | None = None) -> Flow[None]:
        """Look at ``group`` again later (``retry`` seconds, default per item) and release it."""
        for src, item in group:
            yield self._ask(src, "settle", item, False, now, self._retry_in(item, now) if retry is None else retry)
            yield self._giving_back(src, item)
            report.deferred += 1

    def _resuming(self, thread_id: str, group: _Ready, report: ResumeReport) -> Flow[None]:
        """Resume one thread once with every ready item it waits on."""
        now = self.clock()
        first = group[0][1]
        try:
            interrupts = yield Call(lambda: self._interrupts(first), lambda: self._ainterrupts(first))
        except Exception as exc:
            report.errors.append(f"state {thread_id}: {type(exc).__name__}")
            yield from self._deferring(group, now, report)
            return
        resume, matched, unmatched, stale = _plan(group, interrupts)
        for src, item in stale:
            yield self._ask(src, "settle", item, False, now, None)  # set aside, once
            report.set_aside += 1
            log.info("pending item %s set aside: thread %s no longer waits for it", item.ref[:40], thread_id)
        for src, item in unmatched:
            retry = self._retry_in(item, now)
            yield self._ask(src, "settle", _missed(item), False, now, retry)
            yield self._giving_back(src, item)
            report.deferred += retry is not None
            report.abandoned += retry is None
        if not resume:
            return
        target = matched[0][1]
        try:
            yield Call(lambda: self._resume(target, resume), lambda: self._aresume(target, resume))
        except Exception as exc:
            log.warning("resuming thread %s failed: %s: %s", thread_id, type(exc).__name__, exc)
            report.errors.append(f"resume {thread_id}: {type(exc).__name__}")
            yield from self._deferring(matched, now, report)
            return
        report.resumed_threads.append(thread_id)
        for src, item in matched:
            yield self._ask(src, "settle", item, True, self.clock(), self.retry_delay)
            report.resumed_items += 1

    # -- one pass, blocking

    def run_once(self) -> ResumeReport:
        """Check what is due and resume the threads whose wait is over (blocking)."""
        report = ResumeReport()
        now = self.clock()
        found = run(self._listing(now, report))
        found_ready: dict[int, tuple[PendingSource, PendingItem]] = {}
        for i in self._walk(len(found)):
            checked = run(self._checking(*found[i], now, report))
            if checked is not None:
                found_ready[i] = (found[i][0], checked)
        report.ready = len(found_ready)
        ready = [found_ready[i] for i in sorted(found_ready)]
        for thread_id, group in _by_thread(ready).items():
            run(self._resuming(thread_id, group, report))
        return report

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
        found = await arun(self._listing(now, report))
        sem = asyncio.Semaphore(self.concurrency)
        found_ready: dict[int, tuple[PendingSource, PendingItem]] = {}

        async def check(i: int) -> None:
            async with sem:
                checked = await arun(self._checking(*found[i], now, report))
            if checked is not None:
                found_ready[i] = (found[i][0], checked)

        await asyncio.gather(*(check(i) for i in self._walk(len(found))))
        report.ready = len(found_ready)
        ready = [found_ready[i] for i in sorted(found_ready)]

        async def resume(thread_id: str, group: _Ready) -> None:
            if thread_id in self._busy:  # another pass of this resumer is resuming it now
                await arun(self._deferring(group, self.clock(), report, retry=self.retry_delay))
                return
            self._busy.add(thread_id)
            try:
                async with sem:
                    await arun(self._resuming(thread_id, group, report))
            finally:
                self._busy.discard(thread_id)

        await asyncio.gather(*(resume(t, g) for t, g in _by_thread(ready).items()))
        return report

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

    def __init__(self, graph: Any, *, approvers: Sequence[Any] = (), sources: Iterable[PendingSource] = (),
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
