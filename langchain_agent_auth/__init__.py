"""langchain-agent-auth: let LangChain and LangGraph agents act for a person safely.

Four pillars: **identity** (who the agent acts for, from a trusted channel),
**vault** (the user's upstream API credentials), **approval** (human approval through CIBA
or in-app, with durable pauses) and **fga** (relationship-based authorization). They plug
into agents through one extension point, :class:`ToolGuard`.

Example:
    >>> from langchain_agent_auth import UserIdentity, acting_as, get_current_user
    >>> with acting_as(UserIdentity(subject="alice")):
    ...     get_current_user().subject
    'alice'
"""

from langchain_agent_auth._version import __version__
from langchain_agent_auth.approval import (
    ApprovalGuard,
    ApprovalMiddleware,
    ApprovalPendingPayload,
    ApprovalResumer,
    CIBAApprover,
    InAppApprover,
    PendingSource,
    RemoteResumer,
    ToolApprovalPayload,
    args_digest,
    get_approval_token,
    with_approval,
)
from langchain_agent_auth.crypto import Keyring
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
    IdentityGuard,
    IdentityMiddleware,
    LangGraphServerUserResolver,
    RuntimeContextResolver,
    StaticResolver,
    TokenResolver,
    UserIdentity,
    UserState,
    acting_as,
    get_current_user,
    identity_node,
)
from langchain_agent_auth.identity.langgraph_auth import langgraph_auth
from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
from langchain_agent_auth.vault import (
    AccessToken,
    ConnectAccountPayload,
    ConnectAccountResume,
    Connection,
    TokenVault,
    VaultCallback,
    VaultGuard,
    VaultMiddleware,
    get_access_token,
    refresh_access_token,
    vault_auth,
    vault_tool_node,
    with_vault,
)

__all__ = [
    "AccessToken",
    "ApprovalGuard",
    "ApprovalMiddleware",
    "ApprovalPendingPayload",
    "ApprovalResumer",
    "CIBAApprover",
    "ConnectAccountPayload",
    "ConnectAccountResume",
    "Connection",
    "GuardedCall",
    "GuardedTool",
    "IdentityGuard",
    "IdentityMiddleware",
    "InAppApprover",
    "JWTVerifier",
    "Keyring",
    "LangGraphServerUserResolver",
    "OAuthClient",
    "PendingSource",
    "Refusal",
    "RemoteResumer",
    "RuntimeContextResolver",
    "StaticResolver",
    "TokenResolver",
    "TokenVault",
    "ToolApprovalPayload",
    "ToolGuard",
    "ToolGuardMiddleware",
    "UserIdentity",
    "UserState",
    "VaultCallback",
    "VaultGuard",
    "VaultMiddleware",
    "__version__",
    "acting_as",
    "args_digest",
    "get_access_token",
    "get_approval_token",
    "get_current_user",
    "guard_tool",
    "guarded_tool_node",
    "identity_node",
    "langgraph_auth",
    "refresh_access_token",
    "vault_auth",
    "vault_tool_node",
    "with_approval",
    "with_vault",
]
