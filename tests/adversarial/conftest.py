"""Fixtures of the adversarial suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_agent_auth.core.crypto import Keyring
from tests.adversarial import tools


@pytest.fixture(autouse=True)
def _clear_side_effects() -> Iterator[None]:
    tools.RAN.clear()
    yield
    tools.RAN.clear()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()
