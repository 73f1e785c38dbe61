"""Live progress while an agent waits: typed LangGraph custom stream events.

The public import path; the code lives in :mod:`langchain_agent_auth.core.progress` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.progress import *  # noqa: F403
from langchain_agent_auth.core.progress import __all__ as __all__
