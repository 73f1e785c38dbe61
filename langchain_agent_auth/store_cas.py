"""Compare-and-set on a LangGraph store: the one primitive behind every exactly-once step.

The public import path; the code lives in :mod:`langchain_agent_auth.core.store_cas` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.store_cas import *  # noqa: F403
from langchain_agent_auth.core.store_cas import __all__ as __all__
