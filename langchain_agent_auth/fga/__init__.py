"""The fga pillar: relationship-based authorization (OpenFGA-compatible) for agents.

* :class:`AuthorizationModel`: OpenFGA's modeling language (DSL, schema 1.1, modules) and
  JSON, validated with OpenFGA's rules.
* :class:`EmbeddedAuthorizer`: the default, in-process engine over a tuple store in memory
  (:class:`MemoryTupleStore`) or SQLite (:class:`SQLiteTupleStore`): ``check``,
  ``batch_check``, ``list_objects``, ``list_users``, validated ``write``/``delete``,
  CEL conditions.
* :class:`OpenFGAAuthorizer`: the same :class:`Authorizer` interface over ``openfga-sdk``
  for an OpenFGA server or Okta FGA.
* :class:`FGAToolGuard` / :func:`with_fga` / :class:`FGAMiddleware`: check before a tool runs.
* :class:`FGARetriever`: keep only the documents the user may see (one batch check per query).
* :class:`AuthorizationDecision`: the audit record of every check.

Example:
    >>> from langchain_agent_auth.fga import EmbeddedAuthorizer
    >>> fga = EmbeddedAuthorizer('''
    ... model
    ...   schema 1.1
    ... type user
    ... type document
    ...   relations
    ...     define viewer: [user, user:*]
    ... ''')
    >>> fga.write([("user:*", "viewer", "document:public"), ("user:anne", "viewer", "document:1")])
    >>> fga.check("user:bob", "viewer", "document:public")
    True
    >>> fga.list_objects("user:anne", "viewer", "document")
    ['document:1', 'document:public']
"""

from langchain_agent_auth.fga._dsl import load_model_file
from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
from langchain_agent_auth.fga._model import AuthorizationModel
from langchain_agent_auth.fga._store import MemoryTupleStore, SQLiteTupleStore, TupleStore
from langchain_agent_auth.fga._tuple import TupleKey
from langchain_agent_auth.fga._types import (
    AuthorizationDecision,
    Authorizer,
    CheckRequest,
    DecisionSink,
    UserFilter,
)
from langchain_agent_auth.fga.guard import FGAMiddleware, FGAToolGuard, fga_user, with_fga
from langchain_agent_auth.fga.openfga import OpenFGAAuthorizer
from langchain_agent_auth.fga.retriever import FGARetriever

__all__ = [
    "AuthorizationDecision",
    "AuthorizationModel",
    "Authorizer",
    "CheckRequest",
    "DecisionSink",
    "EmbeddedAuthorizer",
    "FGAMiddleware",
    "FGARetriever",
    "FGAToolGuard",
    "MemoryTupleStore",
    "OpenFGAAuthorizer",
    "SQLiteTupleStore",
    "TupleKey",
    "TupleStore",
    "UserFilter",
    "fga_user",
    "load_model_file",
    "with_fga",
]
