"""The shared resumer lives in ``langchain_agent_auth.resume``; the old public paths keep working."""

from __future__ import annotations

import ast
import pathlib

import pytest
from langgraph.store.memory import InMemoryStore

import langchain_agent_auth
from langchain_agent_auth import approval, resume
from langchain_agent_auth.core.crypto import Keyring


def test_public_names_are_the_same_objects_everywhere():
    for name in ("ApprovalResumer", "RemoteResumer", "LangGraphServerStore", "PendingItem", "PendingSource",
                 "ResumeReport"):
        assert getattr(approval, name) is getattr(resume, name)
    for name in ("ApprovalResumer", "RemoteResumer", "PendingSource"):
        assert getattr(langchain_agent_auth, name) is getattr(resume, name)


def test_the_vault_source_makes_the_shared_pending_item():
    from langchain_agent_auth.vault import ConnectItem

    assert ConnectItem is resume.PendingItem


def test_approvers_become_the_approval_source_through_the_registry():
    resumer = resume.ApprovalResumer(
        _graph(), approvers=[approval.InAppApprover(keyring=Keyring.generate())], store=InMemoryStore())
    assert isinstance(resumer.sources[0], approval.ApprovalSource)


def test_a_kind_nobody_registered_is_refused():
    with pytest.raises(TypeError, match="no pending source"):
        resume.ApprovalResumer(_graph(), approvers=[object()], store=InMemoryStore())


def test_the_resumer_imports_no_pillar():
    root = pathlib.Path(resume.__file__).parent
    pillars = ("approval", "vault", "identity", "fga", "mcp", "devserver", "demo", "cli", "toolkit")
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                assert not (parts[0] == "langchain_agent_auth" and len(parts) > 1 and parts[1] in pillars), (
                    f"{path.name} imports {node.module}")


def _graph():
    from langgraph.graph import StateGraph
    from typing_extensions import TypedDict

    class S(TypedDict):
        x: int

    return StateGraph(S).add_node("n", lambda s: s).set_entry_point("n").compile(store=InMemoryStore())
