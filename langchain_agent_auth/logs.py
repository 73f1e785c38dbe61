"""Keep tokens and secrets out of log records, ours and the libraries' we run.

The public import path; the code lives in :mod:`langchain_agent_auth.core.logs` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.logs import *  # noqa: F403
from langchain_agent_auth.core.logs import __all__ as __all__
