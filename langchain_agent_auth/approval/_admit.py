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
from typing import Any

from langchain_agent_auth.approval._records import ApprovalStore


def _pending_filter(user_key: str, now: float) -> dict[str, Any]:
    return {"user_key": user_key, "status": "pending", "expires_at": {"$gt": now}}


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
    items = store.store.search(store.namespace, filter=_pending_filter(user_key, now), limit=cap)
    return len(items)


async def _acount_pending(store: ApprovalStore, user_key: str, now: float, cap: int) -> int:
    items = await store._call("asearch", "search", store.namespace, filter=_pending_filter(user_key, now),
                              limit=cap)
    return len(items)
