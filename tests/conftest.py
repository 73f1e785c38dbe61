"""Shared test fixtures."""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def require(flag: str) -> bool:
    """Whether CI demands a component that a developer machine may lack."""
    return os.environ.get(flag, "") not in ("", "0", "false")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
