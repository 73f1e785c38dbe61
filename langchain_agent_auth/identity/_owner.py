"""Thread ownership: a thread belongs to the first verified user who ran it.

The owner is recorded once, in the graph's store (namespace :data:`OWNER_NAMESPACE`, key =
thread id), by whichever identity component first sees a verified user on the thread
(``IdentityMiddleware``, ``identity_node`` or ``IdentityGuard``). From then on every
invocation's caller is checked against it before any model call, tool call or pending
record is touched: the owner, a user the owner shared the thread with
(:func:`share_thread`), or a user an ``allow`` hook admits (an FGA check, say) may go on;
anyone else gets :class:`~langchain_agent_auth.errors.ThreadOwnershipError`.

Without a store, the state's record of who started the thread (``state["user"]``) serves as
the owner; it can only refuse, never grant an identity.

The decision is one flow of the core effect runtime (:func:`_access_flow`) whose steps read
and write the store; :func:`check_thread_access` and :func:`acheck_thread_access` are the
runtime's two drivers over it (the store's ``get``/``put`` or ``aget``/``aput``).

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from langchain_agent_auth.identity import UserIdentity
    >>> store = InMemoryStore()
    >>> alice, bob = UserIdentity(subject="alice"), UserIdentity(subject="bob")
    >>> check_thread_access(store, "t1", alice).subject      # the first user owns it
    'alice'
    >>> check_thread_access(store, "t1", bob)
    Traceback (most recent call last):
    ...
    langchain_agent_auth.errors.ThreadOwnershipError: thread 't1' belongs to another user
    >>> share_thread(store, "t1", bob, owner=alice).shared_with
    ('-|-|bob',)
    >>> check_thread_access(store, "t1", bob).subject        # still alice's thread
    'alice'
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_agent_auth.core.audit._emit import emit_audit
from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import ThreadOwnershipError
from langchain_agent_auth.core.identity import UserIdentity
from langchain_agent_auth.core.pause import stop_run

__all__ = [
    "OWNER_NAMESPACE",
    "ThreadAllow",
    "ThreadOwner",
    "acheck_thread_access",
    "ashare_thread",
    "check_thread_access",
    "share_thread",
    "thread_owner",
]

#: Where owner records live in the store (key: the thread id).
OWNER_NAMESPACE: tuple[str, ...] = ("agent_auth", "thread_owners")

#: ``allow(thread_id, caller, owner) -> bool``: may a user who is neither the owner nor shared
#: with use the thread? (e.g. an FGA check). Exceptions deny.
ThreadAllow = Callable[[str, UserIdentity, "ThreadOwner"], bool]

# Insert-if-absent is done as read, write, read-back under a lock: atomic for the threads
# (and, per event loop, the tasks) of this process. Stores shared between processes get the
# same read-back check, which makes the loser of a race see the winner's record (and be
# refused). A store compare-and-set primitive replaces this when the store offers one.
_CLAIM_LOCK = threading.Lock()
# The async path cannot hold a thread lock across awaits: one asyncio lock per event loop.
_ALOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _aclaim_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    with _CLAIM_LOCK:
        lock = _ALOCKS.get(loop)
        if lock is None:
            lock = _ALOCKS[loop] = asyncio.Lock()
        return lock


class ThreadOwner(BaseModel):
    """The owner record of one thread (no token, no secret: identity keys only)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    thread_id: str
    user_key: str
    subject: str
    issuer: str | None = None
    tenant: str | None = None
    shared_with: tuple[str, ...] = ()
    created_at: float = Field(default_factory=time.time)

    def admits(self, user: UserIdentity) -> bool:
        """Whether ``user`` is the owner or was shared the thread."""
        return user.key == self.user_key or user.key in self.shared_with

    @classmethod
    def of(cls, thread_id: str, user: UserIdentity) -> ThreadOwner:
        return cls(thread_id=thread_id, user_key=user.key, subject=user.subject,
                   issuer=user.issuer, tenant=user.tenant)


