"""Shared helpers of the fga tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from tests.support.browser import ServedApp

ROOT = Path(__file__).resolve().parents[2]
FGA = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
HAS_FGA = Path(FGA).exists()


def find_shared() -> Path | None:
    """``../shared`` next to the repository root, or next to one of its parents (git worktrees)."""
    for parent in ROOT.parents:
        candidate = parent / "shared"
        if (candidate / "conformance" / "openfga").is_dir():
            return candidate
    return None


SHARED = find_shared()
CONFORMANCE = SHARED / "conformance" / "openfga" if SHARED else None

DOCS_MODEL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define owner: [user]
    define parent: [folder]
    define viewer: [user, group#member] or owner or viewer from parent
type document
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user]
    define viewer: ([user, user:*, group#member, user with in_hours] or owner or viewer from parent) \
but not blocked
    define editor: [user] and viewer
condition in_hours(hour: int) {
  hour >= 9 && hour < 17
}
"""


class FakeChatModel(GenericFakeChatModel):
    """A scripted chat model usable by ``create_agent`` (tool binding is a no-op)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChatModel:
        return self


SEED_TUPLES = [
    ("user:anne", "member", "group:eng"),
    ("group:eng#member", "viewer", "folder:eng"),
    ("folder:eng", "parent", "document:spec"),
    ("user:bob", "owner", "document:budget"),
    ("user:*", "viewer", "document:handbook"),
    ("user:anne", "blocked", "document:budget"),
]


class ServerThread(ServedApp):
    """The OpenFGA-API app (``agent-auth fga serve``'s) served on a free loopback port."""

    def __init__(self, **app_kwargs: Any) -> None:
        super().__init__(_create_app()(**app_kwargs))


def new_store(url: str, name: str = "test") -> tuple[str, str]:
    """Create a store with the docs model through the real SDK; returns (store_id, model_id)."""
    from openfga_sdk.client import ClientConfiguration
    from openfga_sdk.models import CreateStoreRequest, WriteAuthorizationModelRequest
    from openfga_sdk.sync import OpenFgaClient

    client = OpenFgaClient(ClientConfiguration(api_url=url))
    try:
        store = client.create_store(CreateStoreRequest(name=name))
        client.set_store_id(store.id)
        from langchain_agent_auth.fga import AuthorizationModel

        model = AuthorizationModel.from_dsl(DOCS_MODEL).to_json()
        written = client.write_authorization_model(WriteAuthorizationModelRequest(**model))
        return store.id, written.authorization_model_id
    finally:
        client.close()


def _create_app() -> Any:
    from langchain_agent_auth.cli._fga_server import create_app

    return create_app
