"""The core layer: what every pillar, the protocol layer and the integrations stand on.

It imports nothing of the package outside ``core``; everything else may import it (code
inside the package imports ``core.*`` directly, users the public facades such as
``langchain_agent_auth.errors``). What lives here:

* :mod:`.effects`: the effect runtime. A flow is a generator yielding steps (HTTP requests,
  sleeps, store operations, blocking calls, ``Call(sync, async_)``); ``run`` and ``arun`` carry
  them out, so every sync/async pair in the package is written once.
* :mod:`.guards`: the guard contract (``ToolGuard.flow``, ``Proceed``, the ``on_refusal``
  policy) and its adapters: a wrapped tool, an agent middleware, a ``ToolNode``.
* :mod:`.identity`: the user model (``UserIdentity``), the resolvers and ``acting_as``.
* :mod:`.errors`: the exception tree (with :mod:`._error_base`, :mod:`._oauth_errors`) and
  the redaction every message goes through.
* :mod:`.store_cas`: compare-and-set on a LangGraph store, the primitive behind every
  exactly-once step (SQL backends in :mod:`._cas_sql`, the slot model in :mod:`._cas_slots`).
* :mod:`.crypto` (keyrings, private files), :mod:`.storage`, :mod:`.pause`, :mod:`.progress`,
  :mod:`.logs`, :mod:`.audit`; private helpers: ``_http`` (owned HTTP clients), ``_scrub``
  (credentials out of tool results), ``_lazy``, ``_serving``.
"""
