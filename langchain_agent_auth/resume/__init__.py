"""The one resumer every pillar shares.

A paused thread waits for something outside it: an approval on the user's phone (the
approval pillar), an account the user connects (the vault). Each pillar describes what it
waits for as a :class:`PendingSource` of :class:`PendingItem` objects; a resumer lists what is
due, checks each item once, and resumes exactly the threads whose wait is over, once each,
however many resumers run side by side (:func:`claim_item`).

* :class:`ApprovalResumer`: in-process, for a compiled graph with any checkpointer.
* :class:`RemoteResumer`: a LangGraph server through ``langgraph-sdk``
  (:class:`LangGraphServerStore` reads the server's store).

A pillar plugs in by passing its source in ``sources=[...]``, or by registering a factory
(:func:`register_source`) so that ``approvers=[...]`` becomes the approval pillar's source.
The names are also importable from :mod:`langchain_agent_auth.approval` and the top level.

Example:
    >>> from langchain_agent_auth.resume import PendingItem
    >>> PendingItem(source="approval", key="k", ref="k.1", thread_id="t1").interrupt_type
    'approval_pending'
"""

from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "LEASE": "langchain_agent_auth.resume._pending",
    "PendingItem": "langchain_agent_auth.resume._pending",
    "PendingSource": "langchain_agent_auth.resume._pending",
    "aclaim_item": "langchain_agent_auth.resume._pending",
    "aunclaim_item": "langchain_agent_auth.resume._pending",
    "claim_item": "langchain_agent_auth.resume._pending",
    "register_source": "langchain_agent_auth.resume._pending",
    "unclaim_item": "langchain_agent_auth.resume._pending",
    "ResumeReport": "langchain_agent_auth.resume._plan",
    "ApprovalResumer": "langchain_agent_auth.resume._resumer",
    "LangGraphServerStore": "langchain_agent_auth.resume._remote",
    "RemoteResumer": "langchain_agent_auth.resume._remote",
}

__all__ = [
    "LEASE",
    "ApprovalResumer",
    "LangGraphServerStore",
    "PendingItem",
    "PendingSource",
    "RemoteResumer",
    "ResumeReport",
    "aclaim_item",
    "aunclaim_item",
    "claim_item",
    "register_source",
    "unclaim_item",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from langchain_agent_auth.resume._pending import (
        LEASE,
        PendingItem,
        PendingSource,
        aclaim_item,
        aunclaim_item,
        claim_item,
        register_source,
        unclaim_item,
    )
    from langchain_agent_auth.resume._plan import ResumeReport
    from langchain_agent_auth.resume._remote import LangGraphServerStore, RemoteResumer
    from langchain_agent_auth.resume._resumer import ApprovalResumer
