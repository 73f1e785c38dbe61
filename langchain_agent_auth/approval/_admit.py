"""The per-user cap on waiting approvals: counting a user's pending requests and starting a
new one is one step per process (parallel calls of one message run at the same time), under
a lock striped by user (a thread lock for the blocking driver, an asyncio lock per event loop
for the async one).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
import zlib

from langchain_agent_auth.approval._records import ApprovalStore, _pending_of
from langchain_agent_auth.core.effects import arun, run

_STRIPES = 64
_ADMIT_LOCKS = [threading.Lock() for _ in range(_STRIPES)]
_AADMIT_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Lock]] = weakref.WeakKeyDictionary()
_AADMIT_GUARD = threading.Lock()


def _stripe(user_key: str) -> int:
    return zlib.crc32(user_key.encode("utf-8", "surrogatepass")) % _STRIPES


def _admit_lock(user_key: str) -> threading.Lock:
    return _ADMIT_LOCKS[_stripe(user_key)]


def _aadmit_lock(user_key: str) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    with _AADMIT_GUARD:
        locks = _AADMIT_LOCKS.get(loop)
        if locks is None:
            locks = _AADMIT_LOCKS[loop] = [asyncio.Lock() for _ in range(_STRIPES)]
    return locks[_stripe(user_key)]


def _count_pending(store: ApprovalStore, user_key: str, now: float, cap: int) -> int:
    """How many approvals wait for ``user_key`` (stops counting at ``cap``)."""
    return len(run(store._search(_pending_of(user_key, now), cap), store=store.store))


async def _acount_pending(store: ApprovalStore, user_key: str, now: float, cap: int) -> int:
    return len(await arun(store._search(_pending_of(user_key, now), cap), store=store.store))
