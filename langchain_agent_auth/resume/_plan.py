"""How a resumer plans one thread's resume: what a pass did (:class:`ResumeReport`), the
interrupts a thread waits on, and the matching of ready items to those interrupts (by the
payload's ref, then ``tool_call_id``, then a sibling pause of the same graph task).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_agent_auth.resume._pending import PendingItem, PendingSource

__all__ = ["ResumeReport"]

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


def _by_thread(ready: Sequence[tuple[PendingSource, PendingItem]]) -> dict[str, _Ready]:
    groups: dict[str, _Ready] = defaultdict(list)
    for src, item in ready:
        groups[item.thread_id].append((src, item))
    return groups
