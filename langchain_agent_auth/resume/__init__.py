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

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
    from langchain_agent_auth.resume._pending import (
        LEASE,
        PendingItem,
        PendingSource,
        StoreClaims,
        aclaim_item,
        aunclaim_item,
        claim_item,
        register_source,
        unclaim_item,
    )
    from langchain_agent_auth.resume._plan import ResumeReport
    from langchain_agent_auth.resume._remote import LangGraphServerStore, RemoteResumer
    from langchain_agent_auth.resume._resumer import ApprovalResumer

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)



