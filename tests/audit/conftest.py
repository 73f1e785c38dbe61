"""Fixtures of the audit tests: a list sink, the local provider, a keyring."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_agent_auth.audit import AuditEvent, add_audit_sink, remove_audit_sink
from langchain_agent_auth.core.crypto import Keyring


class Recorder(list):
    """A sink keeping every event; ``kinds()`` lists their kinds in order."""

    def __call__(self, event: AuditEvent) -> None:
        self.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self]

    def of(self, kind: str) -> list[AuditEvent]:
        return [e for e in self if e.kind == kind]


@pytest.fixture
def events() -> Iterator[Recorder]:
    rec = Recorder()
    add_audit_sink(rec)
    yield rec
    remove_audit_sink(rec)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture(scope="module")
def idp() -> Iterator[Any]:
    devserver = pytest.importorskip("langchain_agent_auth.devserver")
    with devserver.LocalProvider(ciba_interval=1) as provider:
        yield provider
