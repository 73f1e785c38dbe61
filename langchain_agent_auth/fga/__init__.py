"""The fga pillar: relationship-based authorization (OpenFGA-compatible) for agents.

* :class:`AuthorizationModel`: OpenFGA's modeling language (DSL, schema 1.1, modules with
  ``fga.mod``) and its JSON shape, validated with OpenFGA's rules; errors carry a line
  and a column.
* :class:`EmbeddedAuthorizer`: the default, in-process engine over a tuple store in memory
  (:class:`MemoryTupleStore`) or SQLite (:class:`SQLiteTupleStore`): ``check``,
  ``batch_check``, ``list_objects``, ``list_users``, validated ``write``/``delete``, CEL
  conditions, contextual tuples. It passes OpenFGA's conformance suite in full.
* :class:`OpenFGAAuthorizer`: the same :class:`Authorizer` interface over ``openfga-sdk``
  for an OpenFGA server or Okta FGA (``pip install 'langchain-agent-auth[openfga]'``).
* :class:`FGAGuard` / :func:`with_fga` / :class:`FGAMiddleware` (and the node form,
  ``guarded_tool_node(tools, FGAGuard(...))``): check before a tool runs, the user from
  the identity pillar, a short refusal for the model, fail closed.
* :class:`FGARetriever`: keep only the documents the user may see, one ``batch_check`` per
  query, optionally pre-filtered with ``list_objects``.
* :class:`AuthorizationDecision`: the audit record of every check (``on_decision`` sinks).

Store files (``.fga.yaml``, the format of ``fga model test`` / ``fga store import``):
:meth:`EmbeddedAuthorizer.from_store_file` loads one's model and tuples,
:func:`load_store_file` reads it (:class:`StoreFile`), :func:`load_tuple_file` reads a
YAML, JSON or CSV tuple file.

Command line (``agent-auth fga --help``): ``test`` runs ``.fga.yaml`` store tests (the
format of ``fga model test``) and OpenFGA's conformance files; ``check``,
``list-objects``, ``list-users``, ``write``, ``delete`` and ``model`` work on a SQLite store
or a test file; ``serve`` exposes the engine over the subset of OpenFGA's HTTP API the SDK
uses (stores, models, write, read, check, batch-check, list-objects, list-users).

Semantics follow OpenFGA, including its error codes (``AuthorizationError.code``), its
treatment of cycles, its recursive resolution of ``[user, group#member]`` relations, and
its depth limit of 25. Where OpenFGA itself is timing-dependent (a cycle racing a plain
"false" in an exclusion) this engine answers deterministically.

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

from typing import TYPE_CHECKING

from langchain_agent_auth.core._lazy import lazy_exports

if TYPE_CHECKING:  # the package's public names, listed once (imported on first use)
    from langchain_agent_auth.fga._dsl import load_model_file
    from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
    from langchain_agent_auth.fga._integrations import (
        FGAGuard,
        FGAMiddleware,
        FGAToolGuard,
        fga_user,
        with_fga,
    )
    from langchain_agent_auth.fga._model import AuthorizationModel
    from langchain_agent_auth.fga._store import MemoryTupleStore, SQLiteTupleStore, TupleStore
    from langchain_agent_auth.fga._storefile import StoreFile, load_store_file, load_tuple_file
    from langchain_agent_auth.fga._tuple import TupleKey
    from langchain_agent_auth.fga._types import (
        AuthorizationDecision,
        Authorizer,
        CheckRequest,
        DecisionSink,
        UserFilter,
    )
    from langchain_agent_auth.fga.openfga import OpenFGAAuthorizer
    from langchain_agent_auth.fga.retriever import FGARetriever

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)



