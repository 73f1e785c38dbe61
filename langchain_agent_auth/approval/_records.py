"""Pending approvals in a LangGraph ``BaseStore`` (not in the checkpoint).

One record per pending tool call, under the namespace ``("agent_auth", "approvals")``,
keyed by the call (thread, checkpoint namespace, tool_call_id), so a node that re-runs on
resume finds the request it already sent. Credentials (the CIBA ``auth_req_id``, the
client notification token, the issued token) are only stored sealed with a
:class:`~langchain_agent_auth.crypto.Keyring`, bound (AAD) to the record's approval id,
user, tool and argument digest: a sealed box copied into another record does not open.

The resumer finds work with a store filter (``watch`` and ``next_check_at``), never by
scanning threads.

Every record read back is validated against :class:`ApprovalRecord`: a damaged one raises
:class:`~langchain_agent_auth.errors.ApprovalRecordError` (naming the fields at fault, never
their values) from :meth:`ApprovalStore.get`, and is skipped, with a warning, by the
resumer's listings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any, Literal

from langgraph.store.base import PutOp, SearchOp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_agent_auth.core.audit._emit import audit_enabled, emit_audit
from langchain_agent_auth.core.crypto import Keyring, default_keyring
from langchain_agent_auth.core.effects import Flow, StoreOps, arun, run
from langchain_agent_auth.core.errors import ApprovalRecordError, ConfigurationError, VaultDecryptionError
from langchain_agent_auth.core.store_cas import CompareAndSet, compare_and_set

log = logging.getLogger("langchain_agent_auth.approval")

def audit_record(kind: str, rec: ApprovalRecord, **fields: Any) -> ApprovalRecord:
    """Report ``rec`` to the audit trail as an event of ``kind``; returns ``rec``."""
    if audit_enabled():
        fields.setdefault("args_digest", rec.args_digest)
        emit_audit(kind, user=rec.user_key, thread_id=rec.thread_id, tool=rec.tool, tool_call_id=rec.tool_call_id,
                   channel=rec.kind, **fields)
    return rec


__all__ = [
    "NAMESPACE",
    "WITHDRAWN",
    "ApprovalRecord",
    "ApprovalStore",
    "Status",
    "default_keyring",
    "record_key",
    "thread_tag",
]

NAMESPACE: tuple[str, ...] = ("agent_auth", "approvals")

WITHDRAWN = "withdrawn_by_user"
"""``error`` of a record its user withdrew, and owner of the steps the withdrawal holds."""

Status = Literal["pending", "approved", "denied", "expired", "failed", "running", "done", "superseded"]
FINAL = frozenset({"denied", "expired", "failed", "done", "superseded"})
DECIDED = frozenset({"approved", "denied", "expired", "failed"})


def _h(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def thread_tag(thread_id: str | None, checkpoint_ns: str) -> str:
    """16 hex chars naming a (thread, checkpoint namespace): every approval id starts so."""
    return _h(f"{thread_id or '-'}\x1f{checkpoint_ns}")


def record_key(thread_id: str | None, checkpoint_ns: str, tool_call_id: str | None, source: str = "") -> str:
    """The store key of a call's approval record (stable across node re-runs); ``source``
    (the approver's name) keeps two stacked approval guards apart.

    Example:
        >>> record_key("t1", "", "call_1") == record_key("t1", "", "call_1")
        True
        >>> record_key("t1", "", "call_1").startswith(thread_tag("t1", ""))
        True
    """
    call = f"{thread_id or '-'}\x1f{checkpoint_ns}\x1f{tool_call_id or '-'}\x1f{source}"
    return thread_tag(thread_id, checkpoint_ns) + _h(call)


class ApprovalRecord(BaseModel):
    """One pending (or finished) approval. Nothing in it is a credential except ``sealed``
    (and ``result``), which are AES-GCM boxes."""

    model_config = ConfigDict(extra="ignore")

    v: int = 1
    approval_id: str
    kind: Literal["ciba", "in_app"]
    source: str
    status: Status = "pending"
    watch: bool = False
    next_check_at: float = 0.0

    thread_id: str | None = None
    checkpoint_ns: str = ""
    tool_call_id: str | None = None
    assistant_id: str | None = None
    graph_id: str | None = None
    resume_config: dict[str, Any] = Field(default_factory=dict)

    user_key: str
    user: dict[str, Any] = Field(default_factory=dict)
    tool: str
    args_digest: str

    created_at: float
    expires_at: float
    interval: float = 5.0
    delivery_mode: Literal["poll", "ping", "in_app"] = "poll"
    polls: int = 0
    pauses: int = 0
    swallowed: list[int] = Field(default_factory=list)
    failures: int = 0
    misses: int = 0  # resumer passes that found its thread not paused on it
    last_poll_at: float | None = None
    ping_key: str | None = None

    binding_message: str | None = None
    authorization_details: list[dict[str, Any]] | None = None
    granted_authorization_details: list[dict[str, Any]] | None = None

    decision: str | None = None
    decision_message: str | None = None
    edited_args: dict[str, Any] | None = None
    error: str | None = None
    error_description: str | None = None
    decided_at: float | None = None
    resumed_at: float | None = None
    finished_at: float | None = None

    sealed: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return self.approval_id.split(".", 1)[0]

    def aad(self, what: str) -> bytes:
        return f"agent_auth/approval|{what}|{self.approval_id}|{self.user_key}|{self.tool}|{self.args_digest}".encode()

    def update(self, **changes: Any) -> ApprovalRecord:
        return self.model_copy(update=changes)


def new_approval_id(key: str) -> str:
    """``<record key>.<generation>``: a new id each time a call needs a new approval."""
    return f"{key}.{secrets.token_hex(4)}"


def ping_key(auth_req_id: str) -> str:
    """Lookup key for CIBA pings: a hash of the auth_req_id, never the id itself."""
    return hashlib.sha256(b"agent_auth/ping|" + auth_req_id.encode()).hexdigest()


def parse_record(value: Any, key: str = "?") -> ApprovalRecord:
    """Validate a stored approval record (:class:`ApprovalRecordError` if it is damaged).

    Example:
        >>> try:
        ...     parse_record({"approval_id": "k.1", "kind": "ciba", "created_at": "x"}, "k")
        ... except ApprovalRecordError as exc:
        ...     print(exc)
        approval record 'k' is damaged (args_digest, created_at, expires_at, source, tool, user_key)
    """
    try:
        return ApprovalRecord.model_validate(value)
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) if e["loc"] else "record" for e in exc.errors(include_input=False)})
        raise ApprovalRecordError(
            f"approval record {key[:64]!r} is damaged ({', '.join(fields)})",
            hint="The stored approval for this action is damaged; ask for approval again.",
        ) from None


def _valid(items: Iterable[Any]) -> list[ApprovalRecord]:
    """The records of a listing that validate; damaged ones are logged and skipped."""
    out = []
    for item in items:
        try:
            out.append(parse_record(item.value, item.key))
        except ApprovalRecordError as exc:
            log.warning("approval: %s; skipped", exc)
    return out


def _pending_of(user_key: str, now: float) -> dict[str, Any]:
    return {"user_key": user_key, "status": "pending", "expires_at": {"$gt": now}}


def _to_item(record: ApprovalRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True)


class ApprovalStore:
    """Typed access to approval records in any LangGraph ``BaseStore``, sync and async.

    Stores without async support (``SqliteStore``) are used from a worker thread in async
    code, so the event loop never blocks on them.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> s = ApprovalStore(InMemoryStore(), Keyring.generate())
        >>> s.get("missing") is None
        True
    """

    def __init__(self, store: Any, keyring: Keyring, namespace: tuple[str, ...] = NAMESPACE) -> None:
        if store is None:
            raise ConfigurationError("approvals need a LangGraph BaseStore (pass store=..., or compile the "
                                     "graph with store=...)")
        self.store = store
        self.keyring = keyring
        self.namespace = namespace
        self._cas: CompareAndSet | None = None

    def __repr__(self) -> str:
        return f"ApprovalStore({type(self.store).__name__}, namespace={self.namespace!r})"

    # -- exactly once

    @property
    def cas(self) -> CompareAndSet:
        """The store's compare-and-set (:mod:`langchain_agent_auth.store_cas`)."""
        if self._cas is None:
            self._cas = compare_and_set(self.store)
        return self._cas

    @staticmethod
    def _slot(approval_id: str, step: str) -> str:
        return f"approval|{approval_id}|{step}"

    def claim(self, approval_id: str, step: str, ttl: float | None = None, owner: str = "") -> bool:
        """Take ``step`` (``"decide"``, ``"run"``) of approval ``approval_id``: ``True`` for
        exactly one caller, however many threads, tasks or processes try at once."""
        return self.cas.swap(self._slot(approval_id, step), step, ttl=ttl, owner=owner)

    async def aclaim(self, approval_id: str, step: str, ttl: float | None = None, owner: str = "") -> bool:
        """Async :meth:`claim`."""
        return await self.cas.aswap(self._slot(approval_id, step), step, ttl=ttl, owner=owner)

    def release(self, approval_id: str, step: str, owner: str) -> bool:
        """Give back a claim (the tool paused before it finished: its next run may claim again)."""
        return self.cas.release(self._slot(approval_id, step), owner)

    async def arelease(self, approval_id: str, step: str, owner: str) -> bool:
        """Async :meth:`release`."""
        return await self.cas.arelease(self._slot(approval_id, step), owner)

    # -- withdrawing (the user takes a pending request back)

    @staticmethod
    def _withdrawn_record(rec: ApprovalRecord, now: float) -> ApprovalRecord:
        # denied, and watched when CIBA: the resumer resumes the waiting thread, whose guard refuses
        return rec.update(status="denied", decision="reject", decision_message="withdrawn by the user",
                          error=WITHDRAWN, error_description="withdrawn by the user", decided_at=now,
                          sealed=None, watch=rec.kind == "ciba", next_check_at=now)

    def withdraw(self, rec: ApprovalRecord, now: float) -> ApprovalRecord | None:
        """Withdraw the pending ``rec``: take its ``decide`` step (compare-and-set, as an answer
        does; ``None`` when an answer got there first), hold its ``run`` step for good (an answer
        written later can never run the tool; ``None`` when the approved call already started),
        and record it as denied.

        Example:
            >>> from langgraph.store.memory import InMemoryStore
            >>> s = ApprovalStore(InMemoryStore(), Keyring.generate())
            >>> rec = s.put(ApprovalRecord(approval_id="k.1", kind="in_app", source="a", user_key="u", tool="t",
            ...                            args_digest="d", created_at=0.0, expires_at=9e9))
            >>> s.withdraw(rec, 1.0).status, s.withdraw(rec, 2.0), s.withdrawn("k.1")
            ('denied', None, True)
            >>> running = s.put(rec.update(approval_id="k.2"))
            >>> s.claim("k.2", "run", owner="worker"), s.withdraw(running, 3.0), s.get("k").status
            (True, None, 'pending')
        """
        if not self.claim(rec.approval_id, "decide", owner=WITHDRAWN):
            return None
        if not self.claim(rec.approval_id, "run", owner=WITHDRAWN):
            return None  # the approved call already started: too late to withdraw
        fresh = self.get(rec.key)
        base = fresh if fresh is not None and fresh.approval_id == rec.approval_id else rec
        return self.put(self._withdrawn_record(base, now))

    async def awithdraw(self, rec: ApprovalRecord, now: float) -> ApprovalRecord | None:
        """Async :meth:`withdraw`."""
        if not await self.aclaim(rec.approval_id, "decide", owner=WITHDRAWN):
            return None
        if not await self.aclaim(rec.approval_id, "run", owner=WITHDRAWN):
            return None
        fresh = await self.aget(rec.key)
        base = fresh if fresh is not None and fresh.approval_id == rec.approval_id else rec
        return await self.aput(self._withdrawn_record(base, now))

    def withdrawn(self, approval_id: str) -> bool:
        """Whether the user withdrew approval ``approval_id`` (its ``run`` step is held for good)."""
        slot = self.cas.read(self._slot(approval_id, "run"))
        return slot is not None and slot.owner == WITHDRAWN

    async def awithdrawn(self, approval_id: str) -> bool:
        """Async :meth:`withdrawn`."""
        slot = await self.cas.aread(self._slot(approval_id, "run"))
        return slot is not None and slot.owner == WITHDRAWN

    # -- sealing

    def seal(self, record: ApprovalRecord, what: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.keyring.seal(json.dumps(data, separators=(",", ":")).encode(), aad=record.aad(what))

    def open(self, record: ApprovalRecord, what: str = "secrets") -> dict[str, Any]:
        box = record.sealed if what == "secrets" else record.result
        if not box:
            return {}
        cause: Exception | None = None
        try:
            data = json.loads(self.keyring.open(box, aad=record.aad(what)))
        except (VaultDecryptionError, ValueError, UnicodeDecodeError) as exc:
            data, cause = None, exc
        if not isinstance(data, dict):
            # The cause says whether the keyring could not open it (other keys, or a damaged box).
            raise ApprovalRecordError(f"approval record {record.key[:64]!r}: its sealed {what} cannot be opened",
                                      hint="The stored approval for this action is damaged; ask for approval again."
                                      ) from cause
        return data

    # -- sync

    def get(self, key: str) -> ApprovalRecord | None:
        item = self.store.get(self.namespace, key)
        return None if item is None else parse_record(item.value, key)

    def put(self, record: ApprovalRecord) -> ApprovalRecord:
        self.store.put(self.namespace, record.key, _to_item(record), index=False)
        return record

    def _search(self, filter: dict[str, Any], limit: int, offset: int = 0) -> Flow[list[Any]]:
        results = yield StoreOps((SearchOp(self.namespace, filter, limit, offset),))
        return list(results[0])

    def _due(self, now: float, limit: int, sources: Iterable[str] | None) -> Flow[list[ApprovalRecord]]:
        out: list[ApprovalRecord] = []
        offset = 0
        while len(out) < limit:
            page = yield from self._search({"watch": True, "next_check_at": {"$lte": now}},
                                           min(500, limit - len(out)), offset)
            out.extend(_valid(page))
            if len(page) < min(500, limit):
                break
            offset += len(page)
        wanted = None if sources is None else set(sources)
        return [r for r in out if wanted is None or r.source in wanted]

    def due(self, now: float, *, limit: int = 1000, sources: Iterable[str] | None = None) -> list[ApprovalRecord]:
        """Records the resumer should check now (watched, ``next_check_at <= now``), at most ``limit``."""
        return run(self._due(now, limit, sources), store=self.store)

    async def adue(self, now: float, *, limit: int = 1000,
                   sources: Iterable[str] | None = None) -> list[ApprovalRecord]:
        """Async :meth:`due`."""
        return await arun(self._due(now, limit, sources), store=self.store)

    def _finished_before(self, items: list[Any], cutoff: float) -> list[str]:
        keys = []
        for item in items:
            try:
                r = parse_record(item.value, item.key)
            except ApprovalRecordError:
                continue  # damaged: left for an operator to look at (the guard asks again)
            when = r.finished_at or r.decided_at or r.created_at
            if r.status in FINAL and not r.watch and when < cutoff:
                keys.append(item.key)
        return keys

    def _purge(self, before: float, batch: int) -> Flow[int]:
        removed, offset = 0, 0
        while True:
            page = yield from self._search({"watch": False}, batch, offset)
            keys = self._finished_before(page, before)
            if keys:
                yield StoreOps(tuple(PutOp(self.namespace, key, None) for key in keys))
            removed += len(keys)
            if len(page) < batch:
                return removed
            offset += len(page) - len(keys)

    def purge(self, before: float, *, batch: int = 500) -> int:
        """Delete finished records (done, denied, expired, failed, superseded) older than
        ``before``; returns how many. Pending and approved records are never touched."""
        return run(self._purge(before, batch), store=self.store)

    async def apurge(self, before: float, *, batch: int = 500) -> int:
        """Async :meth:`purge`."""
        return await arun(self._purge(before, batch), store=self.store)

    @staticmethod
    def _user_pending(items: Iterable[Any], user_key: str, now: float) -> list[ApprovalRecord]:
        # the store filter chose them; checked again, so a store that ignores filters leaks nothing
        return sorted((r for r in _valid(items)
                       if r.user_key == user_key and r.status == "pending" and r.expires_at > now),
                      key=lambda r: r.created_at)

    def pending_for(self, user_key: str, now: float, *, limit: int = 200) -> list[ApprovalRecord]:
        """The approvals waiting for ``user_key`` (pending, not expired), oldest first.

        Example:
            >>> from langgraph.store.memory import InMemoryStore
            >>> ApprovalStore(InMemoryStore(), Keyring.generate()).pending_for("-|-|alice", 0.0)
            []
        """
        items = self.store.search(self.namespace, filter=_pending_of(user_key, now), limit=limit)
        return self._user_pending(items, user_key, now)

    async def apending_for(self, user_key: str, now: float, *, limit: int = 200) -> list[ApprovalRecord]:
        """Async :meth:`pending_for`."""
        items = await self._call("asearch", "search", self.namespace, filter=_pending_of(user_key, now), limit=limit)
        return self._user_pending(items, user_key, now)

    def _by_ping_key(self, key: str) -> Flow[ApprovalRecord | None]:
        page = yield from self._search({"ping_key": key}, 1)
        return parse_record(page[0].value, page[0].key) if page else None

    def by_ping_key(self, key: str) -> ApprovalRecord | None:
        """The record of the CIBA request whose ping key is ``key`` (see :func:`ping_key`)."""
        return run(self._by_ping_key(key), store=self.store)

    async def aby_ping_key(self, key: str) -> ApprovalRecord | None:
        """Async :meth:`by_ping_key`."""
        return await arun(self._by_ping_key(key), store=self.store)

    # -- async

    async def _call(self, name: str, sync_name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self.store, name)(*args, **kwargs)
        except NotImplementedError:
            return await asyncio.to_thread(getattr(self.store, sync_name), *args, **kwargs)

    async def aget(self, key: str) -> ApprovalRecord | None:
        item = await self._call("aget", "get", self.namespace, key)
        return None if item is None else parse_record(item.value, key)

    async def aput(self, record: ApprovalRecord) -> ApprovalRecord:
        await self._call("aput", "put", self.namespace, record.key, _to_item(record), index=False)
        return record


def now() -> float:
    return time.time()
