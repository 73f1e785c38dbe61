"""The exception tree of langchain-agent-auth.

The public import path; the code lives in :mod:`langchain_agent_auth.core.errors` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.errors import *  # noqa: F403
from langchain_agent_auth.core.errors import __all__ as __all__
