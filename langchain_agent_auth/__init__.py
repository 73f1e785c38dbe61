"""langchain-agent-auth: let LangChain and LangGraph agents act for a person safely.

Four pillars: **identity** (who the agent acts for, from a trusted channel),
**vault** (the user's upstream API credentials), **approval** (human approval through CIBA
or in-app, with durable pauses) and **fga** (relationship-based authorization). They plug
into agents through one extension point, :class:`ToolGuard`. :class:`LocalProvider` runs
a complete OpenID provider in-process so everything works offline.

Names are imported on first use, so ``agent-auth`` starts without loading LangChain.

Example:
    >>> from langchain_agent_auth import UserIdentity, acting_as, get_current_user
    >>> with acting_as(UserIdentity(subject="alice")):
    ...     get_current_user().subject
    'alice'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_agent_auth._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # integrations
    "GuardedCall": "langchain_agent_auth.core.guards",
    "GuardedTool": "langchain_agent_auth.core.guards",
    "Refusal": "langchain_agent_auth.core.guards",
    "ToolGuard": "langchain_agent_auth.core.guards",
    "ToolGuardMiddleware": "langchain_agent_auth.core.guards",
    "guard_tool": "langchain_agent_auth.core.guards",
    "guarded_tool_node": "langchain_agent_auth.core.guards",
    "AgentAuthToolkit": "langchain_agent_auth.toolkit",
    # identity
    "AuthContext": "langchain_agent_auth.identity",
    "IdentityGuard": "langchain_agent_auth.identity",
    "IdentityMiddleware": "langchain_agent_auth.identity",
    "LangGraphServerUserResolver": "langchain_agent_auth.identity",
    "RuntimeContextResolver": "langchain_agent_auth.identity",
    "StaticResolver": "langchain_agent_auth.identity",
    "TokenResolver": "langchain_agent_auth.identity",
    "UserIdentity": "langchain_agent_auth.identity",
    "UserState": "langchain_agent_auth.identity",
    "acting_as": "langchain_agent_auth.identity",
    "DeviceAuthorizer": "langchain_agent_auth.identity",
    "get_current_user": "langchain_agent_auth.identity",
    "identity_node": "langchain_agent_auth.identity",
    "with_identity": "langchain_agent_auth.identity",
    "langgraph_auth": "langchain_agent_auth.identity.langgraph_auth",
    # protocol and storage
    "JWTVerifier": "langchain_agent_auth.oauth",
    "OAuthClient": "langchain_agent_auth.oauth",
    "Keyring": "langchain_agent_auth.core.crypto",
    "CompareAndSet": "langchain_agent_auth.core.store_cas",
    "compare_and_set": "langchain_agent_auth.core.store_cas",
    # vault
    "AccessToken": "langchain_agent_auth.vault",
    "ConnectAccountPayload": "langchain_agent_auth.vault",
    "ConnectAccountResume": "langchain_agent_auth.vault",
    "Connection": "langchain_agent_auth.vault",
    "TokenVault": "langchain_agent_auth.vault",
    "VaultCallback": "langchain_agent_auth.vault",
    "VaultGuard": "langchain_agent_auth.vault",
    "VaultMiddleware": "langchain_agent_auth.vault",
    "get_access_token": "langchain_agent_auth.vault",
    "refresh_access_token": "langchain_agent_auth.vault",
    "vault_auth": "langchain_agent_auth.vault",
    "vault_tool_node": "langchain_agent_auth.vault",
    "with_vault": "langchain_agent_auth.vault",
    # approval
    "ApprovalGuard": "langchain_agent_auth.approval",
    "ApprovalMiddleware": "langchain_agent_auth.approval",
    "ApprovalPendingPayload": "langchain_agent_auth.approval",
    "ApprovalResumer": "langchain_agent_auth.approval",
    "CIBAApprover": "langchain_agent_auth.approval",
    "InAppApprover": "langchain_agent_auth.approval",
    "PendingSource": "langchain_agent_auth.approval",
    "RemoteResumer": "langchain_agent_auth.approval",
    "ToolApprovalPayload": "langchain_agent_auth.approval",
    "args_digest": "langchain_agent_auth.approval",
    "get_approval_token": "langchain_agent_auth.approval",
    "with_approval": "langchain_agent_auth.approval",
    # fga
    "AuthorizationDecision": "langchain_agent_auth.fga",
    "AuthorizationModel": "langchain_agent_auth.fga",
    "Authorizer": "langchain_agent_auth.fga",
    "CheckRequest": "langchain_agent_auth.fga",
    "EmbeddedAuthorizer": "langchain_agent_auth.fga",
    "FGAGuard": "langchain_agent_auth.fga",
    "FGAMiddleware": "langchain_agent_auth.fga",
    "FGARetriever": "langchain_agent_auth.fga",
    "FGAToolGuard": "langchain_agent_auth.fga",
    "MemoryTupleStore": "langchain_agent_auth.fga",
    "OpenFGAAuthorizer": "langchain_agent_auth.fga",
    "SQLiteTupleStore": "langchain_agent_auth.fga",
    "TupleKey": "langchain_agent_auth.fga",
    "TupleStore": "langchain_agent_auth.fga",
    "UserFilter": "langchain_agent_auth.fga",
    "fga_user": "langchain_agent_auth.fga",
    "with_fga": "langchain_agent_auth.fga",
    # core
    "RedactingFilter": "langchain_agent_auth.core.logs",
    "install_log_redaction": "langchain_agent_auth.core.logs",
    "WaitProgress": "langchain_agent_auth.core.progress",
    "is_progress": "langchain_agent_auth.core.progress",
    # audit
    "AuditEvent": "langchain_agent_auth.core.audit",
    "LoggingAuditSink": "langchain_agent_auth.core.audit",
    "OpenTelemetryAuditSink": "langchain_agent_auth.core.audit",
    "StoreAuditSink": "langchain_agent_auth.core.audit",
    "add_audit_sink": "langchain_agent_auth.core.audit",
    "audit_sink": "langchain_agent_auth.core.audit",
    "read_audit": "langchain_agent_auth.core.audit",
    "remove_audit_sink": "langchain_agent_auth.core.audit",
    # dev
    "LocalProvider": "langchain_agent_auth.devserver",
}

__all__ = [
    "AccessToken",
    "AgentAuthToolkit",
    "ApprovalGuard",
    "ApprovalMiddleware",
    "ApprovalPendingPayload",
    "ApprovalResumer",
    "AuditEvent",
    "AuthContext",
    "AuthorizationDecision",
    "AuthorizationModel",
    "Authorizer",
    "CIBAApprover",
    "CheckRequest",
    "CompareAndSet",
    "ConnectAccountPayload",
    "ConnectAccountResume",
    "Connection",
    "DeviceAuthorizer",
    "EmbeddedAuthorizer",
    "FGAGuard",
    "FGAMiddleware",
    "FGARetriever",
    "FGAToolGuard",
    "GuardedCall",
    "GuardedTool",
    "IdentityGuard",
    "IdentityMiddleware",
    "InAppApprover",
    "JWTVerifier",
    "Keyring",
    "LangGraphServerUserResolver",
    "LocalProvider",
    "LoggingAuditSink",
    "MemoryTupleStore",
    "OAuthClient",
    "OpenFGAAuthorizer",
    "OpenTelemetryAuditSink",
    "PendingSource",
    "RedactingFilter",
    "Refusal",
    "RemoteResumer",
    "RuntimeContextResolver",
    "SQLiteTupleStore",
    "StaticResolver",
    "StoreAuditSink",
    "TokenResolver",
    "TokenVault",
    "ToolApprovalPayload",
    "ToolGuard",
    "ToolGuardMiddleware",
    "TupleKey",
    "TupleStore",
    "UserFilter",
    "UserIdentity",
    "UserState",
    "VaultCallback",
    "VaultGuard",
    "VaultMiddleware",
    "WaitProgress",
    "__version__",
    "acting_as",
    "add_audit_sink",
    "args_digest",
    "audit_sink",
    "compare_and_set",
    "fga_user",
    "get_access_token",
    "get_approval_token",
    "get_current_user",
    "guard_tool",
    "guarded_tool_node",
    "identity_node",
    "install_log_redaction",
    "is_progress",
    "langgraph_auth",
    "read_audit",
    "refresh_access_token",
    "remove_audit_sink",
    "vault_auth",
    "vault_tool_node",
    "with_approval",
    "with_fga",
    "with_identity",
    "with_vault",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_agent_auth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
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
    from langchain_agent_auth.core.audit import (
        AuditEvent,
        LoggingAuditSink,
        OpenTelemetryAuditSink,
        StoreAuditSink,
        add_audit_sink,
        audit_sink,
        read_audit,
        remove_audit_sink,
    )
    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.core.guards import (
        GuardedCall,
        GuardedTool,
        Refusal,
        ToolGuard,
        ToolGuardMiddleware,
        guard_tool,
        guarded_tool_node,
    )
    from langchain_agent_auth.core.logs import RedactingFilter, install_log_redaction
    from langchain_agent_auth.core.progress import WaitProgress, is_progress
    from langchain_agent_auth.core.store_cas import CompareAndSet, compare_and_set
    from langchain_agent_auth.devserver import LocalProvider
    from langchain_agent_auth.fga import (
        AuthorizationDecision,
        AuthorizationModel,
        Authorizer,
        CheckRequest,
        EmbeddedAuthorizer,
        FGAGuard,
        FGAMiddleware,
        FGARetriever,
        FGAToolGuard,
        MemoryTupleStore,
        OpenFGAAuthorizer,
        SQLiteTupleStore,
        TupleKey,
        TupleStore,
        UserFilter,
        fga_user,
        with_fga,
    )
    from langchain_agent_auth.identity import (
        AuthContext,
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
        with_identity,
    )
    from langchain_agent_auth.identity.langgraph_auth import langgraph_auth
    from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
    from langchain_agent_auth.toolkit import AgentAuthToolkit
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
