"""The pause protocol: every pause is ``interrupt(payload)`` with a typed payload.

The public import path; the code lives in :mod:`langchain_agent_auth.core.pause` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.pause import *  # noqa: F403
from langchain_agent_auth.core.pause import __all__ as __all__
