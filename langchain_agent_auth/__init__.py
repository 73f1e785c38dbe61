"""langchain-agent-auth: let LangChain and LangGraph agents act for a person safely."""

from langchain_agent_auth._version import __version__
from langchain_agent_auth.devserver import LocalProvider
from langchain_agent_auth.guards import (
    GuardedCall,
    GuardedTool,
    Refusal,
    ToolGuard,
    ToolGuardMiddleware,
    guard_tool,
    guarded_tool_node,
)
from langchain_agent_auth.identity import (
    LangGraphServerUserResolver,
    RuntimeContextResolver,
    StaticResolver,
    UserIdentity,
    acting_as,
    get_current_user,
)

__all__ = [
    "GuardedCall",
    "GuardedTool",
    "LangGraphServerUserResolver",
    "LocalProvider",
    "Refusal",
    "RuntimeContextResolver",
    "StaticResolver",
    "ToolGuard",
    "ToolGuardMiddleware",
    "UserIdentity",
    "__version__",
    "acting_as",
    "get_current_user",
    "guard_tool",
    "guarded_tool_node",
]
