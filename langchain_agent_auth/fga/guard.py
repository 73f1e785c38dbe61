"""Public path of the fga tool guard (kept for imports written before the guard moved).

The guard, :func:`with_fga` and :class:`FGAMiddleware` live in
:mod:`langchain_agent_auth.fga._integrations`; import them from :mod:`langchain_agent_auth.fga`.
"""

from langchain_agent_auth.fga._integrations import FGAGuard, FGAMiddleware, FGAToolGuard, fga_user, with_fga

__all__ = ["FGAGuard", "FGAMiddleware", "FGAToolGuard", "fga_user", "with_fga"]
