"""The identity pillar: who the agent acts for, from a trusted channel only.

The user reaches the agent from one of these channels, never from model output:

* a bearer token verified against an issuer (:class:`TokenResolver`);
* the LangGraph runtime context passed by the application (``context={"user": ...}``);
* the LangGraph server's authenticated user (``config["configurable"]["langgraph_auth_user"]``,
  see :func:`~langchain_agent_auth.identity.langgraph_auth.langgraph_auth`);
* explicit configuration for scripts (:class:`StaticResolver`, :func:`acting_as`).

:class:`IdentityMiddleware` (``create_agent``), :func:`identity_node` and
:class:`IdentityGuard` (``StateGraph``; :func:`with_identity` wraps one tool) resolve the
caller of every invocation (resumes included) and keep each thread to its owner (:func:`check_thread_access`,
:func:`share_thread`); ``state["user"]`` records who started the run. Tools read the user
with :func:`get_current_user`. A tool argument the model fills can never name or change the
user.

Example:
    >>> from langchain_agent_auth.identity import UserIdentity, acting_as, get_current_user
    >>> with acting_as(UserIdentity(subject="alice", name="Alice")):
    ...     get_current_user().display_name
    'Alice'
"""

from langchain_agent_auth.core._user_fields import IDENTITY_FIELDS, find_foreign
from langchain_agent_auth.core.identity import (
    DEFAULT_CLAIMS,
    IdentityResolver,
    IdentitySource,
    LangGraphServerUserResolver,
    RuntimeContextResolver,
    StaticResolver,
    UserIdentity,
    acting_as,
    get_current_user,
    identity_from_sources,
    user_from_config,
    user_from_context,
    user_from_state,
)
from langchain_agent_auth.identity._device import (
    DeviceAuthorizationPayload,
    DeviceAuthorizationResume,
    DeviceAuthorizer,
    DevicePendingSource,
)
from langchain_agent_auth.identity._integrations import (
    AuthContext,
    IdentityGuard,
    IdentityMiddleware,
    UserState,
    aresolve_identity,
    identity_node,
    resolve_identity,
    with_identity,
)
from langchain_agent_auth.identity._owner import (
    OWNER_NAMESPACE,
    ThreadOwner,
    acheck_thread_access,
    ashare_thread,
    check_thread_access,
    share_thread,
    thread_owner,
)
from langchain_agent_auth.identity._token import TokenResolver

__all__ = [
    "DEFAULT_CLAIMS",
    "IDENTITY_FIELDS",
    "OWNER_NAMESPACE",
    "AuthContext",
    "DeviceAuthorizationPayload",
    "DeviceAuthorizationResume",
    "DeviceAuthorizer",
    "DevicePendingSource",
    "IdentityGuard",
    "IdentityMiddleware",
    "IdentityResolver",
    "IdentitySource",
    "LangGraphServerUserResolver",
    "RuntimeContextResolver",
    "StaticResolver",
    "ThreadOwner",
    "TokenResolver",
    "UserIdentity",
    "UserState",
    "acheck_thread_access",
    "acting_as",
    "aresolve_identity",
    "ashare_thread",
    "check_thread_access",
    "find_foreign",
    "get_current_user",
    "identity_from_sources",
    "identity_node",
    "resolve_identity",
    "share_thread",
    "thread_owner",
    "user_from_config",
    "user_from_context",
    "user_from_state",
    "with_identity",
]