def _get(store: Any, thread_id: str) -> Call:
    """The step that reads ``thread_id``'s owner record (the store's ``get`` or ``aget``)."""
    return Call(lambda: store.get(OWNER_NAMESPACE, thread_id), lambda: store.aget(OWNER_NAMESPACE, thread_id))


def _put(store: Any, record: ThreadOwner) -> Call:
    """The step that writes an owner record (the store's ``put`` or ``aput``)."""
    value = record.model_dump(exclude={"thread_id"})
    return Call(lambda: store.put(OWNER_NAMESPACE, record.thread_id, value),
                lambda: store.aput(OWNER_NAMESPACE, record.thread_id, value))


def _parse(thread_id: str, item: Any) -> ThreadOwner | None:
    if item is None:
        return None
    value = getattr(item, "value", item)
    try:
        return ThreadOwner.model_validate({**value, "thread_id": thread_id})
    except (ValidationError, TypeError):
        # An unreadable owner record must not hand the thread to whoever comes next.
        return ThreadOwner(thread_id=thread_id, user_key="\x00unreadable", subject="?")


def abort_run(err: Exception) -> Exception:
    """Mark ``err`` so a ToolNode re-raises it (the run stops and a pause stays in place)
    instead of turning it into a ToolMessage: LangGraph re-raises errors marked as a bad
    resume whatever ``handle_tool_errors`` says."""
    return stop_run(err)


def _refusal(thread_id: str, user: UserIdentity | None = None) -> Exception:
    emit_audit("thread_refused", thread_id=thread_id, user=None if user is None else user.key)
    return abort_run(ThreadOwnershipError(f"thread {thread_id!r} belongs to another user", thread_id=thread_id))


def _allowed(allow: ThreadAllow | None, thread_id: str, user: UserIdentity, owner: ThreadOwner) -> bool:
    if allow is None:
        return False
    try:
        return allow(thread_id, user, owner) is True
    except Exception:  # fail closed: a failing check denies
        return False


def _access_flow(
    store: Any,
    thread_id: str,
    user: UserIdentity,
    recorded: UserIdentity | Callable[[], UserIdentity | None] | None,
    allow: ThreadAllow | None,
) -> Flow[ThreadOwner]:
    owner = _parse(thread_id, (yield _get(store, thread_id)))
    if owner is None:
        if callable(recorded):  # parsed only when needed: the hot path has an owner record
            recorded = recorded()
        if recorded is not None and recorded.key != user.key:
            # A thread whose state names another starter (no store record yet: an older
            # thread, or no store at all) is not up for grabs.
            if _allowed(allow, thread_id, user, ThreadOwner.of(thread_id, recorded)):
                return ThreadOwner.of(thread_id, recorded)
            raise _refusal(thread_id, user)
        yield _put(store, ThreadOwner.of(thread_id, user))
        owner = _parse(thread_id, (yield _get(store, thread_id)))
        if owner is None:  # a store that does not keep what it is given: fall back to the claim
            owner = ThreadOwner.of(thread_id, user)
    if owner.admits(user) or _allowed(allow, thread_id, user, owner):
        return owner
    raise _refusal(thread_id, user)


def _no_store(thread_id: str, user: UserIdentity, recorded: Any, allow: ThreadAllow | None) -> ThreadOwner:
    if callable(recorded):
        recorded = recorded()
    owner = ThreadOwner.of(thread_id, recorded or user)
    if owner.admits(user) or _allowed(allow, thread_id, user, owner):
        return owner
    raise _refusal(thread_id, user)


