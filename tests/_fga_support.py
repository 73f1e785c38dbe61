"""Shared helpers of the fga tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

ROOT = Path(__file__).resolve().parents[1]
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
