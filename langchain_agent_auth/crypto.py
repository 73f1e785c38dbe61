"""Encryption at rest for everything secret this toolkit stores (AES-256-GCM).

The public import path; the code lives in :mod:`langchain_agent_auth.core.crypto` (the core
layer, see CONTRIBUTING.md).
"""

from langchain_agent_auth.core.crypto import *  # noqa: F403
from langchain_agent_auth.core.crypto import __all__ as __all__
