"""The audit trail: one typed event stream for every pillar, three sinks.

The public import path; the code lives in :mod:`langchain_agent_auth.core.audit` (the core
layer, see CONTRIBUTING.md). Names load on first use, as there.
"""

from langchain_agent_auth.core._lazy import lazy_exports
from langchain_agent_auth.core.audit import _EXPORTS as _EXPORTS
from langchain_agent_auth.core.audit import __all__ as __all__

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
