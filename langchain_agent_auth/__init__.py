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

from typing import TYPE_CHECKING

from langchain_agent_auth._version import __version__
from langchain_agent_auth.core._lazy import lazy_exports

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
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
        DeviceAuthorizer,
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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__, eager=['__version__'])