def check_thread_access(
    store: Any,
    thread_id: str,
    user: UserIdentity,
    *,
    recorded: UserIdentity | Callable[[], UserIdentity | None] | None = None,
    allow: ThreadAllow | None = None,
) -> ThreadOwner:
    """Claim ``thread_id`` for ``user`` if nobody owns it, else check ``user`` may use it.

    ``store`` is a LangGraph ``BaseStore``. ``recorded`` is the user the thread's state
    names (or a function returning it, called only when needed): without a store, or for a
    thread with no owner record yet, a different caller is refused. Returns the owner record; raises
    :class:`~langchain_agent_auth.errors.ThreadOwnershipError` for anyone the owner did not
    share the thread with and ``allow`` does not admit. Call it before showing a thread's
    state or pause to a user of your application.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> check_thread_access(InMemoryStore(), "t", UserIdentity(subject="ann")).user_key
        '-|-|ann'
    """
    if store is None:
        return _no_store(thread_id, user, recorded, allow)
    with _CLAIM_LOCK:
        return run(_access_flow(store, thread_id, user, recorded, allow))


async def acheck_thread_access(
    store: Any,
    thread_id: str,
    user: UserIdentity,
    *,
    recorded: UserIdentity | Callable[[], UserIdentity | None] | None = None,
    allow: ThreadAllow | None = None,
) -> ThreadOwner:
    """Async :func:`check_thread_access` (uses the store's ``aget`` / ``aput``)."""
    if store is None:
        return _no_store(thread_id, user, recorded, allow)
    async with _aclaim_lock():
        return await arun(_access_flow(store, thread_id, user, recorded, allow))


def thread_owner(store: Any, thread_id: str) -> ThreadOwner | None:
    """The owner record of ``thread_id``, or ``None`` when the thread has none yet.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> thread_owner(InMemoryStore(), "nobody-ran-this") is None
        True
    """
    return _parse(thread_id, store.get(OWNER_NAMESPACE, thread_id))


def _share(owner: ThreadOwner | None, thread_id: str, user: UserIdentity, by: UserIdentity,
           revoke: bool) -> ThreadOwner:
    if owner is None or by.key != owner.user_key:
        raise ThreadOwnershipError(f"only the owner of thread {thread_id!r} can share it", thread_id=thread_id)
    keys = [k for k in owner.shared_with if k != user.key]
    if not revoke and user.key != owner.user_key:
        keys.append(user.key)
    return owner.model_copy(update={"shared_with": tuple(keys)})


def share_thread(store: Any, thread_id: str, user: UserIdentity, *, owner: UserIdentity,
                 revoke: bool = False) -> ThreadOwner:
    """Let ``user`` resume, answer and continue ``owner``'s thread (``revoke=True`` undoes it).

    ``owner`` must be the thread's recorded owner (take it from your trusted channel, never
    from the request that asks); anyone else gets ``ThreadOwnershipError``.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> store, ann, ben = InMemoryStore(), UserIdentity(subject="ann"), UserIdentity(subject="ben")
        >>> _ = check_thread_access(store, "t", ann)
        >>> share_thread(store, "t", ben, owner=ann, revoke=True).shared_with
        ()
    """
    with _CLAIM_LOCK:
        return run(_share_flow(store, thread_id, user, owner, revoke))


async def ashare_thread(store: Any, thread_id: str, user: UserIdentity, *, owner: UserIdentity,
                        revoke: bool = False) -> ThreadOwner:
    """Async :func:`share_thread`."""
    async with _aclaim_lock():
        return await arun(_share_flow(store, thread_id, user, owner, revoke))


def _share_flow(store: Any, thread_id: str, user: UserIdentity, by: UserIdentity, revoke: bool) -> Flow[ThreadOwner]:
    record = _share(_parse(thread_id, (yield _get(store, thread_id))), thread_id, user, by, revoke)
    yield _put(store, record)
    return record


def recorded_user(state: Any) -> UserIdentity | None:
    """The user a thread's state records as having started it (never an identity source)."""
    if state is None:
        return None
    value = state.get("user") if isinstance(state, Mapping) else getattr(state, "user", None)
    try:
        return UserIdentity.coerce(value, source="state")
    except (ValidationError, ValueError):
        return None
