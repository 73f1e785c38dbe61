"""Tool guards: the one extension point every pillar plugs into.

The public import path; the code lives in :mod:`langchain_agent_auth.core.guards` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.guards import *  # noqa: F403
from langchain_agent_auth.core.guards import __all__ as __all__
