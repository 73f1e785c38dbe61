"""The audit trail: one typed event stream for every pillar, three sinks.

The public import path; the code lives in :mod:`langchain_agent_auth.core.audit` (the core
layer, see CONTRIBUTING.md), whose ``TYPE_CHECKING`` imports list the public names. Names load
on first use, as there.
"""

from langchain_agent_auth.core import audit as _core
from langchain_agent_auth.core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, _core.__file__)
