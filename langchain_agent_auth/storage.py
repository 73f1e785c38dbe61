"""Open the LangGraph store and checkpointer an agent keeps its state in, from one URL.

The public import path; the code lives in :mod:`langchain_agent_auth.core.storage` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.storage import *  # noqa: F403
from langchain_agent_auth.core.storage import __all__ as __all__
