"""Fixtures of the approval tests (helpers live in tests/approval/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_agent_auth.core.crypto import Keyring
from tests.approval import helpers


@pytest.fixture(autouse=True)
def _clear_side_effects() -> Iterator[None]:
    helpers.SIDE_EFFECTS.clear()
    yield
    helpers.SIDE_EFFECTS.clear()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()
